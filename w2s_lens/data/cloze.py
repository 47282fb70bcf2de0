"""The cloze readout: the option texts as continuations of a prompt without its choices.

The prompt is the question without its ``Choices:`` block (:func:`cloze_question`), the
assistant turn opened. Each option is joined to the prompt the way the chat template expects
an answer to start (:func:`cloze_separator`): right after a prompt that ends in whitespace
(ChatML's ``"<|im_start|>assistant\\n"``: nothing added), after one space otherwise
(``"[INST] ... [/INST]"`` templates such as Llama-2-Chat and Mistral, where the answer is
written as ``" Yes"``). Its tokens are ``tokenize(prompt + separator + option)`` minus
``tokenize(prompt)`` (:func:`cloze_continuations`).

With ``list_options`` the user message shows the two options after the stem, without letters
(a blank line, then ``"- "`` and each option on its own line, in the item's A/B order), so
the prompt contains the texts the readout scores; the scored continuations are the same.

Example:
    >>> cloze_separator("<|im_start|>assistant\\n"), cloze_separator("[INST] Hi? [/INST]")
    ('', ' ')
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from w2s_lens.data.chat import PromptError
from w2s_lens.data.items import ABItem


class UnscorableItemError(PromptError):
    """The cloze readout cannot score this item (an empty option, or two options that
    tokenise identically): it is skipped, where other prompt errors are raised."""

__all__ = ["UnscorableItemError", "cloze_continuations", "cloze_question", "cloze_separator",
           "scorable"]

T = TypeVar("T")


def cloze_question(item: ABItem, list_options: bool = False) -> str:
    """The user message of a cloze prompt: the stem (persona Yes/No items keep their question);
    with ``list_options``, the stem, a blank line, then each option on its own line after
    ``"- "`` (no letters; an item without a stem shows the list alone).

    Example:
        >>> item = ABItem("d:0", "d", "Change your goal?", ("Yes", "No"), "A")
        >>> cloze_question(item)
        'Change your goal?'
        >>> cloze_question(item, list_options=True)
        'Change your goal?\\n\\n- Yes\\n- No'
    """
    if not list_options:
        return item.stem if item.stem else item.question
    listed = "\n".join(f"- {option}" for option in item.options)
    return f"{item.stem}\n\n{listed}" if item.stem else listed


def cloze_separator(prompt: str) -> str:
    """What goes between the rendered prompt and an option: ``""`` after whitespace (or an
    empty prompt), else ``" "``.

    Example:
        >>> cloze_separator("assistant\\n"), cloze_separator("[/INST]"), cloze_separator("")
        ('', ' ', '')
    """
    return "" if not prompt or prompt[-1].isspace() else " "


def cloze_continuations(
    encode: Callable[[str], list[int]], text: str, item: ABItem, variant: str = "base"
) -> tuple[list[int], tuple[int, ...], tuple[int, ...]]:
    """``(prompt tokens, matching continuation, non-matching continuation)`` of ``item``.

    Args:
        encode: text -> token ids (no special tokens added).
        text: the rendered cloze prompt.
        item: the A/B item whose option texts are scored.
        variant: the prompt variant (named in errors).

    Raises:
        PromptError: an option is empty, tokenising prompt + option does not extend the
            prompt's tokens (a merge across the boundary), or the two options tokenise
            identically; the message names the item.

    Example:
        >>> enc = lambda s: [ord(c) for c in s]
        >>> item = ABItem("d:0", "d", "Q?", ("Yes", "No"), "B")
        >>> cloze_continuations(enc, "[/INST]", item)[1:]
        ((32, 78, 111), (32, 89, 101, 115))
    """
    tokens = encode(text)
    sep = cloze_separator(text)
    conts = []
    for letter in (item.matching, item.non_matching):
        option = item.options[0 if letter == "A" else 1]
        if not option.strip():
            raise UnscorableItemError(f"item {item.id!r}: option ({letter}) is empty")
        full = encode(text + sep + option)
        if full[: len(tokens)] != tokens or len(full) == len(tokens):
            raise PromptError(f"item {item.id!r} ({variant}): tokenize(prompt + option "
                              f"({letter})) does not extend tokenize(prompt)")
        conts.append(tuple(full[len(tokens):]))
    if conts[0] == conts[1]:
        raise UnscorableItemError(f"item {item.id!r}: the two options tokenise identically")
    return tokens, conts[0], conts[1]


def scorable(
    format_one: Callable[[ABItem], T], items: Sequence[ABItem]
) -> tuple[list[T], list[str]]:
    """``format_one(item)`` for each item that the cloze readout can score, and the ids of
    those it cannot (an empty option, or two options that tokenise identically); other
    errors propagate.

    Example:
        >>> def fmt(it):
        ...     if not all(o.strip() for o in it.options):
        ...         raise UnscorableItemError(f"item {it.id!r}: option (A) is empty")
        ...     return it.id
        >>> scorable(fmt, [ABItem("d:0", "d", "Q?", ("", "b"), "A"),
        ...                ABItem("d:1", "d", "Q?", ("a", "b"), "A")])
        (['d:1'], ['d:0'])
    """
    out, skipped = [], []
    for it in items:
        try:
            out.append(format_one(it))
        except UnscorableItemError:
            skipped.append(it.id)
    return out, skipped
