"""Self-contained HTML page of the powered study (:mod:`w2s_lens.report.tables.study`): the
heading, the primary comparison as stated before running, the notes (status, rows smaller
than planned, how BH reads), the figure (:func:`~w2s_lens.report.plots_study.study_figure`)
and the tables (:func:`~w2s_lens.report.tables.study_text.study_tables`, the same cells as the
markdown). Like :mod:`.html`, the page carries plotly.js once, so it opens offline.

Example::

    >>> from w2s_lens.report.tables.study import study_rows
    >>> page = render_study_report(study_rows("/nonexistent", [{"name": "p", "model": "m",
    ...     "datasets": ["d"], "n_train": 2, "n_test": 2}]))
    >>> "Primary comparison (stated before running)" in page, "not run" in page
    (True, True)
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from w2s_lens.artifacts.files import write_text
from w2s_lens.report.formatting import Doc, verdict_class
from w2s_lens.report.html import html_page
from w2s_lens.report.plots_study import study_figure
from w2s_lens.report.tables.cross_dataset import FDR_Q
from w2s_lens.report.tables.study import PRIMARY_COMPARISON
from w2s_lens.report.tables.study_text import study_notes, study_tables

__all__ = ["render_study_report", "write_study_report"]

#: Extra style of the study page: rows not run in grey, rows smaller than planned marked.
_STUDY_CSS = """
.v-notrun { color: #999; font-style: italic; }
.smaller { color: #b35c00; font-weight: bold; }
"""
_TITLE = "The powered study: W2S against the best fixed layer"


def _inline(text: str) -> str:
    """Escape ``text`` and turn markdown ``code`` spans into ``<code>``."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text, quote=True))


def _cell(header: str, value: str) -> Any:
    if header in ("verdict", "after BH") and value in ("not run", "unreadable", "–"):
        return ("html", f'<span class="v-notrun">{html.escape(value)}</span>')
    if header == "verdict" or (header == "after BH" and value == "beats"):
        cls = "v-better" if value == "beats" else verdict_class(value)
        return ("html", f'<span class="{cls}">{html.escape(value)}</span>')
    if "SMALLER" in value or (header == "smaller than planned" and value != "–"):
        return ("html", f'<span class="smaller">{html.escape(value)}</span>')
    return value


def render_study_report(rows: Sequence[Mapping[str, Any]],
                        statement: str = PRIMARY_COMPARISON, title: str = _TITLE,
                        source: str | os.PathLike | None = None, q: float = FDR_Q) -> str:
    """The study page as one HTML string (see the module docstring).

    Args:
        rows: :func:`~w2s_lens.report.tables.study.study_rows`.
        statement: the primary comparison as stated before running (markdown ``code``
            spans allowed).
        source: the results folder named under the heading.
        q: the Benjamini-Hochberg level (default the verdicts' one-sided 2.5%).

    Example:
        >>> page = render_study_report(rows, source="analysis/results/powered")  # doctest: +SKIP
    """
    doc = Doc()
    doc.add(f'<p class="readout"><b>Primary comparison (stated before running).</b> '
            f"{_inline(statement)}</p>")
    for note in study_notes(rows, q):
        (doc.warn if note.startswith("Warning") else doc.p)(note)
    if rows:
        doc.h(2, "At a glance", "figure")
        doc.p("Per dataset, W2S − fixed (the primary comparison) and the cross-validated "
              "oracle − the cross-validated fixed layer (how much a router that knew each "
              "item's best layer would gain) with their 95% intervals; hover for n and p.")
        doc.figure("the study figure", lambda: study_figure(rows))
    for i, (name, header, cells) in enumerate(study_tables(rows, q)):
        doc.h(2, name, f"table-{i}")
        doc.table(header, [[_cell(h, c) for h, c in zip(header, row)] for row in cells],
                  left=(4, 6, 3)[i] if i < 3 else 1)
    return html_page(title, doc.parts, source, css=_STUDY_CSS)


def write_study_report(rows: Sequence[Mapping[str, Any]], out_path: str | os.PathLike,
                       **kwargs: Any) -> Path:
    """Write :func:`render_study_report` (keyword arguments passed on) to ``out_path``
    atomically and return the path.

    Example:
        >>> write_study_report(rows, "out/powered_report.html")  # doctest: +SKIP
        PosixPath('out/powered_report.html')
    """
    return write_text(out_path, render_study_report(rows, **kwargs))
