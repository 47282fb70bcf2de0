"""Tests for w2s_lens.steering.interop_gguf: llama.cpp control-vector GGUF files."""

from __future__ import annotations

import gguf
import pytest
import torch
from conftest import make_tiny_model
from helpers_interop import random_vectors as _random_vectors

from w2s_lens.artifacts.provenance import ArtifactMismatch
from w2s_lens.steering.interop_gguf import (
    GGUF_ARCH,
    from_control_vector_gguf,
    to_control_vector_gguf,
)
from w2s_lens.steering.interop_layers import LayerMappingError
from w2s_lens.steering.vectors import SteeringVectors, model_name


@pytest.fixture(scope="module")
def tiny():
    return make_tiny_model()


@pytest.mark.parametrize("hook, layers", [("resid_pre", [2, 3]), ("resid_post", [1, 2, 3])])
def test_gguf_round_trip(tiny, tmp_path, hook, layers):
    vecs = _random_vectors(tiny, layers, hook)
    path = to_control_vector_gguf(vecs, tmp_path / "v.gguf")
    back = from_control_vector_gguf(path, model=tiny, hook=hook)
    assert back.layers == layers and back.hook == hook
    torch.testing.assert_close(back.vectors, vecs.vectors)
    assert back.metadata["model"] == model_name(tiny)
    assert back.metadata["dataset"] == "toy" and back.metadata["multiplier_baked_in"] == 1.0
    # without a model the vectors and layers still come back
    alone = from_control_vector_gguf(path, hook=hook)
    assert alone.layers == layers
    torch.testing.assert_close(alone.vectors, vecs.vectors)


def test_gguf_file_is_a_llama_cpp_control_vector(tiny, tmp_path):
    vecs = _random_vectors(tiny, [1, 2, 3], "resid_pre")
    path = to_control_vector_gguf(vecs, tmp_path / "v.gguf", layers=[3, 2])
    reader = gguf.GGUFReader(str(path))
    assert reader.fields["general.architecture"].contents() == GGUF_ARCH
    assert reader.fields[f"{GGUF_ARCH}.model_hint"].contents() == model_name(tiny)
    assert reader.fields[f"{GGUF_ARCH}.layer_count"].contents() == 2
    tensors = {t.name: t for t in reader.tensors}
    # resid_pre layer l is the output of block l-1: llama.cpp's direction.{l-1}
    assert sorted(tensors) == ["direction.1", "direction.2"]
    for name, layer in (("direction.1", 2), ("direction.2", 3)):
        assert tensors[name].tensor_type == gguf.GGMLQuantizationType.F32
        torch.testing.assert_close(torch.from_numpy(tensors[name].data.copy()),
                                   vecs.vector(layer))


def test_gguf_direction_is_added_where_llama_cpp_adds_it(tiny, tmp_path):
    """Adding direction.N to block N's output at every token (llama.cpp's build_cvec at
    l_out of block N) equals steering the imported vectors with positions='all'."""
    vecs = _random_vectors(tiny, [2], "resid_pre", scale=3.0)
    path = to_control_vector_gguf(vecs, tmp_path / "v.gguf", multiplier=-1.5)
    reader = gguf.GGUFReader(str(path))
    (t,) = reader.tensors
    block = int(t.name.split(".")[1])
    direction = torch.from_numpy(t.data.copy())
    tokens = torch.tensor([[1, 5, 9, 2, 7]])

    def add(act, hook):
        return act + direction

    with torch.no_grad():
        llama_cpp_like = tiny.run_with_hooks(
            tokens, fwd_hooks=[(f"blocks.{block}.hook_resid_post", add)])
        with vecs.apply(tiny, 2, -1.5, positions="all"):
            ours = tiny(tokens)
        plain = tiny(tokens)
    torch.testing.assert_close(llama_cpp_like, ours)
    assert (ours - plain).abs().max() > 1e-3
    back = from_control_vector_gguf(path, model=tiny)
    assert back.metadata["multiplier_baked_in"] == -1.5
    torch.testing.assert_close(back.vector(2), -1.5 * vecs.vector(2))


