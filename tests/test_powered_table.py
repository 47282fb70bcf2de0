"""analysis/powered_table.py on a fake powered folder made of the real headroom results
(tests/helpers_study.py): the files it writes and the numbers in them, and an empty folder."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest
from helpers_study import PLAN, build_root

from w2s_lens.report.tables.study import PRIMARY_COMPARISON

_PATH = Path(__file__).resolve().parents[1] / "analysis" / "powered_table.py"
_spec = importlib.util.spec_from_file_location("powered_table", _PATH)
pt = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pt)

PNG = b"\x89PNG\r\n\x1a\n"
ARGS = {"cloze-0.5b": ("--readout", "cloze", "--layers", "3,9", "--method", "caa"),
        "letter-0.5b": ("--readout", "letter", "--mirror", "--layers", "all", "--method", "caa")}


@pytest.fixture
def small_plan(monkeypatch):
    """The script's plan replaced by helpers_study.PLAN (12 + 12 cloze, 24 + 24 letter)."""
    Row = pt.powered_study.Row
    monkeypatch.setattr(pt.powered_study, "PLAN", tuple(
        Row(p["name"], p["model"], tuple(p["datasets"]), p["n_train"], p["n_test"],
            ARGS[p["name"]], views=None) for p in PLAN))  # one primary router per row


def _csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open()))


def test_main_writes_the_table_report_and_figure(tmp_path, small_plan, capsys) -> None:
    root, out = build_root(tmp_path / "powered"), tmp_path / "out"
    assert pt.main(["--root", str(root), "--out", str(out)]) == 0
    assert "4 of 6 rows finished" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [
        "powered_figure.png", "powered_report.html", "powered_table.csv", "powered_table.md",
        "powered_table_ood.csv", "powered_table_ood.md", "powered_verdict.md"]
    ood = _csv(out / "powered_table_ood.csv")
    variants = {v for p in root.glob("*/*/results.json")
                for m in json.loads(p.read_text())["methods"].values() for v in m["variants"]}
    assert {r["variant"] for r in ood} == variants - {"base"}
    assert (out / "powered_figure.png").read_bytes()[:8] == PNG
    assert (out / "powered_figure.png").stat().st_size > 10_000
    rows = _csv(out / "powered_table.csv")
    assert [(r["protocol"], r["dataset"]) for r in rows] == [
        (p["name"], d) for p in PLAN for d in p["datasets"]]
    results = json.loads((root / "cloze-0.5b" / "corrigible-neutral-HHH" / "results.json")
                         .read_text())
    w = results["methods"]["caa"]["variants"]["base"]["w2s"]["logreg"]
    corrigible = rows[0]
    assert float(corrigible["diff"]) == w["diff_vs_fixed"]
    assert float(corrigible["p_value"]) == w["diff_vs_fixed_p"]
    assert (corrigible["model"], corrigible["readout"], corrigible["n_train"],
            corrigible["n_test"]) == ("qwen2.5-coder-0.5b-instruct", "cloze", "12", "12")
    by_name = {(r["protocol"], r["dataset"]): r for r in rows}
    assert by_name[("cloze-0.5b", "self-awareness-text-model")]["status"] == "not run"
    assert by_name[("cloze-0.5b", "self-awareness-text-model")]["verdict"] == "not run"
    assert by_name[("letter-0.5b", "corrigible-neutral-HHH")]["smaller_than_planned"] == "True"
    assert by_name[("letter-0.5b", "corrigible-neutral-HHH")]["readout"] == "letter-mirrored"
    md = (out / "powered_table.md").read_text()
    assert md.splitlines()[2].endswith(PRIMARY_COMPARISON)
    summary = next(line for line in md.splitlines() if line.startswith("| cloze-0.5b | qwen"))
    cells = [c.strip() for c in summary.split("|")[1:-1]]
    plain, bh = (int(c.split(" of ")[0]) for c in cells[7:9])
    assert (plain, bh) == (1, 0) and bh <= plain
    assert "Primary comparison (stated before running)" in (out / "powered_report.html").read_text()


