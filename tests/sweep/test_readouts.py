"""Tests for w2s_lens.sweep.readouts: read plans, weighted answer log-probabilities, slopes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_tiny_model

from w2s_lens.data.examples import SteeringExample
from w2s_lens.sweep.readouts import ReadPlan, final_logits, plan_propensity, read_plan, slopes


def _logprobs(model, tokens) -> torch.Tensor:
    """log-softmax of the model's own logits, ``[pos, vocab]`` (the reference readout)."""
    with torch.inference_mode():
        return model(torch.tensor([list(tokens)]))[0].float().log_softmax(-1)


def _final_resid(model, tokens) -> torch.Tensor:
    with torch.inference_mode():
        _, cache = model.run_with_cache(torch.tensor([list(tokens)]))
    return cache[f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"]


def test_letter_plan_is_one_row_and_a_logit_difference():
    ex = SteeringExample("d:0", "", (1, 2, 3, 4), 7, 8, "A")
    plan = read_plan(ex, start=3)
    assert plan.suffixes == [(4,)]
    assert plan.terms == [(0, 0, 7, 1.0), (0, 0, 8, -1.0)]
    plan_all = read_plan(ex, start=0)
    assert plan_all.suffixes == [(1, 2, 3, 4)] and plan_all.terms[0] == (0, 3, 7, 1.0)
    # no scoring changes anything for one-token answers
    assert read_plan(ex, 3, "mean") == plan == read_plan(ex, 3, scoring="first")
    with pytest.raises(ValueError, match="outside"):
        read_plan(ex, start=4)
    for bad in (True, "length_norm", None):  # the old bool argument is refused, not misread
        with pytest.raises(ValueError, match="scoring"):
            read_plan(ex, 3, bad)


def test_cloze_plan_rows_and_weights():
    ex = SteeringExample("d:0", "", (1, 2, 3), matching_continuation=(5, 6, 9),
                         non_matching_continuation=(5, 8))
    plan = read_plan(ex, start=2, scoring="mean")
    # the matching row carries the first answer token of both continuations
    assert plan.suffixes == [(3, 5, 6), (3, 5)]
    third, half = 1.0 / 3.0, 0.5
    assert sorted(plan.terms) == sorted([
        (0, 0, 5, third), (0, 0, 5, -half), (0, 1, 6, third), (0, 2, 9, third),
        (1, 1, 8, -half),
    ])
    # "first": one row, the prompt and the shared first token 5; the tokens they differ at
    # (6 against 8) read after it, not the shared 5 against itself (which would be 0)
    first = read_plan(ex, start=0, scoring="first")
    assert first.suffixes == [(1, 2, 3, 5)]
    assert first.terms == [(0, 3, 6, 1.0), (0, 3, 8, -1.0)]
    # different first tokens: the prompt row alone, both read at the last prompt token
    other = SteeringExample("d:1", "", (1, 2, 3), matching_continuation=(4, 6),
                            non_matching_continuation=(5,))
    assert read_plan(other, start=0, scoring="first") == \
        ReadPlan([(1, 2, 3)], [(0, 2, 4, 1.0), (0, 2, 5, -1.0)])
    # one a prefix of the other: the longer one's next token alone
    prefix = SteeringExample("d:2", "", (1, 2, 3), matching_continuation=(5,),
                             non_matching_continuation=(5, 7))
    assert read_plan(prefix, start=2, scoring="first") == ReadPlan([(3, 5)], [(0, 1, 7, -1.0)])



def _cloze_reference(model, ex, scoring):
    lp = []
    m, n = ex.continuations
    # "first": the sum over the continuations cut after the first token they differ at
    j = next(j for j in range(min(len(m), len(n)) + 1)
             if j == min(len(m), len(n)) or m[j] != n[j])
    for cont in ex.continuations:
        if scoring == "first":
            cont = cont[: j + 1]
        full = ex.tokens + cont[:-1]
        logp = _logprobs(model, full)
        n = len(ex.tokens)
        total = sum(float(logp[n - 1 + j, t]) for j, t in enumerate(cont))
        lp.append(total / len(cont) if scoring == "mean" else total)
    return lp[0] - lp[1]


@pytest.mark.parametrize("scoring", ["sum", "mean", "first"])
@pytest.mark.parametrize("conts", [((5, 6, 9), (5, 8)), ((5,), (8, 8)), ((11, 3), (12,))])
def test_plan_propensity_equals_summed_log_probs(tiny_model, conts, scoring):
    ex = SteeringExample("d:0", "", (1, 2, 3), matching_continuation=conts[0],
                         non_matching_continuation=conts[1])
    start = 1
    plan = read_plan(ex, start, scoring)
    prefix = ex.tokens[:start]
    rows = [_final_resid(tiny_model, prefix + s)[0] for s in plan.suffixes]
    width = max(r.shape[0] for r in rows)
    resid = torch.zeros(len(rows), width, tiny_model.cfg.d_model)
    for i, r in enumerate(rows):
        resid[i, : r.shape[0]] = r
    terms = [[(r, start + p, t, w) for r, p, t, w in plan.terms]]
    with torch.inference_mode():
        got = float(plan_propensity(tiny_model, resid, terms)[0])
    want = _cloze_reference(tiny_model, ex, scoring)
    assert got == pytest.approx(want, abs=1e-4)


def test_letter_propensity_is_the_logit_difference(tiny_model):
    tokens = (4, 9, 1, 33)
    resid = _final_resid(tiny_model, tokens)
    with torch.inference_mode():
        logits = tiny_model(torch.tensor([tokens]))[0, -1]
    with torch.inference_mode():
        got = plan_propensity(tiny_model, resid, [[(0, 3, 7, 1.0), (0, 3, 8, -1.0)],
                                                  [(0, 3, 8, 1.0), (0, 3, 7, -1.0)]])
    want = float(logits[7] - logits[8])
    assert got.dtype == torch.float32
    assert got.tolist() == pytest.approx([want, -want], abs=1e-4)
    assert plan_propensity(tiny_model, resid, [[]]).tolist() == [0.0]


def test_groups_sharing_a_site_are_scored_independently(tiny_model):
    tokens = (4, 9, 1, 33)
    resid = _final_resid(tiny_model, tokens)
    logp = _logprobs(tiny_model, tokens)[3]
    with torch.inference_mode():
        got = plan_propensity(tiny_model, resid, [[(0, 3, 5, 1.0)], [(0, 3, 6, -1.0)]])
    assert got.tolist() == pytest.approx([float(logp[5]), -float(logp[6])], abs=1e-4)


def test_readout_is_float32_on_a_bfloat16_model():
    model = make_tiny_model("rotary", seed=3)
    model.to(torch.bfloat16)
    assert model.cfg.dtype == torch.bfloat16
    resid = _final_resid(model, (4, 9, 1, 33))
    assert resid.dtype == torch.bfloat16
    with torch.inference_mode():
        got = plan_propensity(model, resid, [[(0, 3, 5, 1.0), (0, 2, 6, -0.5)]])
    assert got.dtype == torch.float32
    # reference: the final norm in bfloat16, then the unembedding and softmax in float32
    with torch.inference_mode():
        normed = model.ln_final(resid)[0].float()
        logp = (normed @ model.W_U.float() + model.b_U.float()).log_softmax(-1)
    want = float(logp[3, 5]) - 0.5 * float(logp[2, 6])
    assert float(got[0]) == pytest.approx(want, abs=1e-5)
    with torch.inference_mode():
        cols = final_logits(model, resid[0], torch.tensor([5, 6]))
    assert cols.dtype == torch.float32 and cols.shape == (4, 2)


def test_slopes_least_squares():
    mults = [-1.0, 0.0, 1.0, 2.0]
    prop = np.array([[1.0, 3.0, 5.0, 7.0], [0.0, 0.0, 0.0, 0.0]])
    assert np.allclose(slopes(prop, mults), [2.0, 0.0])
    noisy = np.array([0.1, 0.9, 2.2, 2.8])
    assert np.isclose(slopes(noisy, mults), np.polyfit(mults, noisy, 1)[0])
    cube = np.arange(24, dtype=float).reshape(2, 3, 4)
    assert slopes(cube, mults).shape == (2, 3)
    with pytest.raises(ValueError, match="two distinct"):
        slopes(prop, [1.0, 1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="multipliers"):
        slopes(prop, [0.0, 1.0])


def test_many_sites_needing_the_normaliser(tiny_model):
    """More sites than one full-vocabulary chunk: every one still gets its own log-softmax."""
    g = torch.Generator().manual_seed(0)
    resid = torch.randn(3, 40, tiny_model.cfg.d_model, generator=g)
    groups = [[(r, p, (7 * r + p) % 64, 1.0)] for r in range(3) for p in range(40)]
    with torch.inference_mode():
        got = plan_propensity(tiny_model, resid, groups)
        logp = (tiny_model.ln_final(resid) @ tiny_model.W_U + tiny_model.b_U).log_softmax(-1)
    want = [float(logp[r, p, t]) for ((r, p, t, _),) in groups]
    assert got.tolist() == pytest.approx(want, abs=1e-4)


def test_stack_rows_lays_out_every_plan_s_rows_in_order():
    from w2s_lens.data.examples import SteeringExample
    from w2s_lens.sweep.readouts import read_plan, stack_rows

    long = SteeringExample("d:0", "", (1, 2), matching_continuation=(5, 6),
                           non_matching_continuation=(7, 8, 9))
    short = SteeringExample("d:1", "", (3,), 4, 5, "A")  # a letter example: one row
    plans = [read_plan(long, 1), read_plan(short, 0), read_plan(long, 1)]
    row_ex, rows, first = stack_rows(plans)
    assert first == [0, 2, 3] and row_ex == [0, 0, 1, 2, 2]
    assert rows == [*plans[0].suffixes, *plans[1].suffixes, *plans[2].suffixes]
