"""Text summaries: built from the typed results the pipeline produced (the expected numbers
read from their results.json dict)."""

import doctest
import importlib

import pytest

from w2s_lens.controls.synthetic import build_control
from w2s_lens.evaluation.config import EvalConfig
from w2s_lens.evaluation.pipeline import evaluate_examples
from w2s_lens.evaluation.results.evidence import RULES_VERSION
from w2s_lens.evaluation.results.typed import EvaluationResult, MethodResult
from w2s_lens.evaluation.split import SplitExamples
from w2s_lens.report.tables.summary import (
    comparison_text,
    fmt_ci,
    headroom_text,
    ratio_line,
    results_table,
)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The typed result of an evaluation of the positive control, and its run directory."""
    control = build_control("positive", n_families=3, n_layers=4, seed=0)
    train = control.make_examples(12, seed=1, both_orders=True)
    test = control.make_examples(6, seed=2, both_orders=True)
    cfg = EvalConfig(dataset="synthetic", variants=("base",), routers=("logreg",), n_boot=100,
                     cross_fit=3, method="both")
    out = tmp_path_factory.mktemp("summary") / "run"
    return evaluate_examples(control.model, SplitExamples(train, train, {"base": test}), cfg,
                             out, progress=False), out


@pytest.fixture(scope="module")
def results(run):
    return run[0]


def test_table_has_a_row_per_method_with_intervals(results):
    assert isinstance(results, EvaluationResult)
    text = results_table(results)
    assert "letter readout, mirrored" in text and "n_test=6" in text and "split seed 0" in text
    rows = [line for line in text.splitlines() if line.startswith(("caa ", "l2s "))]
    assert len(rows) == 2
    fixed = results.to_dict()["methods"]["caa"]["variants"]["base"]["fixed"]["steerability"]
    assert f"{fixed:+.3f} [" in rows[0]


def test_the_table_reads_a_result_its_run_directory_or_its_dict_alike(run):
    results, out = run
    text = results_table(results)
    assert results_table(out) == results_table(out / "results.json") == text
    assert results_table(results.to_dict()) == text  # the committed notebooks pass the dict
    assert ratio_line(out) == ratio_line(results)
    with pytest.raises(TypeError, match="got list"):
        results_table([results])


def test_ratio_line(results):
    d = results.to_dict()
    ratio = d["methods"]["caa"]["w2s_over_fixed"]
    fixed = d["methods"]["caa"]["variants"]["base"]["fixed"]
    assert fixed["steerability_ci"][0] > 0  # the positive control's fixed layer steers
    assert ratio_line(results) == f"w2s_over_fixed={ratio:.4f}"


def test_ratio_line_omitted_where_the_fixed_interval_is_not_above_0():
    def line(ci, ratio=1.8):
        fixed = {"steerability": 0.1, "steerability_ci": ci}
        return ratio_line(EvaluationResult.from_dict({"methods": {"caa": {
            "w2s_over_fixed": ratio, "variants": {"base": {"fixed": fixed}}}}}))

    assert line([0.02, 0.2]) == "w2s_over_fixed=1.8000"
    assert line([-0.05, 0.2]).startswith(
        "w2s_over_fixed=omitted: the fixed layer's steerability +0.100 [-0.050,+0.200]")
    assert "its interval contains 0" in line([-0.05, 0.2])
    assert "its interval lies below 0" in line([-0.3, -0.1], ratio=None)
    assert "1.8" not in line([-0.05, 0.2]) and "no interval" in line(None)


def test_comparison_text_plain_and_rich():
    rows = [{"prompt": "Hi", "routed_layer": 3, "fixed_layer": 2, "multiplier": 1.0,
             "unsteered": "plain text", "fixed": "fixed text", "routed": "routed text"}]
    plain = comparison_text(rows)
    assert plain.index("plain text") < plain.index("fixed text") < plain.index("routed text")
    table = comparison_text(rows, rich_table=True)
    assert "routed layer 3" in table and "routed text" in table and "---" not in table


def test_table_shows_the_test_majority_baseline_and_form_oracle(results):
    text = results_table(results)
    w = results.to_dict()["methods"]["caa"]["variants"]["base"]["w2s"]["logreg"]
    row = next(line for line in text.splitlines() if line.startswith("caa "))
    assert f"p={w['diff_vs_fixed_p']:.3g} ({w['diff_vs_fixed_test']}, " in row
    assert f"{w['diff_vs_fixed_n_nonzero']} non-zero)" in row
    assert row.endswith(w["diff_vs_fixed_verdict"])
    assert f" {w['accuracy']:.2f}   {w['majority_accuracy']:.2f}  " in row


def _older(block_w2s, letter_oracle=None, form_oracle=None):
    s = {"steerability": 0.1, "steerability_ci": [0.0, 0.2]}
    return EvaluationResult.from_dict({
            "model": "m", "dataset": "d", "readout": "cloze", "n_train": 4, "n_test": 4,
            "split_seed": 0, "primary_router": "logreg", "embedding": "e",
            "methods": {"caa": {"variants": {"base": {
                "fixed_layer": 3, "fixed": s, "oracle": s, "w2s": {"logreg": {**s, **block_w2s}},
                "letter_oracle": letter_oracle, "form_oracle": form_oracle}}}}})


def test_older_results_are_labelled_and_missing_oracles_dashed():
    old = _older({"diff_vs_fixed": 0.05, "diff_vs_fixed_ci": [0.01, 0.09], "accuracy": 0.5,
                  "diff_vs_fixed_p": 0.01})
    row = results_table(old).splitlines()[-1]
    assert row.endswith("W2S beats fixed beyond the noise (bootstrap CI (older))")
    assert "p=0.01 (bootstrap CI (older))  MDE –" in row
    # oracle, letter oracle, form oracle, accuracy, majority accuracy
    assert row.split()[7:12] == ["+0.100", "–", "–", "0.50", "–"]
    new = _older({"diff_vs_fixed": 0.05, "diff_vs_fixed_ci": [0.01, 0.09],
                  "diff_vs_fixed_p": 0.125, "diff_vs_fixed_test": "sign-flip exact",
                  "diff_vs_fixed_n_nonzero": 3,
                  "diff_vs_fixed_verdict": "too few informative items"},
                 form_oracle={"steerability": 0.25, "groups": {"match-longer": 3}})
    row = results_table(new).splitlines()[-1]
    assert row.endswith("too few informative items") and row.split()[7:10] == ["+0.100", "–",
                                                                                "+0.250"]


def test_table_asks_whether_there_is_anything_to_learn(results):
    text = results_table(results)
    for method in ("caa", "l2s"):
        block = results.to_dict()["methods"][method]
        h = block["headroom"]
        part = text.split(f"Is there anything to learn? ({method}, base test items)")[1]
        part = part.split("Is there anything to learn?")[0]
        r, xv = h["retest"], h["xv"]
        assert (f"agreement {r['agreement']:.2f} (chance {r['chance']:.2f}), "
                f"κ {r['kappa']:+.2f}") in part
        assert fmt_ci(xv["diff"], xv["ci"]) in part and f"p={xv['p']:.3g}" in part
        rows = [x for x in h["learning_curve"]["rows"] if x["router"] == "logreg"]
        assert part.count("    n_train=") == len(rows) == 1  # 12 training items: one size
        assert f"W2S−fixed {fmt_ci(rows[0]['diff'], rows[0]['ci'])}" in part
        assert f"  reading: {block['reading']['text']}" in part
        assert block["reading"]["text"].startswith(block["reading"]["headroom"]["reading"])


def test_headroom_text_reads_a_skipped_retest_and_the_form_router():
    block = MethodResult.from_dict({
             "headroom": {"retest": {"skipped": "given vectors (--vectors)"},
                          "xv": {"skipped": "given vectors (--vectors)"},
                          "learning_curve": {"rows": [], "note": "note"}},
             "variants": {"base": {"form_router": {
                 "diff_vs_fixed": 0.25, "diff_vs_fixed_ci": [0.1, 0.4], "diff_vs_fixed_p": 0.01,
                 "diff_vs_fixed_verdict": "W2S beats fixed beyond the noise"}}}})
    text = headroom_text(block, "caa", "logreg")
    assert "retest: skipped (given vectors (--vectors))" in text
    assert "cross-validated" not in text  # nothing computed, nothing shown
    assert "answer-form router − fixed: +0.250 [+0.100,+0.400]  p=0.01" in text
    assert text.endswith("reading: headroom not measured; robustness not measured; "
                         "question not run")


def test_headroom_text_without_a_retest_block_and_with_a_stored_reading():
    m = MethodResult.from_dict({"headroom": {"xv": {"diff": 0.3, "ci": [0.1, 0.5], "p": 0.001,
                                                    "test": "sign-flip exact", "n_nonzero": 9,
                                                    "verdict": "beats"}},
                                "reading": {"text": "stored words",
                                            "rules": {"version": RULES_VERSION}},
                                "variants": {}})
    text = headroom_text(m, "l2s", "knn")
    assert "Is there anything to learn? (l2s, base test items)" in text
    assert "retest on None items" in text  # no retest block: nothing to show but the gap
    assert ("cross-validated oracle − cross-validated fixed: +0.300 [+0.100,+0.500]  p=0.001 "
            "(sign-flip exact, 9 non-zero)  beats") in text
    assert "learning curve (knn; ): –" in text and text.endswith("reading: stored words")
    with pytest.raises(AttributeError):
        headroom_text(m.to_dict(), "l2s", "knn")  # type: ignore[arg-type]


def test_the_docstring_examples_run() -> None:
    """The examples in the docstrings (typed results in, the text shown out) hold."""
    failed, attempted = doctest.testmod(importlib.import_module("w2s_lens.report.tables.summary"),
                                        optionflags=doctest.ELLIPSIS)
    assert failed == 0 and attempted > 0
