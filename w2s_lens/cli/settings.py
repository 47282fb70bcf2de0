"""From a parsed ``w2s-lens`` command line to checked settings, before any model loads.

:func:`config_from_args` builds the :class:`~w2s_lens.evaluation.config.EvalConfig` the
options ask for; :func:`preflight` checks what can be checked without loading the model: a
writable ``--out`` and cache, layer options inside the model's range (its shape read from the
cache, :func:`model_shape`), at least two layers for W2S, and a dataset large enough to split.
Each check raises :class:`~w2s_lens.cli.values.OptionError` naming the option and the value.

Example:
    >>> from w2s_lens.cli.commands import build_parser
    >>> cfg = config_from_args(build_parser().parse_args(["evaluate", "--out", "o",
    ...                                                   "--readout", "cloze"]))
    >>> cfg.sweep.readout, cfg.sweep.scoring
    ('cloze', 'sum')
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from w2s_lens.cli.values import (
    OptionError,
    check_layer_options,
    scoring_from_args,
    unwritable,
)

__all__ = ["config_from_args", "model_shape", "preflight"]

log = logging.getLogger("w2s_lens.cli")


def config_from_args(args: argparse.Namespace):
    """The :class:`~w2s_lens.evaluation.config.EvalConfig` a parsed command line asks for
    (the options of :func:`~w2s_lens.cli.options.add_model`, ``add_data`` and ``add_eval``;
    ``tests/cli/test_settings.py`` checks that they set every setting, at its default)."""
    from w2s_lens.evaluation.config import EvalConfig
    from w2s_lens.evaluation.config_parts import (
        ComputeConfig,
        DataConfig,
        RoutingConfig,
        StatisticsConfig,
        SweepConfig,
    )
    from w2s_lens.steering.l2s.config import L2SConfig

    return EvalConfig(
        data=DataConfig(
            dataset=args.dataset, data_dir=args.data_dir, variants=tuple(args.variants),
            n_train=args.n_train, n_test=args.n_test, train_fraction=args.train_fraction,
            seed=args.seed, system_prompt=args.system_prompt),
        sweep=SweepConfig(
            method=args.method, vectors=args.vectors, both_orders=not args.single_order,
            layers=None if args.layers is None else tuple(args.layers),
            multipliers=tuple(args.multipliers), readout=args.readout, mirror=args.mirror,
            scoring=scoring_from_args(args), list_options=args.list_options,
            engine=args.engine, positions=args.positions, scale=args.scale,
            fraction=args.fraction),
        routing=RoutingConfig(
            embedding=args.embedding, embedding_layer=args.embedding_layer,
            routers=tuple(args.routers), router_inputs=tuple(args.router_inputs),
            primary_router=(args.routers or ["logreg"])[0]),
        statistics=StatisticsConfig(
            cross_fit=args.cross_fit, retest=args.retest, retest_max_items=args.retest_items,
            n_boot=args.n_boot),
        l2s=L2SConfig(input_layer=args.l2s_input_layer, hidden=args.l2s_hidden,
                      epochs=args.l2s_epochs, weight_decay=args.l2s_weight_decay,
                      seed=args.seed),
        compute=ComputeConfig(
            model=args.model, device=args.device, dtype=args.dtype,
            batch_size=args.batch_size, chunk_size=args.chunk_size, max_rows=args.max_rows))


def model_shape(name: str | None) -> tuple[int, int] | None:
    """``(n_layers, n_ctx)`` of model ``name`` without loading weights: from its converted
    copy in the w2s-lens cache (embedded models) or its ``config.json`` in the Hugging Face
    cache; ``None`` when neither is there yet (the first run converts or downloads it).

    Example:
        >>> model_shape("smollm2-135m-instruct")  # doctest: +SKIP
        (30, 8192)
    """
    from w2s_lens.choices import DEFAULT_MODEL
    from w2s_lens.models.registry import EMBEDDED_MODELS, model_cache_dir

    name = name or DEFAULT_MODEL
    try:
        if name in EMBEDDED_MODELS:
            cfg = json.loads((model_cache_dir(name) / "cfg.json").read_text())["cfg"]
            return int(cfg["n_layers"]), int(cfg["n_ctx"])
        from huggingface_hub import try_to_load_from_cache

        path = try_to_load_from_cache(name, "config.json")
        if not isinstance(path, str):
            return None
        cfg = json.loads(Path(path).read_text())
        n = cfg.get("num_hidden_layers", cfg.get("n_layer"))
        ctx = cfg.get("max_position_embeddings", cfg.get("n_positions", 0))
        return (int(n), int(ctx)) if n else None
    except (OSError, ValueError, KeyError, TypeError, ImportError):
        return None


def _check_items(args: argparse.Namespace) -> None:
    """Refuse a dataset too small to split, naming it, before the model loads."""
    import warnings

    from w2s_lens.cli.jobs import load_items
    from w2s_lens.data.items import DatasetWarning
    from w2s_lens.data.splits import deduplicate

    with warnings.catch_warnings():  # the job loads the items again and warns then
        warnings.simplefilter("ignore", DatasetWarning)
        items, test = load_items(config_from_args(args))
        n = len(deduplicate(items, warn=False))
    if test is None and n < 2:
        raise OptionError(f"--dataset {args.dataset}: {n} distinct item(s); a train/test split "
                          "needs at least 2")


def preflight(args: argparse.Namespace) -> None:
    """What can be checked before any model loads: a writable ``--out``, a writable cache
    when the model still has to be converted, layer options inside the model's range (when
    its shape is known without loading it; :func:`model_shape`), at least two layers for W2S,
    enough items to split, and a warning for float16 on a CPU.

    Raises:
        OptionError: naming the option, the value and what would go wrong.

    Example:
        >>> from w2s_lens.cli.commands import build_parser
        >>> preflight(build_parser().parse_args(["evaluate", "--out", "o", "--layers", "8"]))
        Traceback (most recent call last):
        w2s_lens.cli.values.OptionError: --layers 8: W2S chooses a layer per input and needs...
    """
    if getattr(args, "dtype", None) == "float16" and (args.device == "cpu" or (
            args.device == "auto" and not __import__("torch").cuda.is_available())):
        log.warning("--dtype float16 on a CPU: half-precision matrix products are emulated "
                    "there and run several times slower than float32; use --dtype float32")
    out = getattr(args, "out", None)
    if out is not None and args.command != "report":
        problem = unwritable(out)
        if problem:
            raise OptionError(problem)
    model = getattr(args, "model", None)
    if args.command == "train-router":
        from w2s_lens.evaluation.config import flat_config

        try:
            run = json.loads((Path(args.sweep) / "run.json").read_text())
            model = run.get("derived", {}).get("model") or flat_config(run["config"])["model"]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            model = None  # the job says what is wrong with the sweep
    if model is not None and args.command in ("demo", "evaluate", "sweep", "vectors", "advise"):
        _check_cache(model)
    shape = model_shape(model) if model else None
    options = {k: getattr(args, k.lstrip("-").replace("-", "_"), None)
               for k in ("--layers", "--embedding-layer", "--l2s-input-layer")}
    router = args.command in ("demo", "evaluate") or getattr(args, "split", None) == "train"
    check_layer_options(model or "the model", shape[0] if shape else None,
                        {k: v for k, v in options.items() if v is not None},
                        at_least=2 if router else 1)
    if args.command in ("evaluate", "sweep", "advise"):
        _check_items(args)


def _check_cache(model: str) -> None:
    from w2s_lens.models.registry import EMBEDDED_MODELS

    if model not in EMBEDDED_MODELS:
        return
    from w2s_lens.assets import cache_dir

    try:
        root = cache_dir()
    except OSError as exc:
        raise OptionError(f"the w2s-lens cache {exc.filename}: cannot create it "
                          f"({exc.strerror}); set $W2S_CACHE_DIR to a writable folder") from exc
    if not (root / "models" / model / "cfg.json").is_file():
        problem = unwritable(root, "the w2s-lens cache")
        if problem:
            raise OptionError(f"{problem}; {model} must be converted there first (set "
                              "$W2S_CACHE_DIR to a writable folder)")
