"""The per-sweep files of a run directory: sweeps with their examples, routing, generations
and the training pairs (the layout is in :mod:`w2s_lens.evaluation.storage.rundir`).

:class:`SweepFiles` is a mixin of :class:`~w2s_lens.evaluation.storage.rundir.RunDir`: it reads and
writes through ``self.path`` and :mod:`w2s_lens.artifacts` (one format version, atomic
writes), and refuses files that do not belong together.

Example:
    >>> rd = RunDir("runs/corrigible")  # doctest: +SKIP
    >>> sweep, examples = rd.load_sweep("caa/base")  # doctest: +SKIP
    >>> rd.read_routing(rd.sweep_dir("base", "caa"))["fixed_layer"]  # doctest: +SKIP
    14
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from w2s_lens.artifacts.json_files import read_json, read_jsonl, write_json, write_jsonl
from w2s_lens.artifacts.provenance import ArtifactMismatch, check_format, stamp
from w2s_lens.data.examples import SteeringExample
from w2s_lens.steering.pairs import ContrastPair, save_pairs
from w2s_lens.sweep.result import SweepResult

__all__ = ["EXAMPLES_FILE", "GENERATIONS_FILE", "PAIRS_FILE", "ROUTING_FILE", "SweepFiles"]

EXAMPLES_FILE = "examples.jsonl"
ROUTING_FILE = "routing.json"
PAIRS_FILE = "train_pairs.jsonl"
GENERATIONS_FILE = "generations.json"


class SweepFiles:
    """Sweep, routing, generation and pair files under ``self.path`` (a mixin of RunDir)."""

    path: Path

    def save_sweep(self, where: Path, result: SweepResult,
                   examples: Sequence[SteeringExample]) -> Path:
        """Write a sweep and the examples it swept (``examples.jsonl``) into ``where``."""
        if [ex.id for ex in examples] != result.ids:
            raise ValueError("the examples are not the swept ones (ids differ)")
        result.save(where)
        write_jsonl(where / EXAMPLES_FILE, (ex.to_record() for ex in examples))
        return where

    def load_sweep(self, where: str | os.PathLike) -> tuple[SweepResult, list[SteeringExample]]:
        """A sweep and its examples, from a folder inside (or relative to) the run."""
        where = Path(where)
        if not where.is_absolute() and not where.exists():
            where = self.path / where
        self._refuse_legacy_sweep(where)
        result = SweepResult.load(where)
        examples = [SteeringExample.from_record(r) for r in read_jsonl(where / EXAMPLES_FILE)]
        if [ex.id for ex in examples] != result.ids:
            raise ArtifactMismatch(f"{where / EXAMPLES_FILE} does not list the swept examples "
                                   f"of {where}")
        return result, examples

    def _refuse_legacy_sweep(self, where: Path) -> None:
        if (where / "sweep_ids.json").is_file():
            raise ArtifactMismatch(f"{where} was written by w2s-lens 0.1; rerun the command "
                                   "that made it into a new --out directory")

    def write_pairs(self, pairs: Sequence[ContrastPair]) -> Path:
        """``train_pairs.jsonl``: every training pair's exact positive and negative text, in
        the custom-pairs format (``w2s-lens vectors --pairs`` retrains the same vectors)."""
        return save_pairs(self.path / PAIRS_FILE, pairs)

    def write_generations(self, method: str, rows: Sequence[Mapping[str, Any]]) -> Path:
        """``RUN/<method>/generations.json``: unsteered / fixed / routed continuations of a few
        test prompts (:meth:`w2s_lens.routing.bundle.W2S.compare`)."""
        return write_json(self.path / method / GENERATIONS_FILE, stamp({"rows": list(rows)}))

    def read_generations(self, method: str) -> list[dict[str, Any]]:
        """The rows of :meth:`write_generations` (empty when there are none)."""
        f = self.path / method / GENERATIONS_FILE
        if not f.is_file():
            return []
        meta = read_json(f)
        check_format(meta, f, "rerun `w2s-lens evaluate`")
        return list(meta["rows"])

    def write_routing(self, where: Path, record: Mapping[str, Any]) -> Path:
        """``routing.json`` of a test sweep: the layer each input got from each method."""
        return write_json(where / ROUTING_FILE, stamp(record))

    def read_routing(self, where: str | os.PathLike) -> dict[str, Any] | None:
        """``routing.json`` of a test sweep, or None when absent."""
        f = Path(where) / ROUTING_FILE
        if not f.is_file():
            return None
        meta = read_json(f)
        check_format(meta, f, "rerun `w2s-lens evaluate`")
        return meta
