"""The cross-dataset table, assembled (w2s_lens.report.tables.cross_dataset): rows, summary counts,
markdown and CSV from the typed results of the synthetic controls (expected numbers read from
their results.json dicts), and from older result files (dicts edited, then read as typed)."""

from __future__ import annotations

import csv
import doctest
import importlib
import io

import numpy as np
import pytest
import scipy.stats

from w2s_lens.controls.synthetic import build_control
from w2s_lens.evaluation.config import EvalConfig
from w2s_lens.evaluation.pipeline import evaluate_examples
from w2s_lens.evaluation.results.typed import EvaluationResult
from w2s_lens.evaluation.split import SplitExamples
from w2s_lens.evaluation.stats.paired import (
    ALPHA,
    OLDER_TEST,
    VERDICT_BETTER,
    VERDICT_NONE,
    VERDICT_TOO_FEW,
    VERDICT_WORSE,
)
from w2s_lens.report.tables.cross_dataset import (
    COLUMNS,
    Table,
    readout_label,
    summary_rows,
    table_rows,
)
from w2s_lens.report.tables.headroom_cells import HEADROOM_COLUMNS

# --------------------------------------------------------------------------- synthetic results

SYN = dict(variants=("base",), routers=("logreg",), n_boot=300)


def _control_results(kind: str, out_dir=None) -> EvaluationResult:
    """The evaluation of a synthetic control, mirrored (both letter orders everywhere). Both
    controls get one model name, so that they summarise as two datasets of one model."""
    c = build_control(kind, n_families=3, n_layers=4, seed=0)
    c.model.cfg.model_name = "w2s-synthetic"
    train = c.make_examples(24, seed=1, both_orders=True)
    test = c.make_examples(12, seed=2, both_orders=True)
    exs = SplitExamples(vector_train=train, sweep_train=train, test={"base": test})
    return evaluate_examples(c.model, exs, EvalConfig(dataset=f"synthetic-{kind}", **SYN),
                             out_dir, progress=False)


@pytest.fixture(scope="module")
def control_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("controls")
    results = [_control_results(k, root / f"synthetic-{k}") for k in ("positive", "negative")]
    return root, results


def test_rows_from_control_results(control_root):
    _, (pos, neg) = control_root
    table = Table.from_results([pos, neg])
    assert [(r["dataset"], r["method"], r["variant"], r["readout"]) for r in table.rows] == [
        ("synthetic-positive", "caa", "base", "letter-mirrored"),
        ("synthetic-negative", "caa", "base", "letter-mirrored")]
    rp, rn = table.rows
    block = pos.to_dict()["methods"]["caa"]["variants"]["base"]
    assert rp["fixed"] == block["fixed"]["steerability"]
    assert rp["w2s"] == block["w2s"]["logreg"]["steerability"]
    assert rp["diff_p"] == block["w2s"]["logreg"]["diff_vs_fixed_p"]
    assert rp["n_test"] == 12 and rp["fixed_layer"] == block["fixed_layer"]
    assert rp["p_value"] == rp["diff_p"] and rp["test"] == "sign-flip exact"
    assert rp["n_nonzero"] == block["w2s"]["logreg"]["diff_vs_fixed_n_nonzero"] >= 6
    assert rp["mde"] == block["w2s"]["logreg"]["diff_vs_fixed_mde"] > 0
    assert rp["n_train"] == 24 and rp["model"] == "w2s-synthetic"
    assert rp["letter_oracle"] is None and rp["form_oracle"] is None  # mirrored letter rows
    assert rp["majority_acc"] == block["w2s"]["logreg"]["majority_accuracy"]
    # the positive control is a real per-input effect, the negative control is none: there the
    # router picks the fixed layer on almost every item, too few to say anything
    assert rp["verdict"] == VERDICT_BETTER and rn["verdict"] == VERDICT_TOO_FEW
    assert rn["n_nonzero"] < 6
    assert rp["diff_lo"] > 0 and rn["diff_lo"] <= 0 <= rn["diff_hi"]


