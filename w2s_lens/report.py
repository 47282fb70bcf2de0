"""Self-contained HTML report for an evaluation run directory or a plain sweep directory.

The report is one HTML file with plotly.js embedded inline (it opens offline), the figures from
:mod:`w2s_lens.plots`, a results table with a plain-words verdict per variant, a letter-artifact
warning where it applies, and the run metadata. Missing pieces (no ``routing.json``, no training
sweep, a variant directory absent, ...) are skipped with a note instead of failing.

Example::

    >>> from w2s_lens.report import write_report
    >>> path = write_report("runs/qwen-sycophancy")        # doctest: +SKIP
    >>> path.name                                          # doctest: +SKIP
    'report.html'
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from w2s_lens import plots
from w2s_lens.metrics import VERDICT_BETTER, VERDICT_NONE, VERDICT_WORSE, verdict

__all__ = [
    "LETTER_ARTIFACT_THRESHOLD",
    "VERDICT_BETTER",
    "VERDICT_NONE",
    "VERDICT_WORSE",
    "letter_gain_share",
    "verdict",
    "write_report",
]

#: Warn about a letter artifact when the letter-oracle gets at least this share of the oracle's
#: gain over the fixed layer.
LETTER_ARTIFACT_THRESHOLD = 0.8

_PLOT_CONFIG = {"displaylogo": False, "responsive": True}

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto;
       max-width: 1200px; padding: 1em 2em; color: #222; }
h1 { font-size: 1.6em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .9em; }
th, td { border: 1px solid #ddd; padding: .3em .6em; text-align: right; vertical-align: top; }
th { background: #f3f3f3; } td.l, th.l { text-align: left; }
.note { color: #555; font-style: italic; }
.warn { background: #fff4e0; border-left: 4px solid #e69500; padding: .6em 1em; margin: .8em 0; }
.v-better { color: #0a7a2f; font-weight: bold; } .v-worse { color: #b00020; font-weight: bold; }
.v-none { color: #555; }
pre { background: #f7f7f7; padding: .6em; overflow-x: auto; font-size: .85em; }
.fig { margin: 1em 0; }
"""


