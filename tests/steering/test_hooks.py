"""Tests for w2s_lens.steering.hooks on a tiny rotary model.

On a rotary model, ``blocks.0.hook_resid_pre`` is the token embedding (no positional term), so
the steered positions of any call can be read off by subtracting ``W_E[tokens]``.
"""

from __future__ import annotations

import pytest
import torch
from conftest import make_tiny_model

from w2s_lens.steering.hooks import steer

HOOK0 = "blocks.0.hook_resid_pre"


@pytest.fixture()
def model():
    # a fresh model per test: a failing test must not leave hooks behind for the next one
    return make_tiny_model("rotary", seed=0)


def _resid(model, tokens, layer=2):
    _, cache = model.run_with_cache(tokens)
    return cache[f"blocks.{layer}.hook_resid_pre"]


class Spy:
    """Records block 0's resid_pre after any steering hook, per forward call."""

    def __init__(self, model):
        # create it inside the steering context: torch runs forward hooks in registration
        # order, so only a hook registered after the steering hook sees the steered output
        self.seen: list[torch.Tensor] = []
        point = model.hook_dict[HOOK0]
        self._h = point.register_forward_hook(
            lambda mod, args, out: self.seen.append(out.detach().clone()))
        self.w_e = model.W_E.detach()

    def steered_positions(self, call: int, tokens, atol: float = 1e-4) -> list[int]:
        """Positions of call ``call`` (its tokens are the last positions of ``tokens``) whose
        activation differs from the plain embedding."""
        act = self.seen[call][0]
        toks = torch.as_tensor(tokens).flatten()[-act.shape[0]:]
        diff = (act - self.w_e[toks]).abs().amax(-1)
        return [p for p in range(act.shape[0]) if float(diff[p]) > atol]

    def remove(self):
        self._h.remove()


def test_from_last_adds_only_at_last_prompt_token(model):
    tokens = torch.tensor([[3, 4, 5, 6]])
    base = _resid(model, tokens)
    vec = torch.ones(model.cfg.d_model)
    with steer(model, "blocks.2.hook_resid_pre", vec):
        steered = _resid(model, tokens)
    diff = steered - base
    assert torch.allclose(diff[0, :3], torch.zeros_like(diff[0, :3]))
    assert torch.allclose(diff[0, 3], vec)


def test_all_and_int_positions(model):
    tokens = torch.tensor([[3, 4, 5, 6]])
    base = _resid(model, tokens)
    vec = torch.ones(model.cfg.d_model)
    with steer(model, "blocks.2.hook_resid_pre", vec, positions="all"):
        assert torch.allclose(_resid(model, tokens) - base, vec.expand(1, 4, -1))
    with steer(model, "blocks.2.hook_resid_pre", vec, positions=2):
        d = _resid(model, tokens) - base
    assert torch.allclose(d[0, :2], torch.zeros(2, model.cfg.d_model))
    assert torch.allclose(d[0, 2:], vec.expand(2, -1))


def test_handle_is_idempotent_a_context_manager_and_removes_only_its_hook(model):
    tokens = torch.tensor([[3, 4, 5]])
    before = model(tokens)
    user_calls = []
    model.add_hook("blocks.1.hook_resid_pre", lambda act, hook: user_calls.append(1))
    handle = steer(model, "blocks.1.hook_resid_pre", torch.ones(model.cfg.d_model))
    assert handle.active and handle.hook_name == "blocks.1.hook_resid_pre"
    assert not torch.allclose(model(tokens), before)
    handle.remove()
    handle.remove()  # idempotent
    assert not handle.active
    assert torch.allclose(model(tokens), before)
    n = len(user_calls)
    model(tokens)
    assert len(user_calls) == n + 1  # the user's hook on the same point stayed
    with steer(model, "blocks.1.hook_resid_pre", torch.ones(model.cfg.d_model)) as h:
        assert h.active and not torch.allclose(model(tokens), before)
    assert not h.active and torch.allclose(model(tokens), before)
    model.reset_hooks()


