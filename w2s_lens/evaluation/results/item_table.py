"""Per-item data of an evaluation: ``items.csv``, enough to refit routers or re-test without a
sweep.

One row per (item, sweep) of one method: the training sweep (cross-fitted labels), each test
variant's sweep and the two retest sweeps (vectors from each half of the training items).
Columns: ``method, split, sweep, id, matching_tokens, non_matching_tokens, best_layer``,
``s_L<l>`` per layer and ``route_<router>`` per router.

``split`` is ``train`` or ``test``; ``s_L<l>`` is the item's steerability at layer ``l`` (the
mean over its letter orders when mirrored); ``best_layer`` their argmax (a layer number);
``route_<router>`` the layer each router sent the item to (test variants only; empty
elsewhere). Token counts are those of the options the cloze readout scores (1 for a letter).
No embeddings are kept: the file is kilobytes per dataset.

:func:`read_item_table` reads it back exactly (the floats as written), grouped per
(method, sweep), for :mod:`w2s_lens.evaluation.refit`; :meth:`EvaluationResult.items_frame`
gives it as a pandas frame.

Example:
    >>> rows = item_rows(rd, "caa")  # doctest: +SKIP
    >>> write_items(rd.path / "items.csv", rows)  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from jaxtyping import Float

from w2s_lens.artifacts.files import write_text
from w2s_lens.artifacts.provenance import ArtifactMismatch
from w2s_lens.evaluation.storage.rundir import RunDir

__all__ = ["ITEMS_FILE", "SweepRows", "item_rows", "read_item_table", "write_items"]

ITEMS_FILE = "items.csv"


def _tokens(examples: Sequence[Any]) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for ex in examples:
        m, n = ex.continuations
        out.setdefault(ex.unit, (len(m), len(n)))
    return out


def item_rows(rd: RunDir, method: str, mirrored: bool,
              splits: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The ``items.csv`` rows of ``method`` from the sweeps and routing records in ``rd``.

    Args:
        rd: the run directory.
        method: ``caa`` or ``l2s``.
        mirrored: average each item's letter orders (mirrored letter readout).
        splits: the sweeps to include, those of them on disk (default: every sweep on disk;
            an evaluation passes its own training sweep, variants and retest halves, so that
            a folder left by an earlier run with other variants is not read).

    Example:
        >>> item_rows(RunDir("runs/x"), "caa", mirrored=False)[0]["sweep"]  # doctest: +SKIP
        'train'
    """
    rows: list[dict[str, Any]] = []
    present = rd.splits(method, retest=True)
    for split in present if splits is None else [s for s in splits if s in present]:
        res, examples = rd.load_sweep(rd.sweep_dir(split, method))
        view = res.mirrored() if mirrored else res
        tokens = _tokens(examples)
        routing = rd.read_routing(rd.sweep_dir(split, method)) or {}
        routed: Mapping[str, Sequence[int]] = routing.get("router_layer") or {}
        by_id = {i: k for k, i in enumerate(routing.get("ids") or [])}
        s = view.steerability
        best = np.asarray(view.layers)[np.argmax(s, axis=1)]
        for k, unit in enumerate(view.units):
            row: dict[str, Any] = {
                "method": method, "split": "train" if split == "train" else "test",
                "sweep": split, "id": unit, "matching_tokens": tokens[unit][0],
                "non_matching_tokens": tokens[unit][1], "best_layer": int(best[k])}
            row.update({f"s_L{layer}": float(s[k, j]) for j, layer in enumerate(view.layers)})
            j = by_id.get(view.ids[k])
            row.update({f"route_{name}": ("" if j is None else int(layers[j]))
                        for name, layers in routed.items()})
            rows.append(row)
    return rows


def write_items(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write ``rows`` as CSV (columns in first-seen order; a missing value is empty).

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "items.csv"
        >>> _ = write_items(p, [{"id": "a", "s_L1": 0.5}, {"id": "b", "route_logreg": 3}])
        >>> p.read_text().splitlines()
        ['id,s_L1,route_logreg', 'a,0.5,', 'b,,3']
    """
    columns = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return write_text(Path(path), buf.getvalue())


@dataclass(frozen=True)
class SweepRows:
    """The ``items.csv`` rows of one (method, sweep), in file order.

    Attributes:
        index: their row numbers in the file (0 = the first row after the header).
        ids: their items.
        steerability: ``[n, L]`` their ``s_L<l>`` columns, in the order of the layers asked.
    """

    index: list[int]
    ids: list[str]
    steerability: Float[np.ndarray, "n L"]


def read_item_table(path: str | os.PathLike, layers: Sequence[int]
                    ) -> tuple[list[dict[str, str]], dict[tuple[str, str], SweepRows]]:
    """``items.csv`` as written: its rows (strings) and, per ``(method, sweep)``, the
    :class:`SweepRows` at ``layers`` (floats parsed back exactly).

    Raises:
        FileNotFoundError: no such file (the run kept no per-item data).
        ArtifactMismatch: a needed column is missing (named), the file has no items, or a
            steerability cell is not a number (file, line and item named).

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "items.csv"
        >>> _ = write_items(p, [{"method": "caa", "sweep": "base", "id": "d:0", "s_L3": 0.1},
        ...                     {"method": "caa", "sweep": "base", "id": "d:1", "s_L3": 0.7}])
        >>> rows, table = read_item_table(p, [3])
        >>> table["caa", "base"].ids, table["caa", "base"].steerability.ravel().tolist()
        (['d:0', 'd:1'], [0.1, 0.7])
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: this run kept no per-item data, so "
                                "its routers can only be refitted by rerunning it")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        rows = list(reader)
    cols = [f"s_L{layer}" for layer in layers]
    missing = [c for c in ("method", "sweep", "id", *cols) if c not in header]
    if missing:
        raise ArtifactMismatch(f"{path} lacks the columns {missing}")
    if not rows:
        raise ArtifactMismatch(f"{path} has a header and no items")

    def number(i: int, col: str) -> float:
        cell = rows[i][col]
        try:
            return float(cell)
        except (TypeError, ValueError):
            raise ArtifactMismatch(
                f"{path}, line {i + 2} (item {rows[i]['id']!r}): column {col} holds "
                f"{cell!r}, not a number") from None

    groups: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault((r["method"], r["sweep"]), []).append(i)
    table = {k: SweepRows(idx, [rows[i]["id"] for i in idx],
                          np.array([[number(i, c) for c in cols] for i in idx], float))
             for k, idx in groups.items()}
    return rows, table
