"""Tests for w2s_lens.report.tables.study_ood: the study's OOD rows are one per finished
dataset × method × OOD variant × view of the primary kind, with their own BH family per
variant × view across datasets, the in-sample oracle kept apart from any headroom, and the
reading of the row's view."""

from __future__ import annotations

import csv
import io

from w2s_lens.evaluation.results import EvaluationResult
from w2s_lens.report.tables.study_ood import (
    OOD_COLUMNS,
    OOD_NOTE,
    dataset_ood_rows,
    ood_csv,
    ood_markdown,
    ood_rows,
    write_ood,
)

BEATS = "W2S beats fixed beyond the noise"
NONE = "no detectable difference"


def _router(diff, p, verdict):
    return {"steerability": 0.5 + diff, "diff_vs_fixed": diff, "diff_vs_fixed_ci": [diff - 0.1,
            diff + 0.1], "diff_vs_fixed_p": p, "diff_vs_fixed_verdict": verdict,
            "diff_vs_fixed_test": "sign-flip exact", "diff_vs_fixed_mde": 0.05}


def _variant(p_options, fixed_layer=15):
    return {"n": 200, "fixed_layer": fixed_layer, "fixed": {"steerability": 0.5},
            "oracle": {"steerability": 0.9},
            "w2s": {"logreg": _router(0.0, 0.5, NONE),
                    "knn": _router(0.3, 0.001, BEATS),  # not the primary kind: no row
                    "logreg@options": _router(0.2, p_options,
                                              BEATS if p_options < 0.025 else NONE)}}


def _results(dataset, p_options, p_user_neg=0.5):
    """``sys-pos``'s options view at ``p_options``; ``user-neg``'s at ``p_user_neg`` (another
    family: pooled with sys-pos it would change sys-pos's BH result)."""
    return {"model": "m", "dataset": dataset, "readout": "cloze", "primary_router": "logreg",
            "router_inputs": ["question", "options"], "n_train": 200, "n_test": 200,
            "methods": {"caa": {"fixed_layer": 15, "variants": {
                "base": {**_variant(0.5), "w2s": {"logreg": _router(0.01, 0.3, NONE),
                                                  "logreg@options": _router(0.02, 0.2, NONE)}},
                "sys-pos": _variant(p_options), "user-neg": _variant(p_user_neg, 0)}}}}


def _save(folder, results):
    folder.mkdir(parents=True, exist_ok=True)
    EvaluationResult.from_dict(results).save(folder / "results.json")


def test_one_row_per_variant_and_view_of_the_primary_kind():
    rows = dataset_ood_rows(_results("d", 0.001), {"name": "cloze-0.5b"})
    assert [(r["variant"], r["view"]) for r in rows] == [
        ("sys-pos", "question"), ("user-neg", "question"),
        ("sys-pos", "options"), ("user-neg", "options")]
    q, o = rows[0], rows[2]
    assert set(q) == set(OOD_COLUMNS) and q["protocol"] == "cloze-0.5b"
    assert q["router"] == "logreg" and o["router"] == "logreg@options"
    assert o["diff"] == 0.2 and o["base_diff"] == 0.02 and q["base_diff"] == 0.01
    assert o["oracle_in_sample"] == 0.9 and o["n_test"] == 200 and o["fixed_layer"] == 15
    assert o["reading"] == "learned by options"
    assert q["reading"] == "no gain by question (headroom not measured)"


def test_bh_runs_per_variant_and_view_across_datasets(tmp_path):
    # 0.02 beats alone, but not after BH with 0.04 beside it (2 tests at 2.5%: 0.0125, 0.025)
    for dataset, p in (("a", 0.02), ("b", 0.04)):
        _save(tmp_path / "row" / dataset, _results(dataset, p))
    plan = [{"name": "row", "datasets": ["a", "b", "not-run"]}]
    rows = ood_rows(tmp_path, plan)
    assert len(rows) == 8 and {r["dataset"] for r in rows} == {"a", "b"}
    options = [r for r in rows if r["view"] == "options" and r["variant"] == "sys-pos"]
    assert [r["verdict"].endswith("beyond the noise") for r in options] == [True, False]
    assert [r["beats_after_bh"] for r in options] == [False, False]
    # 0.001 and 0.02 of 2 pass BH at 2.5% (0.0125, 0.025); user-neg's two 0.5s are another
    # family (pooled into 4 tests, 0.02 would need 0.0125 and fail)
    _save(tmp_path / "row" / "b", _results("b", 0.001))
    rows = ood_rows(tmp_path, plan)
    options = [r for r in rows if r["view"] == "options" and r["variant"] == "sys-pos"]
    assert [r["beats_after_bh"] for r in options] == [True, True]
    assert not any(r["beats_after_bh"] for r in rows if r["variant"] == "user-neg")


def test_markdown_and_csv(tmp_path):
    _save(tmp_path / "row" / "a", _results("a", 0.001))
    rows = ood_rows(tmp_path, [{"name": "row", "datasets": ["a"]}])
    md = ood_markdown(rows)
    assert OOD_NOTE in md and md.count("\n| row | a | caa |") == 4
    assert "learned by options" in md and "+0.200 [+0.100, +0.300]" in md
    parsed = list(csv.DictReader(io.StringIO(ood_csv(rows))))
    assert [r["view"] for r in parsed] == ["question", "question", "options", "options"]
    paths = write_ood(rows, tmp_path / "out", "t")
    assert paths["md"].name == "t_ood.md" and paths["csv"].read_text() == ood_csv(rows)
    assert "No finished dataset" in ood_markdown([])
    assert "| user-neg | options | 200 | 0 |" in md  # layer 0 is shown, not "–"
