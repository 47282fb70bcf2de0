"""Tests for w2s_lens.data.letters: the answer opening and the per-prompt letter check."""

from __future__ import annotations

import pytest

from w2s_lens.data.chat import PromptError
from w2s_lens.data.letters import ANSWER_OPENINGS, find_opening, letter_check, verified_tokens


def enc(s: str) -> list[int]:
    return [ord(c) for c in s]


def dec(ids: list[int]) -> str:
    return "".join(chr(i) for i in ids)


def merged(s: str) -> list[int]:
    """Like Qwen2.5: "(A" and "(B" are one token each (ids 1000, 1001)."""
    out, i = [], 0
    while i < len(s):
        if s[i : i + 2] in ("(A", "(B"):
            out.append(1000 + "AB".index(s[i + 1]))
            i += 2
        else:
            out.append(ord(s[i]))
            i += 1
    return out


def merged_dec(ids: list[int]) -> str:
    return "".join({1000: "(A", 1001: "(B"}.get(i, chr(i)) for i in ids)


def test_split_letters_open_with_a_parenthesis():
    assert find_opening(enc, dec, "Q:") == ("(", "(X)", {"A": 65, "B": 66})


def test_merged_letters_open_with_nothing():
    assert find_opening(merged, merged_dec, "Q:") == ("", "(X)", {"A": 1000, "B": 1001})
    assert ANSWER_OPENINGS[1] == ("", "(X)")


def test_letter_check_gives_reasons():
    assert letter_check(lambda s: [len(s)], "Q:", "(", "(X)").startswith(
        "tokenize(prompt + '(A)') does not extend")
    same = letter_check(lambda s: enc(s.replace("B", "A")), "Q:", "(", "(X)")
    assert same == "the next token is the same for (A) and (B)"


def test_no_opening_fails_clearly():
    with pytest.raises(PromptError, match="not single distinct next tokens.*opening '\\('"):
        find_opening(lambda s: enc(s.replace("B", "A")), dec, "Q:")


def test_verified_tokens_checks_the_letter_ids():
    assert verified_tokens(enc, "Q:(", "(", "(X)", {"A": 65, "B": 66}, "item 'd:0'") == \
        enc("Q:(")
    with pytest.raises(PromptError, match="item 'd:0' \\(base\\): answer letter is not the next"):
        verified_tokens(enc, "Q:(", "(", "(X)", {"A": 1, "B": 2}, "item 'd:0' (base)")
