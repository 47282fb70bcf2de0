"""Deduplicating and splitting A/B items: no question on both sides of a split, letters balanced.

:func:`train_test_split` drops duplicate questions (:func:`deduplicate`, by
:func:`content_key`: the normalised stem and set of options, so the other letter order of an
item is the same question) and splits each stratum (dataset, matching letter, and for Yes/No
items the matching answer) in proportion; :func:`balanced` gives each item in both letter
orders. Re-exported by :mod:`w2s_lens.data.datasets`.

Example:
    >>> from w2s_lens.data.items import ABItem
    >>> items = [ABItem(f"d:{i}", "d", f"Q{i % 6}?", ("x", "y"), "AB"[i % 2])
    ...          for i in range(12)]
    >>> train, test = train_test_split(items, 0.5, seed=0, dedupe=False)
    >>> len(train), len(test), "".join(it.matching for it in test)
    (6, 6, 'BABABA')
    >>> [len(part) for part in train_test_split(deduplicate(items, warn=False), 0.5)]
    [3, 3]
"""

from __future__ import annotations

import math
import unicodedata
import warnings
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from w2s_lens.data.items import ABItem, DatasetWarning

__all__ = ["balanced", "content_key", "deduplicate", "normalised", "train_test_split"]


# ----------------------------------------------------------------------------- duplicates


def normalised(text: str) -> str:
    """NFKC, whitespace runs collapsed to one space, case folded.

    >>> normalised("  Stay\t ON? ")
    'stay on?'
    """
    return " ".join(unicodedata.normalize("NFKC", text).split()).casefold()


def content_key(item: ABItem) -> tuple[str, frozenset[str]]:
    """What makes two items the same question: the normalised stem and set of options.

    Normalising means Unicode NFKC, runs of whitespace collapsed to one space, and case
    folded. The options form a set, so the same item in the other letter order has the same
    key.

    Example:
        >>> a = ABItem("d:0", "d", "Stay  on?", ("Yes", "No"), "A")
        >>> content_key(a) == content_key(ABItem("d:9", "d", "stay on?", ("no", "yes"), "B"))
        True
    """
    return normalised(item.stem), frozenset(normalised(o) for o in item.options)


def deduplicate(items: Sequence[ABItem], warn: bool = True, stacklevel: int = 2
                ) -> list[ABItem]:
    """``items`` with one item per :func:`content_key` (the first, in order).

    Copies that disagree on the matching answer (the matching option's normalised text) are
    all dropped: the label of that question is contradictory, and keeping any copy would
    keep a coin-flip label. With ``warn``, one :class:`DatasetWarning` gives the counts.

    Example:
        >>> items = [ABItem("d:0", "d", "Q?", ("x", "y"), "A"),
        ...          ABItem("d:1", "d", "q?", ("y", "x"), "B"),
        ...          ABItem("d:2", "d", "R?", ("x", "y"), "A")]
        >>> [it.id for it in deduplicate(items, warn=False)]
        ['d:0', 'd:2']
    """
    groups: dict[tuple[str, frozenset[str]], list[int]] = defaultdict(list)
    for i, it in enumerate(items):
        groups[content_key(it)].append(i)
    keep: list[int] = []
    n_dup = n_dup_groups = n_bad = n_bad_groups = 0
    for members in groups.values():
        if len({normalised(items[i].matching_option) for i in members}) > 1:
            n_bad += len(members)
            n_bad_groups += 1
            continue
        keep.append(members[0])
        if len(members) > 1:
            n_dup += len(members) - 1
            n_dup_groups += 1
    if warn and (n_dup or n_bad):
        names = ", ".join(sorted({it.dataset for it in items}))
        parts = []
        if n_dup:
            parts.append(f"dropped {n_dup} duplicate item(s) in {n_dup_groups} group(s) "
                         "(same question and options after normalising whitespace and case)")
        if n_bad:
            parts.append(f"dropped all {n_bad} copies of {n_bad_groups} question(s) whose "
                         "copies disagree on the matching answer")
        warnings.warn(f"{names}: {'; '.join(parts)}", DatasetWarning, stacklevel=stacklevel)
    return [items[i] for i in sorted(keep)]


