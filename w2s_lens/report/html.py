"""Self-contained HTML report of an evaluation run directory or a plain sweep directory.

The results are read as an :class:`~w2s_lens.evaluation.results.typed.EvaluationResult`
(:meth:`~w2s_lens.evaluation.results.typed.EvaluationResult.load` of ``results.json``, older
files included) and every section reads its attributes; everything else through
:class:`~w2s_lens.evaluation.storage.rundir.RunDir` (``run.json``, sweeps as
:class:`~w2s_lens.sweep.runner.SweepResult` with their
:class:`~w2s_lens.data.examples.SteeringExample` records, ``routing.json``, ``generations.json``,
which are not results and stay plain data) and the page is written with
:meth:`RunDir.write_report`. The page embeds plotly.js once, so it opens offline.

An **evaluation run** (``w2s-lens evaluate``; ``run.json`` kind ``"evaluation"``) gets:

* the readout in plain words (letter mirrored / letter single-order / cloze, length-normalised
  or not), the model, dataset, split sizes and seed;
* the results table (:mod:`.results_tables`): CAA and L2S side by side for every variant
  (fixed / W2S / oracle / letter oracle where it applies / answer-form oracle where the
  results have it / W2S − fixed), each interval followed by the number of test items and the
  split seed, the test of W2S > fixed with its minimal detectable difference (newer results),
  and a verdict per row; steerable fractions and routing accuracy (with the majority-layer
  baseline); the training split (fixed layer, best-layer counts, router CV); the single-order
  and answer-form diagnostics and the letter- and answer-form-artifact warnings computed on
  them; every router and the by-letter breakdown (folded);
* is there anything to learn (:mod:`.headroom_section`, where ``results.json`` has headroom
  blocks): the retest agreement matrix and numbers, the cross-validated oracle against the
  fixed layer, the learning curve, and which case they point to;
* where the behaviour is encoded: best-layer histograms per method (train and base test, per
  item) and per matching letter on single presentations;
* per method and variant: steerability heatmap, layer curves with the fixed layer and the
  router's picks, propensity lines, router confusion matrices; the training heatmap;
* the base test prompts (exact texts), the generations table when ``generations.json``
  exists, and ``run.json``.

A **sweep directory** (``w2s-lens sweep``; kind ``"sweep"``) gets its settings, the figures of
its sweep, the best-layer histograms per item and per matching letter, and its prompt texts.

Example::

    >>> from w2s_lens.report.html import write_report
    >>> path = write_report("runs/qwen-sycophancy")        # doctest: +SKIP
    >>> path.name                                          # doctest: +SKIP
    'report.html'
"""

from __future__ import annotations

import datetime as _dt
import html
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from plotly.offline import get_plotlyjs

from w2s_lens.artifacts.provenance import ArtifactMismatch
from w2s_lens.evaluation.config import flat_config
from w2s_lens.evaluation.results.typed import EvaluationResult, VariantResult
from w2s_lens.evaluation.storage.rundir import RESULTS_FILE, RUN_FILE, RunDir
from w2s_lens.report import plots_results
from w2s_lens.report.formatting import Doc, readout_text
from w2s_lens.report.headroom_section import headroom_section
from w2s_lens.report.plots_inputs import layer_curves, propensity_lines, steerability_heatmap
from w2s_lens.report.plots_layers import layer_histograms
from w2s_lens.report.results_tables import results_section
from w2s_lens.report.sections import (
    best_layer_numbers,
    generations_section,
    load_sweep,
    metadata_section,
    prompts_table,
    read_routing,
)

__all__ = ["html_page", "render_report", "write_report"]

log = logging.getLogger(__name__)

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto;
       max-width: 1300px; padding: 1em 2em; color: #222; }
