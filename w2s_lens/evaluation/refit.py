"""Refit a finished evaluation's routers without a sweep: from ``items.csv`` and the views.

A finished evaluation keeps, per item and sweep, the steerability at every layer
(``items.csv``, :mod:`w2s_lens.evaluation.results.item_table`). A router needs those and its
inputs, and its inputs are unsteered forward passes only (the question's residual, the
options' residuals, MiniLM: :mod:`w2s_lens.routing.views`). So a router can be tuned again
(a newer grid, another kind) for the cost of those passes, without the sweeps:

1. the run's examples are formatted again and checked against ``run.json`` (the same
   training and test items, in the same order) and ``items.csv`` (the same rows);
2. the fixed layer, the training labels and every test variant's fixed and oracle summaries
   are recomputed from ``items.csv`` and must equal the stored ones (else the file is refused:
   it does not reproduce the run);
3. each named router is fitted with the run's settings (kind, view, seed) on the training
   rows and scored on every test variant exactly as the evaluation scores it
   (:func:`~w2s_lens.evaluation.stats.metrics.evaluate_variant`, same bootstrap seed); its
   tuning record, its learning-curve rows and the readings are redone.

What it cannot redo: a mirrored letter run's ``single_order`` diagnostic needs each letter
order's own steerability, which ``items.csv`` does not keep; the refitted routers are left
out of it (the record says so). The retest and the cross-validated oracle involve no router
and are kept. Every refit is recorded in ``results.json``'s ``refits``.

A refit of a router whose tuning is current reproduces the stored numbers
(:meth:`Refit.differences`); :func:`refit_routers` checks that on the primary router before it
writes anything.

Example:
    >>> exs = prepare_examples(model, items, config)  # doctest: +SKIP
    >>> result = refit_routers(model, exs, "analysis/results/fair/letter-0.5b/"
    ...                        "corrigible-neutral-HHH")  # doctest: +SKIP
    >>> result.refits[-1]["routers"]  # doctest: +SKIP
    ['caa/mlp', 'caa/mlp@options', 'caa/mlp@question+options', 'caa/mlp@minilm']
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from jaxtyping import Float
from transformer_lens import HookedTransformer

from w2s_lens.artifacts.json_files import read_json
from w2s_lens.artifacts.provenance import ArtifactMismatch, library_versions
from w2s_lens.choices import Readout, RouterView
from w2s_lens.data.examples import SteeringExample
from w2s_lens.evaluation.config import EvalConfig
from w2s_lens.evaluation.forms import row_forms
from w2s_lens.evaluation.headroom.diagnostics import learning_curve
from w2s_lens.evaluation.headroom.run import unit_strata
from w2s_lens.evaluation.results.evidence import read_evidence, variant_evidence
from w2s_lens.evaluation.results.item_table import ITEMS_FILE, read_item_table, write_items
from w2s_lens.evaluation.results.typed import EvaluationResult
from w2s_lens.evaluation.split import SplitExamples
from w2s_lens.evaluation.stats.metrics import evaluate_variant, fixed_layer
from w2s_lens.evaluation.storage.rundir import RESULTS_FILE, RUN_FILE, RunDir
from w2s_lens.routing.embeddings import default_layer, embed_examples, embedding_name
from w2s_lens.routing.estimators import grid_is_current
from w2s_lens.routing.labels import best_layers
from w2s_lens.routing.routers import LayerRouter
from w2s_lens.routing.views import split_router_name, view_embedding_name, view_features
from w2s_lens.steering.vectors import model_name

__all__ = ["Refit", "refit", "refit_routers", "stale_router_names"]

log = logging.getLogger(__name__)

#: what a refit record says about where its numbers come from
SOURCE = ("steerabilities from items.csv; router inputs recomputed (unsteered passes); "
          "routers tuned and scored as the evaluation does")


def stale_router_names(results: Mapping[str, Any], method: str) -> list[str]:
    """The routers of ``method`` in a ``results.json`` dict whose recorded tuning grid is not
    today's (:func:`~w2s_lens.routing.estimators.grid_is_current`).

    Example:
        >>> stale_router_names({"methods": {"caa": {"router_cv": {"mlp": {
        ...     "grid": [100.0, 1.0, 0.01, 0.0001], "n_samples": 200}}}}}, "caa")
        ['mlp']
    """
    cv = results["methods"][method].get("router_cv") or {}
    return [name for name, t in cv.items()
            if not grid_is_current(split_router_name(name)[0], t.get("grid"), t.get("n_samples"))]


def _inputs(examples: Sequence[SteeringExample], x: np.ndarray, mirrored: bool
            ) -> tuple[list[str], np.ndarray]:
    """Per scored row: its item and its router input (a mirrored item: the mean over its
    presentations, as :meth:`~w2s_lens.sweep.result.SweepResult.unit_average`)."""
    if not mirrored:
        return [ex.unit for ex in examples], x
    rows: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        rows.setdefault(ex.unit, []).append(i)
    if all(len(v) == 1 for v in rows.values()):
        return list(rows), x
    return list(rows), np.stack([x[r].mean(axis=0) for r in rows.values()])


def _view_inputs(model: HookedTransformer, examples: Sequence[SteeringExample],
                 views: Sequence[str], embedding: str, layer: int, batch_size: int
                 ) -> dict[str, Float[np.ndarray, "n feature"]]:
    question = None
    if any(RouterView(v).needs_question for v in views):
        question = np.asarray(embed_examples(model, examples, embedding, layer, batch_size),
                              dtype=np.float32)
    cache: dict[str, np.ndarray] = {}
    return {v: view_features(v, question, model, examples, layer, batch_size, cache)
            for v in views}


#: a tuning record's scores (the rest of it is what was chosen)
_SCORES = ("grid_scores", "cv_score", "score_se")


def _same(a: Any, b: Any, rel: float = 1e-9) -> bool:
    """Equal JSON values, floats to ``rel`` (None, NaN and containers compared in depth)."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same(a[k], b[k], rel) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y, rel) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)
    return a == b


