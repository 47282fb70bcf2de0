"""analysis/ablation_study.py: the plan of readout and intervention ablations, and its table
read from results.json files the pipeline wrote."""

from __future__ import annotations

import csv
import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "analysis"))
_spec = importlib.util.spec_from_file_location("ablation_study",
                                               ROOT / "analysis" / "ablation_study.py")
ab = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("ablation_study", ab)
_spec.loader.exec_module(ab)


def test_each_variant_changes_one_ingredient_on_the_same_items():
    base = ab.PLAN[0].command("corrigible-neutral-HHH", Path("o"))
    assert ab.PLAN[0].name == "baseline"
    seen = set()
    for row in ab.PLAN[1:]:
        cmd = row.command("corrigible-neutral-HHH", Path("o"))
        extra = [a for a in cmd if a not in base]
        assert extra and tuple(extra) not in seen, row.name
        seen.add(tuple(extra))
        for flag in ("--n-train", "--n-test", "--seed", "--layers", "--readout"):
            assert cmd[cmd.index(flag) + 1] == base[base.index(flag) + 1]
    assert {r.name for r in ab.PLAN} >= {"prompt-only", "first-token", "relative", "listed"}
    assert all(r.n_train == r.n_test == 96 for r in ab.PLAN)
    assert {r.retest for r in ab.PLAN} == {str(ab.RETEST_ITEMS)}
    assert base[base.index("--retest-items") + 1] == "48"


def test_the_table_reads_finished_rows(tmp_path):
    real = ROOT / "analysis/results/powered/cloze-0.5b/corrigible-neutral-HHH/results.json"
    dest = tmp_path / "baseline" / "corrigible-neutral-HHH"
    dest.mkdir(parents=True)
    shutil.copy(real, dest / "results.json")
    rows = ab.table_rows(tmp_path)
    assert len(rows) == 1 and rows[0]["variant"] == "baseline"
    import json

    res = json.loads(real.read_text())
    xv = res["methods"]["caa"]["headroom"]["xv"]
    assert (rows[0]["headroom"], rows[0]["headroom_lo"]) == (xv["diff"], xv["ci"][0])
    assert rows[0]["w2s_minus_fixed[question]"] == \
        res["methods"]["caa"]["variants"]["base"]["w2s"]["logreg"]["diff_vs_fixed"]
    assert rows[0]["kappa"] == res["methods"]["caa"]["headroom"]["retest"]["kappa"]
    assert rows[0]["fixed_layer"] == res["methods"]["caa"]["variants"]["base"]["fixed_layer"]
    assert rows[0]["reading"].startswith("headroom")  # read now from the stored diagnostics
    path = ab.write_table(rows, tmp_path)
    with open(path) as f:
        got = list(csv.DictReader(f))
    assert got[0]["dataset"] == "corrigible-neutral-HHH" and got[0]["n_test"] == "200"
    assert (tmp_path / "ablation_table.md").read_text().count("\n") == 3
    summary = (tmp_path / "ablation_summary.md").read_text()
    line = [x for x in summary.splitlines() if x.startswith("| corrigible")][0]
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[2].startswith(f"L{rows[0]['fixed_layer']} {rows[0]['fixed']:+.3f} [")
    assert cells[4] == (f"{xv['diff']:+.3f} [{xv['ci'][0]:+.3f}, {xv['ci'][1]:+.3f}]")
    assert cells[7] == f"{rows[0]['kappa']:.2f}"
    assert cells[8].startswith(f"{rows[0]['w2s_minus_fixed[question]']:+.3f} / ")


def test_pending_keeps_the_plan_order_skips_finished_rows_and_filters(tmp_path):
    every = ab.pending(None, tmp_path)
    assert len(every) == 2 * len(ab.VARIANTS)
    assert [r.name for r, _ in every[:2]] == ["baseline", "baseline"]
    done = tmp_path / "baseline" / "corrigible-neutral-HHH"
    done.mkdir(parents=True)
    (done / "results.json").write_text("{}")
    got = ab.pending(["baseline", "first-token"], tmp_path)
    assert [(r.name, d) for r, d in got] == [
        ("baseline", "self-awareness-text-model"),
        ("first-token", "corrigible-neutral-HHH"),
        ("first-token", "self-awareness-text-model")]
    import pytest

    with pytest.raises(SystemExit, match="unknown ablation variant"):
        ab.pending(["basline"], tmp_path)
    one = ab.pending(["baseline", "first-token"], tmp_path, datasets=["corrigible-neutral-HHH"])
    assert [(r.name, d) for r, d in one] == [("first-token", "corrigible-neutral-HHH")]
    with pytest.raises(SystemExit, match="not in the ablation plan"):
        ab.pending(None, tmp_path, datasets=["myopic-reward"])


