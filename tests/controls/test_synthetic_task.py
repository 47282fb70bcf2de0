"""The synthetic task's prompts: families, balanced letters, letter swaps."""

from __future__ import annotations

import pytest

from w2s_lens.controls.synthetic import build_control
from w2s_lens.controls.synthetic_task import SyntheticTask
from w2s_lens.data.examples import SteeringExample


def test_examples_are_balanced_and_deterministic() -> None:
    c = build_control("positive")
    ex = c.make_examples(12, seed=3)
    assert ex == c.make_examples(12, seed=3)
    assert len({e.id for e in ex}) == 12
    assert not {e.id for e in ex} & {e.id for e in c.make_examples(12, seed=4)}
    for f in range(3):
        fam = [e for e in ex if e.group == f"family{f}"]
        assert sorted(e.matching_letter for e in fam) == ["A", "A", "B", "B"]
        assert all(c.family_of(e) == f for e in fam)
    for e in ex:  # the marker sits among the fillers, never on the steered (last) token
        assert e.text.startswith(("<bos> =A ", "<bos> =B ")) and e.text.endswith(" ?")
        assert e.tokens[-1] != c.family_token(c.family_of(e))
        assert e.text == c.to_text(e.tokens)
        assert {e.matching_token_id, e.non_matching_token_id} == set(c.answer_token_ids)
    assert len({e.tokens.index(c.family_token(c.family_of(e))) for e in ex}) > 2
    assert c.family_onehot(ex).sum(0).tolist() == [4.0, 4.0, 4.0]


def test_null_ids_follow_the_given_pool() -> None:
    c = build_control("null", n_families=64)
    ex = c.make_examples(20, seed=0, families=range(32, 64))
    fams = [c.family_of(e) for e in ex]
    assert all(32 <= f < 64 for f in fams) and len(set(fams)) == 20  # no repeats
    assert [e.matching_letter for e in ex[:4]] == ["A", "B", "A", "B"]
    with pytest.raises(ValueError):
        c.make_examples(2, families=[64])


def test_swap_flips_letter_and_round_trips() -> None:
    c = build_control("positive")
    e = c.make_examples(1, seed=0)[0]
    s = c.swap(e)
    assert s.id == e.id + "~swap" and s.matching_letter == "B"
    assert s.matching_token_id == e.non_matching_token_id
    assert s.tokens[2:] == e.tokens[2:] and s.tokens[1] != e.tokens[1]
    assert c.swap(s) == e
    both = c.make_examples(3, seed=0, both_orders=True)
    assert [x.id for x in both[:2]] == [e.id, e.id + "~swap"]


def test_family_tokens_are_range_checked_and_read_back() -> None:
    c = build_control("positive")
    assert [c.family_token(f) for f in range(3)] == [6, 7, 8]
    with pytest.raises(ValueError, match="family 3 out of range 0..2"):
        c.family_token(3)
    with pytest.raises(ValueError, match="family -1 out of range"):
        c.make_examples(2, families=[-1])
    with pytest.raises(ValueError, match="at least one family"):
        c.make_examples(2, families=[])
    bare = SteeringExample(id="no-marker", text="", tokens=(0, 3, 5),
                           matching_token_id=1, non_matching_token_id=2, matching_letter="A")
    with pytest.raises(ValueError, match="'no-marker' has 0 marker tokens, not 1"):
        c.family_of(bare)


def test_the_mixin_needs_its_host_to_give_the_family_count() -> None:
    with pytest.raises(NotImplementedError):
        SyntheticTask().family_token(0)
