"""The cost line said before an evaluation's first sweep: the count, the timed estimate, the
over-an-hour advice and a resumed run counting only what is left."""

import logging
import shutil
from itertools import count

import pytest

import w2s_lens.evaluation.cost as cost_mod
from w2s_lens.controls.synthetic import build_control
from w2s_lens.data.examples import SteeringExample
from w2s_lens.evaluation.config import EvalConfig
from w2s_lens.evaluation.context import EvalContext
from w2s_lens.evaluation.cost import (
    count_sweeps,
    effective_tokens,
    estimate_cost,
    format_seconds,
    steered_tokens,
)
from w2s_lens.evaluation.pipeline import evaluate_examples
from w2s_lens.evaluation.split import SplitExamples
from w2s_lens.evaluation.storage.rundir import RunDir

CFG = dict(dataset="synthetic", variants=("base",), routers=("logreg",), n_boot=50,
           cross_fit=3, retest_max_items=4)
# the control's layers 1..3 (layer 0 is not swept) and the 6 non-zero default multipliers
PER_PRESENTATION = 3 * 6


@pytest.fixture(scope="module")
def control():
    return build_control("positive", n_families=3, n_layers=4, seed=0)


def _split(control, n_train=12, n_test=6, variants=("base",)):
    train = control.make_examples(n_train, seed=1, both_orders=True)
    test = control.make_examples(n_test, seed=2, both_orders=True)
    return SplitExamples(vector_train=train, sweep_train=train,
                         test={v: test for v in variants})


def _fake_clock(deltas):
    """A clock whose successive timing calls take ``deltas`` seconds (warm-up first)."""
    ticks = iter([t for d in deltas for t in (0.0, d)])
    return lambda: next(ticks)


def test_count_formula(control):
    variants = ("base", "sys-pos")
    cfg = EvalConfig(**{**CFG, "variants": variants, "method": "both"})
    ctx = EvalContext(control.model, _split(control, variants=variants), cfg, None, False)
    sweeps = count_sweeps(ctx)
    # per method: train (12 items × 2 orders), two variants (6 × 2), two retests (4 × 2)
    expected = [(m, s, n) for m in ("caa", "l2s") for s, n in
                (("train", 24), ("base", 12), ("sys-pos", 12), ("retest-1", 8), ("retest-2", 8))]
    assert [(s.method, s.split, s.n_presentations) for s in sweeps] == expected
    est = estimate_cost(ctx, clock=_fake_clock([1.0, 3.0]))
    assert est.n_forward_equivalents == est.n_total == 2 * 64 * PER_PRESENTATION
    # one item (2 presentations) timed: 1 s unsteered, 3 s steered at the middle layer (2, of
    # mean depth: layers 1..3 of 4 run 3, 2, 1 blocks) → 1 s over the item's effective tokens,
    # and 1 s per presentation and layer
    item = cost_mod._timing_item(ctx.exs.sweep_train)
    per_token = 1.0 / effective_tokens(item)
    assert [s.n_tokens for s in sweeps[:2]] == [
        effective_tokens(exs) for exs in (ctx.exs.sweep_train, ctx.exs.test["base"])]
    expected = sum(s.n_tokens * per_token + s.n_presentations * 3 * 1.0 for s in sweeps)
    assert est.seconds_estimate == pytest.approx(expected)
    assert 128 * 3.3 < expected < 128 * 3.7  # the control's items are alike in length
    assert "2,304 forward-equivalents" in est.text
    assert cost_mod.format_seconds(expected) in est.text
    assert est.warning is None


def test_no_retest_and_warning_above_an_hour(control):
    cfg = EvalConfig(**{**CFG, "retest": False})
    ctx = EvalContext(control.model, _split(control), cfg, None, False)
    est = estimate_cost(ctx, clock=_fake_clock([100.0, 300.0]))
    assert [s.split for s in est.sweeps] == ["train", "base"]
    assert est.n_forward_equivalents == 36 * PER_PRESENTATION
    per_token = 100.0 / effective_tokens(cost_mod._timing_item(ctx.exs.sweep_train))
    assert est.seconds_estimate == pytest.approx(
        sum(s.n_tokens * per_token + s.n_presentations * 3 * 100.0 for s in est.sweeps))
    assert est.seconds_estimate > cost_mod.HOUR_S
    assert est.warning is not None
    for flag in ("--n-train/--n-test", "--layers", "--retest-items", "--variants base"):
        assert flag in est.warning
    assert cost_mod.format_seconds(est.seconds_estimate) in est.warning
    assert est.warning.startswith("this run would take about 3 h")


def test_real_timing_is_positive_and_cheap(control):
    ctx = EvalContext(control.model, _split(control), EvalConfig(**CFG), None, False)
    est = estimate_cost(ctx)
    assert 0 < est.seconds_estimate < 60
    assert est.n_forward_equivalents == 52 * PER_PRESENTATION


