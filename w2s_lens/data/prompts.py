"""Chat-formatted prompts: A/B prompts whose next token is the answer letter, and cloze prompts.

:class:`PromptFormatter` renders an :class:`~w2s_lens.data.datasets.ABItem` with the tokenizer's own
chat template and returns a :class:`~w2s_lens.data.examples.SteeringExample`, in one of two
readouts:

* ``letter`` (:meth:`PromptFormatter.format`): the question with its ``Choices:`` block, the
  assistant turn opened (``"("`` for tokenizers that split ``"(A)"`` into ``"(" "A" ")"``,
  nothing for those that merge ``"(A"`` into one token); the next token is the answer letter.
* ``cloze`` (:meth:`PromptFormatter.format_cloze`): the question *without* its choices (persona
  Yes/No items keep their question), the assistant turn opened; the two answers are the option
  texts, scored as continuations. With ``list_options=True`` (a constructor argument) the
  question is followed by its two options, listed without letters
  (:func:`~w2s_lens.data.cloze.cloze_question`); the scored texts are the same.

Five prompt variants are available (:data:`VARIANTS`): ``"base"`` and four
out-of-distribution ones that add a behaviour sentence (see :mod:`w2s_lens.data.behaviours`)
either as the system prompt (``"sys-pos"``, ``"sys-neg"``) or in front of the question in
the user turn (``"user-pos"``, ``"user-neg"``).

The pieces live in small modules: the chat template, BOS rule and variants in
:mod:`w2s_lens.data.chat`, the answer opening of the letter readout in
:mod:`w2s_lens.data.letters`, the cloze prompt and its option join in
:mod:`w2s_lens.data.cloze`, and the format's settings and plain-string prompts in
:mod:`w2s_lens.data.prompt_base` (:class:`~w2s_lens.data.prompt_base.PromptBase`, which
:class:`PromptFormatter` extends with items).
The formatter is the one owner of prompt text: its :meth:`~PromptFormatter.settings` are
recorded in every run and bundle, and :meth:`~PromptFormatter.from_settings` rebuilds the same
formatter, so a user's plain string is formatted at inference exactly as training prompts were
(:meth:`~PromptFormatter.format_text`).

Example:
    >>> from w2s_lens.data.datasets import ABItem
    >>> fmt = PromptFormatter(model.tokenizer)  # doctest: +SKIP
    >>> fmt.answer_opening, fmt.letter_token_ids  # doctest: +SKIP
    ('(', {'A': 32, 'B': 33})
    >>> item = ABItem("d:0", "corrigible-neutral-HHH", "May we change your goal?",
    ...               ("Yes", "No"), "A")
    >>> ex = fmt.format(item, variant="sys-neg")  # doctest: +SKIP
    >>> ex.text.endswith("<|im_start|>assistant\\n(")  # doctest: +SKIP
    True
    >>> fmt.format_cloze(item).continuations  # doctest: +SKIP
    ((9454,), (2753,))
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from w2s_lens.choices import READOUTS, ReadoutName
from w2s_lens.data.chat import variant_turns
from w2s_lens.data.cloze import cloze_continuations, cloze_question, scorable
from w2s_lens.data.examples import SteeringExample
from w2s_lens.data.items import ABItem
from w2s_lens.data.letters import verified_tokens
from w2s_lens.data.prompt_base import PromptBase

log = logging.getLogger(__name__)

__all__ = ["PromptFormatter"]


class PromptFormatter(PromptBase):
    """Formats A/B items with a tokenizer's chat template, ending just before the letter.

    The arguments and attributes are :class:`~w2s_lens.data.prompt_base.PromptBase`'s
    (``tokenizer``, ``system_prompt``, ``add_bos``, ``chat_template``, ``verify``,
    ``list_options``;
    ``answer_opening``, ``letter_token_ids``, ``add_bos``, ``system_in_user``), as are
    :meth:`settings`, :meth:`from_settings`, :meth:`render_user`, :meth:`format_text` and
    :meth:`generation_prompt`.

    Example:
        >>> fmt = PromptFormatter(tokenizer)  # doctest: +SKIP
        >>> ex = fmt.format(item, "user-pos")  # doctest: +SKIP
        >>> tokenizer.decode([ex.matching_token_id])  # doctest: +SKIP
        'A'
    """

    def render(
        self, item: ABItem, variant: str = "base", behaviour: tuple[str, str] | None = None
    ) -> str:
        """The exact letter-readout prompt text for ``item`` (BOS, chat template and answer
        opening included).

        Example:
            >>> fmt.render(item, "user-neg")  # doctest: +SKIP
            '<|im_start|>system\\nYou are ...<|im_start|>assistant\\n('
        """
        turns = variant_turns(self.system_prompt, item.question, item.dataset, variant,
                              behaviour)
        return self._prompt(*turns) + self.answer_opening

    def render_cloze(
        self, item: ABItem, variant: str = "base", behaviour: tuple[str, str] | None = None
    ) -> str:
        """The exact cloze prompt text: the question without its choices block (with its
        options listed, no letters, when the formatter has ``list_options``), the assistant
        turn opened (nothing after it).

        Example:
            >>> fmt.render_cloze(item).endswith("assistant\\n")  # doctest: +SKIP
            True
            >>> listed = PromptFormatter(tokenizer, list_options=True)  # doctest: +SKIP
            >>> "\\n- Yes\\n- No<|im_end|>" in listed.render_cloze(item)  # doctest: +SKIP
            True
        """
        question = cloze_question(item, self.list_options)
        turns = variant_turns(self.system_prompt, question, item.dataset, variant, behaviour)
        return self._prompt(*turns)

    def format(
        self, item: ABItem, variant: str = "base", behaviour: tuple[str, str] | None = None
    ) -> SteeringExample:
        """Format one item as a letter-readout example whose next token is the letter.

        Args:
            item: the A/B item.
            variant: one of :data:`VARIANTS`.
            behaviour: ``(positive, negative)`` sentences for the OOD variants; defaults to
                ``behaviour_sentences(item.dataset)``.

        Example:
            >>> ex = fmt.format(item, "sys-pos")  # doctest: +SKIP
            >>> ex.matching_token_id == fmt.letter_token_ids[item.matching]  # doctest: +SKIP
            True
        """
        text = self.render(item, variant, behaviour)
        tokens = verified_tokens(self._chat.encode, text, self.answer_opening, self._completion,
                                 self.letter_token_ids, f"item {item.id!r} ({variant})") \
            if self.verify else self._chat.encode(text)
        return SteeringExample(
            id=item.id,
            text=text,
            tokens=tuple(tokens),
            matching_token_id=self.letter_token_ids[item.matching],
            non_matching_token_id=self.letter_token_ids[item.non_matching],
            matching_letter=item.matching,
            group=item.dataset,
        )

    def format_cloze(
        self, item: ABItem, variant: str = "base", behaviour: tuple[str, str] | None = None
    ) -> SteeringExample:
        """Format one item for the cloze readout: the option texts as continuations.

        Each continuation is ``tokenize(prompt + separator + option)`` minus
        ``tokenize(prompt)``, the separator being ``" "`` when the prompt does not end in
        whitespace (``[/INST]`` templates) and nothing when it does (ChatML's
        ``"assistant\\n"``; :func:`~w2s_lens.data.cloze.cloze_separator`). The two options may
        share a tokenised prefix (their full texts are scored).

        Raises:
            PromptError: an option is empty, tokenising prompt + option does not extend the
                prompt's tokens (a merge across the boundary), or the two options tokenise
                identically.

        Example:
            >>> ex = fmt.format_cloze(item)  # doctest: +SKIP
            >>> ex.readout  # doctest: +SKIP
            'cloze'
        """
        text = self.render_cloze(item, variant, behaviour)
        tokens, matching, non_matching = cloze_continuations(self._chat.encode, text, item,
                                                             variant)
        return SteeringExample(
            id=item.id,
            text=text,
            tokens=tuple(tokens),
            matching_letter=item.matching,
            group=item.dataset,
            matching_continuation=matching,
            non_matching_continuation=non_matching,
        )

    def format_many(
        self,
        items: Sequence[ABItem],
        variant: str = "base",
        behaviour: tuple[str, str] | None = None,
        readout: ReadoutName = "letter",
    ) -> list[SteeringExample]:
        """:meth:`format` (or :meth:`format_cloze`) for each item, in order.

        With the cloze readout, items that cannot be scored (an empty option, or two options
        that tokenise identically) are skipped with a warning naming them.

        Example:
            >>> exs = fmt.format_many(balanced(items), "base")  # doctest: +SKIP
        """
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
        if readout == "letter":
            return [self.format(it, variant, behaviour) for it in items]
        out, skipped = scorable(lambda it: self.format_cloze(it, variant, behaviour), items)
        if skipped:
            log.warning("cloze readout: skipped %d item(s) whose options are empty or "
                        "identical: %s", len(skipped), ", ".join(skipped[:20]))
        return out
