"""The pieces of the HTML report (:mod:`w2s_lens.report.html`): formatting, tables and sections.

Every section takes what :class:`~w2s_lens.evaluation.rundir.RunDir` reads (``results.json``, sweeps as
:class:`~w2s_lens.sweep.runner.SweepResult` with their :class:`~w2s_lens.data.examples.SteeringExample`
records, ``routing.json``, ``generations.json``) and appends HTML to a :class:`Doc`. All text
from the data is HTML-escaped; a piece that is missing or cannot be drawn becomes a note.

Example:
    >>> doc = Doc()
    >>> doc.note("nothing <here>")
    >>> doc.parts
    ['<p class="note">nothing &lt;here&gt;</p>']
    >>> fmt_interval(0.42, [0.31, 0.52], n=24, seed=0)
    '+0.420 [+0.310, +0.520] (n=24, seed 0)'
"""

from __future__ import annotations

import html
import json
import logging
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from w2s_lens.data.examples import SteeringExample
from w2s_lens.evaluation.metrics import VERDICT_BETTER, VERDICT_WORSE, verdict
from w2s_lens.evaluation.rundir import RunDir
from w2s_lens.report import plots_results
from w2s_lens.sweep.runner import SweepResult

__all__ = [
    "LETTER_ARTIFACT_THRESHOLD",
    "Doc",
    "fmt_interval",
    "letter_artifact",
    "letter_gain_share",
    "readout_text",
]

log = logging.getLogger(__name__)

#: Warn about a letter artifact when the letter oracle gets at least this share of the oracle's
#: gain over the fixed layer.
LETTER_ARTIFACT_THRESHOLD = 0.8
#: How many prompts the prompt tables show.
MAX_PROMPTS = 24

_PLOT_CONFIG = {"displaylogo": False, "responsive": True}


# --------------------------------------------------------------------------- formatting


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def _signed(x: Any) -> str:
    v = _num(x)
    return "–" if v is None else f"{v:+.3f}"


def _plain(x: Any) -> str:
    v = _num(x)
    return "–" if v is None else f"{v:.3f}"


def _pct(x: Any) -> str:
    v = _num(x)
    return "–" if v is None else f"{v:.1%}"


def fmt_interval(mean: Any, ci: Any, n: Any = None, seed: Any = None, pct: bool = False,
                 unit: str = "") -> str:
    """``+0.420 [+0.310, +0.520] (n=24, seed 0)``: a mean, its interval, and the number of test
    inputs and the split seed it was computed on (``–`` for missing numbers).

    >>> fmt_interval(0.75, [0.5, 1.0], n=8, seed=3, pct=True, unit=" presentations")
    '75.0% [50.0%, 100.0%] (n=8 presentations, seed 3)'
    >>> fmt_interval(None, None)
    '–'
    """
    f = _pct if pct else _signed
    text = f(mean)
    if isinstance(ci, Sequence) and not isinstance(ci, str) and len(ci) == 2:
        text += f" [{f(ci[0])}, {f(ci[1])}]"
    bits = ([] if n is None else [f"n={n}{unit}"]) + ([] if seed is None else [f"seed {seed}"])
    return text + (f" ({', '.join(bits)})" if bits and _num(mean) is not None else "")


def readout_text(settings: Mapping[str, Any]) -> str:
    """The readout in plain words, from ``results.json`` (``readout``, ``mirror``,
    ``length_norm``) or a run's config.

    >>> readout_text({"readout": "letter", "mirror": True})[:40]
    'letter readout (A/B logit difference), m'
    >>> readout_text({"readout": "cloze", "length_norm": True})[:45]
    'cloze readout (option texts scored), length-n'
    """
    if settings.get("readout") == "cloze":
        norm = ("length-normalised: mean per-token log-probability of each option"
                if settings.get("length_norm") else
                "not length-normalised: summed log-probabilities of each option")
        return f"cloze readout (option texts scored), {norm}"
    if settings.get("mirror", True):
        return ("letter readout (A/B logit difference), mirrored: every item is shown in both "
                "letter orders and the two propensities are averaged, so a pure \"answer A vs "
                "answer B\" push cancels")
    return ("letter readout (A/B logit difference), single letter order: each item is shown "
            "once, so an \"answer A vs answer B\" push is not cancelled")


