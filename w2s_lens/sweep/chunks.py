"""Resumable sweeps: chunk files that are checked before they are trusted, and heal.

With ``out_dir``, :func:`w2s_lens.sweep.runner.run_sweep` writes ``out_dir/chunks/``:

* ``manifest.json``: the sweep's configuration and fingerprint, and for every finished chunk
  its file's SHA-256 and its tensors' shapes and dtypes;
* ``SSSSSS-EEEEEE.safetensors``: examples ``SSSSSS`` to ``EEEEEE`` (``propensity``
  ``[n, n_layers, n_multipliers]`` float64 and, when captured, ``captured`` ``[n, d_model]``
  float32), written atomically.

On resume (:class:`ChunkStore`) a chunk is used only if it is readable, has the expected
tensors, shapes and dtypes and, when the manifest records one, the same SHA-256; a chunk that
is missing (recorded but gone), unreadable, of the wrong shape or whose digest differs is
recomputed, with one :class:`ChunkWarning` naming it. Chunks of a manifest written before the
digests were recorded are checked for readability and shape, and their digest is recorded.

The final ``sweep.safetensors`` gets the same treatment: :func:`write_verified` returns the
digest that :class:`~w2s_lens.sweep.runner.SweepResult` records in ``sweep.json``, and
:func:`rebuild_from_chunks` remakes the file's tensors from the chunks when it fails its check.

Example:
    >>> store = ChunkStore("runs/x", config)  # doctest: +SKIP
    >>> store.load(0, 8, expected_spec(8, 4, 7, None))  # None: compute it  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from w2s_lens.artifacts.files import atomic_path
from w2s_lens.artifacts.json_files import read_json, write_json
from w2s_lens.artifacts.provenance import ArtifactMismatch, stamp
from w2s_lens.artifacts.tensors import sorted_header_bytes

__all__ = [
    "CHUNKS_DIR",
    "MANIFEST_FILE",
    "ChunkError",
    "ChunkStore",
    "ChunkWarning",
    "check_spec",
    "expected_spec",
    "read_verified",
    "rebuild_from_chunks",
    "short_digest",
    "write_verified",
]

log = logging.getLogger(__name__)

CHUNKS_DIR = "chunks"
MANIFEST_FILE = "manifest.json"

#: name -> (shape, numpy dtype name) of the tensors a file must hold
Spec = Mapping[str, tuple[tuple[int, ...], str]]


class ChunkWarning(UserWarning):
    """A stored sweep file failed its check (missing, unreadable, wrong shape, other digest)
    and is recomputed."""


class ChunkError(ArtifactMismatch):
    """A stored sweep file failed its check; the message names the file and says why."""


def short_digest(obj: Any) -> str:
    """16 hex digits of the SHA-256 of a tensor's float32 values or of a JSON-able object.

    >>> short_digest({"a": 1}) == short_digest({"a": 1}) != short_digest({"a": 2})
    True
    """
    if isinstance(obj, torch.Tensor):
        data = obj.detach().float().cpu().contiguous().numpy().tobytes()
    else:
        data = json.dumps(obj, sort_keys=True).encode()
    return hashlib.sha256(data).hexdigest()[:16]


def expected_spec(n: int, n_layers: int, n_mult: int, d_capture: int | None) -> dict:
    """The tensors a chunk of ``n`` examples holds (``d_capture``: d_model when captured).

    >>> expected_spec(2, 3, 5, None)
    {'propensity': ((2, 3, 5), 'float64')}
    """
    spec = {"propensity": ((n, n_layers, n_mult), "float64")}
    if d_capture is not None:
        spec["captured"] = ((n, d_capture), "float32")
    return spec


def _spec_of(arrays: Mapping[str, np.ndarray]) -> dict:
    return {k: (tuple(int(x) for x in v.shape), str(v.dtype)) for k, v in arrays.items()}


def _record(data: bytes, arrays: Mapping[str, np.ndarray]) -> dict:
    return {"sha256": hashlib.sha256(data).hexdigest(),
            "shapes": {k: [list(s), d] for k, (s, d) in _spec_of(arrays).items()}}


def write_verified(path: str | os.PathLike, arrays: Mapping[str, np.ndarray],
                   metadata: Mapping[str, str] | None = None) -> dict:
    """Write numpy arrays as safetensors atomically; return ``{"sha256", "shapes"}`` of the
    bytes written (the record :func:`read_verified` checks).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.safetensors"
    >>> rec = write_verified(p, {"x": np.zeros((2, 3))})
    >>> rec["shapes"], read_verified(p, rec)[0]["x"].shape
    ({'x': [[2, 3], 'float64']}, (2, 3))
    """
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    data = sorted_header_bytes(  # metadata in a fixed order: identical runs, identical bytes
        st_save(arrays, metadata={str(k): str(v) for k, v in (metadata or {}).items()}))
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return _record(data, arrays)


def read_verified(path: str | os.PathLike, record: Mapping[str, Any] | None = None,
                  spec: Spec | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """Read a safetensors file, checking it against ``record`` (from :func:`write_verified`:
    its SHA-256 and shapes) and ``spec``; return the arrays and the file's own record.

    Raises:
        ChunkError: the file is missing, unreadable, holds other tensors, shapes or dtypes
            than ``spec`` (or the recorded shapes), or its SHA-256 is not the recorded one.
    """
    path = Path(path)
    if not path.is_file():
        raise ChunkError(f"{path} is missing")
    data = path.read_bytes()
    want = (record or {}).get("sha256")
    if want and hashlib.sha256(data).hexdigest() != want:
        raise ChunkError(f"{path} does not match the SHA-256 recorded for it")
    try:
        arrays = st_load(data)
    except Exception as exc:  # safetensors raises its own error types
        raise ChunkError(f"{path} is not a readable safetensors file ({exc})") from exc
    for expect in (spec, (record or {}).get("shapes")):
        if expect:
            check_spec(path, arrays, expect)
    return arrays, _record(data, arrays)


def check_spec(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], spec: Spec) -> None:
    """Raise :class:`ChunkError` (naming ``path``) unless ``arrays`` are exactly ``spec``.

    >>> check_spec("c.safetensors", {"x": np.zeros(2)}, {"x": ((3,), "float64")})
    Traceback (most recent call last):
    ...
    w2s_lens.sweep.chunks.ChunkError: c.safetensors holds {'x': ((2,), 'float64')}, expected ...
    """
    have, want = _spec_of(arrays), {k: (tuple(s), d) for k, (s, d) in spec.items()}
    if have != want:
        raise ChunkError(f"{path} holds {have}, expected {want}")


class ChunkStore:
    """The chunk files of one resumable sweep, in ``out_dir/chunks`` (see the module doc).

    Args:
        out_dir: the sweep's folder; chunks go to ``out_dir/chunks``.
        config: the sweep's configuration; a folder holding another sweep's chunks is refused.
    """

    def __init__(self, out_dir: str | os.PathLike, config: Mapping[str, Any]) -> None:
        self.dir = Path(out_dir) / CHUNKS_DIR
        self.manifest = self.dir / MANIFEST_FILE
        fingerprint = short_digest(dict(config))
        if self.manifest.exists():
            self._head = read_json(self.manifest)
            if self._head.get("fingerprint") != fingerprint:
                raise ArtifactMismatch(
                    f"{self.dir} holds chunks of a different sweep (other model, vectors, "
                    f"examples, layers, multipliers, readout or positions); use another --out "
                    f"directory or delete it")
            log.info("resuming the sweep in %s", self.dir)
        else:
            self._head = stamp({"fingerprint": fingerprint, "config": dict(config)})
        # a manifest written before chunk digests existed has no "chunks" record: only then is
        # a chunk file without a record trusted (after its readability and shape check)
        self.legacy = self.manifest.exists() and "chunks" not in self._head
        self.records: dict[str, dict] = dict(self._head.pop("chunks", None) or {})
        if not self.manifest.exists():
            self._write_manifest()

    @staticmethod
    def name(start: int, stop: int) -> str:
        """File name of the chunk of examples ``start:stop``."""
        return f"{start:06d}-{stop:06d}.safetensors"

    def path(self, start: int, stop: int) -> Path:
        return self.dir / self.name(start, stop)

    def load(self, start: int, stop: int, spec: Spec) -> dict[str, np.ndarray] | None:
        """The chunk's arrays, or None when it must be computed (not written yet, or failing
        its check: then a :class:`ChunkWarning` names it)."""
        name, path = self.name(start, stop), self.path(start, stop)
        record = self.records.get(name)
        if record is None and not path.exists():
            return None
        if record is None and not self.legacy:  # e.g. written just before a crash
            warnings.warn(f"{path} is not recorded in {self.manifest}; recomputing it",
                          ChunkWarning, stacklevel=2)
            return None
        try:
            arrays, own = read_verified(path, record, spec)
        except ChunkError as err:
            warnings.warn(f"{err}; recomputing it", ChunkWarning, stacklevel=2)
            self.records.pop(name, None)
            return None
        if record is None or "sha256" not in record:  # an older manifest: record it now
            self.records[name] = own
            self._write_manifest()
        return arrays

    def save(self, start: int, stop: int, arrays: Mapping[str, np.ndarray]) -> None:
        """Write a chunk atomically, then record its digest and shapes in the manifest."""
        self.records[self.name(start, stop)] = write_verified(self.path(start, stop), arrays)
        self._write_manifest()

    def _write_manifest(self) -> None:
        write_json(self.manifest, {**self._head, "chunks": self.records})


def rebuild_from_chunks(directory: str | os.PathLike, ids: list[str]) -> dict[str, np.ndarray]:
    """The propensity (and captured embeddings), layers and multipliers of the sweep of ``ids``
    saved in ``directory``, reassembled from its verified chunks in ``directory/chunks``.

    Raises:
        ChunkError: there is no manifest, it is of another sweep, or a chunk fails its check.

    Example:
        >>> rebuild_from_chunks("runs/x/caa/base", ids)["propensity"].shape  # doctest: +SKIP
    """
    manifest = Path(directory) / CHUNKS_DIR / MANIFEST_FILE
    if not manifest.is_file():
        raise ChunkError(f"{manifest} is missing")
    head = read_json(manifest)
    cfg = head.get("config") or {}
    if cfg.get("ids_digest") != short_digest(list(ids)):
        raise ChunkError(f"{manifest} describes a sweep of other examples")
    n, size = len(ids), int(cfg["chunk_size"])
    n_layers, n_mult = len(cfg["layers"]), len(cfg["multipliers"])
    legacy = "chunks" not in head
    records = head.get("chunks") or {}
    capture = cfg.get("capture_layer") is not None
    parts: list[dict[str, np.ndarray]] = []
    for start in range(0, n, size):
        stop = min(n, start + size)
        path = manifest.parent / ChunkStore.name(start, stop)
        if path.name not in records and not legacy:
            raise ChunkError(f"{path} is not recorded in {manifest}")
        arrays, _ = read_verified(path, records.get(path.name))
        # every chunk's embeddings are as wide as the first chunk's
        width = parts[0] if parts else arrays
        d_capture = int(width["captured"].shape[-1]) if capture and "captured" in width else None
        if capture and d_capture is None:
            raise ChunkError(f"{path} holds no captured embeddings")
        check_spec(path, arrays, expected_spec(stop - start, n_layers, n_mult, d_capture))
        parts.append(arrays)
    out = {"propensity": np.concatenate([p["propensity"] for p in parts]),
           "layers": np.asarray(cfg["layers"], dtype=np.int64),
           "multipliers": np.asarray(cfg["multipliers"], dtype=np.float64)}
    if capture:
        out["captured"] = np.concatenate([p["captured"] for p in parts])
    return out
