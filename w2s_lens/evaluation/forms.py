"""The form of a cloze item's two answers: a label the form-oracle diagnostic groups by.

The cloze readout scores option texts, so a steering vector can win by pushing a *form* of
answer rather than the behaviour: "the longer option", or "the option that says Yes". Each test
item gets one label from its two continuations (matching, non-matching):

``match-yes`` / ``match-no``
    both answers are Yes/No (case-, space- and trailing-period-insensitive, decoded with the
    model's tokenizer) and the matching one says Yes / No;
``match-longer`` / ``match-shorter`` / ``same-length``
    otherwise (or without a tokenizer): whether the matching answer has more tokens.

:func:`w2s_lens.evaluation.stats.metrics.evaluate_variant` takes these labels as ``form_groups``:
a per-form oracle layer that beats the fixed layer says the effect is a form, not the behaviour.

Example:
    >>> from w2s_lens.data.examples import SteeringExample
    >>> ex = SteeringExample("d:0", "t", (1, 2), matching_continuation=(5, 6),
    ...                      non_matching_continuation=(7,))
    >>> answer_form(ex)
    'match-longer'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from w2s_lens.data.examples import SteeringExample

__all__ = ["FORMS", "answer_form", "row_forms"]

#: every label :func:`answer_form` gives
FORMS = ("match-yes", "match-no", "match-longer", "match-shorter", "same-length")


def _yes_no(text: str) -> str | None:
    word = text.strip().casefold().rstrip(".").strip()
    return word if word in ("yes", "no") else None


def answer_form(example: SteeringExample, tokenizer: Any = None) -> str:
    """The form label of one cloze example's answers (see the module docstring).

    Args:
        example: a cloze example (a letter example's answers are one token each:
            ``same-length``, or Yes/No when its answer tokens decode so).
        tokenizer: anything with ``decode(list[int]) -> str`` (the model's tokenizer), or
            None: length labels only.

    Example:
        >>> class Words:  # a stand-in tokenizer: token ids → words
        ...     def decode(self, ids):
        ...         return " ".join({1: "Yes", 2: "no.", 3: "maybe"}[i] for i in ids)
        >>> yes = SteeringExample("d:1", "t", (9,), matching_continuation=(1,),
        ...                       non_matching_continuation=(2,))
        >>> answer_form(yes, Words()), answer_form(yes)
        ('match-yes', 'same-length')
        >>> other = SteeringExample("d:2", "t", (9,), matching_continuation=(3,),
        ...                         non_matching_continuation=(1, 3))
        >>> answer_form(other, Words())
        'match-shorter'
    """
    match, other = example.continuations
    if tokenizer is not None:
        a, b = (_yes_no(tokenizer.decode(list(c))) for c in (match, other))
        if a is not None and b is not None and a != b:
            return f"match-{a}"
    if len(match) == len(other):
        return "same-length"
    return "match-longer" if len(match) > len(other) else "match-shorter"


def row_forms(examples: Sequence[SteeringExample], units: Sequence[str],
              tokenizer: Any = None) -> list[str]:
    """One :func:`answer_form` label per scored row (``units``: the rows' items, e.g.
    ``SweepResult.units``), from each item's first presentation in ``examples``.

    Raises:
        KeyError: a row's item has no example (naming it).

    Example:
        >>> ex = SteeringExample("d:0", "t", (1,), matching_continuation=(5,),
        ...                      non_matching_continuation=(7, 8))
        >>> row_forms([ex], ["d:0"])
        ['match-shorter']
    """
    first: dict[str, SteeringExample] = {}
    for ex in examples:
        first.setdefault(ex.unit, ex)
    missing = [u for u in units if u not in first]
    if missing:
        raise KeyError(f"no example for the scored items {missing[:5]}")
    return [answer_form(first[u], tokenizer) for u in units]
