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


class _Stop(Exception):
    pass


def test_an_interrupted_pass_resumes_from_its_kept_batches_bit_for_bit(control, tmp_path,
                                                                        monkeypatch):
    exs = control.make_examples(8, seed=3, both_orders=True)  # 32 sequences: 8 batches of 4
    whole = cc.cached_contrasts(None, control.model, exs, [1, 2, 3], 2, 4)
    rd = RunDir(tmp_path)
    real_save = cc.ContrastParts.save
    saved: list[int] = []

    def save_then_stop(self, index, value):
        if len(saved) == 3:
            raise _Stop
        real_save(self, index, value)
        saved.append(index)

    monkeypatch.setattr(cc.ContrastParts, "save", save_then_stop)
    with pytest.raises(_Stop):
        cc.cached_contrasts(rd, control.model, exs, [1, 2, 3], 2, 4)
    assert not (tmp_path / cc.CONTRASTS_FILE).exists()
    kept = sorted((tmp_path / cc.CONTRASTS_PARTS).glob("*/batch-*.safetensors"))
    assert [p.name for p in kept] == [f"batch-{i:05d}.safetensors" for i in (0, 1, 2)]

    monkeypatch.setattr(cc.ContrastParts, "save", real_save)
    ran: list[int] = []
    real_load = cc.ContrastParts.load

    def load_and_count(self, index, shape):
        got = real_load(self, index, shape)
        if got is None:
            ran.append(index)
        return got

    monkeypatch.setattr(cc.ContrastParts, "load", load_and_count)
    resumed = cc.cached_contrasts(rd, control.model, exs, [1, 2, 3], 2, 4)
    assert ran == [3, 4, 5, 6, 7]  # the three kept batches were not run again
    assert torch.equal(resumed.diffs, whole.diffs)
    assert torch.equal(resumed.prompt_resid, whole.prompt_resid)
    assert torch.equal(resumed.answer_resid_norms, whole.answer_resid_norms)
    # written whole, the parts are gone
    assert (tmp_path / cc.CONTRASTS_FILE).is_file()
    assert not (tmp_path / cc.CONTRASTS_PARTS).exists()


def test_kept_batches_of_other_settings_or_shapes_are_not_read_back(control, tmp_path):
    exs = control.make_examples(4, seed=4, both_orders=True)  # 16 sequences
    key = cc.contrasts_key(control.model, exs, [1, 2], 1, 4)
    parts = cc.ContrastParts(tmp_path, key)
    parts.save(0, torch.ones(4, 2, 2, control.model.cfg.d_model))
    assert parts.load(0, (4, 2, 2, control.model.cfg.d_model)) is not None
    assert parts.load(0, (4, 2, 3, control.model.cfg.d_model)) is None  # other layers
    assert parts.load(1, (4, 2, 2, control.model.cfg.d_model)) is None  # never kept
    other = cc.ContrastParts(tmp_path, cc.contrasts_key(control.model, exs, [1, 2], 1, 8))
    assert other.path != parts.path
    assert other.load(0, (4, 2, 2, control.model.cfg.d_model)) is None
    # a damaged batch file is run again, not trusted: a flipped bit in the data, a cut file
    f = parts.path / "batch-00000.safetensors"
    data = bytearray(f.read_bytes())
    data[-3] ^= 0x10
    f.write_bytes(bytes(data))
    assert parts.load(0, (4, 2, 2, control.model.cfg.d_model)) is None
    f.write_bytes(f.read_bytes()[:20])
    assert parts.load(0, (4, 2, 2, control.model.cfg.d_model)) is None
    parts.clear()
    assert not (tmp_path / cc.CONTRASTS_PARTS).exists()
