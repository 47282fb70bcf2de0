"""Tests for w2s_lens.sweep.result: SweepResult, its files (checked, rebuilt from the chunks when
broken) and mirroring."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import make_tiny_model

from w2s_lens.artifacts.provenance import ArtifactMismatch
from w2s_lens.data.examples import SteeringExample
from w2s_lens.steering.vectors import train_caa
from w2s_lens.sweep.chunks import ChunkWarning
from w2s_lens.sweep.result import SweepResult
from w2s_lens.sweep.runner import run_sweep


def _examples(n=5, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        toks = tuple(int(t) for t in rng.integers(2, 60, size=3 + 2 * i))
        ident = f"e{i // 2}" + ("~swap" if i % 2 else "")  # e0, e0~swap, e1, ...
        out.append(SteeringExample(ident, "", toks, matching_token_id=60 + i % 2,
                                   non_matching_token_id=61 - i % 2,
                                   matching_letter="AB"[i % 2], group="g"))
    return out


@pytest.fixture(scope="module", params=["rotary", "standard"])
def setup(request):
    model = make_tiny_model(request.param, seed=0 if request.param == "rotary" else 1)
    model.cfg.model_name = f"tiny-{request.param}"
    exs = _examples()
    return model, train_caa(model, exs), exs


def test_save_load_round_trip(setup, tmp_path):
    model, vecs, exs = setup
    res = run_sweep(model, vecs, exs, layers=[1, 3], progress=False, capture_layer=2)
    res.save(tmp_path)
    back = SweepResult.load(tmp_path)
    assert back.layers == [1, 3] and back.ids == res.ids and back.units == res.units
    assert back.multipliers == res.multipliers
    assert back.matching_letters == ["A", "B", "A", "B", "A"] and back.groups == ["g"] * 5
    assert np.allclose(back.propensity, res.propensity, atol=1e-5)
    assert np.allclose(back.steerability, res.steerability, atol=1e-4)
    assert np.allclose(back.captured, res.captured)
    assert back.metadata == json.loads(json.dumps(res.metadata))
    assert back.metadata["hook_names"] == ["blocks.1.hook_resid_pre", "blocks.3.hook_resid_pre"]
    m = back.mirrored()
    assert m.ids == ["e0", "e1", "e2"] and np.allclose(
        m.propensity, res.mirrored().propensity, atol=1e-5)


def test_format_version_and_legacy_directories_are_refused(setup, tmp_path):
    model, vecs, exs = setup
    res = run_sweep(model, vecs, exs[:2], layers=[1], progress=False)
    new = tmp_path / "v2"
    res.save(new)
    side = json.loads((new / "sweep.json").read_text())
    side["format_version"] = 1
    (new / "sweep.json").write_text(json.dumps(side))
    with pytest.raises(ArtifactMismatch, match="format_version 1"):
        SweepResult.load(new)
    # w2s-lens 0.1 wrote sweep.safetensors + sweep_ids.json (no sweep.json)
    legacy = tmp_path / "v1"
    res.save(legacy)
    (legacy / "sweep.json").rename(legacy / "sweep_ids.json")
    with pytest.raises(ArtifactMismatch, match="0.1.*rerun"):
        SweepResult.load(legacy)


def test_units_mirrored_and_unit_average():
    prop = np.array([
        [[0.0, 2.0]],   # u0, slope 1
        [[4.0, 0.0]],   # u0~swap, slope -2
        [[1.0, 1.0]],   # u1 alone, slope 0
        [[0.0, 6.0]],   # u2, slope 3
        [[0.0, 2.0]],   # u2~swap, slope 1
    ])
    res = SweepResult(prop, [5], [-1.0, 1.0], ["u0", "u0~swap", "u1", "u2", "u2~swap"],
                      ["A", "B", "B", "A", "B"], captured=np.arange(10.0).reshape(5, 2))
    assert res.units == ["u0", "u0", "u1", "u2", "u2"]
    assert res.steerability[:, 0].tolist() == [1.0, -2.0, 0.0, 3.0, 1.0]
    m = res.mirrored()
    assert m.ids == m.units == ["u0", "u1", "u2"]
    assert m.matching_letters == ["A", "B", "A"]
    assert m.steerability[:, 0].tolist() == pytest.approx([-0.5, 0.0, 2.0])
    assert m.metadata["mirrored"] and m.metadata["presentations_per_unit"] == [1, 2]
    assert m.captured.tolist() == [[1.0, 2.0], [4.0, 5.0], [7.0, 8.0]]
    assert np.allclose(res.unit_average(res.steerability), [[-0.5], [0.0], [2.0]])
    single = SweepResult(prop[:1], [5], [-1.0, 1.0], ["a"], ["A"])
    assert single.mirrored() is single
    with pytest.raises(ValueError, match="rows"):
        res.unit_average(np.zeros(3))
    with pytest.raises(ValueError, match="ids"):
        SweepResult(prop, [5], [-1.0, 1.0], ["a"], ["A"] * 5)




def _flip(path, where=-8, n=8):
    """XOR ``n`` bytes of ``path`` from offset ``where`` (negative: from the end)."""
    data = bytearray(path.read_bytes())
    start = where % len(data)
    for i in range(start, start + n):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A sweep run with chunks in its folder and saved there; the folder's bytes and its load."""
    model = make_tiny_model("rotary", seed=0)
    model.cfg.model_name = "tiny-rotary"
    exs = _examples()
    vecs = train_caa(model, exs)
    folder = tmp_path_factory.mktemp("saved")
    res = run_sweep(model, vecs, exs, layers=[1, 3], out_dir=folder, chunk_size=2,
                    capture_layer=2, progress=False)
    res.metadata["split"] = "test"  # set after the sweep, as the pipeline does
    res.save(folder)
    return folder, (folder / "sweep.safetensors").read_bytes(), SweepResult.load(folder)


