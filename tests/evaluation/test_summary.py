"""Text summaries: built from results the pipeline produced."""

import pytest

from w2s_lens.controls.synthetic import build_control
from w2s_lens.evaluation.config import EvalConfig
from w2s_lens.evaluation.pipeline import SplitExamples, evaluate_examples
from w2s_lens.evaluation.summary import comparison_text, ratio_line, results_table


@pytest.fixture(scope="module")
def results():
    control = build_control("positive", n_families=3, n_layers=4, seed=0)
    train = control.make_examples(12, seed=1, both_orders=True)
    test = control.make_examples(6, seed=2, both_orders=True)
    cfg = EvalConfig(dataset="synthetic", variants=("base",), routers=("logreg",), n_boot=100,
                     cross_fit=3, method="both")
    return evaluate_examples(control.model, SplitExamples(train, train, {"base": test}), cfg,
                             progress=False)


def test_table_has_a_row_per_method_with_intervals(results):
    text = results_table(results)
    assert "letter readout, mirrored" in text and "n_test=6" in text and "split seed 0" in text
    rows = [line for line in text.splitlines() if line.startswith(("caa ", "l2s "))]
    assert len(rows) == 2
    fixed = results["methods"]["caa"]["variants"]["base"]["fixed"]["steerability"]
    assert f"{fixed:+.3f} [" in rows[0]


def test_ratio_line(results):
    ratio = results["methods"]["caa"]["w2s_over_fixed"]
    assert ratio_line(results) == f"w2s_over_fixed={ratio:.4f}"


def test_comparison_text_plain_and_rich():
    rows = [{"prompt": "Hi", "routed_layer": 3, "fixed_layer": 2, "multiplier": 1.0,
             "unsteered": "plain text", "fixed": "fixed text", "routed": "routed text"}]
    plain = comparison_text(rows)
    assert plain.index("plain text") < plain.index("fixed text") < plain.index("routed text")
    table = comparison_text(rows, rich_table=True)
    assert "routed layer 3" in table and "routed text" in table and "---" not in table
