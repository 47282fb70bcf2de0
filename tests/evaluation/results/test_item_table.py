"""The per-item table (w2s_lens.evaluation.results.item_table): rows built from the sweeps and
routing records of a hand-made run directory (no model: the sweeps are written directly), and
``items.csv`` written and read back exactly, refused when a column is missing or the file is
not there (the table an evaluation writes is checked in test_pipeline.py and test_refit.py)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from w2s_lens.artifacts.provenance import ArtifactMismatch
from w2s_lens.data.examples import SteeringExample
from w2s_lens.evaluation.results.item_table import (
    ITEMS_FILE,
    SweepRows,
    item_rows,
    read_item_table,
    write_items,
)
from w2s_lens.evaluation.storage.rundir import RunDir
from w2s_lens.sweep.result import SweepResult

MULTIPLIERS = np.array([-1.0, 0.0, 1.0])
LAYERS = (3, 5, 7)


def _cloze(id_: str, n_match: int, n_other: int) -> SteeringExample:
    return SteeringExample(id_, "t", (1, 2, 3),
                           matching_continuation=tuple(range(10, 10 + n_match)),
                           non_matching_continuation=tuple(range(20, 20 + n_other)))


def _letter(id_: str, letter: str) -> SteeringExample:
    return SteeringExample(id_, "t", (1, 2), 4, 5, letter)


def _save(rd: RunDir, split: str, examples: list[SteeringExample], s: list[list[float]],
          method: str = "caa") -> None:
    """A sweep whose slopes are ``s`` (propensity linear in λ); values exact in float32."""
    prop = np.asarray(s, float)[:, :, None] * MULTIPLIERS
    ids = [ex.id for ex in examples]
    result = SweepResult(prop, list(LAYERS), list(MULTIPLIERS), ids,
                         [ex.matching_letter for ex in examples])
    rd.save_sweep(rd.sweep_dir(split, method), result, examples)


@pytest.fixture
def run(tmp_path: Path) -> RunDir:
    """A cloze run: training sweep, the base variant (routed) and one retest half."""
    rd = RunDir(tmp_path / "run")
    train = [_cloze("d:0", 1, 2), _cloze("d:1", 3, 1)]
    _save(rd, "train", train, [[0.25, 0.5, -0.5], [0.75, 0.0, 0.125]])
    test = [_cloze("d:2", 2, 2), _cloze("d:3", 1, 4), _cloze("d:4", 5, 1)]
    _save(rd, "base", test, [[0.0, 0.0, 1.0], [0.5, 0.5, 0.25], [-1.0, -0.5, -0.25]])
    rd.write_routing(rd.sweep_dir("base", "caa"), {
        "ids": ["d:3", "d:2"], "router_layer": {"logreg": [5, 7], "knn": [3, 3]}})
    _save(rd, "retest-1", test[:1], [[0.125, 0.0, 0.0]])
    return rd


# --------------------------------------------------------------------------- item_rows


def test_one_row_per_item_and_sweep_with_its_slopes_tokens_and_best_layer(run: RunDir) -> None:
    rows = item_rows(run, "caa", mirrored=False)
    assert [(r["sweep"], r["id"]) for r in rows] == [
        ("train", "d:0"), ("train", "d:1"), ("base", "d:2"), ("base", "d:3"), ("base", "d:4"),
        ("retest-1", "d:2")]
    assert [r["split"] for r in rows] == ["train"] * 2 + ["test"] * 4  # retests are test items
    assert all(r["method"] == "caa" for r in rows)
    assert rows[0] == {"method": "caa", "split": "train", "sweep": "train", "id": "d:0",
                       "matching_tokens": 1, "non_matching_tokens": 2, "best_layer": 5,
                       "s_L3": 0.25, "s_L5": 0.5, "s_L7": -0.5}
    assert [r["best_layer"] for r in rows] == [5, 3, 7, 3, 7, 3]  # a tie goes to the first
    assert [(r["matching_tokens"], r["non_matching_tokens"]) for r in rows[2:5]] == [
        (2, 2), (1, 4), (5, 1)]
    assert all(type(r["best_layer"]) is int and type(r["s_L3"]) is float for r in rows)


def test_routed_layers_come_from_the_routing_record_by_id(run: RunDir) -> None:
    rows = {(r["sweep"], r["id"]): r for r in item_rows(run, "caa", mirrored=False)}
    assert (rows["base", "d:2"]["route_logreg"], rows["base", "d:2"]["route_knn"]) == (7, 3)
    assert rows["base", "d:3"]["route_logreg"] == 5
    assert rows["base", "d:4"]["route_logreg"] == ""  # not in the record: empty
    assert not any(k.startswith("route_") for k in rows["train", "d:0"])  # no routing there
    assert not any(k.startswith("route_") for k in rows["retest-1", "d:2"])


def test_only_the_asked_sweeps_on_disk_are_read_in_the_order_asked(run: RunDir) -> None:
    rows = item_rows(run, "caa", mirrored=False, splits=["base", "sys-neg", "train"])
    assert [r["sweep"] for r in rows] == ["base"] * 3 + ["train"] * 2  # sys-neg: not on disk
    assert item_rows(run, "caa", mirrored=False, splits=[]) == []
    assert item_rows(run, "l2s", mirrored=False) == []  # no such method in the run


def test_mirrored_rows_average_the_two_letter_orders_of_an_item(tmp_path: Path) -> None:
    rd = RunDir(tmp_path)
    exs = [_letter("d:0", "A"), _letter("d:0~swap", "B"), _letter("d:1", "B"),
           _letter("d:1~swap", "A")]
    _save(rd, "base", exs, [[1.0, 0.0, 0.5], [0.0, 1.0, 0.25], [0.5, 0.5, 0.0],
                            [-0.5, 0.25, 0.0]])
    rd.write_routing(rd.sweep_dir("base", "caa"), {"ids": ["d:1", "d:0"],
                                                   "router_layer": {"logreg": [3, 7]}})
    rows = item_rows(rd, "caa", mirrored=True)
    assert [r["id"] for r in rows] == ["d:0", "d:1"]
    assert [(r["s_L3"], r["s_L5"], r["s_L7"]) for r in rows] == [(0.5, 0.5, 0.375),
                                                                  (0.0, 0.375, 0.0)]
    assert [r["best_layer"] for r in rows] == [3, 5]
    assert [r["route_logreg"] for r in rows] == [7, 3]
    assert rows[0]["matching_tokens"] == rows[0]["non_matching_tokens"] == 1  # a letter
    single = item_rows(rd, "caa", mirrored=False)
    assert [r["id"] for r in single] == ["d:0", "d:0", "d:1", "d:1"]  # ids are the units
    assert [r["s_L5"] for r in single] == [0.0, 1.0, 0.5, 0.25]  # each order its own row


# --------------------------------------------------------------------------- write and read


def test_written_rows_read_back_exactly_grouped_per_method_and_sweep(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(6, 3)) * 10.0 ** rng.integers(-12, 6, size=(6, 3))
    values[0, 0], values[1, 2] = 0.1 + 0.2, -0.0
    keys = [("caa", "train"), ("caa", "base"), ("caa", "train"), ("l2s", "base"),
            ("caa", "base"), ("caa", "train")]
    ids = ["d:0", 'odd, "quoted"\nid', "café:2", "007", "d:4", "1e3"]
    rows = [{"method": m, "sweep": s, "id": i, **{f"s_L{layer}": float(v[j])
                                                  for j, layer in enumerate(LAYERS)}}
            for (m, s), i, v in zip(keys, ids, values)]
    path = write_items(tmp_path / ITEMS_FILE, rows)
    assert path == tmp_path / ITEMS_FILE
    back, table = read_item_table(path, list(LAYERS))
    assert [r["id"] for r in back] == ids  # text kept, quotes and newlines included
    assert list(table) == [("caa", "train"), ("caa", "base"), ("l2s", "base")]  # first seen
    train = table["caa", "train"]
    assert isinstance(train, SweepRows) and train.index == [0, 2, 5]
    assert train.ids == ["d:0", "café:2", "1e3"]
    for (m, s), part in table.items():
        idx = [k for k, key in enumerate(keys) if key == (m, s)]
        assert part.index == idx
        assert np.array_equal(part.steerability, values[idx])  # bit for bit
    assert table["caa", "train"].steerability[0, 0] == 0.1 + 0.2
    assert table["caa", "base"].steerability.dtype == np.float64


def test_the_layers_asked_pick_and_order_the_columns(tmp_path: Path) -> None:
    path = write_items(tmp_path / ITEMS_FILE, [
        {"method": "caa", "sweep": "base", "id": "a", "s_L3": 1.0, "s_L5": 2.0, "s_L7": 3.0}])
    _, table = read_item_table(path, [7, 3])
    assert table["caa", "base"].steerability.tolist() == [[3.0, 1.0]]
    _, none = read_item_table(path, [])
    assert none["caa", "base"].steerability.shape == (1, 0)


def test_columns_follow_first_appearance_and_missing_cells_are_empty(tmp_path: Path) -> None:
    path = write_items(tmp_path / "x.csv", [
        {"method": "caa", "sweep": "train", "id": "a", "s_L3": 0.5},
        {"method": "caa", "sweep": "base", "id": "b", "s_L3": 0.25, "route_logreg": 3}])
    with open(path, newline="") as f:
        assert next(csv.reader(f)) == ["method", "sweep", "id", "s_L3", "route_logreg"]
    rows, _ = read_item_table(path, [3])
    assert [r["route_logreg"] for r in rows] == ["", "3"]  # the rows come back as text
    assert path.read_text(encoding="utf-8").endswith("b,0.25,3\n")  # "\n" line ends


def test_the_rows_of_a_run_round_trip_through_the_file(run: RunDir) -> None:
    rows = item_rows(run, "caa", mirrored=False)
    path = write_items(run.path / ITEMS_FILE, rows)
    back, table = read_item_table(path, list(LAYERS))
    assert [r["id"] for r in back] == [r["id"] for r in rows]
    assert list(table) == [("caa", "train"), ("caa", "base"), ("caa", "retest-1")]
    base = run.load_sweep(run.sweep_dir("base", "caa"))[0]
    assert np.array_equal(table["caa", "base"].steerability, base.steerability)
    assert [r["route_logreg"] for r in back if r["sweep"] == "base"] == ["7", "5", ""]


def test_a_missing_file_or_column_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / ITEMS_FILE} does not exist: this "
                                                "run kept no per-item data"):
        read_item_table(tmp_path / ITEMS_FILE, [3])
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(FileNotFoundError, match="folder.csv does not exist"):
        read_item_table(tmp_path / "folder.csv", [3])
    path = write_items(tmp_path / ITEMS_FILE, [{"method": "caa", "sweep": "base", "id": "a",
                                                "s_L3": 0.5}])
    with pytest.raises(ArtifactMismatch, match=rf"{path} lacks the columns \['s_L5', 's_L7'\]"):
        read_item_table(path, [3, 5, 7])
    path.write_text("split,id,s_L3\ntest,a,0.5\n")  # an items.csv without the method column
    with pytest.raises(ArtifactMismatch, match=r"lacks the columns \['method', 'sweep'\]"):
        read_item_table(path, [3])


def test_a_cell_that_is_not_a_number_is_refused_naming_file_line_and_item(
        tmp_path: Path) -> None:
    path = tmp_path / ITEMS_FILE
    for cell in ("", "abc"):
        path.write_text(f"method,sweep,id,s_L3\ncaa,base,a,0.5\ncaa,base,b,{cell}\n")
        with pytest.raises(ArtifactMismatch,
                           match=rf"{path}, line 3 \(item 'b'\): column s_L3 holds '{cell}'"):
            read_item_table(path, [3])
    path.write_text("method,sweep,id,s_L3\ncaa,base,a\n")  # a short row
    with pytest.raises(ArtifactMismatch, match=r"line 2 \(item 'a'\): column s_L3 holds None"):
        read_item_table(path, [3])


def test_a_file_without_items_or_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / ITEMS_FILE
    path.write_text("method,sweep,id,s_L3\n")
    with pytest.raises(ArtifactMismatch, match=f"{path} has a header and no items"):
        read_item_table(path, [3])
    path.write_text("method,sweep,id\n")  # header only, and a layer column missing
    with pytest.raises(ArtifactMismatch, match=r"lacks the columns \['s_L3'\]"):
        read_item_table(path, [3])
    path.write_text("")
    with pytest.raises(ArtifactMismatch, match=r"lacks the columns \['method', 'sweep', 'id'"):
        read_item_table(path, [3])


def test_ids_that_are_not_ascii_round_trip(tmp_path: Path) -> None:
    path = write_items(tmp_path / ITEMS_FILE, [
        {"method": "caa", "sweep": "base", "id": "données:1 – é", "s_L3": 0.25}])
    _, table = read_item_table(path, [3])
    assert table["caa", "base"].ids == ["données:1 – é"]
