"""Every file w2s-lens writes or reads in a run directory goes through this module.

One format version (:data:`FORMAT_VERSION`) for every artifact, one error type for every
mismatch (:class:`ArtifactMismatch`, subclasses allowed), and atomic writes (write to a
temporary file in the same folder, then rename), so an interrupted or refused run never
leaves a half-written file behind.

The primitives:

* JSON: :func:`write_json` / :func:`read_json`; JSON lines: :func:`write_jsonl` /
  :func:`read_jsonl`; text: :func:`write_text`;
* tensors: :func:`save_tensors` / :func:`load_tensors` (safetensors, torch or numpy);
* digests: :func:`sha256_of`;
* metadata: :func:`stamp` adds the format version and library versions; :func:`check_format`
  refuses another format with a message saying how to redo the artifact;
  :func:`check_metadata` refuses an artifact made for another model, hook, layer set, ...

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
import tempfile
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from w2s_lens.assets import sha256_of

__all__ = [
    "FORMAT_VERSION",
    "ArtifactMismatch",
    "atomic_path",
    "check_format",
    "check_metadata",
    "library_versions",
    "load_tensors",
    "read_json",
    "read_jsonl",
    "save_tensors",
    "sha256_of",
    "stamp",
    "write_json",
    "write_jsonl",
    "write_text",
]

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
    w2s_lens.artifacts.ArtifactMismatch: x.json has format_version 1; ... (rerun it)
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


# --------------------------------------------------------------------------- atomic writes


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    The parent folder is created. On an exception the temporary file is removed and
    ``path`` is untouched.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "a.txt") as tmp:
    ...     _ = tmp.write_text("hi")
    >>> (d / "a.txt").read_text()
    'hi'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default)
                      + "\n")


def _json_default(obj: Any) -> Any:
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def read_json(path: str | os.PathLike) -> Any:
    """Read JSON, with a clear error naming the file if it is missing or broken."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ArtifactMismatch(f"{path} is not valid JSON ({exc.msg}, line {exc.lineno})") \
            from exc


def write_jsonl(path: str | os.PathLike, records: Iterable[Mapping[str, Any]]) -> Path:
    """Write one JSON object per line, atomically."""
    lines = [json.dumps(dict(r), default=_json_default) for r in records]
    return write_text(path, "".join(line + "\n" for line in lines))


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a JSON-lines file (blank lines skipped); errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ArtifactMismatch(f"{path}, line {lineno}: invalid JSON ({exc.msg})") \
                    from exc
    return out


# --------------------------------------------------------------------------- tensors


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
    return Path(path)


def load_tensors(path: str | os.PathLike, framework: str = "pt") -> dict[str, Any]:
    """Load a safetensors file as torch tensors (``"pt"``) or numpy arrays (``"np"``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        if framework == "np":
            from safetensors.numpy import load_file

            return load_file(str(path))
        from safetensors.torch import load_file as pt_load_file

        return pt_load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types
        raise ArtifactMismatch(f"{path} is not a readable safetensors file ({exc})") from exc
