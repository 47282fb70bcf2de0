"""One writer per run directory: an advisory lock held while a run writes there.

Two processes resuming the same run directory at once would interleave their writes (the sweep
manifest, ``run.json``, the chunk files). :func:`hold` takes an exclusive, non-blocking
``flock`` on the directory itself (nothing is written into it, so an empty directory stays
empty), and a second process is refused at once with :class:`RunDirBusy`, naming the
directory. Inside one process the hold is re-entrant: the evaluation pipeline may take it again
below a job that already holds it. The operating system drops the lock when the process ends,
however it ends, so a killed run never leaves a stale lock behind.

Where ``fcntl`` is missing (Windows) :func:`hold` does nothing and says so once in the log.

Example:
    >>> with hold("runs/corrigible"):  # doctest: +SKIP
    ...     evaluate_examples(model, examples, config, "runs/corrigible")
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from w2s_lens.artifacts.provenance import ArtifactMismatch

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["RunDirBusy", "hold", "is_held"]

log = logging.getLogger(__name__)

#: resolved directory -> [file descriptor, depth] of the holds this process has open
_HELD: dict[str, list[int]] = {}
_GUARD = threading.Lock()
_warned = False


class RunDirBusy(ArtifactMismatch):
    """Another process is writing to the run directory."""


def is_held(path: str | os.PathLike) -> bool:
    """Whether this process holds ``path`` (see :func:`hold`).

    Example:
        >>> is_held("runs/never-used")
        False
    """
    return str(Path(path).resolve()) in _HELD


@contextmanager
def hold(path: str | os.PathLike) -> Iterator[Path]:
    """Hold the run directory ``path`` (created if missing) for this process while the block
    runs; yields its path.

    Raises:
        RunDirBusy: another process holds it (the message names the directory).
        ArtifactMismatch: ``path`` is a file.

    Example:
        >>> with hold(tmp / "run") as d:  # doctest: +SKIP
        ...     (d / "run.json").write_text("{}")
    """
    global _warned
    d = Path(path)
    if d.exists() and not d.is_dir():
        raise ArtifactMismatch(f"--out {d} is an existing file, not a directory")
    d.mkdir(parents=True, exist_ok=True)
    key = str(d.resolve())
    if fcntl is None:  # pragma: no cover - Windows
        if not _warned:
            log.warning("no fcntl on this system: run directories are not locked; do not "
                        "run two processes on one --out directory")
            _warned = True
        yield d
        return
    with _GUARD:
        entry = _HELD.get(key)
        if entry is None:
            fd = os.open(key, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise RunDirBusy(f"{d} is in use by another w2s-lens process; wait for it to "
                                 "finish (a rerun then resumes), or use another --out "
                                 "directory") from None
            entry = _HELD[key] = [fd, 0]
        entry[1] += 1
    try:
        yield d
    finally:
        with _GUARD:
            entry[1] -= 1
            if entry[1] == 0:
                del _HELD[key]
                os.close(entry[0])  # closing the descriptor drops the flock