# --------------------------------------------------------------------------- small helpers


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _num(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def _fmt(x: Any, digits: int = 3) -> str:
    v = _num(x)
    return "–" if v is None else f"{v:.{digits}f}"


def _pct(x: Any) -> str:
    v = _num(x)
    return "–" if v is None else f"{v:.1%}"


def _ci(ci: Any) -> tuple[float, float] | None:
    if not isinstance(ci, Sequence) or isinstance(ci, str) or len(ci) != 2:
        return None
    lo, hi = _num(ci[0]), _num(ci[1])
    return None if lo is None or hi is None else (lo, hi)


def _fmt_ci(mean: Any, ci: Any, pct: bool = False) -> str:
    f = _pct if pct else _fmt
    iv = _ci(ci)
    return f(mean) + ("" if iv is None else f" [{f(iv[0])}, {f(iv[1])}]")


def letter_gain_share(vres: Mapping[str, Any]) -> float | None:
    """Share of the oracle's gain over fixed that the letter-oracle also gets.

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


def _load_json(path: Path, notes: list[str]) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        notes.append(f"could not read {path.name}: {err}")
        return None


def _load_sweep(d: Path, notes: list[str]) -> dict[str, Any] | None:
    """Read ``d/sweep.safetensors`` (+ ``sweep_ids.json``); ``None`` with a note if absent/bad."""
    f = d / "sweep.safetensors"
    if not f.is_file():
        return None
    try:
        from safetensors.numpy import load_file

        t = load_file(str(f))
        sw: dict[str, Any] = {
            "steerability": np.asarray(t["steerability"], dtype=float),
            "layers": [int(x) for x in np.asarray(t["layers"]).reshape(-1)],
        }
        sw["propensity"] = np.asarray(t["propensity"], dtype=float) if "propensity" in t else None
        sw["multipliers"] = (
            [float(x) for x in np.asarray(t["multipliers"]).reshape(-1)]
            if "multipliers" in t
            else None
        )
    except Exception as err:  # noqa: BLE001 - a broken file should become a note
        notes.append(f"could not read {f}: {type(err).__name__}: {err}")
        return None
    n = sw["steerability"].shape[0] if sw["steerability"].ndim == 2 else 0
    ids_json = _load_json(d / "sweep_ids.json", notes) or {}
    ids = ids_json.get("ids") if isinstance(ids_json, Mapping) else None
    letters = ids_json.get("matching_letters") if isinstance(ids_json, Mapping) else None
    sw["ids"] = [str(i) for i in ids] if ids is not None and len(ids) == n else None
    sw["matching_letters"] = list(letters) if letters is not None and len(letters) == n else None
    return sw


class _Doc:
    """Accumulates HTML body parts; figures are built lazily so a failure becomes a note."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.n_figures = 0

    def add(self, raw_html: str) -> None:
        self.parts.append(raw_html)

    def h(self, level: int, text: str, anchor: str | None = None) -> None:
        a = f' id="{_e(anchor)}"' if anchor else ""
        self.parts.append(f"<h{level}{a}>{_e(text)}</h{level}>")

    def note(self, text: str) -> None:
        self.parts.append(f'<p class="note">{_e(text)}</p>')

    def warn(self, text: str) -> None:
        self.parts.append(f'<div class="warn">⚠ {_e(text)}</div>')

    def figure(self, what: str, build: Callable[[], go.Figure], prefix: str | None = None) -> None:
        try:
            fig = build()
            if prefix:
                fig.update_layout(title_text=f"{prefix}: {fig.layout.title.text or ''}")
            div = fig.to_html(full_html=False, include_plotlyjs=False, config=_PLOT_CONFIG)
        except Exception as err:  # noqa: BLE001 - report what could not be drawn, keep going
            self.note(f"{what}: not drawn ({type(err).__name__}: {err})")
            return
        self.n_figures += 1
        self.parts.append(f'<div class="fig">{div}</div>')


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> str:
    """HTML table; cells are escaped here. The first ``left`` columns are left-aligned."""

    def cell(tag: str, j: int, v: str) -> str:
        cls = ' class="l"' if j < left else ""
        return f"<{tag}{cls}>{v}</{tag}>"

    head = "".join(cell("th", j, _e(h)) for j, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(cell("td", j, _e(v)) for j, v in enumerate(r)) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _verdict_html(text: str) -> str:
    cls = {VERDICT_BETTER: "v-better", VERDICT_WORSE: "v-worse"}.get(text, "v-none")
    return f'<span class="{cls}">{_e(text)}</span>'


def _primary_router(results: Mapping[str, Any], vres: Mapping[str, Any]) -> str | None:
    w2s = vres.get("w2s") or {}
    p = results.get("primary_router")
    return str(p) if p in w2s else next(iter(w2s), None)


# --------------------------------------------------------------------------- sections


def _results_section(doc: _Doc, results: Mapping[str, Any]) -> None:
    variants: Mapping[str, Any] = results.get("variants") or {}
    doc.h(2, "Results", "results")
    if not variants:
        doc.note("results.json has no variants.")
        return
    primary = results.get("primary_router")
    doc.add(
        "<p>Mean steerability (slope of propensity vs multiplier) on the test split with 95% CIs "
        "in brackets. <b>W2S</b> uses the primary router "
        f"(<code>{_e(primary if primary is not None else 'first listed')}</code>); "
        "<b>oracle</b> picks each input's best layer; <b>letter-oracle</b> picks the best layer "
        "per answer letter only. Verdict: the W2S − fixed CI excludes 0 and is positive → "
        f"“{_e(VERDICT_BETTER)}”; contains 0 → “{_e(VERDICT_NONE)}”; below 0 → "
        f"“{_e(VERDICT_WORSE)}”.</p>"
    )
    header = [
        "variant", "n", "fixed layer", "fixed", "W2S", "oracle", "letter-oracle",
        "steerable: fixed", "steerable: W2S", "steerable: oracle", "router acc (top-3)",
        "W2S − fixed", "verdict",
    ]  # fmt: skip
    rows_html = []
    warnings: list[str] = []
    for variant, vres in variants.items():
        fx = vres.get("fixed") or {}
        orc = vres.get("oracle") or {}
        lo = vres.get("letter_oracle") or {}
        router = _primary_router(results, vres)
        w = (vres.get("w2s") or {}).get(router) or {} if router is not None else {}
        v = verdict(w.get("diff_vs_fixed_ci")) if w else "no router results"
        lo_layers = lo.get("layers") or {}
        lo_txt = _fmt_ci(lo.get("steerability"), lo.get("steerability_ci"))
        if lo_layers:
            lo_txt += f" (A→{lo_layers.get('A', '?')}, B→{lo_layers.get('B', '?')})"
        cells = [
            str(variant),
            str(vres.get("n", "–")),
            str(vres.get("fixed_layer", "–")),
            _fmt_ci(fx.get("steerability"), fx.get("steerability_ci")),
            _fmt_ci(w.get("steerability"), w.get("steerability_ci")),
            _fmt_ci(orc.get("steerability"), orc.get("steerability_ci")),
            lo_txt,
            _fmt_ci(fx.get("steerable_fraction"), fx.get("steerable_fraction_ci"), pct=True),
            _fmt_ci(w.get("steerable_fraction"), w.get("steerable_fraction_ci"), pct=True),
            _fmt_ci(orc.get("steerable_fraction"), orc.get("steerable_fraction_ci"), pct=True),
            f"{_pct(w.get('accuracy'))} ({_pct(w.get('top3_accuracy'))})",
            _fmt_ci(w.get("diff_vs_fixed"), w.get("diff_vs_fixed_ci")),
        ]
        tds = "".join(
            f"<td{' class=l' if j == 0 else ''}>{_e(c)}</td>" for j, c in enumerate(cells)
        )
        rows_html.append(f"<tr>{tds}<td class=l>{_verdict_html(v)}</td></tr>")
        share = letter_gain_share(vres)
        if share is not None and share >= LETTER_ARTIFACT_THRESHOLD:
            warnings.append(
                f"Letter artifact suspected in variant '{variant}': the letter-oracle (one layer "
                f"per answer letter) gets {share:.0%} of the oracle's gain over the fixed layer, "
                "so most of the per-input layer choice can be explained by which letter is the "
                "matching answer rather than by the input's content."
            )
    head = "".join(
        f"<th{' class=l' if j in (0, len(header) - 1) else ''}>{_e(h)}</th>"
        for j, h in enumerate(header)
    )
    doc.add(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows_html)}</tbody></table>")
    for w in warnings:
        doc.warn(w)

    # All routers per variant (when several), and the by-letter breakdown.
    for variant, vres in variants.items():
        w2s = vres.get("w2s") or {}
        if len(w2s) > 1:
            doc.h(3, f"Routers — {variant}")
            rows = [
                [
                    str(name) + (" (primary)" if name == _primary_router(results, vres) else ""),
                    _fmt_ci(r.get("steerability"), r.get("steerability_ci")),
                    _fmt_ci(r.get("steerable_fraction"), r.get("steerable_fraction_ci"), True),
                    _pct(r.get("accuracy")),
                    _pct(r.get("top3_accuracy")),
                    _fmt_ci(r.get("diff_vs_fixed"), r.get("diff_vs_fixed_ci")),
                    verdict(r.get("diff_vs_fixed_ci")),
                ]
                for name, r in w2s.items()
            ]
            doc.add(
                _table(
                    ["router", "steerability", "steerable", "accuracy", "top-3 accuracy",
                     "W2S − fixed", "verdict"],
                    rows,
                )
            )  # fmt: skip
        by_letter = vres.get("by_letter") or {}
        if by_letter:
            doc.h(3, f"By matching letter — {variant}")
            router = _primary_router(results, vres)

            def stat(x: Any, router: str | None = router) -> str:
                if isinstance(x, Mapping) and "steerability" not in x and router in x:
                    x = x[router]
                if isinstance(x, Mapping):
                    return _fmt_ci(x.get("steerability"), x.get("steerability_ci"))
                return _fmt(x)

            rows = [
                [
                    str(letter),
                    str((b or {}).get("n", "–")),
                    stat((b or {}).get("fixed")),
                    stat((b or {}).get("w2s")),
                    stat((b or {}).get("oracle")),
                ]
                for letter, b in by_letter.items()
            ]
            doc.add(_table(["matching letter", "n", "fixed", "W2S", "oracle"], rows))


def _sweep_figures(
    doc: _Doc,
    sw: Mapping[str, Any],
    label: str,
    fixed_layer: int | None = None,
    routing: Mapping[str, Any] | None = None,
    primary: str | None = None,
) -> None:
    s, layers, ids = sw["steerability"], sw["layers"], sw["ids"]
    router_layers, router_name = None, None
    if routing is not None:
        router_name, router_layers = _aligned_router_layers(doc, routing, ids, primary, label)
    doc.figure(
        f"{label}: steerability heatmap",
        lambda: plots.steerability_heatmap(s, layers, ids),
        prefix=label,
    )
    doc.figure(
        f"{label}: layer curves",
        lambda: plots.layer_curves(
            s, layers, ids, fixed_layer=fixed_layer, router_layers=router_layers
        ),
        prefix=label if router_layers is None else f"{label} (router '{router_name}')",
    )
    doc.figure(
        f"{label}: best-layer histogram",
        lambda: plots.best_layer_histogram(s, layers),
        prefix=label,
    )
    if sw.get("propensity") is not None and sw.get("multipliers") is not None:
        doc.figure(
            f"{label}: propensity lines",
            lambda: plots.propensity_lines(sw["propensity"], sw["multipliers"], layers, ids=ids),
            prefix=label,
        )
    else:
        doc.note(f"{label}: no propensity/multipliers in the sweep file; propensity plot skipped.")
    if routing is None:
        return
    true = routing.get("oracle_layer")
    for name, pred in (routing.get("router_layer") or {}).items():
        if true is None:
            doc.note(f"{label}: routing.json has no oracle_layer; confusion matrix skipped.")
            break
        doc.figure(
            f"{label}: confusion matrix ({name})",
            lambda pred=pred, name=name: plots.confusion_matrix(
                true,
                pred,
                layers,
                title=f"{label}: router '{name}' vs oracle best layer "
                f"(exact accuracy {np.mean(np.asarray(true) == np.asarray(pred)):.1%})",
            ),
        )


def _aligned_router_layers(
    doc: _Doc,
    routing: Mapping[str, Any],
    ids: list[str] | None,
    primary: str | None,
    label: str,
) -> tuple[str | None, list[int] | None]:
    """(router name, its per-input layers aligned to the sweep ids), or ``None`` layers."""
    routers = routing.get("router_layer") or {}
    name = primary if primary in routers else next(iter(routers), None)
    if name is None:
        doc.note(f"{label}: routing.json has no router layers.")
        return None, None
    pred = list(routers[name])
    r_ids = [str(i) for i in routing.get("ids") or []]
    if ids is None or not r_ids or r_ids == ids:
        return name, pred
    pos = dict(zip(r_ids, pred, strict=False))
    if len(pos) == len(r_ids) and all(i in pos for i in ids):
        return name, [pos[i] for i in ids]
    doc.note(f"{label}: routing.json ids do not match the sweep ids; router picks not marked.")
    return name, None


def _metadata_section(doc: _Doc, meta: Any, title: str = "Run metadata") -> None:
    doc.h(2, title, "metadata")
    if not isinstance(meta, Mapping):
        doc.note("No run.json found.")
        return
    rows = [
        [str(k), v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)]
        for k, v in meta.items()
    ]
    doc.add(_table(["key", "value"], rows, left=2))


