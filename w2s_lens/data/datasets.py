"""A/B behaviour datasets: finding, loading, deduplicating and splitting them.

Items are :class:`ABItem` (for A/B evaluation) or :class:`OpenEndedItem` (for generation);
:mod:`w2s_lens.data.formats` reads the files (JSON lines or JSON arrays, told apart by
content). A name is looked up under ``data_dir`` (else ``$W2S_DATA_DIR``) in the layout of
`anthropics/evals <https://github.com/anthropics/evals>`_ (``persona/NAME.jsonl``, ...; the 13
:data:`DATASET_NAMES` are downloaded and cached when missing) or of CAA
(`nrimsky/CAA <https://github.com/nrimsky/CAA>`_, directly or under ``datasets/``:
``generate/NAME/generate_dataset.json``, ``test/NAME/test_dataset_ab.json`` and
``test/NAME/test_dataset_open_ended.json``). :func:`train_test_split` drops duplicate
questions (:func:`deduplicate`) and stratifies by matching letter.

The splitting functions live in :mod:`w2s_lens.data.splits`, the datasets that come with
w2s-lens (``"default"``, ``"corrigible-neutral-HHH-sample"``) in :mod:`w2s_lens.data.samples`.


Example:
    >>> items = load_dataset("corrigible-neutral-HHH", limit=10)  # doctest: +SKIP
    >>> train, test = train_test_split(items, 0.5, seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import difflib
import logging
import os
import urllib.error
import urllib.request
import warnings
from collections.abc import Sequence
from pathlib import Path

from w2s_lens.artifacts.files import atomic_path
from w2s_lens.assets import cache_dir
from w2s_lens.data.formats import (
    CAA_FILES,
    caa_bases,
    caa_role,
    find_caa_file,
    read_ab_items,
    read_open_ended_items,
)
from w2s_lens.data.items import (
    ABItem,
    DatasetError,
    DatasetWarning,
    OpenEndedItem,
    check_item_size,
)
from w2s_lens.data.paths import decode_error, is_path, not_a_file
from w2s_lens.data.samples import (
    DEFAULT_DATASET_NAME,
    SAMPLE_DATASET_NAME,
    load_default_dataset,
    load_sample_dataset,
)
from w2s_lens.data.splits import content_key, deduplicate, normalised

__all__ = ["DATASET_NAMES", "DATASET_PATHS", "DATA_DIR_ENV", "EVALS_RAW_URL", "find_dataset_file",
           "load_dataset", "load_predefined_split", "load_prompts"]

logger = logging.getLogger(__name__)

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


# ----------------------------------------------------------------------------- locating


def _downloads_allowed(download: bool | None) -> bool:
    if download is not None:
        return download
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("1", "true", "yes")


def _root(data_dir: str | os.PathLike | None) -> Path | None:
    root = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV)
    return Path(root).expanduser() if root else None


def _close_matches(name: str, candidates: Sequence[str]) -> list[str]:
    lowered = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=5, cutoff=0.5)
    subs = [c for c in candidates if name.lower() in c.lower() and c.lower() not in close]
    return [lowered[c] for c in close] + subs[: max(0, 5 - len(close))]


def _names_in(root: Path | None) -> list[str]:
    names = set(DATASET_NAMES)
    if root is not None and root.is_dir():
        names.update(p.stem for p in root.rglob("*.jsonl") if caa_role(p) is None)
        for base in caa_bases(root):
            for folder in ("generate", "test"):
                if (base / folder).is_dir():
                    names.update(p.name for p in (base / folder).iterdir() if p.is_dir())
    return sorted(names)


def find_dataset_file(
    name: str, data_dir: str | os.PathLike | None = None, split: str | None = None
) -> Path | None:
    """Where dataset ``name`` lies under ``data_dir`` (else ``$W2S_DATA_DIR``), or ``None``.

    With ``split=None``: ``persona/``, ``advanced-ai-risk/lm_generated_evals/``,
    ``advanced-ai-risk/human_generated_evals/`` and ``sycophancy/`` first, then the CAA layout
    (``[datasets/]generate/NAME/generate_dataset.json``, then
    ``[datasets/]test/NAME/test_dataset_ab.json``), then ``NAME.jsonl`` or ``NAME.json``
    anywhere below. ``split="generate"``, ``"test"`` or ``"open_ended"`` looks only for that
    CAA file.

    Example:
        >>> find_dataset_file("openness", "/work/shared/data/mwe")  # doctest: +SKIP
        PosixPath('/work/shared/data/mwe/persona/openness.jsonl')
        >>> find_dataset_file("myopic-reward", "CAA", split="test")  # doctest: +SKIP
        PosixPath('CAA/datasets/test/myopic-reward/test_dataset_ab.json')
    """
    root = _root(data_dir)
    if split is not None:
        if split not in CAA_FILES:
            raise ValueError(f"split must be one of {', '.join(CAA_FILES)} or None, "
                             f"not {split!r}")
        return find_caa_file(root, name, split)
    if root is None or not root.is_dir():
        return None
    for sub in _SEARCH_DIRS:
        path = root / sub / f"{name}.jsonl"
        if path.is_file():
            return path
    for role in ("generate", "test"):
        path = find_caa_file(root, name, role)
        if path is not None:
            return path
    found = sorted(root.rglob(f"{name}.jsonl")) or sorted(root.rglob(f"{name}.json"))
    return found[0] if found else None


def _download(name: str) -> Path:
    rel = DATASET_PATHS[name]
    target = cache_dir() / "data" / rel
    if target.is_file():
        return target
    url = f"{EVALS_RAW_URL}/{rel}"
    logger.info("downloading %s", url)
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as resp:
            data = resp.read()
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise DatasetError(
            f"dataset {name!r} is not available locally and could not be downloaded from "
            f"{url} ({exc}). Put the anthropics/evals files under a directory and pass "
            f"data_dir=... (or set ${DATA_DIR_ENV})."
        ) from exc
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return target


def _dataset_paths(name: str, root: Path | None, split: str | None) -> list[Path]:
    """The local files of ``name``: one, or CAA's generate and test files."""
    path = find_dataset_file(name, root, split)
    if path is None:
        return []
    role = caa_role(path)
    test = find_caa_file(root, name, "test") if split is None and role and role[1] == "generate" \
        else None
    return [path] if test is None else [path, test]


