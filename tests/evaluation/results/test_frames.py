"""Views of a typed result (w2s_lens.evaluation.results.frames) on small hand-written results:
missing numbers, the empty frame, the OOD and headroom sections of the summary, the repr's cap
and ``items.csv`` read from a folder or beside a file (the committed results' views, checked
against their dicts, are in test_typed.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from w2s_lens.artifacts.provenance import ArtifactMismatch
from w2s_lens.evaluation.results.evidence import RULES_VERSION, reading_words, variant_evidence
from w2s_lens.evaluation.results.frames import (
    ITEMS_COLUMNS,
    ITEMS_FILE,
    REPR_ROWS,
    comparison_frame,
    comparison_rows,
    headroom_reading,
    read_items,
    short_repr,
    summary_text,
    variant_reading,
)
from w2s_lens.evaluation.results.typed import EvaluationResult

BEATS = "W2S beats fixed beyond the noise"
NONE = "no detectable difference"


def _w2s(diff: float, verdict: str = NONE, **kw) -> dict:
    return {"steerability": 1.0 + diff, "steerability_ci": [0.8 + diff, 1.2 + diff],
            "diff_vs_fixed": diff, "diff_vs_fixed_ci": [diff - 0.1, diff + 0.1],
            "diff_vs_fixed_p": 0.25, "diff_vs_fixed_mde": 0.05, "diff_vs_fixed_verdict": verdict,
            **kw}


def _variant(**routers) -> dict:
    return {"n": 10, "fixed_layer": 4, "fixed": {"steerability": 1.0,
                                                 "steerability_ci": [0.8, 1.2]},
            "oracle": {"steerability": 1.5}, "w2s": routers}


def _result(methods: dict | None = None, **top) -> EvaluationResult:
    if methods is None:
        methods = {"caa": {"fixed_layer": 4, "variants": {"base": _variant(
            logreg=_w2s(0.125, BEATS), knn=_w2s(-0.5))}}}
    return EvaluationResult.from_dict({"model": "tiny", "dataset": "toy", "readout": "letter",
                                       "mirror": True, "n_train": 20, "n_test": 10,
                                       "split_seed": 0, "primary_router": "logreg",
                                       "embedding": "resid-last", "methods": methods, **top})


def _headroom() -> dict:
    return {"retest": {"n_items": 10, "agreement": 0.8, "chance": 0.25, "kappa": 0.7},
            "xv": {"diff": 0.3, "ci": [0.1, 0.5], "p": 0.004, "xv_fixed": 1.0, "mde": 0.1,
                   "verdict": "the cross-validated oracle beats the cross-validated fixed "
                              "layer beyond the noise"}}


# --------------------------------------------------------------------------- rows and frame


def test_rows_hold_the_numbers_and_none_where_a_block_is_missing() -> None:
    bare = {"diff_vs_fixed": 0.2}  # an older or partial router block
    r = _result({"caa": {"variants": {"base": {"n": 3, "w2s": {"knn@options": bare}}}}})
    (row,) = comparison_rows(r)
    assert (row["method"], row["variant"], row["router"], row["kind"], row["view"]) == (
        "caa", "base", "knn@options", "knn", "options")
    assert row["primary"] is False and row["n"] == 3 and row["diff"] == 0.2
    for col in ("fixed_layer", "fixed", "fixed_lo", "fixed_hi", "w2s", "w2s_lo", "oracle",
                "diff_lo", "diff_hi", "p", "verdict", "accuracy"):
        assert row[col] is None, col


def test_rows_take_both_ends_of_each_interval() -> None:
    (logreg, knn) = comparison_rows(_result())
    assert logreg["primary"] and not knn["primary"]
    assert (logreg["fixed"], logreg["fixed_lo"], logreg["fixed_hi"]) == (1.0, 0.8, 1.2)
    assert (logreg["w2s_lo"], logreg["w2s_hi"]) == (0.925, 1.325)
    assert (knn["diff"], knn["diff_lo"], knn["diff_hi"]) == (-0.5, -0.6, -0.4)
    assert logreg["oracle"] == 1.5 and logreg["fixed_layer"] == 4
    short = _result({"caa": {"variants": {"base": _variant(
        logreg={"diff_vs_fixed_ci": [0.1]})}}})  # a malformed interval: no ends
    assert (comparison_rows(short)[0]["diff_lo"], comparison_rows(short)[0]["diff_hi"]) == (
        None, None)


def test_the_frame_has_every_column_even_when_there_are_no_rows() -> None:
    full = comparison_frame(_result())
    empty = comparison_frame(_result({}))
    assert len(empty) == 0 and list(empty.columns) == list(full.columns)
    assert list(full.columns) == list(comparison_rows(_result())[0])
    assert full["router"].tolist() == ["logreg", "knn"] and full["diff"].tolist() == [0.125, -0.5]


# --------------------------------------------------------------------------- readings


def test_no_reading_without_headroom_or_a_stored_text() -> None:
    r = _result()
    assert headroom_reading(r, "caa") is None
    text_less = _result({"caa": {"reading": {"text": ""}, "variants": {}}})
    assert headroom_reading(text_less, "caa") is None
    with pytest.raises(KeyError, match="no method 'l2s' here; there are: caa"):
        headroom_reading(r, "l2s")


def test_the_reading_is_read_from_the_headroom_or_taken_as_stored() -> None:
    method = {"fixed_layer": 4, "headroom": _headroom(),
              "variants": {"base": _variant(logreg=_w2s(0.125, BEATS))}}
    r = _result({"caa": method})
    read = headroom_reading(r, "caa")
    assert read == reading_words(method, "logreg") and read.startswith("headroom")
    stored = {**method, "reading": {"text": "as stored", "rules": {"version": RULES_VERSION}}}
    assert headroom_reading(_result({"caa": stored}), "caa") == "as stored"


def test_an_ood_variant_is_read_without_headroom_and_base_as_the_method() -> None:
    method = {"fixed_layer": 4, "headroom": _headroom(),
              "variants": {"base": _variant(logreg=_w2s(0.125, BEATS)),
                           "sys-neg": _variant(logreg=_w2s(0.0))}}
    r = _result({"caa": method})
    ood = variant_reading(r, "caa", "sys-neg")
    assert ood == variant_evidence(method, "sys-neg", "logreg")["text"]
    assert ood.startswith("headroom not measured")
    assert variant_reading(r, "caa", "base") == headroom_reading(r, "caa")
    with pytest.raises(KeyError, match="no test variant 'user-pos'"):
        variant_reading(r, "caa", "user-pos")


# --------------------------------------------------------------------------- summary


def test_the_summary_table_marks_the_primary_router_and_dashes_missing_numbers() -> None:
    r = _result({"caa": {"fixed_layer": 4, "variants": {"base": {
        "n": 10, "w2s": {"logreg": _w2s(0.125, BEATS), "knn": {}}}}}})
    lines = summary_text(r).splitlines()
    assert lines[0].startswith("tiny · toy · letter readout, mirrored · n_train=20 n_test=10 "
                               "(split seed 0) · primary router=logreg")
    assert lines[2] == "caa: fixed layer 4"
    assert lines[3].split()[:3] == ["variant", "router", "L"] and set(lines[4]) == {"-"}
    assert len(lines[4]) == len(lines[3])
    primary, knn = lines[5], lines[6]
    assert primary.split()[:2] == ["base", "*logreg"] and knn.split()[:2] == ["base", "knn"]
    assert "+0.125 [+0.025,+0.225]" in primary and primary.endswith(BEATS)
    assert "0.25" in primary.split() and "0.050" in primary.split()
    # no fixed block and an empty router block: a dash for each number
    assert knn.split()[3:] == ["–", "–", "–", "[–,–]", "–", "–", "–"]
    assert knn.split()[2] == "–"  # the variant has no fixed layer: a dash, not "None"
    assert "Is there anything to learn?" not in summary_text(r)  # no headroom recorded
    assert "OOD variants" not in summary_text(r)


def test_the_summary_gives_the_retest_the_cross_validated_oracle_and_the_reading() -> None:
    method = {"fixed_layer": 4, "headroom": _headroom(),
              "variants": {"base": _variant(logreg=_w2s(0.125, BEATS))}}
    r = _result({"caa": method})
    lines = summary_text(r).splitlines()
    at = lines.index("Is there anything to learn? (caa, base test items)")
    assert lines[at + 1:at + 4] == [
        "  retest on 10 items: best-layer agreement 0.80 (chance 0.25), κ +0.70",
        "  cross-validated oracle − fixed: +0.300 [+0.100,+0.500]  p=0.004  the "
        "cross-validated oracle beats the cross-validated fixed layer beyond the noise",
        f"  reading: {headroom_reading(r, 'caa')}",
    ]


def test_a_skipped_retest_is_named_and_a_skipped_oracle_left_out() -> None:
    method = {"fixed_layer": 4, "variants": {"base": _variant(logreg=_w2s(0.0))},
              "headroom": {"retest": {"skipped": "given vectors"},
                           "xv": {"skipped": "given vectors"}}}
    lines = summary_text(_result({"caa": method})).splitlines()
    at = lines.index("Is there anything to learn? (caa, base test items)")
    assert lines[at + 1] == "  retest: skipped (given vectors)"
    assert lines[at + 2].startswith("  reading: headroom not measured; robustness not measured")
    assert not any("cross-validated oracle −" in x for x in lines)


def test_the_ood_variants_are_read_after_the_base_table() -> None:
    method = {"fixed_layer": 4, "variants": {"base": _variant(logreg=_w2s(0.1)),
                                             "sys-pos": _variant(logreg=_w2s(0.2, BEATS)),
                                             "user-neg": _variant(logreg=_w2s(0.0))}}
    r = _result({"caa": method})
    lines = summary_text(r).splitlines()
    at = lines.index("OOD variants (caa; routers trained on BASE):")
    assert lines[at + 1:] == [f"  sys-pos: {variant_reading(r, 'caa', 'sys-pos')}",
                              f"  user-neg: {variant_reading(r, 'caa', 'user-neg')}"]
    assert "learned by question" in lines[at + 1]


# --------------------------------------------------------------------------- repr


def test_the_repr_lists_primary_rows_up_to_its_cap_and_counts_the_rest() -> None:
    variants = {f"v{i:02d}": _variant(logreg=_w2s(0.01 * i), knn=_w2s(0.5))
                for i in range(REPR_ROWS + 2)}
    text = short_repr(_result({"caa": {"variants": variants}}))
    lines = text.splitlines()
    assert lines[0].startswith("EvaluationResult(tiny · toy · ") and lines[0].endswith(")")
    rows = [x for x in lines if x.startswith("  caa/")]
    assert len(rows) == REPR_ROWS and rows[0].startswith("  caa/v00: fixed L4 +1.000, W2S "
                                                         "+1.000, W2S − fixed +0.000 ")
    assert rows[-1].startswith(f"  caa/v{REPR_ROWS - 1:02d}:")
    assert "+0.500" not in text  # only the primary router's rows
    assert lines[REPR_ROWS + 1] == "  … 2 more"
    assert lines[-1] == "  (.summary() for every router, .to_pandas(), .items_frame(), " \
                        ".methods[...])"


def test_the_repr_shows_each_reading_and_dashes_a_missing_verdict() -> None:
    method = {"fixed_layer": 4, "headroom": _headroom(),
              "variants": {"base": _variant(logreg={"diff_vs_fixed": 0.1})}}
    r = _result({"caa": method})
    lines = short_repr(r).splitlines()
    assert lines[1].endswith("W2S − fixed +0.100 [–,–] p=–: –")
    assert f"  caa headroom: {headroom_reading(r, 'caa')}" in lines
    assert "…" not in short_repr(r)


# --------------------------------------------------------------------------- items.csv


def test_items_are_read_from_a_folder_or_beside_a_file(tmp_path: Path) -> None:
    (tmp_path / ITEMS_FILE).write_text("split,sweep,id,best_layer,s_L4\ntest,base,0012,4,0.5\n"
                                       "test,base,1e3,4,-0.25\n")
    (tmp_path / "results.json").write_text("{}")
    r = _result()
    by_folder = read_items(r, tmp_path)
    assert by_folder["id"].tolist() == ["0012", "1e3"]  # ids stay text, not numbers
    assert by_folder["s_L4"].tolist() == [0.5, -0.25]
    assert by_folder.equals(read_items(r, str(tmp_path / "results.json")))
    assert tuple(by_folder.columns[:3]) == ITEMS_COLUMNS


def test_items_refusals_name_the_file_and_what_to_do(tmp_path: Path) -> None:
    r = _result()
    with pytest.raises(ValueError, match=f"not loaded from a file: pass run_dir=.*{ITEMS_FILE}"):
        read_items(r)
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / ITEMS_FILE} does not exist: "
                                                ".*rerun `w2s-lens evaluate`"):
        read_items(r, tmp_path)
    (tmp_path / ITEMS_FILE).write_text("split,id,s_L4\ntest,a,0.5\n")
    with pytest.raises(ArtifactMismatch, match=f"{tmp_path / ITEMS_FILE} lacks the columns "
                                               "sweep; it is not a w2s-lens per-item table"):
        read_items(r, tmp_path)
