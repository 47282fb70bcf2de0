"""The powered study's figure (w2s_lens.report.plots_study) on study rows of a fake results
folder made of the real headroom results (tests/helpers_study.py)."""

from __future__ import annotations

import math

import pytest
from helpers_study import PLAN, build_root

from w2s_lens.report.plots_study import OFFSET, SERIES, study_figure, study_panels
from w2s_lens.report.tables.study import study_rows


@pytest.fixture
def rows(tmp_path):
    return study_rows(build_root(tmp_path), PLAN)


def test_one_panel_per_protocol_with_a_label_per_dataset(rows) -> None:
    panels = study_panels(rows)
    assert [p["title"] for p in panels] == [
        "cloze-0.5b · qwen2.5-coder-0.5b-instruct", "letter-0.5b · qwen2.5-coder-0.5b-instruct"]
    assert panels[0]["labels"] == [
        "corrigible-neutral-HHH", "myopic-reward", "self-awareness-good-text-model",
        "self-awareness-text-model (not run)"]
    assert panels[1]["labels"] == ["corrigible-neutral-HHH (smaller than planned)",
                                   "self-awareness-text-model (not run)"]
    w2s, xv = panels[0]["series"]
    assert [w2s["name"], xv["name"]] == [s[0] for s in SERIES]
    assert w2s["y"] == [k - OFFSET for k in range(4)] and xv["y"] == [k + OFFSET for k in range(4)]
    assert math.isnan(w2s["mean"][3]) and math.isnan(xv["lo"][3])  # not run: no marker


def test_markers_and_error_bars_are_the_rows_numbers(rows) -> None:
    fig = study_figure(rows)
    assert len(fig.data) == 2 * 2  # two comparisons × two panels
    w2s, xv = fig.data[0], fig.data[1]
    done = [r for r in rows if r["protocol"] == "cloze-0.5b"][:3]
    assert list(w2s.x[:3]) == [r["diff"] for r in done]
    assert list(xv.x[:3]) == [r["xv_diff"] for r in done]
    for i, r in enumerate(done):
        assert w2s.error_x.array[i] == pytest.approx(r["diff_hi"] - r["diff"])
        assert w2s.error_x.arrayminus[i] == pytest.approx(r["diff"] - r["diff_lo"])
        assert xv.error_x.array[i] == pytest.approx(r["xv_hi"] - r["xv_diff"])
    assert w2s.error_x.array[3] == 0.0  # the row not run has no interval
    assert [t.showlegend for t in fig.data] == [True, True, False, False]
    assert (fig.data[2].xaxis, fig.data[2].yaxis) == ("x2", "y2")


def test_each_panel_has_a_zero_line_and_its_dataset_ticks(rows) -> None:
    fig = study_figure(rows)
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    assert [(s.x0, s.x1, s.xref, s.yref) for s in lines] == [
        (0, 0, "x", "y domain"), (0, 0, "x2", "y2 domain")]
    assert list(fig.layout.yaxis.ticktext)[1] == "myopic-reward"
    assert list(fig.layout.yaxis.range) == [3.5, -0.5]  # first dataset on top
    assert list(fig.layout.yaxis2.tickvals) == [0, 1]


def test_hover_gives_n_p_and_the_verdict(rows) -> None:
    fig = study_figure(rows)
    corrigible = fig.data[0].text[0]
    assert "n = 12 test items (4 non-zero), 12 training items" in corrigible
    assert "p (one-sided, sign-flip) = 0.688" in corrigible
    assert "too few informative items; after BH: no" in corrigible
    assert "p (one-sided, sign-flip) = 0.0117" in fig.data[1].text[0]  # the xv oracle's p
    # the xv oracle's n is the retest's items, not the whole test split
    xv_n = next(r for r in rows if r["status"] == "done")["xv_n"]
    assert xv_n is not None and f"n = {xv_n} test items, 12 training" in fig.data[1].text[0]
    assert fig.data[0].text[3].endswith("not run")


def test_several_methods_in_a_panel_are_told_apart_and_no_rows_is_an_error() -> None:
    rows = [{"protocol": "p", "model": "m", "dataset": "d", "method": m, "status": "done",
             "diff": 0.1} for m in ("caa", "l2s")]
    assert study_panels(rows)[0]["labels"] == ["d · caa", "d · l2s"]
    with pytest.raises(ValueError, match="no study rows"):
        study_figure([])