h1 { font-size: 1.6em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .88em; }
th, td { border: 1px solid #ddd; padding: .3em .6em; text-align: right; vertical-align: top; }
th { background: #f3f3f3; } td.l, th.l { text-align: left; }
.scroll { overflow-x: auto; }
.note { color: #555; font-style: italic; }
.readout { background: #eef4ff; border-left: 4px solid #3a6ee8; padding: .6em 1em; }
.warn { background: #fff4e0; border-left: 4px solid #e69500; padding: .6em 1em; margin: .8em 0; }
.v-better { color: #0a7a2f; font-weight: bold; } .v-worse { color: #b00020; font-weight: bold; }
.v-none { color: #555; }
.prompt { white-space: pre-wrap; text-align: left; font-family: ui-monospace, monospace;
          font-size: .85em;
          max-height: 14em; overflow-y: auto; min-width: 20em; max-width: 60em; }
details { margin: .8em 0; } summary { cursor: pointer; font-weight: bold; }
.fig { margin: 1em 0; }
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _read_run(rd: RunDir) -> dict[str, Any]:
    if not (rd.path / RUN_FILE).is_file():
        raise FileNotFoundError(f"{rd.path} is neither an evaluation run nor a sweep directory "
                                f"(no {RUN_FILE})")
    return rd.read_run()


# --------------------------------------------------------------------------- figures


def _encoding_section(doc: Doc, rd: RunDir, results: EvaluationResult) -> None:
    """Where the behaviour is encoded: best-layer histograms per method (train and base test,
    per item), and per matching letter on single presentations (the diagnostic)."""
    doc.h(2, "Where the behaviour is encoded", "encoding")
    layers = [int(x) for x in results.layers or ()]
    item_best: dict[str, list[int]] = {}
    letter_best: dict[str, dict[str, list[int]]] = {}
    for method in results.methods:
        name = plots_results.method_label(method)
        for split, label in (("train", "train"), ("base", "base test")):
            got = load_sweep(doc, rd, rd.sweep_dir(split, method), f"{name} {label}")
            if got is None:
                continue
            sweep = got[0]
            layers = layers or list(sweep.layers)
            item_best[f"{name} {label}"] = best_layer_numbers(sweep.mirrored())
            single = best_layer_numbers(sweep)
            for letter in ("A", "B"):
                rows = [i for i, x in enumerate(sweep.matching_letters) if x == letter]
                if rows:
                    letter_best.setdefault(name, {})[f"{label} · {letter}"] = [single[i]
                                                                               for i in rows]
    if not item_best:
        return
    doc.p("Share of items whose best layer is each layer (mirrored runs average an item's two "
          "letter orders first; training items are swept with cross-fitted vectors). The "
          "diagnostic below splits single presentations by their matching letter: if the two "
          "letters of a split peak at different layers, the best layer follows the letter.")
    doc.figure("best-layer histograms", lambda: layer_histograms(
        item_best, layers, title="Best layer per item, per method (train and base test)"))
    for name, groups in letter_best.items():
        doc.figure(f"{name}: best layer by matching letter", lambda g=groups, n=name:
                   layer_histograms(g, layers, title=(
                       f"{n}: best layer of single presentations, by matching letter")))


def _variant_figures(doc: Doc, rd: RunDir, results: EvaluationResult, method: str,
                    variant: str) -> None:
    """Heatmap, layer curves with the fixed layer and router picks, propensity lines and the
    router confusion matrices of one method's test variant (per item)."""
    name = plots_results.method_label(method)
    label = f"{name} · {variant}"
    where = rd.sweep_dir(variant, method)
    got = load_sweep(doc, rd, where, label)
    if got is None:
        return
    sweep = got[0].mirrored()
    s, layers, ids = sweep.steerability, sweep.layers, sweep.ids
    vres = _variant(results, method, variant)
    routing = read_routing(doc, rd, where, label)
    primary = plots_results.primary_router(results, vres)
    router_layers = None
    if routing is None:
        doc.note(f"{label}: no routing.json; router picks and confusion matrices skipped.")
    else:
        router_layers = _aligned_router_layers(doc, routing, ids, primary, label)
    fixed = vres.fixed_layer
    if fixed is None and routing is not None:  # routing.json is plain data, not a result
        fixed = routing.get("fixed_layer")
    doc.figure(f"{label}: heatmap", lambda: steerability_heatmap(s, layers, ids),
               prefix=label)
    doc.figure(f"{label}: layer curves", lambda: layer_curves(
        s, layers, ids, fixed_layer=fixed, router_layers=router_layers),
        prefix=label if router_layers is None else f"{label} (router {primary})")
    doc.figure(f"{label}: propensity", lambda: propensity_lines(
        sweep.propensity, sweep.multipliers, layers, ids=ids), prefix=label)
    if routing is None:
        return
    true = routing.get("oracle_layer")
    for kind, pred in (routing.get("router_layer") or {}).items():
        if true is None:
            doc.note(f"{label}: routing.json has no oracle_layer; confusion matrix skipped.")
            break
        acc = float(np.mean(np.asarray(true) == np.asarray(pred)))
        doc.figure(f"{label}: confusion matrix ({kind})",
                   lambda pred=pred, kind=kind, acc=acc: plots_results.confusion_matrix(
                       true, pred, layers, title=f"{label}: router {kind} vs the oracle's best "
                                                 f"layer (exact accuracy {acc:.1%})"))


def _aligned_router_layers(doc: Doc, routing: Mapping[str, Any], ids: Sequence[str],
                          primary: str | None, label: str) -> list[int] | None:
    """The primary router's per-item layers in the order of ``ids`` (matched by id), or None
    with a note when ``routing.json`` does not cover them."""
    routers = routing.get("router_layer") or {}
    kind = primary if primary in routers else next(iter(routers), None)
    if kind is None:
        doc.note(f"{label}: routing.json has no router layers.")
        return None
    pos = dict(zip([str(i) for i in routing.get("ids") or []], routers[kind]))
    if all(i in pos for i in ids):
        return [int(pos[i]) for i in ids]
    doc.note(f"{label}: routing.json ids do not match the sweep's items; router picks not "
             "marked.")
    return None


def _train_figures(doc: Doc, rd: RunDir, method: str) -> None:
    """Heatmap of the training items' (cross-fitted) steerability."""
    name = plots_results.method_label(method)
    got = load_sweep(doc, rd, rd.sweep_dir("train", method), f"{name} train")
    if got is not None:
        sweep = got[0].mirrored()
        doc.figure(f"{name} train: heatmap", lambda: steerability_heatmap(
            sweep.steerability, sweep.layers, sweep.ids), prefix=f"{name} · training items")


# --------------------------------------------------------------------------- the two reports


def _variant(results: EvaluationResult, method: str, variant: str) -> VariantResult:
    """One method's variant (an empty one when the results lack it)."""
    m = results.methods.get(method)
    vres = m.variants.get(variant) if m is not None else None
    return vres if isinstance(vres, VariantResult) else VariantResult()


def _listed(values: Sequence[Any] | None) -> str:
    """A tuple of the result as the page lists it (``[1, 2]``; ``None`` when absent)."""
    return str(None if values is None else list(values))


def _evaluation(doc: Doc, rd: RunDir, run: dict[str, Any]) -> str:
    if not (rd.path / RESULTS_FILE).is_file():
        raise FileNotFoundError(f"{rd.path} holds an evaluation without {RESULTS_FILE} (still "
                                "running, or stopped early); rerun `w2s-lens evaluate` to finish")
    results = EvaluationResult.load(rd.path / RESULTS_FILE)
    methods = list(results.methods)
    doc.add(f'<p class="readout"><b>Readout:</b> {_e(readout_text(results))}.</p>')
    doc.p(f"Model {results.model}, dataset {results.dataset}; methods "
          f"{', '.join(plots_results.method_label(m) for m in methods) or 'none'}; "
          f"{results.n_train} training and {results.n_test} test items (split "
          f"seed {results.split_seed}); layers {_listed(results.layers)}; routers "
          f"{_listed(results.routers)} on the {results.embedding} embedding.")
    results_section(doc, results)
    if methods:
        doc.figure("method comparison", lambda: plots_results.method_bars(
            results, title="Mean steerability per method and variant (95% bootstrap CIs)"))
    headroom_section(doc, results)
    _encoding_section(doc, rd, results)
    for method in methods:
        name = plots_results.method_label(method)
        doc.h(2, f"{name}: per-item figures", f"figures-{method}")
        for variant in results.methods[method].variants:
            doc.h(3, f"{name} · {variant}")
            _variant_figures(doc, rd, results, method, variant)
        doc.h(3, f"{name} · training items")
        _train_figures(doc, rd, method)
    if methods:
        _test_prompts(doc, rd, results, methods[0])
    generations_section(doc, rd, methods)
    metadata_section(doc, run)
    return f"W2S report — {results.model or '?'} / {results.dataset or '?'}"


def _test_prompts(doc: Doc, rd: RunDir, results: EvaluationResult, method: str) -> None:
    where = rd.sweep_dir("base", method)
    got = load_sweep(doc, rd, where, "base test prompts")
    if got is None:
        return
    sweep, examples = got
    routing = read_routing(doc, rd, where, "base test prompts") or {}
    kind = plots_results.primary_router(results, _variant(results, method, "base"))
    picks = (routing.get("router_layer") or {}).get(kind) if kind else None
    routed = dict(zip(routing.get("ids") or [], picks)) if picks else None
    doc.h(2, "Test prompts (base)", "prompts")
    label = plots_results.method_label(method)
    doc.p(f"The exact texts given to the model (chat template included), as swept; best layer "
          f"of each presentation, and the layer {label}'s primary router gave its item.")
    prompts_table(doc, sweep, examples, routed)


def _sweep(doc: Doc, rd: RunDir, run: dict[str, Any]) -> str:
    config = run.get("config") or {}
    # one key per setting, whether run.json is nested (today) or flat (older runs)
    config = flat_config(config) if isinstance(config, Mapping) else {}
    derived = run.get("derived") or {}
    model = derived.get("model", config.get("model") or "?")
    doc.add(f'<p class="readout"><b>Readout:</b> {_e(readout_text(config))}.</p>')
    got = load_sweep(doc, rd, rd.path, "sweep")
    if got is not None:
        sweep, examples = got
        items = sweep.mirrored()
        best = items.steerability.max(axis=1)
        doc.h(2, "Sweep", "sweep")
        doc.table(["split", "variant", "presentations", "items", "layers", "multipliers",
                   "mean best-layer steerability (items)"],
                  [[config.get("split", "–"), config.get("variant", "–"), len(sweep.ids),
                    len(items.ids), ", ".join(map(str, sweep.layers)),
                    ", ".join(f"{m:g}" for m in sweep.multipliers), f"{best.mean():+.3f}"]],
                  left=2)
        doc.h(3, "Where the behaviour is encoded")
        single = best_layer_numbers(sweep)
        letters = {f"letter {x}": [b for b, y in zip(single, sweep.matching_letters) if y == x]
                   for x in ("A", "B")}
        doc.figure("best layers", lambda: layer_histograms(
            {"items": items.steerability, **{k: v for k, v in letters.items() if v}},
            sweep.layers, title="Best layer per item, and per single presentation by matching "
                                "letter"))
        doc.h(3, "Per-item figures")
        doc.figure("heatmap", lambda: steerability_heatmap(
            items.steerability, items.layers, items.ids), prefix="sweep")
        doc.figure("layer curves", lambda: layer_curves(
            items.steerability, items.layers, items.ids), prefix="sweep")
        doc.figure("propensity", lambda: propensity_lines(
            items.propensity, items.multipliers, items.layers, ids=items.ids), prefix="sweep")
        doc.h(2, "Prompts", "prompts")
        doc.p("The exact texts given to the model (chat template included), with each "
              "presentation's best layer.")
        prompts_table(doc, sweep, examples)
    metadata_section(doc, run)
    return f"W2S sweep report — {model} / {config.get('dataset', '?')}"


# --------------------------------------------------------------------------- entry points


class ReportDamaged(ArtifactMismatch):
    """A file the report reads is damaged (the page was written, with notes saying what)."""


def render_report(run_dir: str | os.PathLike, damaged: list[str] | None = None) -> str:
    """The report of ``run_dir`` as one HTML page (see the module docstring); what it found
    damaged (:meth:`Doc.damage`) is appended to ``damaged`` when given.

    Raises:
        FileNotFoundError: ``run_dir`` does not exist, has no ``run.json``, or is an
            evaluation without ``results.json``.
        ArtifactMismatch: the directory was written by another w2s-lens version, or its
            ``run.json`` names an unknown kind.

    Example:
        >>> page = render_report("runs/my-run")            # doctest: +SKIP
    """
    rd = RunDir(run_dir)
    if not rd.path.is_dir():
        raise FileNotFoundError(f"run directory {rd.path} does not exist")
    run = _read_run(rd)
    doc = Doc()
    kind = run.get("kind")
    if kind == "evaluation":
        title = _evaluation(doc, rd, run)
    elif kind == "sweep":
        title = _sweep(doc, rd, run)
    else:
        raise ArtifactMismatch(f"{rd.path / RUN_FILE} names kind {kind!r}; the report reads "
                               "'evaluation' and 'sweep' directories")
    if damaged is not None:
        damaged.extend(doc.damaged)
    return html_page(title, doc.parts, rd.path.resolve().name)  # no local path in the page


def html_page(title: str, parts: Sequence[str], source: str | os.PathLike | None = None,
              css: str = "") -> str:
    """A self-contained page: ``title``, a generated-from note naming ``source``, the body
    ``parts`` (e.g. :attr:`Doc.parts`), the report's style plus ``css``, plotly.js inline.

    Example:
        >>> html_page("t", ["<p>x</p>"]).startswith("<!DOCTYPE html>")
        True
    """
    stamp = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    where = "" if source is None else f" from <code>{_e(source)}</code>"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{_e(title)}</title>\n<style>{_CSS}{css}</style>\n"
        "<script>window.PlotlyConfig = {MathJaxConfig: 'local'};</script>\n"
        f"<script>{get_plotlyjs()}</script>\n</head>\n<body>\n"
        f"<h1>{_e(title)}</h1>\n<p class=\"note\">Generated {_e(stamp)}{where}.</p>\n"
        + "\n".join(parts) + "\n</body>\n</html>\n")


def write_report(run_dir: str | os.PathLike, out_path: str | os.PathLike | None = None,
                 strict: bool = False) -> Path:
    """Write the self-contained HTML report of ``run_dir`` and return its path.

    ``run_dir`` is an evaluation run directory or a sweep directory (layouts in
    :mod:`w2s_lens.evaluation.storage.rundir`); the page (default ``run_dir/report.html``) is
    written with
    :meth:`RunDir.write_report`. All text taken from the data is HTML-escaped.

    Raises:
        FileNotFoundError, ArtifactMismatch: see :func:`render_report`.
        ReportDamaged: with ``strict``, after writing the page, when a sweep,
            ``examples.jsonl``, ``routing.json`` or ``generations.json`` it reports on could
            not be read (the message names them).

    >>> write_report("runs/my-run")                        # doctest: +SKIP
    PosixPath('runs/my-run/report.html')
    """
    damaged: list[str] = []
    page = render_report(run_dir, damaged)
    out = RunDir(run_dir).write_report(page, out_path)
    log.info("wrote the report %s (%.1f MB)", out, len(page) / 1e6)
    if strict and damaged:
        raise ReportDamaged(f"wrote {out}, but {len(damaged)} of the files it reports on are "
                            "damaged: " + " | ".join(damaged))
    return out
