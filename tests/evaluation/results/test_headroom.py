"""The headroom parts of a typed result (w2s_lens.evaluation.results.headroom): every key the
headroom diagnostics write is a typed field, the JSON names that differ from the attributes
(``xv_oracle`` ...), nested parts, and exact write-back (the committed results' headroom blocks
round trip in test_typed.py)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from w2s_lens.evaluation.headroom.diagnostics import (
    cross_validated_oracle,
    learning_curve,
    retest_agreement,
)
from w2s_lens.evaluation.results.headroom import (
    CrossValidatedOracle,
    CurveRow,
    Headroom,
    HeadroomReading,
    LearningCurve,
    PairedDifference,
    Reading,
    Retest,
    Robustness,
    ViewReading,
)
from w2s_lens.evaluation.results.nodes import Keyed


@pytest.fixture(scope="module")
def diagnostics() -> dict:
    """A headroom block as :mod:`w2s_lens.evaluation.headroom.run` assembles it, from small
    steerability matrices, through JSON (as ``results.json`` holds it)."""
    s1 = np.array([[1.0, 0.0, 0.2], [0.0, 1.0, 0.1], [0.3, 0.0, 1.0], [1.0, 0.2, 0.0]] * 2)
    s2 = s1[:, [0, 2, 1]]
    retest = {**retest_agreement(s1, s2), "n_items": 8, "half_sizes": [4, 4],
              "layers": [3, 5, 7], "splits": ["retest-1", "retest-2"]}
    xv = cross_validated_oracle(s1, s2, n_boot=100)
    xv["xv_fixed_layers"] = [3, 5]
    s = np.array([[1.0, 0.0], [0.0, 1.0]] * 8)
    rows = learning_curve(s, s, s, s, ["knn"], sizes=[4, 16], repeats=2, n_boot=100)
    curve = {"rows": rows, "sizes": [4, 16], "repeats": 2, "strata": "matching letter",
             "note": "vectors and sweeps of the full training set"}
    return json.loads(json.dumps({"retest": retest, "xv": xv, "learning_curve": curve}))


def test_every_key_the_diagnostics_write_is_typed_and_written_back_exactly(diagnostics) -> None:
    d = copy.deepcopy(diagnostics)
    h = Headroom.from_dict(copy.deepcopy(d))
    assert h.retest.extra == {} and h.xv.extra == {} and h.learning_curve.extra == {}
    assert all(row.extra == {} for row in h.learning_curve.rows)
    assert h.to_dict() == d and json.dumps(h.to_dict()) == json.dumps(d)  # same key order
    assert Headroom.from_dict(h.to_dict()) == h


def test_typed_values_are_the_block_values_with_lists_as_tuples(diagnostics) -> None:
    d = copy.deepcopy(diagnostics)
    h = Headroom.from_dict(d)
    rt, xv, lc = h.retest, h.xv, h.learning_curve
    assert (rt.agreement, rt.kappa, rt.n_items) == (d["retest"]["agreement"],
                                                    d["retest"]["kappa"], 8)
    assert rt.matrix == tuple(tuple(r) for r in d["retest"]["matrix"])
    assert rt.half_sizes == (4, 4) and rt.layers == (3, 5, 7)
    assert rt.splits == ("retest-1", "retest-2")
    assert (xv.oracle, xv.fixed) == (d["xv"]["xv_oracle"], d["xv"]["xv_fixed"])
    assert xv.fixed_layers == (3, 5) and xv.ci == tuple(d["xv"]["ci"])
    assert (xv.diff, xv.p, xv.p_less, xv.mde, xv.verdict, xv.test, xv.n_nonzero) == tuple(
        d["xv"][k] for k in ("diff", "p", "p_less", "mde", "verdict", "test", "n_nonzero"))
    assert lc.sizes == (4, 16) and lc.repeats == 2 and lc.strata == "matching letter"
    assert all(isinstance(r, CurveRow) for r in lc.rows) and isinstance(lc.rows, tuple)
    assert [(r.n_train, r.router, r.repeats) for r in lc.rows] == [(4, "knn", 2),
                                                                   (16, "knn", 1)]
    assert lc.rows[0].ci == tuple(d["learning_curve"]["rows"][0]["ci"])


def test_the_oracle_fields_keep_their_json_names() -> None:
    xv = CrossValidatedOracle(oracle=1.5, fixed=1.0, fixed_layers=(3, 5), diff=0.5)
    out = xv.to_dict()
    assert out["xv_oracle"] == 1.5 and out["xv_fixed"] == 1.0 and out["xv_fixed_layers"] == [3, 5]
    assert not {"oracle", "fixed", "fixed_layers"} & set(out)
    assert CrossValidatedOracle.from_dict(out) == xv
    # the attribute names are not the JSON keys: a block using them keeps them as unknown keys
    odd = CrossValidatedOracle.from_dict({"oracle": 1.5})
    assert odd.oracle is None and odd.extra == {"oracle": 1.5}
    assert odd.has("skipped") is False and CrossValidatedOracle.from_dict(
        {"xv_fixed": None}).has("fixed")


def test_the_curve_rows_and_the_oracle_are_paired_differences() -> None:
    assert issubclass(CrossValidatedOracle, PairedDifference)
    assert issubclass(CurveRow, PairedDifference)
    row = CurveRow.from_dict({"n_train": 12, "ci": [0.1, 0.3], "verdict": "v", "later": 1})
    assert row.ci == (0.1, 0.3) and row.verdict == "v" and row.extra == {"later": 1}
    assert row.to_dict() == {"n_train": 12, "ci": [0.1, 0.3], "verdict": "v", "later": 1}


def test_skipped_blocks_and_absent_or_null_parts_write_back_as_read() -> None:
    skipped = {"retest": {"skipped": "given vectors"}, "xv": {"skipped": "given vectors"}}
    h = Headroom.from_dict(copy.deepcopy(skipped))
    assert h.retest.skipped == h.xv.skipped == "given vectors" and h.learning_curve is None
    assert h.to_dict() == skipped and "learning_curve" not in h.to_dict()
    null = Headroom.from_dict({"retest": None})
    assert null.retest is None and null.to_dict() == {"retest": None} and null.has("retest")
    assert not null.has("xv")
    assert Headroom.from_dict({}).to_dict() == {} and Headroom.from_dict({}).empty
    assert LearningCurve.from_dict({}).rows == () and LearningCurve.from_dict({}).to_dict() == {}


def test_parts_built_in_code_write_every_field_and_read_back_equal() -> None:
    h = Headroom(retest=Retest(kappa=0.5, matrix=((1, 0), (0, 1))),
                 learning_curve=LearningCurve(rows=(CurveRow(n_train=4, diff=0.1),)))
    d = h.to_dict()
    assert d["skipped"] is None and d["xv"] is None
    assert d["retest"]["matrix"] == [[1, 0], [0, 1]] and d["retest"]["kappa"] == 0.5
    assert d["learning_curve"]["rows"][0]["n_train"] == 4
    assert d["learning_curve"]["rows"][0]["diff"] == 0.1
    assert json.loads(json.dumps(d)) == d  # JSON-ready: no tuples, no parts left
    assert Headroom.from_dict(d) == h


def test_a_reading_holds_its_parts_and_its_views_by_name() -> None:
    block = {"headroom": {"holds": True, "text": "headroom +0.3"},
             "robustness": {"kappa": 0.7, "text": "robust"},
             "views": {"question": {"reading": "learned by question", "diff": 0.2,
                                    "ci": [0.1, 0.3], "mde": 0.05, "p": 0.01},
                       "options": {"reading": "no gain by options"}},
             "text": "headroom; robust; learned by question",
             "rules": {"version": 3}}
    r = Reading.from_dict(copy.deepcopy(block))
    assert isinstance(r.headroom, HeadroomReading) and r.headroom.holds is True
    assert isinstance(r.robustness, Robustness) and r.robustness.kappa == 0.7
    assert isinstance(r.views, Keyed) and list(r.views) == ["question", "options"]
    q = r.views["question"]
    assert isinstance(q, ViewReading) and q.ci == (0.1, 0.3) and q.p == 0.01
    assert r.views["options"].diff is None
    assert r.extra == {"rules": {"version": 3}}  # the rules travel untyped
    assert r.to_dict() == block
    with pytest.raises(KeyError, match="'minilm' here; there are: question, options"):
        r.views["minilm"]