def test_with_nothing_finished_every_row_reads_not_run(tmp_path, capsys) -> None:
    out = tmp_path / "out"
    assert pt.main(["--root", str(tmp_path / "empty"), "--out", str(out)]) == 0
    assert "No finished dataset under" in capsys.readouterr().out
    rows = _csv(out / "powered_table.csv")
    planned = [(r.name, d, k) for r in pt.powered_study.PLAN for d in r.datasets
               for k in r.primary_routers]  # one row per primary router, question view first
    assert [(r["protocol"], r["dataset"], r["router"]) for r in rows] == planned
    assert {k for *_, k in planned} == {"logreg", "logreg@options"}
    assert {r["status"] for r in rows} == {"not run"}
    assert (out / "powered_figure.png").read_bytes()[:8] == PNG


def test_the_statement_is_the_one_the_plan_states() -> None:
    """The package's copy of the primary comparison matches powered_study.py's docstring."""
    assert pt.statement() == PRIMARY_COMPARISON
    assert pt.statement("no statement here") == PRIMARY_COMPARISON  # the fallback


def test_plan_data_reads_methods_and_readouts_from_the_arguments() -> None:
    plan = {p["name"]: p for p in pt.plan_data()}
    assert set(plan) == {r.name for r in pt.powered_study.PLAN}
    assert (plan["cloze-0.5b"]["readout"], plan["cloze-0.5b"]["methods"]) == ("cloze", ["caa"])
    assert plan["cloze-0.5b-l2s"]["methods"] == ["l2s"]
    assert plan["letter-0.5b"]["readout"] == "letter-mirrored"
    assert plan["paper-0.5b"]["readout"] == "letter-single"
    assert (plan["cloze-1.5b"]["n_train"], plan["cloze-1.5b"]["n_test"]) == (96, 96)
    assert json.loads(json.dumps(plan)) == plan  # plain data


def test_the_verdict_table_has_one_line_per_finished_dataset(tmp_path, small_plan) -> None:
    root, out = build_root(tmp_path / "powered"), tmp_path / "out"
    pt.main(["--root", str(root), "--out", str(out)])
    text = (out / "powered_verdict.md").read_text()
    lines = [x for x in text.splitlines() if x.startswith("| ") and "---" not in x][1:]
    rows = _csv(out / "powered_table.csv")
    done = [r for r in rows if r["status"] == "done"]
    assert len(lines) == len(done) > 0
    first = done[0]
    cells = [c.strip() for c in lines[0].strip("|").split("|")]
    assert cells[:2] == [first["protocol"], first["dataset"]]
    assert cells[3].startswith(f"L{first['fixed_layer']} {float(first['fixed']):+.3f}")
    assert cells[4].startswith(f"{float(first['xv_diff']):+.3f}")
    assert cells[6].startswith(f"{float(first['diff']):+.3f}")  # logreg on the question
    assert cells[7] == "–"  # this plan fits no options view
    assert cells[8] == first["case"]


def _verdict_row(router: str, verdict: str, after_bh: bool, **kw) -> dict:
    row = {"status": pt.DONE, "protocol": "cloze-0.5b", "dataset": "toy", "method": "caa",
           "router": router, "diff": 0.1, "diff_lo": 0.01, "diff_hi": 0.2, "p_value": 0.013,
           "verdict": verdict, "beats_after_bh": after_bh, "n_train": 20, "n_test": 20,
           "fixed_layer": 3, "fixed": 1.0, "fixed_lo": 0.8, "fixed_hi": 1.2, "xv_diff": 0.5,
           "xv_lo": 0.4, "xv_hi": 0.6, "kappa": 0.9, "case": "headroom"}
    return row | kw


def test_a_win_in_the_verdict_table_says_whether_bh_keeps_it() -> None:
    beats, none = pt.VERDICT_BETTER, "no detectable difference"

    def cells(rows: list[dict]) -> list[str]:
        return [c.strip() for c in pt.verdict_table(rows).splitlines()[2].strip("|").split("|")]

    kept = cells([_verdict_row("logreg", none, False), _verdict_row("logreg@options", beats, True)])
    assert kept[6] == "+0.100 [+0.010, +0.200], 0.013"  # no win: nothing to say about BH
    assert kept[7] == "+0.100 [+0.010, +0.200], 0.013; kept by BH"
    lost = cells([_verdict_row("logreg", beats, False), _verdict_row("logreg@options", beats,
                                                                     False)])
    assert lost[6].endswith("; not kept by BH") and lost[7].endswith("; not kept by BH")
    # read back from the csv, the flag is a string
    assert cells([_verdict_row("logreg", beats, "True")])[6].endswith("; kept by BH")
