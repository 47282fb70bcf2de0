"""Layer advice without a sweep: first-order steerability of every layer, checked on demand.

:func:`advise` (A/B items) and :func:`advise_examples` (formatted examples) do what
``w2s-lens advise`` prints:

1. CAA vectors from the training split (:func:`~w2s_lens.steering.vectors.train_caa`, as
   ``w2s-lens sweep`` makes them; or given vectors), scaled per layer as the sweep scales them;
2. the first-order steerability ``∂propensity/∂λ`` at λ = 0 of every given item at every
   requested layer (:func:`~w2s_lens.sweep.first_order.first_order`: one forward and one
   backward pass for all layers; both letter orders averaged when mirrored);
3. per layer, the mean over items with a 95% BCa bootstrap interval over items; the
   recommended fixed layer (best mean); what per-item layer choice could gain by the
   first-order estimate (the mean over items of ``max_l s_il − s_i,fixed``, with an interval),
   an **in-sample upper bound**: the same numbers choose and score the layers, so noise in
   them counts as gain; and each item's advised layer (its first-order argmax);
4. with ``verify=N``, a real sweep (:func:`~w2s_lens.sweep.runner.run_sweep`) of the first
   ``N`` items at the same layers and scales: the per-item Spearman correlation across layers
   between first-order and measured slopes (median), the share of items whose best layer
   agrees (:func:`~w2s_lens.evaluation.headroom.diagnostics.retest_agreement`), and the measured
   steerability of the first-order choices against the measured fixed layer and oracle.

Wall and CPU time of each stage are recorded (:attr:`Advice.timing`).

Example:
    >>> adv = advise(model, items, EvalConfig(n_train=24, n_test=24), verify=8)  # doctest: +SKIP
    >>> print(adv.summary())  # doctest: +SKIP
    >>> adv.fixed_layer, adv.to_pandas().head()  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import scipy.stats
from jaxtyping import Float
from transformer_lens import HookedTransformer

from w2s_lens.data.examples import SteeringExample
from w2s_lens.data.items import ABItem
from w2s_lens.evaluation.advice_text import advice_summary
from w2s_lens.evaluation.config import EvalConfig
from w2s_lens.evaluation.config_parts import ConfigError
from w2s_lens.evaluation.context import resolve_layers, swept_vectors
from w2s_lens.evaluation.headroom.diagnostics import retest_agreement
from w2s_lens.evaluation.split import items_dataset, prepare_examples
from w2s_lens.evaluation.stats.bootstrap import bootstrap_ci, paired_diff_ci
from w2s_lens.steering.scales import layer_scales
from w2s_lens.steering.vectors import SteeringVectors, model_name, train_caa
from w2s_lens.sweep.first_order import first_order
from w2s_lens.sweep.runner import run_sweep

__all__ = ["Advice", "Verification", "advise", "advise_examples"]

Matrix = Float[np.ndarray, "n_items n_layers"]


@dataclass(frozen=True)
class Verification:
    """A real sweep of some advised items, against their first-order steerability.

    Attributes:
        ids: the verified items (the first ``n`` of :attr:`Advice.ids`).
        measured: ``[n, L]`` the sweep's OLS steerability (mirrored like the advice).
        first_order: ``[n, L]`` the same items' first-order steerability.
        spearman: ``[n]`` per-item Spearman correlation across layers (NaN where a curve is
            constant); ``spearman_median`` their median (constant curves left out).
        best_layer_agreement: share of items whose first-order and measured best layers agree;
            ``chance``: its level from the two marginal best-layer distributions.
        measured_fixed_layer: the layer of best measured mean over these items (in-sample).
        first_order_choice, advised_fixed, measured_fixed, oracle: mean measured steerability
            at each item's first-order layer, at :attr:`Advice.fixed_layer`, at
            ``measured_fixed_layer``, and at each item's measured best layer.
        choice_vs_fixed_ci: paired 95% interval of ``first_order_choice − measured_fixed``.
        timing: wall and CPU seconds of the sweep.
    """

    ids: tuple[str, ...]
    measured: Matrix
    first_order: Matrix
    spearman: np.ndarray
    spearman_median: float | None
    best_layer_agreement: float
    chance: float
    measured_fixed_layer: int
    first_order_choice: float
    advised_fixed: float
    measured_fixed: float
    oracle: float
    choice_vs_fixed_ci: tuple[float, float]
    timing: dict[str, float] = field(default_factory=dict)

    @property
    def n(self) -> int:
        """The number of verified items."""
        return len(self.ids)


@dataclass(frozen=True)
class Advice:
    """First-order layer advice for a set of items (see the module docstring).

    Attributes:
        model, dataset, readout, scoring, positions, mirrored: what was advised on.
        layers: the candidate layers (ascending), ``layer_scale`` their λ factors.
        ids: one per item (a unit: both letter orders averaged when mirrored).
        steerability: ``[n, L]`` first-order steerability.
        layer_mean, layer_ci: ``[L]`` its mean over items and ``[L, 2]`` 95% BCa intervals.
        fixed_layer: the recommended fixed layer (best mean; a layer number).
        gain, gain_ci: mean over items of ``max_l s_il − s_i,fixed`` and its interval: what
            per-item choice could gain by the first-order estimate (in-sample upper bound).
        item_layers: each item's advised layer (first-order argmax; a layer number).
        n_train_items, n_vector_pairs: the vectors' training data (0 for given vectors).
        verification: the real sweep's check (``verify > 0``), else None.
        timing: ``{"vectors"|"first_order"|"total": {"wall_s", "cpu_s"}}``.

    Example:
        >>> a = Advice("m", "d", "letter", "sum", "from_last", True, (1, 2), (1.0, 1.0),
        ...            ("x", "y"), np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([0.5, 1.0]),
        ...            np.array([[0.0, 1.0], [0.0, 2.0]]), 2, 0.5, (0.0, 1.0), (1, 2), 2, 4)
        >>> a.to_pandas()["advised_layer"].tolist()
        [1, 2]
    """

    model: str
    dataset: str
    readout: str
    scoring: str
    positions: str
    mirrored: bool
    layers: tuple[int, ...]
    layer_scale: tuple[float, ...]
    ids: tuple[str, ...]
    steerability: Matrix
    layer_mean: np.ndarray
    layer_ci: np.ndarray
    fixed_layer: int
    gain: float
    gain_ci: tuple[float, float]
    item_layers: tuple[int, ...]
    n_train_items: int
    n_vector_pairs: int
    verification: Verification | None = None
    timing: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def n(self) -> int:
        """The number of advised items."""
        return len(self.ids)

    def to_pandas(self) -> pd.DataFrame:
        """One row per item: its advised layer, first-order steerability at it and at the
        fixed layer, each layer's first-order steerability (``fo_L<layer>``), and where
        verified the measured slopes (``sweep_L<layer>``), best layer and Spearman ρ."""
        s = np.asarray(self.steerability)
        fixed = self.layers.index(self.fixed_layer)
        best = s.argmax(axis=1)
        df = pd.DataFrame({"id": list(self.ids), "advised_layer": list(self.item_layers),
                           "first_order_advised": s[np.arange(len(s)), best],
                           "first_order_fixed": s[:, fixed]})
        for j, layer in enumerate(self.layers):
            df[f"fo_L{layer}"] = s[:, j]
        v = self.verification
        if v is not None:
            m = pd.DataFrame(v.measured, columns=[f"sweep_L{x}" for x in self.layers])
            m["id"] = list(v.ids)
            m["measured_best_layer"] = [self.layers[i] for i in v.measured.argmax(axis=1)]
            m["spearman"] = v.spearman
            df = df.merge(m, on="id", how="left")
            df["measured_best_layer"] = df["measured_best_layer"].astype("Int64")
        return df

    def layer_table(self) -> pd.DataFrame:
        """One row per layer: the mean first-order steerability, its interval, the share of
        items advised there, and the measured mean where verified."""
        df = pd.DataFrame({"layer": list(self.layers), "mean": self.layer_mean,
                           "ci_lo": self.layer_ci[:, 0], "ci_hi": self.layer_ci[:, 1],
                           "advised_share": [self.item_layers.count(x) / max(self.n, 1)
                                             for x in self.layers]})
        if self.verification is not None:
            df["measured_mean"] = self.verification.measured.mean(axis=0)
        return df

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dump (``advice.json``)."""
        out = asdict(self)
        for key, value in list(out.items()):
            if isinstance(value, np.ndarray):
                out[key] = value.tolist()
        if self.verification is not None:
            ver = {k: (v.tolist() if isinstance(v, np.ndarray) else v)
                   for k, v in out["verification"].items()}
            ver["spearman"] = [None if np.isnan(x) else float(x)
                               for x in self.verification.spearman]
            out["verification"] = {**ver, "n": self.verification.n}
        out["n_items"] = self.n
        return out

    def summary(self) -> str:
        """A readable account: per-layer means with intervals, the fixed layer, the gain of
        per-item choice, the advised layers, the verification and the cost."""
        return advice_summary(self)


