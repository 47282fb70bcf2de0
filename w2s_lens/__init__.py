"""w2s-lens: where to steer, input by input, on TransformerLens models.

The most used entry points are importable from the package (loaded lazily, so
``import w2s_lens`` stays cheap)::

    from w2s_lens import load_model, load_dataset, PromptFormatter, train_caa, run_sweep

See README.md for the pipeline and the command line (``w2s-lens --help``).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "load_model": "w2s_lens.models",
    "DEFAULT_MODEL": "w2s_lens.choices",
    "load_dataset": "w2s_lens.datasets",
    "load_default_dataset": "w2s_lens.datasets",
    "load_predefined_split": "w2s_lens.datasets",
    "load_prompts": "w2s_lens.datasets",
    "deduplicate": "w2s_lens.datasets",
    "train_test_split": "w2s_lens.datasets",
    "balanced": "w2s_lens.datasets",
    "PromptFormatter": "w2s_lens.prompts",
    "SteeringExample": "w2s_lens.examples",
    "SteeringVectors": "w2s_lens.vectors",
    "InputVectors": "w2s_lens.vectors",
    "train_caa": "w2s_lens.vectors",
    "train_caa_from_pairs": "w2s_lens.pairs",
    "L2SConfig": "w2s_lens.l2s",
    "L2SSteerer": "w2s_lens.l2s",
    "train_l2s": "w2s_lens.l2s",
    "run_sweep": "w2s_lens.sweep",
    "SweepResult": "w2s_lens.sweep",
    "LayerRouter": "w2s_lens.router",
    "EvalConfig": "w2s_lens.config",
    "evaluate": "w2s_lens.evaluation",
    "RunDir": "w2s_lens.rundir",
    "W2S": "w2s_lens.w2s",
    "write_report": "w2s_lens.report",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'w2s_lens' has no attribute {name!r}")
