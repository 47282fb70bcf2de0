"""The fast engine's steered batches (w2s_lens.sweep.steered_rows): the readout terms' row
offsets and the steered prefix rows' bookkeeping. That the batches give the naive engine's
numbers is tested in test_engines.py and test_prompt_only.py."""

from __future__ import annotations

import torch

from w2s_lens.sweep.readouts import ReadPlan
from w2s_lens.sweep.steered_rows import PrefixRows, SteeredPrefix, shift_terms


def test_shift_terms_moves_rows_only():
    plan = ReadPlan(suffixes=[(1, 2), (1, 3)], terms=[(0, 1, 7, 1.0), (1, 0, 9, -0.5)])
    assert shift_terms(plan, 6) == [(6, 1, 7, 1.0), (7, 0, 9, -0.5)]
    assert shift_terms(plan, 0) == plan.terms


def test_prefix_rows_are_steered_copies_owned_by_their_suffix_rows():
    d, width = 4, 5
    g = torch.Generator().manual_seed(0)
    resid = {2: torch.randn(3, width, d, generator=g)}  # 3 examples' prefixes at block 2
    prefix = SteeredPrefix(resid=resid, lengths=[5, 2, 3])
    rows = PrefixRows(prefix, examples=[1, 2], device="cpu")
    assert rows.width == 3  # the longest prefix among the batch's examples, not the chunk's
    mults = torch.tensor([-1.0, 2.0])
    vec = torch.randn(d, generator=g)
    rows.join(1, 2, mults, vec, n_rows=2)  # example 1: two suffix rows per multiplier
    rows.join(2, 2, mults, vec, n_rows=1)
    # one prefix row per (unit, multiplier); suffix rows point at their own
    assert rows.lengths == [2, 2, 3, 3]
    assert rows.owner == [0, 0, 1, 1, 2, 3]
    (steered_1, valid_1), (steered_2, valid_2) = rows.parts
    assert steered_1.shape == (2, 3, d)
    torch.testing.assert_close(steered_1[1], resid[2][1, :3] + 2.0 * vec)
    torch.testing.assert_close(steered_2[0], resid[2][2, :3] - vec)
    # padding beyond a prefix's own length is masked out
    assert valid_1.tolist() == [[True, True, False]] * 2
    assert valid_2.tolist() == [[True, True, True]] * 2