def letter_gain_share(vres: Mapping[str, Any]) -> float | None:
    """Share of the oracle's gain over fixed that the letter oracle also gets.

    ``(letter_oracle - fixed) / (oracle - fixed)`` in mean steerability; ``None`` when a piece is
    missing or the oracle does not beat fixed.

    >>> letter_gain_share({"fixed": {"steerability": 0.1}, "oracle": {"steerability": 0.3},
    ...                    "letter_oracle": {"steerability": 0.28}})
    0.9
    """
    f = _num((vres.get("fixed") or {}).get("steerability"))
    o = _num((vres.get("oracle") or {}).get("steerability"))
    lo = _num((vres.get("letter_oracle") or {}).get("steerability"))
    if f is None or o is None or lo is None or o - f <= 0:
        return None
    return round((lo - f) / (o - f), 12)


def _gain(vres: Mapping[str, Any], key: str) -> float | None:
    a = _num((vres.get(key) or {}).get("steerability"))
    f = _num((vres.get("fixed") or {}).get("steerability"))
    return None if a is None or f is None else a - f


def letter_artifact(vres: Mapping[str, Any]) -> tuple[float | None, str]:
    """``(share, basis)``: :func:`letter_gain_share` on the single-order diagnostic of a
    mirrored variant (each letter order scored on its own, where a letter-dependent best layer
    shows), else on the variant's own items; ``basis`` says which.

    >>> letter_artifact({"fixed": {"steerability": 0.1}, "oracle": {"steerability": 0.3},
    ...                  "letter_oracle": {"steerability": 0.3}, "single_order": None})
    (1.0, 'items')
    """
    single = vres.get("single_order")
    if isinstance(single, Mapping):
        return letter_gain_share(single), "single-order presentations"
    return letter_gain_share(vres), "items"


# --------------------------------------------------------------------------- the document


class Doc:
    """Accumulates HTML body parts; figures are built lazily so a failure becomes a note.

    >>> d = Doc(); d.h(2, "A & B"); d.parts
    ['<h2>A &amp; B</h2>']
    """

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.n_figures = 0

    def add(self, raw_html: str) -> None:
        """Append raw HTML (already escaped)."""
        self.parts.append(raw_html)

    def h(self, level: int, text: str, anchor: str | None = None) -> None:
        """A heading."""
        a = f' id="{_e(anchor)}"' if anchor else ""
        self.parts.append(f"<h{level}{a}>{_e(text)}</h{level}>")

    def p(self, text: str) -> None:
        """A paragraph of plain text."""
        self.parts.append(f"<p>{_e(text)}</p>")

    def note(self, text: str) -> None:
        """A grey note (what was skipped and why)."""
        self.parts.append(f'<p class="note">{_e(text)}</p>')

    def warn(self, text: str) -> None:
        """A highlighted warning."""
        self.parts.append(f'<div class="warn">⚠ {_e(text)}</div>')

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]],
              left: int | Collection[int] = 1) -> None:
        """A table of plain-text cells (escaped here); the first ``left`` columns (or the
        columns in ``left``) left-aligned. A cell may be ``("html", raw)`` to insert already
        escaped HTML."""
        lefts = set(range(left)) if isinstance(left, int) else set(left)

        def cell(tag: str, j: int, v: Any) -> str:
            cls = ' class="l"' if j in lefts else ""
            body = v[1] if isinstance(v, tuple) and v[:1] == ("html",) else _e(v)
            return f"<{tag}{cls}>{body}</{tag}>"

        head = "".join(cell("th", j, h) for j, h in enumerate(header))
        body = "".join("<tr>" + "".join(cell("td", j, v) for j, v in enumerate(r)) + "</tr>"
                       for r in rows)
        self.parts.append(f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
                          f"<tbody>{body}</tbody></table></div>")

    def figure(self, what: str, build: Callable[[], go.Figure], prefix: str | None = None) -> None:
        """Build a figure and embed it (without plotly.js, which the page carries once)."""
        try:
            fig = build()
            if prefix:
                fig.update_layout(title_text=f"{prefix}: {fig.layout.title.text or ''}")
            div = fig.to_html(full_html=False, include_plotlyjs=False, config=_PLOT_CONFIG)
        except Exception as err:  # noqa: BLE001 - report what could not be drawn, keep going
            log.warning("%s: not drawn (%s: %s)", what, type(err).__name__, err)
            self.note(f"{what}: not drawn ({type(err).__name__}: {err})")
            return
        self.n_figures += 1
        self.parts.append(f'<div class="fig">{div}</div>')


