"""Readings that name their evidence: headroom, robustness to re-estimating the vector, and
whether each router view learned the headroom (w2s_lens.evaluation.results.evidence)."""

from __future__ import annotations

import pytest

from w2s_lens.evaluation.results.evidence import (
    HEADROOM_FRACTION,
    POWER_RATIO,
    read_evidence,
    reading_words,
)

BEATS_XV = "the cross-validated oracle beats the cross-validated fixed layer beyond the noise"
NONE = "no detectable difference"
BEATS = "W2S beats fixed beyond the noise"


def _hr(diff=0.5, fixed=1.0, verdict=BEATS_XV, kappa=0.9, n=64):
    return {"xv": {"diff": diff, "ci": [diff - 0.2, diff + 0.2], "xv_fixed": fixed, "p": 1e-4,
                   "verdict": verdict},
            "retest": {"kappa": kappa, "n_items": n}}


def _w2s(verdict=NONE, mde=0.2, diff=0.0, name="logreg"):
    return {name: {"diff_vs_fixed": diff, "diff_vs_fixed_ci": [diff - 0.1, diff + 0.1],
                   "diff_vs_fixed_mde": mde, "diff_vs_fixed_p": 0.4,
                   "diff_vs_fixed_verdict": verdict}}


def test_headroom_needs_the_noise_and_a_share_of_the_fixed_effect() -> None:
    assert read_evidence(_hr(), {}, 1.0, "logreg", ())["headroom"]["holds"] is True
    small = read_evidence(_hr(diff=HEADROOM_FRACTION * 0.5), {}, 1.0, "logreg", ())
    assert small["headroom"]["holds"] is False
    assert "below 10% of the fixed effect" in small["headroom"]["text"]
    noise = read_evidence(_hr(verdict=NONE), {}, 1.0, "logreg", ())
    assert noise["headroom"]["reading"] == "no headroom"
    skipped = read_evidence({"xv": {"skipped": "given vectors"}}, {}, 1.0, "logreg", ())
    assert skipped["headroom"]["holds"] is None
    assert skipped["text"].startswith("headroom not measured")


def test_robustness_says_what_the_retest_measures() -> None:
    rob = read_evidence(_hr(kappa=0.9), {}, 1.0, "logreg", ())["robustness"]
    assert rob["reading"] == "robust to re-estimating the vector"
    assert "deterministic" in rob["text"] and "0.90" in rob["text"]
    assert read_evidence(_hr(kappa=0.1), {}, 1.0, "logreg", ())["robustness"]["reading"] == \
        "not robust to re-estimating the vector"
    assert read_evidence(_hr(kappa=None), {}, 1.0, "logreg", ())["robustness"]["reading"] == \
        "one layer best everywhere"


@pytest.mark.parametrize(("verdict", "mde", "expect"), [
    (BEATS, 0.2, "learned by options"),
    (NONE, POWER_RATIO * 0.5, "not learned by options at this power"),
    (NONE, POWER_RATIO * 0.5 + 0.01, "underpowered for options"),
])
def test_each_view_is_read_against_the_headroom(verdict, mde, expect) -> None:
    r = read_evidence(_hr(diff=0.5), _w2s(verdict, mde, name="logreg@options"), 1.0, "logreg",
                      ("options",))
    assert r["views"]["options"]["reading"] == expect
    assert r["text"].endswith(expect)


def test_no_headroom_is_not_a_failure_to_learn() -> None:
    r = read_evidence(_hr(verdict=NONE), _w2s(), 1.0, "logreg", ("question",))
    assert r["views"]["question"]["reading"] == "no gain by question (no headroom to learn)"


def test_a_null_control_reads_differently_from_a_learned_headroom() -> None:
    views = ("question", "options")
    null = read_evidence(_hr(), {**_w2s(), **_w2s(name="logreg@options")}, 1.0, "logreg", views)
    learned = read_evidence(_hr(), {**_w2s(), **_w2s(BEATS, name="logreg@options")}, 1.0,
                            "logreg", views)
    assert null["text"] != learned["text"]
    assert "learned by options" in learned["text"].split("; ")


def test_reading_words_prefer_the_stored_reading() -> None:
    block = {"headroom": _hr(), "variants": {"base": {"fixed": {"steerability": 1.0},
                                                      "w2s": _w2s()}}}
    made = reading_words(block, "logreg")
    assert made == read_evidence(_hr(), _w2s(), 1.0, "logreg", ("question",))["text"]
    assert reading_words({**block, "reading": {"text": "stored"}}, "logreg") == "stored"
