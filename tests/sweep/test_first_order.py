"""Tests for w2s_lens.sweep.first_order: the first-order steerability against the sweep.

(a) on the linear-readout control (logits linear in the steering) it is the sweep's OLS slope
to float precision; (b) on tiny random models it is a central finite difference of the
sweep's propensity; (c) the fast engine equals the reference; (d) shapes, ids, layer order
and scales align with run_sweep's; and the curvature check's numbers. The label-free score
is tested in test_label_free.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_tiny_model
from test_attention import gqa_model
from test_engines import LAYERS, _examples, _vectors
from test_runner import _examples as _pair_examples

from w2s_lens.controls.synthetic import build_control
from w2s_lens.steering.vectors import InputVectors, SteeringVectors, model_name, train_caa
from w2s_lens.sweep.engines import naive_chunk
from w2s_lens.sweep.first_order import (
    first_order,
    first_order_chunk,
)
from w2s_lens.sweep.first_order_result import FirstOrderResult
from w2s_lens.sweep.runner import run_sweep


@pytest.fixture(scope="module", params=["rotary", "standard", "gqa"])
def model(request):
    if request.param == "gqa":
        return gqa_model()
    return make_tiny_model(request.param, seed=0 if request.param == "rotary" else 1)


@pytest.mark.parametrize("positions", ["from_last", "all", "prompt"])
@pytest.mark.parametrize("readout, scoring", [("letter", "sum"), ("cloze", "sum"),
                                              ("cloze", "mean")])
def test_fast_equals_reference(model, readout, scoring, positions):
    exs = _examples(readout)
    vecs = _vectors(len(exs), len(LAYERS), model.cfg.d_model)
    fast, p_fast = first_order_chunk(model, vecs, LAYERS, exs, positions, scoring, "fast")
    ref, p_ref = first_order_chunk(model, vecs, LAYERS, exs, positions, scoring, "reference")
    assert fast.shape == ref.shape == (len(exs), len(LAYERS)) and p_fast.shape == (len(exs),)
    scale = np.abs(ref).max()
    assert scale > 1.0  # not vacuous
    assert np.abs(fast - ref).max() <= 1e-5 * scale
    assert np.abs(p_fast - p_ref).max() <= 1e-5


def test_prompt_positions_differ_from_all_only_with_continuations(model):
    """``prompt`` steers the prompt only: the letter readout has no continuation rows (same
    as ``all``), the cloze readout's continuation tokens are not steered (differs)."""
    vecs = _vectors(len(_examples("letter")), len(LAYERS), model.cfg.d_model)
    for readout, same in (("letter", True), ("cloze", False)):
        exs = _examples(readout)
        a, _ = first_order_chunk(model, vecs, LAYERS, exs, "all")
        p, _ = first_order_chunk(model, vecs, LAYERS, exs, "prompt")
        assert np.allclose(a, p, atol=1e-6) == same


@pytest.mark.parametrize("positions", ["from_last", "all"])
@pytest.mark.parametrize("readout, scoring", [("letter", "sum"), ("cloze", "sum"),
                                              ("cloze", "mean")])
def test_matches_central_finite_difference(model, readout, scoring, positions):
    """The sweep's own (naive) engine at λ = ±h, ±2h: the five-point central difference.

    These random vectors (norm ~6) dwarf the tiny model's residual, so p(λ) bends within
    |λ| ~ 0.01; at h = 1e-3 the stencil's O(h⁴) error is ~1e-4 of the largest slope (h = 3e-3:
    up to 8e-3, h = 1e-2: up to 0.16; the two-point difference at 1e-3: up to 3e-3)."""
    exs = _examples(readout)
    vecs = _vectors(len(exs), len(LAYERS), model.cfg.d_model)
    h = 1e-3
    p = naive_chunk(model, vecs, LAYERS, [-2 * h, -h, h, 2 * h], exs, positions,
                    scoring=scoring)
    fd = (8 * (p[..., 2] - p[..., 1]) - (p[..., 3] - p[..., 0])) / (12 * h)
    grad, _ = first_order_chunk(model, vecs, LAYERS, exs, positions, scoring, "fast")
    assert np.abs(grad - fd).max() <= 5e-4 * np.abs(fd).max()