def test_reset_hooks_removes_a_leaked_steering_hook(model):
    tokens = torch.tensor([[3, 4, 5, 9]])
    before = model(tokens)
    pre_hooks = len(model._forward_pre_hooks)
    handle = steer(model, "blocks.2.hook_resid_pre", 5 * torch.ones(model.cfg.d_model))
    assert not torch.allclose(model(tokens), before)
    model.reset_hooks()
    assert not handle.active
    assert torch.allclose(model(tokens), before)
    # the call tracker went with it (it removes itself at the first call after the reset)
    assert len(model._forward_pre_hooks) == pre_hooks
    handle.remove()  # still harmless


def test_generation_steers_new_tokens(model):
    """With a KV cache each new token arrives alone and must be steered too."""
    vec = 100 * torch.ones(model.cfg.d_model)
    with steer(model, HOOK0, vec):
        spy = Spy(model)
        out = model.generate(torch.tensor([[3, 4, 5]]), max_new_tokens=3, verbose=False,
                             do_sample=False, use_past_kv_cache=True, stop_at_eos=False)
    spy.remove()
    # prompt pass (3 positions), then one token at a time (the last one is never fed back)
    assert [s.shape[1] for s in spy.seen] == [3, 1, 1]
    assert spy.steered_positions(0, out[0, :3]) == [2]
    for k in (1, 2):
        assert spy.steered_positions(k, out[0, : 3 + k]) == [0]
        assert torch.allclose(spy.seen[k][0, 0] - spy.w_e[out[0, 2 + k]], vec, atol=1e-4)


def test_one_handle_serves_prompts_of_different_lengths(model):
    """Each prompt is steered from its own last position, including a prompt exactly one
    token longer than the previous one (the old bug steered [4, 5] instead of [5])."""
    vec = torch.ones(model.cfg.d_model)
    prompts = [[3, 4, 5, 6, 7], [8, 9], [10, 11, 12], [13, 14, 15, 16], [2, 3, 4, 5, 6, 7],
               [20]]
    with steer(model, HOOK0, vec, positions="from_last"):
        spy = Spy(model)
        for p in prompts:
            model(torch.tensor([p]))
    spy.remove()
    assert [spy.steered_positions(i, p) for i, p in enumerate(prompts)] == \
        [[len(p) - 1] for p in prompts]


def test_int_positions_on_plain_calls(model):
    vec = torch.ones(model.cfg.d_model)
    with steer(model, HOOK0, vec, positions=2):
        spy = Spy(model)
        model(torch.tensor([[3, 4, 5, 6, 7]]))
        model(torch.tensor([[8, 9]]))
        model(torch.tensor([[8, 9, 1]]))  # continues [8, 9]: absolute position 2 steered
    spy.remove()
    assert spy.steered_positions(0, [3, 4, 5, 6, 7]) == [2, 3, 4]
    assert spy.steered_positions(1, [8, 9]) == []
    assert spy.steered_positions(2, [8, 9, 1]) == [2]




def _generate(model, cache: bool, steps: int = 4):
    return model.generate(torch.tensor([[3, 4, 5]]), max_new_tokens=steps, verbose=False,
                          do_sample=False, use_past_kv_cache=cache, stop_at_eos=False)


def test_uncached_generation_steers_from_the_prompt_last_token(model):
    vec = 3 * torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(0))
    with steer(model, HOOK0, vec):
        spy = Spy(model)
        out = _generate(model, cache=False)
    spy.remove()
    # every uncached step recomputes the whole sequence: positions 2.. must all be steered
    assert [spy.steered_positions(k, out[0, : 3 + k]) for k in range(4)] == \
        [list(range(2, 3 + k)) for k in range(4)]


def test_cached_and_uncached_generation_agree(model):
    vec = 3 * torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(0))
    plain = _generate(model, cache=True)
    assert torch.equal(plain, _generate(model, cache=False))
    with steer(model, HOOK0, vec):
        cached = _generate(model, cache=True)
    with steer(model, HOOK0, vec):
        uncached = _generate(model, cache=False)
    assert not torch.equal(cached, plain)  # the vector does change the generation
    assert torch.equal(cached, uncached)


