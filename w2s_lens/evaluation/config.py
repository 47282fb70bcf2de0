"""The settings of one evaluation run: a complete, typed, validated :class:`EvalConfig`.

The settings are grouped by topic into parts, each a frozen dataclass:

* ``data`` (:class:`DataConfig`): the items, their train / test split and their prompts;
* ``sweep`` (:class:`SweepConfig`): the steering vectors, where and how strongly they are
  added, and how a sweep is read (the readout);
* ``routing`` (:class:`RoutingConfig`): what the routers see and which kinds are fitted;
* ``statistics`` (:class:`StatisticsConfig`): cross-fitting, the headroom retest, bootstrap
  intervals and the report's generations;
* ``l2s`` (:class:`~w2s_lens.steering.l2s_config.L2SConfig`): L2S's hyper-parameters;
* ``compute`` (:class:`ComputeConfig`): the model, where it runs, and how the work is batched.

Every setting is checked when the config is made (a bad value raises :class:`ConfigError`
naming the setting as ``EvalConfig.<part>.<name>`` and the accepted values), the whole config
is passed to the stages that need it, and ``run.json`` is its faithful dump in the same nested
form (:meth:`EvalConfig.to_dict`), from which :meth:`EvalConfig.from_dict` rebuilds it; a dump
in the flat form of w2s-lens 0.2 (one key per setting, every older ``run.json``) is read too.

Example:
    >>> cfg = EvalConfig(dataset="corrigible-neutral-HHH", n_train=24, readout="cloze")
    >>> cfg.sweep.readout, cfg.sweep.method, cfg.statistics.cross_fit
    ('cloze', 'caa', 5)
    >>> EvalConfig(engine="fastest")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    w2s_lens.evaluation.config.ConfigError: EvalConfig.sweep.engine must be one of (...), got ...
    >>> EvalConfig.from_dict(cfg.to_dict()) == cfg
    True
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import typing
from collections.abc import Mapping
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
    Method,
    MethodName,
    PositionsName,
    Readout,
    ReadoutName,
    RouterKindName,
    RouterView,
    RouterViewName,
    ScaleName,
    ScoringName,
    VariantName,
)
from w2s_lens.routing.views import router_name
from w2s_lens.steering.l2s.config import L2SConfig

__all__ = ["ComputeConfig", "ConfigError", "DataConfig", "EvalConfig", "PARTS",
           "RoutingConfig", "SETTING_PARTS", "StatisticsConfig", "SweepConfig", "flat_config",
           "portable_config", "upgrade_config"]


class ConfigError(ValueError):
    """An evaluation setting is invalid."""


# --------------------------------------------------------------------------- the parts


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


# --------------------------------------------------------------------------- the whole


@dataclass(frozen=True, init=False)
class EvalConfig:
    """Settings of one evaluation run, in parts (``run.json`` is their dump).

    Attributes:
        data: the items, their split and their prompts (:class:`DataConfig`).
        sweep: the vectors, the layer × multiplier sweep and its readout (:class:`SweepConfig`).
        routing: what the routers see and which kinds are fitted (:class:`RoutingConfig`).
        statistics: cross-fitting, retest, bootstrap, generations (:class:`StatisticsConfig`).
        l2s: L2S hyper-parameters (:class:`w2s_lens.steering.l2s_config.L2SConfig`).
        compute: the model, device, precision and batch sizes (:class:`ComputeConfig`).

    Each part is given as its dataclass or a dict of its settings, and defaults when left out.
    As a shorthand, any setting of the parts but ``l2s`` may be given by its own name instead
    (``readout="cloze"`` for ``sweep=SweepConfig(readout="cloze")``); a name that is no
    setting is refused, and a setting given beside its whole part changes that setting of the
    part. Settings are read through their part (``config.sweep.readout``); :meth:`replace`
    (or ``dataclasses.replace``) changes some.

    Example:
        >>> cfg = EvalConfig(dataset="corrigible-neutral-HHH", n_train=24, readout="cloze")
        >>> cfg == EvalConfig(data=DataConfig(dataset="corrigible-neutral-HHH", n_train=24),
        ...                   sweep=SweepConfig(readout="cloze"))
        True
        >>> cfg.data.n_train, cfg.sweep.readout, cfg.replace(n_train=48).data.n_train
        (24, 'cloze', 48)
        >>> try:
        ...     EvalConfig(n_trian=24)
        ... except ConfigError as exc:
        ...     print(exc)
        unknown EvalConfig field(s) ['n_trian'] (did you mean 'n_train'?)
    """

    data: DataConfig
    sweep: SweepConfig
    routing: RoutingConfig
    statistics: StatisticsConfig
    l2s: L2SConfig
    compute: ComputeConfig

    def __init__(self, *, data: DataConfig | Mapping[str, Any] | None = None,
                 sweep: SweepConfig | Mapping[str, Any] | None = None,
                 routing: RoutingConfig | Mapping[str, Any] | None = None,
                 statistics: StatisticsConfig | Mapping[str, Any] | None = None,
                 l2s: L2SConfig | Mapping[str, Any] | None = None,
                 compute: ComputeConfig | Mapping[str, Any] | None = None,
                 **settings: Any) -> None:
        given = {"data": data, "sweep": sweep, "routing": routing, "statistics": statistics,
                 "l2s": l2s, "compute": compute}
        flat = _by_part(settings)
        for name, cls in PARTS.items():
            # a setting given by name beside its whole part changes that setting of the part,
            # so ``dataclasses.replace(config, readout="cloze")`` works as config.replace does
            part, loose = given[name], flat.get(name, {})
            made = _make_part(name, cls, part, {} if part is not None else loose)
            if part is not None and loose:
                made = dataclasses.replace(made, **loose)
            object.__setattr__(self, name, made)

    def __getattr__(self, name: str) -> Any:
        # only called for a missing attribute: say where a flat setting name lives now
        if name in SETTING_PARTS:
            raise AttributeError(f"EvalConfig has no attribute {name!r}: settings are read "
                                 f"through their part, config.{SETTING_PARTS[name]}.{name}")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def replace(self, **changes: Any) -> EvalConfig:
        """A copy with some settings changed, given by their own name (as the flat keywords
        of :class:`EvalConfig`) or as whole parts; a setting given beside its whole part
        changes that setting of the part. ``dataclasses.replace`` does the same.

        Example:
            >>> EvalConfig().replace(n_test=5, readout="cloze").sweep.readout
            'cloze'
        """
        parts: dict[str, Any] = {name: changes.get(name, getattr(self, name)) for name in PARTS}
        return EvalConfig(**parts, **{k: v for k, v in changes.items() if k not in PARTS})

    __replace__ = replace  # copy.replace (Python 3.13)

    @property
    def methods(self) -> tuple[str, ...]:
        """The base methods this run evaluates: ``("caa",)``, ``("l2s",)`` or both."""
        return Method(self.sweep.method).runs

    @property
    def router_names(self) -> tuple[str, ...]:
        """Every fitted router's name, view by view: ``"logreg"`` (question view),
        ``"logreg@options"``, ...

        Example:
            >>> EvalConfig(routers=("logreg",), router_inputs=("question", "options")).router_names
            ('logreg', 'logreg@options')
        """
        r = self.routing
        return tuple(router_name(k, v) for v in r.router_inputs for k in r.routers)

    @property
    def primary_name(self) -> str:
        """The name of the router called "W2S": the primary kind on the question view (on
        the first view when the question view is not fitted).

        Example:
            >>> EvalConfig(router_inputs=("options",)).primary_name
            'logreg@options'
        """
        r = self.routing
        question = RouterView.QUESTION.value
        view = question if question in r.router_inputs else r.router_inputs[0]
        return router_name(r.primary_router, view)

    @property
    def length_norm(self) -> bool:
        """Whether cloze options are scored by their mean per-token log-probability."""
        return Readout(self.sweep.readout).scores_options and self.sweep.scoring == "mean"

    @property
    def mirrored(self) -> bool:
        """Whether sweeps present both letter orders (mirror on, letter readout)."""
        return self.sweep.mirror and Readout(self.sweep.readout).has_letter_orders

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dump in parts (what ``run.json`` records under ``"config"``):
        ``{"data": {...}, "sweep": {...}, ..., "compute": {...}}``, tuples as lists."""
        return {name: {k: list(v) if isinstance(v, tuple) else v
                       for k, v in dataclasses.asdict(getattr(self, name)).items()}
                for name in PARTS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvalConfig:
        """Rebuild a config from a dump: :meth:`to_dict` output, or the flat form of earlier
        versions (one key per setting, see :func:`upgrade_config`); a part left out takes its
        defaults, and unknown keys are refused by name, as is a dump that gives a setting both
        in its part and by its own name (neither form writes that)."""
        kw = upgrade_config(data)
        for name, loose in _by_part({k: v for k, v in kw.items() if k not in PARTS}).items():
            if name in kw:
                raise ConfigError(f"EvalConfig dump: {name}= and its setting(s) {sorted(loose)} "
                                  "given together; a dump is either nested or flat")
        return cls(**kw)


# --------------------------------------------------------------------------- dumps


def upgrade_config(data: Mapping[str, Any]) -> dict[str, Any]:
    """An older config dump in today's settings: ``length_norm`` (a bool until 0.3) becomes
    ``scoring``; settings added since keep their defaults. A flat dump (before the parts) stays
    flat: :class:`EvalConfig` takes its keys as flat keywords.

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


def flat_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A config dump, nested (today's ``run.json``) or flat (before the parts), as one flat
    dict: each setting under its own name, the L2S settings as one dict under ``l2s``, any
    other key (a sweep directory's ``split`` and ``variant``) kept. For readers that look up
    single settings of ``run.json`` files of either form.

    Example:
        >>> flat_config({"sweep": {"readout": "cloze"}, "l2s": {"hidden": 8}, "split": "train"})
        {'readout': 'cloze', 'l2s': {'hidden': 8}, 'split': 'train'}
        >>> flat_config({"readout": "letter", "n_boot": 200})
        {'readout': 'letter', 'n_boot': 200}
    """
    out: dict[str, Any] = {}
    for key, value in config.items():
        if key in PARTS and key != "l2s" and isinstance(value, Mapping):
            out.update(value)
        else:
            out[key] = value
    return out


def portable_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A config dump (nested or flat) fit for files people share (``run.json``,
    ``run_log.json``): no absolute path of this machine. An absolute ``data_dir`` becomes
    ``None`` (the sweeps' chunks record digests of the items' ids and tokens, and ``run.json``
    lists the item ids, so the items stay identified), and a dataset given as an absolute file
    path becomes its file name. Relative paths, which say nothing about this machine, are kept
    as given. A resume compares configs in this form, so a run moved to another checkout or
    machine still resumes.

    Example:
        >>> portable_config({"data": {"data_dir": "/home/me/mwe", "dataset": "/home/me/toy.jsonl"}})
        {'data': {'data_dir': None, 'dataset': 'toy.jsonl'}}
        >>> portable_config({"data_dir": "../shared/data/mwe", "dataset": "myopic-reward"})
        {'data_dir': '../shared/data/mwe', 'dataset': 'myopic-reward'}
    """
    out = _portable_data(config)
    if isinstance(out.get("data"), Mapping):
        out["data"] = _portable_data(out["data"])
    return out


def _portable_data(config: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(config)
    if isinstance(out.get("data_dir"), str) and os.path.isabs(out["data_dir"]):
        out["data_dir"] = None
    if isinstance(out.get("dataset"), str) and os.path.isabs(out["dataset"]):
        out["dataset"] = os.path.basename(out["dataset"])
    return out


# --------------------------------------------------------------------------- checks


def _by_part(settings: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Flat settings sorted into their parts; a name that is no setting is refused."""
    unknown = sorted(set(settings) - set(SETTING_PARTS))
    if unknown:
        close = difflib.get_close_matches(unknown[0], [*SETTING_PARTS, *PARTS], n=1)
        hint = (f" (did you mean {close[0]!r}?)" if close else
                " (an L2S setting? give l2s=L2SConfig(...))"
                if unknown[0] in {f.name for f in dataclasses.fields(L2SConfig)} else "")
        raise ConfigError(f"unknown EvalConfig field(s) {unknown}{hint}")
    out: dict[str, dict[str, Any]] = {}
    for name, value in settings.items():
        out.setdefault(SETTING_PARTS[name], {})[name] = value
    return out


def _make_part(name: str, cls: type, part: Any, loose: Mapping[str, Any]) -> Any:
    if part is None:
        return cls(**loose)
    if isinstance(part, cls):
        return part
    if not isinstance(part, Mapping):
        raise ConfigError(f"EvalConfig.{name} must be a {cls.__name__} or a dict of its "
                          f"settings, got {part!r}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(part) - known)
    if unknown:
        raise ConfigError(f"unknown EvalConfig.{name} field(s) {unknown}")
    return cls(**part)


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
