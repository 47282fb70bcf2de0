"""The headroom parts of a typed evaluation result, and the stored reading of a method.

``methods[m]["headroom"]`` (:class:`Headroom`: retest agreement, cross-validated oracle,
learning curve; see :mod:`w2s_lens.evaluation.headroom.run`) and ``methods[m]["reading"]``
(:class:`Reading`: the headroom reading, the best layers' robustness, one reading per router
view, and the whole in words). Like every part (:class:`~w2s_lens.evaluation.results.nodes.Node`)
each writes back exactly what it read.

Example:
    >>> h = Headroom.from_dict({"retest": {"kappa": 0.9}, "xv": {"skipped": "given vectors"}})
    >>> h.retest.kappa, h.xv.skipped, h.learning_curve
    (0.9, 'given vectors', None)
"""

from __future__ import annotations

from dataclasses import dataclass

from w2s_lens.evaluation.results.nodes import MATRIX, TUPLE, Node, key, nested

__all__ = [
    "CrossValidatedOracle", "CurveRow", "Headroom", "HeadroomReading", "LearningCurve",
    "PairedDifference", "Reading", "Retest", "Robustness", "ViewReading",
]


@dataclass(frozen=True, kw_only=True)
class Retest(Node):
    """Best-layer agreement between two sweeps with vectors from disjoint training halves
    (``skipped`` names why there is none).

    Example:
        >>> Retest.from_dict({"kappa": 0.9, "agreement": 0.92, "chance": 0.23}).kappa
        0.9
    """

    skipped: str | None = None
    n: int | None = None
    agreement: float | None = None
    chance: float | None = None
    kappa: float | None = None
    within_one: float | None = None
    rank_correlation: float | None = None
    matrix: tuple[tuple[int, ...], ...] | None = key(codec=MATRIX)
    n_items: int | None = None
    half_sizes: tuple[int, ...] | None = key(codec=TUPLE)
    layers: tuple[int, ...] | None = key(codec=TUPLE)
    splits: tuple[str, ...] | None = key(codec=TUPLE)


@dataclass(frozen=True, kw_only=True)
class PairedDifference(Node):
    """A paired difference over test inputs: mean, 95% interval, one-sided sign-flip p-values
    (greater, less), the test's name, non-zero differences, MDE and verdict.

    Example:
        >>> PairedDifference.from_dict({"diff": 0.5, "ci": [0.4, 0.8], "p": 0.001}).ci
        (0.4, 0.8)
    """

    diff: float | None = None
    ci: tuple[float, float] | None = key(codec=TUPLE)
    p: float | None = None
    p_less: float | None = None
    test: str | None = None
    n_nonzero: int | None = None
    mde: float | None = None
    verdict: str | None = None


@dataclass(frozen=True, kw_only=True)
class CrossValidatedOracle(PairedDifference):
    """Each input's layer chosen under one training half and scored under the other, against a
    fixed layer chosen the same way (``skipped`` names why there is none).

    Example:
        >>> CrossValidatedOracle.from_dict({"xv_oracle": 1.7, "xv_fixed": 1.2}).oracle
        1.7
    """

    skipped: str | None = None
    n: int | None = None
    oracle: float | None = key("xv_oracle")
    fixed: float | None = key("xv_fixed")
    fixed_layers: tuple[int, ...] | None = key("xv_fixed_layers", TUPLE)


@dataclass(frozen=True, kw_only=True)
class CurveRow(PairedDifference):
    """One learning-curve point: a router fitted on ``n_train`` training items (``repeats``
    seeded subsets), W2S − fixed on the test items.

    Example:
        >>> CurveRow.from_dict({"n_train": 12, "router": "logreg", "diff": 0.05}).n_train
        12
    """

    n_train: int | None = None
    router: str | None = None
    repeats: int | None = None
    accuracy: float | None = None
    majority_accuracy: float | None = None


@dataclass(frozen=True, kw_only=True)
class LearningCurve(Node):
    """W2S − fixed as the router sees more training items (``rows``, every router kind).

    Example:
        >>> LearningCurve.from_dict({"rows": [{"n_train": 12}], "sizes": [12]}).rows[0].n_train
        12
    """

    rows: tuple[CurveRow, ...] = key(codec=nested("CurveRow", "list"), factory=tuple)
    sizes: tuple[int, ...] | None = key(codec=TUPLE)
    repeats: int | None = None
    strata: str | None = None
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class Headroom(Node):
    """Is there a per-input layer to learn? Retest, cross-validated oracle, learning curve;
    ``skipped`` names why a whole block was not measured (e.g. ``--no-retest``).

    Example:
        >>> Headroom.from_dict({"retest": {"skipped": "given vectors"}}).retest.skipped
        'given vectors'
        >>> Headroom.from_dict({"skipped": "--no-retest"}).skipped
        '--no-retest'
    """

    skipped: str | None = None
    retest: Retest | None = key(codec=nested("Retest", "one"))
    xv: CrossValidatedOracle | None = key(codec=nested("CrossValidatedOracle", "one"))
    learning_curve: LearningCurve | None = key(codec=nested("LearningCurve", "one"))


# --------------------------------------------------------------------------- the reading


@dataclass(frozen=True, kw_only=True)
class HeadroomReading(Node):
    """Whether the headroom reading holds, in words.

    Example:
        >>> HeadroomReading.from_dict({"holds": True, "text": "stable"}).holds
        True
    """

    holds: bool | None = None
    text: str | None = None


@dataclass(frozen=True, kw_only=True)
class Robustness(Node):
    """How robust the best layers are (retest κ), in words.

    Example:
        >>> Robustness.from_dict({"kappa": 0.4, "text": "moderate"}).kappa
        0.4
    """

    kappa: float | None = None
    text: str | None = None


@dataclass(frozen=True, kw_only=True)
class ViewReading(Node):
    """The reading of one router view: its words, difference W2S − fixed with its 95%
    interval, MDE and p-value.

    Example:
        >>> ViewReading.from_dict({"reading": "no gain", "diff": 0.01, "ci": [-0.1, 0.12]}).ci
        (-0.1, 0.12)
    """

    reading: str | None = None
    diff: float | None = None
    ci: tuple[float, float] | None = key(codec=TUPLE)
    mde: float | None = None
    p: float | None = None


@dataclass(frozen=True, kw_only=True)
class Reading(Node):
    """The stored reading of one method (``methods[m]["reading"]``).

    Example:
        >>> r = Reading.from_dict({"views": {"options": {"reading": "x"}}, "text": "t"})
        >>> r.views["options"].reading, r.text
        ('x', 't')
    """

    headroom: HeadroomReading | None = key(codec=nested("HeadroomReading", "one"))
    robustness: Robustness | None = key(codec=nested("Robustness", "one"))
    views: dict[str, ViewReading] | None = key(codec=nested("ViewReading", "map"))
    text: str | None = None
