"""Readings that name their evidence: headroom, robustness to re-estimating the vector, and
whether each router view learned the headroom (w2s_lens.evaluation.results.evidence)."""

from __future__ import annotations

import pytest

from w2s_lens.evaluation.results.evidence import (
    HEADROOM_FRACTION,
    OOD_NOTE,
    POWER_RATIO,
    RULES_VERSION,
    method_evidence,
    read_evidence,
    reading_words,
    refresh_reading,
    variant_evidence,
)

BEATS_XV = "the cross-validated oracle beats the cross-validated fixed layer beyond the noise"
NONE = "no detectable difference"
BEATS = "W2S beats fixed beyond the noise"


def _hr(diff=0.5, fixed=1.0, verdict=BEATS_XV, kappa=0.9, n=64, mde=0.1):
    return {"xv": {"diff": diff, "ci": [diff - 0.2, diff + 0.2], "xv_fixed": fixed, "p": 1e-4,
                   "verdict": verdict, "mde": mde},
            "retest": {"kappa": kappa, "n_items": n}}


def _w2s(verdict=NONE, mde=0.2, diff=0.0, name="logreg", n_nonzero=40):
    return {name: {"diff_vs_fixed": diff, "diff_vs_fixed_ci": [diff - 0.1, diff + 0.1],
                   "diff_vs_fixed_mde": mde, "diff_vs_fixed_p": 0.4,
                   "diff_vs_fixed_verdict": verdict, "diff_vs_fixed_n_nonzero": n_nonzero}}


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


@pytest.mark.parametrize(("own", "n_nonzero"), [(None, 0), (0.00014, 1), (0.005, 3)])
def test_a_router_that_barely_moves_is_not_called_powered(own, n_nonzero) -> None:
    # its own MDE is tiny (or undefined) because it keeps the fixed layer almost everywhere;
    # whether a gain would have been seen is the oracle comparison's MDE (here 0.3 > 0.25)
    r = read_evidence(_hr(diff=0.5, mde=0.3), _w2s(NONE, own, n_nonzero=n_nonzero), 1.0,
                      "logreg", ("question",))
    assert r["views"]["question"]["reading"] == "underpowered for question"
    assert r["views"]["question"]["power_mde"] == 0.3
    powered = read_evidence(_hr(diff=0.5, mde=0.2), _w2s(NONE, own, n_nonzero=n_nonzero), 1.0,
                            "logreg", ("question",))
    assert powered["views"]["question"]["reading"] == "not learned by question at this power"
    unknown = read_evidence(_hr(diff=0.5, mde=None), _w2s(NONE, 0.01), 1.0, "logreg",
                            ("question",))
    assert unknown["views"]["question"]["reading"] == "underpowered for question"


def test_an_unmeasured_headroom_is_not_no_headroom() -> None:
    r = read_evidence({"xv": {"skipped": "given vectors"}}, _w2s(), 1.0, "logreg", ("question",))
    assert r["views"]["question"]["reading"] == "no gain by question (headroom not measured)"


def test_a_zero_or_unrecorded_fixed_effect_is_said() -> None:
    zero = read_evidence(_hr(fixed=0.0), {}, 0.0, "logreg", ())["headroom"]
    assert zero["holds"] is True and zero["share_of_fixed"] is None
    assert "the fixed layer's effect +0.000" in zero["text"]
    unknown = read_evidence(_hr(fixed=None), {}, None, "logreg", ())["headroom"]
    assert "not recorded" in unknown["text"]


def test_no_headroom_is_not_a_failure_to_learn() -> None:
    r = read_evidence(_hr(verdict=NONE), _w2s(), 1.0, "logreg", ("question",))
    assert r["views"]["question"]["reading"] == "no gain by question (no headroom to learn)"


def test_a_null_control_reads_differently_from_a_learned_headroom() -> None:
    views = ("question", "options")
    null = read_evidence(_hr(), {**_w2s(), **_w2s(name="logreg@options")}, 1.0, "logreg", views)
    learned = read_evidence(_hr(), {**_w2s(), **_w2s(BEATS, name="logreg@options")}, 1.0,
                            "logreg", views)
    assert null["text"] == ("headroom; robust to re-estimating the vector; not learned by "
                            "question at this power; not learned by options at this power")
    assert not any(part.startswith("learned by") for part in null["text"].split("; "))
    assert "learned by options" in learned["text"].split("; ")


