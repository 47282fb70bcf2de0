"""Saving artifacts with the metadata needed to reload them safely.

Every artifact w2s-lens writes (steering vectors, sweeps, routers) records the model, hook,
layers, positions and library versions. :func:`check_metadata` compares what an artifact
says about itself with what the caller expects, and refuses a mismatch with a message that
names both values.

Example:
    >>> check_metadata({"model": "a", "hook": "resid_pre"}, {"model": "a"}, what="vectors")
    >>> check_metadata({"model": "a"}, {"model": "b"}, what="vectors")
    Traceback (most recent call last):
    ...
    w2s_lens.artifacts.ArtifactMismatch: vectors were made for model='a', but model='b' was given
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

__all__ = ["ArtifactMismatch", "library_versions", "check_metadata", "write_json", "read_json"]

FORMAT_VERSION = 1


class ArtifactMismatch(ValueError):
    """An artifact was loaded for a different model, hook, layer set or format."""


def library_versions() -> dict[str, str]:
    """Versions of w2s-lens and the libraries whose numerics matter."""
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for dist in ("w2s-lens", "torch", "transformer-lens", "transformers", "numpy",
                 "scikit-learn"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def check_metadata(meta: dict[str, Any], expect: dict[str, Any], what: str = "artifact") -> None:
    """Raise :class:`ArtifactMismatch` when ``meta`` disagrees with any ``expect`` key.

    Keys whose expected value is ``None`` are not checked.
    """
    for key, want in expect.items():
        if want is None:
            continue
        have = meta.get(key)
        if isinstance(want, tuple):
            want = list(want)
        if have != want:
            raise ArtifactMismatch(f"{what} were made for {key}={have!r}, but {key}={want!r} "
                                   f"was given")


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically (write then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
    return path


def read_json(path: str | os.PathLike) -> Any:
    """Read JSON, with a clear error if the file is missing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    return json.loads(path.read_text())
