"""Steering the prompt only (``positions="prompt"``): the continuation is reached through
attention alone.

A tiny random model with every attention output zeroed (``W_O = 0``, ``b_O = 0``) moves no
information between positions, so steering the prompt cannot change what is read at a
continuation position: the log-probabilities of continuation tokens 2..k stay put, while
token 1 (read at the last prompt position, which is steered) moves. Steering from the last
prompt token on (``"from_last"``) does move tokens 2..k, and with attention intact the prompt
alone moves them too.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_tiny_model

from w2s_lens.data.examples import SteeringExample
from w2s_lens.steering.hooks import steer
from w2s_lens.sweep.engines import fast_chunk, naive_chunk

PROMPT = (5, 17, 3, 22, 9)
CONT = (7, 8, 9, 30)
LAYERS = [0, 1, 3]
MULTS = [-2.0, 0.0, 1.0, 2.0]


def _model(positional: str, attention: bool):
    model = make_tiny_model(positional, seed=0 if positional == "rotary" else 1)
    if not attention:
        with torch.no_grad():
            for block in model.blocks:
                block.attn.W_O.zero_()
                block.attn.b_O.zero_()
    return model


def _token_logprobs(model, hook: str, vec, **steering) -> torch.Tensor:
    """log p of each continuation token, steered with ``steering`` (unsteered when empty)."""
    tokens = torch.tensor([PROMPT + CONT[:-1]])
    with torch.inference_mode():
        if steering:
            with steer(model, hook, vec, **steering):
                logits = model(tokens)
        else:
            logits = model(tokens)
    logp = logits[0].float().log_softmax(-1)
    n = len(PROMPT)
    return torch.stack([logp[n - 1 + j, t] for j, t in enumerate(CONT)])


@pytest.mark.parametrize("positional", ["rotary", "standard"])
@pytest.mark.parametrize("layer", [0, 2])
def test_prompt_only_steering_reaches_the_continuation_through_attention_only(positional,
                                                                              layer):
    vec = 4.0 * torch.randn(32, generator=torch.Generator().manual_seed(layer))
    hook = f"blocks.{layer}.hook_resid_pre"
    n = len(PROMPT)
    blind = _model(positional, attention=False)
    plain = _token_logprobs(blind, hook, vec)
    prompt = _token_logprobs(blind, hook, vec, positions="prompt", stop=n)
    from_last = _token_logprobs(blind, hook, vec, positions=n - 1)
    # token 1 is read at the last prompt position, which is steered
    assert abs(float(prompt[0] - plain[0])) > 1e-3
    # tokens 2..k: unchanged by prompt-only steering without attention ...
    assert torch.allclose(prompt[1:], plain[1:], atol=1e-6)
    # ... but changed by steering from the last prompt token on
    assert (from_last[1:] - plain[1:]).abs().min() > 1e-3
    # with attention, the steered prompt does reach them
    seeing = _model(positional, attention=True)
    changed = (_token_logprobs(seeing, hook, vec, positions="prompt", stop=n)
               - _token_logprobs(seeing, hook, vec))[1:]
    assert changed.abs().max() > 1e-3


def _examples() -> list[SteeringExample]:
    """Cloze examples whose summed readout is continuation tokens 2..k only: the non-matching
    option is the matching one's first token, so the first-token terms cancel."""
    out = []
    for i, cut in enumerate((2, 3, 4)):
        prompt = PROMPT[: 3 + i]
        out.append(SteeringExample(f"e{i}", "", prompt, matching_letter="A",
                                   matching_continuation=CONT[:cut],
                                   non_matching_continuation=CONT[:1]))
    return out


@pytest.mark.parametrize("positional", ["rotary", "standard"])
def test_engines_leave_later_continuation_tokens_alone_without_attention(positional):
    exs = _examples()
    vecs = 4.0 * torch.randn(len(exs), len(LAYERS), 32, generator=torch.Generator()
                             .manual_seed(3))
    blind = _model(positional, attention=False)
    for chunk in (lambda *a, **k: fast_chunk(*a, **k)[0], naive_chunk):
        mults = torch.tensor(MULTS) if chunk is not naive_chunk else MULTS
        prompt = chunk(blind, vecs, LAYERS, mults, exs, "prompt")
        from_last = chunk(blind, vecs, LAYERS, mults, exs, "from_last")
        assert np.ptp(prompt, axis=-1).max() < 1e-5  # tokens 2..k: untouched
        assert np.ptp(from_last, axis=-1).min() > 1e-2
        # the first token (read at the steered last prompt position) does move
        other = [SteeringExample(e.id, "", e.tokens, matching_letter="A",
                                 matching_continuation=e.continuations[0],
                                 non_matching_continuation=(40, 41)) for e in exs]
        first = chunk(blind, vecs, LAYERS, mults, other, "prompt", scoring="first")
        assert np.ptp(first, axis=-1).min() > 1e-2
    seeing = _model(positional, attention=True)
    fast, _ = fast_chunk(seeing, vecs, LAYERS, torch.tensor(MULTS), exs, "prompt")
    naive = naive_chunk(seeing, vecs, LAYERS, MULTS, exs, "prompt")
    assert np.abs(fast - naive).max() <= 1e-4
    assert np.ptp(fast, axis=-1).min() > 1e-3  # through attention they do move
