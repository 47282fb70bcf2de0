"""The parts of a typed evaluation result: one frozen dataclass per block of ``results.json``.

Every part is a :class:`Node`: ``Part.from_dict(block)`` reads a block, ``part.to_dict()``
writes it back **exactly** (same keys, same order, same values; a block's keys this version does
not know are kept in ``part.extra``, keys a block lacked stay absent). Intervals and short lists
become tuples (lists again in ``to_dict``); layer-keyed counts become ``int`` keys (strings
again in ``to_dict``, as JSON has them). The whole result and its schema note live in
:mod:`w2s_lens.evaluation.results.typed`.

Example:
    >>> block = {"steerability": 1.2, "steerability_ci": [0.9, 1.4], "new_key": 3}
    >>> s = Summary.from_dict(block)
    >>> s.steerability, s.steerability_ci, s.extra
    (1.2, (0.9, 1.4), {'new_key': 3})
    >>> s.to_dict() == block
    True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "FormRouter", "GroupOracle", "Keyed", "Node", "RouterComparison", "RouterTuning", "Summary",
    "ViewCost", "key", "nested",
]

# --------------------------------------------------------------------------- codecs


def _tuple(x: Any) -> Any:
    return tuple(x) if isinstance(x, list) else x


def _list(x: Any) -> Any:
    return list(x) if isinstance(x, tuple) else x


def _matrix_in(x: Any) -> Any:
    return tuple(_tuple(r) for r in x) if isinstance(x, list) else x


def _matrix_out(x: Any) -> Any:
    return [_list(r) for r in x] if isinstance(x, tuple) else x


def _int_keys_in(x: Any) -> Any:
    if not isinstance(x, Mapping):
        return x
    try:
        out = {int(k): v for k, v in x.items()}
    except (TypeError, ValueError):
        return dict(x)
    if len(out) < len(x):  # "03" and "3": one layer under two spellings
        a, b = sorted(k for k in x if sum(int(j) == int(k) for j in x) > 1)[:2]
        raise ValueError(f"keys {a!r} and {b!r} both read as layer {int(a)}; a results "
                         "block holds each layer once")
    return out


def _str_keys_out(x: Any) -> Any:
    return {str(k): v for k, v in x.items()} if isinstance(x, Mapping) else x


#: Node classes by name (every subclass of :class:`Node` adds itself), for nested codecs.
NODES: dict[str, type] = {}


TUPLE = (_tuple, _list)
MATRIX = (_matrix_in, _matrix_out)
INT_KEYS = (_int_keys_in, _str_keys_out)


def key(name: str | None = None, codec: tuple | None = None, *, stored: bool = True,
        default: Any = None, factory: Callable[[], Any] | None = None) -> Any:
    """A field of a :class:`Node`: its JSON key (default: the attribute's name), its codec
    ``(decode, encode)``; ``stored=False`` for attributes that are not part of the JSON.

    Example:
        >>> f = key("diff_vs_fixed_ci", TUPLE)  # ``diff_ci`` <-> JSON ``diff_vs_fixed_ci``
    """
    meta = {"key": name, "codec": codec, "stored": stored}
    if factory is not None:
        return field(default_factory=factory, metadata=meta, repr=stored, compare=stored)
    return field(default=default, metadata=meta, repr=stored, compare=stored)


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


def _stored_fields(cls: type) -> list[tuple[str, dataclasses.Field]]:
    out = []
    for f in dataclasses.fields(cls):
        if f.name not in ("extra", "order") and f.metadata.get("stored", True):
            out.append((f.metadata.get("key") or f.name, f))
    return out


# --------------------------------------------------------------------------- the base


@dataclass(frozen=True, kw_only=True)
class Node:
    """A block of ``results.json`` as a frozen dataclass that writes back what it read.

    Attributes:
        extra: the block's keys this version does not know, untouched.
        order: the block's keys in their original order (``None`` when built in code; an
            empty block read from ``{}`` has ``()`` and writes back ``{}``).

    Example:
        >>> r = RouterTuning.from_dict({"n_splits": 3, "best_params": {"C": 0.1}})
        >>> r.n_splits, r.to_dict()
        (3, {'n_splits': 3, 'best_params': {'C': 0.1}})
    """

    extra: dict[str, Any] = field(default_factory=dict, repr=False)
    order: tuple[str, ...] | None = field(default=None, repr=False, compare=False)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        NODES[cls.__name__] = cls

    def __post_init__(self) -> None:
        # a key of ``extra`` that a field also writes would be dropped by ``to_dict``
        shadowed = sorted(set(self.extra) & {k for k, _ in _stored_fields(type(self))})
        if shadowed:
            raise ValueError(f"{type(self).__name__}: extra keys {shadowed} are fields of the "
                             "block; set the fields instead")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Any:
        """Read one block (see the class docstring); unknown keys go to ``extra``.

        Example:
            >>> Summary.from_dict({"steerability": 0.5}).steerability
            0.5
        """
        if not isinstance(d, Mapping):
            raise TypeError(f"{cls.__name__}.from_dict expects a mapping, got {type(d).__name__}")
        known = _stored_fields(cls)
        names = {k for k, _ in known}
        kwargs: dict[str, Any] = {}
        for k, f in known:
            if k in d:
                codec = f.metadata.get("codec")
                kwargs[f.name] = codec[0](d[k]) if codec else d[k]
        extra = {k: v for k, v in d.items() if k not in names}
        return cls(**kwargs, extra=extra, order=tuple(d))

    def to_dict(self) -> dict[str, Any]:
        """The block as JSON-ready data, equal to the one read (keys in their original order).

        Example:
            >>> Summary(steerability=0.5).to_dict()["steerability"]
            0.5
        """
        known = dict(_stored_fields(type(self)))
        out: dict[str, Any] = {}

        def put(k: str) -> None:
            f = known[k]
            codec = f.metadata.get("codec")
            value = getattr(self, f.name)
            out[k] = codec[1](value) if codec else value

        read = self.order is not None
        for k in self.order or ():
            if k in known:
                put(k)
            elif k in self.extra:
                out[k] = self.extra[k]
        for k, f in known.items():  # built in code, or set after reading
            if k not in out and (not read or getattr(self, f.name) != _default(f)):
                put(k)
        out.update({k: v for k, v in self.extra.items() if k not in out})
        return out

    def has(self, name: str) -> bool:
        """Whether the block holds the field ``name`` (an attribute name): its key was read
        (even with the value ``null``), or it was set in code to something other than its
        default. Tells "not written by this version" from "written as ``None``": older results
        lack keys that newer ones write as ``null``.

        Example:
            >>> c = RouterComparison.from_dict({"diff_vs_fixed_mde": None})
            >>> c.has("mde"), c.has("p"), RouterComparison(p=0.5).has("p")
            (True, False, True)
        """
        fields = {f.name: f for f in dataclasses.fields(self)}
        f = fields.get(name)
        if f is None or name in ("extra", "order") or not f.metadata.get("stored", True):
            raise AttributeError(f"{type(self).__name__} has no stored field {name!r}")
        return (f.metadata.get("key") or f.name) in (self.order or ()) or \
            getattr(self, name) != _default(f)

    @property
    def empty(self) -> bool:
        """Whether the block holds nothing (``{}`` in ``results.json``).

        Example:
            >>> Summary.from_dict({}).empty, Summary().empty, Summary(steerability=0.1).empty
            (True, True, False)
        """
        return not self.extra and all(
            (f.metadata.get("key") or f.name) not in (self.order or ())
            and getattr(self, f.name) == _default(f) for _, f in _stored_fields(type(self)))


# --------------------------------------------------------------------------- statistics


@dataclass(frozen=True, kw_only=True)
class Summary(Node):
    """Mean steerability over the test inputs and the share of steerable ones, with 95% BCa
    intervals (the ``fixed`` and ``oracle`` blocks of a variant).

    Example:
        >>> Summary.from_dict({"steerability": 1.18, "steerability_ci": [0.94, 1.45]}).steerability
        1.18
    """

    steerability: float | None = None
    steerability_ci: tuple[float, float] | None = key(codec=TUPLE)
    steerable_fraction: float | None = None
    steerable_fraction_ci: tuple[float, float] | None = key(codec=TUPLE)


@dataclass(frozen=True, kw_only=True)
class RouterComparison(Summary):
    """One router against the fixed layer (``variants[v]["w2s"][router]``): its summary, the
    paired difference W2S − fixed with interval, sign-flip p-values (one-sided, greater and
    less), the test's name, the number of non-zero differences, the minimal detectable
    difference (MDE), the verdict, and the router's layer accuracy.

    Example:
        >>> c = RouterComparison.from_dict({"diff_vs_fixed": 0.02, "diff_vs_fixed_p": 0.37,
        ...     "diff_vs_fixed_verdict": "no detectable difference"})
        >>> c.diff, c.p, c.verdict
        (0.02, 0.37, 'no detectable difference')
    """

    accuracy: float | None = None
    majority_accuracy: float | None = None
    top3_accuracy: float | None = None
    diff: float | None = key("diff_vs_fixed")
    diff_ci: tuple[float, float] | None = key("diff_vs_fixed_ci", TUPLE)
    p: float | None = key("diff_vs_fixed_p")
    p_less: float | None = key("diff_vs_fixed_p_less")
    test: str | None = key("diff_vs_fixed_test")
    n_nonzero: int | None = key("diff_vs_fixed_n_nonzero")
    mde: float | None = key("diff_vs_fixed_mde")
    verdict: str | None = key("diff_vs_fixed_verdict")

    def verdict_text(self, labelled: bool = False) -> str:
        """The verdict to read: the recorded sign-flip verdict, or for results written before
        the sign-flip test (no ``verdict``) the older interval rule on ``diff_ci``, with its
        label when ``labelled`` (:func:`~w2s_lens.evaluation.stats.paired.verdict_of`).

        Example:
            >>> RouterComparison(diff_ci=(0.01, 0.2)).verdict_text(labelled=True)
            'W2S beats fixed beyond the noise (bootstrap CI (older))'
            >>> RouterComparison(verdict="too few informative items").verdict_text()
            'too few informative items'
        """
        from w2s_lens.evaluation.stats.paired import verdict_of

        return verdict_of(self.to_dict(), labelled=labelled)

    @property
    def test_name(self) -> str:
        """The name of the test behind :meth:`verdict_text` (``"bootstrap CI (older)"`` for
        results written before the sign-flip test).

        Example:
            >>> RouterComparison(test="sign-flip exact").test_name, RouterComparison().test_name
            ('sign-flip exact', 'bootstrap CI (older)')
        """
        from w2s_lens.evaluation.stats.paired import OLDER_TEST

        return str(self.test or OLDER_TEST)


@dataclass(frozen=True, kw_only=True)
class GroupOracle(Summary):
    """A group oracle: one best layer per group (``letter_oracle``: per matching letter, in
    ``layers``; ``form_oracle``: per answer form, in ``groups``, with ``group_sizes``).

    Example:
        >>> GroupOracle.from_dict({"layers": {"A": 11, "B": 15}}).layers
        {'A': 11, 'B': 15}
    """

    layers: dict[str, int] | None = None
    groups: dict[str, int] | None = None
    group_sizes: dict[str, int] | None = None


@dataclass(frozen=True, kw_only=True)
class FormRouter(RouterComparison):
    """The answer-form "router" of cloze runs: a layer per answer form (``groups``), compared
    with the fixed layer like the W2S routers; ``fallback`` lists forms unseen in training.

    Example:
        >>> FormRouter.from_dict({"groups": {"match-yes": 19}, "fallback": []}).groups
        {'match-yes': 19}
    """

    groups: dict[str, int] | None = None
    fallback: tuple[str, ...] | None = key(codec=TUPLE)


@dataclass(frozen=True, kw_only=True)
class RouterTuning(Node):
    """A router's cross-validated hyper-parameter choice (``methods[m]["router_cv"][router]``).

    Example:
        >>> t = RouterTuning.from_dict({"grid": [1, 3], "best_params": {"n_neighbors": 3}})
        >>> t.grid, t.best_params
        ((1, 3), {'n_neighbors': 3})
    """

    n_samples: int | None = None
    n_splits: int | str | None = None
    grid: tuple[Any, ...] | None = key(codec=TUPLE)
    grid_scores: tuple[float, ...] | None = key(codec=TUPLE)
    at_grid_edge: bool | None = None
    score_se: float | None = None
    within_one_se: int | None = None
    best_params: dict[str, Any] | None = None
    cv_score: float | None = None
    cv_scoring: str | None = None
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class ViewCost(Node):
    """What one router-view feature cost on one sweep's presentations (``view_costs`` in
    ``results.json``): unsteered passes only. ``features`` is ``question`` (the prompt's
    residual: free when the sweep captured it), ``options`` (one pass per option up to the
    embedding layer) or ``minilm``; the views combine them (``question+options`` costs
    both). ``cpu_s`` and ``wall_s`` were measured when the features were computed (a resumed
    run reads them back); None where they were computed before costs were kept.

    Example:
        >>> c = ViewCost.from_dict({"split": "train", "features": "options", "cpu_s": 3.0,
        ...                         "n_presentations": 2})
        >>> c.per_presentation_cpu_s
        1.5
    """

    split: str | None = None
    features: str | None = None
    cpu_s: float | None = None
    wall_s: float | None = None
    n_presentations: int | None = None
    note: str | None = None

    @property
    def per_presentation_cpu_s(self) -> float | None:
        """CPU seconds per presentation (None when not measured)."""
        if self.cpu_s is None or not self.n_presentations:
            return None
        return self.cpu_s / self.n_presentations


class Keyed(dict):
    """A ``{name: part}`` map whose missing keys say what exists (a plain ``dict`` otherwise).

    Example:
        >>> Keyed({"caa": 1}, what="method")["l2s"]
        Traceback (most recent call last):
        ...
        KeyError: "no method 'l2s' here; there are: caa"
    """

    def __init__(self, *args: Any, what: str = "entry", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.what = what

    def __missing__(self, name: Any) -> Any:
        have = ", ".join(map(str, self)) or "-"
        raise KeyError(f"no {self.what} {name!r} here; there are: {have}")

    def __reduce__(self) -> Any:
        return (Keyed, (dict(self),), {"what": self.what})


def nested(cls: str, shape: str = "one", what: str = "entry"
           ) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """The codec ``(decode, encode)`` of a field holding a part (``"one"``), a ``{name: part}``
    map (``"map"``, a :class:`Keyed` named ``what``) or a list of parts (``"list"``); ``cls`` is
    the part's class name, resolved at call time (so a part may nest itself).

    Example:
        >>> decode, encode = nested("Summary", "map")
        >>> encode(decode({"a": {"steerability": 1.0}}))
        {'a': {'steerability': 1.0}}
    """
    def one_in(x: Any) -> Any:
        return NODES[cls].from_dict(x) if isinstance(x, Mapping) else x

    def one_out(x: Any) -> Any:
        return x.to_dict() if isinstance(x, Node) else x

    if shape == "one":
        return one_in, one_out
    if shape == "map":
        return (lambda x: Keyed({k: one_in(v) for k, v in x.items()}, what=what)
                if isinstance(x, Mapping) else x,
                lambda x: {k: one_out(v) for k, v in x.items()} if isinstance(x, Mapping) else x)
    return (lambda x: tuple(one_in(v) for v in x) if isinstance(x, list) else x,
            lambda x: [one_out(v) for v in x] if isinstance(x, tuple) else x)