def test_summary_counts_and_benjamini_hochberg(control_root):
    _, results = control_root
    table = Table.from_results(results)
    (s,) = table.summary()
    assert (s["method"], s["readout"], s["variant"], s["n_datasets"]) == (
        "caa", "letter-mirrored", "base", 2)
    assert s["wins"] == 1 and s["worse"] == 0 and s["too_few"] == 1 and s["older"] == 0
    # BH at the verdicts' own one-sided 2.5%, over the rows that are tests
    ps = np.array([r["diff_p"] for r in table.rows if r["verdict"] != VERDICT_TOO_FEW])
    assert s["wins_bh"] == int(np.sum(scipy.stats.false_discovery_control(ps) <= ALPHA)) == 1
    assert s["fixed"] == pytest.approx(np.mean([r["fixed"] for r in table.rows]))
    # a stricter q leaves fewer (or as many) datasets significant than the raw intervals
    assert table.summary(q=1e-9)[0]["wins_bh"] == 0


def test_markdown_and_csv(control_root, tmp_path):
    _, results = control_root
    table = Table.from_results(results, header="controls")
    md = table.to_markdown()
    assert md.startswith("controls\n")
    assert "| synthetic-positive | caa | letter-mirrored | base |" in md
    assert "| caa | letter-mirrored | base | 2 |" in md and "| 1 of 2 (worse in 0) | 1 of 2 |" in md
    assert "W2S beats fixed beyond the noise (sign-flip, one-sided 2.5%) | after BH at 2.5% |" in md
    assert "| 1 of 2 (worse in 0) | 1 of 2 | 1 of 2 |" in md  # the last: too few items
    pos = table.rows[0]
    assert (f"| {pos['p_value']:.3g} | sign-flip exact | {pos['mde']:.3f} | {pos['n_nonzero']} |"
            in md)
    assert "older" not in md
    paths = table.write(tmp_path)
    assert paths["md"].read_text() == md
    back = list(csv.DictReader(io.StringIO(paths["csv"].read_text())))
    assert list(back[0]) == list(COLUMNS) and len(back) == 2
    for row, orig in zip(back, table.rows):
        assert float(row["w2s"]) == orig["w2s"] and float(row["diff_hi"]) == orig["diff_hi"]
        assert row["verdict"] == orig["verdict"] and row["test"] == orig["test"]
        assert float(row["p_value"]) == orig["p_value"]
        assert int(row["n_nonzero"]) == orig["n_nonzero"]
        assert (row["model"], row["n_train"], row["n_test"]) == ("w2s-synthetic", "24", "12")
        assert row["letter_oracle"] == row["form_oracle"] == ""  # not computed on mirrored rows


def test_from_run_root_and_combine(control_root):
    root, results = control_root
    again = Table.from_run_root(root, ["synthetic-positive", "synthetic-negative"])
    assert again.rows == Table.from_results(results).rows
    assert again.header.startswith("Model w2s-synthetic;")
    assert [r["dataset"] for r in Table.from_run_root(root).rows] == [
        "synthetic-negative", "synthetic-positive"]  # by name when not given
    single = Table([{**r, "readout": "letter-single"} for r in again.rows], "single")
    both = Table.combine([again, single])
    assert [s["readout"] for s in both.summary()] == ["letter-mirrored", "letter-single"]
    assert both.header.endswith("single")
    assert "| model | method |" not in both.to_markdown()
    other = Table([{**r, "model": "other"} for r in again.rows])
    two = Table.combine([again, other])
    assert [(s["model"], s["n_datasets"]) for s in two.summary()] == [
        ("w2s-synthetic", 2), ("other", 2)]
    assert "| model | method |" in two.to_markdown()


def test_rows_read_a_result_its_run_directory_or_its_dict_alike(control_root):
    root, (pos, _) = control_root
    assert isinstance(pos, EvaluationResult)
    rows = table_rows(pos)
    assert table_rows(root / "synthetic-positive") == table_rows(pos.to_dict()) == rows
    assert [r["router"] for r in table_rows(pos, router="logreg")] == ["logreg"]
    assert table_rows(pos, router="knn") == []  # a router the run did not fit: no row
    with pytest.raises(TypeError, match="got int"):
        Table.from_results([3])  # type: ignore[list-item]


