"""The pieces of the hand-built weights: layout, marker codes, circuit arithmetic, noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from w2s_lens.controls.synthetic import build_control
from w2s_lens.controls.weights import (
    DIMS,
    Circuit,
    Layout,
    circuit_weights,
    code_margin,
    marker_codes,
)


def test_layout_blocks_are_disjoint_and_checked() -> None:
    lay = Layout(n_beh=2, code_dim=5, d_model=40)
    named = list(DIMS.values())[:-1] + lay.beh + lay.mark + lay.mark_copy
    junk = list(range(lay.junk.start, lay.d_model))
    assert len(set(named + junk)) == len(named) + len(junk) == 40
    assert lay.n_junk == 40 - Layout.min_d_model(2, 5) + 4
    assert set(lay.exact) >= {DIMS["KEY_COPY"], DIMS["END"], *lay.mark_copy}
    with pytest.raises(ValueError, match="d_model must be >= 24"):
        Layout(n_beh=2, code_dim=5, d_model=23)


@pytest.mark.parametrize("n", [1, 3, 8, 9, 100, 256])
def test_marker_codes_are_distinct_unit_vectors(n: int) -> None:
    codes = marker_codes(n, np.random.default_rng(0))
    assert codes.shape[0] == n
    np.testing.assert_allclose(np.linalg.norm(codes, axis=1), 1.0)
    assert len({tuple(np.round(c, 6)) for c in codes}) == n
    margin = code_margin(codes)
    if n <= 8:
        assert codes.shape[1] == n and margin == 1.0
    else:  # even-parity +-1 codes differ in >= 2 signs: overlap <= 1 - 4/D
        assert margin >= 4 / codes.shape[1] - 1e-12


def test_circuit_slopes_follow_the_erasure_formula() -> None:
    gains = np.array([[0.0, 0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 0.25]])
    push = np.array([0.0, 0.0, 1.0, 0.0])
    circ = Circuit(gains, np.array([[1.0], [1.0]]), push, erase=0.5)
    # family 1 (reader at 3 with w = 0.25): 4 w 0.5^(3 - l)
    np.testing.assert_allclose(circ.slopes()[1], [0.125, 0.25, 0.5, 1.0])
    np.testing.assert_allclose(circ.slopes()[0], [1.0, 2.0, 0.0, 0.0])
    # the push (layer 2, g = 1) adds +-4 g 0.5^(2 - l) with the letter's sign
    np.testing.assert_allclose(circ.slopes("A")[0] - circ.slopes()[0], [1.0, 2.0, 4.0, 0.0])
    np.testing.assert_allclose(circ.slopes("B")[0] - circ.slopes()[0], [-1.0, -2.0, -4.0, 0.0])
    consumed = Circuit(gains, np.array([[1.0], [1.0]]), push, erase=1.0)
    np.testing.assert_allclose(consumed.slopes()[1], [0.0, 0.0, 0.0, 1.0])
    # writer (4) + eraser (2) at layer 0; eraser + two readers' quartets elsewhere, push pair
    assert circ.mlp_width() == 6
    assert Circuit(np.full((3, 4), 0.5), np.ones((3, 1)), np.zeros(4), 0.5).mlp_width() == 18


def test_readers_sit_where_read_at_says() -> None:
    """The same gains read at the query (END) or at the marker (IS_MARK): only the gate's
    input row differs, so the two weight sets differ exactly in those two rows."""
    lay, codes = Layout(n_beh=1, code_dim=3, d_model=32), np.eye(3)
    gains = np.array([[0.0, 0.5, 0.0], [0.0, 0.0, 0.5], [0.0, 0.5, 0.0]])
    ctrl = build_control("positive", n_layers=3, family_layers=[1, 2, 1], noise=0.0)
    states = {at: circuit_weights(ctrl.model.cfg, Circuit(gains, np.ones((3, 1)), np.zeros(3),
                                                          0.5, read_at=at), lay, codes, 0.0, 0)
              for at in ("END", "IS_MARK")}
    w_end, w_mark = (states[at]["blocks.1.mlp.W_in"] for at in ("END", "IS_MARK"))
    changed = torch.nonzero((w_end != w_mark).any(dim=1)).flatten().tolist()
    assert changed == [DIMS["END"], DIMS["IS_MARK"]]
    torch.testing.assert_close(w_end[DIMS["END"]], w_mark[DIMS["IS_MARK"]])
    with pytest.raises(ValueError, match="read_at must be 'END' or 'IS_MARK'"):
        Circuit(gains, np.ones((3, 1)), np.zeros(3), 0.5, read_at="QUERY")


def test_noise_spares_copy_heads_and_exact_dims() -> None:
    exact = build_control("positive", noise=0.0)
    noisy = build_control("positive", noise=0.05)
    lay, cfg = noisy.layout, noisy.model.cfg
    clean = circuit_weights(cfg, exact.circuit, lay, exact.codes, 0.0, 0)
    dirty = circuit_weights(cfg, noisy.circuit, lay, noisy.codes, 0.05, 0)
    for name in ("embed.W_E", "blocks.1.mlp.W_out", "blocks.0.attn.W_O"):
        torch.testing.assert_close(dirty[name][..., lay.exact], clean[name][..., lay.exact])
        assert not torch.equal(dirty[name], clean[name])  # noise did land elsewhere
    for name in ("W_Q", "W_K", "W_V", "W_O"):
        w = f"blocks.0.attn.{name}"
        torch.testing.assert_close(dirty[w][:2], clean[w][:2])  # the copy heads stay exact
    lin = build_control("linear", noise=0.05)
    assert torch.count_nonzero(lin.model.blocks[1].attn.W_Q) == 0  # linear: embeddings only
