"""Tests for w2s_lens.data.items: A/B items, the Choices block, one record's parsing."""

from __future__ import annotations

import pytest

from w2s_lens.data.items import (
    DEFAULT_MAX_ITEM_CHARS,
    MAX_CHARS_ENV,
    ABItem,
    DatasetError,
    SameOptionsError,
    TooManyOptionsError,
    answer_label,
    check_item_size,
    count_options,
    max_item_chars,
    parse_record,
    split_choices,
)


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


def test_parse_record_answer_forms():
    q = "Q\n\nChoices:\n (A) x\n (B) y"
    for match, other in (("(B)", "(A)"), (" (B)", " (A)"), ("B", "A"), (["(B)"], ["(A)"])):
        rec = {"question": q, "answer_matching_behavior": match,
               "answer_not_matching_behavior": other}
        assert parse_record(rec, "d", "d:0").matching == "B"
    persona = {"question": "Is it so?", "answer_matching_behavior": " No"}
    assert parse_record(persona, "p", "p:0") == ABItem("p:0", "p", "Is it so?", ("Yes", "No"),
                                                       "B")


def test_answer_label_forms():
    assert [answer_label(v) for v in (" (A)", "(B)", "B", ["(A)"], " Yes", "no.", " NO ")] == \
        ["A", "B", "B", "A", "Yes", "No", "No"]
    for bad in ("C", "", "(A) Yes", ["A", "B"], None, 1):
        assert answer_label(bad) is None


def test_count_options():
    assert count_options("Q\n\nChoices:\n (A) a\n (B) b") == 2
    assert count_options("Q\n (A) a\n (B) b\n (C) c\n (D) d") == 4
    assert count_options("(C) earlier\nQ\n (A) a\n (B) b") == 2  # from the last (A) on
    assert count_options("Is this (A) statement true?") == 0


@pytest.mark.parametrize("match,other", [("(A)", "(B)"), ("(C)", "(A)"), (" (B)", " (C)")])
def test_three_choice_records_raise_their_own_error(match, other):
    rec = {"question": "Q?\n\nChoices:\n (A) a\n (B) b\n (C) c",
           "answer_matching_behavior": match, "answer_not_matching_behavior": other}
    with pytest.raises(TooManyOptionsError, match="'question': 3 options \\(\\(A\\) to \\(C\\)\\)"):
        parse_record(rec, "d", "d:0")
    yes_no = {"question": "Is (A) fine?\n (A) x\n (B) y\n (C) z",
              "answer_matching_behavior": " Yes", "answer_not_matching_behavior": " No"}
    assert parse_record(yes_no, "p", "p:0").options == ("Yes", "No")  # persona: no choices


def test_records_listing_several_answers_are_too_many_options():
    """A four-choice item whose answer keys list two letters each is skipped like any other
    item of three or more choices, not refused as malformed."""
    rec = {"question": "Q?\n (A) a\n (B) b\n (C) c\n (D) d",
           "answer_matching_behavior": ["(A)", "(C)"],
           "answer_not_matching_behavior": ["(B)", "(D)"]}
    with pytest.raises(TooManyOptionsError, match="4 options"):
        parse_record(rec, "d", "d:0")


def test_items_whose_two_answers_are_the_same_are_refused():
    with pytest.raises(ValueError, match="'d:1': options \\(A\\) and \\(B\\) are the same text"):
        ABItem("d:1", "d", "Q?", ("Sure", " sure "), "A")
    rec = {"question": "Q?\n (A) {answer}\n (B) {answer}", "answer_matching_behavior": "(A)",
           "answer_not_matching_behavior": "(B)"}
    with pytest.raises(SameOptionsError, match="'question': options .* same text \\('\\{answer"):
        parse_record(rec, "d", "d:0")


def test_items_longer_than_the_cap_are_refused(monkeypatch):
    monkeypatch.delenv(MAX_CHARS_ENV, raising=False)
    assert max_item_chars() == DEFAULT_MAX_ITEM_CHARS
    huge = {"question": "word " * 1_000_000 + "\n (A) a\n (B) b",
            "answer_matching_behavior": "(A)", "answer_not_matching_behavior": "(B)"}
    with pytest.raises(ValueError, match="5,000,014 characters long, over the 10,000-character"):
        parse_record(huge, "d", "d:0")
    monkeypatch.setenv(MAX_CHARS_ENV, "20")
    check_item_size("x" * 20)
    with pytest.raises(ValueError, match=f"over the 20-character cap .*\\${MAX_CHARS_ENV}"):
        check_item_size("x" * 21)
    for bad in ("0", "-5", "many"):
        monkeypatch.setenv(MAX_CHARS_ENV, bad)
        with pytest.raises(DatasetError, match="expected a positive character count"):
            max_item_chars()