def _run_report(doc: _Doc, run_dir: Path, results: Mapping[str, Any], notes: list[str]) -> str:
    run = _load_json(run_dir / "run.json", notes)
    variants: Mapping[str, Any] = results.get("variants") or {}
    primary = results.get("primary_router")
    _results_section(doc, results)
    if variants:
        doc.figure("Method comparison", lambda: plots.method_bars(results))
    for variant, vres in variants.items():
        doc.h(2, f"Variant: {variant}", f"variant-{variant}")
        vdir = run_dir / str(variant)
        sw = _load_sweep(vdir, notes)
        if sw is None:
            doc.note(f"No sweep for variant '{variant}' ({vdir.name}/sweep.safetensors); "
                     "per-input figures skipped.")  # fmt: skip
            continue
        routing = _load_json(vdir / "routing.json", notes)
        if routing is None:
            doc.note(f"No routing.json for variant '{variant}'; router marks and confusion "
                     "matrix skipped.")  # fmt: skip
        fixed = vres.get("fixed_layer")
        if fixed is None and isinstance(routing, Mapping):
            fixed = routing.get("fixed_layer")
        _sweep_figures(doc, sw, str(variant), fixed, routing, primary)
    train = _load_sweep(run_dir / "train", notes)
    doc.h(2, "Training split", "train")
    if train is None:
        doc.note("No training sweep (train/sweep.safetensors); skipped.")
    else:
        s, layers = train["steerability"], train["layers"]
        doc.figure(
            "train: heatmap",
            lambda: plots.steerability_heatmap(s, layers, train["ids"]),
            prefix="training split",
        )
        doc.figure(
            "train: histogram",
            lambda: plots.best_layer_histogram(s, layers),
            prefix="training split",
        )
    _metadata_section(doc, run)
    model = results.get("model") or (run or {}).get("model", "?")
    dataset = results.get("dataset") or (run or {}).get("dataset", "?")
    return f"W2S report — {model} / {dataset}"


