"""Every dataset error names the file and the line or index: paths that are not files, files
that are not UTF-8, items too long to score, items whose two answers are the same."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from w2s_lens.data.datasets import load_dataset, load_prompts
from w2s_lens.data.items import MAX_CHARS_ENV, DatasetError, DatasetWarning


def _ab(question: str, match: str = " (A)") -> dict:
    return {"question": question, "answer_matching_behavior": match,
            "answer_not_matching_behavior": " (B)" if match == " (A)" else " (A)"}


def _items(n: int) -> list[dict]:
    return [_ab(f"Question {i}?\n\nChoices:\n (A) yes {i}\n (B) no {i}", " (A)" if i % 2 else
                " (B)") for i in range(n)]


def _jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_a_directory_is_not_a_dataset(tmp_path, monkeypatch):
    folder = tmp_path / "mwe"
    folder.mkdir()
    for loader, kind in ((load_dataset, "dataset"), (load_prompts, "prompt")):
        with pytest.raises(DatasetError, match=f"{folder}: a directory, not a {kind} file"):
            loader(str(folder))
    (tmp_path / "data.jsonl").mkdir()
    with pytest.raises(DatasetError, match="data.jsonl: a directory, not a dataset file"):
        load_dataset(tmp_path / "data.jsonl")
    monkeypatch.chdir(tmp_path)  # a bare name is still a dataset name; the error says more
    monkeypatch.delenv("W2S_DATA_DIR", raising=False)
    with pytest.raises(DatasetError, match="unknown dataset 'mwe'.*mwe is a directory: pass it "
                                           "as the data dir"):
        load_dataset("mwe", download=False)


def test_symbolic_link_loops_and_dangling_links_are_named(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.symlink_to(b)
    b.symlink_to(a)
    for loader in (load_dataset, load_prompts):
        with pytest.raises(DatasetError, match=f"{a}: a loop of symbolic links"):
            loader(a)
    gone = tmp_path / "gone"
    gone.symlink_to(tmp_path / "missing.jsonl")
    with pytest.raises(DatasetError, match=f"{gone}: a symbolic link to .*missing.jsonl, which "
                                           "does not exist"):
        load_dataset(str(gone))
    with pytest.raises(DatasetError, match="no such dataset file: .*nothing.jsonl"):
        load_dataset(tmp_path / "nothing.jsonl")


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_a_file_that_is_not_utf8_gives_the_line_not_a_byte_offset(tmp_path, bom):
    good = json.dumps(_items(1)[0]).encode()
    bad = json.dumps(_ab("Caf\u00e9?\n (A) a\n (B) b")).encode().replace(b"\\u00e9", b"\xe9")
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(bom + good + b"\n" + good.replace(b"0", b"1") + b"\n" + bad + b"\n")
    for loader in (load_dataset, load_prompts):
        with pytest.raises(DatasetError, match=f"{path}, line 3, column 18: not UTF-8 text "
                                               r"\(byte b'\\xe9'"):
            loader(path)


def test_one_long_item_is_refused_before_any_tokenising(tmp_path, monkeypatch):
    monkeypatch.delenv(MAX_CHARS_ENV, raising=False)
    records = _items(7)
    records.insert(3, _ab("word " * 1_000_000 + "\n\nChoices:\n (A) yes\n (B) no"))
    path = _jsonl(tmp_path / "big.jsonl", records)
    t0 = time.perf_counter()
    with pytest.raises(DatasetError, match=f"{path}, line 4: the item is 5,000,027 characters "
                                           f"long, over the 10,000-character cap .*"
                                           f"{MAX_CHARS_ENV}"):
        load_dataset(path)
    assert time.perf_counter() - t0 < 10
    monkeypatch.setenv(MAX_CHARS_ENV, str(6_000_000))  # the cap is configurable
    assert len(load_dataset(path)) == 8
    monkeypatch.setenv(MAX_CHARS_ENV, "40")
    prompts = tmp_path / "open.json"
    prompts.write_text(json.dumps([{"question": "Short?"}, {"question": "Long " * 20}]))
    with pytest.raises(DatasetError, match=f"{prompts}, item open:1: the item is 99 characters"):
        load_prompts(prompts)


def test_items_whose_answers_are_the_same_are_skipped_or_refused(tmp_path):
    records = _items(3)
    records.insert(1, _ab("Pick.\n (A) _____\n (B) _____"))
    path = _jsonl(tmp_path / "tmpl.jsonl", records)
    with pytest.warns(DatasetWarning, match=f"{path}: skipped 1 item.*line 2\\)"):
        items = load_dataset(path)
    assert [it.id for it in items] == ["tmpl:0", "tmpl:2", "tmpl:3"]
    with pytest.raises(DatasetError, match=f"{path}, line 2: key 'question': options \\(A\\) and "
                                           "\\(B\\) are the same text \\('_____'\\)"):
        load_dataset(path, skip_empty=False)


def test_a_one_item_array_loads_and_names_its_file_in_ids(tmp_path):
    path = tmp_path / "one.json"
    path.write_text(json.dumps(_items(1)))
    assert [it.id for it in load_dataset(path)] == ["one:0"]
