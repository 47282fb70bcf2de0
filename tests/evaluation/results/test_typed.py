"""The typed result over results.json: exact round trips, views checked against the dict."""

from __future__ import annotations

import copy
import dataclasses
import doctest
import importlib
import json
from pathlib import Path

import pytest

from w2s_lens.artifacts.provenance import FORMAT_VERSION, ArtifactMismatch
from w2s_lens.evaluation.results.evidence import RULES_VERSION, reading_words
from w2s_lens.evaluation.results.frames import ITEMS_FILE, REPR_ROWS, comparison_rows
from w2s_lens.evaluation.results.headroom import (
    CrossValidatedOracle,
    Headroom,
    Reading,
    Retest,
    ViewReading,
)
from w2s_lens.evaluation.results.nodes import RouterComparison, Summary
from w2s_lens.evaluation.results.typed import (
    EvaluationResult,
    MethodResult,
    VariantResult,
    as_result,
)
from w2s_lens.report.tables.summary import headroom_text
from w2s_lens.routing.views import split_router_name as split_router

ROOT = Path(__file__).resolve().parents[3]
COMMITTED = sorted((ROOT / "analysis" / "results").rglob("results.json"))
POWERED = ROOT / "analysis/results/powered/cloze-0.5b/corrigible-neutral-HHH/results.json"


def _ids(p: Path) -> str:
    return str(p.parent.relative_to(ROOT / "analysis" / "results"))


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_there_are_committed_results() -> None:
    assert len(COMMITTED) >= 10 and POWERED in COMMITTED


@pytest.mark.parametrize("path", COMMITTED, ids=_ids)
def test_every_committed_results_json_round_trips_exactly(path: Path) -> None:
    d = _load(path)
    r = EvaluationResult.from_dict(copy.deepcopy(d))
    assert r.to_dict() == d
    # same keys in the same order: the written file is byte-identical
    assert json.dumps(r.to_dict(), indent=2) == json.dumps(d, indent=2)
    assert EvaluationResult.load(path) == r


@pytest.mark.parametrize("path", COMMITTED, ids=_ids)
def test_typed_fields_are_the_dict_values(path: Path) -> None:
    d = _load(path)
    r = EvaluationResult.load(path)
    assert (r.model, r.dataset, r.readout, r.n_train, r.n_test, r.split_seed) == (
        d["model"], d["dataset"], d["readout"], d["n_train"], d["n_test"], d["split_seed"])
    assert list(r.layers) == d["layers"] and r.primary_router == d["primary_router"]
    assert r.path == path
    for method, md in d["methods"].items():
        m = r.methods[method]
        assert isinstance(m, MethodResult) and m.fixed_layer == md["fixed_layer"]
        assert m.train_best_layer_counts == {int(k): v for k, v in
                                             md["train_best_layer_counts"].items()}
        for router, cv in md["router_cv"].items():
            assert m.router_cv[router].best_params == cv["best_params"]
            assert m.router_cv[router].n_splits == cv["n_splits"]
        assert m.headroom.retest.kappa == md["headroom"]["retest"].get("kappa")
        assert m.headroom.xv.oracle == md["headroom"]["xv"].get("xv_oracle")
        rows = md["headroom"]["learning_curve"]["rows"]
        assert [c.diff for c in m.headroom.learning_curve.rows] == [x["diff"] for x in rows]
        for variant, vd in md["variants"].items():
            v = m.variants[variant]
            assert isinstance(v, VariantResult) and v.n == vd["n"]
            assert v.fixed.steerability == vd["fixed"]["steerability"]
            assert v.oracle.steerability_ci == tuple(vd["oracle"]["steerability_ci"])
            for router, wd in vd["w2s"].items():
                c = v.routers[router]
                assert (c.diff, c.p, c.p_less, c.mde, c.verdict, c.test, c.accuracy) == (
                    wd["diff_vs_fixed"], wd["diff_vs_fixed_p"], wd["diff_vs_fixed_p_less"],
                    wd["diff_vs_fixed_mde"], wd["diff_vs_fixed_verdict"],
                    wd["diff_vs_fixed_test"], wd["accuracy"])
                assert list(c.diff_ci) == wd["diff_vs_fixed_ci"]


