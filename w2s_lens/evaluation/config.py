"""The settings of one evaluation run: a complete, typed, validated :class:`EvalConfig`.

Every field is checked when the config is made (a bad value raises :class:`ConfigError`
naming the field and the accepted values), the whole config is passed to the stages that need
it, and ``run.json`` is its faithful dump (:meth:`EvalConfig.to_dict`), from which
:meth:`EvalConfig.from_dict` rebuilds it.

Example:
    >>> cfg = EvalConfig(dataset="corrigible-neutral-HHH", n_train=24, readout="cloze")
    >>> cfg.mirror, cfg.method, cfg.cross_fit
    (True, 'caa', 5)
    >>> EvalConfig(engine="fastest")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    w2s_lens.evaluation.config.ConfigError: EvalConfig.engine must be one of (...), got 'fastest'
    >>> EvalConfig.from_dict(cfg.to_dict()) == cfg
    True
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from w2s_lens.choices import (
    DEFAULT_MULTIPLIERS,
    DEFAULT_SYSTEM_PROMPT,
    DTYPES,
    EMBEDDINGS,
    ENGINES,
    METHODS,
    POSITIONS,
    READOUTS,
    ROUTER_INPUTS,
    ROUTER_KINDS,
    SCALES,
    SCORINGS,
    VARIANTS,
    Method,
    Readout,
)
from w2s_lens.routing.views import router_name
from w2s_lens.steering.l2s.config import L2SConfig

__all__ = ["ConfigError", "EvalConfig", "MethodName", "upgrade_config"]


ReadoutName = Literal["letter", "cloze"]
SweepPositions = Literal["from_last", "all", "prompt"]
Scoring = Literal["sum", "mean", "first"]
RouterInput = Literal["question", "options", "question+options", "minilm"]
Variant = Literal["base", "sys-pos", "sys-neg", "user-pos", "user-neg"]
RouterKindName = Literal["logreg", "mlp", "curve", "knn"]
MethodName = Literal["caa", "l2s", "both"]
EngineName = Literal["fast", "naive"]
Scale = Literal["raw", "relative"]
EmbeddingKind = Literal["resid-last", "resid-mean", "minilm"]
DeviceSpec = str
DType = Literal["auto", "float32", "bfloat16", "float16"]

# the Literal types above spell out w2s_lens.choices; keep them in step
for _lit, _names in ((Variant, VARIANTS), (RouterKindName, ROUTER_KINDS), (EngineName, ENGINES),
                     (EmbeddingKind, EMBEDDINGS), (ReadoutName, READOUTS), (MethodName, METHODS),
                     (SweepPositions, POSITIONS), (Scale, SCALES), (DType, DTYPES),
                     (Scoring, SCORINGS), (RouterInput, ROUTER_INPUTS)):
    assert typing.get_args(_lit) == _names, (_lit, _names)


class ConfigError(ValueError):
    """An evaluation setting is invalid."""


@dataclass(frozen=True)
class EvalConfig:
    """Settings of one evaluation run (``run.json`` is their dump).

    Attributes:
        dataset: dataset name or path (see :func:`w2s_lens.data.datasets.load_dataset`).
        data_dir: folder of the dataset files (anthropics/evals or CAA layout).
        vectors: a directory of CAA vectors (e.g. from ``w2s-lens vectors --pairs``) used
            instead of training them on the training items (method ``caa`` only; they never
            saw the training items, so no cross-fitting is needed).
        model: model name; ``None``: whatever model is passed to
            :func:`~w2s_lens.evaluation.pipeline.evaluate` (its name is recorded either way).
        device, dtype: where and in what precision the model runs (``load_model``).
        variants: test variants (``base`` and the OOD prompts of :mod:`w2s_lens.data.behaviours`).
        n_train, n_test: caps on the number of training / test items (None: all).
        train_fraction, seed: the split (by item, deduplicated, stratified by letter).
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
        method: ``caa`` (one vector per layer), ``l2s`` (a vector per input) or ``both``.
        engine, positions: see :func:`w2s_lens.sweep.runner.run_sweep`.
        scale, fraction: multiplier scale (see :mod:`w2s_lens.steering.scales`).
        embedding, embedding_layer: the ``question`` view's embedding (see
            :mod:`w2s_lens.routing.embeddings`).
        routers, primary_router: router kinds to fit; the primary one is called "W2S".
        router_inputs: what the routers see (:mod:`w2s_lens.routing.views`): every router kind
            is fitted once per view; the ``question`` view's routers keep their kind as name,
            the others are named ``"<kind>@<view>"``.
        both_orders: train vectors on both letter orders (False: the paper's single order).
        cross_fit: folds for the training labels and the fixed layer: each training item is
            swept with vectors fitted without it (0: in-sample, biased upwards).
        retest: the headroom retest (:mod:`w2s_lens.evaluation.headroom.run`): vectors
            fitted on two disjoint halves of the training items sweep the base test items
            twice more, for the best layers' retest agreement and the cross-validated oracle
            (two extra test sweeps; skipped for given ``vectors``).
        retest_max_items: cap on the base test items the retest sweeps (a seeded,
            letter-balanced subset; None: all of them).
        system_prompt: the base system prompt.
        l2s: L2S hyper-parameters (:class:`w2s_lens.steering.l2s.L2SConfig`).
        n_boot: bootstrap resamples for confidence intervals.
        generations: greedy continuations (unsteered, fixed layer, routed) of this many base
            test prompts, for the report (0: none).
        batch_size: prompts per forward pass for residual caching.
        chunk_size: examples per sweep chunk (the unit of resuming).
        max_rows: fast engine: rows of several inputs per batch (None: one input at a time).
    """

    dataset: str = "default"
    data_dir: str | None = None
    vectors: str | None = None
    model: str | None = None
    device: DeviceSpec = "auto"
    dtype: DType = "float32"
    variants: tuple[Variant, ...] = ("base",)
    n_train: int | None = None
    n_test: int | None = None
    train_fraction: float = 0.5
    seed: int = 0
    layers: tuple[int, ...] | None = None
    multipliers: tuple[float, ...] = DEFAULT_MULTIPLIERS
    readout: ReadoutName = "letter"
    mirror: bool = True
    scoring: Scoring = "sum"
    list_options: bool = False
    method: MethodName = "caa"
    engine: EngineName = "fast"
    positions: SweepPositions = "from_last"
    scale: Scale = "raw"
    fraction: float = 0.25
    embedding: EmbeddingKind = "resid-last"
    embedding_layer: int | None = None
    routers: tuple[RouterKindName, ...] = ROUTER_KINDS
    router_inputs: tuple[RouterInput, ...] = ("question",)
    primary_router: RouterKindName = "logreg"
    both_orders: bool = True
    cross_fit: int = 5
    retest: bool = True
    retest_max_items: int | None = 64
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    l2s: L2SConfig = field(default_factory=L2SConfig)
    n_boot: int = 2000
    generations: int = 0
    batch_size: int = 8
    chunk_size: int = 8
    max_rows: int | None = None

    def __post_init__(self) -> None:
        for name in ("variants", "routers", "multipliers", "router_inputs"):
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, (list, tuple)):
                raise ConfigError(f"EvalConfig.{name} must be a sequence, got {value!r}")
            object.__setattr__(self, name, tuple(value))
        if self.layers is not None:
            given = [int(x) for x in self.layers]
            if len(set(given)) != len(given):
                raise ConfigError(f"EvalConfig.layers names a layer twice: {self.layers!r}")
            object.__setattr__(self, "layers", tuple(sorted(given)))
        if isinstance(self.l2s, dict):
            object.__setattr__(self, "l2s", L2SConfig(**self.l2s))
        hints = typing.get_type_hints(EvalConfig)
        for f in dataclasses.fields(self):
            _check_literal(f.name, getattr(self, f.name), hints[f.name])
        for name in ("n_train", "n_test", "embedding_layer", "max_rows", "retest_max_items"):
            _check_int(name, getattr(self, name), 1 if name != "embedding_layer" else 0, True)
        _check_int("generations", self.generations, 0, False)
        for name in ("n_boot", "batch_size", "chunk_size"):
            _check_int(name, getattr(self, name), 1, False)
        _check_int("seed", self.seed, None, False)
        _check_int("cross_fit", self.cross_fit, 0, False)
        if self.cross_fit == 1:
            raise ConfigError("EvalConfig.cross_fit must be 0 (in-sample) or >= 2 folds, got 1")
        if not 0.0 < self.train_fraction < 1.0:
            raise ConfigError(f"EvalConfig.train_fraction must be in (0, 1), got "
                              f"{self.train_fraction!r}")
        if not 0 < self.fraction < float("inf"):
            raise ConfigError(f"EvalConfig.fraction must be finite, > 0: {self.fraction!r}")
        if not all(-float("inf") < m < float("inf") for m in self.multipliers):
            raise ConfigError(f"EvalConfig.multipliers must be finite: {self.multipliers!r}")
        if self.layers is not None and (not self.layers or self.layers[0] < 0):
            raise ConfigError(f"EvalConfig.layers must be non-negative layer numbers, got "
                              f"{self.layers!r}")
        if len(set(self.multipliers)) < 2:
            raise ConfigError("EvalConfig.multipliers needs at least two distinct values to fit "
                              "a slope")
        if "base" not in self.variants:
            raise ConfigError("EvalConfig.variants must include 'base' (the in-distribution "
                              "comparison)")
        if self.vectors is not None and self.method != "caa":
            raise ConfigError("EvalConfig.vectors (given CAA vectors) needs method='caa', got "
                              f"{self.method!r}")
        if not self.routers:
            raise ConfigError("EvalConfig.routers must name at least one router kind")
        if not self.router_inputs or len(set(self.router_inputs)) != len(self.router_inputs):
            raise ConfigError("EvalConfig.router_inputs must name at least one view, each once, "
                              f"got {self.router_inputs!r}")
        if not Readout(self.readout).scores_options and (self.scoring != "sum"
                                                          or self.list_options):
            raise ConfigError("EvalConfig.scoring and list_options apply to the cloze readout "
                              f"only (readout={self.readout!r})")
        if self.primary_router not in self.routers:
            raise ConfigError(f"EvalConfig.primary_router {self.primary_router!r} is not among "
                              f"the routers {self.routers}")
        for name in ("mirror", "list_options", "both_orders", "retest"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"EvalConfig.{name} must be True or False")

    @property
    def methods(self) -> tuple[str, ...]:
        """The base methods this run evaluates: ``("caa",)``, ``("l2s",)`` or both."""
        return Method(self.method).runs

    @property
    def router_names(self) -> tuple[str, ...]:
        """Every fitted router's name, view by view: ``"logreg"`` (question view),
        ``"logreg@options"``, ...

        Example:
            >>> EvalConfig(routers=("logreg",), router_inputs=("question", "options")).router_names
            ('logreg', 'logreg@options')
        """
        return tuple(router_name(k, v) for v in self.router_inputs for k in self.routers)

    @property
    def primary_name(self) -> str:
        """The name of the router called "W2S": the primary kind on the question view (on
        the first view when the question view is not fitted).

        Example:
            >>> EvalConfig(router_inputs=("options",)).primary_name
            'logreg@options'
        """
        view = "question" if "question" in self.router_inputs else self.router_inputs[0]
        return router_name(self.primary_router, view)

    @property
    def length_norm(self) -> bool:
        """Whether cloze options are scored by their mean per-token log-probability."""
        return Readout(self.readout).scores_options and self.scoring == "mean"

    @property
    def mirrored(self) -> bool:
        """Whether sweeps present both letter orders (mirror on, letter readout)."""
        return self.mirror and Readout(self.readout).has_letter_orders

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dump (what ``run.json`` records under ``"config"``)."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalConfig:
        """Rebuild a config from :meth:`to_dict` output; unknown keys are refused by name."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(upgrade_config(data)) - known)
        if unknown:
            raise ConfigError(f"unknown EvalConfig field(s) {unknown}")
        kw = upgrade_config(data)
        if kw.get("layers") is not None:
            kw["layers"] = tuple(kw["layers"])
        return cls(**kw)


def upgrade_config(data: dict[str, Any]) -> dict[str, Any]:
    """An older config dump in today's fields: ``length_norm`` (a bool until 0.3) becomes
    ``scoring``; fields added since keep their defaults.

    Example:
        >>> upgrade_config({"readout": "cloze", "length_norm": True})["scoring"]
        'mean'
    """
    kw = dict(data)
    if "length_norm" in kw:
        legacy = kw.pop("length_norm")
        if "scoring" not in kw:
            kw["scoring"] = "mean" if legacy else "sum"
    return kw


def portable_config(config: dict[str, Any]) -> dict[str, Any]:
    """A config dump fit for files people share (``run.json``, ``run_log.json``): no absolute
    path of this machine. An absolute ``data_dir`` becomes ``None`` (the sweeps' chunks record
    digests of the items' ids and tokens, and ``run.json`` lists the item ids, so the items stay
    identified), and a dataset given as an absolute file path becomes its file name. Relative
    paths, which say nothing about this machine, are kept as given. A resume compares configs in
    this form, so a run moved to another checkout or machine still resumes.

    Example:
        >>> portable_config({"data_dir": "/home/me/mwe", "dataset": "/home/me/x/toy.jsonl"})
        {'data_dir': None, 'dataset': 'toy.jsonl'}
        >>> portable_config({"data_dir": "../shared/data/mwe", "dataset": "myopic-reward"})
        {'data_dir': '../shared/data/mwe', 'dataset': 'myopic-reward'}
    """
    out = dict(config)
    if isinstance(out.get("data_dir"), str) and os.path.isabs(out["data_dir"]):
        out["data_dir"] = None
    if isinstance(out.get("dataset"), str) and os.path.isabs(out["dataset"]):
        out["dataset"] = os.path.basename(out["dataset"])
    return out


def _check_int(name: str, value: Any, low: int | None, optional: bool) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or (low is not None and value < low):
        rule = "an int" + ("" if low is None else f" >= {low}") + (" or None" if optional else "")
        raise ConfigError(f"EvalConfig.{name} must be {rule}, got {value!r}")


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
                what = name.rstrip("s")
                raise ConfigError(f"EvalConfig.{name}: unknown {what} {bad[0]!r}; choose from "
                                  f"{allowed}")