def _sweep_report(doc: _Doc, d: Path, notes: list[str]) -> str:
    run = _load_json(d / "run.json", notes)
    sw = _load_sweep(d, notes)
    examples: list[dict[str, Any]] = []
    ex_path = d / "examples.jsonl"
    if ex_path.is_file():
        for k, line in enumerate(ex_path.read_text(encoding="utf-8").splitlines()):
            if line.strip():
                try:
                    examples.append(json.loads(line))
                except ValueError:
                    notes.append(f"examples.jsonl line {k + 1} is not JSON; skipped")
    doc.h(2, "Sweep", "sweep")
    if sw is None:
        doc.note("No readable sweep.safetensors.")
    else:
        s = sw["steerability"]
        if sw["ids"] is None and len(examples) == s.shape[0]:
            sw["ids"] = [str(e.get("id", i)) for i, e in enumerate(examples)]
        best = np.argmax(s, axis=1)
        doc.add(
            _table(
                ["inputs", "layers", "multipliers", "mean best-layer steerability"],
                [[str(s.shape[0]), ", ".join(map(str, sw["layers"])),
                  ", ".join(f"{m:g}" for m in sw["multipliers"] or []),
                  _fmt(s[np.arange(len(s)), best].mean())]],
                left=0,
            )
        )  # fmt: skip
        _sweep_figures(doc, sw, "sweep")
    if examples:
        doc.h(2, "Examples", "examples")
        shown = examples[:20]
        rows = []
        for i, ex in enumerate(shown):
            text = str(ex.get("text", ""))
            bl = "–"
            if sw is not None and i < sw["steerability"].shape[0]:
                bl = str(sw["layers"][int(np.argmax(sw["steerability"][i]))])
            rows.append(
                [str(ex.get("id", i)), str(ex.get("matching_letter", "–")), bl,
                 text if len(text) <= 400 else text[:400] + "…"]
            )  # fmt: skip
        doc.add(_table(["id", "matching letter", "best layer", "text"], rows, left=4))
        if len(examples) > len(shown):
            doc.note(f"First {len(shown)} of {len(examples)} examples shown.")
    _metadata_section(doc, run)
    meta = run if isinstance(run, Mapping) else {}
    return f"W2S sweep report — {meta.get('model', '?')} / {meta.get('dataset', '?')}"


