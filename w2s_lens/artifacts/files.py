"""Atomic writes, and the error for a file that is not where it was looked for."""

from __future__ import annotations

import difflib
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "missing_file", "write_text"]


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
        >>> _ = write_text(root / "model" / "caa" / "w2s.json", "{}")
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