def _verdict_cell(text: str) -> tuple[str, str]:
    cls = {VERDICT_BETTER: "v-better", VERDICT_WORSE: "v-worse"}.get(text, "v-none")
    return ("html", f'<span class="{cls}">{_e(text)}</span>')


def _prompt_cell(text: str) -> tuple[str, str]:
    return ("html", f'<div class="prompt">{_e(text)}</div>')


def load_sweep(doc: Doc, rd: RunDir, where: Any,
               label: str) -> tuple[SweepResult, list[SteeringExample]] | None:
    """``rd.load_sweep(where)``, or None with a note when it is absent or unreadable."""
    try:
        return rd.load_sweep(where)
    except (OSError, ValueError, KeyError) as err:  # ArtifactMismatch is a ValueError
        doc.note(f"{label}: no readable sweep in {where} ({type(err).__name__}: {err}); "
                 "skipped.")
        return None


def read_routing(doc: Doc, rd: RunDir, where: Any, label: str) -> dict[str, Any] | None:
    """``rd.read_routing(where)``, or None (with a note when it is unreadable)."""
    try:
        return rd.read_routing(where)
    except (OSError, ValueError) as err:
        doc.note(f"{label}: routing.json unreadable ({type(err).__name__}: {err}).")
        return None


def best_layer_numbers(sweep: SweepResult) -> list[int]:
    """Each swept row's best layer, as a layer number."""
    return [sweep.layers[i] for i in np.argmax(sweep.steerability, axis=1)]


# --------------------------------------------------------------------------- evaluation tables


def results_section(doc: Doc, results: Mapping[str, Any]) -> None:
    """The comparison: CAA and L2S side by side per variant, with intervals, n, seed, verdict;
    the letter-artifact warnings; the single-order diagnostic; routers and letters per method."""
    methods: Mapping[str, Any] = results.get("methods") or {}
    seed, primary = results.get("split_seed"), results.get("primary_router")
    doc.h(2, "Results", "results")
    if not methods:
        doc.note("results.json has no methods.")
        return
    doc.p(f"Mean steerability (slope of propensity against the multiplier) on the test items "
          f"with 95% bootstrap intervals, each followed by the number of test items it is "
          f"computed on and the split seed. W2S is the primary router ({primary}); the oracle "
          "picks each item's own best test layer and the letter oracle one layer per matching "
          "letter (both are upper bounds chosen on the test items). Verdict: the interval of "
          "W2S − fixed lies above 0, contains 0, or lies below 0.")
    variants = list(dict.fromkeys(v for b in methods.values() for v in b.get("variants") or {}))
    rows, frac_rows, warnings = [], [], []
    for variant in variants:
        for method, block in methods.items():
            vres = (block.get("variants") or {}).get(variant)
            if vres is None:
                continue
            n, name = vres.get("n"), plots_results.method_label(method)
            router = plots_results.primary_router(results, vres)
            w = (vres.get("w2s") or {}).get(router) or {} if router else {}
            lo = vres.get("letter_oracle") or {}
            lays = lo.get("layers") or {}
            lo_txt = fmt_interval(lo.get("steerability"), lo.get("steerability_ci"), n, seed)
            if lays:
                lo_txt += f" A→{lays.get('A', '–')}, B→{lays.get('B', '–')}"
            rows.append([variant, name, vres.get("fixed_layer", "–"),
                         *(fmt_interval(x.get("steerability"), x.get("steerability_ci"), n, seed)
                           for x in (vres.get("fixed") or {}, w, vres.get("oracle") or {})),
                         lo_txt,
                         fmt_interval(w.get("diff_vs_fixed"), w.get("diff_vs_fixed_ci"), n, seed),
                         _verdict_cell(verdict(w.get("diff_vs_fixed_ci")) if w
                                       else "no router results")])
            frac_rows.append([variant, name, *(
                fmt_interval(x.get("steerable_fraction"), x.get("steerable_fraction_ci"), n,
                             seed, pct=True)
                for x in (vres.get("fixed") or {}, w, vres.get("oracle") or {})),
                f"{_pct(w.get('accuracy'))} ({_pct(w.get('top3_accuracy'))})"])
            share, basis = letter_artifact(vres)
            if share is not None and share >= LETTER_ARTIFACT_THRESHOLD:
                judged = vres.get("single_order") or vres
                gain = _gain(judged, "oracle")
                warnings.append(
                    f"Letter artifact suspected ({name}, variant '{variant}'): on the {basis}, "
                    f"the letter oracle (one layer per matching letter) gets {share:.0%} of the "
                    f"oracle's gain over the fixed layer ({_signed(_gain(judged, 'letter_oracle'))}"
                    f" of {_signed(gain)}), so most of the per-input layer choice is explained "
                    "by which letter is the matching answer, not by the input.")
    doc.table(["variant", "method", "fixed layer", "fixed", f"W2S ({primary})", "oracle",
               "letter oracle", "W2S − fixed", "verdict"], rows, left=2)
    for text in warnings:
        doc.warn(text)
    doc.h(3, "Steerable fraction and routing accuracy")
    doc.table(["variant", "method", "fixed", "W2S", "oracle", "router accuracy (top-3)"],
              frac_rows, left=2)
    _training_table(doc, results)
    _single_order_table(doc, results)
    for method, block in methods.items():
        _details(doc, results, method, block)


