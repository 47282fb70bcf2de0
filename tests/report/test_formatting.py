"""Formatting of the HTML report (w2s_lens.report.formatting): numbers, intervals, p-values, the
readout in words, verdict classes and the Doc's escaping and failure notes."""

from __future__ import annotations

import doctest
import importlib

import plotly.graph_objects as go

from w2s_lens.evaluation.headroom.diagnostics import XV_NAMES
from w2s_lens.evaluation.results.typed import EvaluationResult
from w2s_lens.evaluation.stats.paired import (
    VERDICT_BETTER,
    VERDICT_NONE,
    VERDICT_WORSE,
    signflip_verdict,
)
from w2s_lens.report.formatting import Doc, fmt_interval, fmt_p, readout_text, verdict_class


def test_intervals_name_n_and_seed_and_tolerate_missing_numbers() -> None:
    assert fmt_interval(0.5, [0.25, 0.75], n=12, seed=3) == "+0.500 [+0.250, +0.750] (n=12, seed 3)"
    assert fmt_interval(0.5, [None, 0.75]) == "+0.500 [–, +0.750]"
    assert fmt_interval(float("nan"), [0.1, 0.2], n=4) == "– [+0.100, +0.200]"
    assert fmt_interval(0.25, None, pct=True) == "25.0%"


def test_p_values() -> None:
    assert [fmt_p(x) for x in (0.5, 0.0123456, 0.001, 0.0009, None, "x")] == [
        "0.5", "0.0123", "0.001", "< 0.001", "–", "–"]


def test_readouts_in_words() -> None:
    cloze = EvaluationResult.from_dict({"readout": "cloze", "length_norm": True, "methods": {}})
    assert readout_text(cloze).startswith("cloze readout (option texts scored), length-normalised")
    single = EvaluationResult.from_dict({"readout": "letter", "mirror": False, "methods": {}})
    assert "single letter order" in readout_text(single)
    assert "mirrored" in readout_text(EvaluationResult.from_dict({"methods": {}}))
    # a sweep directory's configuration (run.json, not a result) reads the same
    assert readout_text({"readout": "cloze"}).endswith("summed log-probabilities of each option")
    assert "length-normalised" in readout_text({"readout": "cloze", "length_norm": True})
    assert "mirrored" in readout_text({})
    assert "single letter order" in readout_text({"mirror": False})


def test_verdict_classes_also_read_labelled_older_verdicts() -> None:
    assert verdict_class(VERDICT_BETTER) == "v-better"
    assert verdict_class(VERDICT_WORSE + " (bootstrap CI (older))") == "v-worse"
    assert verdict_class(VERDICT_NONE) == verdict_class("too few informative items") == "v-none"


def test_verdict_classes_read_comparisons_with_other_names() -> None:
    assert verdict_class(signflip_verdict(0.01, 0.99, 12, names=XV_NAMES)) == "v-better"
    assert verdict_class(signflip_verdict(0.99, 0.01, 12, names=XV_NAMES)) == "v-worse"
    assert verdict_class(signflip_verdict(0.3, 0.7, 12, names=XV_NAMES)) == "v-none"


def test_doc_escapes_and_turns_a_failed_figure_into_a_note() -> None:
    doc = Doc()
    doc.h(2, "<b>", anchor='a"b')
    doc.table(["x & y", "z"], [["<i>", ("html", "<em>ok</em>")]], left=1)
    assert doc.parts[0] == '<h2 id="a&quot;b">&lt;b&gt;</h2>'
    assert '<th class="l">x &amp; y</th><th>z</th>' in doc.parts[1]
    assert '<td class="l">&lt;i&gt;</td><td><em>ok</em></td>' in doc.parts[1]

    def broken() -> go.Figure:
        raise ValueError("no <data>")

    doc.figure("heatmap", broken)
    assert doc.parts[-1] == ('<p class="note">heatmap: not drawn (ValueError: no &lt;data&gt;)'
                             "</p>") and doc.n_figures == 0
    doc.figure("bars", lambda: go.Figure(go.Bar(y=[1])), prefix="CAA")
    assert doc.n_figures == 1 and doc.parts[-1].startswith('<div class="fig">')
    assert "CAA: " in doc.parts[-1]


def test_the_docstring_examples_run() -> None:
    """The examples in the docstrings (typed results in, the text shown out) hold."""
    failed, attempted = doctest.testmod(importlib.import_module("w2s_lens.report.formatting"),
                                        optionflags=doctest.ELLIPSIS)
    assert failed == 0 and attempted > 0