def test_readout_labels():
    r = EvaluationResult.from_dict({"readout": "cloze", "length_norm": True, "methods": {}})
    assert readout_label(r) == "cloze-length-norm"
    assert readout_label(EvaluationResult.from_dict({"readout": "letter", "mirror": False,
                                                     "methods": {}})) == "letter-single"
    assert readout_label({"readout": "letter", "mirror": True}) == "letter-mirrored"
    assert readout_label({"readout": "letter", "mirror": False}) == "letter-single"
    assert readout_label({"readout": "cloze", "mirror": True}) == "cloze"
    assert readout_label({"readout": "cloze", "length_norm": True}) == "cloze-length-norm"


OLD_KEYS = ("diff_vs_fixed_p_less", "diff_vs_fixed_test", "diff_vs_fixed_n_nonzero",
            "diff_vs_fixed_mde", "diff_vs_fixed_verdict", "majority_accuracy")


def _as_older(results: EvaluationResult) -> EvaluationResult:
    """The same results as written before the sign-flip test (no new keys)."""
    out = results.to_dict()
    for block in out["methods"].values():
        for r in block["variants"].values():
            r.pop("form_oracle", None)
            for w in r["w2s"].values():
                for key in OLD_KEYS:
                    w.pop(key, None)
    return EvaluationResult.from_dict(out)


def test_older_result_files_are_labelled(control_root):
    _, (pos, neg) = control_root
    old = Table.from_results([_as_older(pos), _as_older(neg)])
    rp, rn = old.rows
    assert rp["test"] == rn["test"] == OLDER_TEST == "bootstrap CI (older)"
    assert rp["verdict"] == f"{VERDICT_BETTER} (bootstrap CI (older))"  # its interval excludes 0
    assert rn["verdict"] == f"{VERDICT_NONE} (bootstrap CI (older))"
    assert rp["mde"] is None and rp["n_nonzero"] is None and rp["form_oracle"] is None
    (s,) = old.summary()
    assert (s["wins"], s["wins_bh"], s["too_few"], s["older"]) == (1, 1, 0, 2)
    md = old.to_markdown()
    assert "| bootstrap CI (older) |" in md and 'Rows whose test is "bootstrap CI (older)"' in md


def _row(p, verdict, **kw):
    return {"method": "caa", "readout": "cloze", "variant": "base", "fixed": 0.0, "w2s": 0.1,
            "oracle": 0.2, "letter_oracle": None, "diff": 0.1, "p_value": p, "diff_p": p,
            "verdict": verdict, "test": "sign-flip exact", **kw}


def test_bh_count_never_exceeds_the_uncorrected_count():
    # the audit's case: p-values between 2.5% and 5%, no row beats on its own
    (s,) = summary_rows([_row(p, VERDICT_NONE) for p in (0.03, 0.04, 0.045)])
    assert (s["wins"], s["wins_bh"]) == (0, 0)
    (s,) = summary_rows([_row(p, VERDICT_BETTER) for p in (0.01, 0.02, 0.024)])
    assert (s["wins"], s["wins_bh"]) == (3, 3)
    # too-few rows are neither counted nor members of the BH family (in it, their p = 1 would
    # leave the one row that beats on its own without a BH survivor)
    rows = [_row(1.0, VERDICT_TOO_FEW)] * 3 + [_row(0.01, VERDICT_BETTER)]
    (s,) = summary_rows(rows)
    assert (s["wins"], s["wins_bh"], s["too_few"]) == (1, 1, 3)
    rng = np.random.default_rng(0)
    for _ in range(200):
        ps = rng.uniform(0, 0.08, size=int(rng.integers(1, 14)))
        rows = [_row(p, VERDICT_BETTER if p <= ALPHA else VERDICT_NONE) for p in ps]
        for q in (ALPHA, 0.05):
            (s,) = summary_rows(rows, q=q)
            assert s["wins_bh"] <= s["wins"] == int(np.sum(ps <= ALPHA))


