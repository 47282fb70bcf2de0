import pytest

from w2s_lens.data.examples import SWAP_SUFFIX, SteeringExample, fit_context, unit_of


def test_letter_example_positions_pairs_and_readout():
    ex = SteeringExample("d:1", "txt", [4, 5, 6], 10, 11, "B", group="d")
    assert ex.tokens == (4, 5, 6)
    assert ex.steer_from_position == 2
    assert ex.readout == "letter"
    assert ex.continuations == ((10,), (11,))
    assert ex.positive_tokens == (4, 5, 6, 10) and ex.negative_tokens == (4, 5, 6, 11)
    rec = ex.to_record()
    assert rec["tokens"] == [4, 5, 6] and rec["steer_from_position"] == 2
    assert rec["readout"] == "letter" and rec["unit"] == "d:1"


def test_cloze_example_continuations_and_pairs():
    ex = SteeringExample("d:2~swap", "q", (1, 2), matching_letter="B",
                         matching_continuation=[7, 8, 9], non_matching_continuation=[7, 5])
    assert ex.readout == "cloze"
    assert ex.matching_token_id is None and ex.non_matching_token_id is None
    assert ex.continuations == ((7, 8, 9), (7, 5))
    assert ex.positive_tokens == (1, 2, 7, 8, 9) and ex.negative_tokens == (1, 2, 7, 5)
    assert ex.to_record()["matching_continuation"] == [7, 8, 9]


def test_both_letter_orders_share_a_unit():
    a = SteeringExample("ds:3", "", (1, 2), 10, 11, "A")
    b = SteeringExample("ds:3" + SWAP_SUFFIX, "", (1, 3), 11, 10, "B")
    other = SteeringExample("ds:30", "", (1, 2), 10, 11, "A")
    assert a.unit == b.unit == "ds:3" and other.unit == "ds:30"
    assert unit_of("ds:3~swap") == "ds:3" and unit_of("ds:3") == "ds:3"
    assert unit_of("~swap-not-a-suffix") == "~swap-not-a-suffix"
    explicit = SteeringExample("x~swap", "", (1,), 10, 11, "B", unit="family-7")
    assert explicit.unit == "family-7"


@pytest.mark.parametrize("ex", [
    SteeringExample("d:0", "t", (1, 2), 3, 4, "B", group="g"),
    SteeringExample("d:0~swap", "t", (1, 2), matching_letter="A", group="g", unit="u",
                    matching_continuation=(5, 6), non_matching_continuation=(7,)),
])
def test_record_round_trip(ex):
    rec = ex.to_record()
    back = SteeringExample.from_record(rec)
    assert back == ex
    assert back.readout == ex.readout and back.unit == ex.unit
    # derived keys are ignored, a record without the text still loads
    del rec["text"]
    assert SteeringExample.from_record(rec).tokens == ex.tokens
    with pytest.raises(KeyError, match="tokens"):
        SteeringExample.from_record({"id": "x"})


@pytest.mark.parametrize("kwargs, msg", [
    (dict(tokens=()), "no tokens"),
    (dict(non_matching_token_id=10), "are equal"),
    (dict(matching_letter="C"), "'A' or 'B'"),
    (dict(matching_token_id=None), "give the two answer token ids"),
    (dict(matching_continuation=(3, 4)), "both continuations"),
    (dict(matching_continuation=(3, 4), non_matching_continuation=(3, 4)),
     "continuations are equal"),
])
def test_validation(kwargs, msg):
    base = dict(id="x", text="", tokens=(1,), matching_token_id=10, non_matching_token_id=11,
                matching_letter="A")
    with pytest.raises(ValueError, match=msg):
        SteeringExample(**{**base, **kwargs})


def test_examples_longer_than_the_context_are_refused_or_skipped_by_name():
    short = SteeringExample("d:0", "t", (1, 2), 3, 4)
    long = SteeringExample("d:1", "t", tuple(range(10)), matching_continuation=(1, 2, 3),
                           non_matching_continuation=(4,))
    assert fit_context([short, long], 13) == [short, long]
    with pytest.raises(ValueError, match="1 example\\(s\\) longer than the model's context of "
                                         "12 tokens: d:1 \\(13 tokens\\)"):
        fit_context([short, long], 12)
    with pytest.warns(UserWarning, match="skipped 1 example.*d:1 \\(13 tokens\\)"):
        assert fit_context([short, long], 12, skip=True) == [short]
    with pytest.raises(ValueError, match="2 example"):
        fit_context([short, long], 2, skip=True)  # nothing fits: refused, not emptied
