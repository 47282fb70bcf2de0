import numpy as np
import pytest
import torch

from w2s_lens.data.examples import SteeringExample
from w2s_lens.steering.activations import (
    batches,
    cache_residuals,
    cache_residuals_multi,
    contrast_residuals,
    hook_name,
    pad_right,
)
from w2s_lens.steering.vectors import train_caa


def test_hook_name_is_canonical():
    assert hook_name(3) == "blocks.3.hook_resid_pre"
    assert hook_name(0, "resid_post") == "blocks.0.hook_resid_post"
    with pytest.raises(ValueError, match="hook must be one of"):
        hook_name(0, "attn_out")


def test_pad_right_and_batches():
    tokens, mask, lengths = pad_right([[1, 2], [3]], pad_id=9)
    assert tokens.tolist() == [[1, 2], [3, 9]]
    assert mask.tolist() == [[1, 1], [1, 0]]
    assert lengths.tolist() == [2, 1]
    assert [list(b) for b in batches(5, 2)] == [[0, 1], [2, 3], [4]]
    with pytest.raises(ValueError, match="empty"):
        pad_right([[1], []])


@pytest.mark.parametrize("fixture", ["tiny_model", "tiny_model_standard"])
def test_batched_equals_one_by_one(fixture, request):
    model = request.getfixturevalue(fixture)
    g = torch.Generator().manual_seed(0)
    seqs = [torch.randint(1, 60, (n,), generator=g).tolist() for n in (3, 9, 5, 12)]
    layers = [0, 2, 3]
    positions = [-1, 4, 0, -2]
    batched = cache_residuals(model, seqs, layers, positions, batch_size=4)
    single = torch.cat(
        [cache_residuals(model, [s], layers, [p], batch_size=1) for s, p in zip(seqs, positions)]
    )
    assert batched.shape == (4, 3, model.cfg.d_model)
    assert torch.allclose(batched, single, atol=1e-4)


def test_matches_run_with_cache(tiny_model):
    seq = [5, 6, 7, 8]
    _, cache = tiny_model.run_with_cache(torch.tensor([seq]))
    got = cache_residuals(tiny_model, [seq], [1, 3], [-1], hook="resid_post")
    assert torch.allclose(got[0, 0], cache["blocks.1.hook_resid_post"][0, -1], atol=1e-5)
    assert torch.allclose(got[0, 1], cache["blocks.3.hook_resid_post"][0, -1], atol=1e-5)


def test_bad_positions_and_layers(tiny_model):
    with pytest.raises(IndexError):
        cache_residuals(tiny_model, [[1, 2]], [0], [5])
    with pytest.raises(ValueError, match="outside"):
        cache_residuals(tiny_model, [[1, 2]], [99], [0])
    with pytest.raises(ValueError, match="one position per prompt"):
        cache_residuals(tiny_model, [[1, 2]], [0], [0, 1])


def _pairs(n=5, seed=0):
    rng = np.random.default_rng(seed)
    return [SteeringExample(id=f"p{i}", text="", tokens=tuple(rng.integers(2, 60, size=4 + 2 * i)),
                            matching_token_id=60 + i % 2, non_matching_token_id=61 - i % 2,
                            matching_letter="AB"[i % 2]) for i in range(n)]


@pytest.mark.parametrize("fixture", ["tiny_model", "tiny_model_standard"])
def test_multi_positions_equal_single_position_calls(fixture, request):
    model = request.getfixturevalue(fixture)
    g = torch.Generator().manual_seed(1)
    seqs = [torch.randint(1, 60, (n,), generator=g).tolist() for n in (4, 11, 6, 9, 3)]
    positions = [[-1, 0, 2], [5, -3, -1], [-2, 1, 0], [8, -9, 3], [0, -1, 1]]
    layers = [0, 1, 3]
    multi = cache_residuals_multi(model, seqs, layers, positions, hook="resid_mid", batch_size=2)
    assert multi.shape == (5, 3, 3, model.cfg.d_model)
    for j in range(3):
        single = cache_residuals(model, seqs, layers, [p[j] for p in positions],
                                 hook="resid_mid", batch_size=1)
        assert torch.allclose(multi[:, j], single, atol=1e-4)


class _DictStore:
    """An in-memory BatchStore."""

    def __init__(self):
        self.kept, self.loads = {}, []

    def load(self, index, shape):
        self.loads.append(index)
        got = self.kept.get(index)
        return None if got is None or tuple(got.shape) != tuple(shape) else got

    def save(self, index, value):
        self.kept[index] = value.clone()