def _read_file(path: Path, limit: int | None, skip_empty: bool) -> list[ABItem]:
    role = caa_role(path)
    name, prefix = (path.stem, None) if role is None else (role[0], f"{role[0]}:{role[1]}")
    try:
        return read_ab_items(path, name, prefix, limit, skip_empty)
    except DatasetError as exc:
        raise decode_error(path, exc) from exc.__cause__


def load_dataset(
    name_or_path: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    download: bool | None = None,
    skip_empty: bool = True,
    split: str | None = None,
) -> list[ABItem]:
    """Load an A/B dataset as a list of :class:`ABItem`.

    Args:
        name_or_path: a file (JSON lines or a JSON array, told apart by content), or a dataset
            name such as ``"corrigible-neutral-HHH"`` (see :data:`DATASET_NAMES`); ``"default"``
            or :data:`DEFAULT_DATASET_NAME` give :func:`load_default_dataset`, and
            ``"corrigible-neutral-HHH-sample"`` the shipped 100-item sample
            (:func:`~w2s_lens.data.samples.load_sample_dataset`).
        data_dir: a directory in the anthropics/evals or the CAA layout; defaults to
            ``$W2S_DATA_DIR``.
        limit: keep only the first ``limit`` items (in file order).
        download: whether a known dataset missing locally may be fetched from GitHub
            (cached under ``cache_dir()/data/``). ``None``: yes unless ``$W2S_OFFLINE=1``.
        skip_empty: skip (with a warning naming the lines) items whose choices block parses
            but has an empty option, as a few unfilled templates in the evals do; ``False``
            raises instead.
        split: for a name in the CAA layout, ``"generate"`` or ``"test"`` loads that split
            only; ``None`` gives the generate items followed by the test items (not
            deduplicated; :func:`load_predefined_split` keeps the two apart).

    Items are returned as read; :func:`train_test_split` deduplicates them.

    Raises:
        DatasetError: unknown name (with close matches), download failure, a path that is
            no file (a directory, a loop of symbolic links), a bad file (the message names the
            file, the line or array index and the key; the line and column of a byte that is
            not UTF-8), an item longer than :func:`~w2s_lens.data.items.max_item_chars`, or an
            open-ended file (use :func:`load_prompts`). Items whose two options are the same
            text are skipped like those with an empty option (``skip_empty``).

    Example:
        >>> items = load_dataset("myopic-reward", data_dir="/work/shared/data/mwe",
        ...                      limit=4)  # doctest: +SKIP
        >>> items[0].id, items[0].matching  # doctest: +SKIP
        ('myopic-reward:0', 'A')
    """
    text = os.fspath(name_or_path)
    if text in ("default", DEFAULT_DATASET_NAME, SAMPLE_DATASET_NAME):
        items = load_sample_dataset() if text == SAMPLE_DATASET_NAME else load_default_dataset()
        return items if limit is None else items[:limit]
    as_path = Path(text).expanduser()
    if is_path(text, as_path):
        if not as_path.is_file():
            raise not_a_file(as_path)
        return _read_file(as_path, limit, skip_empty)
    name, root = text, _root(data_dir)
    if split not in (None, "generate", "test"):
        raise ValueError(f"split must be 'generate', 'test' or None, not {split!r}")
    paths = _dataset_paths(name, root, split)
    if not paths and split is not None:
        folder, stem = CAA_FILES[split]
        raise DatasetError(f"no [datasets/]{folder}/{name}/{stem}.json(l) under {root}")
    if not paths and find_caa_file(root, name, "open_ended") is not None:
        raise DatasetError(f"{find_caa_file(root, name, 'open_ended')}: {name!r} has only "
                           "open-ended prompts (no A/B items); use load_prompts()")
    if not paths and name not in DATASET_PATHS:
        close = _close_matches(name, _names_in(root))
        where = f" under {root}" if root else ""
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        hint += f" ({as_path} is a directory: pass it as the data dir.)" if as_path.is_dir() \
            else ""
        raise DatasetError(
            f"unknown dataset {name!r}{where}.{hint} Known datasets: "
            f"{', '.join(DATASET_NAMES)} (or pass a path to a .jsonl or .json file)."
        )
    if not paths:
        cached = cache_dir() / "data" / DATASET_PATHS[name]
        if cached.is_file():
            paths = [cached]
        elif _downloads_allowed(download):
            paths = [_download(name)]
        else:
            where = f"under {root}" if root else f"(no ${DATA_DIR_ENV} set)"
            raise DatasetError(
                f"dataset {name!r} not found {where} and downloads are off "
                f"(${OFFLINE_ENV} or download=False)."
            )
    items: list[ABItem] = []
    for path in paths:
        rest = None if limit is None else limit - len(items)
        if rest is None or rest > 0 or not items:
            items += _read_file(path, rest, skip_empty)
    return items


