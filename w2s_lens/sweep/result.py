"""The result of a sweep, its files and its mirrored (letter-order averaged) view.

:class:`SweepResult` holds the propensity of every (example, layer, multiplier) and the
steerability slopes; :meth:`SweepResult.save` writes ``sweep.safetensors`` and ``sweep.json``
(with the tensor file's SHA-256 and shapes), :meth:`SweepResult.load` checks them and rebuilds a
broken ``sweep.safetensors`` from the sweep's chunks (:mod:`w2s_lens.sweep.chunks`).

Mirrored evaluation: both letter orders of an item share a ``unit``;
:meth:`SweepResult.mirrored` averages a unit's presentations, so a pure "answer A vs answer B"
push cancels.

Example:
    >>> r = SweepResult(np.zeros((2, 1, 2)), [3], [-1.0, 1.0], ["a", "a~swap"], ["A", "B"])
    >>> r.steerability.shape, r.mirrored().steerability.shape
    ((2, 1), (1, 1))
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from w2s_lens.artifacts.json_files import read_json, write_json
from w2s_lens.artifacts.provenance import ArtifactMismatch, check_format, stamp
from w2s_lens.sweep.chunks import (
    CHUNKS_DIR,
    ChunkError,
    ChunkWarning,
    check_spec,
    read_verified,
    rebuild_from_chunks,
    write_verified,
)
from w2s_lens.sweep.readouts import slopes

__all__ = ["META_FILE", "SWEEP_FILE", "SweepResult"]

SWEEP_FILE = "sweep.safetensors"
META_FILE = "sweep.json"


@dataclass
class SweepResult:
    """A finished sweep.

    Attributes:
        propensity: ``[n_examples, n_layers, n_multipliers]``.
        layers, multipliers: the grid.
        ids, matching_letters, groups, units: one per example (``units`` group the letter
            orders of one item).
        metadata: the configuration (model, hook, engine, positions, readout, scales, ...).
        captured: ``[n_examples, d_model]`` unsteered ``resid_pre`` at ``capture_layer`` at the
            last prompt token (the ``resid-last`` embedding, free from the fast engine's
            caching pass), or None.

    Example:
        >>> r = SweepResult(np.zeros((2, 1, 2)), [3], [-1.0, 1.0], ["a", "a~swap"], ["A", "B"])
        >>> r.units, r.mirrored().ids
        (['a', 'a'], ['a'])
    """

    propensity: np.ndarray
    layers: list[int]
    multipliers: list[float]
    ids: list[str]
    matching_letters: list[str]
    groups: list[str] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)
    captured: np.ndarray | None = None
    units: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        from w2s_lens.data.examples import unit_of

        if not self.units:
            self.units = [unit_of(i) for i in self.ids]
        if not self.groups:
            self.groups = [""] * len(self.ids)
        n = self.propensity.shape[0]
        for name in ("ids", "matching_letters", "groups", "units"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries for {n} "
                                 "swept examples")

    @property
    def steerability(self) -> np.ndarray:
        """Slopes ``[n_examples, n_layers]``."""
        return slopes(self.propensity, self.multipliers)

    def _unit_rows(self) -> dict[str, list[int]]:
        order: dict[str, list[int]] = {}
        for i, u in enumerate(self.units):
            order.setdefault(u, []).append(i)
        return order

    def unit_average(self, values: np.ndarray) -> np.ndarray:
        """Per-example ``values`` (first axis) averaged per unit, in :meth:`mirrored`'s order.

        >>> r = SweepResult(np.zeros((2, 1, 2)), [3], [-1.0, 1.0], ["a", "a~swap"], ["A", "B"])
        >>> r.unit_average(np.array([[1.0], [3.0]])).tolist()
        [[2.0]]
        """
        values = np.asarray(values)
        if values.shape[0] != len(self.units):
            raise ValueError(f"{values.shape[0]} rows for {len(self.units)} swept examples")
        return np.stack([values[rows].mean(axis=0) for rows in self._unit_rows().values()])

    def mirrored(self) -> SweepResult:
        """One row per unit: the mean over its presentations (both letter orders).

        The propensity (hence the slope) of a unit is the mean of its presentations'; the
        letter and group are those of its first presentation; ``captured`` embeddings are
        averaged too. A result whose units all have one presentation comes back unchanged.
        """
        order = self._unit_rows()
        if all(len(v) == 1 for v in order.values()):
            return self
        idx = list(order.values())
        prop = self.unit_average(self.propensity)
        cap = None
        if self.captured is not None:
            cap = self.unit_average(self.captured).astype(np.float32)
        firsts = [rows[0] for rows in idx]
        meta = {**self.metadata, "mirrored": True,
                "presentations_per_unit": sorted({len(v) for v in idx})}
        return replace(self, propensity=prop, ids=list(order), units=list(order),
                       matching_letters=[self.matching_letters[i] for i in firsts],
                       groups=[self.groups[i] for i in firsts], metadata=meta, captured=cap)

    def _arrays(self) -> dict[str, np.ndarray]:
        """The tensors of ``sweep.safetensors``."""
        arrays = {
            "propensity": np.asarray(self.propensity, dtype=np.float32),
            "steerability": np.asarray(self.steerability, dtype=np.float32),
            "layers": np.asarray(self.layers, dtype=np.int64),
            "multipliers": np.asarray(self.multipliers, dtype=np.float64),
        }
        if self.captured is not None:
            arrays["captured"] = np.asarray(self.captured, dtype=np.float32)
        return arrays

    def _header(self) -> dict[str, str]:
        return {"model": str(self.metadata.get("model")), "hook": str(self.metadata.get("hook"))}

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``sweep.safetensors`` (propensity, steerability, layers, multipliers and the
        captured embeddings) and ``sweep.json`` (ids, units, letters, groups, metadata, and the
        tensor file's SHA-256 and shapes, checked by :meth:`load`)."""
        directory = Path(directory)
        record = write_verified(directory / SWEEP_FILE, self._arrays(), self._header())
        write_json(directory / META_FILE, stamp({
            "ids": self.ids, "units": self.units, "matching_letters": self.matching_letters,
            "groups": self.groups, "metadata": self.metadata, "tensors": record}))
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> SweepResult:
        """Read a sweep written by :meth:`save`.

        A ``sweep.safetensors`` that fails its check (unreadable, or not the SHA-256 or shapes
        recorded in ``sweep.json``) is rebuilt from the sweep's chunks when they are there
        (:func:`w2s_lens.sweep.chunks.rebuild_from_chunks`; a :class:`ChunkWarning` names it),
        and refused otherwise.

        Example:
            >>> SweepResult.load("runs/demo/base").steerability.shape  # doctest: +SKIP
        """
        directory = Path(directory)
        if not (directory / META_FILE).is_file() and (directory / "sweep_ids.json").is_file():
            raise ArtifactMismatch(f"{directory} holds a sweep written by w2s-lens 0.1; rerun "
                                   "the command that made it with this version")
        side = read_json(directory / META_FILE)
        check_format(side, directory / META_FILE, "rerun the sweep")
        arrays = _read_tensors(directory, side)
        return cls(
            propensity=arrays["propensity"].astype(np.float64),
            layers=[int(x) for x in arrays["layers"]],
            multipliers=[float(x) for x in arrays["multipliers"]],
            ids=list(side["ids"]),
            matching_letters=list(side["matching_letters"]),
            groups=list(side.get("groups") or []),
            metadata=dict(side.get("metadata") or {}),
            captured=arrays.get("captured"),
            units=list(side.get("units") or []),
        )