@contextmanager
def _timed(into: dict[str, dict[str, float]], name: str) -> Iterator[None]:
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    into[name] = {"wall_s": round(time.perf_counter() - wall, 3),
                  "cpu_s": round(time.process_time() - cpu, 3)}


def _spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-row Spearman ρ of two ``[n, L]`` arrays (NaN where either row is constant)."""
    return np.array([scipy.stats.spearmanr(x, y).statistic if np.ptp(x) > 0 and np.ptp(y) > 0
                     else np.nan for x, y in zip(a, b)], dtype=float)


def verification(first: Matrix, measured: Matrix, layers: Sequence[int], advised_fixed: int,
                 ids: Sequence[str], n_boot: int = 2000, seed: int = 0) -> Verification:
    """Compare first-order and measured steerability of the same items (``[n, L]`` each).

    Example:
        >>> v = verification(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[2.0, 1.0],
        ...                  [1.0, 0.0]]), [1, 2], 1, ["a", "b"], n_boot=100)
        >>> v.best_layer_agreement, v.first_order_choice, v.oracle, v.measured_fixed_layer
        (0.5, 1.0, 1.5, 1)
    """
    f, m = np.asarray(first, dtype=float), np.asarray(measured, dtype=float)
    layers = [int(x) for x in layers]
    agree = retest_agreement(f, m)
    rows = np.arange(len(m))
    choice = m[rows, f.argmax(axis=1)]
    mfix = int(m.mean(axis=0).argmax())
    lo, hi = paired_diff_ci(choice, m[:, mfix], n_boot=n_boot, seed=seed)
    return Verification(
        ids=tuple(ids), measured=m, first_order=f, spearman=_spearman(f, m),
        spearman_median=agree["rank_correlation"], best_layer_agreement=agree["agreement"],
        chance=agree["chance"], measured_fixed_layer=layers[mfix],
        first_order_choice=float(choice.mean()),
        advised_fixed=float(m[:, layers.index(advised_fixed)].mean()),
        measured_fixed=float(m[:, mfix].mean()), oracle=float(m.max(axis=1).mean()),
        choice_vs_fixed_ci=(lo, hi))


def _vectors(model: HookedTransformer, vector_train: Sequence[SteeringExample],
             config: EvalConfig, layers: list[int],
             vectors: SteeringVectors | None) -> SteeringVectors:
    """Given vectors (or ``config.sweep.vectors``) at ``layers``, else CAA on ``vector_train``."""
    if vectors is None and config.sweep.vectors is not None:
        vectors = SteeringVectors.load(config.sweep.vectors, model=model)
    if vectors is not None:
        vectors.check_model(model)
        return swept_vectors(vectors, layers, str(config.sweep.vectors or "the vectors"))
    if not vector_train:
        raise ConfigError("no training items for the vectors (and no vectors given)")
    return train_caa(model, vector_train, layers=layers, batch_size=config.compute.batch_size,
                     dataset=config.data.dataset)


def advise_examples(
    model: HookedTransformer,
    vector_train: Sequence[SteeringExample],
    examples: Sequence[SteeringExample],
    config: EvalConfig | None = None,
    vectors: SteeringVectors | None = None,
    verify: int = 0,
    progress: bool = False,
) -> Advice:
    """Layer advice for formatted ``examples`` (both letter orders of an item adjacent when
    mirrored), with CAA vectors from ``vector_train`` (or ``vectors`` / ``config.sweep.vectors``).

    Args:
        model: the HookedTransformer.
        vector_train: the vectors' contrast pairs (letter format; ignored with vectors).
        examples: the items to advise on, in ``config.sweep.readout``.
        config: layers, readout, scoring, positions, scale, multipliers, engine, n_boot, seed.
        vectors: CAA vectors to use instead of training them.
        verify: sweep this many of the items for real (0: none).
        progress: progress bar of the verification sweep.

    Example:
        >>> c = build_control("positive", n_families=3, n_layers=4)  # doctest: +SKIP
        >>> adv = advise_examples(c.model, c.make_examples(24, seed=1, both_orders=True),
        ...                       c.make_examples(12, seed=2, both_orders=True))  # doctest: +SKIP
        >>> adv.fixed_layer, sorted(set(adv.item_layers))  # doctest: +SKIP
        (2, [1, 2, 3])
    """
    cfg = config if config is not None else EvalConfig()
    if verify < 0:
        raise ConfigError(f"verify must be 0 or a positive count, got {verify}")
    if not examples:
        raise ConfigError("no items to advise on")
    timing: dict[str, dict[str, float]] = {}
    wall, cpu = time.perf_counter(), time.process_time()
    layers = sorted(resolve_layers(model, cfg))
    sweep, n_boot, seed = cfg.sweep, cfg.statistics.n_boot, cfg.data.seed
    given = vectors is not None or sweep.vectors is not None
    with _timed(timing, "vectors"):
        vecs = _vectors(model, vector_train, cfg, layers, vectors)
        scales = layer_scales(vecs, sweep.scale, layers, fraction=sweep.fraction)
    with _timed(timing, "first_order"):
        fo = first_order(model, vecs, examples, layers=layers, positions=sweep.positions,
                         layer_scale=scales, scoring=sweep.scoring, multipliers=sweep.multipliers)
    fo = fo.mirrored() if cfg.mirrored else fo
    s = np.asarray(fo.steerability, dtype=float)
    ci = np.array([bootstrap_ci(s[:, j], n_boot=n_boot, seed=seed)
                   for j in range(len(layers))])
    fixed = int(s.mean(axis=0).argmax())
    d = s.max(axis=1) - s[:, fixed]
    ver = None
    if verify:
        keep = set(fo.units[:verify])
        with _timed(timing, "verify"):
            res = run_sweep(model, vecs, [ex for ex in examples if ex.unit in keep],
                            layers=layers, multipliers=sweep.multipliers, engine=sweep.engine,
                            positions=sweep.positions, layer_scale=scales,
                            chunk_size=cfg.compute.chunk_size, progress=progress,
                            scoring=sweep.scoring, max_rows=cfg.compute.max_rows)
        res = res.mirrored() if cfg.mirrored else res
        rows = [fo.ids.index(i) for i in res.ids]
        ver = verification(s[rows], res.steerability, layers, layers[fixed], res.ids, n_boot,
                           seed)
        ver = replace(ver, timing=timing["verify"])
    timing["total"] = {"wall_s": round(time.perf_counter() - wall, 3),
                       "cpu_s": round(time.process_time() - cpu, 3)}
    return Advice(
        model=model_name(model), dataset=cfg.data.dataset, readout=fo.metadata["readout"],
        scoring=sweep.scoring, positions=sweep.positions, mirrored=cfg.mirrored,
        layers=tuple(layers), layer_scale=tuple(float(x) for x in scales), ids=tuple(fo.ids),
        steerability=s, layer_mean=s.mean(axis=0), layer_ci=ci, fixed_layer=layers[fixed],
        gain=float(d.mean()), gain_ci=bootstrap_ci(d, n_boot=n_boot, seed=seed),
        item_layers=tuple(layers[i] for i in s.argmax(axis=1)),
        n_train_items=0 if given else len({ex.unit for ex in vector_train}),
        n_vector_pairs=0 if given else len(vector_train),
        verification=ver, timing=timing)


def advise(
    model: HookedTransformer,
    items: Sequence[ABItem],
    config: EvalConfig | None = None,
    test_items: Sequence[ABItem] | None = None,
    vectors: SteeringVectors | None = None,
    verify: int = 0,
    progress: bool = False,
) -> Advice:
    """Layer advice for A/B items: split them as ``w2s-lens sweep`` and ``evaluate`` do
    (``config.data.train_fraction``, ``seed``, ``n_train``, ``n_test``; or ``test_items`` as a
    predefined test split), CAA vectors from the training items, advice on the test items.

    Example:
        >>> adv = advise(model, load_dataset("corrigible-neutral-HHH"),
        ...              EvalConfig(n_train=48, n_test=24, readout="cloze"))  # doctest: +SKIP
        >>> adv.fixed_layer, adv.gain_ci  # doctest: +SKIP
    """
    cfg = items_dataset(config if config is not None else EvalConfig(),
                        [*items, *(test_items or [])])
    cfg = cfg.replace(variants=("base",))
    exs = prepare_examples(model, items, cfg, test_items)
    return advise_examples(model, exs.vector_train, exs.test["base"], cfg, vectors, verify,
                           progress)
