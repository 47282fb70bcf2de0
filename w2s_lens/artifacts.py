"""Every file w2s-lens writes or reads in a run directory goes through this module.

One format version (:data:`FORMAT_VERSION`) for every artifact, one error type for every
mismatch (:class:`ArtifactMismatch`, subclasses allowed), and atomic writes (write to a
temporary file in the same folder, then rename), so an interrupted or refused run never
leaves a half-written file behind. Files are created with the process umask, as ``open`` would,
and safetensors headers are written with sorted metadata, so identical runs give byte-identical
files.

The primitives:

* JSON: :func:`write_json` / :func:`read_json`; JSON lines: :func:`write_jsonl` /
  :func:`read_jsonl`; text: :func:`write_text`;
* tensors: :func:`save_tensors` / :func:`load_tensors` (safetensors, torch or numpy);
* digests: :func:`sha256_of`; :func:`seal` records, in a JSON artifact, the SHA-256 of the
  files it describes and of its own content, and :func:`check_seal` refuses an artifact whose
  files or values changed since (one written before seals existed loads with an
  :class:`IntegrityWarning`);
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

import difflib
import hashlib
import json
import math
import os
import platform
import tempfile
import warnings
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from w2s_lens.assets import sha256_of

__all__ = ["FORMAT_VERSION", "INTEGRITY_KEY", "ArtifactMismatch", "IntegrityWarning",
           "atomic_path", "check_format", "check_metadata", "check_seal", "missing_file",
           "json_digest", "library_versions", "load_tensors", "read_json", "read_jsonl",
           "save_tensors", "seal", "sort_header_metadata", "sorted_header_bytes", "stamp",
           "write_json", "write_jsonl",
           "write_text"]

#: The one on-disk format version of every artifact (vectors, sweeps, routers, bundles, L2S
#: models, run directories). Version 1 was written by w2s-lens 0.1 (three separate schemes).
FORMAT_VERSION = 2


#: The field of a sealed JSON artifact that holds its digests (see :func:`seal`).
INTEGRITY_KEY = "integrity"


class ArtifactMismatch(ValueError):
    """An artifact was loaded for another model, hook, layer set, readout or format."""


class IntegrityWarning(UserWarning):
    """An artifact written before digests were recorded was loaded without an integrity
    check."""


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
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; `open` honours the umask
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process umask (read from /proc where possible: setting it is not thread-safe)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def finite_json(obj: Any, where: str = "") -> tuple[Any, list[str]]:
    """``obj`` with every NaN or infinite float replaced by None, and the paths of those
    replaced (``"config.multipliers[0]"``): NaN and infinity are not JSON.

    Example:
        >>> finite_json({"a": [1.0, float("nan")], "b": {"c": float("inf")}})
        ({'a': [1.0, None], 'b': {'c': None}}, ['a[1]', 'b.c'])
    """
    bad: list[str] = []

    def walk(x: Any, at: str) -> Any:
        if getattr(x, "shape", None) == () and hasattr(x, "item"):  # a numpy scalar
            x = x.item()
        if isinstance(x, float) and not math.isfinite(x):
            bad.append(at or "(the value)")
            return None
        if isinstance(x, Mapping):
            return {k: walk(v, f"{at}.{k}" if at else str(k)) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [walk(v, f"{at}[{i}]") for i, v in enumerate(x)]
        if type(x).__name__ == "ndarray":
            return walk(x.tolist(), at)
        return x

    return walk(obj, where), bad


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically; a NaN or infinite number is written as
    ``null`` with a warning naming its key (NaN and infinity are not JSON)."""
    clean, bad = finite_json(obj)
    if bad:
        warnings.warn(f"{path}: {', '.join(bad[:5])}{' …' if len(bad) > 5 else ''} not a finite "
                      "number; written as null", stacklevel=2)
    return write_text(path, json.dumps(clean, indent=2, sort_keys=False, default=_json_default,
                                       allow_nan=False) + "\n")


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


#: How deep, and over how many entries, :func:`missing_file` looks for the file elsewhere.
_LOOK_DEPTH, _LOOK_ENTRIES = 4, 5000


def _found_below(root: Path, name: str) -> list[Path]:
    """Files called ``name`` at most :data:`_LOOK_DEPTH` folders below ``root`` (bounded)."""
    found: list[Path] = []
    seen = 0
    level = [root]
    for _ in range(_LOOK_DEPTH + 1):
        deeper: list[Path] = []
        for folder in level:
            try:
                entries = sorted(folder.iterdir())
            except OSError:
                continue
            for entry in entries:
                seen += 1
                if seen > _LOOK_ENTRIES:
                    return found
                if entry.name.startswith(".") or entry.name == "chunks":
                    continue
                if entry.is_dir():
                    deeper.append(entry)
                elif entry.name == name:
                    found.append(entry)
        level = deeper
    return found


