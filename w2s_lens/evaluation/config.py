"""The settings of one evaluation run: a complete, typed, validated :class:`EvalConfig`.

The settings are grouped by topic into parts, each a frozen dataclass
(:mod:`w2s_lens.evaluation.config_parts`):

* ``data`` (:class:`DataConfig`): the items, their train / test split and their prompts;
* ``sweep`` (:class:`SweepConfig`): the steering vectors, where and how strongly they are
  added, and how a sweep is read (the readout);
* ``routing`` (:class:`RoutingConfig`): what the routers see and which kinds are fitted;
* ``statistics`` (:class:`StatisticsConfig`): cross-fitting, the headroom retest, bootstrap
  intervals and the report's generations;
* ``l2s`` (:class:`~w2s_lens.steering.l2s_config.L2SConfig`): L2S's hyper-parameters;
* ``compute`` (:class:`ComputeConfig`): the model, where it runs, and how the work is batched.

Every setting is checked when the config is made (a bad value raises
:class:`~w2s_lens.evaluation.config_parts.ConfigError` naming the setting as
``EvalConfig.<part>.<name>`` and the accepted values), the whole config
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
    w2s_lens.evaluation.config_parts.ConfigError: EvalConfig.sweep.engine must be one of ...
    >>> EvalConfig.from_dict(cfg.to_dict()) == cfg
    True
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from w2s_lens.choices import Method, Readout, RouterView
from w2s_lens.evaluation.config_parts import (
    PARTS,
    SETTING_PARTS,
    ComputeConfig,
    ConfigError,
    DataConfig,
    RoutingConfig,
    StatisticsConfig,
    SweepConfig,
)
from w2s_lens.routing.views import router_name
from w2s_lens.steering.l2s.config import L2SConfig

__all__ = ["EvalConfig", "flat_config", "portable_config", "upgrade_config"]


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


# --------------------------------------------------------------------------- flat settings


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
