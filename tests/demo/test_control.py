"""Tests for w2s_lens.demo.control: the positive control recovers its layers through the
unchanged pipeline, and its reading is the result's own numbers."""

from __future__ import annotations

import pytest
import torch

from w2s_lens.demo.control import ControlRun, control_lines, run_control
from w2s_lens.evaluation.results.typed import EvaluationResult
from w2s_lens.report.tables.summary import fmt_ci


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_control_recovers_its_layers(one_thread, tmp_path):
    torch.set_num_threads(1)
    run = run_control(tmp_path / "control")
    assert isinstance(run, ControlRun) and isinstance(run.result, EvaluationResult)
    assert run.constructed_layers == (1, 2, 3)
    assert EvaluationResult.load(tmp_path / "control") == run.result  # what it wrote
    lines = control_lines(run)
    assert lines[0].startswith("built: each input family steerable only at its own layer, "
                               "layers [1, 2, 3]; found (best layer per training item): L")
    found = sorted(int(c.split(":")[0][1:]) for c in lines[0].split("item): ")[1].split(", "))
    assert found == [1, 2, 3]
    # the numbers are the result's own (read here from its results.json dict)
    d = run.result.to_dict()
    v = d["methods"]["caa"]["variants"]["base"]
    w = v["w2s"]["logreg"]
    assert lines[1] == (f"steerability on {v['n']} test items: fixed layer {v['fixed_layer']} "
                        f"{v['fixed']['steerability']:+.3f}, W2S (logreg router) "
                        f"{w['steerability']:+.3f}, oracle {v['oracle']['steerability']:+.3f}")
    counts = d["methods"]["caa"]["train_best_layer_counts"]
    assert sum(int(c.split(": ")[1]) for c in lines[0].split("item): ")[1].split(", ")) == sum(
        counts.values())
    assert lines[2].startswith("W2S − fixed: +") and lines[2].endswith(
        "W2S beats fixed beyond the noise")
    assert lines[2] == f"W2S − fixed: {fmt_ci(w['diff_vs_fixed'], w['diff_vs_fixed_ci'])}: " \
                       f"{w['diff_vs_fixed_verdict']}"
