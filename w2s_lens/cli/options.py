"""The option definitions of the ``w2s-lens`` command line: command texts and the shared
option groups (model, data, evaluation settings); their value parsers and checks are
:mod:`w2s_lens.cli.values`.

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
    EVAL_PARTS,
    METHODS,
    POSITIONS,
    READOUTS,
    ROUTER_INPUTS,
    ROUTER_KINDS,
    SCALES,
    SCORINGS,
    VARIANTS,
)
from w2s_lens.cli.values import cap, finite, floats, layers, names, positive, threads

__all__ = ["ADVISE_HIDDEN", "DESCRIPTIONS", "SUMMARIES", "add_data", "add_eval", "add_model",
           "hide_options"]


SUMMARIES = {
    "demo": "the main job on the embedded defaults: a positive control, then a real model",
    "check-model": "HookedTransformer vs transformers log-probabilities",
    "vectors": "CAA vectors from custom contrast pairs",
    "sweep": "CAA vectors + a layer × multiplier sweep of one split",
    "train-router": "fit a router on a training-split sweep",
    "evaluate": "the whole W2S comparison (CAA, L2S or both)",
    "generate": "unsteered / fixed-layer / routed continuations side by side",
    "report": "a self-contained HTML report of a run",
    "advise": "which layer to steer at, from one backward pass (no sweep); --verify checks it",
    "refit": "tune a finished run's routers again from its items.csv (no sweep)",
}
DESCRIPTIONS = {
    "refit": "Tune the routers of a finished evaluation again without sweeping: the "
             "steerabilities come from the run's items.csv, the routers' inputs from unsteered "
             "forward passes over its items (from --data-dir, formatted with the run's "
             "settings). First checks that refitting the primary router reproduces the stored "
             "numbers, then refits --routers (default: those tuned on an older grid) and "
             "rewrites results.json (recording the refit) and items.csv.",
    "demo": "The main job on the embedded defaults, in one run: first the synthetic positive "
            "control (a hand-built model whose input families are steerable only at their own "
            "layers: W2S must find them), then the embedded model on a dataset where it "
            "steers (corrigible-neutral-HHH from --data-dir or $W2S_DATA_DIR, downloaded when "
            "online, else the shipped 100-item corrigible-neutral-HHH sample): CAA vectors "
            "from 6 training items and a sweep of 10 test items at every layer unless "
            "--n-train/--n-test/--layers say otherwise, ending with an HTML report.",
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
    "advise": "Layer advice without a sweep. CAA vectors from the training split (or "
              "--vectors), then the first-order steerability (the derivative of the "
              "propensity at λ = 0, one forward and one backward pass for all layers) of every "
              "test item at every layer: per layer its mean with a 95% bootstrap interval over "
              "items, the recommended fixed layer (best mean), what choosing a layer per item "
              "could gain by this estimate (an in-sample upper bound) and each item's advised "
              "layer. --verify N sweeps N test items for real and prints how far the advice "
              "agrees (per-item Spearman across layers, best-layer agreement, the measured "
              "steerability of the advised layers). --out DIR writes advice.json, items.csv "
              "and advice.html (a plotly figure).",
}


#: ``--threads``' default, said in its help: every command but ``demo``
ALL_THREADS = ("all of them; 1 is fastest on a machine other jobs keep busy")
#: ``demo`` times one matrix product first (:func:`w2s_lens.demo.walkthrough.pick_threads`)
PICKED_THREADS = ("the faster of all of them and 1, timed on one matrix product before the "
                  "model loads")


def add_model(p: argparse.ArgumentParser, default: str | None = DEFAULT_MODEL,
              threads_default: str = ALL_THREADS) -> None:
    """``--model``, ``--device``, ``--dtype``, ``--threads`` (``threads_default``: what the
    help says a missing ``--threads`` means).

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
    p.add_argument("--threads", type=threads, default=None,
                   help="torch CPU threads, 1 to the cores this process may use (default: "
                        f"{threads_default})")


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


#: the add_eval options ``w2s-lens advise`` does not use (kept at their defaults, not listed)
ADVISE_HIDDEN = ("variants", "embedding", "embedding_layer", "routers", "router_inputs",
                 "cross_fit", "retest", "retest_items", "l2s_hidden", "l2s_epochs",
                 "l2s_weight_decay", "l2s_input_layer", "method")


def hide_options(p: argparse.ArgumentParser, dests: Sequence[str]) -> None:
    """Leave the options with these destinations out of ``--help`` (they still parse, at
    their defaults); a group left with none is not listed.

    Example:
        >>> p = argparse.ArgumentParser(); add_eval(p, ["base"]); hide_options(p, ["routers"])
        >>> "--routers" in p.format_help(), "--layers" in p.format_help()
        (False, True)
    """
    hidden = set(dests)
    for action in p._actions:  # argparse has no public way to hide an added option
        if action.dest in hidden:
            action.help = argparse.SUPPRESS


def _part_group(p: argparse.ArgumentParser, part: str) -> argparse._ArgumentGroup:
    """The option group of one part of the evaluation settings, titled by the part
    (:data:`~w2s_lens.choices.EVAL_PARTS`: ``EvalConfig.data``, ``.sweep``, ...).

    Example:
        >>> _part_group(argparse.ArgumentParser(), "sweep").title
        'sweep (EvalConfig.sweep)'
    """
    if part not in EVAL_PARTS:
        raise ValueError(f"{part!r} is not a part of EvalConfig {EVAL_PARTS}")
    return p.add_argument_group(f"{part} (EvalConfig.{part})")


