"""Formatting for the HTML report: escaped numbers and intervals, the readout in words, and the
:class:`Doc` the sections append to.

All text from the data is HTML-escaped here; a missing number prints as ``–``.

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
import logging
import math
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go

from w2s_lens.evaluation.config import flat_config
from w2s_lens.evaluation.stats.paired import VERDICT_BETTER, VERDICT_WORSE

if TYPE_CHECKING:
    from w2s_lens.evaluation.results.typed import EvaluationResult

__all__ = ["Doc", "fmt_interval", "fmt_p", "readout_text", "verdict_class"]

log = logging.getLogger(__name__)

_PLOT_CONFIG = {"displaylogo": False, "responsive": True}
#: How a paired verdict with any two names reads (``"<a> beats <b> beyond the noise"``,
#: ``"<a> is worse than <b>"``; :func:`w2s_lens.evaluation.stats.paired.signflip_verdict`).
_BEATS = re.compile(r"^.+ beats .+ beyond the noise")
_WORSE = re.compile(r"^.+ is worse than .+")


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


def _settings(settings: Any) -> tuple[Any, Any, Any]:
    """``(readout, mirror, length_norm)`` of a typed result, or of a run's configuration
    (``run.json``'s ``config``: not a result, so a plain mapping); None where not stated."""
    if isinstance(settings, Mapping):
        flat = flat_config(settings)  # a run.json config may be nested by part
        return (flat.get("readout"), flat.get("mirror"),
                flat.get("length_norm", flat.get("scoring") == "mean"))
    return (getattr(settings, "readout", None), getattr(settings, "mirror", None),
            getattr(settings, "length_norm", None))


def readout_text(settings: EvaluationResult | Mapping[str, Any]) -> str:
    """The readout in plain words, from a typed result (``readout``, ``mirror``,
    ``length_norm``) or a run's configuration mapping (a sweep directory's ``run.json``).
    A readout without ``mirror`` reads as mirrored (the default).

    >>> from w2s_lens.evaluation.results.typed import EvaluationResult
    >>> r = EvaluationResult.from_dict({"readout": "letter", "mirror": True, "methods": {}})
    >>> readout_text(r)[:40]
    'letter readout (A/B logit difference), m'
    >>> readout_text({"readout": "cloze", "length_norm": True})[:45]
    'cloze readout (option texts scored), length-n'
    """
    readout, mirror, length_norm = _settings(settings)
    if readout == "cloze":
        norm = ("length-normalised: mean per-token log-probability of each option"
                if length_norm else
                "not length-normalised: summed log-probabilities of each option")
        return f"cloze readout (option texts scored), {norm}"
    if mirror is None or mirror:
        return ("letter readout (A/B logit difference), mirrored: every item is shown in both "
                "letter orders and the two propensities are averaged, so a pure \"answer A vs "
                "answer B\" push cancels")
    return ("letter readout (A/B logit difference), single letter order: each item is shown "
            "once, so an \"answer A vs answer B\" push is not cancelled")


def fmt_p(p: Any) -> str:
    """A p-value in three significant digits, ``< 0.001`` below that, ``–`` when missing.

    >>> fmt_p(0.03125), fmt_p(0.00002), fmt_p(None)
    ('0.0312', '< 0.001', '–')
    """
    v = _num(p)
    if v is None:
        return "–"
    return "< 0.001" if v < 0.001 else f"{v:.3g}"


# --------------------------------------------------------------------------- the document


class Doc:
    """Accumulates HTML body parts; figures are built lazily so a failure becomes a note.

    >>> d = Doc(); d.h(2, "A & B"); d.parts
    ['<h2>A &amp; B</h2>']
    """

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.n_figures = 0
        #: what the report found damaged (see :meth:`damage`); ``w2s-lens report`` fails on it
        self.damaged: list[str] = []

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

    def damage(self, text: str) -> None:
        """A note about a damaged file the report could not read; also kept in
        :attr:`damaged`.

        >>> d = Doc(); d.damage("caa/base: sweep.safetensors unreadable"); d.damaged
        ['caa/base: sweep.safetensors unreadable']
        """
        self.note(text)
        self.damaged.append(text)

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


def verdict_class(text: str) -> str:
    """The CSS class of a verdict: ``v-better``, ``v-worse`` or ``v-none`` (a verdict of older
    results may carry a label after the plain words; a comparison may name other sides than
    W2S and fixed, as the cross-validated oracle's does).

    >>> verdict_class("W2S beats fixed beyond the noise (bootstrap CI (older))")
    'v-better'
    >>> verdict_class("the cross-validated oracle is worse than the cross-validated fixed layer")
    'v-worse'
    >>> verdict_class("too few informative items")
    'v-none'
    """
    if text.startswith(VERDICT_BETTER) or _BEATS.search(text):
        return "v-better"
    return "v-worse" if text.startswith(VERDICT_WORSE) or _WORSE.search(text) else "v-none"


def _verdict_cell(text: str) -> tuple[str, str]:
    return ("html", f'<span class="{verdict_class(text)}">{_e(text)}</span>')


def _prompt_cell(text: str) -> tuple[str, str]:
    return ("html", f'<div class="prompt">{_e(text)}</div>')

