"""What a run evaluates on: the items (a dataset, or its predefined split), the train / test
split, and the formatted examples of each split (:class:`SplitExamples`).

Example:
    >>> items, test_items = load_items(EvalConfig(dataset="default"))  # doctest: +SKIP
    >>> exs = prepare_examples(model, items, EvalConfig(n_train=8, n_test=8))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformer_lens import HookedTransformer

from w2s_lens.data.datasets import load_dataset, load_predefined_split
from w2s_lens.data.examples import SteeringExample, fit_context
from w2s_lens.data.items import ABItem
from w2s_lens.data.prompts import PromptFormatter
from w2s_lens.data.samples import DEFAULT_DATASET_NAME
from w2s_lens.data.splits import balanced, train_test_split
from w2s_lens.evaluation.config import EvalConfig
from w2s_lens.evaluation.config_parts import ConfigError, DataConfig

__all__ = ["SplitExamples", "items_dataset", "load_items", "prepare_examples"]

log = logging.getLogger(__name__)


def load_items(config: EvalConfig) -> tuple[list[ABItem], list[ABItem] | None]:
    """The items of ``config.data.dataset``: ``(items, None)``, or ``(generate, test)`` when the
    data directory is in the CAA layout with both splits.

    Example:
        >>> items, test = load_items(EvalConfig(dataset="default"))  # doctest: +SKIP
    """
    name = config.data.dataset
    if name not in ("default", DEFAULT_DATASET_NAME) and not Path(name).is_file():
        split = load_predefined_split(name, config.data.data_dir)
        if split is not None:
            log.info("%s: using the CAA generate split for training and its test split for "
                     "testing", name)
            return split
    return load_dataset(name, data_dir=config.data.data_dir), None


@dataclass
class SplitExamples:
    """Formatted examples of one run.

    Attributes:
        vector_train: training contrast pairs in the letter format (both letter orders when
            ``both_orders``): the CAA vectors' and L2S's training data.
        sweep_train: training prompts swept for labels and the fixed layer, in the run's
            readout (both letter orders when mirrored).
        test: variant -> test prompts, in the run's readout (both orders when mirrored).
        prompt_format: the formatter's settings (recorded in bundles), or None for examples
            that do not come from a chat template (synthetic tasks).
        test_questions: the test items' questions as plain user messages (for generations).
    """

    vector_train: list[SteeringExample]
    sweep_train: list[SteeringExample]
    test: dict[str, list[SteeringExample]] = field(default_factory=dict)
    prompt_format: dict[str, Any] | None = None
    test_questions: list[str] = field(default_factory=list)


def prepare_examples(
    model: HookedTransformer,
    items: Sequence[ABItem],
    config: EvalConfig,
    test_items: Sequence[ABItem] | None = None,
) -> SplitExamples:
    """Split ``items`` (or take a predefined ``test_items`` split) and format them.

    Example:
        >>> exs = prepare_examples(model, items, EvalConfig(n_train=8, n_test=8))  # doctest: +SKIP
        >>> len(exs.sweep_train)  # 8 items in both letter orders  # doctest: +SKIP
        16
    """
    if model.tokenizer is None:
        raise ValueError("the model has no tokenizer; use evaluate_examples with your own "
                         "SteeringExamples")
    if test_items is None:
        train, test = train_test_split(items, config.data.train_fraction, config.data.seed)
    else:  # a predefined split: letter-balanced order, so a cap keeps the balance
        train = train_test_split(items, 1.0, config.data.seed)[0]
        test = train_test_split(test_items, 1.0, config.data.seed)[0]
    if config.data.n_train is not None:
        train = train[: config.data.n_train]
    if config.data.n_test is not None:
        test = test[: config.data.n_test]
    if not train or not test:
        raise ConfigError(f"the split left {len(train)} training and {len(test)} test items; "
                          "give more items or change train_fraction")
    fmt = PromptFormatter(model.tokenizer, system_prompt=config.data.system_prompt,
                          list_options=config.sweep.list_options)

    def shown(its: list[ABItem]) -> list[ABItem]:
        return balanced(its) if config.mirrored else its

    n_ctx = model.cfg.n_ctx

    def formatted(its: list[ABItem], variant: str, **kw: Any) -> list[SteeringExample]:
        # refused, naming the items, before any forward pass: nothing longer than the context
        return fit_context(fmt.format_many(its, variant, **kw), n_ctx)

    return SplitExamples(
        vector_train=formatted(balanced(train) if config.sweep.both_orders else train, "base"),
        sweep_train=formatted(shown(train), "base", readout=config.sweep.readout),
        test={v: formatted(shown(test), v, readout=config.sweep.readout)
              for v in config.data.variants},
        prompt_format=fmt.settings(),
        test_questions=[it.question for it in test],
    )


def items_dataset(config: EvalConfig, items: Sequence[ABItem]) -> EvalConfig:
    """``config`` naming the items' own dataset when ``config.data.dataset`` was left at its
    default and every item has the same ``dataset`` (else ``config`` unchanged), so a run on
    other items is not labelled ``"default"``. The built-in default dataset's items (what
    ``"default"`` names) keep the label, so earlier runs on them still resume.

    Example:
        >>> its = [ABItem(f"mine:{i}", "mine", "Q?", ("yes", "no"), "A") for i in range(2)]
        >>> items_dataset(EvalConfig(), its).data.dataset
        'mine'
        >>> items_dataset(EvalConfig(dataset="x"), its).data.dataset
        'x'
    """
    names = {it.dataset for it in items}
    if config.data.dataset != DataConfig.dataset or len(names) != 1 or \
            names == {DEFAULT_DATASET_NAME}:
        return config
    return config.replace(dataset=names.pop())
