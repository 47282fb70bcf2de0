"""The typed result of an evaluation: :class:`EvaluationResult` over ``results.json``.

``EvaluationResult.from_dict(results)`` reads the dict the pipeline writes,
``result.to_dict()`` gives it back exactly (the round trip is tested over every committed
``results.json``), ``result.save(path)`` / ``EvaluationResult.load(path)`` write and read the
file (stamped with the format version; it stays plain, indented JSON for ``jq``).
``summary()`` prints the comparison as text, ``to_pandas()`` and ``items_frame()`` give long
tables (:mod:`w2s_lens.evaluation.results.frames`).

Schema of ``results.json``, format version 2 (:data:`SCHEMA_VERSION`)::

    model, dataset, readout, mirror, length_norm, scoring?, positions?, list_options?,
    scale?, fraction?, methods_run, layers, routers, primary_router, embedding,
    router_inputs?, n_train, n_test, split_seed, cross_fit, format_version, versions,
    view_costs?: [ViewCost], refits?: [{routers, source, single_order, date, versions}],
    methods: {method: MethodResult}
    ViewCost       split, features, cpu_s, wall_s, n_presentations, note
    MethodResult   fixed_layer, train_fixed_steerability, train_best_layer_counts {layer: n},
                   router_cv {router: RouterTuning}, vector_norms [per layer], w2s_over_fixed,
                   variants {variant: VariantResult}, headroom: Headroom, reading?: Reading
    VariantResult  n, fixed_layer, fixed: Summary, w2s {router: RouterComparison},
                   oracle: Summary, letter_oracle, form_oracle: GroupOracle | null,
                   by_letter {letter: VariantResult}, n_presentations,
                   single_order: VariantResult | null, form_router?: FormRouter,
                   reading?: Reading (OOD variants; BASE's is the method's)
    Headroom       retest: Retest, xv: CrossValidatedOracle, learning_curve: LearningCurve
    Reading        headroom {holds, text}, robustness {kappa, text},
                   views {view: {reading, diff, mde, p}}, text

A router's name is ``"<kind>"`` (it reads the question) or ``"<kind>@<view>"`` (view
``options``, ``question+options`` or ``minilm``;
:func:`~w2s_lens.routing.views.split_router_name`). Keys marked ``?`` come from newer runs
and are ``None`` when absent; keys this version does not know are kept in each part's
``extra`` and written back. Layer-keyed counts have ``int`` keys here, strings in JSON.

Example:
    >>> r = EvaluationResult.load("runs/corrigible")  # doctest: +SKIP
    >>> r.methods["caa"].variants["base"].routers["logreg"].verdict  # doctest: +SKIP
    'no detectable difference'
    >>> print(r.summary())  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from w2s_lens.artifacts.json_files import read_json, write_json
from w2s_lens.artifacts.provenance import FORMAT_VERSION, ArtifactMismatch, check_format, stamp
from w2s_lens.evaluation.results.headroom import Headroom, Reading
from w2s_lens.evaluation.results.nodes import (
    INT_KEYS,
    TUPLE,
    FormRouter,
    GroupOracle,
    Node,
    RouterComparison,
    RouterTuning,
    Summary,
    ViewCost,
    key,
    nested,
)

__all__ = ["SCHEMA_VERSION", "EvaluationResult", "MethodResult", "VariantResult", "as_result",
           "results_dict"]

#: The ``results.json`` schema this module reads and writes (the artifacts' format version).
SCHEMA_VERSION = FORMAT_VERSION
RESULTS_FILE = "results.json"


def _f(x: Any, fmt: str = "+.3f") -> str:
    return "–" if x is None else format(float(x), fmt)


@dataclass(frozen=True, kw_only=True)
class VariantResult(Node):
    """One test variant (BASE or an OOD prompt) of one method: the fixed layer and its summary,
    each router's comparison with it (``routers``, the ``"w2s"`` block), the per-input oracle
    and the diagnostics the readout allows (letter / answer-form oracle, the answer-form
    router, each letter order on its own when mirrored: ``single_order``, ``by_letter``).

    Example:
        >>> v = VariantResult.from_dict({"n": 2, "fixed": {"steerability": 1.0},
        ...     "w2s": {"logreg": {"diff_vs_fixed": 0.1}}})
        >>> v.routers["logreg"].diff, v.fixed.steerability
        (0.1, 1.0)
    """

    n: int | None = None
    fixed_layer: int | None = None
    fixed: Summary | None = key(codec=nested("Summary"))
    routers: dict[str, RouterComparison] = key(
        "w2s", nested("RouterComparison", "map", "router"), factory=dict)
    oracle: Summary | None = key(codec=nested("Summary"))
    letter_oracle: GroupOracle | None = key(codec=nested("GroupOracle"))
    form_oracle: GroupOracle | None = key(codec=nested("GroupOracle"))
    by_letter: dict[str, VariantResult] | None = key(
        codec=nested("VariantResult", "map", "letter"))
    n_presentations: int | None = None
    single_order: VariantResult | None = key(codec=nested("VariantResult"))
    form_router: FormRouter | None = key(codec=nested("FormRouter"))
    reading: Reading | None = key(codec=nested("Reading"))

    def __repr__(self) -> str:
        fixed = self.fixed.steerability if self.fixed else None
        oracle = self.oracle.steerability if self.oracle else None
        routers = ", ".join(f"{k}: {_f(c.diff)} {c.verdict or ''}".rstrip()
                            for k, c in self.routers.items())
        return (f"VariantResult(n={self.n}, fixed_layer={self.fixed_layer}, fixed={_f(fixed)}, "
                f"oracle={_f(oracle)}, W2S − fixed: {routers or '–'})")


@dataclass(frozen=True, kw_only=True)
class MethodResult(Node):
    """One steering method (``caa``, ``l2s``): the fixed layer chosen on training items and its
    training steerability, the training best-layer counts, each router's tuning
    (``router_cv``), the vectors' norms per layer, the variants, the headroom diagnostics and
    the stored reading (newer runs).

    Example:
        >>> m = MethodResult.from_dict({"fixed_layer": 15, "train_best_layer_counts": {"15": 7}})
        >>> m.fixed_layer, m.train_best_layer_counts
        (15, {15: 7})
    """

    fixed_layer: int | None = None
    train_fixed_steerability: float | None = None
    train_best_layer_counts: dict[int, int] | None = key(codec=INT_KEYS)
    router_cv: dict[str, RouterTuning] | None = key(codec=nested("RouterTuning", "map", "router"))
    vector_norms: tuple[float, ...] | None = key(codec=TUPLE)
    w2s_over_fixed: float | None = None
    variants: dict[str, VariantResult] = key(
        codec=nested("VariantResult", "map", "variant"), factory=dict)
    headroom: Headroom | None = key(codec=nested("Headroom"))
    reading: Reading | None = key(codec=nested("Reading"))

    def evidence(self, primary: str = "logreg", views: Sequence[str] = ("question",),
                 variant: str = "base") -> Reading:
        """The method's reading (:mod:`w2s_lens.evaluation.results.evidence`): the stored one
        when it was made under today's rules, else the one read now from the stored
        diagnostics (results written before readings were stored, or under older rules), for
        the ``primary`` router kind on each router view. ``variant``: an OOD test variant's
        reading instead (its headroom is not measured: the retest sweeps BASE only).

        Example:
            >>> from w2s_lens.evaluation.results.evidence import RULES_VERSION
            >>> MethodResult.from_dict({"reading": {"text": "headroom; ...",
            ...     "rules": {"version": RULES_VERSION}}}).evidence().text
            'headroom; ...'
            >>> MethodResult.from_dict({"headroom": {}}).evidence("logreg").text
            'headroom not measured; robustness not measured; question not run'
        """
        from w2s_lens.evaluation.results.evidence import variant_evidence

        return Reading.from_dict(variant_evidence(self.to_dict(), variant, primary,
                                                  tuple(views)))

    def __repr__(self) -> str:
        return (f"MethodResult(fixed_layer={self.fixed_layer}, variants="
                f"{list(self.variants)}, routers={list(self.router_cv or {})}, "
                f"headroom={'yes' if self.headroom else 'no'}, "
                f"reading={'yes' if self.reading else 'no'})")


@dataclass(frozen=True, kw_only=True)
class EvaluationResult(Node):
    """The result of one evaluation (the content of ``results.json``; schema in the module
    docstring): the run's settings and sizes, and per method a :class:`MethodResult`.

    ``path`` is the file it was loaded from or saved to (not part of the JSON; ``items_frame``
    reads ``items.csv`` beside it).

    Example:
        >>> r = EvaluationResult.from_dict({"model": "m", "dataset": "d", "primary_router":
        ...     "logreg", "methods": {"caa": {"fixed_layer": 3, "variants": {}}}})
        >>> r.methods["caa"].fixed_layer, r.to_dict()["methods"]["caa"]["fixed_layer"]
        (3, 3)
    """

    model: str | None = None
    dataset: str | None = None
    readout: str | None = None
    mirror: bool | None = None
    length_norm: bool | None = None
    #: the cloze readout's option scoring (``sum``, ``mean``, ``first``); None for letters
    scoring: str | None = None
    #: where the vector is added (``from_last``, ``all``, ``prompt``)
    positions: str | None = None
    #: whether the cloze prompt lists both options above the answer
    list_options: bool | None = None
    #: the multiplier scale (``raw`` or ``relative``; :mod:`w2s_lens.steering.scales`)
    scale: str | None = None
    #: under ``scale="relative"``: the share of the residual norm that λ = 1 adds, else None
    fraction: float | None = None
    methods_run: tuple[str, ...] | None = key(codec=TUPLE)
    layers: tuple[int, ...] | None = key(codec=TUPLE)
    routers: tuple[str, ...] | None = key(codec=TUPLE)
    primary_router: str | None = None
    embedding: str | None = None
    router_inputs: tuple[str, ...] | None = key(codec=TUPLE)
    n_train: int | None = None
    n_test: int | None = None
    split_seed: int | None = None
    cross_fit: int | None = None
    methods: dict[str, MethodResult] = key(
        codec=nested("MethodResult", "map", "method"), factory=dict)
    #: what the router views' features cost per sweep (unsteered passes; newer runs only)
    view_costs: tuple[ViewCost, ...] | None = key(codec=nested("ViewCost", "list"))
    format_version: int | None = None
    versions: dict[str, str] | None = None
    #: routers tuned again after the run, without a sweep (:mod:`w2s_lens.evaluation.refit`):
    #: per refit its ``routers`` (``method/router``), ``source``, ``date`` and ``versions``
    refits: tuple[dict[str, Any], ...] | None = key(codec=TUPLE)
    path: Path | None = key(stored=False)

    @classmethod
    def from_dict(cls, d: Any, path: str | os.PathLike | None = None) -> EvaluationResult:
        """Read the ``results.json`` dict (``path``: where it came from, for messages and
        :meth:`items_frame`).

        Example:
            >>> EvaluationResult.from_dict({"methods": {}}).methods
            {}
            >>> EvaluationResult.from_dict({"model": "m"})
            Traceback (most recent call last):
            ...
            ValueError: not an evaluation's results: no 'methods' key (keys: model)
        """
        where = f"{path}: " if path is not None else ""
        if not isinstance(d, Mapping):
            raise TypeError(f"{where}an evaluation's results are a dict, not {type(d).__name__}")
        if not isinstance(d.get("methods"), Mapping):
            raise ValueError(f"{where}not an evaluation's results: no 'methods' key (keys: "
                             f"{', '.join(map(str, d)) or '-'})")
        out = super().from_dict(d)
        return out if path is None else dataclasses.replace(out, path=Path(path))

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``results.json`` (``path``: the file, or a folder to write it into), stamped
        with the format version; returns the file. Sets nothing on ``self``.

        Example:
            >>> f = r.save("runs/corrigible")  # doctest: +SKIP
            >>> EvaluationResult.load(f) == r  # doctest: +SKIP
            True
        """
        path = Path(path)
        if path.is_dir() or path.suffix != ".json":
            path = path / RESULTS_FILE
        return write_json(path, stamp(self.to_dict()))

    @classmethod
    def load(cls, path: str | os.PathLike) -> EvaluationResult:
        """Read ``results.json`` (``path``: the file or its run directory), refusing another
        format version with a message that says how to redo it.

        Example:
            >>> r = EvaluationResult.load("analysis/results/powered/cloze-0.5b/"
            ...                           "corrigible-neutral-HHH")  # doctest: +SKIP
        """
        path = Path(path)
        file = path / RESULTS_FILE if path.is_dir() else path
        if not file.is_file():
            raise FileNotFoundError(_missing(path, file))
        d = read_json(file)
        if not isinstance(d, dict):
            raise ArtifactMismatch(f"{file} holds a {type(d).__name__}, not an evaluation's "
                                   "results")
        check_format(d, file, "rerun `w2s-lens evaluate`, or read it with the w2s-lens version "
                     "that wrote it")
        try:
            return cls.from_dict(d, path=file)
        except ValueError as exc:
            raise ArtifactMismatch(str(exc)) from exc

    def comparison(self, method: str | None = None, variant: str = "base",
                   router: str | None = None) -> RouterComparison:
        """One router's comparison with the fixed layer (defaults: the first method, BASE, the
        primary router).

        Example:
            >>> r.comparison().verdict  # doctest: +SKIP
            'no detectable difference'
        """
        m = self.methods[method or next(iter(self.methods))]
        return m.variants[variant].routers[router or self.primary_router]

    def summary(self) -> str:
        """The comparison as a plain-text table (per method, variant and router: fixed, W2S,
        W2S − fixed with its interval, p, MDE, verdict) and each method's headroom reading.

        Example:
            >>> print(r.summary())  # doctest: +SKIP
        """
        from w2s_lens.evaluation.results.frames import summary_text

        return summary_text(self)

    def to_pandas(self) -> Any:
        """A long ``pandas.DataFrame``: one row per method × variant × router
        (:func:`~w2s_lens.evaluation.results.frames.comparison_rows` has the columns).

        Example:
            >>> r.to_pandas().query("verdict != 'no detectable difference'")  # doctest: +SKIP
        """
        from w2s_lens.evaluation.results.frames import comparison_frame

        return comparison_frame(self)

    def view_cost_frame(self) -> Any:
        """What the router views' features cost (``pandas.DataFrame``): one row per sweep ×
        feature, with ``cpu_s``, ``wall_s``, ``n_presentations`` and CPU seconds per
        presentation (empty for runs made before the costs were kept).

        Example:
            >>> r = EvaluationResult.from_dict({"methods": {}, "view_costs": [
            ...     {"split": "train", "features": "options", "cpu_s": 3.0, "wall_s": 3.1,
            ...      "n_presentations": 2}]})
            >>> r.view_cost_frame()[["features", "per_presentation_cpu_s"]].to_dict("records")
            [{'features': 'options', 'per_presentation_cpu_s': 1.5}]
        """
        import pandas as pd

        cols = ["split", "features", "cpu_s", "wall_s", "n_presentations", "note"]
        rows = [{**{c: getattr(v, c) for c in cols},
                 "per_presentation_cpu_s": v.per_presentation_cpu_s}
                for v in self.view_costs or ()]
        return pd.DataFrame(rows, columns=[*cols, "per_presentation_cpu_s"])

    def items_frame(self, run_dir: str | os.PathLike | None = None) -> Any:
        """Per-item rows (``pandas.DataFrame``) from ``items.csv`` beside ``results.json``
        (``run_dir``: another run directory): one row per (item, sweep) with each layer's
        steerability ``s_L<layer>``, the best layer and each router's layer ``route_<router>``.

        Example:
            >>> r.items_frame().groupby("sweep").best_layer.value_counts()  # doctest: +SKIP
        """
        from w2s_lens.evaluation.results.frames import read_items

        return read_items(self, run_dir)

    def __repr__(self) -> str:
        from w2s_lens.evaluation.results.frames import short_repr

        return short_repr(self)