def test_generation_after_a_longer_prompt_is_still_steered(model):
    vec = 100 * torch.ones(model.cfg.d_model)
    with steer(model, HOOK0, vec):
        spy = Spy(model)
        model(torch.tensor([list(range(1, 11))]))
        out = _generate(model, cache=True, steps=3)
    spy.remove()
    assert spy.steered_positions(1, out[0, :3]) == [2]
    assert spy.steered_positions(2, out[0, :4]) == [0]


def test_int_positions_follow_cached_generation(model):
    vec = 100 * torch.ones(model.cfg.d_model)
    with steer(model, HOOK0, vec, positions=4):
        spy = Spy(model)
        out = _generate(model, cache=True, steps=3)
    spy.remove()
    # absolute positions 0..2 (prompt) and 3 are not steered; position 4 is
    assert spy.steered_positions(0, out[0, :3]) == []
    assert spy.steered_positions(1, out[0, :4]) == []
    assert spy.steered_positions(2, out[0, :5]) == [0]


def test_prompt_positions_steer_the_prompt_and_not_what_follows(model):
    vec = 100 * torch.ones(model.cfg.d_model)
    with steer(model, HOOK0, vec, positions="prompt"):
        spy = Spy(model)
        model(torch.tensor([[3, 4, 5, 6]]))  # a plain call: the whole input is the prompt
        out = _generate(model, cache=True, steps=3)
    spy.remove()
    assert spy.steered_positions(0, [3, 4, 5, 6]) == [0, 1, 2, 3]
    assert spy.steered_positions(1, out[0, :3]) == [0, 1, 2]  # the generation's prompt
    assert spy.steered_positions(2, out[0, :4]) == []  # generated tokens are not steered
    assert spy.steered_positions(3, out[0, :5]) == []
    with steer(model, HOOK0, vec, positions="prompt"):
        spy = Spy(model)
        uncached = _generate(model, cache=False, steps=3)
    spy.remove()
    assert torch.equal(uncached, out)
    # every uncached step recomputes the sequence: the prompt's positions only
    assert [spy.steered_positions(k, uncached[0, : 3 + k]) for k in range(3)] == [[0, 1, 2]] * 3


def test_stop_leaves_the_scored_continuation_unsteered(model):
    """One pass over a prompt and its continuation: ``stop`` (the prompt's length) ends the
    steering, whatever the start."""
    vec = 100 * torch.ones(model.cfg.d_model)
    seq = [3, 4, 5, 6, 7, 8]
    got = {}
    for positions in ("prompt", "all", "from_last", 1):
        with steer(model, HOOK0, vec, positions=positions, stop=4):
            spy = Spy(model)
            model(torch.tensor([seq]))
        spy.remove()
        got[positions] = spy.steered_positions(0, seq)
    assert got == {"prompt": [0, 1, 2, 3], "all": [0, 1, 2, 3], "from_last": [], 1: [1, 2, 3]}
    base = _resid(model, torch.tensor([seq]))
    with steer(model, "blocks.2.hook_resid_pre", vec, positions="prompt", stop=4):
        d = _resid(model, torch.tensor([seq])) - base
    assert torch.allclose(d[0, :4], vec.expand(4, -1))
    assert torch.allclose(d[0, 4:], torch.zeros(2, model.cfg.d_model))


def test_bad_arguments(model):
    vec = torch.ones(model.cfg.d_model)
    with pytest.raises(KeyError):
        steer(model, "blocks.99.hook_resid_pre", vec)
    with pytest.raises(ValueError, match="shape"):
        steer(model, HOOK0, torch.ones(3))
    with pytest.raises(ValueError, match="positions"):
        steer(model, HOOK0, vec, positions="middle")
    with pytest.raises(ValueError, match="positions"):
        steer(model, HOOK0, vec, positions=True)
    for stop in (-1, True, 2.5):
        with pytest.raises(ValueError, match="stop"):
            steer(model, HOOK0, vec, positions="prompt", stop=stop)