def test_cloze_rows_carry_the_form_oracle(control_root):
    _, (pos, _) = control_root
    cloze = pos.to_dict()
    cloze["readout"] = "cloze"
    block = cloze["methods"]["caa"]["variants"]["base"]
    block["letter_oracle"] = None
    block["form_oracle"] = {"steerability": 0.75, "groups": {"match-longer": 2}}
    (row,) = Table.from_results([EvaluationResult.from_dict(cloze)]).rows
    assert (row["readout"], row["form_oracle"], row["letter_oracle"]) == ("cloze", 0.75, None)
    assert "| – | +0.750 |" in Table([row]).to_markdown()
    (s,) = Table([row, {**row, "form_oracle": 0.25, "verdict": VERDICT_WORSE}]).summary()
    assert s["form_oracle"] == 0.5 and s["letter_oracle"] is None and s["worse"] == 1


def test_headroom_columns_appended_and_tabulated(control_root):
    _, (pos, neg) = control_root
    old = ("dataset", "method", "readout", "variant", "fixed_layer")
    assert COLUMNS[:5] == old and COLUMNS[-len(HEADROOM_COLUMNS):] == HEADROOM_COLUMNS
    assert COLUMNS.index("majority_acc") < COLUMNS.index("agreement")  # appended, not moved
    table = Table.from_results([pos, neg])
    rp, rn = table.rows
    h = pos.to_dict()["methods"]["caa"]["headroom"]
    assert rp["agreement"] == h["retest"]["agreement"] and rp["kappa"] == h["retest"]["kappa"]
    assert [rp["xv_diff"], [rp["xv_lo"], rp["xv_hi"]], rp["xv_p"]] == [
        h["xv"]["diff"], h["xv"]["ci"], h["xv"]["p"]]
    assert rp["form_router_diff"] is None  # letter runs have no answer-form router
    assert rp["case"] == pos.to_dict()["methods"]["caa"]["reading"]["text"]
    assert rp["case"].endswith("learned by question")  # the positive control
    assert rn["case"] != rp["case"]  # one layer for everyone: no per-input layer to learn
    md = table.to_markdown()
    assert "Is there anything to learn?" in md
    assert (f"| synthetic-positive | caa | letter-mirrored | {rp['agreement']:.2f} | "
            f"{rp['kappa']:+.2f} |") in md and f"| {rp['case']} |" in md
    # older results have no headroom: empty cells, no section
    older = pos.to_dict()
    del older["methods"]["caa"]["headroom"]
    older = EvaluationResult.from_dict(older)
    (row,) = Table.from_results([older]).rows
    assert all(row[k] is None for k in HEADROOM_COLUMNS)
    assert "Is there anything to learn?" not in Table.from_results([older]).to_markdown()


@pytest.mark.parametrize("module", ["w2s_lens.report.tables.cross_dataset",
                                    "w2s_lens.report.tables.headroom_cells"])
def test_the_docstring_examples_run(module: str) -> None:
    """The examples in the docstrings (typed results in, the text shown out) hold."""
    failed, attempted = doctest.testmod(importlib.import_module(module),
                                        optionflags=doctest.ELLIPSIS)
    assert failed == 0 and attempted > 0


@pytest.mark.parametrize(("settings", "shown"), [
    ({"readout": "cloze", "scoring": "first"}, "readout cloze (the first differing option token "
                                               "scored); layers"),
    ({"readout": "cloze", "scoring": "mean"}, "readout cloze (length-normalised); layers"),
    ({"readout": "cloze", "list_options": True}, "cloze with both options listed in the prompt;"),
    ({"scale": "relative", "fraction": 0.5}, "(relative scale, λ = 1 adds 0.5 of the residual "
                                             "norm), steering from_last"),
    ({"positions": "prompt"}, "(raw scale), steering prompt;"),
    ({"router_inputs": ("question", "options")}, "views question,options)"),
])
def test_the_header_names_each_setting_an_ablation_changes(settings, shown):
    from w2s_lens.report.tables.cross_dataset import describe_config

    text = describe_config(EvalConfig(**settings))
    assert shown in text
    assert ("relative scale" in text) == (settings.get("scale") == "relative")