def add_eval(p: argparse.ArgumentParser, variants: Sequence[str]) -> None:
    """The evaluation settings, one option group per part of
    :class:`~w2s_lens.evaluation.config.EvalConfig` (data, sweep, routing, statistics, l2s,
    compute; ``--dataset``, ``--data-dir`` and the model options come from :func:`add_data`
    and :func:`add_model`), each option one setting (see
    :func:`w2s_lens.cli.settings.config_from_args`); ``variants``: the default ``--variants``.

    Example:
        >>> p = argparse.ArgumentParser(); add_eval(p, ["base"])
        >>> p.parse_args(["--routers", "mlp,logreg"]).routers
        ['mlp', 'logreg']
    """
    g = _part_group(p, "data")
    g.add_argument("--n-train", type=int, default=None, help="cap on training items")
    g.add_argument("--n-test", type=int, default=None, help="cap on test items")
    g.add_argument("--seed", type=int, default=0, help="split seed (default: %(default)s)")
    g.add_argument("--train-fraction", type=finite, default=0.5,
                   help="share of the items used for training (default: %(default)s)")
    g.add_argument("--variants", type=names, default=list(variants),
                   help=f"comma-separated test variants, from {','.join(VARIANTS)} "
                        f"(default: {','.join(variants)})")
    g.add_argument("--system-prompt", default=DEFAULT_SYSTEM_PROMPT,
                   help="the base system prompt (default: %(default)r)")
    g = _part_group(p, "sweep")
    g.add_argument("--method", choices=METHODS, default="caa",
                   help="caa: one vector per layer; l2s: a vector per input; both "
                        "(default: %(default)s)")
    g.add_argument("--vectors", default=None,
                   help="use these CAA vectors (a directory from `w2s-lens vectors` or "
                        "`sweep`) instead of training them")
    g.add_argument("--single-order", action="store_true",
                   help="train vectors on one letter order only (the paper's setup; risks an "
                        "A-vs-B artifact)")
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
    g.add_argument("--scoring", choices=SCORINGS, default=None,
                   help="cloze readout: an option's summed log-probability (sum, the "
                        "default), its mean per token (mean), or the first token at which the "
                        "two options differ only (first: the readout recommended for asking "
                        "whether the per-input layer is a property of the input; see "
                        "docs/methodology.md)")
    g.add_argument("--length-norm", action="store_true",
                   help="cloze readout: the same as --scoring mean")
    g.add_argument("--list-options", action="store_true",
                   help="cloze readout: list both option texts (no letters) under the "
                        "question, so the prompt holds what the readout scores")
    g.add_argument("--engine", choices=ENGINES, default="fast",
                   help="fast, or naive (a full forward pass per run; the reference)")
    g.add_argument("--positions", choices=POSITIONS, default="from_last",
                   help="where to add the vector: from the last prompt token on "
                        "(from_last), at every token (all), or on the prompt only (prompt: "
                        "the scored continuation is reached through attention only)")
    g.add_argument("--scale", choices=SCALES, default="raw",
                   help="multiplier scale: raw (the paper's) or relative to the residual norm")
    g.add_argument("--fraction", type=positive, default=0.25,
                   help="--scale relative: share of the residual norm that λ=1 adds")
    g = _part_group(p, "routing")
    g.add_argument("--embedding", choices=EMBEDDINGS, default="resid-last",
                   help="router input (default: %(default)s)")
    g.add_argument("--embedding-layer", type=int, default=None,
                   help="residual layer of the embedding (default: the middle layer)")
    g.add_argument("--routers", type=names, default=list(ROUTER_KINDS),
                   help="comma-separated router kinds; the first is the primary one")
    g.add_argument("--router-inputs", type=names, default=["question"],
                   help="comma-separated views a router is fitted on, from "
                        f"{','.join(ROUTER_INPUTS)}: the unanswered prompt (question), the "
                        "options read as its continuation (options), both, or a MiniLM "
                        "embedding of question and options (default: question)")
    g = _part_group(p, "statistics")
    g.add_argument("--cross-fit", type=int, default=5,
                   help="folds: each training item is swept with vectors fitted without it "
                        "(0: in-sample; default: %(default)s)")
    g.add_argument("--retest", action=argparse.BooleanOptionalAction, default=True,
                   help="headroom retest: sweep the base test items again with vectors from "
                        "two disjoint halves of the training items (best-layer agreement, "
                        "cross-validated oracle; default: on)")
    g.add_argument("--retest-items", type=cap, default=64,
                   help="cap on the base test items the retest sweeps, or 'all'; the retest "
                        "costs two extra test sweeps of this many items (default: %(default)s)")
    g.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples")
    g = _part_group(p, "l2s")
    g.add_argument("--l2s-hidden", type=int, default=256, help="MLP hidden width")
    g.add_argument("--l2s-epochs", type=int, default=300, help="maximum training epochs")
    g.add_argument("--l2s-weight-decay", type=finite, default=1e-2, help="AdamW weight decay")
    g.add_argument("--l2s-input-layer", type=int, default=None,
                   help="layer of the input representation (default: the middle layer)")
    g = _part_group(p, "compute")
    g.add_argument("--batch-size", type=int, default=8, help="prompts per caching pass")
    g.add_argument("--chunk-size", type=int, default=8, help="inputs per resumable sweep chunk")
    g.add_argument("--max-rows", type=int, default=None,
                   help="fast engine: batch the steered rows of several inputs, up to this "
                        "many (default: one input at a time)")