@pytest.mark.parametrize("path", COMMITTED, ids=_ids)
def test_to_pandas_has_one_row_per_method_variant_router(path: Path) -> None:
    d = _load(path)
    df = EvaluationResult.load(path).to_pandas()
    expected = [(m, v, k) for m, md in d["methods"].items() for v, vd in md["variants"].items()
                for k in vd["w2s"]]
    assert list(zip(df.method, df.variant, df.router)) == expected
    for row in df.itertuples():
        v = d["methods"][row.method]["variants"][row.variant]
        w = v["w2s"][row.router]
        assert row.diff == w["diff_vs_fixed"] and row.verdict == w["diff_vs_fixed_verdict"]
        assert (row.diff_lo, row.diff_hi) == tuple(w["diff_vs_fixed_ci"])
        assert row.p == w["diff_vs_fixed_p"] and row.w2s == w["steerability"]
        assert row.fixed == v["fixed"]["steerability"] and row.fixed_layer == v["fixed_layer"]
        assert row.oracle == v["oracle"]["steerability"]
        assert row.primary == (row.router == d["primary_router"])
        assert (row.kind, row.view) == split_router(row.router)


@pytest.mark.parametrize("path", COMMITTED, ids=_ids)
def test_summary_and_repr_show_the_numbers_and_the_reading(path: Path) -> None:
    d = _load(path)
    r = EvaluationResult.load(path)
    text = r.summary()
    lines = text.splitlines()
    for method, md in d["methods"].items():
        # the reading the CLI's table prints (an independent formatter) is the one shown here
        reading = headroom_text(r.methods[method], method,
                                d["primary_router"]).splitlines()[-1].strip()
        assert reading.startswith("reading: ") and f"  {reading}" in lines
        for variant, vd in md["variants"].items():
            for router, w in vd["w2s"].items():
                lo, hi = w["diff_vs_fixed_ci"]
                row = [x for x in lines if x.split()[:2] in ([variant, router],
                                                              [variant, f"*{router}"])]
                assert len(row) == 1, (variant, router)
                assert f"{w['diff_vs_fixed']:+.3f} [{lo:+.3f},{hi:+.3f}]" in row[0]
                assert f"{w['diff_vs_fixed_p']:.3g}" in row[0]
                assert row[0].endswith(w["diff_vs_fixed_verdict"])
    shown = repr(r).splitlines()
    assert len(shown) <= REPR_ROWS + 3 + len(d["methods"]) and len(shown) < len(text.splitlines())
    assert d["model"] in shown[0] and d["primary_router"] in shown[0]


def test_save_and_load_keep_the_format_stamp(tmp_path: Path) -> None:
    r = EvaluationResult.load(POWERED)
    f = r.save(tmp_path / "run")
    assert f == tmp_path / "run" / "results.json"
    on_disk = json.loads(f.read_text())  # plain indented JSON, readable by jq
    assert on_disk["format_version"] == FORMAT_VERSION and on_disk == _load(POWERED)
    assert f.read_text().startswith('{\n  "model"')
    again = EvaluationResult.load(tmp_path / "run")
    assert again == r and again.path == f
    assert EvaluationResult.load(r.save(tmp_path / "x.json")) == r


def test_load_errors_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere does not exist; pass a run directory"):
        EvaluationResult.load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty/results.json does not exist"):
        EvaluationResult.load(tmp_path / "empty")
    EvaluationResult.load(POWERED).save(tmp_path / "study" / "row1")
    with pytest.raises(FileNotFoundError, match=r"run directories below it: .*study/row1"):
        EvaluationResult.load(tmp_path / "study")
    old = _load(POWERED) | {"format_version": 1}
    (tmp_path / "old.json").write_text(json.dumps(old))
    with pytest.raises(ArtifactMismatch, match="format_version 1; .*rerun `w2s-lens evaluate`"):
        EvaluationResult.load(tmp_path / "old.json")
    (tmp_path / "sweep.json").write_text(json.dumps({"format_version": FORMAT_VERSION, "a": 1}))
    with pytest.raises(ArtifactMismatch, match="sweep.json: not an evaluation's results"):
        EvaluationResult.load(tmp_path / "sweep.json")
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(ArtifactMismatch, match="holds a list"):
        EvaluationResult.load(tmp_path / "list.json")


