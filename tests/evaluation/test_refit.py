"""Refitting a finished run's routers from ``items.csv``: a refit of current routers
reproduces the run on every readout, only stale routers are replaced (and recorded), and
per-item data or examples that are not the run's are refused."""

import csv
import json
import shutil
from dataclasses import replace

import pytest

from w2s_lens.artifacts.provenance import ArtifactMismatch
from w2s_lens.controls.synthetic import build_control
from w2s_lens.evaluation.config import EvalConfig
from w2s_lens.evaluation.pipeline import evaluate_examples
from w2s_lens.evaluation.refit import refit, refit_routers, stale_router_names
from w2s_lens.evaluation.split import SplitExamples
from w2s_lens.routing.estimators import grid_is_current

CFG = dict(dataset="synthetic", variants=("base",), n_boot=200, cross_fit=3,
           routers=("logreg", "knn"), router_inputs=("question", "options"))
NAMES = ["logreg", "knn", "logreg@options", "knn@options"]
FILES = ("results.json", "run.json", "items.csv")  # what a study folder keeps of a run


@pytest.fixture(scope="module")
def control():
    return build_control("positive", n_families=3, n_layers=4, seed=0)


def _split(control, test_seed=2, both_orders=True):
    train = control.make_examples(24, seed=1, both_orders=True)
    test = control.make_examples(12, seed=test_seed, both_orders=both_orders)
    return SplitExamples(vector_train=train, sweep_train=train if both_orders
                         else control.make_examples(24, seed=1), test={"base": test})


def _cloze_split(control):
    def cloze(examples):
        return [replace(ex, matching_token_id=None, non_matching_token_id=None,
                        matching_continuation=(ex.matching_token_id,) * (1 + (i % 2 == 0)),
                        non_matching_continuation=(ex.non_matching_token_id,))
                for i, ex in enumerate(examples)]
    train = control.make_examples(24, seed=1)
    return SplitExamples(train, cloze(train), {"base": cloze(control.make_examples(12, seed=2))})


@pytest.fixture(scope="module")
def runs(control, tmp_path_factory):
    """A mirrored letter run, a single-order letter run and a cloze run, each reduced to the
    three files a study folder keeps."""
    root = tmp_path_factory.mktemp("refit")
    out = {}
    for name, split, extra in (
            ("mirrored", _split(control), {}),
            ("single", _split(control, both_orders=False), {"mirror": False}),
            ("cloze", _cloze_split(control), {"readout": "cloze"})):
        evaluate_examples(control.model, split, EvalConfig(**CFG, **extra), root / name / "run",
                          progress=False)
        for f in FILES:
            (root / name / f).write_bytes((root / name / "run" / f).read_bytes())
        out[name] = (root / name, split)
    return out


def _copy(run, tmp_path):
    folder = tmp_path / "study"
    folder.mkdir()
    for f in FILES:
        shutil.copy(run / f, folder / f)
    return folder


def _items(folder):
    with open(folder / "items.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("readout", ["mirrored", "single", "cloze"])
def test_refitting_current_routers_reproduces_the_run(control, runs, readout):
    folder, split = runs[readout]
    out = refit(control.model, split, folder, NAMES)
    assert out.routers == [f"caa/{n}" for n in NAMES]
    assert out.differences() == []
    base = [r for r in _items(folder) if r["sweep"] == "base"]
    for name in NAMES:
        assert out.routes["caa", "base"][name] == [int(r[f"route_{name}"]) for r in base]
    assert refit(control.model, split, folder).routers == []  # nothing stale, nothing refitted
    block = out.results["methods"]["caa"]["variants"]["base"]
    if readout == "single":
        assert set(block["by_letter"]) == {"A", "B"}
    if readout == "mirrored":  # items.csv keeps no per-order data: the refitted leave it
        assert block["single_order"]["w2s"] == {}


def test_a_stale_router_is_refitted_and_recorded(control, runs, tmp_path):
    run, split = runs["mirrored"]
    folder = _copy(run, tmp_path)
    before = json.loads((run / "results.json").read_text())
    stale = json.loads((run / "results.json").read_text())
    caa = stale["methods"]["caa"]
    caa["router_cv"]["knn"]["grid"] = [1, 2]  # tuned on another grid: stale
    caa["variants"]["base"]["w2s"]["knn"]["steerability"] = -99.0
    (folder / "results.json").write_text(json.dumps(stale))
    rows = _items(folder)
    for r in rows:
        if r["sweep"] == "base":
            r["route_knn"] = "0"
    with open(folder / "items.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    assert stale_router_names(stale, "caa") == ["knn"]

    result = refit_routers(control.model, split, folder)

    new = json.loads((folder / "results.json").read_text())
    record = new["refits"][-1]
    assert record["routers"] == ["caa/knn"] and "items.csv" in record["source"]
    assert "single-order" in record["single_order"]
    assert list(result.refits) == new["refits"]  # typed
    knn = new["methods"]["caa"]["router_cv"]["knn"]
    assert grid_is_current("knn", knn["grid"], knn["n_samples"])
    old = before["methods"]["caa"]["router_cv"]["knn"]
    assert knn["best_params"] == old["best_params"] and knn["grid"] == old["grid"]
    assert knn["cv_score"] == pytest.approx(old["cv_score"])
    got, want = (r["methods"]["caa"]["variants"]["base"] for r in (new, before))
    assert got["w2s"]["knn"]["steerability"] == pytest.approx(want["w2s"]["knn"]["steerability"])
    assert got["w2s"]["logreg"] == want["w2s"]["logreg"]  # not refitted: kept as stored
    assert "knn" not in got["single_order"]["w2s"] and "logreg" in got["single_order"]["w2s"]
    assert [r["route_knn"] for r in _items(folder) if r["sweep"] == "base"] == \
        [r["route_knn"] for r in _items(run) if r["sweep"] == "base"]
    assert stale_router_names(new, "caa") == []


def test_data_that_do_not_reproduce_the_run_are_refused(control, runs, tmp_path):
    run, split = runs["mirrored"]
    folder = _copy(run, tmp_path)
    with pytest.raises(ArtifactMismatch, match="test items are not the run's"):
        refit(control.model, _split(control, test_seed=3), folder, ["knn"])
    with pytest.raises(ValueError, match="no routers"):
        refit(control.model, split, folder, ["mlp"])
    rows = _items(folder)
    k = next(i for i, r in enumerate(rows) if r["sweep"] == "base")
    rows[k]["s_L2"] = str(float(rows[k]["s_L2"]) + 5.0)
    with open(folder / "items.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(ArtifactMismatch, match="summary differs from results.json"):
        refit(control.model, split, folder, ["knn"])
    (folder / "items.csv").unlink()
    with pytest.raises(FileNotFoundError, match="kept no per-item data"):
        refit(control.model, split, folder, ["knn"])


def test_tuning_keys_added_since_the_run_are_not_compared(control, runs, tmp_path):
    run, split = runs["mirrored"]
    folder = _copy(run, tmp_path)
    older = json.loads((folder / "results.json").read_text())
    record = older["methods"]["caa"]["router_cv"]["logreg"]
    for key in ("within_one_se", "score_se"):  # written by newer versions only
        record.pop(key)
    (folder / "results.json").write_text(json.dumps(older))
    assert refit(control.model, split, folder, ["logreg"]).differences() == []
    record["best_params"] = {"C": 1e-5}  # a choice the data do not make
    (folder / "results.json").write_text(json.dumps(older))
    assert refit(control.model, split, folder, ["logreg"]).differences() == ["caa/logreg: tuning"]