def _linear_control():
    c = build_control("linear")
    exs = c.make_examples(6, seed=1, both_orders=True)
    meta = {"model": model_name(c.model), "d_model": c.model.cfg.d_model}
    g = torch.Generator().manual_seed(0)
    layers = list(range(1, c.n_layers))  # layer 0's attention finds the key: not linear
    caa = SteeringVectors(torch.randn(len(layers), c.model.cfg.d_model, generator=g), layers,
                          metadata=meta)
    per_input = InputVectors(torch.randn(len(exs), len(layers), c.model.cfg.d_model,
                                         generator=g), layers, [e.id for e in exs],
                             metadata=meta)
    return c, exs, caa, per_input


@pytest.mark.parametrize("positions", ["from_last", "all"])
@pytest.mark.parametrize("kind", ["caa", "input"])
def test_linear_control_equals_sweep_slope(kind, positions):
    c, exs, caa, per_input = _linear_control()
    vectors = caa if kind == "caa" else per_input
    scale = [0.5, 2.0, 0.25]
    sweep = run_sweep(c.model, vectors, exs, positions=positions, layer_scale=scale,
                      progress=False)
    # the readout is linear in λ: every sweep point lies on its line
    fit = sweep.propensity[..., :1] + np.asarray(sweep.multipliers) * sweep.steerability[
        ..., None] - sweep.multipliers[0] * sweep.steerability[..., None]
    assert np.abs(sweep.propensity - fit).max() < 1e-4
    for engine in ("fast", "reference"):
        fo = first_order(c.model, vectors, exs, positions=positions, layer_scale=scale,
                         engine=engine, curvature=True)
        tol = 1e-5 * np.abs(sweep.steerability).max()
        assert np.abs(sweep.steerability).max() > 1.0
        assert np.abs(fo.steerability - sweep.steerability).max() <= tol
        assert np.abs(fo.mirrored().steerability
                      - sweep.mirrored().steerability).max() <= tol
        assert np.abs(fo.endpoint_slope - sweep.steerability).max() <= tol
        assert np.abs(fo.cubic_slope - sweep.steerability).max() <= tol


@pytest.fixture(scope="module")
def caa_setup():
    model = make_tiny_model("rotary")
    model.cfg.model_name = "tiny-rotary"
    exs = _pair_examples(6)
    return model, train_caa(model, exs), exs


def test_shapes_ids_layers_and_scales_align_with_run_sweep(caa_setup):
    model, vecs, exs = caa_setup
    layers, scale = [3, 1, 2], [0.0, 1.0, 2.0]  # unsorted; a zero scale must zero layer 3
    sweep = run_sweep(model, vecs, exs, layers=layers, layer_scale=scale, progress=False)
    fo = first_order(model, vecs, exs, layers=layers, layer_scale=scale, chunk_size=4)
    assert isinstance(fo, FirstOrderResult)
    assert fo.layers == sweep.layers == [1, 2, 3]
    assert fo.ids == sweep.ids and fo.units == sweep.units
    assert fo.steerability.shape == sweep.steerability.shape == (len(exs), 3)
    assert fo.metadata["layer_scale"] == sweep.metadata["layer_scale"] == [1.0, 2.0, 0.0]
    assert np.abs(fo.steerability[:, 2]).max() == 0.0
    assert np.abs(fo.steerability[:, :2]).min() > 1e-6
    mir, smir = fo.mirrored(), sweep.mirrored()
    assert mir.ids == smir.ids and mir.steerability.shape == smir.steerability.shape
    assert np.allclose(mir.steerability, fo.steerability.reshape(3, 2, 3).mean(1))
    # the unsteered propensity is the sweep's λ = 0 column; one chunk or several: same
    wide = run_sweep(model, vecs, exs, layers=[0], multipliers=[-1.0, 0.0, 1.0],
                     progress=False)
    assert np.allclose(fo.propensity, wide.propensity[:, 0, 1], atol=1e-5)
    one = first_order(model, vecs, exs, layers=layers, layer_scale=scale, chunk_size=100)
    assert np.allclose(one.steerability, fo.steerability, atol=1e-5)
    # per-input vectors equal to the CAA ones give the same numbers
    iv = InputVectors.broadcast(vecs, [e.id for e in exs])
    same = first_order(model, iv, exs, layers=layers, layer_scale=scale)
    assert np.allclose(same.steerability, fo.steerability, atol=1e-6)


def curvature_gaps(model, vecs, exs, readout):
    """Mean |estimate − OLS slope| over (example, layer) of the first-order, end-point and
    cubic estimates, and the mean |OLS slope| (all layers, default grid)."""
    sweep = run_sweep(model, vecs, exs, progress=False)
    fo = first_order(model, vecs, exs, curvature=True)
    ols = sweep.steerability
    # the end points are the sweep's own λ = ±1.5 propensities
    assert np.abs(fo.endpoints - sweep.propensity[..., [0, -1]]).max() < 1e-4
    return {name: float(np.abs(est - ols).mean()) for name, est in
            (("first_order", fo.steerability), ("endpoint", fo.endpoint_slope),
             ("cubic", fo.cubic_slope))} | {"ols": float(np.abs(ols).mean())}