def test_a_wrong_name_says_which_exist() -> None:
    r = EvaluationResult.load(POWERED)
    with pytest.raises(KeyError, match="no method 'l2s' here; there are: caa"):
        r.methods["l2s"]
    with pytest.raises(KeyError, match="no router 'svm' here; there are: logreg, mlp"):
        r.comparison(router="svm")
    assert r.comparison().verdict == r.methods["caa"].variants["base"].routers["logreg"].verdict


def _newer() -> dict:
    """A results dict with the upcoming schema additions and keys no version knows."""
    d = _load(POWERED)
    d["router_inputs"] = ["question", "options"]
    d["new_top"] = {"x": 1}
    m = d["methods"]["caa"]
    m["router_cv"]["logreg"] |= {"grid": [0.01, 0.1, 1], "at_grid_edge": True}
    base = m["variants"]["base"]
    base["w2s"]["knn@options"] = base["w2s"]["knn"] | {"diff_vs_fixed": 0.125, "new": 2}
    base["fixed"]["new_stat"] = [1, 2]
    m["reading"] = {"headroom": {"holds": False, "text": "nothing to learn", "kappa": 0.1},
                    "robustness": {"kappa": None, "text": "no retest"},
                    "views": {"options": {"reading": "no gain", "diff": 0.125, "mde": None,
                                          "p": 0.5}},
                    "text": "nothing to learn here, in any view",
                    "rules": {"version": RULES_VERSION}}  # today's rules: shown as stored
    return d


def test_newer_schema_keys_are_typed_and_round_trip() -> None:
    d = _newer()
    r = EvaluationResult.from_dict(copy.deepcopy(d))
    assert r.to_dict() == d and json.dumps(r.to_dict()) == json.dumps(d)
    m = r.methods["caa"]
    assert r.router_inputs == ("question", "options") and r.extra == {"new_top": {"x": 1}}
    assert m.router_cv["logreg"].at_grid_edge is True and m.router_cv["logreg"].grid[-1] == 1
    assert m.router_cv["knn"].at_grid_edge is None  # absent in older runs
    assert m.reading.headroom.holds is False and m.reading.headroom.extra == {"kappa": 0.1}
    assert m.reading.views["options"].p == 0.5 and m.reading.robustness.kappa is None
    assert m.variants["base"].routers["knn@options"].extra == {"new": 2}
    assert m.variants["base"].fixed.extra == {"new_stat": [1, 2]}
    assert split_router("knn@options") == ("knn", "options")
    row = r.to_pandas().query("router == 'knn@options'").iloc[0]
    assert (row["kind"], row["view"], row["diff"]) == ("knn", "options", 0.125)
    assert "  reading: nothing to learn here, in any view" in r.summary().splitlines()