def as_result(results: EvaluationResult | str | os.PathLike | Mapping[str, Any]
              ) -> EvaluationResult:
    """The typed result of ``results``: itself, :meth:`EvaluationResult.load` of a run
    directory or ``results.json`` path, or :meth:`EvaluationResult.from_dict` of a
    ``results.json`` dict (what :meth:`~w2s_lens.evaluation.storage.rundir.RunDir.read_results`
    returns, and older callers and the committed notebooks pass). The readers of results (the
    tables, the report) call it once at their entry and read attributes from there on.

    Example:
        >>> as_result({"primary_router": "logreg", "methods": {}}).primary_router
        'logreg'
        >>> r = EvaluationResult.from_dict({"methods": {}})
        >>> as_result(r) is r
        True
        >>> as_result(3)
        Traceback (most recent call last):
        ...
        TypeError: expected an EvaluationResult, ...; got int
    """
    if isinstance(results, EvaluationResult):
        return results
    if isinstance(results, (str, os.PathLike)):
        return EvaluationResult.load(results)
    if isinstance(results, Mapping):
        return EvaluationResult.from_dict(results)
    raise TypeError("expected an EvaluationResult, a run directory or results.json path, or a "
                    f"results.json dict; got {type(results).__name__}")


def results_dict(results: EvaluationResult | Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``results.json`` content of a typed result, or the mapping itself (for readers of
    both: the tables take what :func:`~w2s_lens.evaluation.pipeline.evaluate` returns and what
    :meth:`~w2s_lens.evaluation.storage.rundir.RunDir.read_results` reads).

    Example:
        >>> results_dict(EvaluationResult.from_dict({"methods": {}}))
        {'methods': {}}
        >>> results_dict({"methods": {}})
        {'methods': {}}
    """
    return results.to_dict() if isinstance(results, EvaluationResult) else results


def _missing(path: Path, file: Path) -> str:
    """A message for a missing ``results.json`` that suggests where one is."""
    msg = f"{file} does not exist"
    if path.is_dir():
        found = sorted(str(p.parent) for p in path.glob(f"*/{RESULTS_FILE}"))
        found += sorted(str(p.parent) for p in path.glob(f"*/*/{RESULTS_FILE}"))
        if found:
            shown = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
            return f"{msg}; run directories below it: {shown}"
    return f"{msg}; pass a run directory of `w2s-lens evaluate` or its {RESULTS_FILE}"
