"""The vectors each method steers with: cross-fitted CAA keeps every training item out of its
own vectors; L2S predicts one vector per presentation."""

import pytest
import torch

import w2s_lens.evaluation.context as context
from w2s_lens.controls.synthetic import build_control
from w2s_lens.evaluation.config import EvalConfig
from w2s_lens.evaluation.context import EvalContext
from w2s_lens.evaluation.method_vectors import (
    caa_train_vectors,
    l2s_test_vectors,
    l2s_train_vectors,
)
from w2s_lens.evaluation.pipeline import evaluate_examples
from w2s_lens.evaluation.split import SplitExamples
from w2s_lens.steering.activations import contrast_residuals
from w2s_lens.steering.l2s.config import L2SConfig

CFG = dict(dataset="synthetic", variants=("base",), routers=("logreg",), n_boot=300,
           cross_fit=3)


@pytest.fixture(scope="module")
def control():
    return build_control("positive", n_families=3, n_layers=4, seed=0)


def _split(control, n_train=12, n_test=6):
    train = control.make_examples(n_train, seed=1, both_orders=True)
    test = control.make_examples(n_test, seed=2, both_orders=True)
    return SplitExamples(vector_train=train, sweep_train=train, test={"base": test})


def test_cross_fitting_keeps_each_item_out_of_its_own_vectors(control, monkeypatch):
    split = _split(control)
    swept = {}
    real = context.run_sweep

    def spy(model, vectors, exs, *a, **k):
        if k.get("desc", "").endswith("train"):
            swept["vectors"] = vectors
        return real(model, vectors, exs, *a, **k)

    monkeypatch.setattr(context, "run_sweep", spy)
    cfg = EvalConfig(**CFG)
    evaluate_examples(control.model, split, cfg, progress=False)
    iv = swept["vectors"]
    acts = contrast_residuals(control.model, split.vector_train, [1, 2, 3], input_layer=1)
    folds = context.folds(list(dict.fromkeys(ex.unit for ex in split.sweep_train)), 3,
                          cfg.data.seed)
    for i, ex in enumerate(split.sweep_train):
        keep = torch.tensor([folds[u] != folds[ex.unit] for u in acts.units])
        assert torch.allclose(iv.vectors[i], acts.diffs[keep].mean(0), atol=1e-6)
        assert not torch.allclose(iv.vectors[i], acts.diffs.mean(0), atol=1e-6)


def test_in_sample_caa_is_the_shared_vectors_and_l2s_is_per_input(control):
    split = _split(control)
    ctx = EvalContext(control.model, split, EvalConfig(**{**CFG, "cross_fit": 0}), None, False)
    assert caa_train_vectors(ctx) is ctx.caa
    cfg = EvalConfig(**{**CFG, "method": "l2s", "l2s": L2SConfig(hidden=16, epochs=20)})
    ctx = EvalContext(control.model, split, cfg, None, False)
    train, steerer = l2s_train_vectors(ctx)
    assert train.ids == [ex.id for ex in split.sweep_train]
    assert tuple(train.vectors.shape) == (len(split.sweep_train), 3, control.model.cfg.d_model)
    test = l2s_test_vectors(ctx, steerer, split.test["base"])
    assert test.ids == [ex.id for ex in split.test["base"]] and test.layers == [1, 2, 3]
    assert not torch.allclose(test.vectors[0], test.vectors[2])  # one vector per input
