"""The readable account of layer advice (w2s_lens.evaluation.advice_text) on hand-built
:class:`Advice` values: the per-layer table and its bars, the fixed layer, the gain, the advised
layers (capped), the verification block and the cost (the advice computed from a model, and its
summary's main lines, are in test_advice.py)."""

from __future__ import annotations

import dataclasses

import numpy as np

from w2s_lens.evaluation.advice import Advice, Verification
from w2s_lens.evaluation.advice_text import advice_summary

TIMING = {"vectors": {"wall_s": 1.25, "cpu_s": 2.5}, "first_order": {"wall_s": 0.5, "cpu_s": 0.75},
          "total": {"wall_s": 2.0, "cpu_s": 3.5}}


def _advice(**changes) -> Advice:
    """Three items on layers 3, 5, 7; layer 5 is the best mean (the fixed layer)."""
    s = np.array([[0.2, 0.4, 0.1], [0.6, 0.2, 0.0], [0.1, 0.9, -0.3]])
    base = Advice(
        model="tiny", dataset="toy", readout="letter", scoring="sum", positions="from_last",
        mirrored=True, layers=(3, 5, 7), layer_scale=(1.0, 1.0, 1.0), ids=("a", "b", "c"),
        steerability=s, layer_mean=np.array([0.3, 0.5, -0.1]),
        layer_ci=np.array([[0.1, 0.5], [0.2, 0.8], [-0.3, 0.05]]), fixed_layer=5, gain=0.1333,
        gain_ci=(0.0, 0.4), item_layers=(5, 3, 5), n_train_items=8, n_vector_pairs=16,
        timing=TIMING)
    return dataclasses.replace(base, **changes)


def _verification(**changes) -> Verification:
    v = Verification(
        ids=("a", "b"), measured=np.zeros((2, 3)), first_order=np.zeros((2, 3)),
        spearman=np.array([0.5, 1.0]), spearman_median=0.75, best_layer_agreement=0.5,
        chance=1 / 3, measured_fixed_layer=3, first_order_choice=0.42, advised_fixed=0.3,
        measured_fixed=0.35, oracle=0.6, choice_vs_fixed_ci=(-0.05, 0.2),
        timing={"wall_s": 12.34, "cpu_s": 20.0})
    return dataclasses.replace(v, **changes)


def _layer_rows(text: str) -> dict[int, str]:
    lines = text.splitlines()
    start = next(i for i, x in enumerate(lines) if x.startswith("layer  mean")) + 1
    rows = {}
    for line in lines[start:]:
        if not line.strip():
            break
        rows[int(line.split()[0])] = line
    return rows


def test_the_header_names_what_was_advised_on() -> None:
    lines = advice_summary(_advice()).splitlines()
    assert lines[0] == ("first-order layer advice: tiny on toy (letter, positions from_last), 3 "
                        "items (both letter orders averaged)")
    assert lines[1] == "vectors: CAA from 8 training items (16 pairs)"
    cloze = advice_summary(_advice(readout="cloze", scoring="mean", mirrored=False,
                                   positions="all", n_vector_pairs=0)).splitlines()
    assert cloze[0] == "first-order layer advice: tiny on toy (cloze, mean, positions all), 3 items"
    assert cloze[1] == "vectors: given"  # no training pairs: the vectors were passed in


def test_one_row_per_layer_with_its_mean_interval_count_and_bar() -> None:
    rows = _layer_rows(advice_summary(_advice()))
    assert list(rows) == [3, 5, 7]
    assert rows[3] == "    3  +0.3000 ############          [+0.100, +0.500]          1"
    assert rows[5] == "    5  +0.5000 ####################  [+0.200, +0.800]          2  <- fixed"
    # a negative mean gets no bar; its interval keeps its signs
    assert rows[7] == "    7  -0.1000                       [-0.300, +0.050]          0"


def test_no_bars_when_no_layer_has_a_positive_mean() -> None:
    adv = _advice(layer_mean=np.array([-0.3, 0.0, -0.1]), fixed_layer=5)
    rows = _layer_rows(advice_summary(adv))
    assert all("#" not in row for row in rows.values())
    assert rows[5].endswith("<- fixed") and sum(r.endswith("<- fixed") for r in rows.values()) == 1


def test_the_fixed_layer_and_the_gain_are_given_with_their_intervals() -> None:
    text = advice_summary(_advice())
    assert ("recommended fixed layer: 5 (first-order steerability +0.5000, 95% CI [+0.200, "
            "+0.800])") in text.splitlines()
    assert "per-item layer choice could gain +0.1333 (95% CI [+0.000, +0.400]) over the fixed " \
           "layer by the first-order estimate: an in-sample upper bound" in text


def test_the_advised_layers_are_listed_up_to_max_items() -> None:
    ids = tuple(f"d:{i}" for i in range(15))
    layers = tuple((3, 5, 7)[i % 3] for i in range(15))
    adv = _advice(ids=ids, item_layers=layers, steerability=np.zeros((15, 3)))
    line = next(x for x in advice_summary(adv).splitlines() if x.startswith("advised layer"))
    shown = ", ".join(f"d:{i}={layers[i]}" for i in range(12))
    assert line == f"advised layer per item: {shown}, ... (3 more)"
    line = next(x for x in advice_summary(adv, max_items=2).splitlines()
                if x.startswith("advised layer"))
    assert line == "advised layer per item: d:0=3, d:1=5, ... (13 more)"
    short = advice_summary(_advice(), max_items=3)
    assert "advised layer per item: a=5, b=3, c=5" in short.splitlines()  # all shown: no "more"


def test_the_cost_of_each_stage_or_a_dash_where_not_timed() -> None:
    text = advice_summary(_advice())
    assert text.splitlines()[-1] == ("cost: vectors 1.2 s wall, 2.5 s CPU; first order 0.5 s "
                                     "wall, 0.8 s CPU; total 2.0 s wall, 3.5 s CPU")
    partial = advice_summary(_advice(timing={"total": {"wall_s": 9.0, "cpu_s": 1.0}}))
    assert partial.splitlines()[-1] == "cost: vectors -; first order -; total 9.0 s wall, 1.0 s CPU"


def test_without_verification_there_is_no_verification_block() -> None:
    text = advice_summary(_advice())
    assert "verified against" not in text and "Spearman" not in text


def test_the_verification_block_reports_agreement_and_measured_steerability() -> None:
    lines = advice_summary(_advice(verification=_verification())).splitlines()
    start = lines.index("verified against a real sweep of 2 items (12.3 s wall, 20.0 s CPU):")
    assert lines[start + 1:start + 6] == [
        "  median per-item Spearman across layers (first-order vs measured): +0.750",
        "  best-layer agreement: 0.50 (chance 0.33)",
        "  measured steerability: first-order choice +0.4200, advised fixed layer 5 +0.3000, "
        "measured fixed layer 3 +0.3500, oracle +0.6000",
        "  first-order choice − measured fixed: +0.0700 (95% CI [-0.050, +0.200]; the fixed "
        "layer and oracle are in-sample)",
        "",
    ]
    assert lines[start + 6].startswith("cost: ")


def test_an_undefined_median_correlation_and_an_untimed_sweep_read_as_such() -> None:
    v = _verification(spearman=np.array([np.nan, np.nan]), spearman_median=None, timing={})
    text = advice_summary(_advice(verification=v))
    assert "verified against a real sweep of 2 items (-):" in text.splitlines()
    assert "  median per-item Spearman across layers (first-order vs measured): n/a" in \
        text.splitlines()
