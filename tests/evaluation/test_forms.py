"""Answer forms: the label of a cloze item's two answers that the form oracle groups by."""

import pytest
from conftest import byte_tokenizer

from w2s_lens.data.examples import SteeringExample
from w2s_lens.evaluation.forms import FORMS, answer_form, row_forms

TOK = byte_tokenizer()


def _cloze(match: str, other: str, i: int = 0) -> SteeringExample:
    enc = TOK.encode
    return SteeringExample(f"d:{i}", "Q?", (1, 2),
                           matching_continuation=tuple(enc(match, add_special_tokens=False)),
                           non_matching_continuation=tuple(enc(other, add_special_tokens=False)))


@pytest.mark.parametrize("match,other,form", [
    (" Yes", " No", "match-yes"),
    ("no.", " YES ", "match-no"),          # case, spaces and a final period do not matter
    (" Yes, gladly", " No", "match-longer"),  # not a bare Yes/No: the length decides
    (" No", " Nope", "match-shorter"),
    (" Yes", " yes", "same-length"),        # both say Yes: no Yes/No contrast
    (" red", " tan", "same-length"),
])
def test_answer_form(match, other, form):
    assert answer_form(_cloze(match, other), TOK) == form
    assert form in FORMS


def test_without_a_tokenizer_only_lengths_count():
    assert answer_form(_cloze(" Yes", " No")) == "match-longer"  # 4 bytes against 3
    letter = SteeringExample("d:0", "Q? (", (1, 2), matching_token_id=3,
                             non_matching_token_id=4)
    assert answer_form(letter) == "same-length"


def test_row_forms_follow_the_scored_rows():
    exs = [_cloze(" Yes", " No", 0), _cloze(" a", " bb", 1)]
    assert row_forms(exs, ["d:1", "d:0"], TOK) == ["match-shorter", "match-yes"]
    with pytest.raises(KeyError, match="d:7"):
        row_forms(exs, ["d:7"])