def _training_table(doc: Doc, results: Mapping[str, Any]) -> None:
    doc.h(3, "Training split")
    rows = []
    for method, block in (results.get("methods") or {}).items():
        counts = block.get("train_best_layer_counts") or {}
        cv = block.get("router_cv") or {}
        ratio = block.get("w2s_over_fixed")
        rows.append([plots_results.method_label(method), block.get("fixed_layer", "–"),
                     _signed(block.get("train_fixed_steerability")),
                     ", ".join(f"L{k}: {v}" for k, v in sorted(counts.items(),
                                                                 key=lambda kv: int(kv[0]))),
                     "; ".join(f"{k}: {_plain((c or {}).get('cv_score'))}"
                               for k, c in cv.items()),
                     "–" if ratio is None else f"{ratio:.3f}"])
    doc.p(f"{results.get('n_train', '?')} training items, cross-fitted in "
          f"{results.get('cross_fit', '?')} folds (0: in-sample); the fixed layer is the best "
          "mean training layer. The W2S/fixed ratio of mean steerabilities (base variant) is "
          "only shown where the fixed layer steers at all.")
    doc.table(["method", "fixed layer", "training steerability there",
               "best layers of training items", "router CV score", "W2S / fixed (base)"], rows)


def _single_order_table(doc: Doc, results: Mapping[str, Any]) -> None:
    rows = []
    for method, block in (results.get("methods") or {}).items():
        for variant, vres in (block.get("variants") or {}).items():
            single = vres.get("single_order")
            if not isinstance(single, Mapping):
                continue
            n, seed = single.get("n"), results.get("split_seed")
            lo = single.get("letter_oracle") or {}
            lays = lo.get("layers") or {}
            share = letter_gain_share(single)
            rows.append([variant, plots_results.method_label(method),
                         *(fmt_interval(x.get("steerability"), x.get("steerability_ci"), n, seed,
                                        unit=" presentations")
                           for x in (single.get("fixed") or {}, single.get("oracle") or {}, lo)),
                         f"A→{lays.get('A', '–')}, B→{lays.get('B', '–')}",
                         "–" if share is None else f"{share:.0%}"])
    if not rows:
        return
    doc.h(3, "Single-order diagnostic")
    doc.p("Each letter order scored on its own (presentations, not items; intervals resample "
          "presentations). If the letter oracle gets most of the oracle's gain here, the best "
          "layer follows the matching letter: the letter-artifact warning above is computed "
          "on this table.")
    doc.table(["variant", "method", "fixed", "oracle", "letter oracle", "letter layers",
               "letter share of oracle gain"], rows, left=2)


