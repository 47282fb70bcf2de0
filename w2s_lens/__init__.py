"""w2s-lens: where to steer, input by input, on TransformerLens models.

The most used entry points are importable from the package (loaded lazily, so
``import w2s_lens`` stays cheap)::

    from w2s_lens import load_model, load_dataset, PromptFormatter, train_caa, run_sweep

See README.md for the pipeline and the command line (``w2s-lens --help``).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

_EXPORTS = {
    "load_model": "w2s_lens.models.loading",
    "DEFAULT_MODEL": "w2s_lens.choices",
    "load_dataset": "w2s_lens.data.datasets",
    "load_default_dataset": "w2s_lens.data.samples",
    "load_predefined_split": "w2s_lens.data.datasets",
    "load_prompts": "w2s_lens.data.datasets",
    "deduplicate": "w2s_lens.data.splits",
    "train_test_split": "w2s_lens.data.splits",
    "balanced": "w2s_lens.data.splits",
    "PromptFormatter": "w2s_lens.data.prompts",
    "SteeringExample": "w2s_lens.data.examples",
    "SteeringVectors": "w2s_lens.steering.vectors",
    "InputVectors": "w2s_lens.steering.vectors",
    "train_caa": "w2s_lens.steering.vectors",
    "train_caa_from_pairs": "w2s_lens.steering.pairs",
    "L2SConfig": "w2s_lens.steering.l2s.config",
    "L2SSteerer": "w2s_lens.steering.l2s.steerer",
    "train_l2s": "w2s_lens.steering.l2s.steerer",
    "run_sweep": "w2s_lens.sweep.runner",
    "SweepResult": "w2s_lens.sweep.result",
    "LayerRouter": "w2s_lens.routing.routers",
    "EvalConfig": "w2s_lens.evaluation.config",
    "evaluate": "w2s_lens.evaluation.pipeline",
    "advise": "w2s_lens.evaluation.advice",
    "Advice": "w2s_lens.evaluation.advice",
    "EvaluationResult": "w2s_lens.evaluation.results.typed",
    "RunDir": "w2s_lens.evaluation.storage.rundir",
    "W2S": "w2s_lens.routing.bundle",
    "write_report": "w2s_lens.report.html",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'w2s_lens' has no attribute {name!r}")
