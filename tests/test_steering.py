import pytest
import torch

from w2s_lens.steering import steer


def _resid(model, tokens, layer=2):
    _, cache = model.run_with_cache(tokens)
    return cache[f"blocks.{layer}.hook_resid_pre"]


def test_from_last_adds_only_at_last_prompt_token(tiny_model):
    tokens = torch.tensor([[3, 4, 5, 6]])
    base = _resid(tiny_model, tokens)
    vec = torch.ones(tiny_model.cfg.d_model)
    with steer(tiny_model, "blocks.2.hook_resid_pre", vec):
        steered = _resid(tiny_model, tokens)
    diff = steered - base
    assert torch.allclose(diff[0, :3], torch.zeros_like(diff[0, :3]))
    assert torch.allclose(diff[0, 3], vec)


def test_all_and_int_positions(tiny_model):
    tokens = torch.tensor([[3, 4, 5, 6]])
    base = _resid(tiny_model, tokens)
    vec = torch.ones(tiny_model.cfg.d_model)
    with steer(tiny_model, "blocks.2.hook_resid_pre", vec, positions="all"):
        assert torch.allclose(_resid(tiny_model, tokens) - base, vec.expand(1, 4, -1))
    with steer(tiny_model, "blocks.2.hook_resid_pre", vec, positions=2):
        d = _resid(tiny_model, tokens) - base
    assert torch.allclose(d[0, :2], torch.zeros(2, tiny_model.cfg.d_model))
    assert torch.allclose(d[0, 2:], vec.expand(2, -1))


def test_handle_removes_only_its_hook(tiny_model):
    tokens = torch.tensor([[3, 4, 5]])
    before = tiny_model(tokens)
    handle = steer(tiny_model, "blocks.1.hook_resid_pre", torch.ones(tiny_model.cfg.d_model))
    assert not torch.allclose(tiny_model(tokens), before)
    handle.remove()
    handle.remove()  # idempotent
    assert torch.allclose(tiny_model(tokens), before)


def test_generation_steers_new_tokens(tiny_model):
    """With a KV cache each new token arrives alone and must be steered too."""
    steered = []
    point = tiny_model.hook_dict["blocks.0.hook_resid_pre"]
    vec = 100 * torch.ones(tiny_model.cfg.d_model)
    with steer(tiny_model, "blocks.0.hook_resid_pre", vec):
        # registered after the steering hook, so it sees the steered activation
        rec = point.register_forward_hook(lambda m, i, out: steered.append(out.detach().clone()))
        out = tiny_model.generate(torch.tensor([[3, 4, 5]]), max_new_tokens=3, verbose=False,
                                  do_sample=False, use_past_kv_cache=True, stop_at_eos=False)
        rec.remove()
    # prompt pass (3 positions), then one token at a time (the last one is never fed back)
    assert [s.shape[1] for s in steered] == [3, 1, 1]
    # rotary model: block 0's resid_pre is the token embedding, plus the steering vector
    w_e = tiny_model.W_E.detach()
    prompt = steered[0][0] - w_e[torch.tensor([3, 4, 5])]
    assert torch.allclose(prompt[:2], torch.zeros(2, tiny_model.cfg.d_model), atol=1e-5)
    assert torch.allclose(prompt[2], vec, atol=1e-4)
    for k, s in enumerate(steered[1:]):
        assert torch.allclose(s[0, 0] - w_e[out[0, 3 + k]], vec, atol=1e-4)


def test_bad_arguments(tiny_model):
    vec = torch.ones(tiny_model.cfg.d_model)
    with pytest.raises(KeyError):
        steer(tiny_model, "blocks.99.hook_resid_pre", vec)
    with pytest.raises(ValueError, match="shape"):
        steer(tiny_model, "blocks.0.hook_resid_pre", torch.ones(3))
    with pytest.raises(ValueError, match="positions"):
        steer(tiny_model, "blocks.0.hook_resid_pre", vec, positions="middle")


def _steered_resid_pre0(model, run, vec, positions):
    """Activations at block 0's resid_pre (after the steering hook) for each call of run()."""
    seen = []
    point = model.hook_dict["blocks.0.hook_resid_pre"]
    with steer(model, "blocks.0.hook_resid_pre", vec, positions=positions):
        rec = point.register_forward_hook(lambda m, i, out: seen.append(out.detach().clone()))
        result = run()
        rec.remove()
    return seen, result


def test_int_positions_follow_cached_generation(tiny_model):
    vec = 100 * torch.ones(tiny_model.cfg.d_model)
    w_e = tiny_model.W_E.detach()

    def run():
        return tiny_model.generate(torch.tensor([[3, 4, 5]]), max_new_tokens=3, verbose=False,
                                   do_sample=False, use_past_kv_cache=True, stop_at_eos=False)

    seen, out = _steered_resid_pre0(tiny_model, run, vec, positions=4)
    # absolute positions 0..2 (prompt) and 3 are not steered; position 4 is
    assert torch.allclose(seen[0][0] - w_e[torch.tensor([3, 4, 5])],
                          torch.zeros(3, tiny_model.cfg.d_model), atol=1e-5)
    assert torch.allclose(seen[1][0, 0] - w_e[out[0, 3]], torch.zeros_like(vec), atol=1e-5)
    assert torch.allclose(seen[2][0, 0] - w_e[out[0, 4]], vec, atol=1e-4)


def test_one_handle_serves_prompts_of_different_lengths(tiny_model):
    vec = torch.ones(tiny_model.cfg.d_model)
    w_e = tiny_model.W_E.detach()
    a, b = [3, 4, 5, 6, 7], [8, 9]

    def run():
        tiny_model(torch.tensor([a]))
        tiny_model(torch.tensor([b]))

    seen, _ = _steered_resid_pre0(tiny_model, run, vec, positions="from_last")
    for prompt, act in zip((a, b), seen):
        diff = act[0] - w_e[torch.tensor(prompt)]
        assert torch.allclose(diff[:-1], torch.zeros_like(diff[:-1]), atol=1e-5)
        assert torch.allclose(diff[-1], vec, atol=1e-5)