def test_reading_words_prefer_a_stored_reading_under_todays_rules() -> None:
    block = {"headroom": _hr(), "variants": {"base": {"fixed": {"steerability": 1.0},
                                                      "w2s": _w2s()}}}
    made = reading_words(block, "logreg")
    assert made == read_evidence(_hr(), _w2s(), 1.0, "logreg", ("question",))["text"]
    current = {"text": "stored", "rules": {"version": RULES_VERSION}}
    assert reading_words({**block, "reading": current}, "logreg") == "stored"
    # stored under older rules (no version): read again
    assert reading_words({**block, "reading": {"text": "stored"}}, "logreg") == made


def test_refresh_rewrites_only_stale_readings() -> None:
    method = {"headroom": _hr(mde=0.3), "variants": {"base": {"fixed": {"steerability": 1.0},
                                                             "w2s": _w2s(NONE, 0.0001)}},
              "reading": {"text": "headroom; ...; not learned by question at this power"}}
    res = {"primary_router": "logreg", "router_inputs": ["question"],
           "methods": {"caa": method, "l2s": {"variants": {}}}}
    assert refresh_reading(res) == ["caa"]
    assert res["methods"]["caa"]["reading"]["text"].endswith("underpowered for question")
    assert res["methods"]["caa"]["reading"]["rules"]["version"] == RULES_VERSION
    assert "reading" not in res["methods"]["l2s"]
    assert refresh_reading(res) == []


def _ood_method():
    w2s = {**_w2s(NONE, 0.05, diff=0.0), **_w2s(BEATS, 0.05, diff=0.2, name="logreg@options"),
           **_w2s(BEATS, 0.05, diff=0.3, name="knn")}
    return {"headroom": _hr(), "variants": {
        "base": {"n": 200, "fixed": {"steerability": 1.0}, "w2s": _w2s(NONE, 0.2)},
        "sys-pos": {"n": 100, "fixed": {"steerability": 0.5}, "w2s": w2s}}}


def test_an_ood_variant_is_read_per_view_without_a_headroom():
    method = _ood_method()
    r = variant_evidence(method, "sys-pos", "logreg", ("question", "options"))
    assert r["headroom"]["reading"] == "headroom not measured" and OOD_NOTE in r["headroom"]["text"]
    assert r["robustness"]["reading"] == "robustness not measured"
    assert [v["reading"] for v in r["views"].values()] == [
        "no gain by question (headroom not measured)", "learned by options"]
    assert r["fixed_effect"] == 0.5 and r["primary"] == "logreg"
    # BASE is the method's own reading; an unknown variant is named
    assert variant_evidence(method, "base", "logreg")["text"] == \
        method_evidence(method, "logreg")["text"]
    with pytest.raises(KeyError, match="user-neg"):
        variant_evidence(method, "user-neg", "logreg")


def test_a_reading_is_for_one_router_kind():
    """A stored reading made for another kind is read again; a router name counts as its
    kind, so "logreg@options" never reads the options router's block as the question's."""
    method = _ood_method()
    method["variants"]["sys-pos"]["reading"] = variant_evidence(method, "sys-pos", "logreg")
    knn = variant_evidence(method, "sys-pos", "knn")
    assert knn["primary"] == "knn" and knn["views"]["question"]["reading"] == "learned by question"
    named = variant_evidence(method, "sys-pos", "logreg@options", ("question", "options"))
    assert named["primary"] == "logreg"
    assert named["views"]["question"]["reading"] == "no gain by question (headroom not measured)"
    assert method_evidence(method, "logreg@options")["primary"] == "logreg"


def test_refresh_adds_ood_readings_and_leaves_base_and_copies_alone():
    res = {"primary_router": "logreg", "router_inputs": ["question", "options"],
           "methods": {"caa": _ood_method()}}
    assert refresh_reading(res) == ["caa", "caa/sys-pos"]
    block = res["methods"]["caa"]["variants"]["sys-pos"]
    assert block["reading"]["rules"]["version"] == RULES_VERSION
    assert block["reading"]["views"]["options"]["reading"] == "learned by options"
    assert "reading" not in res["methods"]["caa"]["variants"]["base"]
    assert refresh_reading(res) == []
    # the reading holds copies: changing it leaves the router block as it was
    block["reading"]["views"]["options"]["ci"][0] = 99.0
    assert block["w2s"]["logreg@options"]["diff_vs_fixed_ci"][0] != 99.0
