"""analysis/first_order_validation.py on a tiny finished run (SmolLM2-135M, cloze and mirrored
letter, 4 + 4 toy items, 3 layers, made by the pipeline as ``w2s-lens evaluate`` makes it): the
rows hold real
numbers that the per-item CSV reproduces, the measured slopes are the run's, the all-layer
sweep and the cheap labels run, and a rerun reads its cache instead of recomputing."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import write_ab_dataset

from w2s_lens.evaluation.config import EvalConfig
from w2s_lens.evaluation.storage.rundir import RunDir

_PATH = Path(__file__).resolve().parents[1] / "analysis" / "first_order_validation.py"
_spec = importlib.util.spec_from_file_location("first_order_validation", _PATH)
fov = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("first_order_validation", fov)
_spec.loader.exec_module(fov)

SMOL = "smollm2-135m-instruct"
#: SmolLM2's late layers, where the toy items' best layers differ
LAYERS = (23, 25, 28)
N_TEST, N_TRAIN = 4, 4
#: items in the toy dataset: half of them (6) is the training split the cheap labels label
N_ITEMS = 12


@pytest.fixture(scope="module", params=["cloze", "letter"])
def validated(request, tmp_path_factory):
    from w2s_lens.cli.jobs import run_evaluation

    readout = request.param
    tmp = tmp_path_factory.mktemp(f"fov-{readout}")
    data = write_ab_dataset(tmp / "data", n=N_ITEMS)
    run = tmp / "run"
    cfg = EvalConfig(model=SMOL, dataset=str(data), n_train=N_TRAIN, n_test=N_TEST,
                     variants=("base",), layers=LAYERS, readout=readout, routers=("logreg",),
                     cross_fit=2, n_boot=100, multipliers=(-1.5, -0.5, 0.0, 0.5, 1.5))
    run_evaluation(cfg, run, progress=False)
    res, out = tmp / "results", tmp / "cache"
    argv = [str(run), "--dataset-file", str(data), "--out", str(out), "--results-dir", str(res),
            "--n-boot", "200",
            "--all-layers", "2", "--cheap-labels", "--threads", "1"]
    assert fov.main(argv) == 0
    return run, res, out, data, readout


def _read(res: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(res / name)


@pytest.mark.slow
def test_rows_hold_real_numbers(validated):
    run, res, _, _, readout = validated
    df = _read(res, fov.SUMMARY_FILE)
    assert sorted(df["layer_grid"]) == ["all", "study"]
    study = df.set_index("layer_grid").loc["study"]
    every = df.set_index("layer_grid").loc["all"]
    assert study["n_items"] == N_TEST and every["n_items"] == 2
    assert study["layers"] == " ".join(map(str, LAYERS))
    assert every["layers"] == " ".join(str(x) for x in range(1, 30))
    assert study["dataset"].endswith("toy-corrigible.jsonl")
    assert study["readout"] == {"cloze": "cloze", "letter": "letter-mirrored"}[readout]
    assert study["method"] == "caa"
    for col in ("spearman_median", "spearman_q25", "spearman_q75", "spearman_median_cubic"):
        assert -1.0 <= study[col] <= 1.0
    assert study["spearman_q25"] <= study["spearman_median"] <= study["spearman_q75"]
    for col in ("best_layer_agreement", "best_layer_agreement_cubic", "retest_agreement",
                "label_free_agreement", "router_accuracy", "best_layer_chance"):
        assert 0.0 <= study[col] <= 1.0, col
    assert study["retest_source"] == "sweeps" and study["router_source"] == "routing.json"
    assert study["gain_ci_lo"] <= study["gain"] <= study["gain_ci_hi"]
    assert study["first_order_choice"] <= study["oracle"] + 1e-12
    assert pd.isna(study["fo_fixed_layer_24"]) and study["fo_fixed_layer_all"] in LAYERS
    # the first-order estimate is close to the measured slope (SmolLM2, CAA vectors), the
    # cubic-corrected one closer: a misaligned layer, scale or item would not be
    assert study["rel_gap_first_order"] < 0.25
    assert study["rel_gap_cubic"] < study["rel_gap_first_order"]
    assert every["rel_gap_cubic"] < 0.25
    # what the estimates and the all-layer sweep cost to compute (from the ledger)
    for grid in (study, every):
        assert grid["first_order_cpu_s"] > 0 and grid["label_free_cpu_s"] > 0
    assert every["sweep_cpu_s"] > 0 and pd.isna(study.get("sweep_cpu_s"))
    assert every["sweep_over_first_order_cpu"] == pytest.approx(
        every["sweep_cpu_s"] / every["first_order_cpu_s"], rel=1e-2)
    assert study["cheap_first_order_cpu_s"] > 0


@pytest.mark.slow
def test_gain_and_agreements_recomputed_from_the_item_csv(validated):
    _, res, _, _, _ = validated
    df = _read(res, fov.SUMMARY_FILE).set_index("layer_grid")
    items = _read(res, fov.ITEMS_FILE)
    for grid in ("study", "all"):
        part = items[items["layer_grid"] == grid]
        m = part.pivot(index="item", columns="layer", values="measured")
        rows = {}
        for est in ("first_order", "cubic", "label_free"):
            e = part.pivot(index="item", columns="layer", values=est).loc[m.index, m.columns]
            rows[est] = e.to_numpy().argmax(axis=1)
        mm = m.to_numpy()
        fixed = mm.mean(axis=0).argmax()
        idx = np.arange(len(mm))
        row = df.loc[grid]
        assert row["gain"] == pytest.approx((mm[idx, rows["first_order"]] - mm[:, fixed]).mean(),
                                            abs=1e-9)
        assert row["gain_cubic"] == pytest.approx(
            (mm[idx, rows["cubic"]] - mm[:, fixed]).mean(), abs=1e-9)
        assert row["best_layer_agreement"] == pytest.approx(
            np.mean(rows["first_order"] == mm.argmax(axis=1)))
        assert row["label_free_agreement"] == pytest.approx(
            np.mean(rows["label_free"] == mm.argmax(axis=1)))
        assert row["oracle"] == pytest.approx(mm.max(axis=1).mean())
        assert row["measured_fixed_layer"] == int(m.columns[fixed])
    layers = _read(res, fov.LAYERS_FILE)
    study = layers[layers["layer_grid"] == "study"]
    got = items[items["layer_grid"] == "study"].groupby("layer")["first_order"].mean()
    assert np.allclose(study.set_index("layer")["first_order_mean"].loc[got.index], got)


@pytest.mark.slow
def test_measured_slopes_are_the_runs_and_the_router_is_refitted_alike(validated):
    run, res, _, _, readout = validated
    rd = RunDir(run)
    sweep, exs = rd.load_sweep(rd.sweep_dir("base", "caa"))
    if readout == "letter":  # both letter orders of every item, averaged
        assert len(exs) == 2 * N_TEST
        sweep = sweep.mirrored()
    items = _read(res, fov.ITEMS_FILE)
    part = items[items["layer_grid"] == "study"]
    m = part.pivot(index="item", columns="layer", values="measured").loc[sweep.ids]
    assert list(m.columns) == sweep.layers
    assert np.allclose(m.to_numpy(), sweep.steerability, atol=1e-9)
    cheap = _read(res, fov.CHEAP_FILE).set_index("labels")
    assert list(cheap["n_train_items"]) == [N_TRAIN, N_TRAIN, N_ITEMS // 2]
    assert (cheap["n_test_items"] == N_TEST).all()
    for _, r in cheap.iterrows():
        assert r["gain_ci_lo"] <= r["gain_vs_fixed"] <= r["gain_ci_hi"]
        assert 0.0 <= r["accuracy"] <= 1.0
        assert r["gain_vs_fixed"] == pytest.approx(r["routed"] - r["fixed"])
    # the measured-label router is the run's own (same features, labels, seed)
    routing = rd.read_routing(rd.sweep_dir("base", "caa"))
    want = np.mean(np.array(routing["router_layer"]["logreg"])
                   == np.array(routing["oracle_layer"]))
    assert cheap.loc["measured", "accuracy"] == pytest.approx(want)
    assert cheap.loc["measured", "fixed_layer"] == routing["fixed_layer"]
    summary = _read(res, fov.SUMMARY_FILE).set_index("layer_grid").loc["study"]
    assert summary["cheap_n_train_all"] == N_ITEMS // 2
    assert summary["cheap_gain_first_order_all"] == pytest.approx(
        cheap.loc["first_order_all", "gain_vs_fixed"])


@pytest.mark.slow
# the cache is the same code for both readouts: checked once, on the cloze run
@pytest.mark.parametrize("validated", ["cloze"], indirect=True)
def test_rerun_reads_the_cache_and_replaces_its_rows(validated, monkeypatch):
    run, res, out, data, readout = validated
    assert readout == "cloze"
    before = _read(res, fov.SUMMARY_FILE)

    def boom(*a, **k):
        raise AssertionError("a cached first-order chunk was recomputed")

    monkeypatch.setattr(fov, "first_order", boom)
    monkeypatch.setattr(fov, "label_free", boom)
    monkeypatch.setattr(fov, "behaviour_direction", boom)
    assert fov.main([str(run), "--dataset-file", str(data), "--out", str(out),
                     "--results-dir", str(res), "--n-boot", "200", "--threads", "1"]) == 0
    after = _read(res, fov.SUMMARY_FILE)
    assert len(after) == len(before) == 2  # the study row replaced, not added
    # columns the rerun did not compute (no --cheap-labels) keep their values
    assert a_cheap(after) == pytest.approx(a_cheap(before))
    a = after.set_index("layer_grid").loc["study"]
    b = before.set_index("layer_grid").loc["study"]
    for col in ("gain", "spearman_median", "best_layer_agreement", "label_free_agreement",
                "first_order_cpu_s", "label_free_cpu_s"):  # read back: the cost stays the same
        assert a[col] == pytest.approx(b[col])
    assert (out / "study" / "first_order" / "chunks" / "manifest.json").is_file()


@pytest.mark.slow
# the preparation is the same code for both readouts: checked once, on the cloze run
@pytest.mark.parametrize("validated", ["cloze"], indirect=True)
def test_prepare_before_the_base_sweep_caches_what_the_finished_run_reads_back(
        validated, tmp_path, monkeypatch):
    import shutil

    run, _, _, data, readout = validated
    assert readout == "cloze"
    early = tmp_path / "early"
    shutil.copytree(run, early)
    shutil.rmtree(RunDir(early).sweep_dir("base", "caa"))  # the base sweep not finished yet
    cache, res = tmp_path / "cache", tmp_path / "results"
    common = ["--dataset-file", str(data), "--out", str(cache), "--results-dir", str(res),
              "--n-boot", "200", "--all-layers", "2", "--cheap-labels", "--threads", "1"]
    with pytest.raises(SystemExit, match="--prepare"):
        fov.main([str(early), *common])
    assert fov.main([str(early), "--prepare", *common]) == 0
    assert not res.exists()  # no rows from a run without its measured sweep
    for name in ("study/first_order", "study/label_free", "train_all/first_order",
                 "all/first_order", "all/label_free", "all_layers/sweep"):
        assert any((cache / name).rglob("*.safetensors")), name
    spent = fov.CostLedger(cache).get("sweep:all")
    chunks = {p: p.stat().st_mtime_ns for p in (cache / "all_layers").rglob("*.safetensors")}

    def boom(*a, **k):
        raise AssertionError("something --prepare cached was computed again")

    for name in ("first_order", "label_free", "behaviour_direction", "train_caa"):
        monkeypatch.setattr(fov, name, boom)
    assert fov.main([str(run), *common]) == 0  # the finished run: everything read back
    assert {p: p.stat().st_mtime_ns for p in (cache / "all_layers").rglob("*.safetensors")} \
        == chunks  # the all-layer sweep's chunks were read, not written again
    row = pd.read_csv(res / fov.SUMMARY_FILE).set_index("layer_grid")
    assert row.loc["all", "sweep_cpu_s"] >= spent["cpu_s"] > 0
    assert row.loc["study", "first_order_cpu_s"] > 0


def a_cheap(df: pd.DataFrame) -> float:
    return float(df.set_index("layer_grid").loc["study", "cheap_gain_first_order_all"])


def test_helpers():
    assert fov.unit_ranges(["a", "a", "b", "c", "c"], 2) == [(0, 3), (3, 5)]
    assert fov.unit_ranges(["a", "b"], 8) == [(0, 2)]
    ids, x = fov.unit_mean(["a", "a", "b"], np.array([[1.0], [3.0], [5.0]]))
    assert ids == ["a", "b"] and x.tolist() == [[2.0], [5.0]]
    m = np.array([[1.0, 2.0, 0.0], [3.0, 0.0, 1.0], [0.0, 1.0, 2.0]])
    fo = np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 0.0], [2.0, 0.0, 0.1]])
    row = fov.compare(m, fo, None, None, [1, 2, 3], n_boot=100, seed=0, train_fixed_layer=2)
    # choices: layers 2, 1, 1 -> measured 2, 3, 0; fixed (best mean) layer 1: 1, 3, 0
    assert row["first_order_choice"] == pytest.approx(5 / 3)
    assert row["gain"] == pytest.approx(1 / 3) and row["measured_fixed_layer"] == 1
    assert row["best_layer_agreement"] == pytest.approx(2 / 3)
    assert row["gain_vs_train_fixed"] == pytest.approx(5 / 3 - 1.0)
    assert row["fo_fixed_layer_all"] == 1 and row["fo_fixed_matches_all"]


def test_cost_ledger_adds_up_per_stage_and_survives_a_new_instance(tmp_path):
    led = fov.CostLedger(tmp_path)
    timed = led.timed("first_order:study", lambda x, y=1: (time.sleep(0.01), x + y)[1])
    assert timed(1, y=2) == 3 and timed(1) == 2
    led.add("sweep:all", 10.0, 8.0)
    again = fov.CostLedger(tmp_path)
    assert again.get("sweep:all") == {"wall_s": 10.0, "cpu_s": 8.0}
    timed_cost = again.get("first_order:study")  # two timed calls, read back as written
    assert timed_cost == led.get("first_order:study") and set(timed_cost) == {"wall_s", "cpu_s"}
    assert timed_cost["wall_s"] >= 0.02  # two calls of at least 10 ms each
    assert set(fov.read_json(tmp_path / "costs.json")) == {"first_order:study", "sweep:all"}
    assert again.get("label_free:all") == {"wall_s": 0.0, "cpu_s": 0.0}


def test_replace_rows(tmp_path):
    path = tmp_path / "v.csv"
    a = pd.DataFrame([{"model": "m", "dataset": "d", "readout": "cloze", "method": "caa",
                       "layer_grid": "study", "x": 1}])
    fov.replace_rows(path, a, fov.KEY)
    fov.replace_rows(path, a.assign(layer_grid="all", x=2), fov.KEY)
    fov.replace_rows(path, a.assign(x=3), fov.KEY)
    got = pd.read_csv(path).set_index("layer_grid")["x"].to_dict()
    assert got == {"all": 2, "study": 3}
    fov.replace_rows(path, a.assign(x=4, y=5), fov.KEY)
    fov.replace_rows(path, a.assign(x=6), fov.KEY)  # no y: the row keeps its y
    got = pd.read_csv(path).set_index("layer_grid")
    assert got.loc["study", "x"] == 6 and got.loc["study", "y"] == 5
    assert pd.isna(got.loc["all", "y"])
    # another run directory's row replaces it whole: its y is not carried over
    fov.replace_rows(path, a.assign(x=7, y=8, run_dir="runs/a"), fov.KEY)
    fov.replace_rows(path, a.assign(x=9, run_dir="runs/a"), fov.KEY)
    assert pd.read_csv(path).set_index("layer_grid").loc["study", "y"] == 8
    fov.replace_rows(path, a.assign(x=10, run_dir="runs/b"), fov.KEY)
    got = pd.read_csv(path).set_index("layer_grid")
    assert got.loc["study", "x"] == 10 and pd.isna(got.loc["study", "y"])


def test_results_name_the_run_without_local_paths(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("W2S_RUNS_DIR", str(tmp_path / "runs"))
    run = tmp_path / "runs" / "powered" / "cloze-0.5b" / "d" / "d"
    assert fov.shown_run(run) == "<runs>/powered/cloze-0.5b/d/d"
    assert fov.shown_run(Path.home() / "x" / "run") == "~/x/run"
    assert fov.shown_run(Path("/srv/elsewhere/run")) == "run"


def test_a_run_on_the_default_model_loads_the_model_it_recorded() -> None:
    """``EvalConfig(model=None)`` means the default model; run.json's derived part names the
    model the run loaded, and that is the one the script loads (it passed None before)."""
    assert fov.run_model_name(EvalConfig(), {"model": "m-derived"}, {}) == "m-derived"
    assert fov.run_model_name(EvalConfig(), {}, {"model": "m-results"}) == "m-results"
    assert fov.run_model_name(EvalConfig(model="m-cfg"), {"model": "x"}, {}) == "m-cfg"


def test_replace_rows_keeps_a_gz_file_compressed_and_merges_it(tmp_path):
    path = tmp_path / "items.csv.gz"
    a = pd.DataFrame([{"model": "m", "dataset": "d", "readout": "cloze", "method": "caa",
                       "layer_grid": "study", "x": 1}])
    fov.replace_rows(path, a, fov.KEY)
    fov.replace_rows(path, a.assign(layer_grid="all", x=2), fov.KEY)
    first = path.read_bytes()
    assert first[:2] == b"\x1f\x8b"  # gzip, though written under a temporary name
    assert pd.read_csv(path).set_index("layer_grid")["x"].to_dict() == {"study": 1, "all": 2}
    fov.replace_rows(path, a.assign(layer_grid="all", x=2), fov.KEY)  # the same file again:
    assert path.read_bytes() == first  # the same bytes (no timestamp in the gzip header)