# ----------------------------------------------------------------------------- splits


def _stratum(item: ABItem) -> tuple[str, str, str]:
    opts = {normalised(o) for o in item.options}
    text = normalised(item.matching_option) if opts == {"yes", "no"} else ""
    return item.dataset, item.matching, text


def _allocate(sizes: list[int], n_train: int, rng: np.random.Generator) -> list[int]:
    """Largest-remainder allocation of ``n_train`` over strata (random tie-break)."""
    total = sum(sizes)
    quotas = [n_train * s / total for s in sizes]
    alloc = [math.floor(q) for q in quotas]
    tie = rng.random(len(sizes))
    order = sorted(range(len(sizes)), key=lambda k: (alloc[k] >= sizes[k],
                                                      -(quotas[k] - alloc[k]), tie[k]))
    for k in order[: n_train - sum(alloc)]:
        alloc[k] += 1
    return alloc


def _interleave(groups: list[list[ABItem]], offsets: np.ndarray) -> list[ABItem]:
    """Merge the groups so that every prefix holds each group in proportion (within one)."""
    keyed = [((j + offsets[g]) / len(members), g, it)
             for g, members in enumerate(groups) for j, it in enumerate(members)]
    return [it for _key, _g, it in sorted(keyed, key=lambda t: (t[0], t[1]))]


def train_test_split(
    items: Sequence[ABItem],
    train_fraction: float = 0.5,
    seed: int = 0,
    dedupe: bool = True,
    stratify: bool = True,
) -> tuple[list[ABItem], list[ABItem]]:
    """Deterministic seeded split into disjoint ``(train, test)`` lists.

    Args:
        items: the items.
        train_fraction: the train part has ``round(train_fraction * n)`` of the ``n`` items
            left after deduplication.
        seed: the split is a function of ``items`` and ``seed`` only.
        dedupe: first remove duplicate questions with :func:`deduplicate` (warning with the
            counts), so no test question also appears, in any letter order, in training.
        stratify: split each stratum (dataset, matching letter and, for Yes/No items, the
            matching answer) in the same proportion, so the letter counts of the train and
            test parts differ from ``train_fraction`` by less than one item per stratum; the
            strata are interleaved in proportion, so prefixes (``train[:n]``) are balanced
            too. ``False`` (with ``dedupe=False``) reproduces the plain permutation split of
            w2s-lens 0.1.

    Example:
        >>> its = [ABItem(f"d:{i}", "d", f"Q{i}?", ("x", "y"), "AB"[i % 2]) for i in range(10)]
        >>> tr, te = train_test_split(its, 0.6, seed=1)
        >>> len(tr), len(te), set(tr).isdisjoint(te), [it.matching for it in tr].count("A")
        (6, 4, True, 3)
    """
    if not 0.0 <= train_fraction <= 1.0:
        raise ValueError(f"train_fraction must be in [0, 1], not {train_fraction}")
    items = deduplicate(items, stacklevel=3) if dedupe else list(items)
    rng = np.random.default_rng(seed)
    n_train = int(round(train_fraction * len(items)))
    if not stratify:
        order = rng.permutation(len(items))
        return [items[i] for i in order[:n_train]], [items[i] for i in order[n_train:]]
    strata: dict[tuple[str, str, str], list[ABItem]] = defaultdict(list)
    for it in items:
        strata[_stratum(it)].append(it)
    keys = sorted(strata)
    groups = [[strata[k][i] for i in rng.permutation(len(strata[k]))] for k in keys]
    alloc = _allocate([len(g) for g in groups], n_train, rng) if items else []
    offsets = rng.random(len(groups))
    train = _interleave([g[:a] for g, a in zip(groups, alloc)], offsets)
    test = _interleave([g[a:] for g, a in zip(groups, alloc)], offsets)
    return train, test


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
