"""The powered study's table (w2s_lens.report.tables.study) on a fake results folder made of the
real headroom results (tests/helpers_study.py), read as typed results: numbers as results.json
holds them, planned against used sizes, rows not run, the Benjamini-Hochberg count per study
row."""

from __future__ import annotations

import doctest
import importlib
import json

import pytest
import scipy.stats
from helpers_study import CLOZE, LETTER, PLAN, build_root, edited, load

from w2s_lens.evaluation.results.typed import EvaluationResult
from w2s_lens.evaluation.stats.paired import ALPHA, VERDICT_TOO_FEW
from w2s_lens.report.tables.cross_dataset import table_rows
from w2s_lens.report.tables.study import (
    NOT_RUN,
    STUDY_COLUMNS,
    UNREADABLE,
    dataset_rows,
    router_diffs,
    study_rows,
    study_summary,
)


def _row(rows, protocol, dataset):
    (r,) = [r for r in rows if r["protocol"] == protocol and r["dataset"] == dataset]
    return r


@pytest.fixture
def rows(tmp_path):
    return study_rows(build_root(tmp_path), PLAN)


def test_rows_follow_the_plan_in_order(rows) -> None:
    expected = [(p["name"], d) for p in PLAN for d in p["datasets"]]
    assert [(r["protocol"], r["dataset"]) for r in rows] == expected
    assert all(set(r) == set(STUDY_COLUMNS) for r in rows)


def test_a_finished_row_carries_the_numbers_of_its_results(rows) -> None:
    res = load(CLOZE)
    base = res["methods"]["caa"]["variants"]["base"]
    w = base["w2s"]["logreg"]
    h = res["methods"]["caa"]["headroom"]
    r = _row(rows, "cloze-0.5b", "corrigible-neutral-HHH")
    assert res["primary_router"] == "logreg" == r["router"]
    assert (r["status"], r["model"], r["readout"], r["method"]) == (
        "done", res["model"], "cloze", "caa")
    assert (r["fixed_layer"], r["fixed"], r["w2s"]) == (
        base["fixed_layer"], base["fixed"]["steerability"], w["steerability"])
    assert [r["oracle"], r["oracle_lo"], r["oracle_hi"]] == [
        base["oracle"]["steerability"], *base["oracle"]["steerability_ci"]]
    assert [r["diff"], r["diff_lo"], r["diff_hi"], r["p_value"], r["mde"], r["n_nonzero"]] == [
        w["diff_vs_fixed"], *w["diff_vs_fixed_ci"], w["diff_vs_fixed_p"],
        w["diff_vs_fixed_mde"], w["diff_vs_fixed_n_nonzero"]]
    assert r["verdict"] == VERDICT_TOO_FEW and r["beats_after_bh"] is False
    assert [r["xv_diff"], r["xv_lo"], r["xv_hi"], r["xv_p"]] == [
        h["xv"]["diff"], *h["xv"]["ci"], h["xv"]["p"]]
    assert (r["agreement"], r["chance"], r["kappa"]) == (
        h["retest"]["agreement"], h["retest"]["chance"], h["retest"]["kappa"])
    assert (r["router_acc"], r["majority_acc"]) == (w["accuracy"], w["majority_accuracy"])
    assert r["form_router_diff"] == base["form_router"]["diff_vs_fixed"]
    # 12 + 12 items: headroom, but W2S − fixed has too few informative items to say more
    assert r["case"] == "headroom; robust to re-estimating the vector; underpowered for question"
    assert r["wall_time_s"] == 976.1  # run_log.json's entry for the dataset
    # only one learning-curve size at 12 + 12: the last point, no point before it
    assert (r["curve_n_before"], r["curve_n_last"], r["curve_diff_last"]) == (
        None, 12, w["diff_vs_fixed"])
    # the shared columns are exactly what table_rows reads
    (t,) = table_rows(EvaluationResult.from_dict(res))
    assert all(r[k] == t[k] for k in STUDY_COLUMNS if k in t and k not in ("n_test", "dataset"))


def test_learning_curve_gives_its_last_two_sizes(rows) -> None:
    r = _row(rows, "letter-0.5b", "corrigible-neutral-HHH")
    assert (r["curve_n_before"], r["curve_n_last"]) == (12, 24)
    assert r["curve_diff_before"] == r["curve_diff_last"] == 0.0
    assert list(r["curve"]) == sorted(r["curve"]) and list(r["curve"])[-2:] == [12, 24]
    assert r["form_router_diff"] is None and r["readout"] == "letter-mirrored"
    assert r["wall_time_s"] is None  # no run_log.json copied for this one


