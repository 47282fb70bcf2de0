"""The per-input layer × multiplier sweep: how does each answer move when we steer?

For every example, every layer l and every multiplier λ, the sweep adds ``λ · c_l · v`` to
the residual stream (``blocks.{l}.hook_resid_pre``) and records the propensity (see
:mod:`w2s_lens.sweep.readouts`: the answer-letter logit difference, or the option texts'
log-probability difference for the cloze readout). The steerability of an (example, layer) is
the least-squares slope of propensity against λ. ``v`` is the layer's CAA vector
(:class:`~w2s_lens.steering.vectors.SteeringVectors`) or an input's own vector
(:class:`~w2s_lens.steering.vectors.InputVectors`, e.g. L2S).

The engines (:mod:`w2s_lens.sweep.engines`) give the same numbers (tested to 1e-3); ``fast`` is the
default. Sweeps are resumable: with ``out_dir`` each chunk of examples is written as it
finishes, and a rerun with the same configuration skips the chunks already there.

Mirrored evaluation: both letter orders of an item share a ``unit``;
:meth:`SweepResult.mirrored` averages a unit's presentations, so a pure "answer A vs answer B"
push cancels.

Example:
    >>> res = run_sweep(model, vectors, test_examples, engine="fast")  # doctest: +SKIP
    >>> res.steerability.shape  # [n_examples, n_layers]  # doctest: +SKIP
    >>> res.mirrored().steerability.shape  # [n_items, n_layers]  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from w2s_lens.artifacts import (
    ArtifactMismatch,
    check_format,
    load_tensors,
    read_json,
    save_tensors,
    stamp,
    write_json,
)
from w2s_lens.choices import DEFAULT_MULTIPLIERS, ENGINES
from w2s_lens.data.examples import SteeringExample
from w2s_lens.steering.activations import hook_name
from w2s_lens.steering.vectors import InputVectors, SteeringVectors
from w2s_lens.sweep.engines import SweepPositions, check_fast_supported, fast_chunk, naive_chunk
from w2s_lens.sweep.readouts import slopes

__all__ = [
    "DEFAULT_MULTIPLIERS",
    "ENGINES",
    "Engine",
    "SweepPositions",
    "SweepResult",
    "run_sweep",
    "slopes",
]

log = logging.getLogger(__name__)

SWEEP_FILE = "sweep.safetensors"
META_FILE = "sweep.json"

Engine = Literal["fast", "naive"]


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

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``sweep.safetensors`` (propensity, steerability, layers, multipliers and the
        captured embeddings) and ``sweep.json`` (ids, units, letters, groups, metadata)."""
        directory = Path(directory)
        arrays = {
            "propensity": np.asarray(self.propensity, dtype=np.float32),
            "steerability": np.asarray(self.steerability, dtype=np.float32),
            "layers": np.asarray(self.layers, dtype=np.int64),
            "multipliers": np.asarray(self.multipliers, dtype=np.float64),
        }
        if self.captured is not None:
            arrays["captured"] = np.asarray(self.captured, dtype=np.float32)
        save_tensors(directory / SWEEP_FILE, arrays,
                     metadata={"model": str(self.metadata.get("model")),
                               "hook": str(self.metadata.get("hook"))})
        write_json(directory / META_FILE, stamp({
            "ids": self.ids, "units": self.units, "matching_letters": self.matching_letters,
            "groups": self.groups, "metadata": self.metadata}))
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> SweepResult:
        """Read a sweep written by :meth:`save`.

        Example:
            >>> SweepResult.load("runs/demo/base").steerability.shape  # doctest: +SKIP
        """
        directory = Path(directory)
        if not (directory / META_FILE).is_file() and (directory / "sweep_ids.json").is_file():
            raise ArtifactMismatch(f"{directory} holds a sweep written by w2s-lens 0.1; rerun "
                                   "the command that made it with this version")
        side = read_json(directory / META_FILE)
        check_format(side, directory / META_FILE, "rerun the sweep")
        arrays = load_tensors(directory / SWEEP_FILE, framework="np")
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


# --------------------------------------------------------------------------- driver