@pytest.mark.parametrize("readout", ["letter", "cloze"])
def test_curvature_correction_closes_most_of_the_gap(caa_setup, readout):
    """CAA vectors of the tiny model, λ ∈ {−1.5…1.5}: the cubic estimate is much closer to
    the OLS slope than the derivative at 0 (measured gaps in the module docstring)."""
    model, vecs, exs = caa_setup
    if readout == "cloze":
        exs = _pair_examples(6, cloze=True)
    gaps = curvature_gaps(model, vecs, exs, readout)
    assert gaps["cubic"] < 0.5 * gaps["first_order"]


def test_refusals(caa_setup):
    model, vecs, exs = caa_setup
    with pytest.raises(ValueError, match="positions"):
        first_order(model, vecs, exs, positions="middle")
    with pytest.raises(ValueError, match="ids"):
        first_order(model, InputVectors.broadcast(vecs, ["x"] * len(exs)), exs)
    with pytest.raises(ValueError, match="engine"):
        first_order_chunk(model, torch.zeros(1, 1, 32), [0], exs[:1], engine="slow")
    with pytest.raises(ValueError, match="curvature=True"):
        _ = first_order(model, vecs, exs[:2], layers=[1]).cubic_slope
    with torch.inference_mode():  # a caller in inference mode still gets gradients
        grad, _ = first_order_chunk(model, torch.ones(1, 1, 32), [1], exs[:1])
    assert np.abs(grad).max() > 0


def test_reference_engine_steers_other_hooks(model):
    """``resid_mid``: the fast engine refuses (pointing at the reference), the reference
    matches the naive sweep's finite difference at that hook."""
    exs = _examples("cloze")[:3]
    vecs = _vectors(len(exs), len(LAYERS), model.cfg.d_model)
    with pytest.raises(ValueError, match='engine="reference"'):
        first_order_chunk(model, vecs, LAYERS, exs, hook="resid_mid")
    grad, _ = first_order_chunk(model, vecs, LAYERS, exs, engine="reference", hook="resid_mid")
    h = 1e-3
    p = naive_chunk(model, vecs, LAYERS, [-2 * h, -h, h, 2 * h], exs, hook="resid_mid")
    fd = (8 * (p[..., 2] - p[..., 1]) - (p[..., 3] - p[..., 0])) / (12 * h)
    assert np.abs(grad - fd).max() <= 5e-4 * np.abs(fd).max()


def test_batches_keep_units_together_within_budgets(caa_setup):
    from w2s_lens.sweep.first_order import plan_batches

    _, _, exs = caa_setup  # units e0, e0, e1, e1, e2, e2; one-token steered rows
    assert plan_batches(exs, "from_last", "sum", 8, 1024) == [(0, 6)]
    assert plan_batches(exs, "from_last", "sum", 3, 1024) == [(0, 2), (2, 4), (4, 6)]
    assert plan_batches(exs, "from_last", "sum", 8, 1) == [(i, i + 1) for i in range(6)]
    lens = [len(e.tokens) for e in exs]  # "all": whole prompts
    assert plan_batches(exs, "all", "sum", 8, lens[0] + lens[1]) == [(0, 2), (2, 3), (3, 4),
                                                                 (4, 5), (5, 6)]
    model, vecs, _ = caa_setup
    a = first_order(model, vecs, exs, positions="all", max_tokens=1)
    b = first_order(model, vecs, exs, positions="all")
    assert np.allclose(a.steerability, b.steerability, atol=1e-5)


def test_runs_in_the_models_dtype():
    """A bfloat16 model: the steered rows run in bfloat16 (the readout in float32); the
    slopes stay within a few per cent of float32's (measured: 2 %)."""
    model = make_tiny_model("rotary")
    exs = _examples("cloze")
    vecs = _vectors(len(exs), len(LAYERS), model.cfg.d_model) * 0.1
    full, _ = first_order_chunk(model, vecs, LAYERS, exs)
    model.to(torch.bfloat16)
    model.cfg.dtype = torch.bfloat16
    half, _ = first_order_chunk(model, vecs, LAYERS, exs)
    assert np.abs(half - full).max() <= 0.06 * np.abs(full).max()


# --------------------------------------------------------------------------- label-free
