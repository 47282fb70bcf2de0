"""The hand-built positive / negative controls, by hand and through the real W2S pipeline.

The pipeline tests run CAA (training split, both letter orders) → fast sweep → best layers →
logistic-regression router on the model's own last-token residual
(``w2s_lens.embeddings``, default layer) → metrics on a held-out
test split, and check that W2S finds the constructed per-family layers on the positive
control and claims no gain on the negative control.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from w2s_lens import metrics
from w2s_lens.activations import cache_residuals
from w2s_lens.embeddings import default_layer, embed_examples, embedding_name
from w2s_lens.router import LayerRouter
from w2s_lens.sweep import run_sweep
from w2s_lens.synthetic import DIMS, SyntheticControl, build_control
from w2s_lens.vectors import train_caa

N_TRAIN = 36  # items per split (12 per family, both letters); CAA sees 2 * N_TRAIN
N_TEST = 36


# ----------------------------------------------------------------------------- fixture


def test_build_shapes_and_names() -> None:
    pos = build_control("positive")
    neg = build_control("negative")
    assert pos.model.cfg.model_name == "w2s-synthetic-positive"
    assert neg.model.cfg.model_name == "w2s-synthetic-negative"
    assert pos.family_layers == [1, 2, 3]
    assert len(set(neg.family_layers)) == 1
    assert pos.model.cfg.d_vocab == len(pos.vocab)
    assert build_control("positive", n_families=2, n_layers=6).family_layers == [1, 5]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "other"},
        {"n_families": 4, "n_layers": 4},  # positive needs K <= L - 1
        {"d_model": 12},
        {"family_layers": [0, 1, 2]},  # layer 0's CAA vector is ~0: not a valid reader layer
        {"erase": 1.0},
    ],
)
def test_build_rejects_bad_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        build_control(**kwargs)


def test_examples_are_balanced_and_deterministic() -> None:
    c = build_control("positive")
    ex = c.make_examples(12, seed=3)
    assert ex == c.make_examples(12, seed=3)
    assert len({e.id for e in ex}) == 12
    assert not {e.id for e in ex} & {e.id for e in c.make_examples(12, seed=4)}
    for f in range(3):
        fam = [e for e in ex if e.group == f"family{f}"]
        assert sorted(e.matching_letter for e in fam) == ["A", "A", "B", "B"]
        assert all(c.family_of(e) == f for e in fam)
    e = ex[0]
    assert e.text.startswith("<bos> =A ") and e.text.endswith(" F0")
    assert e.text == c.to_text(e.tokens)
    assert {e.matching_token_id, e.non_matching_token_id} == set(c.answer_token_ids)
    assert c.family_onehot(ex).sum(0).tolist() == [4.0, 4.0, 4.0]


def test_swap_flips_letter_and_round_trips() -> None:
    c = build_control("positive")
    e = c.make_examples(1, seed=0)[0]
    s = c.swap(e)
    assert s.id == e.id + "~swap" and s.matching_letter == "B"
    assert s.matching_token_id == e.non_matching_token_id
    assert s.tokens[2:] == e.tokens[2:] and s.tokens[1] != e.tokens[1]
    assert c.swap(s) == e
    both = c.make_examples(3, seed=0, both_orders=True)
    assert [x.id for x in both[:2]] == [e.id, e.id + "~swap"]


def _hand_slopes(c: SyntheticControl, vectors: torch.Tensor, n: int = 3) -> np.ndarray:
    """[n, L] slopes from two multipliers, with a plain TransformerLens hook (no w2s engine)."""
    model = c.model
    out = np.zeros((n, c.n_layers))
    for i, ex in enumerate(c.make_examples(n, seed=7)):
        toks = torch.tensor([ex.tokens])
        for layer in range(c.n_layers):
            props = []
            for lam in (-1.0, 1.0):

                def add(x: torch.Tensor, hook: Any, lam: float = lam, layer: int = layer):
                    x[:, -1] += lam * vectors[layer]
                    return x

                with torch.inference_mode():
                    logits = model.run_with_hooks(
                        toks, fwd_hooks=[(f"blocks.{layer}.hook_resid_pre", add)]
                    )[0, -1]
                props.append(float(logits[ex.matching_token_id] - logits[ex.non_matching_token_id]))
            out[i, layer] = (props[1] - props[0]) / 2
    return out


def test_exact_construction_slopes() -> None:
    """Noise-free model + ideal vectors: slope 4w(1-α)^(l_f-l) for l <= l_f, 0 after."""
    c = build_control("positive", noise=0.0)
    s = _hand_slopes(c, c.ideal_vectors())
    w, keep = c.readout, 1 - c.erase
    for f, lf in enumerate(c.family_layers):
        expect = [0.0] + [4 * w * keep ** (lf - layer) if layer <= lf else 0.0
                          for layer in range(1, c.n_layers)]
        np.testing.assert_allclose(s[f], expect, atol=1e-5)


def test_hand_caa_vectors_point_along_behaviour() -> None:
    """CAA by hand (both letter orders) is ~2 e_BEH at layers >= 1 and ~0 at layer 0."""
    c = build_control("positive")
    ex = c.make_examples(6, seed=0, both_orders=True)
    L = c.n_layers
    pos = cache_residuals(c.model, [e.positive_tokens for e in ex], range(L), [-1] * len(ex))
    neg = cache_residuals(c.model, [e.negative_tokens for e in ex], range(L), [-1] * len(ex))
    v = (pos - neg).mean(0)
    assert float(v[0].norm()) < 1e-5
    beh = v[1:, DIMS["BEH"]]
    assert torch.all((beh > 1.8) & (beh < 2.4))
    assert torch.all(v[1:].norm(dim=-1) < 1.05 * beh.abs())
    hand = _hand_slopes(c, v)
    assert hand.argmax(1).tolist() == c.family_layers


# ----------------------------------------------------------------------------- pipeline


def _pipeline(kind: str) -> dict[str, Any]:
    c = build_control(kind)
    model = c.model
    train = c.make_examples(N_TRAIN, seed=0)
    test = c.make_examples(N_TEST, seed=1)
    vecs = train_caa(model, [x for e in train for x in (e, c.swap(e))], batch_size=32,
                     dataset=f"synthetic-{kind}")
    sweep_tr = run_sweep(model, vecs, train, engine="fast", progress=False, chunk_size=64)
    sweep_te = run_sweep(model, vecs, test, engine="fast", progress=False, chunk_size=64)

    def embed(exs: list) -> np.ndarray:  # the model's own residual at the last prompt token
        return embed_examples(model, exs, kind="resid-last", batch_size=64)

    router = LayerRouter("logreg", seed=0, model=model.cfg.model_name,
                         embedding=embedding_name("resid-last", default_layer(model)),
                         layers=sweep_tr.layers).fit(embed(train), sweep_tr.steerability)
    x_te = embed(test)
    result = metrics.evaluate_variant(
        sweep_te.steerability,
        sweep_te.matching_letters,
        metrics.fixed_layer(sweep_tr.steerability),
        {"logreg": router.predict(x_te)},
        {"logreg": router.scores(x_te)},
        layers=sweep_te.layers,
        n_boot=1000,
    )
    return {"control": c, "vectors": vecs, "test": test, "sweep": sweep_te, "result": result}


@pytest.fixture(scope="module")
def positive() -> dict[str, Any]:
    return _pipeline("positive")


@pytest.fixture(scope="module")
def negative() -> dict[str, Any]:
    return _pipeline("negative")


def _family_best(run: dict[str, Any]) -> list[int]:
    c, sweep = run["control"], run["sweep"]
    best = np.asarray(sweep.layers)[metrics.best_layers(sweep.steerability)]
    fam = np.array([c.family_of(e) for e in run["test"]])
    modes = []
    for f in range(c.n_families):
        counts = np.bincount(best[fam == f], minlength=c.n_layers)
        assert counts.max() >= 0.9 * (fam == f).sum()  # nearly every input agrees
        modes.append(int(counts.argmax()))
    return modes


def test_positive_best_layers_as_constructed(positive: dict[str, Any]) -> None:
    assert _family_best(positive) == positive["control"].family_layers


def test_positive_w2s_beats_fixed(positive: dict[str, Any]) -> None:
    r = positive["result"]
    w = r["w2s"]["logreg"]
    assert w["accuracy"] > 0.9
    assert w["diff_vs_fixed_ci"][0] > 0.3  # a wide margin, well beyond the bootstrap noise
    assert w["steerability_ci"][0] > r["fixed"]["steerability_ci"][1]
    assert metrics.verdict(w["diff_vs_fixed_ci"]) == metrics.VERDICT_BETTER
    assert w["steerability"] >= 0.95 * r["oracle"]["steerability"]
    # the matching letter carries no information about the best layer
    assert r["letter_oracle"]["steerability"] < w["steerability_ci"][0]
    assert r["letter_oracle"]["steerability"] <= r["fixed"]["steerability_ci"][1] + 1e-9
    for letter in ("A", "B"):
        assert r["by_letter"][letter]["w2s"]["logreg"]["diff_vs_fixed_ci"][0] > 0


def test_negative_claims_no_gain(negative: dict[str, Any]) -> None:
    c = negative["control"]
    assert _family_best(negative) == c.family_layers
    r = negative["result"]
    w = r["w2s"]["logreg"]
    assert r["fixed_layer"] == c.family_layers[0]
    lo, hi = w["diff_vs_fixed_ci"]
    assert lo <= 0.0 <= hi
    assert metrics.verdict(w["diff_vs_fixed_ci"]) == metrics.VERDICT_NONE


def test_fast_and_naive_engines_agree(positive: dict[str, Any]) -> None:
    c, vecs = positive["control"], positive["vectors"]
    ex = positive["test"][:3]
    mults = (-1.5, 0.0, 1.0)  # a short grid keeps the naive engine (one pass per run) quick
    fast = run_sweep(c.model, vecs, ex, multipliers=mults, engine="fast", progress=False)
    naive = run_sweep(c.model, vecs, ex, multipliers=mults, engine="naive", progress=False)
    np.testing.assert_allclose(fast.propensity, naive.propensity, atol=1e-3)
    assert np.ptp(fast.propensity) > 1.0  # the check is not vacuous
