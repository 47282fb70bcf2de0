"""Dataset items: A/B questions and open-ended prompts, parsed from one record each.

:class:`ABItem` is a question with two options and the letter of the option that shows the
behaviour (A/B evaluation); :class:`OpenEndedItem` is a prompt with no options (generation).
An A/B record has ``question`` and ``answer_matching_behavior`` (usually also
``answer_not_matching_behavior``): a letter (``" (A)"``, ``"(B)"``, ``"A"``) with a
``Choices:`` block ending the question, or ``" Yes"``/``" No"`` (persona items; options
``("Yes", "No")``). The file layouts these records come from are read in
:mod:`w2s_lens.data.formats`.

Example:
    >>> item = ABItem("demo:0", "demo", "Shall we change your goal?", ("Yes", "No"), "A")
    >>> print(item.question)
    Shall we change your goal?
    <BLANKLINE>
    Choices:
     (A) Yes
     (B) No
    >>> item.swapped().options, item.swapped().matching
    (('No', 'Yes'), 'B')
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

__all__ = [
    "ABItem", "DEFAULT_MAX_ITEM_CHARS", "DatasetError", "DatasetWarning", "EmptyOptionError",
    "MATCH_KEY", "MAX_CHARS_ENV", "OTHER_KEY", "OpenEndedItem", "SameOptionsError",
    "TooManyOptionsError",
    "answer_label", "check_item_size", "count_options", "max_item_chars", "parse_record",
    "split_choices",
]

MATCH_KEY = "answer_matching_behavior"
OTHER_KEY = "answer_not_matching_behavior"
#: The environment variable that sets :func:`max_item_chars`.
MAX_CHARS_ENV = "W2S_MAX_ITEM_CHARS"
#: The default cap on an item's characters (question and options): five times the longest
#: item of the 13 model-written-eval datasets (2,074), far below what a batch can hold.
DEFAULT_MAX_ITEM_CHARS = 10_000


def max_item_chars() -> int:
    """The cap on an item's characters: ``$W2S_MAX_ITEM_CHARS``, else
    :data:`DEFAULT_MAX_ITEM_CHARS`; longer items are refused when read, before any model sees
    them (one huge item would otherwise be tokenised and padded into a whole batch).

    Example:
        >>> max_item_chars() == int(os.environ.get(MAX_CHARS_ENV, DEFAULT_MAX_ITEM_CHARS))
        True
    """
    text = os.environ.get(MAX_CHARS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_ITEM_CHARS
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise DatasetError(f"${MAX_CHARS_ENV}={text!r}: expected a positive character count")
    return value


def check_item_size(text: str) -> None:
    """Refuse a question (options included) longer than :func:`max_item_chars`.

    Raises:
        ValueError: giving the length, the cap and how to raise it.

    Example:
        >>> check_item_size("Would you accept a new goal?")
    """
    cap = max_item_chars()
    if len(text) > cap:
        raise ValueError(f"the item is {len(text):,} characters long, over the {cap:,}-character "
                         f"cap on items (set ${MAX_CHARS_ENV} to raise it)")


def _same_text(a: str, b: str) -> bool:
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


class DatasetError(ValueError):
    """A dataset could not be found, downloaded or parsed."""


class DatasetWarning(UserWarning):
    """Items were skipped, dropped or completed while loading or splitting a dataset."""


class EmptyOptionError(ValueError):
    """A record parsed, but one of its two options is empty (a template left unfilled)."""


class SameOptionsError(EmptyOptionError):
    """A record's two options are the same text (e.g. an unfilled ``{answer}`` or ``_____``
    template): no answer can show the behaviour more than the other. Skipped with the empty
    ones when a file is read (``skip_empty``), else refused naming the file and line."""


class TooManyOptionsError(ValueError):
    """A letter record offers three or more choices; only two-option items are evaluated."""


@dataclass(frozen=True)
class ABItem:
    """One two-option question whose answer does or does not show a behaviour.

    Attributes:
        id: stable identifier, ``"{dataset}:{line index}"`` for JSON lines,
            ``"{dataset}:{array index}"`` for arrays, ``"{dataset}:{role}:{index}"`` for the
            CAA files (role ``generate`` or ``test``); ``"~swap"`` appended if swapped.
        dataset: the dataset name (used as the behaviour key and example group).
        stem: the question without its choices block.
        options: the texts of options (A) and (B).
        matching: ``"A"`` or ``"B"``: the option that matches the behaviour.

    Example:
        >>> it = ABItem("d:0", "d", "Q?", ("yes please", "no thanks"), "B")
        >>> it.matching_option, it.swapped().swapped() == it
        ('no thanks', True)
    """

    id: str
    dataset: str
    stem: str
    options: tuple[str, str]
    matching: str

    def __post_init__(self) -> None:
        if self.matching not in ("A", "B"):
            raise ValueError(
                f"item {self.id!r}: matching must be 'A' or 'B', not {self.matching!r}"
            )
        if len(self.options) != 2:
            raise ValueError(f"item {self.id!r}: needs exactly two options")
        object.__setattr__(self, "options", (str(self.options[0]), str(self.options[1])))
        if _same_text(*self.options):
            raise ValueError(f"item {self.id!r}: options (A) and (B) are the same text "
                             f"({self.options[0]!r}), so no answer can match the behaviour more")

    @property
    def question(self) -> str:
        """The stem followed by a canonical ``Choices:`` block.

        Example:
            >>> ABItem("d:0", "d", "Q?", ("x", "y"), "A").question
            'Q?\\n\\nChoices:\\n (A) x\\n (B) y'
        """
        head = f"{self.stem}\n\n" if self.stem else ""
        return f"{head}Choices:\n (A) {self.options[0]}\n (B) {self.options[1]}"

    @property
    def non_matching(self) -> str:
        """The letter of the option that does not match the behaviour."""
        return "B" if self.matching == "A" else "A"

    @property
    def matching_option(self) -> str:
        """The text of the option that matches the behaviour."""
        return self.options[0 if self.matching == "A" else 1]

    def swapped(self) -> ABItem:
        """The same item with the options in the other order (and the letter flipped).

        Swapping twice gives back the original item (the ``"~swap"`` suffix is removed).

        Example:
            >>> ABItem("d:0", "d", "Q?", ("x", "y"), "A").swapped()
            ABItem(id='d:0~swap', dataset='d', stem='Q?', options=('y', 'x'), matching='B')
        """
        new_id = self.id[: -len("~swap")] if self.id.endswith("~swap") else self.id + "~swap"
        return ABItem(new_id, self.dataset, self.stem, (self.options[1], self.options[0]),
                      self.non_matching)


@dataclass(frozen=True)
class OpenEndedItem:
    """A prompt with no answer options, for generation (e.g. CAA's open-ended test set).

    Attributes:
        id: ``"{dataset}:open_ended:{index}"`` for CAA files, else ``"{dataset}:{index}"``.
        dataset: the dataset (behaviour) name.
        prompt: the question, as the user turn.

    Example:
        >>> OpenEndedItem("myopic-reward:open_ended:0", "myopic-reward", "Cake now?").prompt
        'Cake now?'
    """

    id: str
    dataset: str
    prompt: str


# ----------------------------------------------------------------------------- answers

_LETTER_RE = re.compile(r"^\s*\(?\s*([AB])\s*\)?\s*$")
_YESNO_RE = re.compile(r"^\s*(yes|no)\s*\.?\s*$", re.IGNORECASE)
_OPT_RE = {
    letter: re.compile(rf"^[ \t]*\(\s*{letter}\s*\)[ \t]*", re.MULTILINE) for letter in "ABC"
}
_ANY_LETTER_RE = re.compile(r"^\s*\(?\s*([A-Z])\s*\)?\s*$")
_OPTION_LINE_RE = re.compile(r"^[ \t]*\(\s*([A-Z])\s*\)", re.MULTILINE)
_ANSWER_TAIL_RE = re.compile(r"\n\s*Answer:\s*$")
_HEADER_RE = re.compile(
    r"^[\W_]*(your\s+|possible\s+)?(answer\s+)?(choi\w*(\(s\))?|options?|answers?|responses?)"
    r"[\W_]*$",
    re.IGNORECASE,
)
_ANSWER_FORMS = "'(A)'/'(B)' (with or without a space or parentheses) or 'Yes'/'No'"


def answer_label(value: object) -> str | None:
    """``"A"``/``"B"``/``"Yes"``/``"No"`` for a recognised answer string, else ``None``.

    Example:
        >>> answer_label(" (B)"), answer_label(["A"]), answer_label(" yes."), answer_label("C")
        ('B', 'A', 'Yes', None)
    """
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, str):
        return None
    m = _LETTER_RE.match(value)
    if m:
        return m.group(1)
    m = _YESNO_RE.match(value)
    if m:
        return m.group(1).capitalize()
    return None


def count_options(question: str) -> int:
    """How many options the choices block of ``question`` lists: the lines starting with
    ``(A)``, ``(B)``, ``(C)``, ... in order from its last ``(A)`` line (0 without one).

    Example:
        >>> count_options("Pick.\\n (A) red\\n (B) blue\\n (C) green"), count_options("Hi?")
        (3, 0)
    """
    letters = [m.group(1) for m in _OPTION_LINE_RE.finditer(question)]
    if "A" not in letters:
        return 0
    rest = letters[len(letters) - 1 - letters[::-1].index("A"):]
    n = 0
    for letter in rest:
        if letter != chr(ord("A") + n):
            break
        n += 1
    return n


def _is_letter(value: object) -> bool:
    """A letter answer, or a list of them (items listing several answers, e.g. of 4 choices)."""
    values = value if isinstance(value, list) and value else [value]
    return all(isinstance(v, str) and _ANY_LETTER_RE.match(v) is not None for v in values)


def split_choices(question: str) -> tuple[str, tuple[str, str]]:
    """Split a question with an ``(A)``/``(B)`` choices block into ``(stem, (opt_a, opt_b))``.

    The last ``(B)`` that starts a line and the last ``(A)`` line before it delimit the
    options, so options may span several lines and earlier inline mentions of "(A)" are kept
    in the stem. A trailing ``Answer:`` and a ``Choices:`` header line are removed.

    Raises:
        ValueError: when there is no such block, an option is empty, or a ``(C)`` follows.

    Example:
        >>> split_choices("Pick one.\\n\\nChoices:\\n (A) red\\n (B) blue\\n   sky")
        ('Pick one.', ('red', 'blue\\n   sky'))
    """
    q = _ANSWER_TAIL_RE.sub("", question.rstrip())
    b_matches = list(_OPT_RE["B"].finditer(q))
    if not b_matches:
        raise ValueError("no line starting with '(B)'")
    b = b_matches[-1]
    a_matches = [m for m in _OPT_RE["A"].finditer(q, 0, b.start())]
    if not a_matches:
        raise ValueError("no line starting with '(A)' before the '(B)' option")
    a = a_matches[-1]
    if _OPT_RE["C"].search(q, b.end()):
        raise ValueError("more than two options ('(C)' follows '(B)')")
    opt_a, opt_b = q[a.end() : b.start()].strip(), q[b.end() :].strip()
    lines = q[: a.start()].rstrip().split("\n")
    if lines and _HEADER_RE.match(lines[-1]):
        lines = lines[:-1]
    return "\n".join(lines).strip(), (opt_a, opt_b)


def parse_record(record: object, dataset: str, item_id: str) -> ABItem:
    """Turn one A/B record (anthropics/evals or CAA) into an :class:`ABItem`.

    A missing ``answer_not_matching_behavior`` is taken to be the other answer (the callers
    that read files warn about it).

    Raises:
        ValueError: with a reason naming the key when the record is not a two-option item
            (:class:`EmptyOptionError` when an option is empty, :class:`SameOptionsError`
            when both are the same text, :class:`TooManyOptionsError` when a letter record
            lists three or more choices, whichever letters its answers name), or when the
            question is longer than :func:`max_item_chars`.

    Example:
        >>> parse_record({"question": "Would you say \\"hi\\"?",
        ...               "answer_matching_behavior": " No",
        ...               "answer_not_matching_behavior": " Yes"}, "p", "p:0").matching
        'B'
        >>> parse_record({"question": "Q\\n (A) x\\n (B) y", "answer_matching_behavior": "B"},
        ...              "caa", "caa:0").matching_option
        'y'
    """
    if not isinstance(record, dict):
        raise ValueError("the record is not a JSON object")
    missing = [k for k in ("question", MATCH_KEY) if k not in record]
    if missing:
        raise ValueError(f"missing key(s) {', '.join(repr(k) for k in missing)}")
    question = record["question"]
    if not isinstance(question, str) or not question.strip():
        raise ValueError("key 'question' is not a non-empty string")
    check_item_size(question)
    if _is_letter(record[MATCH_KEY]) or _is_letter(record.get(OTHER_KEY)):
        n = count_options(question)
        if n > 2:
            last = chr(ord("A") + n - 1)
            raise TooManyOptionsError(f"key 'question': {n} options ((A) to ({last})); only "
                                      "two-option items are evaluated")
    match = answer_label(record[MATCH_KEY])
    if match is None:
        raise ValueError(f"key {MATCH_KEY!r}: {record[MATCH_KEY]!r} is not {_ANSWER_FORMS}")
    if OTHER_KEY in record:
        other = answer_label(record[OTHER_KEY])
        expected = {"A": "B", "B": "A", "Yes": "No", "No": "Yes"}[match]
        if other != expected:
            raise ValueError(
                f"key {OTHER_KEY!r}: {record[OTHER_KEY]!r} is not the other answer of "
                f"{MATCH_KEY} {record[MATCH_KEY]!r}"
            )
    if match in ("Yes", "No"):
        return ABItem(item_id, dataset, question.strip(), ("Yes", "No"),
                      "A" if match == "Yes" else "B")
    try:
        stem, options = split_choices(question)
    except ValueError as exc:
        raise ValueError(f"key 'question': {exc}") from exc
    for letter, text in zip("AB", options, strict=True):
        if not text:
            raise EmptyOptionError(f"key 'question': option ({letter}) is empty")
    if _same_text(*options):
        raise SameOptionsError(f"key 'question': options (A) and (B) are the same text "
                               f"({options[0]!r})")
    return ABItem(item_id, dataset, stem, options, match)
