"""The parts of an evaluation's settings, one frozen, validated dataclass each.

:class:`~w2s_lens.evaluation.config.EvalConfig` holds one of each (``config.data``,
``config.sweep``, ...): :class:`DataConfig` (the items, their split and prompts),
:class:`SweepConfig` (the vectors, the layer × multiplier grid, the readout),
:class:`RoutingConfig` (what the routers see, which kinds), :class:`StatisticsConfig`
(cross-fitting, retest, bootstrap, generations) and :class:`ComputeConfig` (model, device,
batching); L2S's part is :class:`~w2s_lens.steering.l2s.config.L2SConfig`. Each checks its
settings when made: a bad value raises :class:`ConfigError` naming it as
``EvalConfig.<part>.<name>`` with the accepted values. :data:`PARTS` lists the parts in order
and :data:`SETTING_PARTS` says which part each setting name belongs to.

Example:
    >>> SweepConfig(readout="cloze", scoring="mean").scoring
    'mean'
    >>> DataConfig(variants=("sys-pos",))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    w2s_lens.evaluation.config_parts.ConfigError: EvalConfig.data.variants must include 'base' ...
    >>> SETTING_PARTS["readout"], list(PARTS)[:2]
    ('sweep', ['data', 'sweep'])
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from w2s_lens.choices import (
    DEFAULT_MULTIPLIERS,
    DEFAULT_SYSTEM_PROMPT,
    EVAL_PARTS,
    ROUTER_KINDS,
    DTypeName,
    EmbeddingName,
    EngineName,
    MethodName,
    PositionsName,
    Readout,
    ReadoutName,
    RouterKindName,
    RouterViewName,
    ScaleName,
    ScoringName,
    VariantName,
)
from w2s_lens.steering.l2s.config import L2SConfig

__all__ = ["PARTS", "SETTING_PARTS", "ComputeConfig", "ConfigError", "DataConfig",
           "RoutingConfig", "StatisticsConfig", "SweepConfig"]


class ConfigError(ValueError):
    """An evaluation setting is invalid."""


@dataclass(frozen=True)
class DataConfig:
    """What a run evaluates on: the items, their split and their prompts (``EvalConfig.data``).

    Attributes:
        dataset: dataset name or path (see :func:`w2s_lens.data.datasets.load_dataset`).
        data_dir: folder of the dataset files (anthropics/evals or CAA layout).
        variants: test variants (``base`` and the OOD prompts of :mod:`w2s_lens.data.behaviours`).
        n_train, n_test: caps on the number of training / test items (None: all).
        train_fraction: the share of the items that trains (the split is by item,
            deduplicated, stratified by letter).
        seed: seeds the split, and with it the cross-fitting folds, the routers, the bootstrap
            and the retest halves.
        system_prompt: the base system prompt.
    """

    _part: ClassVar[str] = "data"
    dataset: str = "default"
    data_dir: str | None = None
    variants: tuple[VariantName, ...] = ("base",)
    n_train: int | None = None
    n_test: int | None = None
    train_fraction: float = 0.5
    seed: int = 0
    system_prompt: str = DEFAULT_SYSTEM_PROMPT

    def __post_init__(self) -> None:
        _check_part(self)
        for name in ("n_train", "n_test"):
            _check_int(self, name, 1, True)
        _check_int(self, "seed", None, False)
        if not 0.0 < self.train_fraction < 1.0:
            raise ConfigError(f"EvalConfig.data.train_fraction must be in (0, 1), got "
                              f"{self.train_fraction!r}")
        if "base" not in self.variants:
            raise ConfigError("EvalConfig.data.variants must include 'base' (the "
                              "in-distribution comparison)")


@dataclass(frozen=True)
class SweepConfig:
    """How inputs are steered and read (``EvalConfig.sweep``): the vectors, the layer ×
    multiplier grid they are swept over, the sweep's engine and its readout.

    Attributes:
        method: ``caa`` (one vector per layer), ``l2s`` (a vector per input) or ``both``.
        vectors: a directory of CAA vectors (e.g. from ``w2s-lens vectors --pairs``) used
            instead of training them on the training items (method ``caa`` only; they never
            saw the training items, so no cross-fitting is needed).
        both_orders: train vectors on both letter orders (False: the paper's single order).
        layers: layers to steer at; ``None``: every layer but 0 (layer 0's letter-balanced
            vector is ~0, a hidden "do not steer" option).
        multipliers: the λ grid of the steerability slope.
        readout: ``letter`` (A/B logit difference) or ``cloze`` (option texts scored).
        mirror: letter readout: sweep both letter orders of every item and average them, so a
            pure "answer A vs answer B" push cancels (the default; no effect on cloze).
        scoring: cloze readout: an option's summed log-probability (``sum``), its mean per
            token (``mean``) or its first token only (``first``).
        list_options: cloze readout: the prompt lists both option texts (without letters)
            under the question, so the router's input holds what the readout scores.
        engine, positions: see :func:`w2s_lens.sweep.runner.run_sweep`.
        scale, fraction: multiplier scale (see :mod:`w2s_lens.steering.scales`).
    """

    _part: ClassVar[str] = "sweep"
    method: MethodName = "caa"
    vectors: str | None = None
    both_orders: bool = True
    layers: tuple[int, ...] | None = None
    multipliers: tuple[float, ...] = DEFAULT_MULTIPLIERS
    readout: ReadoutName = "letter"
    mirror: bool = True
    scoring: ScoringName = "sum"
    list_options: bool = False
    engine: EngineName = "fast"
    positions: PositionsName = "from_last"
    scale: ScaleName = "raw"
    fraction: float = 0.25

    def __post_init__(self) -> None:
        if self.layers is not None:
            if isinstance(self.layers, str) or not isinstance(self.layers, (list, tuple)):
                raise ConfigError(f"EvalConfig.sweep.layers must be a sequence or None, got "
                                  f"{self.layers!r}")
            given = [int(x) for x in self.layers]
            if len(set(given)) != len(given):
                raise ConfigError(f"EvalConfig.sweep.layers names a layer twice: {self.layers!r}")
            object.__setattr__(self, "layers", tuple(sorted(given)))
        _check_part(self)
        if not 0 < self.fraction < float("inf"):
            raise ConfigError(f"EvalConfig.sweep.fraction must be finite, > 0: {self.fraction!r}")
        if not all(-float("inf") < m < float("inf") for m in self.multipliers):
            raise ConfigError(f"EvalConfig.sweep.multipliers must be finite: {self.multipliers!r}")
        if self.layers is not None and (not self.layers or self.layers[0] < 0):
            raise ConfigError(f"EvalConfig.sweep.layers must be non-negative layer numbers, got "
                              f"{self.layers!r}")
        if len(set(self.multipliers)) < 2:
            raise ConfigError("EvalConfig.sweep.multipliers needs at least two distinct values "
                              "to fit a slope")
        if self.vectors is not None and self.method != "caa":
            raise ConfigError("EvalConfig.sweep.vectors (given CAA vectors) needs method='caa', "
                              f"got {self.method!r}")
        if not Readout(self.readout).scores_options and (self.scoring != "sum"
                                                          or self.list_options):
            raise ConfigError("EvalConfig.sweep.scoring and list_options apply to the cloze "
                              f"readout only (readout={self.readout!r})")


@dataclass(frozen=True)
class RoutingConfig:
    """What the routers see and which kinds are fitted (``EvalConfig.routing``).

    Attributes:
        embedding, embedding_layer: the ``question`` view's embedding (see
            :mod:`w2s_lens.routing.embeddings`; layer ``None``: the middle layer).
        routers: router kinds to fit.
        router_inputs: what the routers see (:mod:`w2s_lens.routing.views`): every router kind
            is fitted once per view; the ``question`` view's routers keep their kind as name,
            the others are named ``"<kind>@<view>"``.
        primary_router: the router kind called "W2S" (one of ``routers``).
    """

    _part: ClassVar[str] = "routing"
    embedding: EmbeddingName = "resid-last"
    embedding_layer: int | None = None
    routers: tuple[RouterKindName, ...] = ROUTER_KINDS
    router_inputs: tuple[RouterViewName, ...] = ("question",)
    primary_router: RouterKindName = "logreg"

    def __post_init__(self) -> None:
        _check_part(self)
        _check_int(self, "embedding_layer", 0, True)
        if not self.routers:
            raise ConfigError("EvalConfig.routing.routers must name at least one router kind")
        if not self.router_inputs or len(set(self.router_inputs)) != len(self.router_inputs):
            raise ConfigError("EvalConfig.routing.router_inputs must name at least one view, "
                              f"each once, got {self.router_inputs!r}")
        if self.primary_router not in self.routers:
            raise ConfigError(f"EvalConfig.routing.primary_router {self.primary_router!r} is not "
                              f"among the routers {self.routers}")


@dataclass(frozen=True)
class StatisticsConfig:
    """How the comparison is measured beyond the sweeps themselves (``EvalConfig.statistics``).

    Attributes:
        cross_fit: folds for the training labels and the fixed layer: each training item is
            swept with vectors fitted without it (0: in-sample, biased upwards).
        retest: the headroom retest (:mod:`w2s_lens.evaluation.headroom.run`): vectors
            fitted on two disjoint halves of the training items sweep the base test items
            twice more, for the best layers' retest agreement and the cross-validated oracle
            (two extra test sweeps; skipped for given ``vectors``).
        retest_max_items: cap on the base test items the retest sweeps (a seeded,
            letter-balanced subset; None: all of them).
        n_boot: bootstrap resamples for confidence intervals.
        generations: greedy continuations (unsteered, fixed layer, routed) of this many base
            test prompts, for the report (0: none).
    """

    _part: ClassVar[str] = "statistics"
    cross_fit: int = 5
    retest: bool = True
    retest_max_items: int | None = 64
    n_boot: int = 2000
    generations: int = 0

    def __post_init__(self) -> None:
        _check_part(self)
        _check_int(self, "cross_fit", 0, False)
        if self.cross_fit == 1:
            raise ConfigError("EvalConfig.statistics.cross_fit must be 0 (in-sample) or >= 2 "
                              "folds, got 1")
        _check_int(self, "retest_max_items", 1, True)
        _check_int(self, "n_boot", 1, False)
        _check_int(self, "generations", 0, False)


@dataclass(frozen=True)
class ComputeConfig:
    """The model, where it runs, and how the work is batched (``EvalConfig.compute``).

    Attributes:
        model: model name; ``None``: whatever model is passed to
            :func:`~w2s_lens.evaluation.pipeline.evaluate` (its name is recorded either way).
        device, dtype: where and in what precision the model runs (``load_model``).
        batch_size: prompts per forward pass for residual caching.
        chunk_size: examples per sweep chunk (the unit of resuming).
        max_rows: fast engine: rows of several inputs per batch (None: one input at a time).
    """

    _part: ClassVar[str] = "compute"
    model: str | None = None
    device: str = "auto"
    dtype: DTypeName = "float32"
    batch_size: int = 8
    chunk_size: int = 8
    max_rows: int | None = None

    def __post_init__(self) -> None:
        _check_part(self)
        for name in ("batch_size", "chunk_size"):
            _check_int(self, name, 1, False)
        _check_int(self, "max_rows", 1, True)


#: every part of :class:`EvalConfig`, by name, in order
PARTS: dict[str, type] = {"data": DataConfig, "sweep": SweepConfig, "routing": RoutingConfig,
                          "statistics": StatisticsConfig, "l2s": L2SConfig,
                          "compute": ComputeConfig}
assert tuple(PARTS) == EVAL_PARTS, (tuple(PARTS), EVAL_PARTS)
#: the part each setting lives in (``"readout"`` -> ``"sweep"``), for every part but ``l2s``
#: (whose names ``batch_size`` and ``seed`` are settings of other parts too): the flat keywords
#: of :class:`EvalConfig` and the keys of a flat dump
SETTING_PARTS: dict[str, str] = {f.name: name for name, cls in PARTS.items() if name != "l2s"
                                 for f in dataclasses.fields(cls)}
assert len(SETTING_PARTS) == sum(len(dataclasses.fields(c)) for n, c in PARTS.items()
                                 if n != "l2s"), "a setting name is used by two parts"


# --------------------------------------------------------------------------- checks


def _check_part(part: Any) -> None:
    """Sequence settings as tuples, and every setting with a fixed set of values checked."""
    hints = typing.get_type_hints(type(part))
    for f in dataclasses.fields(part):
        value, hint = getattr(part, f.name), hints[f.name]
        if typing.get_origin(hint) is tuple:
            if isinstance(value, str) or not isinstance(value, (list, tuple)):
                raise ConfigError(f"EvalConfig.{part._part}.{f.name} must be a sequence, got "
                                  f"{value!r}")
            value = tuple(value)
            object.__setattr__(part, f.name, value)
        _check_literal(f"{part._part}.{f.name}", value, hint)
        if hint is bool and not isinstance(value, bool):
            raise ConfigError(f"EvalConfig.{part._part}.{f.name} must be True or False")


def _check_int(part: Any, name: str, low: int | None, optional: bool) -> None:
    value = getattr(part, name)
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or (low is not None and value < low):
        rule = "an int" + ("" if low is None else f" >= {low}") + (" or None" if optional else "")
        raise ConfigError(f"EvalConfig.{part._part}.{name} must be {rule}, got {value!r}")


def _check_literal(name: str, value: Any, hint: Any) -> None:
    origin = typing.get_origin(hint)
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            raise ConfigError(f"EvalConfig.{name} must be one of {allowed}, got {value!r}")
    elif origin is tuple:
        inner = typing.get_args(hint)[0]
        if typing.get_origin(inner) is Literal:
            allowed = typing.get_args(inner)
            bad = [v for v in value if v not in allowed]
            if bad:
                what = name.split(".")[-1].rstrip("s")
                raise ConfigError(f"EvalConfig.{name}: unknown {what} {bad[0]!r}; choose from "
                                  f"{allowed}")
