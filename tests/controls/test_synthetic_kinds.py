"""The kinds of control as circuits: reader gains, directions and letter pushes."""

from __future__ import annotations

import numpy as np
import pytest

from w2s_lens.controls.synthetic import build_control
from w2s_lens.controls.synthetic_kinds import FLAT_DIMS, KINDS, kind_circuit, spread_layers


def _circuit(kind: str, K: int = 3, L: int = 4, **kw):
    args = {"family_layers": None, "letter_layers": None, "readout": 0.5, "letter_gain": 1.0,
            "spread": 0.25, "erase": 0.5, **kw}
    return kind_circuit(kind, K, L, args["family_layers"], args["letter_layers"],
                        args["readout"], args["letter_gain"], args["spread"], args["erase"],
                        np.random.default_rng(0))


def test_expected_slopes_of_the_kinds() -> None:
    pos = build_control("positive").expected_slopes()
    assert pos.argmax(1).tolist() == [1, 2, 3] and np.allclose(pos.max(1), 2.0)
    letter = build_control("letter")
    a, b, mirrored = (letter.expected_slopes(x)[0] for x in ("A", "B", None))
    assert a.tolist() == [0.0, 4.0, 2.0, -4.0] and b.tolist() == [0.0, -4.0, 2.0, 4.0]
    assert mirrored.tolist() == [0.0, 0.0, 2.0, 0.0]
    null = build_control("null").expected_slopes()
    np.testing.assert_allclose(null[:, 1:].mean(0), 2.0)  # the same true slope at every layer
    assert null[:, 1:].std(0).min() > 0.4  # ... and a spread per id
    assert len(np.unique(null.argmax(1))) == 5


def test_spread_layers() -> None:
    assert spread_layers(3, 4) == [1, 2, 3] and spread_layers(2, 6) == [1, 5]
    assert spread_layers(3, 10) == [1, 5, 9]
    with pytest.raises(ValueError, match="need n_layers - 1 >= n_families"):
        spread_layers(4, 4)


def test_kind_circuits() -> None:
    assert len(KINDS) == 9
    pos = _circuit("positive")
    assert pos.gains.tolist() == [[0, 0.5, 0, 0], [0, 0, 0.5, 0], [0, 0, 0, 0.5]]
    assert (_circuit("negative").gains.argmax(1) == 2).all()  # everyone at n_layers // 2
    null = _circuit("null", K=50, L=6, erase=1.0)
    assert (null.gains[:, 0] == 0).all()
    np.testing.assert_allclose(null.gains[:, 1:].mean(0), 0.5)
    np.testing.assert_allclose(null.gains[:, 1:].std(0), 0.5 * 0.25)
    assert _circuit("l2s-direction").directions.tolist() == [[1, 0], [-1, 0], [0, 1]]
    assert _circuit("positive").directions.tolist() == [[1], [1], [1]]
    letter = _circuit("letter", K=1, erase=1.0, letter_gain=0.75)
    assert letter.letter_push.tolist() == [0.0, 0.75, 0.0, -0.75]
    assert not letter.linear and _circuit("linear", K=1).linear
    cont = _circuit("continuation", erase=1.0)  # positive's gains, read at the marker
    assert cont.gains.tolist() == pos.gains.tolist()
    assert (cont.read_at, pos.read_at) == ("IS_MARK", "END")
    assert build_control("continuation").erase == 1.0
    with pytest.raises(ValueError, match="takes no family_layers"):
        _circuit("linear", K=1, family_layers=[1])
    with pytest.raises(ValueError, match=r"family_layers must be 3 layer numbers in 1..3"):
        _circuit("positive", family_layers=[1, 2, 4])
    with pytest.raises(ValueError, match="two distinct layers"):
        _circuit("positive", letter_layers=[1])


def test_flat_kind_is_flat_under_the_ideal_vector_only() -> None:
    """Every layer is equally good with the ideal vector 2 e0; a vector off e0 (an estimate
    from a few ids) makes each id's best layer depend on that vector's noise."""
    flat = _circuit("flat", K=40, L=6, erase=1.0, spread=0.4)
    assert flat.reader_directions is not None and flat.n_beh == 1 + FLAT_DIMS
    np.testing.assert_allclose(flat.directions[:, 1:].mean(0), 0.0, atol=1e-12)
    ideal = np.zeros(flat.n_beh)
    ideal[0] = 2.0
    slopes = 2.0 * flat.gains * (flat.reader_directions @ ideal)  # reader gain × r · v
    np.testing.assert_allclose(slopes[:, 1:], 2.0)  # 4 w at every layer for every id
    rng = np.random.default_rng(1)
    best = []
    for _ in range(2):  # two noisy estimates of the same vector
        v = ideal + 2.0 * 0.4 * rng.normal(size=flat.n_beh) / np.sqrt(18) * (np.arange(
            flat.n_beh) > 0)
        best.append((flat.reader_directions[:, 1:] @ v).argmax(1))
    assert np.mean(best[0] == best[1]) < 0.5  # the best layer moves with the estimate
    # the exact slopes for each id's own vector 2 u_m: 4 w (r_ml · u_m)
    want = 4 * 0.5 * np.einsum("mlb,mb->ml", flat.reader_directions, flat.directions)
    np.testing.assert_allclose(flat.slopes()[:, 1:], want[:, 1:])