def _details(doc: Doc, results: Mapping[str, Any], method: str, block: Mapping[str, Any]) -> None:
    """Every router and the by-letter breakdown of one method, folded."""
    name, seed = plots_results.method_label(method), results.get("split_seed")
    router_rows, letter_rows = [], []
    for variant, vres in (block.get("variants") or {}).items():
        n, primary = vres.get("n"), plots_results.primary_router(results, vres)
        for kind, r in (vres.get("w2s") or {}).items():
            router_rows.append([variant, kind + (" (primary)" if kind == primary else ""),
                                fmt_interval(r.get("steerability"), r.get("steerability_ci"),
                                             n, seed),
                                _pct(r.get("accuracy")), _pct(r.get("top3_accuracy")),
                                fmt_interval(r.get("diff_vs_fixed"), r.get("diff_vs_fixed_ci"),
                                             n, seed),
                                verdict(r.get("diff_vs_fixed_ci"))])
        for letter, b in (vres.get("by_letter") or {}).items():
            b = b or {}
            w = (b.get("w2s") or {}).get(primary) or {}
            letter_rows.append([variant, letter, *(
                fmt_interval(x.get("steerability"), x.get("steerability_ci"), b.get("n"), seed)
                for x in (b.get("fixed") or {}, w, b.get("oracle") or {}))])
    doc.add(f"<details><summary>{_e(name)}: every router, and the items by matching "
            "letter</summary>")
    doc.p("Every router (accuracy: the routed layer is the item's own best test layer).")
    doc.table(["variant", "router", "W2S", "accuracy", "top-3 accuracy", "W2S − fixed",
               "verdict"], router_rows, left=2)
    doc.p("The test items by matching letter (of an item's first presentation).")
    doc.table(["variant", "matching letter", "fixed", "W2S", "oracle"], letter_rows, left=2)
    doc.add("</details>")


# --------------------------------------------------------------------------- prompts, texts


def prompts_table(doc: Doc, sweep: SweepResult, examples: Sequence[SteeringExample],
                  routed: Mapping[str, int] | None = None, limit: int = MAX_PROMPTS) -> None:
    """The exact prompt texts (chat template included) with each presentation's matching
    letter, best layer, and (when given, per item) the routed layer."""
    best = best_layer_numbers(sweep)
    header = ["id", "matching letter", "best layer"] + (["routed layer"] if routed else [])
    rows = [[ex.id, ex.matching_letter, best[i],
             *([routed.get(ex.unit, "–")] if routed else []), _prompt_cell(ex.text)]
            for i, ex in enumerate(examples[:limit])]
    doc.table([*header, "prompt text"], rows, left={0, len(header)})
    if len(examples) > limit:
        doc.note(f"First {limit} of {len(examples)} prompts shown.")


def generations_section(doc: Doc, rd: RunDir, methods: Sequence[str]) -> None:
    """``generations.json`` of each method: prompt, unsteered, fixed layer N, routed layer M."""
    shown = False
    for method in methods:
        try:
            rows = rd.read_generations(method)
        except (OSError, ValueError, KeyError) as err:
            doc.note(f"{method}/generations.json unreadable ({type(err).__name__}: {err}).")
            continue
        if not rows:
            continue
        if not shown:
            doc.h(2, "Generations", "generations")
            doc.p("Greedy continuations of base test questions: unsteered, steered at the fixed "
                  "layer, and steered at the layer the primary router picks for that prompt.")
            shown = True
        fixed = {r.get("fixed_layer") for r in rows}
        mult = {r.get("multiplier") for r in rows}
        lam = f" (λ={mult.pop()})" if len(mult) == 1 else ""
        fixed_head = f"fixed layer {fixed.pop()}{lam}" if len(fixed) == 1 else f"fixed layer{lam}"
        doc.h(3, f"{plots_results.method_label(method)}")
        doc.table(["prompt", "unsteered", fixed_head, f"routed layer{lam}"], [
            [_prompt_cell(r.get("prompt", "")), _prompt_cell(r.get("unsteered", "")),
             _prompt_cell("–" if r.get("fixed") is None else r["fixed"]),
             ("html", f"<b>layer {_e(r.get('routed_layer', '–'))}</b>"
                      f"{_prompt_cell(r.get('routed', ''))[1]}")]
            for r in rows], left=4)


def metadata_section(doc: Doc, run: Mapping[str, Any] | None) -> None:
    """``run.json``: the configuration and what the run derived from it."""
    doc.h(2, "Run metadata", "metadata")
    if not isinstance(run, Mapping):
        doc.note("No readable run.json.")
        return

    def value(v: Any) -> str:
        text = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
        return text if len(text) <= 400 else text[:400] + f"… ({len(text)} characters)"

    for key, title in (("config", "Configuration"), ("derived", "Derived")):
        block = run.get(key)
        if isinstance(block, Mapping) and block:
            doc.h(3, title)
            doc.table(["key", "value"], [[k, value(v)] for k, v in block.items()], left=2)
    rest = {k: v for k, v in run.items() if k not in ("config", "derived")}
    if rest:
        doc.table(["key", "value"], [[k, value(v)] for k, v in rest.items()], left=2)
