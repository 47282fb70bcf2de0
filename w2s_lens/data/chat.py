"""The chat template of a tokenizer: rendering system + user turns, BOS, and the OOD variants.

:class:`ChatRenderer` renders a system message and a user message with the tokenizer's own
chat template (or a given one) up to and including the assistant's generation prompt. A
template that rejects the system role gets the system text in front of the user message
(separated by a blank line), and says so (:attr:`ChatRenderer.system_in_user`).
:func:`variant_turns` applies a prompt variant of :data:`~w2s_lens.choices.VARIANTS` (the base
prompt, or a behaviour sentence as the system prompt or in front of the question).
:func:`resolve_bos` decides whether a BOS token is prepended.

Example:
    >>> chat = ChatRenderer(tokenizer)  # doctest: +SKIP
    >>> chat.render("Be brief.", "Hi?").endswith(
    ...     "user\\nHi?<|im_end|>\\n<|im_start|>assistant\\n")  # doctest: +SKIP
    True
    >>> variant_turns("Be brief.", "Q?", "corrigible-neutral-HHH", "user-neg")[1][:11]
    'You resist '
"""

from __future__ import annotations

from typing import Any

from w2s_lens.choices import VARIANTS
from w2s_lens.data.behaviours import behaviour_sentences

__all__ = ["ChatRenderer", "PromptError", "resolve_bos", "variant_turns"]


class PromptError(ValueError):
    """The tokenizer cannot give a prompt whose next token is a single answer letter."""


class ChatRenderer:
    """System + user turns through a chat template, ending with the assistant's turn opened.

    Args:
        tokenizer: a Hugging Face tokenizer with a chat template.
        chat_template: a Jinja chat template to use instead of the tokenizer's own.

    Attributes:
        system_in_user: ``True`` once the template has rejected a system message; from then
            on the system text goes in front of the user message.

    Example:
        >>> chat = ChatRenderer(tokenizer)  # doctest: +SKIP
        >>> chat.render(None, "Hi?").endswith("assistant\\n")  # doctest: +SKIP
        True
    """

    def __init__(self, tokenizer: Any, chat_template: str | None = None) -> None:
        self.tokenizer = tokenizer
        self.chat_template = chat_template
        self.system_in_user = False

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without added special tokens.

        Example:
            >>> ChatRenderer(tokenizer).encode("Hi")  # doctest: +SKIP
            [13347]
        """
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _apply(self, messages: list[dict[str, str]]) -> str:
        kwargs: dict[str, Any] = {"add_generation_prompt": True, "tokenize": False}
        if self.chat_template is not None:
            kwargs["chat_template"] = self.chat_template
        out = self.tokenizer.apply_chat_template(messages, **kwargs)
        if not isinstance(out, str):
            raise PromptError(f"apply_chat_template returned {type(out).__name__}, not str")
        return out

    def render(self, system: str | None, user: str) -> str:
        """The chat-template text up to and including the assistant's generation prompt.

        Raises:
            PromptError: the tokenizer has no chat template, or the template fails on a plain
                user message.

        Example:
            >>> ChatRenderer(tokenizer).render("Be brief.", "Hi?")  # doctest: +SKIP
            '<|im_start|>system\\nBe brief.<|im_end|>\\n<|im_start|>user\\nHi?<|im_end|>\\n...'
        """
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


def resolve_bos(tokenizer: Any, add_bos: bool | None, probe: str) -> tuple[bool, str]:
    """``(add_bos, bos text)``: whether a BOS token is prepended, and the text prepended.

    ``add_bos=None`` means: only if ``tokenizer.add_bos_token`` is true, the tokenizer has a
    BOS token and the rendered template ``probe`` does not already start with it.

    Raises:
        PromptError: ``add_bos=True`` for a tokenizer without a BOS token.

    Example:
        >>> class Tok: bos_token, add_bos_token = "<s>", True
        >>> resolve_bos(Tok(), None, "<s>[INST] Hi [/INST]"), resolve_bos(Tok(), None, "[INST]")
        ((False, ''), (True, '<s>'))
    """
    bos = getattr(tokenizer, "bos_token", None)
    if add_bos is None:
        add_bos = bool(getattr(tokenizer, "add_bos_token", False)) and bool(bos) and (
            not probe.startswith(bos)
        )
    if add_bos and not bos:
        raise PromptError("add_bos=True but the tokenizer has no bos_token")
    return bool(add_bos), (bos if add_bos else "")


def variant_turns(system_prompt: str | None, question: str, dataset: str, variant: str,
                  behaviour: tuple[str, str] | None = None) -> tuple[str | None, str]:
    """``(system, user)`` messages of a prompt variant.

    ``base`` keeps ``system_prompt`` and the question; ``sys-pos``/``sys-neg`` replace the
    system prompt by the behaviour's positive/negative sentence; ``user-pos``/``user-neg`` put
    that sentence in front of the question (a blank line between).

    Args:
        system_prompt: the base system prompt (``None``: no system message).
        question: the user message.
        dataset: the behaviour whose sentences the OOD variants use.
        variant: one of :data:`~w2s_lens.choices.VARIANTS`.
        behaviour: ``(positive, negative)`` sentences; defaults to
            :func:`~w2s_lens.data.behaviours.behaviour_sentences` of ``dataset``.

    Raises:
        ValueError: an unknown variant.

    Example:
        >>> variant_turns("Be brief.", "Q?", "d", "sys-pos", ("Pro.", "Con."))
        ('Pro.', 'Q?')
        >>> variant_turns("Be brief.", "Q?", "d", "user-neg", ("Pro.", "Con."))
        ('Be brief.', 'Con.\\n\\nQ?')
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {VARIANTS}")
    system, user = system_prompt, question
    if variant != "base":
        pos, neg = behaviour if behaviour is not None else behaviour_sentences(dataset)
        sentence = pos if variant.endswith("-pos") else neg
        if variant.startswith("sys-"):
            system = sentence
        else:
            user = f"{sentence}\n\n{user}"
    return system, user
