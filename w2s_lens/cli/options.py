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
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

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

__all__ = ["ADVISE_HIDDEN", "DESCRIPTIONS", "SUMMARIES", "OptionError", "add_data", "add_eval",
           "add_model", "hide_options", "scoring_from_args",
           "cap", "check_layer_options", "finite", "floats", "layers", "names", "positive",
           "threads", "unwritable", "usable_cores"]


class OptionError(ValueError):
    """A command-line option that parses but cannot work (checked before any model loads)."""

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
}
DESCRIPTIONS = {
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


def floats(text: str) -> list[float]:
    """Comma-separated numbers.

    Example:
        >>> floats("-1,0,1.5")
        [-1.0, 0.0, 1.5]
    """
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") \
            from exc
    if not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected finite numbers (no nan or inf), got {text!r}")
    return values


def finite(text: str) -> float:
    """One finite number (``nan`` and ``inf`` refused).

    Example:
        >>> finite("0.25")
        0.25
    """
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from exc
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number (no nan or inf), got {text!r}")
    return value


def positive(text: str) -> float:
    """One finite number above 0.

    Example:
        >>> positive("0.5")
        0.5
    """
    value = finite(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}")
    return value


def scoring_from_args(args: argparse.Namespace) -> str:
    """The cloze scoring a command line asks for: ``--scoring``, else ``mean`` with
    ``--length-norm``, else ``sum``; the two options must not disagree.

    Example:
        >>> scoring_from_args(argparse.Namespace(scoring=None, length_norm=True))
        'mean'
    """
    if args.length_norm and args.scoring not in (None, "mean"):
        raise OptionError(f"--length-norm means --scoring mean, not --scoring {args.scoring}")
    return args.scoring or ("mean" if args.length_norm else "sum")


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one).

    Example:
        >>> usable_cores() >= 1
        True
    """
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else max(1, os.cpu_count() or 1)


def threads(text: str) -> int:
    """A torch CPU thread count: 1 to the cores this process may use.

    Example:
        >>> threads("1")
        1
    """
    cores = usable_cores()
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= cores:
        raise argparse.ArgumentTypeError(
            f"expected 1..{cores} (the cores this process may use), got {text!r}; leave "
            f"--threads out to use all {cores}")
    return value


def layers(text: str) -> list[int] | None:
    """``"all"`` (None) or comma-separated layers, each once, sorted.

    Example:
        >>> layers("15,3"), layers("all")
        ([3, 15], None)
    """
    if text == "all":
        return None
    try:
        given = [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected 'all' or comma-separated layers, got "
                                         f"{text!r}") from exc
    if not given or min(given) < 0:
        raise argparse.ArgumentTypeError(f"layers must be non-negative integers, got {text!r}")
    twice = sorted({x for x in given if given.count(x) > 1})
    if twice:
        raise argparse.ArgumentTypeError(f"layer(s) {', '.join(map(str, twice))} given more than "
                                         f"once in {text!r}; name each layer once")
    return sorted(given)


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


def check_layer_options(model: str, n_layers: int | None,
                        options: dict[str, int | list[int] | None], at_least: int = 1) -> None:
    """Refuse layer options outside ``model``'s ``0..n_layers-1`` (``None`` values are the
    defaults and pass; ``n_layers=None``: not known yet, no range check), and a ``--layers``
    list shorter than ``at_least``.

    Raises:
        OptionError: naming the option, the value and the model's range.

    Example:
        >>> check_layer_options("m", 30, {"--layers": [3, 15], "--embedding-layer": None}, 2)
        >>> try:
        ...     check_layer_options("m", 30, {"--embedding-layer": 999})
        ... except OptionError as exc:
        ...     print(exc)
        --embedding-layer 999 is outside m's layers 0..29
    """
    for option, value in options.items():
        values = [value] if isinstance(value, int) else list(value or [])
        bad = [v for v in values if n_layers is not None and not 0 <= v < n_layers]
        if n_layers is not None and bad:
            shown = ",".join(map(str, bad))
            raise OptionError(f"{option} {shown} is outside {model}'s layers 0..{n_layers - 1}")
    chosen = options.get("--layers")
    if isinstance(chosen, list) and len(chosen) < at_least:
        raise OptionError(f"--layers {','.join(map(str, chosen))}: W2S chooses a layer per input "
                          f"and needs at least {at_least} layers to choose from")


def unwritable(path: str | os.PathLike, option: str = "--out") -> str | None:
    """Why files cannot be written at ``path`` (a directory, made if missing), else ``None``.

    Probes the deepest existing folder on the way with a temporary file (removed at once) and
    its free space, so a read-only, unwritable or full destination is named before any work.
    An existing non-directory ``path`` passes (the command says what is wrong with it).

    Example:
        >>> import tempfile
        >>> unwritable(tempfile.mkdtemp()) is None
        True
        >>> afile = tempfile.mkstemp()[1]
        >>> unwritable(afile + "/run") == f"--out {afile}/run: cannot create it, {afile} is a file"
        True
    """
    target = Path(path).expanduser().absolute()
    probe = target
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if probe == target and not target.is_dir():
        return None
    if not probe.is_dir():
        return f"{option} {path}: cannot create it, {probe} is a file"
    try:
        with tempfile.TemporaryFile(dir=probe) as f:
            f.write(b"w2s-lens")
            f.flush()
    except OSError as exc:
        return f"{option} {path}: cannot write in {probe} ({exc.strerror or exc})"
    if shutil.disk_usage(probe).free < 16 << 20:
        return f"{option} {path}: the disk holding {probe} is full (under 16 MiB free)"
    return None


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
    p.add_argument("--threads", type=threads, default=None,
                   help="torch CPU threads, 1 to the cores this process may use (default: all "
                        "of them; 1 is fastest on a machine other jobs keep busy)")


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
    :func:`w2s_lens.cli.commands.config_from_args`); ``variants``: the default ``--variants``.

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
                        "two options differ only (first)")
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
