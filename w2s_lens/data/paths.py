"""What is wrong with a dataset path, said before or instead of a bare ``OSError``.

:func:`is_path` tells a file argument from a dataset name, :func:`not_a_file` names why a path
cannot be read as a file (missing, a directory, a loop of symbolic links, a dangling link), and
:func:`decode_error` turns "not UTF-8 at byte N" into the line and column of the bad byte.

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> is_path(str(folder), folder), str(not_a_file(folder)).split(";")[0] == f"{folder}: a "\\
    ...     "directory, not a dataset file"
    (True, True)
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from w2s_lens.data.items import DatasetError

__all__ = ["decode_error", "is_path", "not_a_file"]


def is_path(text: str, path: Path) -> bool:
    """Whether the argument ``text`` (``path`` once expanded) means a file, not a dataset name:
    a ``.jsonl``/``.json`` name, a file, or anything on disk that is not a bare directory name
    (a bare name that is also a folder in the working directory stays a dataset name).

    Example:
        >>> is_path("x.jsonl", Path("x.jsonl")), is_path("openness", Path("openness"))
        (True, False)
    """
    return text.endswith((".jsonl", ".json")) or path.is_file() or (
        os.path.lexists(path) and (os.sep in text or not path.is_dir()))


def not_a_file(path: Path, kind: str = "dataset") -> DatasetError:
    """Why ``path`` cannot be read as a ``kind`` file: missing, a directory, a loop of symbolic
    links, a link to nothing, or not a regular file.

    Example:
        >>> str(not_a_file(Path("/nonexistent/x.jsonl")))
        'no such dataset file: /nonexistent/x.jsonl'
    """
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return DatasetError(f"{path}: a loop of symbolic links, not a {kind} file")
        if path.is_symlink():
            return DatasetError(f"{path}: a symbolic link to {os.readlink(path)}, which does "
                                "not exist")
        return DatasetError(f"no such {kind} file: {path}")
    if path.is_dir():
        return DatasetError(f"{path}: a directory, not a {kind} file; pass a .jsonl or .json "
                            "file in it, or the directory as the data dir and a dataset name")
    return DatasetError(f"{path}: not a regular file")


def decode_error(path: Path, exc: DatasetError) -> DatasetError:
    """``exc`` itself, or, when it was raised for a file that is not UTF-8 (its cause a
    :class:`UnicodeDecodeError`), an error giving the line and column of the first bad byte.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "d.jsonl"
        >>> _ = p.write_bytes(b'{"question": "ok"}\\n{"question": "caf\\xe9"}\\n')
        >>> try:
        ...     p.read_text(encoding="utf-8")
        ... except UnicodeDecodeError as cause:
        ...     err = DatasetError("not UTF-8")
        ...     err.__cause__ = cause
        >>> str(decode_error(p, err)).split(": not")[0] == f"{p}, line 2, column 18"
        True
    """
    cause = exc.__cause__
    if not isinstance(cause, UnicodeDecodeError):
        return exc
    data = path.read_bytes()
    start = cause.start + len(data) - len(cause.object)  # utf-8-sig: the BOM is not counted
    line = data.count(b"\n", 0, start) + 1
    line_start = data.rfind(b"\n", 0, start) + 1
    if line == 1 and data.startswith(b"\xef\xbb\xbf"):
        line_start = 3  # the byte-order mark is not a column
    # the column in characters, as an editor shows it, not in bytes
    column = len(data[line_start:start].decode("utf-8", errors="replace")) + 1
    return DatasetError(f"{path}, line {line}, column {column}: not UTF-8 text (byte "
                        f"{data[start:start + 1]!r}: {cause.reason}); save the file as UTF-8")
