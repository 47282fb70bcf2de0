"""Tests for w2s_lens.sweep.chunks: checked chunk files, and sweeps that heal broken ones."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from conftest import make_tiny_model
from safetensors.numpy import save as st_save

import w2s_lens.sweep.runner as sweep_mod
from w2s_lens.artifacts.provenance import ArtifactMismatch
from w2s_lens.data.examples import SteeringExample
from w2s_lens.steering.vectors import train_caa
from w2s_lens.sweep.chunks import (
    ChunkError,
    ChunkStore,
    ChunkWarning,
    expected_spec,
    read_verified,
    rebuild_from_chunks,
    short_digest,
    write_verified,
)
from w2s_lens.sweep.engines import fast_chunk
from w2s_lens.sweep.runner import run_sweep

N, SIZE = 7, 2  # four chunks: 0-2, 2-4, 4-6, 6-7
NAMES = ["000000-000002.safetensors", "000002-000004.safetensors",
         "000004-000006.safetensors", "000006-000007.safetensors"]


def _examples(n=N, seed=0):
    rng = np.random.default_rng(seed)
    return [SteeringExample(f"e{i}", "", tuple(int(t) for t in rng.integers(2, 60, 3 + i)),
                            matching_token_id=60 + i % 2, non_matching_token_id=61 - i % 2,
                            matching_letter="AB"[i % 2]) for i in range(n)]


@pytest.fixture(scope="module")
def setup():
    model = make_tiny_model("rotary", seed=0)
    model.cfg.model_name = "tiny-rotary"
    exs = _examples()
    return model, train_caa(model, exs), exs


@pytest.fixture(scope="module")
def full(setup):
    """The uninterrupted sweep, without chunk files."""
    model, vecs, exs = setup
    return run_sweep(model, vecs, exs, chunk_size=SIZE, capture_layer=2, progress=False)


def _sweep(setup, out_dir, monkeypatch=None):
    """Run the sweep in ``out_dir``; returns the result, the chunk warnings' messages and the
    first example id of each chunk computed."""
    model, vecs, exs = setup
    computed: list[str] = []

    def counting(*args, **kwargs):
        computed.append(args[4][0].id)
        return fast_chunk(*args, **kwargs)

    if monkeypatch is not None:
        monkeypatch.setattr(sweep_mod, "fast_chunk", counting)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = run_sweep(model, vecs, exs, out_dir=out_dir, chunk_size=SIZE, capture_layer=2,
                        progress=False)
    return res, [str(w.message) for w in caught if w.category is ChunkWarning], computed


def _flip(path, where=-8, n=8):
    """XOR ``n`` bytes of ``path`` from offset ``where`` (negative: from the end)."""
    data = bytearray(path.read_bytes())
    start = where % len(data)
    for i in range(start, start + n):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _identical(a, b) -> None:
    assert torch.equal(torch.from_numpy(a.propensity), torch.from_numpy(b.propensity))
    assert torch.equal(torch.from_numpy(a.captured), torch.from_numpy(b.captured))


def test_broken_chunks_are_recomputed_with_one_warning_each(setup, full, tmp_path,
                                                            monkeypatch):
    _sweep(setup, tmp_path)
    chunks = tmp_path / "chunks"
    manifest = json.loads((chunks / "manifest.json").read_text())
    assert sorted(manifest["chunks"]) == NAMES
    assert manifest["chunks"][NAMES[0]]["shapes"] == {"propensity": [[2, 4, 7], "float64"],
                                                      "captured": [[2, 32], "float32"]}
    size = (chunks / NAMES[0]).stat().st_size
    (chunks / NAMES[0]).write_bytes((chunks / NAMES[0]).read_bytes()[: size // 2])  # truncated
    _flip(chunks / NAMES[1])  # the last 8 bytes: tensor data
    _flip(chunks / NAMES[2], where=(chunks / NAMES[2]).stat().st_size // 2, n=1)  # one byte
    intact = (chunks / NAMES[3]).read_bytes(), (chunks / NAMES[3]).stat().st_mtime_ns
    healed, warned, computed = _sweep(setup, tmp_path, monkeypatch)
    _identical(healed, full)
    assert computed == ["e0", "e2", "e4"]  # the intact chunk was read, not recomputed
    assert len(warned) == 3
    for name, msg in zip(NAMES, warned):
        assert name in msg and "does not match the SHA-256" in msg and "recomputing" in msg
    assert ((chunks / NAMES[3]).read_bytes(), (chunks / NAMES[3]).stat().st_mtime_ns) == intact
    # the manifest records the recomputed chunks; a third run is quiet and computes nothing
    again, warned, computed = _sweep(setup, tmp_path, monkeypatch)
    assert warned == [] and computed == []
    _identical(again, full)


def test_a_deleted_chunk_is_recomputed(setup, full, tmp_path, monkeypatch):
    _sweep(setup, tmp_path)
    (tmp_path / "chunks" / NAMES[2]).unlink()
    healed, warned, computed = _sweep(setup, tmp_path, monkeypatch)
    assert computed == ["e4"] and len(warned) == 1
    assert NAMES[2] in warned[0] and "is missing" in warned[0]
    _identical(healed, full)


def test_a_chunk_the_manifest_does_not_record_is_recomputed(setup, full, tmp_path, monkeypatch):
    """A chunk file written just before a crash (or left by another sweep) has no record in a
    manifest that records digests: it is never trusted, only recomputed."""
    _sweep(setup, tmp_path)
    manifest_file = tmp_path / "chunks" / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    del manifest["chunks"][NAMES[1]]
    manifest_file.write_text(json.dumps(manifest))
    _flip(tmp_path / "chunks" / NAMES[1])  # damaged, and readable at the right shape
    healed, warned, computed = _sweep(setup, tmp_path, monkeypatch)
    assert computed == ["e2"] and len(warned) == 1
    assert NAMES[1] in warned[0] and "not recorded" in warned[0]
    _identical(healed, full)


def test_chunks_of_a_manifest_without_digests_are_checked(setup, full, tmp_path, monkeypatch):
    """Older runs recorded no digests: readability and shapes are still checked, and the
    digests of the chunks that pass are recorded."""
    _sweep(setup, tmp_path)
    chunks = tmp_path / "chunks"
    manifest = json.loads((chunks / "manifest.json").read_text())
    del manifest["chunks"]
    (chunks / "manifest.json").write_text(json.dumps(manifest))
    good = (chunks / NAMES[1]).read_bytes()
    (chunks / NAMES[0]).write_bytes(good[:50])  # truncated: not readable
    (chunks / NAMES[1]).write_bytes(st_save({"propensity": np.zeros((2, 4, 6))}))  # wrong shape
    healed, warned, computed = _sweep(setup, tmp_path, monkeypatch)
    assert computed == ["e0", "e2"] and len(warned) == 2
    assert NAMES[0] in warned[0] and "not a readable safetensors file" in warned[0]
    assert NAMES[1] in warned[1] and "(2, 4, 7)" in warned[1] and "(2, 4, 6)" in warned[1]
    _identical(healed, full)
    assert sorted(json.loads((chunks / "manifest.json").read_text())["chunks"]) == NAMES
    # digests recorded now: a flipped byte in a chunk that had none is caught
    _flip(chunks / NAMES[3])
    _, warned, computed = _sweep(setup, tmp_path, monkeypatch)
    assert computed == ["e6"] and len(warned) == 1 and NAMES[3] in warned[0]


def test_read_verified_names_the_file_and_the_fault(tmp_path):
    p = tmp_path / "c.safetensors"
    rec = write_verified(p, {"propensity": np.arange(6.0).reshape(1, 2, 3)})
    spec = expected_spec(1, 2, 3, None)
    arrays, own = read_verified(p, rec, spec)
    assert own == rec and arrays["propensity"][0, 1, 2] == 5.0
    with pytest.raises(ChunkError, match=r"c.safetensors holds .*expected .*\(2, 2, 3\)"):
        read_verified(p, rec, expected_spec(2, 2, 3, None))
    with pytest.raises(ChunkError, match="captured"):
        read_verified(p, None, expected_spec(1, 2, 3, 32))
    _flip(p)
    with pytest.raises(ChunkError, match="c.safetensors does not match the SHA-256"):
        read_verified(p, rec, spec)
    assert read_verified(p, None, spec)[0]["propensity"][0, 1, 2] != 5.0  # no digest: unseen
    p.write_bytes(b"\x00" * 4)
    with pytest.raises(ChunkError, match="not a readable safetensors file"):
        read_verified(p)
    with pytest.raises(ChunkError, match="missing.safetensors is missing"):
        read_verified(tmp_path / "missing.safetensors")
    assert issubclass(ChunkError, ArtifactMismatch)


def test_a_store_of_another_sweep_is_refused(tmp_path):
    ChunkStore(tmp_path, {"layers": [1]})
    assert short_digest({"layers": [1]}) != short_digest({"layers": [2]})
    with pytest.raises(ArtifactMismatch, match="different sweep"):
        ChunkStore(tmp_path, {"layers": [2]})


def test_rebuild_from_chunks(setup, full, tmp_path):
    _sweep(setup, tmp_path)
    parts = rebuild_from_chunks(tmp_path, full.ids)
    assert np.array_equal(parts["propensity"], full.propensity)
    assert np.array_equal(parts["captured"], full.captured)
    assert parts["layers"].tolist() == full.layers
    assert parts["multipliers"].tolist() == full.multipliers
    with pytest.raises(ChunkError, match="other examples"):
        rebuild_from_chunks(tmp_path, full.ids[::-1])
    (tmp_path / "chunks" / NAMES[3]).unlink()
    with pytest.raises(ChunkError, match=f"{NAMES[3]} is missing"):
        rebuild_from_chunks(tmp_path, full.ids)