def _read_tensors(directory: Path, side: dict) -> dict[str, np.ndarray]:
    """The checked tensors of ``directory/sweep.safetensors``, rebuilt from the chunks (and
    rewritten) when the file fails its check against ``sweep.json``'s record."""
    path = directory / SWEEP_FILE
    record = side.get("tensors") or {}  # sweeps saved before digests were recorded: none
    try:
        return read_verified(path, record)[0]
    except ChunkError as err:
        broken = err
    try:
        parts = rebuild_from_chunks(directory, list(side["ids"]))
        rebuilt = SweepResult(parts["propensity"], [int(x) for x in parts["layers"]],
                              [float(x) for x in parts["multipliers"]], list(side["ids"]),
                              list(side["matching_letters"]),
                              metadata=dict(side.get("metadata") or {}),
                              captured=parts.get("captured"))
        arrays = rebuilt._arrays()
        if record.get("shapes"):
            check_spec(path, arrays, record["shapes"])
    except (ArtifactMismatch, KeyError, ValueError) as exc:
        error = FileNotFoundError if not path.exists() else ArtifactMismatch
        raise error(f"{broken}, and it cannot be rebuilt from its chunks ({exc}); rerun the "
                    "sweep") from broken
    warnings.warn(f"{broken}; rebuilt it from {directory / CHUNKS_DIR}", ChunkWarning,
                  stacklevel=3)
    # heal: the file, then its record (safetensors orders header metadata at random, so the
    # rewritten file's SHA-256 is not always the first one's)
    side["tensors"] = write_verified(path, arrays, rebuilt._header())
    write_json(directory / META_FILE, side)
    return arrays


