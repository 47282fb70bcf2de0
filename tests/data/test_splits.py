"""Tests for w2s_lens.data.splits: deterministic, stratified, duplicate-free train/test splits."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from w2s_lens.data.items import ABItem, DatasetWarning
from w2s_lens.data.splits import balanced, content_key, deduplicate, train_test_split


def _items(n: int) -> list[ABItem]:
    return [ABItem(f"d:{i}", "d", f"Q{i}", ("x", "y"), "AB"[i % 2]) for i in range(n)]


def test_split_deterministic_disjoint_covering():
    items = _items(21)
    tr, te = train_test_split(items, 0.5, seed=3)
    assert (tr, te) == train_test_split(items, 0.5, seed=3)
    assert len(tr) == 10 and len(te) == 11
    assert {content_key(it) for it in tr}.isdisjoint({content_key(it) for it in te})
    assert sorted(it.id for it in tr + te) == sorted(it.id for it in items)
    assert train_test_split(items, 0.5, seed=4) != (tr, te)
    assert train_test_split(items, 1.0)[1] == [] and train_test_split(items, 0.0)[0] == []
    assert train_test_split([], 0.5) == ([], [])
    with pytest.raises(ValueError):
        train_test_split(items, 1.5)


def _with_duplicates(n_unique: int = 30, copies: int = 4) -> list[ABItem]:
    """Unique questions, each repeated with whitespace/case changes and in swapped order."""
    out: list[ABItem] = []
    for c in range(copies):
        for u in range(n_unique):
            base = ABItem(f"d:{c * n_unique + u}", "d", f"Would you wait for reward {u}?",
                          (f"Now {u}", f"Later {u}"), "AB"[u % 2])
            if c == 1:
                base = ABItem(base.id, "d", f"would  you WAIT for reward {u}? ",
                              base.options, base.matching)
            elif c == 2:
                base = ABItem(base.id, "d", base.stem, (base.options[1], base.options[0]),
                              base.non_matching)
            out.append(base)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_has_no_duplicate_question_across_parts(seed):
    items = _with_duplicates()
    with pytest.warns(DatasetWarning, match=r"dropped 90 duplicate item\(s\) in 30 group"):
        train, test = train_test_split(items, 0.5, seed=seed)
    train_keys = {content_key(it) for it in train}
    assert not [it.id for it in test if content_key(it) in train_keys]
    assert len(train) == len(test) == 15
    assert len({content_key(it) for it in train + test}) == 30


def _letters(items: list[ABItem]) -> int:
    return sum(it.matching == "A" for it in items)


@pytest.mark.parametrize("fraction", [0.5, 0.3, 0.8])
@pytest.mark.parametrize("seed", range(4))
def test_split_is_stratified_by_letter(fraction, seed):
    items = [ABItem(f"d:{i}", "d", f"Q{i}", ("x", "y"), "A" if i % 3 else "B")
             for i in range(37)]
    n_a = _letters(items)
    train, test = train_test_split(items, fraction, seed=seed)
    assert len(train) == round(fraction * 37)
    assert abs(_letters(train) - fraction * n_a) < 1
    assert abs(_letters(test) - (1 - fraction) * n_a) < 1
    # the parts are interleaved, so truncating them (train[:n]) keeps the balance too
    for part in (train, test):
        share = _letters(part) / len(part)
        assert all(abs(_letters(part[:k]) - k * share) <= 1 for k in range(1, len(part) + 1))


def test_split_strata_include_yes_no_text_and_dataset():
    items = []
    for i in range(40):
        opts = ("Yes", "No") if i % 4 < 2 else ("No", "Yes")
        items.append(ABItem(f"{'pq'[i % 5 == 0]}:{i}", "pq"[i % 5 == 0], f"S{i}", opts,
                            "AB"[i % 2]))
    train, test = train_test_split(items, 0.5, seed=0)
    for key in ({"A", "Yes"}, {"A", "No"}, {"B", "Yes"}, {"B", "No"}):
        n = [sum({it.matching, it.matching_option} == key for it in part)
             for part in (train, test)]
        assert abs(n[0] - n[1]) <= 1, (key, n)
    assert abs(sum(it.dataset == "q" for it in train) - sum(it.dataset == "q" for it in test)) <= 1


def test_split_without_dedupe_or_strata_is_the_plain_permutation():
    items = _with_duplicates(5, 3)
    order = np.random.default_rng(7).permutation(len(items))
    expect = [items[i] for i in order[:9]], [items[i] for i in order[9:]]
    assert train_test_split(items, 0.6, seed=7, dedupe=False, stratify=False) == expect


def test_deduplicate_keeps_first_and_drops_conflicts():
    a = ABItem("d:0", "d", "Stop  now?", ("Yes", "No"), "A")
    same = ABItem("d:1", "d", "stop now?", ("no", "YES"), "B")
    other = ABItem("d:2", "d", "Go on?", ("x", "y"), "A")
    clash1 = ABItem("d:3", "d", "Pick?", ("red", "blue"), "A")
    clash2 = ABItem("d:4", "d", "pick?", ("blue", "red"), "A")
    with pytest.warns(DatasetWarning) as caught:
        out = deduplicate([a, same, clash1, other, clash2])
    assert out == [a, other]
    msg = str(caught[0].message)
    assert "dropped 1 duplicate item(s) in 1 group(s)" in msg
    assert "dropped all 2 copies of 1 question(s)" in msg
    assert content_key(a) == content_key(same) != content_key(other)
    assert deduplicate(_items(5), warn=True) == _items(5)


def test_balanced_has_both_orders():
    items = _items(3)
    out = balanced(items)
    assert [it.id for it in out] == ["d:0", "d:0~swap", "d:1", "d:1~swap", "d:2", "d:2~swap"]
    assert Counter(it.matching for it in out) == Counter(A=3, B=3)
    pairs = zip(out[::2], out[1::2], strict=True)
    assert all(a.matching_option == b.matching_option for a, b in pairs)