def test_sizes_used_against_planned(rows) -> None:
    letter = _row(rows, "letter-0.5b", "corrigible-neutral-HHH")
    assert (letter["n_train"], letter["n_test"], letter["n_train_planned"]) == (20, 24, 24)
    assert letter["smaller_than_planned"] is True
    cloze = _row(rows, "cloze-0.5b", "corrigible-neutral-HHH")
    assert (cloze["n_train"], cloze["n_test"]) == (12, 12)
    assert cloze["smaller_than_planned"] is False


def test_a_dataset_without_results_is_not_run(rows) -> None:
    r = _row(rows, "cloze-0.5b", "self-awareness-text-model")
    assert (r["status"], r["verdict"], r["method"], r["readout"]) == (
        NOT_RUN, NOT_RUN, "caa", "cloze")
    assert (r["n_train_planned"], r["n_test_planned"]) == (12, 12)
    assert r["diff"] is None and r["beats_after_bh"] is None and r["smaller_than_planned"] is None


def test_unreadable_and_partial_results_do_not_crash(tmp_path) -> None:
    root = build_root(tmp_path)
    (root / "letter-0.5b" / "corrigible-neutral-HHH" / "results.json").write_text("{broken")
    partial = load(CLOZE)
    del partial["methods"]["caa"]["headroom"]
    partial["methods"]["caa"]["variants"]["base"]["oracle"]["steerability_ci"] = None
    partial["methods"]["caa"]["variants"]["base"].pop("form_router")
    (root / "cloze-0.5b" / "corrigible-neutral-HHH" / "results.json").write_text(
        json.dumps(partial))
    rows = study_rows(root, PLAN)
    bad = _row(rows, "letter-0.5b", "corrigible-neutral-HHH")
    assert bad["status"] == UNREADABLE and "not valid JSON" in bad["error"]
    r = _row(rows, "cloze-0.5b", "corrigible-neutral-HHH")
    assert r["status"] == "done" and r["diff"] == partial["methods"]["caa"]["variants"][
        "base"]["w2s"]["logreg"]["diff_vs_fixed"]
    assert [r[k] for k in ("oracle_lo", "xv_diff", "kappa", "chance", "curve_n_last", "case",
                           "form_router_diff")] == [None] * 7
    assert bad["verdict"] == UNREADABLE


def test_bh_runs_per_study_row_and_never_exceeds_the_plain_count(rows) -> None:
    """Two tests in cloze-0.5b (p = 0.02 beats, p = 0.6): plain 1, BH over the two 0."""
    (cloze, letter) = study_summary(rows)
    assert (cloze["protocol"], cloze["n_planned"], cloze["n_run"]) == ("cloze-0.5b", 4, 3)
    assert (cloze["wins"], cloze["wins_bh"], cloze["worse"], cloze["too_few"]) == (1, 0, 0, 1)
    assert cloze["too_few_datasets"] == ["corrigible-neutral-HHH"]
    assert cloze["not_run"] == ["self-awareness-text-model"]
    assert bool(scipy.stats.false_discovery_control([0.02, 0.6]).min() <= ALPHA) is False
    assert _row(rows, "cloze-0.5b", "myopic-reward")["beats_after_bh"] is False
    assert (letter["n_run"], letter["wins"], letter["wins_bh"], letter["smaller"]) == (
        1, 0, 0, ["corrigible-neutral-HHH"])


def test_bh_keeps_a_strong_result_within_its_own_study_row(tmp_path) -> None:
    """p = 0.004 beside p = 0.6: BH-adjusted 0.008, kept. Seven more tests at p = 0.9 in
    another study row would drop it if pooled (0.004 × 9 = 0.036 > 0.025), but BH runs per
    study row."""
    root = build_root(tmp_path, p_beats=0.004)
    names = [f"d{i}" for i in range(7)]
    for name in names:
        folder = root / "other" / name
        folder.mkdir(parents=True)
        folder.joinpath("results.json").write_text(json.dumps(edited(
            load(CLOZE), name, 0.9, "no detectable difference", -0.1, [-0.3, 0.1])))
    rows = study_rows(root, [*PLAN, {**PLAN[0], "name": "other", "datasets": names}])
    cloze, _, other = study_summary(rows)
    assert (cloze["wins"], cloze["wins_bh"]) == (1, 1)
    assert (other["n_run"], other["wins"], other["wins_bh"]) == (7, 0, 0)
    assert _row(rows, "cloze-0.5b", "myopic-reward")["beats_after_bh"] is True
    pooled = scipy.stats.false_discovery_control([0.004, 0.6] + [0.9] * 7)
    assert pooled[0] > ALPHA