def test_parts_set_after_reading_are_written_and_absent_ones_stay_absent() -> None:
    d = _load(POWERED)
    r = EvaluationResult.from_dict(d)
    assert "reading" not in r.to_dict()["methods"]["caa"]
    assert "router_inputs" not in r.to_dict()
    reading = Reading(text="read in code")
    m = dataclasses.replace(r.methods["caa"], reading=reading)
    assert m.to_dict()["reading"] == {"headroom": None, "robustness": None, "views": None,
                                      "text": "read in code"}
    assert list(m.to_dict())[:-1] == list(d["methods"]["caa"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.model = "other"  # type: ignore[misc]


def test_parts_built_in_code_write_every_field() -> None:
    c = RouterComparison(diff=0.5, diff_ci=(0.1, 0.9), verdict="W2S beats fixed beyond the noise")
    out = c.to_dict()
    assert out["diff_vs_fixed_ci"] == [0.1, 0.9] and out["diff_vs_fixed_mde"] is None
    assert RouterComparison.from_dict(out) == c
    r = EvaluationResult(model="m", primary_router="logreg", methods={"caa": MethodResult(
        fixed_layer=3, variants={"base": VariantResult(n=4, fixed=Summary(steerability=1.0),
                                                       routers={"logreg": c})})})
    d = r.to_dict()
    assert d["methods"]["caa"]["variants"]["base"]["w2s"]["logreg"]["diff_vs_fixed"] == 0.5
    assert EvaluationResult.from_dict(d).to_dict() == d
    assert comparison_rows(r)[0]["diff_lo"] == 0.1
    assert Retest.from_dict({"skipped": "given vectors"}).to_dict() == {"skipped": "given vectors"}


def test_empty_blocks_write_back_empty_and_keys_read_as_null_are_held() -> None:
    assert Summary.from_dict({}).to_dict() == {}
    h = Headroom.from_dict({"retest": {}, "xv": {"skipped": "given vectors"}})
    assert h.to_dict() == {"retest": {}, "xv": {"skipped": "given vectors"}}
    assert h.retest.empty and not h.xv.empty and Summary().empty
    assert not Summary.from_dict({"steerability": None}).empty  # the key is there, as null
    assert h.xv.has("skipped") and not h.xv.has("diff") and not h.has("skipped")
    older = RouterComparison.from_dict({"diff_vs_fixed_ci": [0.1, 0.2]})
    newer = RouterComparison.from_dict({"diff_vs_fixed_ci": [0.1, 0.2], "diff_vs_fixed_mde": None})
    assert (older.has("mde"), newer.has("mde")) == (False, True)
    assert RouterComparison(mde=0.2).has("mde") and not RouterComparison().has("mde")
    with pytest.raises(AttributeError, match="no stored field 'order'"):
        older.has("order")
    assert Headroom.from_dict({"skipped": "--no-retest"}).skipped == "--no-retest"


def test_verdict_text_and_test_name_read_older_comparisons_too() -> None:
    older = RouterComparison.from_dict({"diff_vs_fixed_ci": [-0.3, -0.01]})
    assert older.verdict_text() == "W2S is worse than fixed"
    assert older.verdict_text(labelled=True) == "W2S is worse than fixed (bootstrap CI (older))"
    assert older.test_name == "bootstrap CI (older)"
    d = _load(POWERED)
    for router, w in d["methods"]["caa"]["variants"]["base"]["w2s"].items():
        c = EvaluationResult.from_dict(d).comparison(router=router)
        assert c.verdict_text(labelled=True) == w["diff_vs_fixed_verdict"]
        assert c.test_name == w["diff_vs_fixed_test"]


def test_evidence_is_the_stored_reading_or_the_one_read_now() -> None:
    d = _load(POWERED)
    m = EvaluationResult.from_dict(d).methods["caa"]
    assert m.reading is None  # this file predates stored readings
    read = m.evidence(d["primary_router"])
    assert read.text == reading_words(d["methods"]["caa"], d["primary_router"])
    assert read.views["question"].ci == tuple(
        d["methods"]["caa"]["variants"]["base"]["w2s"]["logreg"]["diff_vs_fixed_ci"])
    assert isinstance(read.views["question"], ViewReading) and read.headroom.holds is True
    stored = MethodResult.from_dict(_newer()["methods"]["caa"])
    assert stored.evidence("logreg").text == "nothing to learn here, in any view"
    assert stored.evidence("logreg") == stored.reading
    older = dataclasses.replace(stored, reading=dataclasses.replace(stored.reading, extra={}))
    assert older.evidence("logreg").text != stored.reading.text  # older rules: read again
    assert CrossValidatedOracle.from_dict({"xv_fixed": 1.0}).fixed == 1.0


def test_as_result_takes_a_result_a_path_or_a_dict(tmp_path: Path) -> None:
    r = EvaluationResult.load(POWERED)
    assert as_result(r) is r
    assert as_result(POWERED) == r and as_result(POWERED.parent).path == POWERED
    assert as_result(str(POWERED)) == r and as_result(_load(POWERED)) == r
    with pytest.raises(TypeError, match="got list"):
        as_result([1])
    with pytest.raises(FileNotFoundError):
        as_result(tmp_path / "nowhere")


def test_from_dict_refuses_what_is_not_a_result() -> None:
    with pytest.raises(ValueError, match="no 'methods' key .*keys: model"):
        EvaluationResult.from_dict({"model": "m"})
    with pytest.raises(TypeError, match="not list"):
        EvaluationResult.from_dict([])


def test_the_headroom_reading_without_a_stored_one_is_read_from_the_diagnostics() -> None:
    d = _load(POWERED)
    expect = reading_words(d["methods"]["caa"], d["primary_router"])
    assert expect.startswith("headroom; robust to re-estimating the vector")
    assert f"caa headroom: {expect}" in repr(EvaluationResult.from_dict(d))


def test_items_frame_reads_items_csv_beside_results(tmp_path: Path) -> None:
    r = EvaluationResult.load(POWERED)
    with pytest.raises(FileNotFoundError, match=f"corrigible-neutral-HHH/{ITEMS_FILE} does not"):
        r.items_frame()
    with pytest.raises(ValueError, match="pass run_dir="):
        EvaluationResult.from_dict(_load(POWERED)).items_frame()
    run = tmp_path / "run"
    saved = EvaluationResult.load(r.save(run))
    (run / ITEMS_FILE).write_text(
        "split,sweep,id,matching_tokens,non_matching_tokens,best_layer,s_L3,s_L7,route_logreg\n"
        "test,base,007,2,3,7,0.1,0.4,7\ntest,retest-1,007,2,3,3,0.5,0.2,7\n")
    df = saved.items_frame()
    assert df.id.tolist() == ["007", "007"] and df.best_layer.tolist() == [7, 3]
    assert df.equals(r.items_frame(run / "results.json")) and df.equals(r.items_frame(run))
    (run / ITEMS_FILE).write_text("a,b\n1,2\n")
    with pytest.raises(ArtifactMismatch, match="lacks the columns split, sweep, id"):
        saved.items_frame()


@pytest.mark.parametrize("module", ["typed", "nodes", "headroom", "frames"])
def test_the_docstring_examples_run(module: str) -> None:
    mod = importlib.import_module(f"w2s_lens.evaluation.results.{module}")
    failed, attempted = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert failed == 0 and attempted > 0


@pytest.mark.parametrize(("settings", "shown"), [
    ({"readout": "cloze", "scoring": "first"}, "scored on the first differing option token"),
    ({"readout": "cloze", "scoring": "sum", "list_options": True},
     "summed log-probs, options listed"),
    ({"readout": "cloze", "length_norm": True}, "length-normalised"),
    ({"readout": "cloze", "positions": "prompt"}, "steering the prompt only"),
    ({"readout": "letter", "mirror": True, "positions": "all"}, "mirrored, steering every"),
    ({"readout": "letter", "scale": "relative", "fraction": 0.25},
     "relative scale: λ = 1 adds 0.25 of the residual norm"),
    ({"readout": "letter", "scale": "relative", "fraction": 1 / 3}, "adds 0.333333 of"),
    ({"readout": "letter", "scale": "relative"}, "single order, relative scale ·"),
])
def test_the_title_names_every_setting_that_changes_the_measurement(settings, shown) -> None:
    r = EvaluationResult.from_dict({"model": "m", "dataset": "d", "methods": {}, **settings})
    title = r.summary().splitlines()[0]
    assert shown in title
    assert ("relative" in title) == (settings.get("scale") == "relative")
    assert ("steering" in title) == (settings.get("positions") in ("all", "prompt"))


def test_view_costs_are_typed_round_trip_and_tabulate() -> None:
    d = {"methods": {}, "view_costs": [
        {"split": "train", "features": "question", "cpu_s": 0.0, "wall_s": 0.0,
         "n_presentations": 4, "note": "captured by the sweep (no extra pass)"},
        {"split": "train", "features": "options", "cpu_s": 6.0, "wall_s": 6.5,
         "n_presentations": 4},
        {"split": "base", "features": "options", "n_presentations": 2,
         "note": "read back; computed before costs were kept"}]}
    r = EvaluationResult.from_dict(copy.deepcopy(d))
    assert r.to_dict() == d
    assert r.view_costs[1].per_presentation_cpu_s == 1.5
    assert r.view_costs[2].per_presentation_cpu_s is None
    frame = r.view_cost_frame()
    assert list(frame["features"]) == ["question", "options", "options"]
    assert frame["per_presentation_cpu_s"].tolist()[:2] == [0.0, 1.5]
    assert EvaluationResult.from_dict({"methods": {}}).view_cost_frame().empty