def test_line_logged_and_resumed_run_counts_what_is_left(control, tmp_path, caplog):
    cfg = EvalConfig(**CFG)
    with caplog.at_level(logging.INFO, logger="w2s_lens.evaluation.cost"):
        evaluate_examples(control.model, _split(control), cfg, tmp_path, progress=False)
    lines = [r.getMessage() for r in caplog.records if r.name == "w2s_lens.evaluation.cost"]
    assert len(lines) == 1 and lines[0].startswith(f"cost: {52 * PER_PRESENTATION:,} ")

    rd = RunDir(tmp_path)
    done = estimate_cost(EvalContext(control.model, _split(control), cfg, rd, False),
                         clock=_fake_clock([]))  # nothing left: nothing timed
    assert done.n_forward_equivalents == 0 and done.n_total == 52 * PER_PRESENTATION
    assert "nothing left" in done.text and done.seconds_estimate == 0

    shutil.rmtree(rd.sweep_dir("base", "caa") / "chunks")
    part = estimate_cost(EvalContext(control.model, _split(control), cfg, rd, False))
    assert part.n_forward_equivalents == 12 * PER_PRESENTATION
    assert f"{40 * PER_PRESENTATION:,} of {52 * PER_PRESENTATION:,} already on disk" in part.text


def test_over_an_hour_is_logged_as_a_warning(control, monkeypatch, caplog):
    monkeypatch.setattr(cost_mod, "HOUR_S", 0.0)
    ctx = EvalContext(control.model, _split(control), EvalConfig(**CFG), None, False)
    with caplog.at_level(logging.INFO, logger="w2s_lens.evaluation.cost"):
        cost_mod.log_cost(ctx, clock=_fake_clock([1.0, 2.0]))
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "--variants base" in warned[0].getMessage()


def test_format_seconds():
    assert [format_seconds(s) for s in (0.4, 59.6, 61, 3599, 7260)] == [
        "0 s", "1 min 00 s", "1 min 01 s", "59 min 59 s", "2 h 01 min"]


def test_clock_is_read_only_for_timing(control):
    calls = count()
    ctx = EvalContext(control.model, _split(control), EvalConfig(**CFG), None, False)

    def clock():
        next(calls)
        return 0.0

    estimate_cost(ctx, clock=clock)
    assert next(calls) == 4  # unsteered, steered: two reads each


def test_naive_engine_is_timed_per_layer(control):
    cfg = EvalConfig(**{**CFG, "engine": "naive", "retest": False})
    ctx = EvalContext(control.model, _split(control), cfg, None, False)
    est = estimate_cost(ctx, clock=_fake_clock([5.0, 4.0]))  # warm-up, then 4 s an item
    assert est.seconds_estimate == pytest.approx(36 * 3 * 2.0)


def test_effective_tokens_and_the_timing_item():
    def ex(unit, tokens, letter="A"):
        return SteeringExample(f"{unit}{letter}", "", tuple(tokens), 7, 8, letter, unit=unit)

    long_a = ex("u", range(300), "A")
    long_b = ex("u", [*range(290), *range(900, 910)], "B")
    short = [ex("v", range(20), "A"), ex("v", [*range(15), *range(50, 60)], "B")]
    assert effective_tokens([long_a, long_b]) == 290 + 10 + 10
    assert effective_tokens([long_a, long_b, ex("w", range(5))]) == 315
    assert effective_tokens(short) == 15 + 5 + 10
    # both letter orders of the item with the fewest effective tokens
    assert cost_mod._timing_item([long_a, long_b, *short]) == short


def test_steering_the_prompt_scales_the_steered_part_by_its_tokens(control):
    """Steering the prompt, a steered row holds the whole prompt: each sweep's steered part is
    scaled by its steered tokens per presentation against the timed item's (from the last
    prompt token on it is not: one prompt token per row)."""
    cfg = EvalConfig(**{**CFG, "retest": False, "positions": "prompt"})
    ctx = EvalContext(control.model, _split(control), cfg, None, False)
    sweeps = count_sweeps(ctx)
    assert [s.n_steered_tokens for s in sweeps] == [
        sum(len(ex.tokens) for ex in exs)
        for exs in (ctx.exs.sweep_train, ctx.exs.test["base"])]
    item = cost_mod._timing_item(ctx.exs.sweep_train)
    timed = steered_tokens(item, "prompt") / len(item)
    est = estimate_cost(ctx, clock=_fake_clock([1.0, 3.0]))
    per_token = 1.0 / effective_tokens(item)
    expected = sum(s.n_tokens * per_token + s.n_presentations * 3 * 1.0
                   * (s.n_steered_tokens / s.n_presentations) / timed for s in sweeps)
    assert est.seconds_estimate == pytest.approx(expected)
    plain = sum(s.n_tokens * per_token + s.n_presentations * 3 * 1.0 for s in sweeps)
    assert expected > plain  # the timed item is the shortest
    last = EvalContext(control.model, _split(control), cfg.replace(positions="from_last"),
                       None, False)
    assert [s.n_steered_tokens for s in count_sweeps(last)] == [24, 12]  # one token a row
    assert estimate_cost(last, clock=_fake_clock([1.0, 3.0])).seconds_estimate == \
        pytest.approx(plain)