def write_report(run_dir: str | Path, out_path: str | Path | None = None) -> Path:
    """Write one self-contained HTML report for ``run_dir`` and return its path.

    ``run_dir`` is either an evaluation run directory (has ``results.json``; see the layout in
    the project notes) or a plain sweep directory (``sweep.safetensors`` + ``run.json`` +
    ``examples.jsonl``). The output (default ``run_dir/report.html``) embeds plotly.js inline,
    so it opens offline. All text taken from the data is HTML-escaped.

    Raises:
        FileNotFoundError: ``run_dir`` has neither ``results.json`` nor ``sweep.safetensors``.

    >>> write_report("runs/my-run")                        # doctest: +SKIP
    PosixPath('runs/my-run/report.html')
    """
    d = Path(run_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"run directory {d} does not exist")
    notes: list[str] = []
    doc = _Doc()
    results = _load_json(d / "results.json", notes)
    if isinstance(results, Mapping):
        title = _run_report(doc, d, results, notes)
    elif (d / "sweep.safetensors").is_file():
        title = _sweep_report(doc, d, notes)
    else:
        raise FileNotFoundError(
            f"{d} is neither a run directory (results.json) nor a sweep directory "
            "(sweep.safetensors)" + (f": {'; '.join(notes)}" if notes else "")
        )
    out = Path(out_path) if out_path is not None else d / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    note_html = "".join(f'<p class="note">{_e(n)}</p>' for n in notes)
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n"
        "<script>window.PlotlyConfig = {MathJaxConfig: 'local'};</script>\n"
        f"<script>{get_plotlyjs()}</script>\n"
        "</head>\n<body>\n"
        f"<h1>{_e(title)}</h1>\n<p class=\"note\">Generated {_e(stamp)} from "
        f"<code>{_e(d.resolve())}</code>.</p>\n{note_html}\n"
        + "\n".join(doc.parts)
        + "\n</body>\n</html>\n"
    )  # fmt: skip
    out.write_text(page, encoding="utf-8")
    return out