def missing_file(path: str | os.PathLike) -> FileNotFoundError:
    """The error for a file that does not exist, suggesting where it may be: the same name in
    a folder below ``path``'s folder or the nearest existing one at most two levels above it
    (e.g. a run directory inside the one given), or a similarly named file beside it.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> _ = write_json(root / "model" / "caa" / "w2s.json", {})
        >>> str(missing_file(root / "caa" / "w2s.json")).endswith("model/caa/w2s.json?")
        True
    """
    path = Path(path)
    anchor, climbed = path.parent, 0
    while not anchor.is_dir() and anchor != anchor.parent and climbed < 2:
        anchor, climbed = anchor.parent, climbed + 1
    # look below the folder given, or below an existing folder at most two levels above it,
    # but never through a whole working directory, home or filesystem root it climbed to
    broad = {Path.cwd(), Path.home(), Path(anchor.resolve().anchor)}
    hints: list[Path] = []
    if anchor.is_dir() and (climbed == 0 or anchor.resolve() not in broad):
        below = _found_below(anchor, path.name)
        below.sort(key=lambda p: -difflib.SequenceMatcher(None, str(p), str(path)).ratio())
        hints += below[:3]
    if path.parent.is_dir():
        try:
            names = [p.name for p in path.parent.iterdir() if p.is_file()]
        except OSError:
            names = []
        hints += [path.parent / n for n in difflib.get_close_matches(path.name, names, n=2,
                                                                    cutoff=0.6)]
    hints = [h for h in dict.fromkeys(hints) if h != path]
    if not hints:
        return FileNotFoundError(f"{path} does not exist")
    return FileNotFoundError(f"{path} does not exist; did you mean "
                             f"{' or '.join(str(h) for h in hints)}?")


def read_json(path: str | os.PathLike) -> Any:
    """Read JSON, with a clear error naming the file if it is missing (and where it may be,
    :func:`missing_file`) or broken."""
    path = Path(path)
    if not path.is_file():
        raise missing_file(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ArtifactMismatch(f"{path} is not valid JSON ({exc.msg}, line {exc.lineno})") \
            from exc


def write_jsonl(path: str | os.PathLike, records: Iterable[Mapping[str, Any]]) -> Path:
    """Write one JSON object per line, atomically."""
    lines = [json.dumps(finite_json(dict(r))[0], default=_json_default, allow_nan=False)
             for r in records]
    return write_text(path, "".join(line + "\n" for line in lines))


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a JSON-lines file (blank lines skipped); errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise missing_file(path)
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
    missing file's error suggests where it may be (:func:`missing_file`)."""
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


# --------------------------------------------------------------------------- seals


def json_digest(obj: Mapping[str, Any]) -> str:
    """SHA-256 of ``obj`` as canonical JSON (sorted keys), without ``integrity.content``.

    >>> json_digest({"a": 1, "b": [1.5]}) == json_digest({"b": [1.5], "a": 1})
    True
    """
    body = dict(obj)
    seal_ = body.get(INTEGRITY_KEY)
    if isinstance(seal_, Mapping):
        body[INTEGRITY_KEY] = {k: v for k, v in seal_.items() if k != "content"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def seal(meta: Mapping[str, Any], directory: str | os.PathLike,
         files: Iterable[str] = ()) -> dict[str, Any]:
    """``meta`` plus ``integrity``: the SHA-256 of each of ``files`` (paths relative to
    ``directory``, the folder the JSON is written into) and of the JSON's own content.

    Write the result with :func:`write_json` into ``directory``; :func:`check_seal` checks it.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "w.bin").write_bytes(b"w")
    >>> sealed = seal({"model": "m"}, d, ["w.bin"])
    >>> sorted(sealed["integrity"]), check_seal(sealed, d / "meta.json")
    (['content', 'files'], True)
    """
    out = json.loads(json.dumps(dict(meta), default=_json_default))  # as it will be read back
    out.pop(INTEGRITY_KEY, None)
    out[INTEGRITY_KEY] = {"files": {name: sha256_of(Path(directory) / name) for name in files}}
    out[INTEGRITY_KEY]["content"] = json_digest(out)
    return out


def check_seal(meta: Mapping[str, Any], path: str | os.PathLike, redo: str = "") -> bool:
    """Check a JSON artifact sealed by :func:`seal`, read from ``path``.

    Returns True when the content and every recorded file match their digests, False (with
    one :class:`IntegrityWarning`) for an artifact written before seals were recorded.

    Raises:
        ArtifactMismatch: the JSON was edited, or a file it records is missing or damaged; the
            message names the file and ends with ``redo``.

    >>> check_seal({"model": "m", "integrity": {"files": {}, "content": "0"}}, "m.json")
    Traceback (most recent call last):
    ...
    w2s_lens.artifacts.ArtifactMismatch: m.json was changed after it was written: ...
    """
    path = Path(path)
    hint = f"; {redo}" if redo else ""
    seal_ = meta.get(INTEGRITY_KEY)
    if seal_ is None:
        warnings.warn(f"{path} records no digests (written by an older w2s-lens), so it is "
                      f"loaded without an integrity check{hint}", IntegrityWarning,
                      stacklevel=3)
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