def test_dataset_rows_flags_a_smaller_run() -> None:
    letter = EvaluationResult.load(LETTER)
    (r,) = dataset_rows(letter, {"name": "letter-0.5b", "n_train": 200, "n_test": 200})
    assert r["smaller_than_planned"] is True and r["protocol"] == "letter-0.5b"
    (r,) = dataset_rows(letter, {"name": "letter-0.5b"})  # no plan sizes: no flag
    assert r["smaller_than_planned"] is False
    # a run directory, or the results.json dict, read the same
    assert dataset_rows(LETTER, {"name": "letter-0.5b"}) == [r]
    assert dataset_rows(load(LETTER), {"name": "letter-0.5b"}) == [r]


def test_every_router_kind_is_read(rows) -> None:
    res = load(CLOZE)
    w2s = res["methods"]["caa"]["variants"]["base"]["w2s"]
    r = _row(rows, "cloze-0.5b", "corrigible-neutral-HHH")
    assert list(r["routers"]) == list(w2s) and len(w2s) >= 2
    for kind, v in router_diffs(EvaluationResult.from_dict(res), "caa").items():
        assert v["diff"] == w2s[kind]["diff_vs_fixed"] and v["p"] == w2s[kind]["diff_vs_fixed_p"]
        assert [v["lo"], v["hi"]] == w2s[kind]["diff_vs_fixed_ci"]
    assert r["routers"]["logreg"]["diff"] == r["diff"]  # the primary router is W2S


def test_two_primary_routers_give_two_rows_and_two_bh_families(tmp_path) -> None:
    """The fair study states two primary comparisons (logreg on the question view and on the
    options view): one row per dataset and router, each router its own BH family; a run that
    fitted no options router reads "not run" for it, with the reason."""
    root = build_root(tmp_path, p_beats=0.004)
    for name in ("myopic-reward", "self-awareness-good-text-model"):
        f = root / "cloze-0.5b" / name / "results.json"
        res = json.loads(f.read_text())
        w2s = res["methods"]["caa"]["variants"]["base"]["w2s"]
        w2s["logreg@options"] = {**w2s["logreg"], "diff_vs_fixed": -0.05,
                                 "diff_vs_fixed_ci": [-0.2, 0.1], "diff_vs_fixed_p": 0.9,
                                 "diff_vs_fixed_verdict": "no detectable difference"}
        f.write_text(json.dumps(res))
    plan = [{**PLAN[0], "primary_routers": ["logreg", "logreg@options"]}]
    rows = study_rows(root, plan)
    by = {(r["dataset"], r["router"]): r for r in rows}
    assert len(rows) == 2 * len(PLAN[0]["datasets"])
    assert by[("myopic-reward", "logreg")]["diff"] == 0.2
    assert by[("myopic-reward", "logreg@options")]["diff"] == -0.05
    assert by[("myopic-reward", "logreg@options")]["p_value"] == 0.9
    corr = by[("corrigible-neutral-HHH", "logreg@options")]
    assert corr["status"] == NOT_RUN and "logreg@options" in corr["error"]
    assert by[("self-awareness-text-model", "logreg@options")]["status"] == NOT_RUN
    question, options = study_summary(rows)
    assert (question["router"], question["wins"], question["wins_bh"]) == ("logreg", 1, 1)
    assert (options["router"], options["n_run"], options["wins"]) == ("logreg@options", 2, 0)
    assert by[("myopic-reward", "logreg")]["beats_after_bh"] is True


def test_older_results_without_headroom_or_base_routers_give_rows(tmp_path) -> None:
    """A results.json of an older version: no headroom block, no learning curve, a method whose
    base variant lacks the primary router. Rows come out, the missing numbers None."""
    res = load(CLOZE)
    del res["methods"]["caa"]["headroom"]
    res["methods"]["l2s"] = {"variants": {"base": {"w2s": {}}}}
    (r, *more) = dataset_rows(EvaluationResult.from_dict(res), {"name": "p"})
    assert (r["method"], r["status"], r["verdict"]) == ("l2s", NOT_RUN, NOT_RUN)
    (done,) = more
    assert done["status"] == "done" and done["curve"] is None and done["xv_n"] is None
    assert done["routers"]["logreg"]["diff"] == done["diff"]


def test_the_docstring_examples_run() -> None:
    """The examples in the docstrings (typed results in, the text shown out) hold."""
    failed, attempted = doctest.testmod(importlib.import_module("w2s_lens.report.tables.study"),
                                        optionflags=doctest.ELLIPSIS)
    assert failed == 0 and attempted > 0