def test_a_store_keeps_every_batch_and_kept_batches_are_not_run_again(tiny_model):
    g = torch.Generator().manual_seed(2)
    seqs = [torch.randint(1, 60, (n,), generator=g).tolist() for n in (4, 11, 6, 9, 3)]
    positions = [[-1, 0]] * 5
    plain = cache_residuals_multi(tiny_model, seqs, [0, 2], positions, batch_size=2)
    store = _DictStore()
    first = cache_residuals_multi(tiny_model, seqs, [0, 2], positions, batch_size=2,
                                  store=store)
    assert torch.equal(first, plain) and sorted(store.kept) == [0, 1, 2]
    # a kept batch is read back instead of run: plant a marker and see it come back
    store.kept[1] = torch.full_like(store.kept[1], 7.0)
    again = cache_residuals_multi(tiny_model, seqs, [0, 2], positions, batch_size=2,
                                  store=store)
    assert store.loads[-3:] == [0, 1, 2]
    assert int((again == 7.0).all(dim=(1, 2, 3)).sum()) == 2  # batch 1's two prompts
    assert torch.equal(again[(again != 7.0).any(dim=(1, 2, 3))],
                       plain[(again != 7.0).any(dim=(1, 2, 3))])


def test_multi_positions_errors(tiny_model):
    with pytest.raises(ValueError, match="same number of positions: prompt 1 has 1"):
        cache_residuals_multi(tiny_model, [[1, 2], [3, 4]], [0], [[0, 1], [1]])
    with pytest.raises(ValueError, match="2 prompts, 1 position lists"):
        cache_residuals_multi(tiny_model, [[1, 2], [3, 4]], [0], [[0]])
    with pytest.raises(IndexError, match="prompt 1: positions \\[0, 3\\] lie outside its 2"):
        cache_residuals_multi(tiny_model, [[1, 2, 3], [3, 4]], [0], [[0, 2], [0, 3]])


@pytest.mark.parametrize("fixture", ["tiny_model", "tiny_model_standard"])
def test_contrast_residuals_one_pass_equals_separate_passes(fixture, request):
    model = request.getfixturevalue(fixture)
    exs = _pairs()
    acts = contrast_residuals(model, exs, layers=[3, 0, 1], input_layer=2, batch_size=3)
    n = len(exs)
    assert acts.layers == [0, 1, 3] and acts.input_layer == 2
    assert acts.diffs.shape == (n, 3, model.cfg.d_model)
    # the prompt's residual read inside the answered sequence equals the bare prompt's
    bare = cache_residuals(model, [e.tokens for e in exs], [2], [-1] * n)[:, 0]
    assert torch.allclose(acts.prompt_resid, bare, atol=1e-5)
    pos = cache_residuals(model, [e.positive_tokens for e in exs], [0, 1, 3], [-1] * n)
    neg = cache_residuals(model, [e.negative_tokens for e in exs], [0, 1, 3], [-1] * n)
    assert torch.allclose(acts.diffs, pos - neg, atol=1e-5)
    assert torch.allclose(acts.answer_resid_norms,
                          torch.cat([pos, neg]).norm(dim=-1).mean(0), atol=1e-5)
    assert acts.ids == [e.id for e in exs] and acts.units == acts.ids


def test_contrast_mean_is_caa_and_defaults(tiny_model):
    tiny_model.cfg.model_name = "tiny-rotary"
    exs = _pairs(6)
    acts = contrast_residuals(tiny_model, exs)
    caa = train_caa(tiny_model, exs)
    assert acts.layers == caa.layers == [0, 1, 2, 3]
    assert acts.input_layer == tiny_model.cfg.n_layers // 2
    assert torch.allclose(acts.mean_diff(), caa.vectors, atol=1e-5)
    assert np.allclose(acts.answer_resid_norms.tolist(), caa.metadata["resid_norms"], atol=1e-5)
    with pytest.raises(ValueError, match="input_layer 9 outside"):
        contrast_residuals(tiny_model, exs, input_layer=9)
    with pytest.raises(ValueError, match="at least one example"):
        contrast_residuals(tiny_model, [])


def test_contrast_residuals_multi_token_answers(tiny_model):
    ex = SteeringExample(id="c0", text="", tokens=(5, 6, 7, 8), matching_letter="A",
                         matching_continuation=(20, 21, 22), non_matching_continuation=(30,))
    acts = contrast_residuals(tiny_model, [ex], layers=[1], input_layer=3)
    bare = cache_residuals(tiny_model, [ex.tokens], [3], [-1])[0, 0]
    assert torch.allclose(acts.prompt_resid[0], bare, atol=1e-5)
    pos = cache_residuals(tiny_model, [ex.positive_tokens], [1], [-1])
    neg = cache_residuals(tiny_model, [ex.negative_tokens], [1], [-1])
    assert torch.allclose(acts.diffs, pos - neg, atol=1e-5)
