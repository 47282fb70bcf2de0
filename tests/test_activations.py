import pytest
import torch

from w2s_lens.activations import batches, cache_residuals, hook_name, pad_right


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