def test_stale_finished_rows_are_pending_only_with_stale(tmp_path):
    """A finished row whose MLP was tuned on the grid before it changed (the committed
    corrigible-neutral-HHH baseline with the MLP grid it had until 2026-12-07) runs again with
    --stale only."""
    import json

    real = ROOT / "analysis/results/ablation/baseline/corrigible-neutral-HHH/results.json"
    done = tmp_path / "baseline" / "corrigible-neutral-HHH"
    done.mkdir(parents=True)
    res = json.loads(real.read_text())
    res["methods"]["caa"]["router_cv"]["mlp"]["grid"] = [100.0, 1.0, 0.01, 0.0001]
    (done / "results.json").write_text(json.dumps(res))
    rows = ["baseline"]
    assert [d for _, d in ab.pending(rows, tmp_path)] == ["self-awareness-text-model"]
    assert [d for _, d in ab.pending(rows, tmp_path, stale=True)] == [
        "corrigible-neutral-HHH", "self-awareness-text-model"]
    import pytest

    with pytest.raises(SystemExit):  # --stale only chooses among --pending's rows
        ab.main(["--stale", "--table"])


def test_variant_rows_carry_their_relative_headroom_shift_against_the_baseline(tmp_path):
    real = ROOT / "analysis/results/fair/letter-0.5b/corrigible-neutral-HHH"
    for variant in ("baseline", "first-token"):
        dest = tmp_path / variant / "corrigible-neutral-HHH"
        dest.mkdir(parents=True)
        for name in ("results.json", "items.csv"):
            shutil.copy(real / name, dest / name)
    rows = {r["variant"]: r for r in ab.table_rows(tmp_path)}
    base, same = rows["baseline"], rows["first-token"]
    assert "vs_baseline" not in base and base["rel_headroom"] > 0
    assert base["rel_headroom_lo"] <= base["rel_headroom"] <= base["rel_headroom_hi"]
    # the headroom and its ratio are on the retested items against the cross-validated fixed
    # layer, which the row names beside the (all-item, training-chosen) fixed layer
    assert base["n_retest"] == 200 and base["xv_fixed_layers"].startswith("L")
    assert base["headroom"] / base["xv_fixed"] == pytest.approx(base["rel_headroom"], abs=1e-6)
    # the same items and numbers: no shift, over all 200 retested items
    assert same["vs_baseline"] == 0 and same["n_shared"] == 200
    assert same["rel_headroom"] == base["rel_headroom"]


def test_the_command_line_refuses_filters_that_name_nothing_or_stray(capsys):
    import pytest

    for argv in (["--pending", "--variants", ""], ["--pending", "--datasets", ","],
                 ["--table", "--variants", "baseline"]):
        with pytest.raises(SystemExit):
            ab.main(argv)
    err = capsys.readouterr().err
    assert "--variants names nothing" in err and "--datasets names nothing" in err
    assert "choose among --pending's rows" in err


def test_a_row_without_a_retest_leaves_its_relative_cells_empty(tmp_path, capsys):
    import pandas as pd

    real = ROOT / "analysis/results/fair/letter-0.5b/corrigible-neutral-HHH"
    dest = tmp_path / "baseline" / "corrigible-neutral-HHH"
    dest.mkdir(parents=True)
    shutil.copy(real / "results.json", dest / "results.json")
    items = pd.read_csv(real / "items.csv")
    items[~items.sweep.str.startswith("retest")].to_csv(dest / "items.csv", index=False)
    rows = ab.table_rows(tmp_path)
    assert len(rows) == 1 and "rel_headroom" not in rows[0]
    assert "no relative headroom" in capsys.readouterr().out
