"""The option definitions of the ``w2s-lens`` command line: command texts, value parsers and
the shared option groups (model, data, evaluation settings).

Imports only :mod:`w2s_lens.choices` and the standard library, so ``w2s-lens --help`` stays
instant; :mod:`w2s_lens.cli` builds the parser from these pieces.

Example:
    >>> import argparse
    >>> p = argparse.ArgumentParser()
    >>> add_eval(p, ["base"])
    >>> p.parse_args(["--layers", "3,1", "--multipliers=-1,1"]).layers
    [1, 3]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from w2s_lens.choices import (
    DEFAULT_MODEL,
    DEFAULT_MULTIPLIERS,
    DEFAULT_SYSTEM_PROMPT,
    DTYPES,
    EMBEDDINGS,
    ENGINES,
    METHODS,
    POSITIONS,
    READOUTS,
    ROUTER_KINDS,
    SCALES,
    VARIANTS,
)

__all__ = ["DESCRIPTIONS", "SUMMARIES", "add_data", "add_eval", "add_model", "cap", "floats",
           "layers", "names"]

SUMMARIES = {
    "demo": "the main job on the embedded defaults: a positive control, then a real model",
    "check-model": "HookedTransformer vs transformers log-probabilities",
    "vectors": "CAA vectors from custom contrast pairs",
    "sweep": "CAA vectors + a layer × multiplier sweep of one split",
    "train-router": "fit a router on a training-split sweep",
    "evaluate": "the whole W2S comparison (CAA, L2S or both)",
    "generate": "unsteered / fixed-layer / routed continuations side by side",
    "report": "a self-contained HTML report of a run",
}
DESCRIPTIONS = {
    "demo": "The main job on the embedded defaults, in one run: first the synthetic positive "
            "control (a hand-built model whose input families are steerable only at their own "
            "layers: W2S must find them), then the embedded model on a dataset where it "
            "steers (corrigible-neutral-HHH from --data-dir or $W2S_DATA_DIR, downloaded when "
            "online, else the shipped 100-item corrigible-neutral-HHH sample; 24 + 24 items "
            "on a layer grid unless --n-train/--n-test/--layers say otherwise), ending with an "
            "HTML report.",
    "check-model": "Compare the HookedTransformer with the dequantized transformers model of "
                   "an embedded model: prints the largest next-token log-probability "
                   "difference and fails above --tolerance.",
    "vectors": "Build CAA steering vectors from a JSONL file of custom contrast pairs "
               "({\"positive\": ..., \"negative\": ..., \"read_position\": -1}); the sweep "
               "and evaluate commands take them with --vectors.",
    "sweep": "Train CAA vectors on the training split (or take --vectors) and steer every "
             "input of one split at every layer with every multiplier, recording propensities "
             "and steerability slopes in a sweep directory (resumable).",
    "train-router": "Fit a layer router on a training-split sweep directory and save a W2S "
                    "bundle that `generate` can use.",
    "evaluate": "The whole W2S comparison for one dataset: vectors, cross-fitted training "
                "sweep, routers, test sweeps for every variant, and fixed vs W2S vs oracle with "
                "bootstrap intervals, for CAA, L2S or both; then whether there is a per-input "
                "layer to learn (retest agreement, cross-validated oracle, learning curve).",
    "generate": "Greedy continuations of a prompt (or the first N of a dataset), unsteered, "
                "at the bundle's fixed layer and at the routed layer, side by side.",
    "report": "Write a self-contained HTML report (figures, tables, verdicts) for a run or "
              "sweep directory.",
}


def floats(text: str) -> list[float]:
    """Comma-separated numbers.

    Example:
        >>> floats("-1,0,1.5")
        [-1.0, 0.0, 1.5]
    """
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") \
            from exc


def layers(text: str) -> list[int] | None:
    """``"all"`` (None) or comma-separated layers, sorted and deduplicated.

    Example:
        >>> layers("15,3,3"), layers("all")
        ([3, 15], None)
    """
    if text == "all":
        return None
    try:
        layers = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected 'all' or comma-separated layers, got "
                                         f"{text!r}") from exc
    if not layers or layers[0] < 0:
        raise argparse.ArgumentTypeError(f"layers must be non-negative integers, got {text!r}")
    return layers


def cap(text: str) -> int | None:
    """A positive count, or ``"all"`` (None: no cap).

    Example:
        >>> cap("64"), cap("all")
        (64, None)
    """
    if text == "all":
        return None
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a positive count or 'all', got {text!r}") \
            from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive count or 'all', got {text!r}")
    return value


def names(text: str) -> list[str]:
    """Comma-separated names.

    Example:
        >>> names("logreg, mlp,")
        ['logreg', 'mlp']
    """
    return [x.strip() for x in text.split(",") if x.strip()]


def add_model(p: argparse.ArgumentParser, default: str | None = DEFAULT_MODEL) -> None:
    """``--model``, ``--device``, ``--dtype``, ``--threads``.

    Example:
        >>> p = argparse.ArgumentParser(); add_model(p)
        >>> p.parse_args(["--dtype", "bfloat16"]).dtype
        'bfloat16'
    """
    p.add_argument("--model", default=default,
                   help="embedded model name or a Hugging Face model id (default: "
                        f"{default or 'the bundle or sweep model'})")
    p.add_argument("--device", default="auto",
                   help="auto (CUDA when present), cpu, cuda or cuda:N (default: %(default)s)")
    p.add_argument("--dtype", choices=DTYPES, default="float32",
                   help="model precision; readouts are float32 whatever it is "
                        "(default: %(default)s)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: every core this process may use; 1 is "
                        "fastest on a machine other jobs keep busy)")


def add_data(p: argparse.ArgumentParser, default: str = "default") -> None:
    """``--dataset`` and ``--data-dir``.

    Example:
        >>> p = argparse.ArgumentParser(); add_data(p)
        >>> p.parse_args([]).dataset
        'default'
    """
    p.add_argument("--dataset", default=default,
                   help="dataset name (e.g. corrigible-neutral-HHH), a .jsonl/.json file "
                        "(anthropics/evals or CAA layout), or 'default' for the embedded "
                        "sycophancy set (default: %(default)s)")
    p.add_argument("--data-dir", default=None,
                   help="folder in the anthropics/evals or CAA layout (default: $W2S_DATA_DIR)")


def add_eval(p: argparse.ArgumentParser, variants: Sequence[str]) -> None:
    """The evaluation settings (split, steering, routing and statistics, L2S, compute), each
    option one :class:`~w2s_lens.evaluation.config.EvalConfig` field (see
    :func:`w2s_lens.cli.config_from_args`); ``variants``: the default ``--variants``.

    Example:
        >>> p = argparse.ArgumentParser(); add_eval(p, ["base"])
        >>> p.parse_args(["--routers", "mlp,logreg"]).routers
        ['mlp', 'logreg']
    """
    g = p.add_argument_group("split")
    g.add_argument("--n-train", type=int, default=None, help="cap on training items")
    g.add_argument("--n-test", type=int, default=None, help="cap on test items")
    g.add_argument("--seed", type=int, default=0, help="split seed (default: %(default)s)")
    g.add_argument("--train-fraction", type=float, default=0.5,
                   help="share of the items used for training (default: %(default)s)")
    g = p.add_argument_group("steering")
    g.add_argument("--method", choices=METHODS, default="caa",
                   help="caa: one vector per layer; l2s: a vector per input; both "
                        "(default: %(default)s)")
    g.add_argument("--layers", type=layers, default=None,
                   help="'all' or comma-separated layers (default: every layer but 0)")
    g.add_argument("--multipliers", type=floats, default=list(DEFAULT_MULTIPLIERS),
                   help="comma-separated λ values (default: -1.5,-1,-0.5,0,0.5,1,1.5); write "
                        "--multipliers=-1,0,1 so the leading minus is not read as an option")
    g.add_argument("--readout", choices=READOUTS, default="letter",
                   help="letter: A/B logit difference; cloze: option texts scored without "
                        "letters (default: %(default)s)")
    g.add_argument("--mirror", action=argparse.BooleanOptionalAction, default=True,
                   help="letter readout: average both letter orders of every item "
                        "(default: on)")
    g.add_argument("--length-norm", action="store_true",
                   help="cloze readout: divide each option's log-probability by its length")
    g.add_argument("--engine", choices=ENGINES, default="fast",
                   help="fast, or naive (a full forward pass per run; the reference)")
    g.add_argument("--positions", choices=POSITIONS, default="from_last",
                   help="steer from the last prompt token on, or at all tokens")
    g.add_argument("--scale", choices=SCALES, default="raw",
                   help="multiplier scale: raw (the paper's) or relative to the residual norm")
    g.add_argument("--fraction", type=float, default=0.25,
                   help="--scale relative: share of the residual norm that λ=1 adds")
    g.add_argument("--single-order", action="store_true",
                   help="train vectors on one letter order only (the paper's setup; risks an "
                        "A-vs-B artifact)")
    g.add_argument("--vectors", default=None,
                   help="use these CAA vectors (a directory from `w2s-lens vectors` or "
                        "`sweep`) instead of training them")
    g.add_argument("--system-prompt", default=DEFAULT_SYSTEM_PROMPT,
                   help="the base system prompt (default: %(default)r)")
    g = p.add_argument_group("routing and statistics")
    g.add_argument("--variants", type=names, default=list(variants),
                   help=f"comma-separated test variants, from {','.join(VARIANTS)} "
                        f"(default: {','.join(variants)})")
    g.add_argument("--embedding", choices=EMBEDDINGS, default="resid-last",
                   help="router input (default: %(default)s)")
    g.add_argument("--embedding-layer", type=int, default=None,
                   help="residual layer of the embedding (default: the middle layer)")
    g.add_argument("--routers", type=names, default=list(ROUTER_KINDS),
                   help="comma-separated router kinds; the first is the primary one")
    g.add_argument("--cross-fit", type=int, default=5,
                   help="folds: each training item is swept with vectors fitted without it "
                        "(0: in-sample; default: %(default)s)")
    g.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples")
    g.add_argument("--retest", action=argparse.BooleanOptionalAction, default=True,
                   help="headroom retest: sweep the base test items again with vectors from "
                        "two disjoint halves of the training items (best-layer agreement, "
                        "cross-validated oracle; default: on)")
    g.add_argument("--retest-items", type=cap, default=64,
                   help="cap on the base test items the retest sweeps, or 'all'; the retest "
                        "costs two extra test sweeps of this many items (default: %(default)s)")
    g = p.add_argument_group("L2S")
    g.add_argument("--l2s-hidden", type=int, default=256, help="MLP hidden width")
    g.add_argument("--l2s-epochs", type=int, default=300, help="maximum training epochs")
    g.add_argument("--l2s-weight-decay", type=float, default=1e-2, help="AdamW weight decay")
    g.add_argument("--l2s-input-layer", type=int, default=None,
                   help="layer of the input representation (default: the middle layer)")
    g = p.add_argument_group("compute")
    g.add_argument("--batch-size", type=int, default=8, help="prompts per caching pass")
    g.add_argument("--chunk-size", type=int, default=8, help="inputs per resumable sweep chunk")
    g.add_argument("--max-rows", type=int, default=None,
                   help="fast engine: batch the steered rows of several inputs, up to this "
                        "many (default: one input at a time)")
