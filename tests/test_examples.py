import pytest

from w2s_lens.examples import SteeringExample


def test_positions_and_pairs():
    ex = SteeringExample("d:1", "txt", [4, 5, 6], 10, 11, "B", group="d")
    assert ex.tokens == (4, 5, 6)
    assert ex.steer_from_position == 2
    assert ex.positive_tokens == (4, 5, 6, 10) and ex.negative_tokens == (4, 5, 6, 11)
    rec = ex.to_record()
    assert rec["tokens"] == [4, 5, 6] and rec["steer_from_position"] == 2


@pytest.mark.parametrize("kwargs, msg", [
    (dict(tokens=()), "no tokens"),
    (dict(non_matching_token_id=10), "are equal"),
    (dict(matching_letter="C"), "'A' or 'B'"),
])
def test_validation(kwargs, msg):
    base = dict(id="x", text="", tokens=(1,), matching_token_id=10, non_matching_token_id=11,
                matching_letter="A")
    with pytest.raises(ValueError, match=msg):
        SteeringExample(**{**base, **kwargs})
