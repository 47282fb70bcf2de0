import json

import numpy as np
import pytest
import torch

from w2s_lens.activations import cache_residuals
from w2s_lens.artifacts import ArtifactMismatch
from w2s_lens.examples import SteeringExample
from w2s_lens.vectors import SteeringVectors, train_caa


def _examples(n=6, seed=0):
    rng = np.random.default_rng(seed)
    return [SteeringExample(id=f"e{i}", text="", tokens=tuple(rng.integers(2, 60, size=5 + i)),
                            matching_token_id=60 + i % 2, non_matching_token_id=61 - i % 2,
                            matching_letter="AB"[i % 2]) for i in range(n)]


@pytest.fixture()
def named_model(tiny_model):
    tiny_model.cfg.model_name = "tiny-rotary"
    return tiny_model


def test_caa_is_mean_difference_at_answer_position(named_model):
    exs = _examples()
    vecs = train_caa(named_model, exs, layers=[1, 3])
    pos = cache_residuals(named_model, [e.positive_tokens for e in exs], [1, 3], [-1] * 6)
    neg = cache_residuals(named_model, [e.negative_tokens for e in exs], [1, 3], [-1] * 6)
    assert torch.allclose(vecs.vectors, (pos - neg).mean(0), atol=1e-5)
    assert vecs.layers == [1, 3]
    assert vecs.metadata["matching_letter_counts"] == {"A": 3, "B": 3}
    assert len(vecs.metadata["resid_norms"]) == 2


def test_letter_balanced_pairs_cancel_a_pure_letter_direction(named_model):
    """Same prompt, letters swapped: a vector from both orders has no A-vs-B part."""
    base = _examples(1)[0]
    swapped = SteeringExample(id="e0~swap", text="", tokens=base.tokens,
                              matching_token_id=base.non_matching_token_id,
                              non_matching_token_id=base.matching_token_id, matching_letter="B")
    vecs = train_caa(named_model, [base, swapped])
    assert float(vecs.vectors.abs().max()) < 1e-5


def test_apply_adds_scaled_vector_and_undoes(named_model):
    vecs = train_caa(named_model, _examples(), layers=[2])
    tokens = torch.tensor([[5, 6, 7]])
    point = named_model.hook_dict["blocks.2.hook_resid_pre"]

    def run() -> torch.Tensor:
        got = []
        # registered last, so it sees the activation after any steering hook
        h = point.register_forward_hook(lambda m, i, out: got.append(out.detach().clone()))
        named_model(tokens)
        h.remove()
        return got[0]

    base = run()
    with vecs.apply(named_model, 2, multiplier=2.0, scale=0.5):
        steered = run()
    assert torch.allclose(steered[0, -1] - base[0, -1], vecs.vector(2), atol=1e-5)
    assert torch.allclose(steered[0, :-1], base[0, :-1])
    assert torch.allclose(run(), base)
    with pytest.raises(KeyError, match="stored layers"):
        vecs.vector(0)


def test_save_load_roundtrip_and_refusals(named_model, tiny_model_standard, tmp_path):
    vecs = train_caa(named_model, _examples(), dataset="toy")
    vecs.save(tmp_path)
    meta = json.loads((tmp_path / "vectors.json").read_text())
    assert meta["hook_names"][0] == "blocks.0.hook_resid_pre"
    assert meta["model"] == "tiny-rotary" and meta["dataset"] == "toy"
    assert "torch" in meta["versions"]
    back = SteeringVectors.load(tmp_path, model=named_model, hook="resid_pre")
    assert torch.equal(back.vectors, vecs.vectors) and back.layers == vecs.layers
    tiny_model_standard.cfg.model_name = "other-model"
    with pytest.raises(ArtifactMismatch, match="model='tiny-rotary'.*other-model"):
        SteeringVectors.load(tmp_path, model=tiny_model_standard)
    with pytest.raises(ArtifactMismatch, match="hook"):
        SteeringVectors.load(tmp_path, hook="resid_post")
    meta["format_version"] = 99
    (tmp_path / "vectors.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactMismatch, match="format_version"):
        SteeringVectors.load(tmp_path)


def test_refuses_empty_training_set(named_model):
    with pytest.raises(ValueError, match="at least one"):
        train_caa(named_model, [])
