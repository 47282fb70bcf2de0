"""What is wrong with a dataset path (w2s_lens.data.paths), asked of the functions directly: a
file argument told from a dataset name, the reason a path is not a readable file, and the line
and column of a byte that is not UTF-8 (the loaders' use of them is in test_dataset_errors.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from w2s_lens.data.items import DatasetError
from w2s_lens.data.paths import decode_error, is_path, not_a_file


def _decode_failure(path: Path, data: bytes, encoding: str = "utf-8-sig") -> DatasetError:
    """The error a reader raises for ``data`` in ``path``: a DatasetError caused by the
    UnicodeDecodeError of reading the whole file, as :mod:`w2s_lens.data.formats` reads it."""
    path.write_bytes(data)
    try:
        path.read_text(encoding=encoding)
    except UnicodeDecodeError as cause:
        err = DatasetError("not UTF-8")
        err.__cause__ = cause
        return err
    raise AssertionError(f"{data!r} decoded")


# --------------------------------------------------------------------------- is_path


def test_a_json_suffix_means_a_file_even_when_it_does_not_exist(tmp_path: Path) -> None:
    for name in ("x.jsonl", "x.json", "sub/dir/x.jsonl"):
        assert is_path(name, tmp_path / name), name
    assert not is_path("x.csv", tmp_path / "x.csv")  # nothing there, no dataset suffix


def test_a_bare_name_is_a_dataset_unless_something_but_a_folder_is_there(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert not is_path("openness", Path("openness"))  # nothing on disk: a dataset name
    Path("mwe").mkdir()
    assert not is_path("mwe", Path("mwe"))  # a folder in the working directory stays a name
    Path("notes").write_text("x")
    assert is_path("notes", Path("notes"))  # a file, whatever its suffix
    Path("gone").symlink_to(tmp_path / "missing")
    assert is_path("gone", Path("gone"))  # a dangling link is on disk: a path (refused later)


def test_a_folder_named_with_a_separator_is_a_path(tmp_path: Path) -> None:
    folder = tmp_path / "mwe"
    folder.mkdir()
    assert is_path(str(folder), folder)
    assert is_path(f".{os.sep}mwe", folder)
    assert not is_path(str(tmp_path / "absent"), tmp_path / "absent")  # nothing there


# --------------------------------------------------------------------------- not_a_file


def test_each_reason_a_path_is_not_a_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.jsonl"
    assert str(not_a_file(missing)) == f"no such dataset file: {missing}"
    folder = tmp_path / "d"
    folder.mkdir()
    msg = str(not_a_file(folder))
    assert msg.startswith(f"{folder}: a directory, not a dataset file; pass a .jsonl or .json")
    assert "as the data dir and a dataset name" in msg
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.symlink_to(b)
    b.symlink_to(a)
    assert str(not_a_file(a)) == f"{a}: a loop of symbolic links, not a dataset file"
    dangling = tmp_path / "link.jsonl"
    dangling.symlink_to(missing)
    assert str(not_a_file(dangling)) == (f"{dangling}: a symbolic link to {missing}, which does "
                                         "not exist")


def test_the_kind_of_file_is_named_and_the_result_is_returned_not_raised(tmp_path: Path) -> None:
    err = not_a_file(tmp_path / "p.json", "prompt")
    assert isinstance(err, DatasetError)
    assert str(err) == f"no such prompt file: {tmp_path / 'p.json'}"
    assert str(not_a_file(tmp_path, "prompt")).startswith(f"{tmp_path}: a directory, not a "
                                                          "prompt file")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need POSIX")
def test_something_that_is_neither_a_file_nor_a_folder(tmp_path: Path) -> None:
    pipe = tmp_path / "pipe.jsonl"
    os.mkfifo(pipe)
    assert str(not_a_file(pipe)) == f"{pipe}: not a regular file"


# --------------------------------------------------------------------------- decode_error


def test_an_error_not_caused_by_decoding_comes_back_unchanged(tmp_path: Path) -> None:
    plain = DatasetError("bad record")
    assert decode_error(tmp_path / "never-read.jsonl", plain) is plain
    other = DatasetError("bad record")
    other.__cause__ = ValueError("x")
    assert decode_error(tmp_path / "never-read.jsonl", other) is other


@pytest.mark.parametrize(("data", "line", "column", "byte", "reason"), [
    (b"\xffabc\n", 1, 1, r"b'\xff'", "invalid start byte"),
    (b'{"a": 1}\n{"b": "caf\xe9"}\n', 2, 11, r"b'\xe9'", "invalid continuation byte"),
    (b"one\ntwo\nthree\n\n  \xc3(\n", 5, 3, r"b'\xc3'", "invalid continuation byte"),
    (b"a\nb\n\xe2\x82", 3, 1, r"b'\xe2'", "unexpected end of data"),
])
def test_the_first_bad_byte_is_given_by_line_and_column(tmp_path: Path, data: bytes, line: int,
                                                        column: int, byte: str,
                                                        reason: str) -> None:
    path = tmp_path / "d.jsonl"
    err = decode_error(path, _decode_failure(path, data))
    assert isinstance(err, DatasetError)
    assert str(err) == (f"{path}, line {line}, column {column}: not UTF-8 text (byte {byte}: "
                        f"{reason}); save the file as UTF-8")


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig"])
def test_a_byte_order_mark_does_not_shift_the_line(tmp_path: Path, encoding: str) -> None:
    """The BOM is stripped by ``utf-8-sig`` before decoding: the position is still found in
    the file's bytes, whichever of the two codecs the reader used."""
    path = tmp_path / "bom.jsonl"
    data = b"\xef\xbb\xbf" + b'{"a": 1}\n{"b": 2}\n  \xff\n'
    assert str(decode_error(path, _decode_failure(path, data, encoding))).startswith(
        f"{path}, line 3, column 3: not UTF-8 text (byte b'\\xff'")


def test_a_byte_order_mark_is_not_a_column_on_the_first_line(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    for encoding in ("utf-8", "utf-8-sig"):
        err = decode_error(path, _decode_failure(path, b"\xef\xbb\xbfab\xff\n", encoding))
        assert str(err).startswith(f"{path}, line 1, column 3: not UTF-8 text")


def test_the_column_counts_characters_not_bytes(tmp_path: Path) -> None:
    """An editor puts the bad byte after "café" (4 characters, 5 bytes) in column 5."""
    path = tmp_path / "d.jsonl"
    err = decode_error(path, _decode_failure(path, "café".encode() + b"\xff\n"))
    assert str(err).startswith(f"{path}, line 1, column 5: not UTF-8 text")
