"""The headroom columns of the cross-dataset table (w2s_lens.report.tables.headroom_cells) on
hand-written method results: the cells read from the retest, the cross-validated oracle and the
answer-form router, the reading under the primary router, and the markdown section with its
dashes (the columns inside the whole table are checked in test_cross_dataset.py)."""

from __future__ import annotations

import pytest

from w2s_lens.evaluation.results.typed import MethodResult, VariantResult
from w2s_lens.report.tables.headroom_cells import (
    HEADROOM_COLUMNS,
    headroom_cells,
    headroom_markdown,
)

XV_BEATS = "the cross-validated oracle beats the cross-validated fixed layer beyond the noise"
BEATS = "W2S beats fixed beyond the noise"


def _method(headroom: dict | None, **base) -> MethodResult:
    block = {"fixed_layer": 4, "variants": {"base": {
        "n": 40, "fixed": {"steerability": 1.0},
        "w2s": {"logreg": {"diff_vs_fixed": 0.3, "diff_vs_fixed_mde": 0.05,
                           "diff_vs_fixed_p": 0.001, "diff_vs_fixed_verdict": BEATS},
                "knn": {"diff_vs_fixed": 0.0, "diff_vs_fixed_mde": 0.05,
                        "diff_vs_fixed_p": 0.5,
                        "diff_vs_fixed_verdict": "no detectable difference"}}, **base}}}
    if headroom is not None:
        block["headroom"] = headroom
    return MethodResult.from_dict(block)


HEADROOM = {"retest": {"n_items": 40, "agreement": 0.75, "chance": 0.25, "kappa": 0.66},
            "xv": {"diff": 0.4, "ci": [0.2, 0.6], "p": 0.002, "xv_fixed": 1.0, "mde": 0.1,
                   "verdict": XV_BEATS}}


def _row(**kw) -> dict:
    return {"dataset": "toy", "method": "caa", "readout": "letter-mirrored", "variant": "base",
            **kw}


# --------------------------------------------------------------------------- headroom_cells


def test_the_cells_are_the_diagnostics_numbers_and_the_reading() -> None:
    m = _method(HEADROOM, form_router={"diff_vs_fixed": -0.125, "groups": {"match-yes": 4}})
    cells = headroom_cells(m, m.variants["base"], "logreg")
    assert list(cells) == list(HEADROOM_COLUMNS)
    assert cells == {"agreement": 0.75, "kappa": 0.66, "xv_diff": 0.4, "xv_lo": 0.2,
                     "xv_hi": 0.6, "xv_p": 0.002, "form_router_diff": -0.125,
                     "case": m.evidence("logreg").text}
    assert cells["case"].startswith("headroom")


def test_the_reading_is_that_of_the_primary_router() -> None:
    m = _method(HEADROOM)
    by_logreg = headroom_cells(m, m.variants["base"], "logreg")["case"]
    by_knn = headroom_cells(m, m.variants["base"], "knn")["case"]
    assert by_logreg == m.evidence("logreg").text and by_knn == m.evidence("knn").text
    assert "learned by question" in by_logreg and by_logreg != by_knn


@pytest.mark.parametrize("headroom", [None, {}])
def test_results_without_headroom_diagnostics_have_empty_cells(headroom) -> None:
    m = _method(headroom)
    cells = headroom_cells(m, m.variants["base"], "logreg")
    assert cells == dict.fromkeys(HEADROOM_COLUMNS) and list(cells) == list(HEADROOM_COLUMNS)


def test_skipped_or_missing_parts_leave_their_cells_empty_but_the_reading_given() -> None:
    skipped = _method({"skipped": "--no-retest"})
    cells = headroom_cells(skipped, skipped.variants["base"], "logreg")
    assert all(cells[k] is None for k in HEADROOM_COLUMNS if k != "case")
    assert cells["case"].startswith("headroom not measured")
    partial = _method({"retest": {"kappa": 0.5}, "xv": None})  # no oracle block, no interval
    cells = headroom_cells(partial, partial.variants["base"], "logreg")
    assert (cells["kappa"], cells["agreement"]) == (0.5, None)
    assert (cells["xv_diff"], cells["xv_lo"], cells["xv_hi"], cells["xv_p"]) == (None,) * 4
    assert cells["form_router_diff"] is None  # a letter run has no answer-form router


def test_the_form_router_cell_is_read_from_the_row_given() -> None:
    m = _method(HEADROOM)
    cloze_base = VariantResult.from_dict({"form_router": {"diff_vs_fixed": 0.05}})
    assert headroom_cells(m, cloze_base, "logreg")["form_router_diff"] == 0.05


# --------------------------------------------------------------------------- headroom_markdown


def test_no_section_without_a_base_row_that_has_a_reading() -> None:
    assert headroom_markdown([]) == []
    assert headroom_markdown([_row(case=None), _row(case="")]) == []
    assert headroom_markdown([_row(variant="sys-neg", case="headroom")]) == []


def test_the_section_has_one_line_per_base_row_with_a_reading() -> None:
    rows = [_row(agreement=0.75, kappa=0.66, xv_diff=0.4, xv_lo=0.2, xv_hi=0.6, xv_p=0.00234,
                 diff=0.3, mde=0.05, form_router_diff=-0.125, case="headroom; learned"),
            _row(variant="sys-neg", case="not this one"),
            _row(dataset="other", method="l2s", readout="cloze", case="no headroom")]
    lines = headroom_markdown(rows)
    assert lines[0] == "" and lines[1].startswith("Is there anything to learn? (base test items")
    assert lines[2] == ""
    header, rule, *body = lines[3:]
    assert header.count("|") == rule.count("|") == 12 and set(rule) == {"|", "-"}
    assert body == [
        "| toy | caa | letter-mirrored | 0.75 | +0.66 | +0.400 [+0.200,+0.600] | 0.00234 | "
        "+0.300 | 0.050 | -0.125 | headroom; learned |",
        "| other | l2s | cloze | – | – | – [–,–] | – | – | – | – | no headroom |",
    ]
    assert all(line.count("|") == 12 for line in body)


def test_a_number_that_is_not_a_number_prints_as_a_dash_like_a_missing_one() -> None:
    from w2s_lens.report.tables.headroom_cells import _f
    assert _f(float("nan")) == _f(None) == "–"
    assert _f(0.25) == "+0.250"