def test_gguf_layers_llama_cpp_cannot_steer(tiny, tmp_path):
    vecs = _random_vectors(tiny, [0, 1, 2, 3], "resid_pre")
    with pytest.raises(LayerMappingError, match="block 0"):
        to_control_vector_gguf(vecs, tmp_path / "a.gguf", layers=[1])
    with pytest.raises(LayerMappingError, match="embedding output"):
        to_control_vector_gguf(vecs, tmp_path / "a.gguf", layers=[0])
    assert not (tmp_path / "a.gguf").exists()
    # all layers: the two llama.cpp cannot steer are skipped
    path = to_control_vector_gguf(vecs, tmp_path / "b.gguf")
    assert from_control_vector_gguf(path, model=tiny).layers == [2, 3]
    with pytest.raises(LayerMappingError, match="resid_mid"):
        to_control_vector_gguf(_random_vectors(tiny, [1], "resid_mid"), tmp_path / "c.gguf")
    post = _random_vectors(tiny, [0, 3], "resid_post")
    with pytest.raises(LayerMappingError, match="block 0"):
        to_control_vector_gguf(post, tmp_path / "d.gguf", layers=[0])


def test_gguf_refuses_bad_layers_and_widths(tiny, tmp_path):
    big = make_tiny_model(n_layers=6, seed=2)
    path = to_control_vector_gguf(_random_vectors(big, [4, 5], "resid_post"), tmp_path / "a.gguf")
    with pytest.raises(LayerMappingError, match="direction.4: decoder block 4 does not exist"):
        from_control_vector_gguf(path, model=tiny, hook="resid_post")
    # the last block's output is no resid_pre
    path = to_control_vector_gguf(_random_vectors(tiny, [3], "resid_post"), tmp_path / "b.gguf")
    with pytest.raises(LayerMappingError, match="direction.3"):
        from_control_vector_gguf(path, model=tiny, hook="resid_pre")
    assert from_control_vector_gguf(path, model=tiny, hook="resid_post").layers == [3]
    narrow = SteeringVectors(torch.randn(1, 16), [2], "resid_pre", {"model": "other"})
    path = to_control_vector_gguf(narrow, tmp_path / "c.gguf")
    with pytest.raises(ArtifactMismatch, match="width 16, but the model's d_model is 32"):
        from_control_vector_gguf(path, model=tiny)
    # written by w2s-lens for another model of the same width
    path = to_control_vector_gguf(_random_vectors(big, [2]), tmp_path / "d.gguf")
    big_name = model_name(big)
    tiny.cfg.model_name, old = big_name + "-other", tiny.cfg.model_name
    try:
        with pytest.raises(ArtifactMismatch, match="for model="):
            from_control_vector_gguf(path, model=tiny)
    finally:
        tiny.cfg.model_name = old
    with pytest.raises(LayerMappingError, match="resid_mid"):
        from_control_vector_gguf(path, hook="resid_mid")


def test_gguf_foreign_files(tiny, tmp_path):
    """Files from other writers (no w2s-lens metadata) are read; malformed ones refused."""

    def write(name, tensors, arch=GGUF_ARCH):
        w = gguf.GGUFWriter(str(tmp_path / name), arch=arch)
        w.add_string(f"{arch}.model_hint", "llama")
        w.add_int32(f"{arch}.layer_count", len(tensors))
        for key, value in tensors.items():
            w.add_tensor(key, value)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        return tmp_path / name

    v = torch.randn(2, 32).numpy()
    ok = from_control_vector_gguf(write("ok.gguf", {"direction.1": v[0], "direction.2": v[1]}),
                                  model=tiny)
    assert ok.layers == [2, 3] and ok.metadata["model_hint"] == "llama"
    assert ok.metadata["model"] == model_name(tiny)
    torch.testing.assert_close(ok.vectors, torch.from_numpy(v))
    with pytest.raises(ArtifactMismatch, match="layer index 0"):
        from_control_vector_gguf(write("zero.gguf", {"direction.0": v[0]}))
    with pytest.raises(ArtifactMismatch, match="not named direction"):
        from_control_vector_gguf(write("name.gguf", {"dir.1": v[0]}))
    with pytest.raises(ArtifactMismatch, match="not F32"):
        from_control_vector_gguf(write("f16.gguf", {"direction.1": v[0].astype("float16")}))
    with pytest.raises(ArtifactMismatch, match="not a control vector"):
        from_control_vector_gguf(write("model.gguf", {"direction.1": v[0]}, arch="llama"))
    with pytest.raises(ArtifactMismatch, match="the others"):
        from_control_vector_gguf(write("mixed.gguf", {"direction.1": v[0],
                                                      "direction.2": v[1][:16]}))
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf at all")
    with pytest.raises(ArtifactMismatch, match="not a readable GGUF"):
        from_control_vector_gguf(tmp_path / "junk.gguf")