@dataclass
class Refit:
    """The outcome of :func:`refit`, nothing written yet.

    Attributes:
        folder: the finished run's folder (``results.json``, ``run.json``, ``items.csv``).
        stored: its ``results.json`` as it was.
        results: the same with the refitted routers' blocks, tuning, learning-curve rows and
            the readings redone, and a record appended to ``refits``.
        routers: ``method/router`` names refitted.
        routes: ``(method, sweep) -> {router: [layer per row]}`` for ``items.csv``.
        item_rows: ``items.csv``'s rows, as read.
    """

    folder: Path
    stored: dict[str, Any]
    results: dict[str, Any]
    routers: list[str]
    routes: dict[tuple[str, str], dict[str, list[int]]]
    item_rows: list[dict[str, str]]

    def differences(self, rel: float = 1e-6, score_rel: float = 1e-2) -> list[str]:
        """Where a refitted router's blocks differ from the stored ones (``method/router:
        variant``, ``... tuning`` or ``... learning curve``); empty when the refit reproduces
        the run. Meaningful for routers whose tuning grid is current.

        The recomputed inputs come from their own forward passes, not from the sweep that
        captured the question's residual, so they differ from the run's in the last float
        bits, and the cross-validated scores of weakly regularised grid values follow them
        (log-loss 6e-6 apart on the synthetic control, up to 1.6e-3 on a real 96-item row):
        the test blocks and learning-curve rows are compared to ``rel``, the tuning record on
        its choices exactly and on its scores to ``score_rel`` (keys the stored record lacks,
        added to tuning records since the run, are not compared).

        Example:
            >>> Refit(Path("."), {}, {}, [], {}, []).differences()
            []
        """
        out = []
        for full in self.routers:
            method, name = full.split("/", 1)
            old, new = self.stored["methods"][method], self.results["methods"][method]
            for v, block in new["variants"].items():
                if not _same(block["w2s"][name], old["variants"][v]["w2s"].get(name), rel):
                    out.append(f"{full}: {v}")
            t_old, t_new = old["router_cv"].get(name) or {}, new["router_cv"][name]
            both = [k for k in t_new if k in t_old]  # a key added since the run: not compared
            scores = [k for k in both if k in _SCORES]
            choices = [k for k in both if k not in _SCORES]
            if not (both and _same({k: t_new[k] for k in choices}, {k: t_old[k] for k in choices})
                    and _same({k: t_new[k] for k in scores}, {k: t_old[k] for k in scores},
                              score_rel)):
                out.append(f"{full}: tuning")
            rows = [[r for r in m["headroom"]["learning_curve"]["rows"] if r["router"] == name]
                    for m in (old, new)]
            if not _same(rows[0], rows[1], rel):
                out.append(f"{full}: learning curve")
        return out

    def save(self) -> EvaluationResult:
        """Write ``results.json`` and the routed layers into ``items.csv``; returns the result.

        Example:
            >>> refit(model, exs, "runs/corrigible", ["mlp"]).save()  # doctest: +SKIP
        """
        rows = [dict(r) for r in self.item_rows]
        for (method, sweep), routed in self.routes.items():
            idx = [i for i, r in enumerate(rows) if r["method"] == method and r["sweep"] == sweep]
            for name, layers in routed.items():
                for i, layer in zip(idx, layers):
                    rows[i][f"route_{name}"] = str(layer)
        write_items(self.folder / ITEMS_FILE, rows)
        RunDir(self.folder).write_results(self.results)
        return EvaluationResult.load(self.folder)


