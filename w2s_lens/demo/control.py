"""The demo's first stage: the synthetic positive control through the unchanged pipeline,
and its reading (the constructed layers against those found; W2S against the fixed layer)."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass

from w2s_lens.demo.reading import layer_counts
from w2s_lens.evaluation.config import EvalConfig
from w2s_lens.evaluation.pipeline import evaluate_examples
from w2s_lens.evaluation.results.typed import EvaluationResult
from w2s_lens.evaluation.split import SplitExamples
from w2s_lens.report.tables.summary import fmt_ci

__all__ = ["ControlRun", "control_lines", "run_control"]


@dataclass(frozen=True)
class ControlRun:
    """The positive control's run (:func:`run_control`).

    Attributes:
        result: what the unchanged pipeline returned (written to ``results.json`` when the
            control ran into a directory).
        constructed_layers: each input family's built-in layer, in family order.
    """

    result: EvaluationResult
    constructed_layers: tuple[int, ...]


def run_control(out_dir: str | os.PathLike | None = None, seed: int = 0) -> ControlRun:
    """The synthetic positive control through the unchanged pipeline (a few seconds): its
    typed result and the layers the control was built with (:class:`ControlRun`).

    Example:
        >>> run = run_control()  # doctest: +SKIP
        >>> run.result.comparison().verdict, run.constructed_layers  # doctest: +SKIP
        ('W2S beats fixed beyond the noise', (1, 2, 3))
    """
    from w2s_lens.controls.synthetic import build_control

    control = build_control("positive", seed=seed)
    train = control.make_examples(36, seed=seed + 1, both_orders=True)
    test = control.make_examples(36, seed=seed + 2, both_orders=True)
    cfg = EvalConfig(dataset="synthetic-positive", variants=("base",), routers=("logreg",),
                     layers=tuple(sorted(set(range(1, control.n_layers)))), n_boot=2000,
                     seed=seed)
    result = evaluate_examples(control.model, SplitExamples(train, train, {"base": test}), cfg,
                               out_dir, progress=False)
    return ControlRun(result, tuple(int(x) for x in control.family_layers))


def _signed(x: float | None) -> str:
    return "–" if x is None else f"{x:+.3f}"


def control_lines(run: ControlRun) -> list[str]:
    """The control's reading, from its typed result: the constructed layers against the
    layers found (each training item's best layer), and W2S against the fixed layer.

    Example:
        >>> print("\\n".join(control_lines(run_control())))  # doctest: +SKIP
    """
    r = run.result
    m = r.methods["caa"]
    v = m.variants["base"]
    c = r.comparison("caa")
    found = Counter({int(k): int(n) for k, n in (m.train_best_layer_counts or {}).items()})
    fixed = v.fixed.steerability if v.fixed else None
    oracle = v.oracle.steerability if v.oracle else None
    return [
        f"built: each input family steerable only at its own layer, layers "
        f"{sorted(set(run.constructed_layers))}; found (best layer per training "
        f"item): {layer_counts(found.elements())}",
        f"steerability on {v.n} test items: fixed layer {v.fixed_layer} "
        f"{_signed(fixed)}, W2S ({r.primary_router} router) {_signed(c.steerability)}, oracle "
        f"{_signed(oracle)}",
        f"W2S − fixed: {fmt_ci(c.diff, c.diff_ci)}: {c.verdict_text()}",
    ]
