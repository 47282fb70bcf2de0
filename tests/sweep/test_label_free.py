"""Tests for w2s_lens.sweep.label_free: the label-free first-order score is (a) exact on the
linear control against the steered projection, (b) a central finite difference of the
projection computed with plain hooks on the tiny models, (c) the same with the fast and the
reference engine; and the behaviour direction is CAA's recipe at the final residual.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_tiny_model
from test_attention import gqa_model
from test_engines import LAYERS, _examples, _vectors
from test_first_order import _linear_control
from test_runner import _examples as _pair_examples

from w2s_lens.steering.vectors import train_caa
from w2s_lens.sweep.engines import steer_start
from w2s_lens.sweep.first_order import first_order_chunk
from w2s_lens.sweep.label_free import behaviour_direction, label_free


@pytest.fixture(scope="module", params=["rotary", "standard", "gqa"])
def model(request):
    if request.param == "gqa":
        return gqa_model()
    return make_tiny_model(request.param, seed=0 if request.param == "rotary" else 1)


@pytest.fixture(scope="module")
def caa_setup():
    model = make_tiny_model("rotary")
    model.cfg.model_name = "tiny-rotary"
    exs = _pair_examples(6)
    return model, train_caa(model, exs), exs


def steered_projection(model, vec, layer, ex, lam, positions, u):
    """``x_final · u`` at the last prompt token, steering ``lam · vec`` at ``layer`` with
    plain TransformerLens hooks (independent of the engines)."""
    start = steer_start(ex, positions)
    got = {}

    def add(act, hook):
        act = act.clone()
        act[:, start:] += lam * vec.to(act.dtype)
        return act

    def grab(act, hook):
        got["x"] = act[0, -1].double()

    last = model.cfg.n_layers - 1
    with torch.no_grad(), model.hooks(fwd_hooks=[(f"blocks.{layer}.hook_resid_pre", add),
                                                 (f"blocks.{last}.hook_resid_post", grab)]):
        model(torch.tensor([ex.tokens]), return_type=None)
    return float(got["x"] @ u.double())


@pytest.mark.parametrize("positions", ["from_last", "all"])
def test_label_free_matches_central_finite_difference(model, positions):
    """The five-point central difference (h = 1e-3) of the hook-steered projection."""
    exs = _examples("cloze")
    vecs = _vectors(len(exs), len(LAYERS), model.cfg.d_model)
    u = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(3))
    grad, p0 = first_order_chunk(model, vecs, LAYERS, exs, positions, direction=u)
    ref, p_ref = first_order_chunk(model, vecs, LAYERS, exs, positions, engine="reference",
                                   direction=u)
    assert grad.shape == (len(exs), len(LAYERS)) and p0.shape == (len(exs),)
    h = 1e-3
    fd = np.zeros_like(grad)
    for i, ex in enumerate(exs):
        assert p0[i] == pytest.approx(steered_projection(model, vecs[i, 0], 0, ex, 0.0,
                                                         positions, u), abs=1e-4)
        for j, layer in enumerate(LAYERS):
            p = [steered_projection(model, vecs[i, j], layer, ex, k * h, positions, u)
                 for k in (-2, -1, 1, 2)]
            fd[i, j] = (8 * (p[2] - p[1]) - (p[3] - p[0])) / (12 * h)
    scale = np.abs(fd).max()
    assert scale > 1.0  # not vacuous
    assert np.abs(grad - fd).max() <= 5e-4 * scale
    assert np.abs(grad - ref).max() <= 1e-5 * scale and np.abs(p0 - p_ref).max() <= 1e-5
    # nothing after the prompt is read: steering the prompt only is steering everything
    if positions == "all":
        only, _ = first_order_chunk(model, vecs, LAYERS, exs, "prompt", direction=u)
        assert np.allclose(only, grad, atol=1e-6 * scale)


def test_label_free_is_exact_on_the_linear_control():
    """No MLPs and no final norm from layer 1 on: the final residual is linear in the
    steering, so the label-free score is the projection's change at λ = 1, to float
    precision; with the behaviour direction of the control's own pairs."""
    c, exs, caa, per_input = _linear_control()
    u = behaviour_direction(c.model, exs)
    assert float(u.norm()) == pytest.approx(1.0)
    raw = train_caa(c.model, exs, layers=[c.n_layers - 1], hook="resid_post").vectors[0]
    assert torch.allclose(u, raw / raw.norm(), atol=1e-6)
    scale = [0.5, 2.0, 0.25]
    for vectors in (caa, per_input):
        lf = label_free(c.model, vectors, exs, 3.0 * u, layer_scale=scale)  # û: any norm
        assert lf.metadata["readout"] == "label-free" and lf.layers == [1, 2, 3]
        assert lf.steerability.shape == (len(exs), 3)
        steer = vectors.vectors if vectors is per_input else vectors.vectors[None].expand(
            len(exs), -1, -1)
        want = np.array([[steered_projection(c.model, steer[i, j] * scale[j], layer, ex, 1.0,
                                             "from_last", u)
                          - steered_projection(c.model, steer[i, j], layer, ex, 0.0,
                                               "from_last", u)
                          for j, layer in enumerate(lf.layers)] for i, ex in enumerate(exs)])
        assert np.abs(want).max() > 0.1
        assert np.abs(lf.steerability - want).max() <= 1e-4 * np.abs(want).max()
        ref = label_free(c.model, vectors, exs, u, layer_scale=scale, engine="reference")
        assert np.allclose(ref.steerability, lf.steerability, atol=1e-5)
        mir = lf.mirrored()
        assert mir.steerability.shape == (len(exs) // 2, 3)


def test_label_free_shapes_batches_and_refusals(caa_setup):
    model, vecs, exs = caa_setup
    u = behaviour_direction(model, exs)
    lf = label_free(model, vecs, exs, u, layers=[3, 1])
    assert lf.layers == [1, 3] and lf.ids == [e.id for e in exs]
    one = label_free(model, vecs, exs, u, layers=[1, 3], chunk_size=1, max_tokens=1)
    assert np.allclose(one.steerability, lf.steerability, atol=1e-5)
    assert np.abs(lf.steerability).min() > 0
    with pytest.raises(ValueError, match="direction"):
        label_free(model, vecs, exs, torch.zeros(model.cfg.d_model))
    with pytest.raises(ValueError, match="direction"):
        label_free(model, vecs, exs, torch.ones(3))
    with pytest.raises(ValueError, match="positions"):
        label_free(model, vecs, exs, u, positions="middle")
