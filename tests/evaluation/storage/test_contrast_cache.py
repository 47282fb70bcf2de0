"""The training contrasts kept in the run directory (w2s_lens.evaluation.storage.contrast_cache)."""

from __future__ import annotations

import pytest
import torch

import w2s_lens.evaluation.storage.contrast_cache as cc
from w2s_lens.controls.synthetic import build_control
from w2s_lens.evaluation.storage.rundir import RunDir


@pytest.fixture(scope="module")
def control():
    return build_control("positive", n_families=3, n_layers=4, seed=0)


def test_a_resume_reads_the_contrasts_back_bit_for_bit(control, tmp_path, monkeypatch):
    exs = control.make_examples(8, seed=1, both_orders=True)
    rd = RunDir(tmp_path)
    first = cc.cached_contrasts(rd, control.model, exs, [1, 2, 3], 2, 4)
    assert (tmp_path / cc.CONTRASTS_FILE).is_file()

    def no_pass(*a, **k):
        raise AssertionError("the contrasts were recomputed")

    monkeypatch.setattr(cc, "contrast_residuals", no_pass)
    again = cc.cached_contrasts(rd, control.model, exs, [1, 2, 3], 2, 4)
    assert torch.equal(again.diffs, first.diffs)
    assert torch.equal(again.prompt_resid, first.prompt_resid)
    assert torch.equal(again.mean_diff(), first.mean_diff())  # the CAA vectors themselves
    assert (again.ids, again.units, again.layers) == (first.ids, first.units, first.layers)
    # other settings (a batch size changes the last float bits) are not read back
    with pytest.raises(AssertionError, match="recomputed"):
        cc.cached_contrasts(rd, control.model, exs, [1, 2, 3], 2, 8)


def test_damaged_contrasts_are_recomputed_with_a_warning(control, tmp_path):
    exs = control.make_examples(6, seed=2, both_orders=True)
    rd = RunDir(tmp_path)
    first = cc.cached_contrasts(rd, control.model, exs, [1, 2], 1, 4)
    f = tmp_path / cc.CONTRASTS_FILE
    data = bytearray(f.read_bytes())
    data[-5] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="failed their check"):
        healed = cc.cached_contrasts(rd, control.model, exs, [1, 2], 1, 4)
    assert torch.equal(healed.diffs, first.diffs)
    assert cc.cached_contrasts(rd, control.model, exs, [1, 2], 1, 4).diffs.shape == \
        first.diffs.shape  # the rewritten file passes its check again
