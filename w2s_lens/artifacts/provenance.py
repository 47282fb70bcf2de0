"""What an artifact says about where it came from, and the refusal of a mismatch.

Example:
    >>> check_metadata({"model": "a", "hook": "resid_pre"}, {"model": "a"}, what="vectors")
    >>> check_metadata({"model": "a"}, {"model": "b"}, what="vectors")
    Traceback (most recent call last):
    ...
    w2s_lens.artifacts.provenance.ArtifactMismatch: vectors were made for model='a', but ...
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from typing import Any

__all__ = ["FORMAT_VERSION", "ArtifactMismatch", "check_format", "check_metadata",
           "library_versions", "stamp"]

#: The one on-disk format version of every artifact (vectors, sweeps, routers, bundles, L2S
#: models, run directories). Version 1 was written by w2s-lens 0.1 (three separate schemes).
FORMAT_VERSION = 2


class ArtifactMismatch(ValueError):
    """An artifact was loaded for another model, hook, layer set, readout or format."""


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


def stamp(meta: Mapping[str, Any]) -> dict[str, Any]:
    """``meta`` plus ``format_version`` and ``versions`` (kept if already present).

    >>> stamp({"model": "m"})["format_version"] == FORMAT_VERSION
    True
    """
    out = dict(meta)
    out["format_version"] = FORMAT_VERSION
    out.setdefault("versions", library_versions())
    return out


def check_format(meta: Mapping[str, Any], path: str | os.PathLike, redo: str = "") -> None:
    """Refuse an artifact whose ``format_version`` is not :data:`FORMAT_VERSION`.

    Args:
        meta: the artifact's metadata.
        path: the file it came from (named in the message).
        redo: how to make the artifact again (e.g. ``"rerun `w2s-lens sweep`"``).

    >>> check_format({"format_version": FORMAT_VERSION}, "x.json")
    >>> check_format({"format_version": 1}, "x.json", "rerun it")
    Traceback (most recent call last):
    ...
    w2s_lens.artifacts.provenance.ArtifactMismatch: x.json has format_version 1; ... (rerun it)
    """
    have = meta.get("format_version")
    if have == FORMAT_VERSION:
        return
    hint = f" ({redo})" if redo else ""
    raise ArtifactMismatch(f"{path} has format_version {have!r}; this w2s-lens reads "
                           f"{FORMAT_VERSION}{hint}")


def _norm(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_norm(v) for v in value]
    if isinstance(value, list):
        return [_norm(v) for v in value]
    return value


def check_metadata(meta: Mapping[str, Any], expect: Mapping[str, Any],
                   what: str = "artifact") -> None:
    """Raise :class:`ArtifactMismatch` when ``meta`` disagrees with any ``expect`` key.

    Keys whose expected value is ``None`` are not checked; tuples compare equal to lists.
    """
    for key, want in expect.items():
        if want is None:
            continue
        have, want = _norm(meta.get(key)), _norm(want)
        if have != want:
            raise ArtifactMismatch(f"{what} were made for {key}={have!r}, but {key}={want!r} "
                                   f"was given")