def _copy(saved, tmp_path):
    import shutil

    folder, _, _ = saved
    return shutil.copytree(folder, tmp_path / "copy")


def assert_tensors_equal(path, good_bytes: bytes) -> None:
    from safetensors.numpy import load

    have, want = load(path.read_bytes()), load(good_bytes)
    assert sorted(have) == sorted(want)
    assert all(np.array_equal(have[k], want[k]) and have[k].dtype == want[k].dtype for k in want)


def _same(a: SweepResult, b: SweepResult) -> None:
    assert np.array_equal(a.propensity, b.propensity)
    assert np.array_equal(a.captured, b.captured)
    assert (a.layers, a.multipliers, a.ids, a.metadata) == (b.layers, b.multipliers, b.ids,
                                                          b.metadata)


@pytest.mark.parametrize("damage", ["flip data", "truncate", "delete"])
def test_a_broken_sweep_file_is_rebuilt_from_its_chunks(saved, tmp_path, damage):
    _, good_bytes, good = saved
    folder = _copy(saved, tmp_path)
    f = folder / "sweep.safetensors"
    side = json.loads((folder / "sweep.json").read_text())
    assert side["tensors"]["sha256"] and side["tensors"]["shapes"]["propensity"][0] == [5, 2, 7]
    if damage == "flip data":
        _flip(f, where=len(good_bytes) // 2 + 40)  # inside the tensor data, past the header
    elif damage == "truncate":
        f.write_bytes(good_bytes[: len(good_bytes) // 2])
    else:
        f.unlink()
    with pytest.warns(ChunkWarning) as caught:
        back = SweepResult.load(folder)
    assert len(caught) == 1 and "sweep.safetensors" in str(caught[0].message)
    assert "rebuilt it from" in str(caught[0].message)
    _same(back, good)
    # the file itself is healed (its tensors; safetensors may order the header otherwise), its
    # record updated, and the next load is quiet
    assert_tensors_equal(f, good_bytes)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", ChunkWarning)
        _same(SweepResult.load(folder), good)


def test_a_broken_sweep_file_without_sound_chunks_is_refused(saved, tmp_path):
    folder = _copy(saved, tmp_path)
    _flip(folder / "sweep.safetensors")
    _flip(folder / "chunks" / "000002-000004.safetensors")
    with pytest.raises(ArtifactMismatch, match=r"sweep.safetensors does not match the SHA-256.*"
                       r"000002-000004.safetensors.*rerun the sweep"):
        SweepResult.load(folder)
    import shutil

    shutil.rmtree(folder / "chunks")
    with pytest.raises(ArtifactMismatch, match="manifest.json is missing"):
        SweepResult.load(folder)
    (folder / "sweep.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="sweep.safetensors is missing"):
        SweepResult.load(folder)


def test_a_sweep_saved_before_digests_is_still_checked(saved, tmp_path):
    _, good_bytes, good = saved
    folder = _copy(saved, tmp_path)
    side = json.loads((folder / "sweep.json").read_text())
    del side["tensors"]
    (folder / "sweep.json").write_text(json.dumps(side))
    _same(SweepResult.load(folder), good)
    # no digest to compare: an unreadable file is still caught, and rebuilt
    (folder / "sweep.safetensors").write_bytes(good_bytes[:100])
    with pytest.warns(ChunkWarning, match="not a readable safetensors file"):
        _same(SweepResult.load(folder), good)
