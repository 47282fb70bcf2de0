"""Seals: the SHA-256 of a JSON artifact's own content and of the files it describes,
recorded in it and checked when it is loaded."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from w2s_lens.artifacts.json_files import json_default
from w2s_lens.artifacts.provenance import ArtifactMismatch
from w2s_lens.assets import sha256_of

__all__ = ["INTEGRITY_KEY", "IntegrityWarning", "check_seal", "json_digest", "seal"]

#: The field of a sealed JSON artifact that holds its digests (see :func:`seal`).
INTEGRITY_KEY = "integrity"


class IntegrityWarning(UserWarning):
    """An artifact written before digests were recorded was loaded without an integrity
    check."""


def json_digest(obj: Mapping[str, Any]) -> str:
    """SHA-256 of ``obj`` as canonical JSON (sorted keys), without ``integrity.content``.

    >>> json_digest({"a": 1, "b": [1.5]}) == json_digest({"b": [1.5], "a": 1})
    True
    """
    body = dict(obj)
    seal_ = body.get(INTEGRITY_KEY)
    if isinstance(seal_, Mapping):
        body[INTEGRITY_KEY] = {k: v for k, v in seal_.items() if k != "content"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=json_default)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def seal(meta: Mapping[str, Any], directory: str | os.PathLike,
         files: Iterable[str] = ()) -> dict[str, Any]:
    """``meta`` plus ``integrity``: the SHA-256 of each of ``files`` (paths relative to
    ``directory``, the folder the JSON is written into) and of the JSON's own content.

    Write the result with :func:`~w2s_lens.artifacts.json_files.write_json` into
    ``directory``; :func:`check_seal` checks it.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "w.bin").write_bytes(b"w")
    >>> sealed = seal({"model": "m"}, d, ["w.bin"])
    >>> sorted(sealed["integrity"]), check_seal(sealed, d / "meta.json")
    (['content', 'files'], True)
    """
    out = json.loads(json.dumps(dict(meta), default=json_default))  # as it will be read back
    out.pop(INTEGRITY_KEY, None)
    out[INTEGRITY_KEY] = {"files": {name: sha256_of(Path(directory) / name) for name in files}}
    out[INTEGRITY_KEY]["content"] = json_digest(out)
    return out


def check_seal(meta: Mapping[str, Any], path: str | os.PathLike, redo: str = "",
               stacklevel: int = 3) -> bool:
    """Check a JSON artifact sealed by :func:`seal`, read from ``path``.

    Returns True when the content and every recorded file match their digests, False (with
    one :class:`IntegrityWarning`) for an artifact written before seals were recorded.
    ``stacklevel`` places that warning (``warnings.warn``'s: 3, the default, is the caller of
    the function that calls ``check_seal``, e.g. the user's ``load``).

    Raises:
        ArtifactMismatch: the JSON was edited, or a file it records is missing or damaged; the
            message names the file and ends with ``redo``.

    >>> check_seal({"model": "m", "integrity": {"files": {}, "content": "0"}}, "m.json")
    Traceback (most recent call last):
    ...
    w2s_lens.artifacts.provenance.ArtifactMismatch: m.json was changed after it was written: ...
    """
    path = Path(path)
    hint = f"; {redo}" if redo else ""
    seal_ = meta.get(INTEGRITY_KEY)
    if seal_ is None:
        warnings.warn(f"{path} records no digests (written by an older w2s-lens), so it is "
                      f"loaded without an integrity check{hint}", IntegrityWarning,
                      stacklevel=stacklevel)
        return False
    if not isinstance(seal_, Mapping) or json_digest(meta) != seal_.get("content"):
        raise ArtifactMismatch(f"{path} was changed after it was written: its content does not "
                               f"match the digest recorded in it{hint}")
    for name, digest in (seal_.get("files") or {}).items():
        file = path.parent / str(name)
        if Path(str(name)).is_absolute() or ".." in Path(str(name)).parts:
            raise ArtifactMismatch(f"{path} records a file outside its folder: {name!r}{hint}")
        if not file.is_file():
            raise ArtifactMismatch(f"{file} is missing (recorded in {path}){hint}")
        if sha256_of(file) != digest:
            raise ArtifactMismatch(f"{file} is damaged: its SHA-256 differs from the one "
                                   f"recorded in {path}{hint}")
    return True
