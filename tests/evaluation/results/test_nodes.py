"""The parts of a typed result (w2s_lens.evaluation.results.nodes): the codecs, ``key()`` fields
(renamed, unstored, with factories), exact write-back in the original key order with unknown
keys kept, ``has`` and ``empty``, the named ``Keyed`` map and the ``nested`` codecs, on a small
part defined here and on the statistics parts (the parts inside whole results are in
test_typed.py)."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
from dataclasses import dataclass

import pytest

from w2s_lens.evaluation.results.nodes import (
    INT_KEYS,
    MATRIX,
    NODES,
    TUPLE,
    FormRouter,
    GroupOracle,
    Keyed,
    Node,
    RouterComparison,
    RouterTuning,
    Summary,
    ViewCost,
    key,
    nested,
)


@dataclass(frozen=True, kw_only=True)
class ProbePart(Node):
    """A part with one field of each kind ``key()`` makes."""

    plain: int | None = None
    renamed: tuple[float, ...] | None = key("json_name", TUPLE)
    counts: dict[int, int] | None = key(codec=INT_KEYS)
    parts: tuple[Summary, ...] = key(codec=nested("Summary", "list"), factory=tuple)
    by_name: dict[str, Summary] | None = key(codec=nested("Summary", "map", "summary"))
    scratch: str | None = key(stored=False, default="not stored")


# --------------------------------------------------------------------------- codecs


def test_the_codecs_turn_json_lists_and_keys_into_python_values_and_back() -> None:
    decode, encode = TUPLE
    assert decode([1, 2]) == (1, 2) and encode((1, 2)) == [1, 2]
    assert decode(None) is None and encode(None) is None and decode("ab") == "ab"
    decode, encode = MATRIX
    assert decode([[1, 0], [0, 1]]) == ((1, 0), (0, 1))
    assert encode(((1, 0), (0, 1))) == [[1, 0], [0, 1]] and decode(None) is None
    decode, encode = INT_KEYS
    assert decode({"3": 5, "11": 1}) == {3: 5, 11: 1}
    assert encode({3: 5, 11: 1}) == {"3": 5, "11": 1}
    # keys that are not all integers are kept as they are, not half converted
    assert decode({"3": 1, "A": 2}) == {"3": 1, "A": 2} and decode(None) is None
    # one layer under two spellings would silently lose one of its values
    with pytest.raises(ValueError, match="'03' and '3' both read as layer 3"):
        decode({"03": 1, "7": 2, "3": 4})


def test_an_extra_key_that_a_field_writes_is_refused() -> None:
    with pytest.raises(ValueError, match=r"extra keys \['json_name', 'plain'\] are fields"):
        ProbePart(extra={"plain": 1, "json_name": [1.0], "later": 2})
    # keys no field writes are kept, and a field's attribute name that is not its key is
    # an unknown key like any other
    part = ProbePart(plain=1, extra={"later": 2, "renamed": 3})
    assert part.to_dict()["later"] == 2 and part.to_dict()["renamed"] == 3


def test_every_part_registers_itself_by_name() -> None:
    assert NODES["ProbePart"] is ProbePart and NODES["Summary"] is Summary
    assert all(issubclass(cls, Node) and cls.__name__ == name for name, cls in NODES.items())


# --------------------------------------------------------------------------- read and write


def test_fields_are_read_through_their_json_names_and_codecs() -> None:
    block = {"json_name": [0.5, 1.5], "plain": 3, "counts": {"7": 2},
             "parts": [{"steerability": 1.0}], "by_name": {"a": {"steerability": 2.0}}}
    p = ProbePart.from_dict(copy.deepcopy(block))
    assert p.renamed == (0.5, 1.5) and p.plain == 3 and p.counts == {7: 2}
    assert p.parts == (Summary(steerability=1.0),) and p.by_name["a"].steerability == 2.0
    assert isinstance(p.by_name, Keyed)
    assert p.extra == {} and p.scratch == "not stored"
    assert p.to_dict() == block and list(p.to_dict()) == list(block)  # same key order


def test_unknown_keys_are_kept_in_place_and_absent_keys_stay_absent() -> None:
    block = {"z_new": {"deep": [1]}, "plain": 1, "another": None}
    p = ProbePart.from_dict(copy.deepcopy(block))
    assert p.extra == {"z_new": {"deep": [1]}, "another": None}
    assert json.dumps(p.to_dict()) == json.dumps(block)
    assert p.parts == () and "parts" not in p.to_dict()  # the factory's default, not written


def test_an_unstored_field_is_neither_read_written_compared_nor_shown() -> None:
    p = ProbePart.from_dict({"scratch": "from the file", "plain": 1})
    assert p.scratch == "not stored" and p.extra == {"scratch": "from the file"}
    q = ProbePart(plain=1, scratch="set in code")
    assert "scratch" not in q.to_dict() and "set in code" not in repr(q)
    assert q == ProbePart(plain=1)
    with pytest.raises(AttributeError, match="ProbePart has no stored field 'scratch'"):
        q.has("scratch")


def test_fields_changed_after_reading_are_written_in_place_or_appended() -> None:
    s = Summary.from_dict({"steerability": 1.0, "x": 2, "steerability_ci": [0.0, 1.0]})
    cleared = dataclasses.replace(s, steerability_ci=None)  # read, then set back to None
    assert cleared.to_dict() == {"steerability": 1.0, "x": 2, "steerability_ci": None}
    added = dataclasses.replace(s, steerable_fraction=0.5)
    assert list(added.to_dict()) == ["steerability", "x", "steerability_ci",
                                     "steerable_fraction"]


def test_a_part_built_in_code_writes_every_stored_field_then_its_extra() -> None:
    out = Summary(steerability=1.0, extra={"later": True}).to_dict()
    assert out == {"steerability": 1.0, "steerability_ci": None, "steerable_fraction": None,
                   "steerable_fraction_ci": None, "later": True}
    assert list(out)[-1] == "later"
    assert ProbePart().to_dict() == {"plain": None, "json_name": None, "counts": None,
                                     "parts": [], "by_name": None}


def test_from_dict_refuses_what_is_not_a_mapping() -> None:
    with pytest.raises(TypeError, match="Summary.from_dict expects a mapping, got list"):
        Summary.from_dict([1])
    with pytest.raises(TypeError, match="got NoneType"):
        ProbePart.from_dict(None)


def test_equality_ignores_key_order_but_not_unknown_keys() -> None:
    a = Summary.from_dict({"steerability": 1.0, "steerability_ci": [0, 2]})
    b = Summary.from_dict({"steerability_ci": [0, 2], "steerability": 1.0})
    assert a == b and list(a.to_dict()) != list(b.to_dict())
    assert Summary.from_dict({"steerability": 1.0}) == Summary(steerability=1.0)
    assert Summary.from_dict({"u": 1}) != Summary.from_dict({"u": 2})
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.steerability = 2.0  # type: ignore[misc]


# --------------------------------------------------------------------------- has and empty


def test_has_tells_a_key_read_as_null_from_a_key_never_written() -> None:
    p = ProbePart.from_dict({"json_name": None})
    assert p.has("renamed") and not p.has("plain")  # the attribute name, not the JSON key
    assert ProbePart(plain=0).has("plain") and not ProbePart(plain=None).has("plain")
    for name in ("extra", "order", "json_name", "nothing"):
        with pytest.raises(AttributeError, match=f"no stored field '{name}'"):
            p.has(name)


def test_a_part_is_empty_only_when_it_holds_nothing() -> None:
    assert ProbePart.from_dict({}).empty and ProbePart().empty
    assert not ProbePart.from_dict({"plain": None}).empty  # the key is there, as null
    assert not ProbePart.from_dict({"unknown": 1}).empty
    assert not ProbePart(parts=(Summary(),)).empty
    assert ProbePart.from_dict({}).to_dict() == {}


# --------------------------------------------------------------------------- Keyed, nested


def test_a_missing_name_says_what_exists() -> None:
    routers = Keyed({"logreg": 1, "knn": 2}, what="router")
    with pytest.raises(KeyError, match="no router 'svm' here; there are: logreg, knn"):
        routers["svm"]
    with pytest.raises(KeyError, match="no entry 3 here; there are: -"):
        Keyed()[3]
    assert routers.get("svm") is None and "svm" not in routers  # plain dict look-ups stay
    assert routers == {"logreg": 1, "knn": 2}


def test_a_keyed_map_keeps_its_name_through_copies_and_pickles() -> None:
    routers = Keyed({"logreg": Summary(steerability=1.0)}, what="router")
    for again in (pickle.loads(pickle.dumps(routers)), copy.deepcopy(routers),
                  copy.copy(routers)):
        assert type(again) is Keyed and again.what == "router" and again == routers
        with pytest.raises(KeyError, match="no router 'x'"):
            again["x"]


def test_nested_codecs_read_parts_and_leave_other_values_alone() -> None:
    one_in, one_out = nested("Summary")
    part = one_in({"steerability": 1.0, "new": 1})
    assert isinstance(part, Summary) and part.extra == {"new": 1}
    assert one_out(part) == {"steerability": 1.0, "new": 1}
    assert one_in(None) is None and one_out(None) is None and one_in("x") == "x"
    map_in, map_out = nested("Summary", "map", "variant")
    read = map_in({"a": {"steerability": 1.0}})
    assert isinstance(read, Keyed) and read.what == "variant"
    assert map_out(read) == {"a": {"steerability": 1.0}} and map_in(None) is None
    list_in, list_out = nested("Summary", "list")
    rows = list_in([{"steerability": 1.0}, {}])
    assert rows == (Summary(steerability=1.0), Summary()) and list_out(rows) == [
        {"steerability": 1.0}, {}]
    assert list_in(None) is None and list_out(None) is None


def test_a_nested_codec_resolves_its_class_when_used() -> None:
    decode, _ = nested("NoSuchPart")  # naming a class that does not exist yet is allowed
    assert decode(None) is None
    with pytest.raises(KeyError, match="NoSuchPart"):
        decode({"a": 1})


# --------------------------------------------------------------------------- statistics parts


def test_a_router_comparison_reads_the_diff_vs_fixed_keys() -> None:
    block = {"steerability": 1.2, "accuracy": 0.5, "diff_vs_fixed": 0.1,
             "diff_vs_fixed_ci": [0.0, 0.2], "diff_vs_fixed_p": 0.04,
             "diff_vs_fixed_p_less": 0.96, "diff_vs_fixed_test": "sign-flip exact",
             "diff_vs_fixed_n_nonzero": 9, "diff_vs_fixed_mde": 0.08,
             "diff_vs_fixed_verdict": "no detectable difference"}
    c = RouterComparison.from_dict(copy.deepcopy(block))
    assert (c.diff, c.diff_ci, c.p, c.p_less, c.test, c.n_nonzero, c.mde, c.verdict) == (
        0.1, (0.0, 0.2), 0.04, 0.96, "sign-flip exact", 9, 0.08, "no detectable difference")
    assert c.extra == {} and c.to_dict() == block
    assert c.verdict_text() == "no detectable difference" and c.test_name == "sign-flip exact"


def test_group_oracles_form_routers_and_tuning_keep_their_maps() -> None:
    g = GroupOracle.from_dict({"steerability": 0.7, "groups": {"match-yes": 19},
                               "group_sizes": {"match-yes": 4}})
    assert g.groups == {"match-yes": 19} and g.layers is None and g.steerability == 0.7
    f = FormRouter.from_dict({"groups": {"a": 3}, "fallback": ["b"], "diff_vs_fixed": 0.2})
    assert f.fallback == ("b",) and f.diff == 0.2 and isinstance(f, RouterComparison)
    assert f.to_dict() == {"groups": {"a": 3}, "fallback": ["b"], "diff_vs_fixed": 0.2}
    t = RouterTuning.from_dict({"n_splits": "loo", "grid": [1, 3], "grid_scores": [0.5, 0.6]})
    assert t.n_splits == "loo" and t.grid == (1, 3) and t.grid_scores == (0.5, 0.6)


@pytest.mark.parametrize(("cpu_s", "n", "per"), [
    (3.0, 2, 1.5), (0.0, 4, 0.0), (None, 4, None), (3.0, 0, None), (3.0, None, None)])
def test_a_view_cost_per_presentation_needs_both_numbers(cpu_s, n, per) -> None:
    assert ViewCost(cpu_s=cpu_s, n_presentations=n).per_presentation_cpu_s == per
