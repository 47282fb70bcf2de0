"""Readings of typed results (w2s_lens.report.readings): verdicts old and new, the test and
MDE texts, and the letter / answer-form shares of the oracle's gain behind the warnings. The
blocks are written as results.json holds them and read with the typed nodes' from_dict."""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest

from w2s_lens.evaluation.results.nodes import GroupOracle, RouterComparison
from w2s_lens.evaluation.results.typed import EvaluationResult, VariantResult
from w2s_lens.evaluation.stats.metrics import evaluate_variant
from w2s_lens.evaluation.stats.paired import VERDICT_BETTER, VERDICT_NONE
from w2s_lens.report.readings import (
    FORM_ARTIFACT_THRESHOLD,
    FORM_ROUTER_THRESHOLD,
    LETTER_ARTIFACT_THRESHOLD,
    artifact_warnings,
    diff_test_text,
    form_gain_share,
    form_groups_text,
    form_router_share,
    letter_artifact,
    letter_gain_share,
    mde_reading,
    router_verdict,
)
from w2s_lens.sweep.result import SweepResult

R = EvaluationResult.from_dict({"methods": {}})


def _block(fixed: float, oracle: float, **oracles: float | None) -> VariantResult:
    out = {"fixed": {"steerability": fixed}, "oracle": {"steerability": oracle}}
    for key, value in oracles.items():
        out[key] = None if value is None else {"steerability": value}
    return VariantResult.from_dict(out)


def _c(**block) -> RouterComparison:
    """A router's comparison as results.json writes it (``diff_vs_fixed_*`` keys)."""
    return RouterComparison.from_dict(block)


def test_the_recorded_verdict_wins_and_older_results_fall_back_to_the_interval() -> None:
    block = {"diff_vs_fixed_ci": [0.05, 0.3]}
    assert router_verdict(_c(**block)).startswith(VERDICT_BETTER)
    assert router_verdict(_c(diff_vs_fixed_ci=[-0.1, 0.3])).startswith(VERDICT_NONE)
    assert router_verdict(_c(**block, diff_vs_fixed_verdict=VERDICT_NONE)) == VERDICT_NONE


def test_test_text_and_mde_reading() -> None:
    new = {"diff_vs_fixed_p": 0.0004, "diff_vs_fixed_p_less": 1.0, "diff_vs_fixed_n_nonzero": 12,
           "diff_vs_fixed_test": "sign-flip exact", "diff_vs_fixed_mde": 0.2,
           "diff_vs_fixed_verdict": VERDICT_BETTER}
    assert diff_test_text(_c(**new)) == ("p < 0.001 for W2S > fixed, p = 1 for W2S < fixed "
                                         "(sign-flip exact; 12 informative items)")
    assert mde_reading(_c(**new)) == "MDE +0.200 (80% power)"
    assert mde_reading(_c(**{**new, "diff_vs_fixed_verdict": VERDICT_NONE})) == (
        "none larger than +0.200 (80% power)")
    assert mde_reading(_c(**{**new, "diff_vs_fixed_mde": None})) == "–"
    assert mde_reading(_c(**{**new, "diff_vs_fixed_mde": float("inf")})) == "–"
    assert diff_test_text(_c(diff_vs_fixed_p=None)) == "–"
    with pytest.raises(AttributeError):
        diff_test_text(new)  # type: ignore[arg-type]  # the readings take the typed comparison


def test_gain_shares_need_the_oracle_to_beat_fixed() -> None:
    assert letter_gain_share(_block(0.1, 0.3, letter_oracle=0.2)) == pytest.approx(0.5)
    assert letter_gain_share(_block(0.1, 0.3, letter_oracle=None)) is None  # not applicable
    assert letter_gain_share(_block(0.3, 0.3, letter_oracle=0.3)) is None
    assert form_gain_share(_block(0.0, 0.4, form_oracle=0.3)) == pytest.approx(0.75)
    assert form_gain_share(_block(0.0, 0.4)) is None
    assert form_groups_text(None) == "–"
    assert form_groups_text(GroupOracle.from_dict({"groups": {"yes": 3, "no": None}})) == (
        "yes→3, no→–")


def test_warnings_only_above_the_thresholds_and_where_applicable() -> None:
    assert LETTER_ARTIFACT_THRESHOLD == FORM_ARTIFACT_THRESHOLD == 0.8
    both = _block(0.0, 1.0, letter_oracle=0.9, form_oracle=0.85)
    texts = artifact_warnings(EvaluationResult.from_dict({"length_norm": False, "methods": {}}),
                              "L2S", "sys-neg", both)
    assert [t.split(" (")[0] for t in texts] == ["Letter artifact suspected",
                                                   "Answer-form artifact suspected"]
    assert "90% of the oracle's gain" in texts[0] and "85% of the oracle's gain" in texts[1]
    assert artifact_warnings(R, "L2S", "x", _block(0.0, 1.0, letter_oracle=0.7,
                                                   form_oracle=0.79)) == []
    assert artifact_warnings(R, "L2S", "x", _block(0.0, 1.0, letter_oracle=None)) == []


def test_letter_artifact_uses_the_single_order_diagnostic() -> None:
    """Mirrored: each item's two orders peak at different layers, by letter. Averaged per
    item the letter cannot show; the single-order block shows it and is the one judged."""
    mult = [-1.0, 0.0, 1.0]
    ids, letters, slopes = [], [], []
    for i in range(8):
        first = "AB"[i % 2]
        for suffix, letter in (("", first), ("~swap", "B" if first == "A" else "A")):
            ids.append(f"d:{i}{suffix}")
            letters.append(letter)
            slopes.append([1.0 + 0.1 * i, 0.2] if letter == "A" else [0.2, 1.0 + 0.1 * i])
    prop = np.asarray(slopes)[:, :, None] * np.asarray(mult)[None, None, :]
    pres = SweepResult(prop, [4, 8], mult, ids, letters)
    items = pres.mirrored()
    block = evaluate_variant(items.steerability, items.matching_letters, 0, {}, n_boot=100)
    block["single_order"] = evaluate_variant(pres.steerability, pres.matching_letters, 0, {},
                                             n_boot=100)
    block = VariantResult.from_dict(block)
    share, basis = letter_artifact(block)
    assert basis == "single-order presentations" and share == pytest.approx(1.0)
    assert share >= LETTER_ARTIFACT_THRESHOLD
    assert (letter_gain_share(block) or 0.0) < LETTER_ARTIFACT_THRESHOLD


def test_the_form_router_share_and_its_threshold() -> None:
    assert FORM_ROUTER_THRESHOLD == 0.8
    assert form_router_share(_block(0.0, 1.0, form_router=0.8)) == pytest.approx(0.8)
    assert form_router_share(_block(0.0, 1.0)) is None
    texts = artifact_warnings(R, "CAA", "base", _block(0.0, 1.0, form_router=0.8))
    assert [t.split(" (")[0] for t in texts] == ["Answer-form router artifact suspected"]
    assert "under the summed log-probability readout" in texts[0]
    assert artifact_warnings(R, "CAA", "base", _block(0.0, 1.0, form_router=0.79)) == []
    assert diff_test_text(_c(diff_vs_fixed_p=0.2), ("xv oracle", "xv fixed")) == (
        "p = 0.2 for xv oracle > xv fixed (bootstrap (older results))")


def test_the_docstring_examples_run() -> None:
    """The examples in the docstrings (typed results in, the text shown out) hold."""
    failed, attempted = doctest.testmod(importlib.import_module("w2s_lens.report.readings"),
                                        optionflags=doctest.ELLIPSIS)
    assert failed == 0 and attempted > 0