def _check(ok: bool, where: Path, what: str) -> None:
    if not ok:
        raise ArtifactMismatch(f"{where}: {what}; the per-item data do not reproduce this run, "
                               "so its routers cannot be refitted from them")


def refit(model: HookedTransformer, examples: SplitExamples, folder: str | os.PathLike,
          routers: Sequence[str] | None = None, *, methods: Sequence[str] | None = None,
          features: dict[str, dict[str, np.ndarray]] | None = None) -> Refit:
    """Refit ``routers`` of a finished run from its ``items.csv`` (see the module docstring).

    Args:
        model: the run's model (its name must match ``results.json``'s).
        examples: the run's examples, formatted again with its settings
            (:func:`~w2s_lens.evaluation.split.prepare_examples` with ``run.json``'s config).
        folder: the finished run's folder, or a study folder holding its ``results.json``,
            ``run.json`` and ``items.csv``.
        routers: router names (``mlp``, ``logreg@options``, ...); None: those whose tuning grid
            is not today's (:func:`stale_router_names`).
        methods: the methods to refit (default: all of the run's).
        features: a dict this call fills with the router inputs it computes (per sweep, per
            view, per presentation) and reads them back from: pass the same dict to a second
            call on the same run to skip the forward passes.

    Returns:
        a :class:`Refit` (call ``.save()`` to write it).

    Raises:
        ArtifactMismatch: the examples, ``items.csv`` or the model do not belong to the run.
        ValueError: a named router is not one of the run's.
    """
    folder = Path(folder)
    stored = RunDir(folder).read_results()
    run = read_json(folder / RUN_FILE)
    config = EvalConfig.from_dict(run["config"])
    layers = [int(x) for x in stored["layers"]]
    if stored.get("model") and model_name(model) != stored["model"]:
        raise ArtifactMismatch(f"{folder / RESULTS_FILE} was made with {stored['model']}, "
                               f"not {model_name(model)}")
    item_rows, table = read_item_table(folder / ITEMS_FILE, layers)
    derived = run.get("derived") or {}
    train_units = list(dict.fromkeys(ex.unit for ex in examples.sweep_train))
    test_units = list(dict.fromkeys(ex.unit for ex in examples.test.get("base", [])))
    for name, units in (("train_items", train_units), ("test_items", test_units)):
        if isinstance(derived.get(name), list):
            _check(derived[name] == units, folder / RUN_FILE,
                   f"the examples' {name.replace('_', ' ')} are not the run's")
    mirrored = bool(stored.get("mirror")) and config.mirrored
    emb_layer = (default_layer(model) if config.routing.embedding_layer is None
                 else int(config.routing.embedding_layer))
    emb_name = embedding_name(config.routing.embedding, emb_layer)
    cloze = Readout(stored["readout"]).scores_options
    primary = stored["primary_router"]
    views = list(stored.get("router_inputs") or ["question"])
    n_boot, seed = config.statistics.n_boot, int(stored.get("split_seed", config.data.seed))
    results = copy.deepcopy(stored)
    done: list[str] = []
    dropped = False  # refitted routers left out of a mirrored run's single-order blocks
    routes: dict[tuple[str, str], dict[str, list[int]]] = {}
    feats = {} if features is None else features

    def inputs(split: str, exs: list[SteeringExample], wanted: Sequence[str]
               ) -> tuple[list[str], dict[str, np.ndarray]]:
        have = feats.setdefault(split, {})
        todo = [v for v in wanted if v not in have]
        if todo:
            t0 = time.process_time()
            have.update(_view_inputs(model, exs, todo, config.routing.embedding, emb_layer,
                                     config.compute.batch_size))
            log.info("refit: router inputs %s for %s (%d presentations): %.1f s CPU",
                     ", ".join(todo), split, len(exs), time.process_time() - t0)
        units = _inputs(exs, next(iter(have.values())), mirrored)[0]
        return units, {v: _inputs(exs, have[v], mirrored)[1] for v in wanted}

    for method in methods or list(stored["methods"]):
        names = list(routers) if routers is not None else stale_router_names(stored, method)
        known = set(stored["methods"][method]["variants"]["base"]["w2s"])
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"{folder / RESULTS_FILE}: no routers {unknown} in method "
                             f"{method!r} (it has {sorted(known)})")
        if not names:
            continue
        wanted = list(dict.fromkeys(split_router_name(n)[1] for n in names))
        m_old, m_new = stored["methods"][method], results["methods"][method]
        tr = table.get((method, "train"))
        _check(tr is not None, folder / ITEMS_FILE, f"no training rows for {method}")
        units, x_train = inputs("train", examples.sweep_train, wanted)
        _check(units == tr.ids, folder / ITEMS_FILE,
               f"the training rows of {method} are not the examples' items in order")
        s_train = tr.steerability
        fixed_idx = fixed_layer(s_train)
        _check(layers[fixed_idx] == m_old["fixed_layer"], folder / ITEMS_FILE,
               f"{method}: fixed layer {layers[fixed_idx]}, the run's is {m_old['fixed_layer']}")
        train_best = best_layers(s_train)
        fitted: dict[str, LayerRouter] = {}
        for name in names:
            kind, view = split_router_name(name)
            fitted[name] = LayerRouter(
                kind, seed=seed, model=stored.get("model"), dataset=stored.get("dataset"),
                layers=layers, hook="resid_pre", embedding=view_embedding_name(view, emb_name),
                readout=stored["readout"]).fit(x_train[view], s_train)
            m_new["router_cv"][name] = fitted[name].cv_info_
        base_s = base_x = None
        for variant, block in m_new["variants"].items():
            rows = table.get((method, variant))
            _check(rows is not None, folder / ITEMS_FILE, f"no rows of {method}/{variant}")
            exs = examples.test.get(variant)
            _check(exs is not None, folder, f"the examples have no test variant {variant!r}")
            t_units, x_test = inputs(variant, exs, wanted)
            _check(t_units == rows.ids, folder / ITEMS_FILE,
                   f"the {variant} rows of {method} are not the examples' items in order")
            single = len(t_units) == len(exs)  # one presentation per item: scored as is
            letters = ([ex.matching_letter for ex in exs]
                       if not cloze and (single or not mirrored) else None)
            forms = row_forms(exs, t_units, model.tokenizer) if cloze else None
            idx = {n: r.predict(x_test[split_router_name(n)[1]]) for n, r in fitted.items()}
            scores = {n: r.scores(x_test[split_router_name(n)[1]]) for n, r in fitted.items()}
            new = evaluate_variant(rows.steerability, letters, fixed_idx, idx, scores,
                                   layers=layers, n_boot=n_boot, seed=seed, form_groups=forms,
                                   train_best_idx=train_best)
            for part in ("fixed", "oracle", "letter_oracle", "form_oracle"):
                _check(_same(new[part], block[part]), folder / ITEMS_FILE,
                       f"{method}/{variant}: the {part} summary differs from results.json's")
            block["w2s"].update(new["w2s"])
            for letter, sub in (block.get("by_letter") or {}).items():
                sub["w2s"].update(new["by_letter"][letter]["w2s"])
            if block.get("single_order"):
                for n in names:
                    dropped = block["single_order"]["w2s"].pop(n, None) is not None or dropped
            routes[(method, variant)] = {n: [layers[i] for i in v] for n, v in idx.items()}
            if variant == "base":
                base_s, base_x = rows.steerability, x_test
        lc = m_new["headroom"].get("learning_curve") or {}
        if lc.get("rows") and base_s is not None and base_x is not None:
            strata = unit_strata(examples.sweep_train, units)
            for i, row in enumerate(lc["rows"]):
                if row["router"] in fitted:
                    kind, view = split_router_name(row["router"])
                    new_rows = learning_curve(s_train, x_train[view], base_s, base_x[view],
                                              [kind], strata=strata, sizes=[row["n_train"]],
                                              repeats=lc["repeats"], seed=seed, n_boot=n_boot)
                    lc["rows"][i] = {**new_rows[0], "router": row["router"]}
        _redo_readings(m_new, primary, views)
        done += [f"{method}/{n}" for n in names]
    if done:
        results.setdefault("refits", []).append({
            "routers": done, "source": SOURCE,
            "single_order": ("the refitted routers are left out of the mirrored run's "
                             "single-order diagnostic (items.csv keeps no per-order data)"
                             if dropped else None),
            "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "versions": library_versions()})
    return Refit(folder, stored, results, done, routes, item_rows)


def _redo_readings(m: dict[str, Any], primary: str, views: Sequence[str]) -> None:
    """A method block's readings from its (refitted) router blocks."""
    base = m["variants"]["base"]
    fixed_mean = base["fixed"]["steerability"]
    w2s_mean = base["w2s"][primary]["steerability"]
    m["w2s_over_fixed"] = (w2s_mean / fixed_mean) if fixed_mean and fixed_mean > 0 else None
    if m.get("reading") is not None:
        m["reading"] = read_evidence(m["headroom"], base["w2s"], fixed_mean, primary, views,
                                     base.get("n"))
    for variant, block in m["variants"].items():
        if variant != "base" and block.get("reading") is not None:
            block.pop("reading")
            block["reading"] = variant_evidence({"variants": m["variants"]}, variant, primary,
                                                views)


def refit_routers(model: HookedTransformer, examples: SplitExamples,
                  folder: str | os.PathLike, routers: Sequence[str] | None = None
                  ) -> EvaluationResult:
    """Refit ``routers`` (default: the stale ones) of a finished run and write the result,
    after checking that refitting the run's primary router reproduces its stored numbers
    (when the primary router's tuning is current).

    Raises:
        ArtifactMismatch: the per-item data or the recomputed inputs do not reproduce the
            primary router's stored blocks (nothing is written).

    Example:
        >>> r = refit_routers(model, exs, "runs/corrigible")  # doctest: +SKIP
        >>> r.refits[-1]["routers"]  # doctest: +SKIP
        ['caa/mlp']
    """
    stored = RunDir(Path(folder)).read_results()
    primary = stored["primary_router"]
    checkable = [m for m in stored["methods"] if primary not in stale_router_names(stored, m)]
    features: dict[str, dict[str, np.ndarray]] = {}
    if checkable:
        diff = refit(model, examples, folder, [primary], methods=checkable,
                     features=features).differences()
        if diff:
            raise ArtifactMismatch(f"{folder}: refitting the primary router {primary!r} does "
                                   f"not reproduce the stored numbers ({'; '.join(diff)}); "
                                   "nothing written")
    out = refit(model, examples, folder, routers, features=features)
    return out.save() if out.routers else EvaluationResult.load(folder)
