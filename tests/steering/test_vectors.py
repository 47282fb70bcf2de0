"""Tests for w2s_lens.steering.vectors: CAA training, per-input vectors, save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import make_tiny_model

from w2s_lens.artifacts.provenance import ArtifactMismatch
from w2s_lens.artifacts.seals import IntegrityWarning
from w2s_lens.data.examples import SteeringExample
from w2s_lens.steering.activations import cache_residuals, contrast_residuals
from w2s_lens.steering.vectors import InputVectors, SteeringVectors, caa_from_differences, train_caa


def _examples(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return [SteeringExample(id=f"e{i}", text="", tokens=tuple(rng.integers(2, 60, size=5 + i)),
                            matching_token_id=60 + i % 2, non_matching_token_id=61 - i % 2,
                            matching_letter="AB"[i % 2]) for i in range(n)]


@pytest.fixture(scope="module")
def named_model():
    model = make_tiny_model("rotary", seed=0)
    model.cfg.model_name = "tiny-rotary"
    return model


def test_caa_is_mean_difference_at_answer_position(named_model):
    exs = _examples()
    vecs = train_caa(named_model, exs, layers=[3, 1])
    pos = cache_residuals(named_model, [e.positive_tokens for e in exs], [1, 3], [-1] * 6)
    neg = cache_residuals(named_model, [e.negative_tokens for e in exs], [1, 3], [-1] * 6)
    assert torch.allclose(vecs.vectors, (pos - neg).mean(0), atol=1e-5)
    assert vecs.layers == [1, 3]
    assert vecs.metadata["matching_letter_counts"] == {"A": 3, "B": 3}
    assert vecs.metadata["n_pairs"] == 6 and vecs.metadata["method"] == "caa"
    norms = torch.cat([pos, neg]).norm(dim=-1).mean(0)
    assert vecs.metadata["resid_norms"] == pytest.approx(norms.tolist(), rel=1e-5)


def test_caa_on_cloze_pairs_reads_the_last_answer_token(named_model):
    exs = [SteeringExample(f"c{i}", "", (4, 5 + i, 9), matching_continuation=(7, 8, 9 + i),
                           non_matching_continuation=(11,)) for i in range(3)]
    vecs = train_caa(named_model, exs, layers=[2])
    pos = cache_residuals(named_model, [e.positive_tokens for e in exs], [2], [-1] * 3)
    neg = cache_residuals(named_model, [e.negative_tokens for e in exs], [2], [-1] * 3)
    assert torch.allclose(vecs.vectors, (pos - neg).mean(0), atol=1e-5)


def test_caa_from_differences_of_a_fold_equals_training_on_the_fold(named_model):
    exs = _examples(8)
    acts = contrast_residuals(named_model, exs, layers=[0, 2, 3], batch_size=3)
    fold = [1, 4, 5, 7]
    vecs = caa_from_differences(named_model, acts.diffs[fold], [exs[i] for i in fold],
                                [0, 2, 3], dataset="toy")
    trained = train_caa(named_model, [exs[i] for i in fold], layers=[0, 2, 3], dataset="toy",
                        batch_size=2)
    assert torch.allclose(vecs.vectors, trained.vectors, atol=1e-5)
    assert vecs.layers == trained.layers == [0, 2, 3]
    for key in ("model", "d_model", "dataset", "method", "n_pairs", "matching_letter_counts"):
        assert vecs.metadata[key] == trained.metadata[key], key
    assert vecs.metadata["matching_letter_counts"] == {"A": 1, "B": 3}
    assert vecs.metadata["resid_norms"] is None  # not given
    with pytest.raises(ValueError, match="3 contrasts for 4 examples"):
        caa_from_differences(named_model, acts.diffs[:3], [exs[i] for i in fold], [0, 2, 3])
    with pytest.raises(ValueError, match="0 contrasts"):
        caa_from_differences(named_model, acts.diffs[:0], [], [0, 2, 3])


def test_letter_balanced_pairs_cancel_a_pure_letter_direction(named_model):
    """Same prompt, letters swapped: a vector from both orders has no A-vs-B part."""
    base = _examples(1)[0]
    swapped = SteeringExample(id="e0~swap", text="", tokens=base.tokens,
                              matching_token_id=base.non_matching_token_id,
                              non_matching_token_id=base.matching_token_id, matching_letter="B")
    assert float(train_caa(named_model, [base]).vectors.abs().max()) > 1e-2
    vecs = train_caa(named_model, [base, swapped])
    assert float(vecs.vectors.abs().max()) < 1e-5


def test_apply_adds_scaled_vector_and_undoes(named_model):
    vecs = train_caa(named_model, _examples(), layers=[2])
    tokens = torch.tensor([[5, 6, 7]])
    point = named_model.hook_dict["blocks.2.hook_resid_pre"]

    def run() -> torch.Tensor:
        got = []
        # registered last, so it sees the activation after any steering hook
        h = point.register_forward_hook(lambda m, i, out: got.append(out.detach().clone()))
        named_model(tokens)
        h.remove()
        return got[0]

    base = run()
    with vecs.apply(named_model, 2, multiplier=2.0, scale=0.25):
        steered = run()
    assert torch.allclose(steered[0, -1] - base[0, -1], 0.5 * vecs.vector(2), atol=1e-5)
    assert torch.allclose(steered[0, :-1], base[0, :-1])
    assert torch.allclose(run(), base)
    with pytest.raises(KeyError, match="stored layers"):
        vecs.vector(0)


def test_steering_vectors_validation():
    with pytest.raises(ValueError, match="len\\(layers\\)"):
        SteeringVectors(torch.zeros(2, 8), [1, 2, 3])
    with pytest.raises(ValueError, match="distinct"):
        SteeringVectors(torch.zeros(2, 8), [1, 1])
    v = SteeringVectors(torch.tensor([[3.0, 4.0], [0.0, 1.0]], dtype=torch.float64), [5, 2])
    assert v.vectors.dtype == torch.float32
    assert v.norms().tolist() == [5.0, 1.0]
    assert v.hook_name(2) == "blocks.2.hook_resid_pre"
    assert v.vector(2).tolist() == [0.0, 1.0]


def test_save_load_roundtrip_and_refusals(named_model, tmp_path):
    vecs = train_caa(named_model, _examples(), dataset="toy")
    vecs.save(tmp_path)
    meta = json.loads((tmp_path / "vectors.json").read_text())
    assert meta["hook_names"][0] == "blocks.0.hook_resid_pre"
    assert meta["model"] == "tiny-rotary" and meta["dataset"] == "toy"
    assert meta["format_version"] == 2 and "torch" in meta["versions"]
    back = SteeringVectors.load(tmp_path, model=named_model, hook="resid_pre")
    assert torch.equal(back.vectors, vecs.vectors) and back.layers == vecs.layers
    assert back.metadata["resid_norms"] == vecs.metadata["resid_norms"]
    other = make_tiny_model("standard", seed=1)
    other.cfg.model_name = "other-model"
    with pytest.raises(ArtifactMismatch, match="model='tiny-rotary'.*other-model"):
        SteeringVectors.load(tmp_path, model=other)
    with pytest.raises(ArtifactMismatch, match="hook"):
        SteeringVectors.load(tmp_path, hook="resid_post")
    meta["format_version"] = 1
    (tmp_path / "vectors.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactMismatch, match="format_version 1.*train the vectors again"):
        SteeringVectors.load(tmp_path)


def test_load_refuses_vectors_missing_a_layer(named_model, tmp_path):
    vecs = train_caa(named_model, _examples(), layers=[1, 2])
    vecs.save(tmp_path)
    meta = json.loads((tmp_path / "vectors.json").read_text())
    meta["layers"] = [1, 2, 3]
    (tmp_path / "vectors.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactMismatch, match="vectors.json was changed after it was written"):
        SteeringVectors.load(tmp_path)
    del meta["integrity"], meta["norms"]  # as written before seals: only the tensors are checked
    (tmp_path / "vectors.json").write_text(json.dumps(meta))
    with pytest.warns(IntegrityWarning, match="no digests"), \
            pytest.raises(ArtifactMismatch, match="blocks.3.hook_resid_pre"):
        SteeringVectors.load(tmp_path)


def test_refuses_empty_training_set(named_model):
    with pytest.raises(ValueError, match="at least one"):
        train_caa(named_model, [])


def test_input_vectors_validation_and_access(named_model):
    data = torch.arange(2 * 3 * 32, dtype=torch.float64).reshape(2, 3, 32)
    iv = InputVectors(data, [1, 2, 3], ["a", "b"],
                      metadata={"model": "tiny-rotary", "d_model": 32, "method": "l2s"})
    assert iv.vectors.dtype == torch.float32
    assert torch.equal(iv.vector(1, layer=2), data[1, 1].float())
    assert "l2s" in repr(iv) and "n=2" in repr(iv)
    with pytest.raises(KeyError, match="stored layers"):
        iv.vector(0, layer=0)
    iv.check_model(named_model)
    with pytest.raises(ArtifactMismatch, match="input vectors"):
        InputVectors(data, [1, 2, 3], ["a", "b"], metadata={"model": "x"}).check_model(
            named_model)
    for bad_shape, layers, ids in [((2, 3), [1, 2, 3], ["a", "b"]),
                                   ((2, 3, 32), [1, 2], ["a", "b"]),
                                   ((2, 3, 32), [1, 2, 3], ["a"])]:
        with pytest.raises(ValueError, match="vectors must be"):
            InputVectors(torch.zeros(bad_shape), layers, ids)


def test_input_vectors_broadcast(named_model):
    vecs = train_caa(named_model, _examples(), layers=[1, 3], dataset="toy")
    iv = InputVectors.broadcast(vecs, ["x", "y", "z"])
    assert iv.vectors.shape == (3, 2, named_model.cfg.d_model)
    assert iv.layers == [1, 3] and iv.ids == ["x", "y", "z"] and iv.hook == vecs.hook
    for i in range(3):
        assert torch.equal(iv.vector(i, 3), vecs.vector(3))
    assert iv.metadata["dataset"] == "toy"
    assert iv.vectors.data_ptr() == vecs.vectors.data_ptr()  # a view, no copy
    iv.check_model(named_model)
