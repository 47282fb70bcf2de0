"""The prompt format itself: its settings and the prompts it makes from plain strings.

:class:`PromptBase` fixes everything about a prompt that does not depend on an item: the chat
template (:class:`~w2s_lens.data.chat.ChatRenderer`), the system prompt, the BOS rule and the
answer opening of the letter readout (:func:`~w2s_lens.data.letters.find_opening`). Its
:meth:`~PromptBase.settings` are what runs and bundles record, and it formats a user's plain
string the way training prompts were formatted (:meth:`~PromptBase.format_text`,
:meth:`~PromptBase.render_user`). :class:`~w2s_lens.data.prompts.PromptFormatter` adds the
A/B items on top.

Example:
    >>> base = PromptBase(tokenizer)  # doctest: +SKIP
    >>> base.render_user("Hi").endswith("<|im_start|>assistant\\n")  # doctest: +SKIP
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from w2s_lens.choices import DEFAULT_SYSTEM_PROMPT, READOUTS, ReadoutName
from w2s_lens.data.chat import ChatRenderer, PromptError, resolve_bos, variant_turns
from w2s_lens.data.letters import find_opening

__all__ = ["PromptBase"]

_Self = TypeVar("_Self", bound="PromptBase")


class PromptBase:
    """A tokenizer's prompt format: chat template, system prompt, BOS rule, answer opening.

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
        list_options: cloze prompts list the two option texts after the question (no
            letters; :func:`~w2s_lens.data.cloze.cloze_question`). Recorded in
            :meth:`settings` only when true.

    Attributes:
        answer_opening: the text that opens the assistant turn (``"("`` or ``""`` usually).
        letter_token_ids: ``{"A": id, "B": id}``, the next-token ids of the two answers.
        add_bos: whether a BOS token is prepended.

    Example:
        >>> PromptBase(tokenizer).letter_token_ids  # doctest: +SKIP
        {'A': 32, 'B': 33}
    """

    def __init__(
        self,
        tokenizer: Any,
        system_prompt: str | None = DEFAULT_SYSTEM_PROMPT,
        add_bos: bool | None = None,
        chat_template: str | None = None,
        verify: bool = True,
        list_options: bool = False,
    ) -> None:
        self.tokenizer = tokenizer
        self.system_prompt = system_prompt
        self.chat_template = chat_template
        self.verify = verify
        self.list_options = bool(list_options)
        self._chat = ChatRenderer(tokenizer, chat_template)
        probe = self._chat.render("You are a test assistant.", "Is this a probe?")
        self.add_bos, self._bos_text = resolve_bos(tokenizer, add_bos, probe)
        self.answer_opening, self._completion, self.letter_token_ids = find_opening(
            self._chat.encode, tokenizer.decode, self._bos_text + probe
        )

    @property
    def system_in_user(self) -> bool:
        """``True`` when the template rejects system messages, so the system text is put in
        front of the user message instead (separated by a blank line)."""
        return self._chat.system_in_user

    def _prompt(self, system: str | None, user: str) -> str:
        return self._bos_text + self._chat.render(system, user)

    def settings(self) -> dict[str, Any]:
        """Everything needed to rebuild this formatter (recorded in runs and bundles).

        Example:
            >>> fmt.settings()["answer_opening"]  # doctest: +SKIP
            '('
        """
        out = {
            "system_prompt": self.system_prompt,
            "add_bos": self.add_bos,
            "chat_template": self.chat_template,
            "answer_opening": self.answer_opening,
            "system_in_user": self.system_in_user,
        }
        if self.list_options:  # only then: earlier runs' and bundles' settings are unchanged
            out["list_options"] = True
        return out

    @classmethod
    def from_settings(cls: type[_Self], tokenizer: Any, settings: Mapping[str, Any]) -> _Self:
        """The formatter recorded by :meth:`settings`, checked against this tokenizer.

        Raises:
            PromptError: when the tokenizer now gives another answer opening or BOS rule
                than the recorded one (another tokenizer than at training).

        Example:
            >>> same = PromptFormatter.from_settings(tok, fmt.settings())  # doctest: +SKIP
        """
        fmt = cls(tokenizer, system_prompt=settings.get("system_prompt"),
                  add_bos=settings.get("add_bos"), chat_template=settings.get("chat_template"),
                  list_options=bool(settings.get("list_options", False)))
        for key in ("answer_opening", "add_bos", "system_in_user"):
            if key in settings and settings[key] != getattr(fmt, key):
                raise PromptError(
                    f"the recorded prompt format has {key}={settings[key]!r}, but this "
                    f"tokenizer gives {getattr(fmt, key)!r}: it is not the tokenizer the "
                    "run was made with")
        return fmt

    def render_user(self, text: str) -> str:
        """A plain user message as a prompt: BOS rule, this formatter's system prompt (or its
        place in the user turn) and chat template, the assistant turn opened; no choices, no
        answer opening, no variant. The prompt a model would generate its reply from.

        Example:
            >>> fmt.render_user("Hi").endswith(
            ...     "user\\nHi<|im_end|>\\n<|im_start|>assistant\\n")  # doctest: +SKIP
            True
        """
        return self._prompt(self.system_prompt, text)

    def format_text(self, text: str, variant: str = "base", readout: ReadoutName = "letter",
                    dataset: str = "") -> tuple[str, list[int]]:
        """A user's plain string as the prompt training used: ``(prompt text, tokens)``.

        The string is the user message; system prompt, chat template, BOS rule and (letter
        readout) answer opening are this formatter's, so a router sees what it was fitted on.

        Example:
            >>> prompt, tokens = fmt.format_text("Would you accept a new goal?")  # doctest: +SKIP
        """
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
        rendered = self._prompt(*variant_turns(self.system_prompt, text, dataset, variant))
        if readout == "letter":
            rendered += self.answer_opening
        return rendered, self._chat.encode(rendered)

    def generation_prompt(self, text: str) -> tuple[str, list[int]]:
        """The chat prompt for free generation from a plain string (no answer opening):
        :meth:`render_user` and its tokens.

        Example:
            >>> prompt, tokens = fmt.generation_prompt("Tell me about yourself.")  # doctest: +SKIP
        """
        return self.format_text(text, readout="cloze")
