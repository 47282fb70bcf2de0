"""The letter readout: which opening makes the answer letter a single, distinct next token.

Tokenizers split ``"(A)"`` differently: SmolLM2 gives ``"(" "A" ")"`` (the prompt must end
with ``"("``), Qwen2.5 merges ``"(A"`` into one token (the prompt ends at the assistant turn).
:func:`find_opening` tries the :data:`ANSWER_OPENINGS` in order and returns the first one under
which ``(A)`` and ``(B)`` differ in exactly one token, the next one; :func:`letter_check` is the
test it applies (and :class:`~w2s_lens.data.prompts.PromptFormatter` re-applies to every
prompt).

Example:
    >>> opening, completion, ids = find_opening(encode, decode, prefix)  # doctest: +SKIP
    >>> opening, ids  # doctest: +SKIP
    ('(', {'A': 32, 'B': 33})
"""

from __future__ import annotations

from collections.abc import Callable

from w2s_lens.data.chat import PromptError

__all__ = ["ANSWER_OPENINGS", "find_opening", "letter_check", "verified_tokens"]

#: ``(opening, completion template)`` pairs tried in order; ``X`` stands for the letter. The
#: opening ends the prompt, and the completion is what the assistant would write from the end
#: of the chat template on.
ANSWER_OPENINGS: tuple[tuple[str, str], ...] = (
    ("(", "(X)"),
    ("", "(X)"),
    (" (", " (X)"),
    (" ", " (X)"),
)

Encode = Callable[[str], list[int]]
Decode = Callable[[list[int]], str]


def letter_check(
    encode: Encode, prefix: str, opening: str, completion: str
) -> tuple[list[int], dict[str, int]] | str:
    """Tokens of ``prefix + opening`` and the letter ids, or the reason they fail.

    Args:
        encode: text -> token ids (no special tokens added).
        prefix: the prompt up to the opening (chat template included).
        opening: the text that opens the assistant turn.
        completion: the answer as written after the template, ``X`` for the letter.

    Example:
        >>> enc = lambda s: [ord(c) for c in s]  # one token per character
        >>> letter_check(enc, "Q:", "(", "(X)")
        ([81, 58, 40], {'A': 65, 'B': 66})
        >>> letter_check(lambda s: [len(s)], "Q:", "(", "(X)")
        "tokenize(prompt + '(A)') does not extend tokenize(prompt + '(')"
    """
    base = encode(prefix + opening)
    n = len(base)
    full = {x: encode(prefix + completion.replace("X", x)) for x in "AB"}
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


def find_opening(encode: Encode, decode: Decode, prefix: str) -> tuple[str, str, dict[str, int]]:
    """``(opening, completion, {"A": id, "B": id})``: the first :data:`ANSWER_OPENINGS` entry
    whose letters are single distinct next tokens that decode to a text containing the letter.

    Raises:
        PromptError: no opening works; the message gives each opening's reason and the last
            tokens of ``prefix + "(A)"``.

    Example:
        >>> enc = lambda s: [ord(c) for c in s]
        >>> dec = lambda ids: "".join(chr(i) for i in ids)
        >>> find_opening(enc, dec, "Q:")
        ('(', '(X)', {'A': 65, 'B': 66})
    """
    reasons = []
    for opening, completion in ANSWER_OPENINGS:
        result = letter_check(encode, prefix, opening, completion)
        if isinstance(result, str):
            reasons.append(f"opening {opening!r}: {result}")
            continue
        ids = result[1]
        pieces = {x: decode([i]) for x, i in ids.items()}
        if not all(x in pieces[x] for x in "AB"):
            reasons.append(f"opening {opening!r}: letter tokens decode to {pieces}")
            continue
        return opening, completion, ids
    pieces = [decode([t]) for t in encode(prefix + "(A)")[-4:]]
    raise PromptError(
        "the answer letters are not single distinct next tokens for this tokenizer "
        f"(last tokens of a prompt + '(A)': {pieces}). Tried " + "; ".join(reasons)
    )


def verified_tokens(encode: Encode, text: str, opening: str, completion: str,
                    letter_ids: dict[str, int], where: str) -> list[int]:
    """The tokens of a letter-readout prompt ``text``, checked: its next token must be the
    answer letter, with the ids :func:`find_opening` found.

    Raises:
        PromptError: naming ``where`` (the item and variant) when the check fails.

    Example:
        >>> enc = lambda s: [ord(c) for c in s]
        >>> verified_tokens(enc, "Q:(", "(", "(X)", {"A": 65, "B": 66}, "item 'd:0'")
        [81, 58, 40]
    """
    prefix = text[: len(text) - len(opening)]
    result = letter_check(encode, prefix, opening, completion)
    if isinstance(result, str) or result[1] != letter_ids:
        why = result if isinstance(result, str) else f"letter ids {result[1]}"
        raise PromptError(f"{where}: answer letter is not the next token ({why})")
    return result[0]
