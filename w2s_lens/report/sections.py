"""The sections of the HTML report (:mod:`w2s_lens.report.html`) other than the results tables:
reading sweeps and routing with a note on failure, the prompt texts, the generations and the
run metadata.

Every section takes what :class:`~w2s_lens.evaluation.storage.rundir.RunDir` reads (sweeps as
:class:`~w2s_lens.sweep.runner.SweepResult` with their
:class:`~w2s_lens.data.examples.SteeringExample` records, ``routing.json``,
``generations.json``, ``run.json``) and appends HTML to a :class:`Doc`. All text from the data
is HTML-escaped; a piece that is missing or cannot be drawn becomes a note.

The formatting (:class:`Doc`, :func:`fmt_interval`, :func:`readout_text`) is in
:mod:`w2s_lens.report.formatting`, the readings of results (verdicts, artifact shares) in
:mod:`w2s_lens.report.readings` and the results tables (:func:`results_section`) in
:mod:`w2s_lens.report.results_tables`. Import each from its home.

Example:
    >>> doc = Doc()
    >>> metadata_section(doc, None)
    >>> doc.parts
    ['<h2 id="metadata">Run metadata</h2>', '<p class="note">No readable run.json.</p>']
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from w2s_lens.data.examples import SteeringExample
from w2s_lens.evaluation.storage.rundir import RunDir
from w2s_lens.report import plots_results
from w2s_lens.report.formatting import Doc, _e, _prompt_cell
from w2s_lens.sweep.result import SweepResult

__all__ = ["MAX_PROMPTS", "best_layer_numbers", "generations_section", "load_sweep",
           "metadata_section", "prompts_table", "read_routing"]

#: How many prompts the prompt tables show.
MAX_PROMPTS = 24


def _in_run(rd: RunDir, text: str) -> str:
    """``text`` with the run directory's path written as its name (no local path in a page).

    >>> _in_run(RunDir("/data/runs/r1"), "/data/runs/r1/caa/base is damaged")
    'r1/caa/base is damaged'
    """
    for root in {str(rd.path.resolve()), str(rd.path.absolute())}:
        text = text.replace(root, rd.path.resolve().name)
    return text


def load_sweep(doc: Doc, rd: RunDir, where: Any,
               label: str) -> tuple[SweepResult, list[SteeringExample]] | None:
    """``rd.load_sweep(where)``, or None with a note when it is absent or unreadable (a folder
    that exists but cannot be read is recorded as damage: :meth:`Doc.damage`).

    >>> doc = Doc()
    >>> load_sweep(doc, RunDir("/nonexistent"), "/nonexistent/caa/base", "CAA · base") is None
    True
    >>> "no readable sweep in nonexistent/caa/base" in doc.parts[0], doc.damaged  # not run
    (True, [])
    """
    try:
        return rd.load_sweep(where)
    except (OSError, ValueError, KeyError) as err:  # ArtifactMismatch is a ValueError
        text = _in_run(rd, f"{label}: no readable sweep in {where} ({type(err).__name__}: "
                           f"{err}); skipped.")
        folder = Path(where) if Path(where).is_absolute() else rd.path / where
        if folder.exists():
            doc.damage(text)
        else:
            doc.note(text)
        return None


def read_routing(doc: Doc, rd: RunDir, where: Any, label: str) -> dict[str, Any] | None:
    """``rd.read_routing(where)``, or None (with a note when it is unreadable).

    >>> read_routing(Doc(), RunDir("/nonexistent"), "/nonexistent/caa/base", "x") is None
    True
    """
    try:
        return rd.read_routing(where)
    except (OSError, ValueError) as err:
        doc.damage(_in_run(rd, f"{label}: routing.json unreadable ({type(err).__name__}: "
                               f"{err})."))
        return None


def best_layer_numbers(sweep: SweepResult) -> list[int]:
    """Each swept row's best layer, as a layer number (ties to the earlier layer).

    >>> import numpy as np
    >>> p = np.array([[0.0, 1.0], [2.0, 0.0]])[:, :, None] * np.array([-1.0, 1.0])
    >>> best_layer_numbers(SweepResult(p, [4, 8], [-1.0, 1.0], ["a", "b"], ["A", "B"]))
    [8, 4]
    """
    return [sweep.layers[i] for i in np.argmax(sweep.steerability, axis=1)]


# --------------------------------------------------------------------------- prompts, texts


def prompts_table(doc: Doc, sweep: SweepResult, examples: Sequence[SteeringExample],
                  routed: Mapping[str, int] | None = None, limit: int = MAX_PROMPTS) -> None:
    """The exact prompt texts (chat template included) with each presentation's matching
    letter, best layer, and (when given, per item) the routed layer.

    >>> sweep, examples = RunDir("runs/my-run").load_sweep("runs/my-run/caa/base")  # doctest: +SKIP
    >>> prompts_table(doc, sweep, examples, routed={"item-1": 12})  # doctest: +SKIP
    """
    best = best_layer_numbers(sweep)
    header = ["id", "matching letter", "best layer"] + (["routed layer"] if routed else [])
    rows = [[ex.id, ex.matching_letter, best[i],
             *([routed.get(ex.unit, "–")] if routed else []), _prompt_cell(ex.text)]
            for i, ex in enumerate(examples[:limit])]
    doc.table([*header, "prompt text"], rows, left={0, len(header)})
    if len(examples) > limit:
        doc.note(f"First {limit} of {len(examples)} prompts shown.")


def generations_section(doc: Doc, rd: RunDir, methods: Sequence[str]) -> None:
    """``generations.json`` of each method: prompt, unsteered, fixed layer N, routed layer M.

    >>> generations_section(doc, RunDir("runs/my-run"), ["caa", "l2s"])  # doctest: +SKIP
    """
    shown = False
    for method in methods:
        try:
            rows = rd.read_generations(method)
        except (OSError, ValueError, KeyError) as err:
            doc.damage(_in_run(rd, f"{method}/generations.json unreadable "
                                   f"({type(err).__name__}: {err})."))
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
    """``run.json``: the configuration and what the run derived from it (a configuration
    in parts is listed one setting a row, as ``part.name``).

    >>> doc = Doc()
    >>> metadata_section(doc, {"config": {"compute": {"model": "m"}}})
    >>> doc.parts[1], '<td class="l">compute.model</td><td class="l">m</td>' in doc.parts[2]
    ('<h3>Configuration</h3>', True)
    """
    doc.h(2, "Run metadata", "metadata")
    if not isinstance(run, Mapping):
        doc.note("No readable run.json.")
        return

    def value(v: Any) -> str:
        if isinstance(v, str) and Path(v).is_absolute():  # no local path in a shared page
            v = f"…/{Path(v).name}"
        text = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
        return text if len(text) <= 400 else text[:400] + f"… ({len(text)} characters)"

    def rows(block: Mapping[str, Any], nested: bool) -> list[list[str]]:
        return [row for k, v in block.items() for row in (
            [[f"{k}.{name}", value(x)] for name, x in v.items()]
            if nested and isinstance(v, Mapping) else [[k, value(v)]])]

    for key, title in (("config", "Configuration"), ("derived", "Derived")):
        block = run.get(key)
        if isinstance(block, Mapping) and block:
            doc.h(3, title)
            doc.table(["key", "value"], rows(block, key == "config"), left=2)
    rest = {k: v for k, v in run.items() if k not in ("config", "derived")}
    if rest:
        doc.table(["key", "value"], [[k, value(v)] for k, v in rest.items()], left=2)