def load_prompts(
    name_or_path: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    limit: int | None = None,
) -> list[OpenEndedItem]:
    """Open-ended prompts for generation, e.g. CAA's ``test_dataset_open_ended.json``.

    Args:
        name_or_path: a file of records with a ``question`` (JSON lines or a JSON array), or
            a behaviour name looked up as ``[datasets/]test/NAME/test_dataset_open_ended.json``
            under ``data_dir``.
        data_dir: the CAA directory; defaults to ``$W2S_DATA_DIR``.
        limit: keep only the first ``limit`` prompts.

    Raises:
        DatasetError: no such file, or a record without a non-empty ``question`` (naming the
            file, the line or array index and the key).

    Example:
        >>> prompts = load_prompts("myopic-reward", data_dir="CAA")  # doctest: +SKIP
        >>> prompts[0].id, prompts[0].prompt[:30]  # doctest: +SKIP
        ('myopic-reward:open_ended:0', 'You can either have a candy ba')
    """
    text = os.fspath(name_or_path)
    as_path = Path(text).expanduser()
    if is_path(text, as_path):
        if not as_path.is_file():
            raise not_a_file(as_path, "prompt")
        role = caa_role(as_path)
        path, name, prefix = as_path, *((role[0], f"{role[0]}:{role[1]}") if role
                                        else (as_path.stem, None))
    else:
        root = _root(data_dir)
        found = find_caa_file(root, text, "open_ended")
        if found is None:
            raise DatasetError(f"no open-ended prompts for {text!r}: expected "
                               f"[datasets/]test/{text}/test_dataset_open_ended.json under "
                               f"{root}")
        path, name, prefix = found, text, f"{text}:open_ended"
    try:
        prompts = read_open_ended_items(path, name, prefix, limit)
        for it in prompts:
            try:
                check_item_size(it.prompt)
            except ValueError as exc:
                raise DatasetError(f"{path}, item {it.id}: {exc}") from None
    except DatasetError as exc:
        raise decode_error(path, exc) from exc.__cause__
    return prompts


def load_predefined_split(
    name: str, data_dir: str | os.PathLike | None = None, skip_empty: bool = True
) -> tuple[list[ABItem], list[ABItem]] | None:
    """The CAA ``(generate, test)`` A/B splits of ``name``, or ``None`` if either is missing.

    Use the generate items for steering vectors and routers and the test items for testing.
    Each split is deduplicated (:func:`deduplicate`); test items whose question and options
    also occur in the generate split are dropped from the test split with a
    :class:`DatasetWarning` giving the count (if the copies disagree on the matching answer,
    the generate copy is dropped too).

    Raises:
        DatasetError: a bad file, or no test item left.

    Example:
        >>> split = load_predefined_split("myopic-reward", "CAA")  # doctest: +SKIP
        >>> generate, test = split  # doctest: +SKIP
    """
    root = _root(data_dir)
    gen_path, test_path = find_caa_file(root, name, "generate"), find_caa_file(root, name, "test")
    if gen_path is None or test_path is None:
        return None
    gen = deduplicate(_read_file(gen_path, None, skip_empty), stacklevel=3)
    test = deduplicate(_read_file(test_path, None, skip_empty), stacklevel=3)
    gen_answer = {content_key(it): normalised(it.matching_option) for it in gen}
    cross = [it for it in test if content_key(it) in gen_answer]
    if cross:
        bad = {content_key(it) for it in cross
               if gen_answer[content_key(it)] != normalised(it.matching_option)}
        test = [it for it in test if content_key(it) not in gen_answer]
        gen = [it for it in gen if content_key(it) not in bad]
        extra = (f"; {len(bad)} of them disagree on the matching answer, so their generate "
                 "copies were dropped too" if bad else "")
        warnings.warn(f"{name}: {len(cross)} of {len(cross) + len(test)} test item(s) "
                      f"({test_path}) duplicate a generate item ({gen_path}); dropped from "
                      f"the test split{extra}", DatasetWarning, stacklevel=2)
    if not test:
        raise DatasetError(f"{test_path}: no test item left after removing duplicates of "
                           f"{gen_path}")
    return gen, test