def _digest(obj) -> str:
    if isinstance(obj, torch.Tensor):
        data = obj.detach().float().cpu().contiguous().numpy().tobytes()
    else:
        data = json.dumps(obj, sort_keys=True).encode()
    return hashlib.sha256(data).hexdigest()[:16]


def _check_examples(examples: Sequence[SteeringExample]) -> str:
    if len(examples) == 0:
        raise ValueError("no examples to sweep")
    kinds = {ex.readout for ex in examples}
    if len(kinds) > 1:
        raise ValueError("a sweep takes examples of one readout, got both letter and cloze")
    return kinds.pop()


def run_sweep(
    model: HookedTransformer,
    vectors: SteeringVectors | InputVectors,
    examples: Sequence[SteeringExample],
    layers: Sequence[int] | None = None,
    multipliers: Sequence[float] = DEFAULT_MULTIPLIERS,
    engine: Engine = "fast",
    positions: SweepPositions = "from_last",
    layer_scale: Sequence[float] | None = None,
    out_dir: str | os.PathLike | None = None,
    chunk_size: int = 8,
    progress: bool = True,
    desc: str = "sweep",
    capture_layer: int | None = None,
    length_norm: bool = False,
    max_rows: int | None = None,
) -> SweepResult:
    """Steer every example at every layer with every multiplier; record propensities.

    Args:
        model: the HookedTransformer the vectors were made for.
        vectors: per-layer CAA vectors, or per-(example, layer) :class:`InputVectors` whose
            ``ids`` are the examples' ids in order.
        examples: the prompts to sweep (all letter or all cloze).
        layers: layers to steer at (default: all layers the vectors have).
        multipliers: the λ grid (default {-1.5, ..., 1.5}).
        engine: ``"fast"`` or ``"naive"`` (reference).
        positions: ``"from_last"`` (last prompt token on) or ``"all"`` tokens.
        layer_scale: per-layer factor c_l so the added vector is ``λ · c_l · v`` (default: all
            1, the raw scale), in the order of ``layers``. See :mod:`w2s_lens.steering.scales`.
        out_dir: if given, chunks are written to ``out_dir/chunks`` as they finish and an
            interrupted sweep resumes from them.
        chunk_size: examples per chunk.
        progress: show a progress bar over examples × layers.
        desc: progress-bar label.
        capture_layer: with the fast engine, also keep each example's unsteered
            ``resid_pre`` at this layer at the last prompt token (``SweepResult.captured``).
        length_norm: cloze readout: divide each continuation's log-probability by its
            token count.
        max_rows: fast engine: batch the steered rows of several examples together, up to
            this many rows (None: one example at a time). Same results; a memory bound.

    Returns:
        :class:`SweepResult`.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if positions not in ("from_last", "all"):
        raise ValueError(f"positions must be 'from_last' or 'all', got {positions!r}")
    if max_rows is not None and max_rows < 1:
        raise ValueError(f"max_rows must be >= 1 or None, got {max_rows}")
    readout = _check_examples(examples)
    vectors.check_model(model)
    per_input = isinstance(vectors, InputVectors)
    if per_input and vectors.ids != [ex.id for ex in examples]:
        raise ValueError("InputVectors.ids must be the swept examples' ids, in order")
    layers = list(vectors.layers) if layers is None else [int(x) for x in layers]
    if len(set(layers)) != len(layers):
        raise ValueError(f"layers must be distinct, got {layers}")
    missing = [layer for layer in layers if layer not in vectors.layers]
    if missing:
        raise KeyError(f"no vectors for layers {missing}; stored layers: {vectors.layers}")
    mults = [float(m) for m in multipliers]
    slopes(np.zeros(len(mults)), mults)  # fail now, not after the sweep, on a bad grid
    scales = [1.0] * len(layers) if layer_scale is None else [float(s) for s in layer_scale]
    if len(scales) != len(layers):
        raise ValueError("layer_scale needs one factor per swept layer (in the order of "
                         "`layers`, or of vectors.layers when `layers` is None)")
    # sweep in ascending layer order; each scale travels with its layer
    pairs = sorted(zip(layers, scales))
    layers, scales = [p[0] for p in pairs], [p[1] for p in pairs]
    if engine == "fast":
        check_fast_supported(model, vectors.hook)
    cols = [vectors.layers.index(layer) for layer in layers]
    scale_t = torch.tensor(scales, dtype=torch.float32)[:, None]
    if per_input:
        steer_vecs = vectors.vectors[:, cols] * scale_t  # [n, L, d]
    else:
        steer_vecs = (vectors.vectors[cols] * scale_t)[None].expand(len(examples), -1, -1)
    mult_t = torch.tensor(mults, dtype=torch.float32)

    config = {
        "model": vectors.metadata.get("model"),
        "hook": vectors.hook,
        "hook_names": [hook_name(layer, vectors.hook) for layer in layers],
        "layers": layers,
        "multipliers": mults,
        "positions": positions,
        "readout": readout,
        "length_norm": bool(length_norm) if readout == "cloze" else False,
        "layer_scale": scales,
        "vector_kind": "per-input" if per_input else "per-layer",
        "vectors_digest": _digest(vectors.vectors if per_input else steer_vecs[0]),
        "ids_digest": _digest([ex.id for ex in examples]),
        "tokens_digest": _digest([[ex.tokens, *ex.continuations] for ex in examples]),
        "engine": engine,
        "chunk_size": chunk_size,
        "capture_layer": capture_layer if engine == "fast" else None,
    }
    chunk_dir = None
    if out_dir is not None:
        chunk_dir = Path(out_dir) / "chunks"
        manifest = chunk_dir / "manifest.json"
        if manifest.exists():
            old = read_json(manifest)
            if old.get("fingerprint") != _digest(config):
                raise ArtifactMismatch(
                    f"{chunk_dir} holds chunks of a different sweep (other model, vectors, "
                    f"examples, layers, multipliers, readout or positions); use another --out "
                    f"directory or delete it")
            log.info("resuming the sweep in %s", chunk_dir)
        else:
            write_json(manifest, stamp({"fingerprint": _digest(config), "config": config}))

    prop = np.empty((len(examples), len(layers), len(mults)), dtype=np.float64)
    captured = (np.empty((len(examples), model.cfg.d_model), dtype=np.float32)
                if config["capture_layer"] is not None else None)
    bar = tqdm(total=len(examples) * len(layers), desc=desc, unit="input·layer",
               disable=not progress, dynamic_ncols=True)
    for start in range(0, len(examples), chunk_size):
        stop = min(len(examples), start + chunk_size)
        chunk = examples[start:stop]
        path = chunk_dir / f"{start:06d}-{stop:06d}.safetensors" if chunk_dir else None
        if path is not None and path.exists():
            saved = load_tensors(path, framework="np")
            prop[start:stop] = saved["propensity"]
            if captured is not None:
                captured[start:stop] = saved["captured"]
        else:
            cap = None
            vec_chunk = steer_vecs[start:stop]
            if engine == "fast":
                part, cap = fast_chunk(model, vec_chunk, layers, mult_t, chunk, positions,
                                       config["capture_layer"], length_norm, max_rows)
            else:
                part = naive_chunk(model, vec_chunk, layers, mults, chunk, positions,
                                   vectors.hook, length_norm)
            prop[start:stop] = part
            if cap is not None:
                captured[start:stop] = cap  # type: ignore[index]
            if path is not None:
                save_tensors(path, {"propensity": part,
                                    **({"captured": cap} if cap is not None else {})})
        bar.update((stop - start) * len(layers))
    bar.close()

    meta = {**config, "dataset": vectors.metadata.get("dataset"),
            "method": vectors.metadata.get("method"),
            "dtype": str(model.cfg.dtype).replace("torch.", ""),
            "device": str(model.cfg.device)}
    return SweepResult(
        propensity=prop,
        layers=layers,
        multipliers=mults,
        ids=[ex.id for ex in examples],
        matching_letters=[ex.matching_letter for ex in examples],
        groups=[ex.group for ex in examples],
        metadata=meta,
        captured=captured,
        units=[ex.unit for ex in examples],
    )
