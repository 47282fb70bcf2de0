"""The powered study's tables and files (w2s_lens.report.tables.study_text) on a fake results
folder made of the real headroom results (tests/helpers_study.py): the markdown opens with the
primary comparison and marks rows, the CSV carries the columns and numbers, every router kind
gets a column."""

from __future__ import annotations

import csv
import io
import json

import pytest
from helpers_study import CLOZE, PLAN, build_root, load

from w2s_lens.report.tables.study import NOT_RUN, PRIMARY_COMPARISON, study_rows
from w2s_lens.report.tables.study_text import (
    study_csv,
    study_markdown,
    study_tables,
    write_study,
)


@pytest.fixture
def rows(tmp_path):
    return study_rows(build_root(tmp_path), PLAN)


def test_markdown_opens_with_the_primary_comparison_and_marks_rows(rows) -> None:
    md = study_markdown(rows)
    lines = md.splitlines()
    assert lines[2] == f"**Primary comparison (stated before running).** {PRIMARY_COMPARISON}"
    assert "Status: 4 of 6 planned datasets finished; 1 ran SMALLER than planned." in md
    assert "20 + 24 (SMALLER than planned 24 + 24)" in md
    assert md.count("| not run | – |") == 2  # verdict and BH cells of the two rows not run
    summary = next(line for line in lines if line.startswith("| cloze-0.5b | qwen"))
    assert "| 3 of 4 |" in summary and "| 1 of 3 | 0 of 3 |" in summary
    assert md.index("## Primary comparisons per study row") < md.index("## Secondary")
    assert "custom statement" in study_markdown(rows, statement="custom statement")


def test_csv_has_the_columns_and_the_numbers(rows, tmp_path) -> None:
    table = list(csv.DictReader(io.StringIO(study_csv(rows))))
    assert {"model", "dataset", "readout", "protocol", "n_train", "n_test"} <= set(table[0])
    assert len(table) == len(rows)
    myopic = next(t for t in table if t["dataset"] == "myopic-reward")
    assert float(myopic["diff"]) == 0.2 and float(myopic["p_value"]) == 0.02
    assert next(t for t in table if t["status"] == NOT_RUN)["diff"] == ""
    paths = write_study(rows, tmp_path / "out")
    assert paths["csv"].read_text() == study_csv(rows)
    assert paths["md"].name == "powered_table.md" and paths["md"].read_text().startswith("# ")


def test_every_router_kind_has_a_column(rows) -> None:
    title, header, cells = study_tables(rows)[-1]
    w2s = load(CLOZE)["methods"]["caa"]["variants"]["base"]["w2s"]
    assert title.startswith("Secondary: every router kind")
    assert header[3:-1] == [f"{k}: W2S − fixed" for k in w2s]
    assert len(cells) == sum(r["status"] == "done" for r in rows)
    row = next(c for c in cells if c[:2] == ["cloze-0.5b", "corrigible-neutral-HHH"])
    knn = header.index("knn: W2S − fixed")
    assert row[knn].startswith(f"{w2s['knn']['diff_vs_fixed']:+.3f}")
    table = list(csv.DictReader(io.StringIO(study_csv(rows))))
    cn = next(t for t in table if t["dataset"] == "corrigible-neutral-HHH"
              and t["protocol"] == "cloze-0.5b")
    assert json.loads(cn["routers"])["knn"]["diff"] == w2s["knn"]["diff_vs_fixed"]


def test_the_learning_curve_cell_shows_every_size(rows) -> None:
    title, header, cells = study_tables(rows)[2]
    col = header.index("learning curve (n: W2S − fixed)")
    letter = next(c for c in cells if c[:2] == ["letter-0.5b", "corrigible-neutral-HHH"])
    assert letter[col] == "12: +0.000; 24: +0.000"
    table = list(csv.DictReader(io.StringIO(study_csv(rows))))
    row = next(t for t in table if t["protocol"] == "letter-0.5b" and t["status"] == "done")
    assert json.loads(row["curve"]) == {"12": 0.0, "24": 0.0}


def test_two_primary_routers_give_one_router_line_per_dataset(tmp_path) -> None:
    plan = [{**row, "primary_routers": ["logreg", "knn"]} for row in PLAN]
    rows = study_rows(build_root(tmp_path), plan)
    done = [r for r in rows if r["status"] == "done"]
    assert len(done) == 2 * 4  # four finished datasets, a row per primary router
    tables = study_tables(rows)
    _, header, cells = tables[-1]
    keys = [tuple(c[:3]) for c in cells]
    assert len(keys) == len(set(keys)) == 4
    _, header2, cells2 = tables[2]
    col = header2.index("W2S router")
    cn = [c for c in cells2 if c[:2] == ["cloze-0.5b", "corrigible-neutral-HHH"]]
    assert sorted(c[col] for c in cn) == ["knn@question", "logreg@question"]
