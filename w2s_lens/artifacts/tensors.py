"""safetensors files: torch or numpy, atomic, with sorted header metadata (byte-identical
files for identical runs)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from w2s_lens.artifacts.files import atomic_path, missing_file
from w2s_lens.artifacts.provenance import ArtifactMismatch

__all__ = ["load_tensors", "save_tensors", "sort_header_metadata", "sorted_header_bytes"]


def save_tensors(path: str | os.PathLike, tensors: Mapping[str, Any],
                 metadata: Mapping[str, str] | None = None) -> Path:
    """Save torch tensors or numpy arrays (not mixed) as safetensors, atomically.

    Args:
        path: the ``.safetensors`` file.
        tensors: name -> tensor/array (made contiguous here).
        metadata: string metadata stored in the safetensors header.
    """
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    values = list(tensors.values())
    with atomic_path(path) as tmp:
        if values and all(type(v).__module__.startswith("torch") for v in values):
            from safetensors.torch import save_file

            save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp),
                      metadata=meta)
        else:
            import numpy as np
            from safetensors.numpy import save_file as np_save_file

            np_save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(tmp),
                         metadata=meta)
        sort_header_metadata(tmp)
    return Path(path)


def sort_header_metadata(path: str | os.PathLike) -> None:
    """Rewrite a safetensors file's header with its ``__metadata__`` keys sorted.

    safetensors writes the metadata in hash order, which differs from process to process; sorted,
    identical tensors and metadata give byte-identical files (and equal digests). The header
    keeps its length, so it is rewritten in place.

    >>> import tempfile, pathlib, numpy as np
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.safetensors"
    >>> _ = save_tensors(p, {"x": np.zeros(2)}, metadata={"b": "1", "a": "2"})
    >>> p.read_bytes()[8:41]
    b'{"__metadata__":{"a":"2","b":"1"}'
    """
    with open(path, "r+b") as f:
        n = int.from_bytes(f.read(8), "little")
        raw = f.read(n)
        text = _sorted_header(raw, path)
        if text != raw:
            f.seek(8)
            f.write(text)


def sorted_header_bytes(data: bytes) -> bytes:
    """A safetensors file's bytes (as ``safetensors.*.save`` returns them) with the header's
    ``__metadata__`` keys sorted (see :func:`sort_header_metadata`).

    >>> import numpy as np
    >>> from safetensors.numpy import save
    >>> sorted_header_bytes(save({"x": np.zeros(2)}, metadata={"b": "1", "a": "2"}))[8:41]
    b'{"__metadata__":{"a":"2","b":"1"}'
    """
    n = int.from_bytes(data[:8], "little")
    return data[:8] + _sorted_header(data[8:8 + n], "safetensors bytes") + data[8 + n:]


def _sorted_header(raw: bytes, where: Any) -> bytes:
    """The header JSON ``raw`` with its metadata keys sorted, padded to the same length."""
    header = json.loads(raw)
    meta = header.get("__metadata__")
    if not isinstance(meta, dict):
        return raw
    header["__metadata__"] = dict(sorted(meta.items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (len(raw) - len(text))
    if len(text) != len(raw):  # pragma: no cover - safetensors writes compact JSON
        raise ArtifactMismatch(f"{where}: unexpected safetensors header layout")
    return text


def load_tensors(path: str | os.PathLike, framework: str = "pt") -> dict[str, Any]:
    """Load a safetensors file as torch tensors (``"pt"``) or numpy arrays (``"np"``); a
    missing file's error suggests where it may be
    (:func:`~w2s_lens.artifacts.files.missing_file`)."""
    path = Path(path)
    if not path.is_file():
        raise missing_file(path)
    try:
        if framework == "np":
            from safetensors.numpy import load_file

            return load_file(str(path))
        from safetensors.torch import load_file as pt_load_file

        return pt_load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types
        raise ArtifactMismatch(f"{path} is not a readable safetensors file ({exc})") from exc
