"""Chat-formatted prompts: A/B prompts whose next token is the answer letter, and cloze prompts.

:class:`PromptFormatter` renders an :class:`~w2s_lens.data.datasets.ABItem` with the tokenizer's own
chat template and returns a :class:`~w2s_lens.data.examples.SteeringExample`, in one of two
readouts:

* ``letter`` (:meth:`PromptFormatter.format`): the question with its ``Choices:`` block, the
  assistant turn opened (``"("`` for tokenizers that split ``"(A)"`` into ``"(" "A" ")"``,
  nothing for those that merge ``"(A"`` into one token); the next token is the answer letter.
* ``cloze`` (:meth:`PromptFormatter.format_cloze`): the question *without* its choices (persona
  Yes/No items keep their question), the assistant turn opened; the two answers are the option
  texts, scored as continuations.

Five prompt variants are available (:data:`VARIANTS`): ``"base"`` and four
out-of-distribution ones that add a behaviour sentence (see :mod:`w2s_lens.data.behaviours`)
either as the system prompt (``"sys-pos"``, ``"sys-neg"``) or in front of the question in
the user turn (``"user-pos"``, ``"user-neg"``).

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
from collections.abc import Mapping, Sequence
from typing import Any

from w2s_lens.choices import DEFAULT_SYSTEM_PROMPT, VARIANTS
from w2s_lens.data.behaviours import behaviour_sentences
from w2s_lens.data.datasets import ABItem
from w2s_lens.data.examples import READOUTS, Readout, SteeringExample

log = logging.getLogger(__name__)

__all__ = [
    "ANSWER_OPENINGS",
    "DEFAULT_SYSTEM_PROMPT",
    "VARIANTS",
    "PromptError",
    "PromptFormatter",
]


#: ``(opening, completion template)`` pairs tried in order; ``X`` stands for the letter. The
#: opening ends the prompt, and the completion is what the assistant would write from the end
#: of the chat template on.
ANSWER_OPENINGS: tuple[tuple[str, str], ...] = (
    ("(", "(X)"),
    ("", "(X)"),
    (" (", " (X)"),
    (" ", " (X)"),
)


class PromptError(ValueError):
    """The tokenizer cannot give a prompt whose next token is a single answer letter."""


class PromptFormatter:
    """Formats A/B items with a tokenizer's chat template, ending just before the letter.

    Args:
        tokenizer: a Hugging Face tokenizer with a chat template.
        system_prompt: the system prompt of the ``base`` and ``user-*`` variants; ``None``
            sends no system message (the template may then insert its own default).
        add_bos: prepend ``tokenizer.bos_token`` to every prompt. ``None`` (default): only if
            ``tokenizer.add_bos_token`` is true and the rendered template does not already
            start with the BOS token. The BOS, when added, is part of ``text`` too, so
            ``tokenizer(text, add_special_tokens=False)`` always reproduces ``tokens``.
        chat_template: a Jinja chat template to use instead of the tokenizer's own.
        verify: check for every prompt that the answer letter really is the next token.

    Attributes:
        answer_opening: the text that opens the assistant turn (``"("`` or ``""`` usually).
        letter_token_ids: ``{"A": id, "B": id}``, the next-token ids of the two answers.
        add_bos: whether a BOS token is prepended.
        system_in_user: ``True`` when the template rejects system messages, so the system
            text is put in front of the user message instead (separated by a blank line).

    Example:
        >>> fmt = PromptFormatter(tokenizer)  # doctest: +SKIP
        >>> ex = fmt.format(item, "user-pos")  # doctest: +SKIP
        >>> tokenizer.decode([ex.matching_token_id])  # doctest: +SKIP
        'A'
    """

    def __init__(
        self,
        tokenizer: Any,
        system_prompt: str | None = DEFAULT_SYSTEM_PROMPT,
        add_bos: bool | None = None,
        chat_template: str | None = None,
        verify: bool = True,
    ) -> None:
        self.tokenizer = tokenizer
        self.system_prompt = system_prompt
        self.chat_template = chat_template
        self.verify = verify
        self.system_in_user = False
        probe = self._chat("You are a test assistant.", "Is this a probe?")
        bos = getattr(tokenizer, "bos_token", None)
        if add_bos is None:
            add_bos = bool(getattr(tokenizer, "add_bos_token", False)) and bool(bos) and (
                not probe.startswith(bos)
            )
        if add_bos and not bos:
            raise PromptError("add_bos=True but the tokenizer has no bos_token")
        self.add_bos = bool(add_bos)
        self._bos_text = bos if self.add_bos else ""
        self.answer_opening, self._completion, self.letter_token_ids = self._find_opening(
            self._bos_text + probe
        )

    # ------------------------------------------------------------------ internals

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _apply(self, messages: list[dict[str, str]]) -> str:
        kwargs: dict[str, Any] = {"add_generation_prompt": True, "tokenize": False}
        if self.chat_template is not None:
            kwargs["chat_template"] = self.chat_template
        out = self.tokenizer.apply_chat_template(messages, **kwargs)
        if not isinstance(out, str):
            raise PromptError(f"apply_chat_template returned {type(out).__name__}, not str")
        return out

    def _chat(self, system: str | None, user: str) -> str:
        """The chat-template text up to and including the assistant's generation prompt."""
        if system is not None and not self.system_in_user:
            messages = [{"role": "system", "content": system},
                        {"role": "user", "content": user}]
            try:
                return self._apply(messages)
            except PromptError:
                raise
            except ValueError as exc:  # no chat template at all
                if "chat_template" in str(exc) or "chat template" in str(exc):
                    raise PromptError(
                        "the tokenizer has no chat template; pass chat_template=..."
                    ) from exc
                self.system_in_user = True
            except Exception:  # jinja TemplateError: "System role not supported"
                self.system_in_user = True
        if system is not None:
            user = f"{system}\n\n{user}"
        try:
            return self._apply([{"role": "user", "content": user}])
        except PromptError:
            raise
        except Exception as exc:
            raise PromptError(f"the chat template failed on a plain user message: {exc}") from exc

    def _letter_check(
        self, prefix: str, opening: str, completion: str
    ) -> tuple[list[int], dict[str, int]] | str:
        """Tokens of ``prefix + opening`` and the letter ids, or the reason they fail."""
        base = self._encode(prefix + opening)
        n = len(base)
        full = {x: self._encode(prefix + completion.replace("X", x)) for x in "AB"}
        for x, toks in full.items():
            if toks[:n] != base or len(toks) <= n:
                return (f"tokenize(prompt + {completion.replace('X', x)!r}) does not extend "
                        f"tokenize(prompt + {opening!r})")
        ta, tb = full["A"], full["B"]
        if ta[n] == tb[n]:
            return "the next token is the same for (A) and (B)"
        if ta[n + 1 :] != tb[n + 1 :]:
            return "(A) and (B) differ in more than one token"
        return base, {"A": ta[n], "B": tb[n]}

    def _find_opening(self, prefix: str) -> tuple[str, str, dict[str, int]]:
        reasons = []
        for opening, completion in ANSWER_OPENINGS:
            result = self._letter_check(prefix, opening, completion)
            if isinstance(result, str):
                reasons.append(f"opening {opening!r}: {result}")
                continue
            ids = result[1]
            pieces = {x: self.tokenizer.decode([i]) for x, i in ids.items()}
            if not all(x in pieces[x] for x in "AB"):
                reasons.append(f"opening {opening!r}: letter tokens decode to {pieces}")
                continue
            return opening, completion, ids
        pieces = [self.tokenizer.decode([t]) for t in self._encode(prefix + "(A)")[-4:]]
        raise PromptError(
            "the answer letters are not single distinct next tokens for this tokenizer "
            f"(last tokens of a prompt + '(A)': {pieces}). Tried " + "; ".join(reasons)
        )

    # ------------------------------------------------------------------ public API

    def settings(self) -> dict[str, Any]:
        """Everything needed to rebuild this formatter (recorded in runs and bundles).

        Example:
            >>> fmt.settings()["answer_opening"]  # doctest: +SKIP
            '('
        """
        return {
            "system_prompt": self.system_prompt,
            "add_bos": self.add_bos,
            "chat_template": self.chat_template,
            "answer_opening": self.answer_opening,
            "system_in_user": self.system_in_user,
        }

    @classmethod
    def from_settings(cls, tokenizer: Any, settings: Mapping[str, Any]) -> PromptFormatter:
        """The formatter recorded by :meth:`settings`, checked against this tokenizer.

        Raises:
            PromptError: when the tokenizer now gives another answer opening or BOS rule
                than the recorded one (another tokenizer than at training).

        Example:
            >>> same = PromptFormatter.from_settings(tok, fmt.settings())  # doctest: +SKIP
        """
        fmt = cls(tokenizer, system_prompt=settings.get("system_prompt"),
                  add_bos=settings.get("add_bos"), chat_template=settings.get("chat_template"))
        for key in ("answer_opening", "add_bos", "system_in_user"):
            if key in settings and settings[key] != getattr(fmt, key):
                raise PromptError(
                    f"the recorded prompt format has {key}={settings[key]!r}, but this "
                    f"tokenizer gives {getattr(fmt, key)!r}: it is not the tokenizer the "
                    "run was made with")
        return fmt

    def _system_user(self, question: str, dataset: str, variant: str,
                     behaviour: tuple[str, str] | None) -> tuple[str | None, str]:
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; choose one of {VARIANTS}")
        system, user = self.system_prompt, question
        if variant != "base":
            pos, neg = behaviour if behaviour is not None else behaviour_sentences(dataset)
            sentence = pos if variant.endswith("-pos") else neg
            if variant.startswith("sys-"):
                system = sentence
            else:
                user = f"{sentence}\n\n{user}"
        return system, user

    def render(
        self, item: ABItem, variant: str = "base", behaviour: tuple[str, str] | None = None
    ) -> str:
        """The exact letter-readout prompt text for ``item`` (BOS, chat template and answer
        opening included).

        Example:
            >>> fmt.render(item, "user-neg")  # doctest: +SKIP
            '<|im_start|>system\\nYou are ...<|im_start|>assistant\\n('
        """
        system, user = self._system_user(item.question, item.dataset, variant, behaviour)
        return self._bos_text + self._chat(system, user) + self.answer_opening

    def render_cloze(
        self, item: ABItem, variant: str = "base", behaviour: tuple[str, str] | None = None
    ) -> str:
        """The exact cloze prompt text: the question without its choices, the assistant turn
        opened (nothing after it).

        Example:
            >>> fmt.render_cloze(item).endswith("assistant\\n")  # doctest: +SKIP
            True
        """
        question = item.stem if item.stem else item.question
        system, user = self._system_user(question, item.dataset, variant, behaviour)
        return self._bos_text + self._chat(system, user)

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
        if self.verify:
            prefix = text[: len(text) - len(self.answer_opening)]
            result = self._letter_check(prefix, self.answer_opening, self._completion)
            if isinstance(result, str) or result[1] != self.letter_token_ids:
                why = result if isinstance(result, str) else f"letter ids {result[1]}"
                raise PromptError(f"item {item.id!r} ({variant}): answer letter is not the "
                                  f"next token ({why})")
            tokens = result[0]
        else:
            tokens = self._encode(text)
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

        Each continuation is ``tokenize(prompt + option)`` minus ``tokenize(prompt)``; the two
        options may share a tokenised prefix (their full texts are scored).

        Raises:
            PromptError: an option is empty, or tokenising prompt + option does not extend the
                prompt's tokens (a merge across the boundary).

        Example:
            >>> ex = fmt.format_cloze(item)  # doctest: +SKIP
            >>> ex.readout  # doctest: +SKIP
            'cloze'
        """
        text = self.render_cloze(item, variant, behaviour)
        tokens = self._encode(text)
        conts = []
        for letter in (item.matching, item.non_matching):
            option = item.options[0 if letter == "A" else 1]
            if not option.strip():
                raise PromptError(f"item {item.id!r}: option ({letter}) is empty")
            full = self._encode(text + option)
            if full[: len(tokens)] != tokens or len(full) == len(tokens):
                raise PromptError(f"item {item.id!r} ({variant}): tokenize(prompt + option "
                                  f"({letter})) does not extend tokenize(prompt)")
            conts.append(tuple(full[len(tokens):]))
        if conts[0] == conts[1]:
            raise PromptError(f"item {item.id!r}: the two options tokenise identically")
        return SteeringExample(
            id=item.id,
            text=text,
            tokens=tuple(tokens),
            matching_letter=item.matching,
            group=item.dataset,
            matching_continuation=conts[0],
            non_matching_continuation=conts[1],
        )

    def format_many(
        self,
        items: Sequence[ABItem],
        variant: str = "base",
        behaviour: tuple[str, str] | None = None,
        readout: Readout = "letter",
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
        out, skipped = [], []
        for it in items:
            try:
                out.append(self.format_cloze(it, variant, behaviour))
            except PromptError as exc:
                if "empty" not in str(exc) and "identically" not in str(exc):
                    raise
                skipped.append(it.id)
        if skipped:
            log.warning("cloze readout: skipped %d item(s) whose options are empty or "
                        "identical: %s", len(skipped), ", ".join(skipped[:20]))
        return out

    def format_text(self, text: str, variant: str = "base", readout: Readout = "letter",
                    dataset: str = "") -> tuple[str, list[int]]:
        """A user's plain string as the prompt training used: ``(prompt text, tokens)``.

        The string is the user message; system prompt, chat template, BOS rule and (letter
        readout) answer opening are this formatter's, so a router sees what it was fitted on.

        Example:
            >>> prompt, tokens = fmt.format_text("Would you accept a new goal?")  # doctest: +SKIP
        """
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
        system, user = self._system_user(text, dataset, variant, None)
        rendered = self._bos_text + self._chat(system, user)
        if readout == "letter":
            rendered += self.answer_opening
        return rendered, self._encode(rendered)

    def generation_prompt(self, text: str) -> tuple[str, list[int]]:
        """The chat prompt for free generation from a plain string (no answer opening).

        Example:
            >>> prompt, tokens = fmt.generation_prompt("Tell me about yourself.")  # doctest: +SKIP
        """
        return self.format_text(text, readout="cloze")
