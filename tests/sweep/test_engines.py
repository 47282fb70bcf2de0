"""Tests for w2s_lens.sweep.engines: the fast engine against the naive reference, on tiny models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_tiny_model

from w2s_lens.data.examples import SteeringExample
from w2s_lens.routing.embeddings import embed_examples
from w2s_lens.sweep.engines import check_fast_supported, fast_chunk, naive_chunk

LAYERS = [0, 2, 3]
MULTS = [-1.0, 0.5, 1.5]

# prompts of different lengths (one of a single token: empty prefix when steering from it)
PROMPTS = [(5, 17, 3), (9, 2, 44, 8, 30, 12, 7), (1,), (21, 4, 4, 50), (6, 6, 19, 33, 2, 58)]
# continuations of different lengths, some sharing their first token
CONTS = [((7, 8, 9), (7, 11)), ((5,), (6, 6)), ((12, 13), (12,)), ((40,), (41,)),
         ((3, 3, 3, 3), (3, 9))]


def _examples(readout: str) -> list[SteeringExample]:
    out = []
    for i, toks in enumerate(PROMPTS):
        if readout == "letter":
            out.append(SteeringExample(f"e{i}", "", toks, 60 + i % 2, 61 - i % 2, "AB"[i % 2]))
        else:
            m, n = CONTS[i]
            out.append(SteeringExample(f"e{i}", "", toks, matching_letter="A",
                                       matching_continuation=m, non_matching_continuation=n))
    return out


def _vectors(n: int, n_layers: int, d: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, n_layers, d, generator=g)


@pytest.fixture(scope="module", params=["rotary", "standard"])
def model(request):
    return make_tiny_model(request.param, seed=0 if request.param == "rotary" else 1)




@pytest.mark.parametrize("positions", ["from_last", "all", "prompt"])
@pytest.mark.parametrize("readout, scoring", [("letter", "sum"), ("cloze", "sum"),
                                              ("cloze", "mean"), ("cloze", "first")])
def test_fast_equals_naive(model, readout, positions, scoring):
    exs = _examples(readout)
    vecs = _vectors(len(exs), len(LAYERS), model.cfg.d_model)  # one vector per (input, layer)
    fast, _ = fast_chunk(model, vecs, LAYERS, torch.tensor(MULTS), exs, positions,
                         scoring=scoring)
    naive = naive_chunk(model, vecs, LAYERS, MULTS, exs, positions, scoring=scoring)
    assert fast.shape == naive.shape == (len(exs), len(LAYERS), len(MULTS))
    assert np.abs(fast - naive).max() <= 1e-4
    # the comparison is not vacuous: the vectors move the readout of every example
    assert np.ptp(naive, axis=-1).min() > 1e-2


def test_scoring_is_a_no_op_for_letters_and_matters_for_cloze(model):
    vecs = _vectors(len(PROMPTS), len(LAYERS), model.cfg.d_model)
    mults = torch.tensor(MULTS)
    letter = _examples("letter")
    a, _ = fast_chunk(model, vecs, LAYERS, mults, letter, scoring="sum")
    for scoring in ("mean", "first"):
        b, _ = fast_chunk(model, vecs, LAYERS, mults, letter, scoring=scoring)
        assert np.array_equal(a, b)
    cloze = _examples("cloze")
    c, _ = fast_chunk(model, vecs, LAYERS, mults, cloze, scoring="sum")
    d, _ = fast_chunk(model, vecs, LAYERS, mults, cloze, scoring="mean")
    # example 3 has one-token continuations (unchanged), the others are rescaled
    assert np.allclose(c[3], d[3], atol=1e-6)
    assert np.abs(c[[0, 1, 2, 4]] - d[[0, 1, 2, 4]]).min() > 1e-4
    f, _ = fast_chunk(model, vecs, LAYERS, mults, cloze, scoring="first")
    # example 3: one token each, the first is all there is; example 2: (12, 13) against (12,),
    # the sum's one term that does not cancel is 13's, which "first" reads
    assert np.allclose(c[[2, 3]], f[[2, 3]], atol=1e-5)
    assert np.abs(c[[0, 1, 4]] - f[[0, 1, 4]]).min() > 1e-4
    for i, ex in enumerate(cloze):
        m, n = ex.continuations
        if m[0] != n[0]:  # read at the last prompt token: log p(m_1) − log p(n_1) there
            with torch.inference_mode():
                logp = model(torch.tensor([ex.tokens]))[0, -1].float().log_softmax(-1)
            zero, _ = fast_chunk(model, vecs[i : i + 1], LAYERS, torch.tensor([0.0]), [ex],
                                 scoring="first")
            assert np.allclose(zero[0, :, 0], float(logp[m[0]] - logp[n[0]]), atol=1e-5)
            continue
        # the same first token: "first" is the summed readout's first term that does not
        # cancel, the sum over the continuations cut after the first token they differ at
        j = next(j for j in range(min(len(m), len(n)) + 1)
                 if j == min(len(m), len(n)) or m[j] != n[j])
        cut = SteeringExample(ex.id, "", ex.tokens, matching_continuation=m[: j + 1],
                              non_matching_continuation=n[: j + 1])
        want, _ = fast_chunk(model, vecs[i : i + 1], LAYERS, mults, [cut], scoring="sum")
        assert np.allclose(f[i], want[0], atol=1e-5)
        assert np.ptp(f[i], axis=-1).min() > 1e-3  # and it is not 0: the vectors move it


def test_one_token_cloze_equals_letter(model):
    letter = _examples("letter")
    cloze = [SteeringExample(e.id, "", e.tokens, matching_letter=e.matching_letter,
                             matching_continuation=(e.matching_token_id,),
                             non_matching_continuation=(e.non_matching_token_id,))
             for e in letter]
    vecs = _vectors(len(letter), len(LAYERS), model.cfg.d_model)
    a, _ = fast_chunk(model, vecs, LAYERS, torch.tensor(MULTS), letter)
    b, _ = fast_chunk(model, vecs, LAYERS, torch.tensor(MULTS), cloze)
    assert np.allclose(a, b, atol=1e-5)


def test_each_input_is_steered_with_its_own_vectors(model):
    exs = _examples("cloze")
    vecs = _vectors(len(exs), len(LAYERS), model.cfg.d_model)
    base, _ = fast_chunk(model, vecs, LAYERS, torch.tensor(MULTS), exs, max_rows=64)
    other = vecs.clone()
    other[2] = _vectors(1, len(LAYERS), model.cfg.d_model, seed=9)[0]
    other[4, 1] = 0.0
    got, _ = fast_chunk(model, other, LAYERS, torch.tensor(MULTS), exs, max_rows=64)
    changed = np.abs(got - base).max(axis=-1)  # [n, L]
    assert np.all(changed[[0, 1, 3]] == 0.0)
    assert changed[2].min() > 1e-3 and changed[4, 1] > 1e-3
    assert changed[4, 0] == 0.0 and changed[4, 2] == 0.0
    assert np.ptp(got[4, 1]) < 1e-5  # a zero vector: the same readout for every multiplier


@pytest.mark.parametrize("readout", ["letter", "cloze"])
@pytest.mark.parametrize("positions", ["from_last", "all", "prompt"])
def test_cross_input_batching_gives_the_same_numbers(model, readout, positions):
    exs = _examples(readout)
    vecs = _vectors(len(exs), len(LAYERS), model.cfg.d_model)
    mults = torch.tensor(MULTS)
    sizes: list[int] = []
    # rows through the last block (the engine calls the blocks' hook points, not the blocks)
    last = f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"
    results = {}
    with model.hooks(fwd_hooks=[(last, lambda act, hook: sizes.append(act.shape[0]))]):
        for max_rows in (None, 4, 1000):
            sizes.clear()
            results[max_rows] = fast_chunk(model, vecs, LAYERS, mults, exs, positions,
                                           max_rows=max_rows)[0]
            results[(max_rows, "sizes")] = list(sizes)
    for max_rows in (4, 1000):
        assert np.abs(results[max_rows] - results[None]).max() <= 1e-5
    # one example's rows at one layer: multipliers × its suffix rows
    per_example = [len(MULTS) * (1 if ex.readout == "letter" or len(ex.continuations[1]) == 1
                                 else 2) * len(LAYERS) for ex in exs]
    # max_rows=1000 really mixes inputs: a batch holds more rows than any single input has
    assert max(results[(1000, "sizes")]) > max(per_example)
    assert len(results[(1000, "sizes")]) < len(results[(None, "sizes")])


def _cloze_logprob(model, prompt, cont) -> float:
    with torch.inference_mode():
        logp = model(torch.tensor([list(prompt + cont[:-1])]))[0].float().log_softmax(-1)
    n = len(prompt)
    return sum(float(logp[n - 1 + j, t]) for j, t in enumerate(cont))


@pytest.mark.parametrize("positions", ["from_last", "all", "prompt"])
def test_zero_multiplier_is_the_unsteered_model(model, positions):
    mults = torch.tensor([-1.0, 0.0, 1.0])
    letter = _examples("letter")
    vecs = _vectors(len(letter), len(LAYERS), model.cfg.d_model)
    prop, _ = fast_chunk(model, vecs, LAYERS, mults, letter, positions)
    for i, ex in enumerate(letter):
        with torch.inference_mode():
            logits = model(torch.tensor([ex.tokens]))[0, -1]
        want = float(logits[ex.matching_token_id] - logits[ex.non_matching_token_id])
        assert np.allclose(prop[i, :, 1], want, atol=1e-4)
    cloze = _examples("cloze")
    prop, _ = fast_chunk(model, vecs, LAYERS, mults, cloze, positions)
    for i, ex in enumerate(cloze):
        m, n = ex.continuations
        want = _cloze_logprob(model, ex.tokens, m) - _cloze_logprob(model, ex.tokens, n)
        assert np.allclose(prop[i, :, 1], want, atol=1e-4)
        assert np.abs(prop[i, :, 0] - want).max() > 1e-3  # λ = -1 does move it


@pytest.mark.parametrize("positions", ["from_last", "all", "prompt"])
@pytest.mark.parametrize("capture_layer", [0, 2, 3])
def test_captured_residuals_are_the_resid_last_embedding(model, positions, capture_layer):
    exs = _examples("cloze")
    vecs = _vectors(len(exs), 1, model.cfg.d_model)
    _, cap = fast_chunk(model, vecs, [1], torch.tensor([0.0, 1.0]), exs, positions,
                        capture_layer=capture_layer)
    want = embed_examples(model, exs, "resid-last", capture_layer)
    assert cap.dtype == np.float32 and cap.shape == (len(exs), model.cfg.d_model)
    assert np.allclose(cap, want, atol=1e-5)


def test_bfloat16_model_fast_vs_naive():
    """Bound: |fast − naive| ≤ 0.05 on propensities of magnitude up to ~15.

    bfloat16 keeps 8 significant bits (relative rounding 2^-9 ≈ 0.002 per operation). The two
    engines round at different places (cached prefix keys/values and batched single-block
    passes vs one full pass; λ and v rounded separately vs λ·v rounded once), so each deviates
    from exact arithmetic by about as much as the bfloat16 model deviates from its float32
    original. Measured on these inputs (rotary/standard × letter/cloze × from_last/all):
    max |fast − naive| 0.006–0.028, max |bf16 − fp32| 0.026–0.052 (the float32 engines agree
    to 2e-6). 0.05 is about twice the largest fast − naive gap seen.
    """
    mults = [-1.0, 1.5]
    for kind, seed in (("rotary", 0), ("standard", 1)):
        ref = make_tiny_model(kind, seed=seed)
        model = make_tiny_model(kind, seed=seed)
        model.to(torch.bfloat16)
        assert model.cfg.dtype == torch.bfloat16
        for readout in ("letter", "cloze"):
            exs = _examples(readout)
            vecs = _vectors(len(exs), len(LAYERS), model.cfg.d_model)
            fast, cap = fast_chunk(model, vecs, LAYERS, torch.tensor(mults), exs,
                                   capture_layer=2)
            naive = naive_chunk(model, vecs, LAYERS, mults, exs)
            exact, _ = fast_chunk(ref, vecs, LAYERS, torch.tensor(mults), exs)  # float32
            assert np.abs(fast - naive).max() <= 0.05
            assert np.abs(fast - exact).max() <= 0.15 and np.abs(naive - exact).max() <= 0.15
            assert cap.dtype == np.float32
            # readouts are float32, not bfloat16: most values are not bf16-representable
            as_bf16 = torch.tensor(fast).to(torch.bfloat16).double().numpy()
            assert np.mean(as_bf16 != fast) > 0.5


def test_fast_engine_refuses_what_it_cannot_do(tiny_model):
    with pytest.raises(ValueError, match="naive"):
        check_fast_supported(tiny_model, "resid_post")
    check_fast_supported(tiny_model, "resid_pre")


def test_fast_engine_refuses_positional_schemes_it_is_not_tested_on():
    """ALiBi: TransformerLens adds the bias by raw key index and ignores the mask, so the fast
    engine's right-padded prefixes would get wrong numbers; it must refuse, naming the naive
    engine, which still runs the model."""
    from w2s_lens.steering.vectors import SteeringVectors, model_name
    from w2s_lens.sweep.engines import FAST_POSITIONAL
    from w2s_lens.sweep.runner import run_sweep

    assert set(FAST_POSITIONAL) == {"rotary", "standard"}  # the schemes the tests above cover
    alibi = make_tiny_model("alibi", n_layers=2)
    alibi.cfg.model_name = "tiny-alibi"
    with pytest.raises(ValueError, match=r"'tiny-alibi' uses 'alibi'; use engine=\"naive\""):
        check_fast_supported(alibi, "resid_pre")
    exs = _examples("letter")[:3]
    vecs = SteeringVectors(_vectors(1, 2, 32)[0], [0, 1],
                           metadata={"model": model_name(alibi), "d_model": 32})
    with pytest.raises(ValueError, match="alibi"):
        run_sweep(alibi, vecs, exs, engine="fast", progress=False)
    res = run_sweep(alibi, vecs, exs, engine="naive", multipliers=[-1.0, 1.0], progress=False)
    assert res.propensity.shape == (3, 2, 2) and np.isfinite(res.propensity).all()
    assert np.abs(res.steerability).min() > 1e-4  # the vectors do steer it


@pytest.mark.slow
def test_bfloat16_on_an_embedded_model():
    """SmolLM2 in bfloat16: the engines agree within bf16 rounding, and propensities stay
    within a bound of the float32 ones (both readouts are float32)."""
    from w2s_lens.data.prompts import PromptFormatter
    from w2s_lens.data.samples import load_default_dataset
    from w2s_lens.data.splits import balanced
    from w2s_lens.models.loading import load_model
    from w2s_lens.steering.vectors import train_caa

    items = load_default_dataset()[:6]
    out = {}
    for dtype in ("float32", "bfloat16"):
        model = load_model("smollm2-135m-instruct", device="cpu", dtype=dtype)
        fmt = PromptFormatter(model.tokenizer)
        if dtype == "float32":
            vecs = train_caa(model, fmt.format_many(balanced(items[:4])), layers=[10, 20])
        exs = fmt.format_many(items[4:6])
        v = vecs.vectors[None].expand(len(exs), -1, -1) * 4.0
        mults = torch.tensor([-1.0, 0.0, 1.0])
        fast, _ = fast_chunk(model, v, [10, 20], mults, exs)
        naive = naive_chunk(model, v, [10, 20], [-1.0, 0.0, 1.0], exs)
        out[dtype] = (fast, naive)
    f32, b16 = out["float32"], out["bfloat16"]
    assert np.abs(f32[0] - f32[1]).max() < 1e-3
    fast_vs_naive = np.abs(b16[0] - b16[1]).max()
    vs_f32 = np.abs(b16[0] - f32[0]).max()
    print(f"[bf16] SmolLM2 fast-naive {fast_vs_naive:.4f}, bf16-fp32 {vs_f32:.4f}, "
          f"propensity scale {np.abs(f32[0]).max():.2f}")
    assert fast_vs_naive < 0.15 and vs_f32 < 0.15  # measured 0.064 and 0.053
    assert fast_vs_naive > 0 or vs_f32 > 0  # bf16 really ran


# ---------------------------------------------------------------- shared prefixes (mirroring)

# items in two presentations (one unit): a shared head, then remainders of different lengths
HEADS = [(5, 17, 3, 22, 9), (9, 2, 44), (1,), (21, 4, 4, 50, 8, 8)]
TAILS = [((7, 30, 12), (30, 7, 12, 6)), ((8,), (13, 8)), ((2, 2), (2, 2)), ((), (40,))]


def _pairs(readout: str) -> list[SteeringExample]:
    out = []
    for i, (head, tails) in enumerate(zip(HEADS, TAILS)):
        for o, tail in enumerate(tails):
            toks, eid = head + tail, f"p{i}" + ("~swap" if o else "")
            if readout == "letter":
                out.append(SteeringExample(eid, "", toks, 60 + o, 61 - o, "AB"[o]))
            else:
                m, n = CONTS[i]
                out.append(SteeringExample(eid, "", toks, matching_letter="AB"[o],
                                           matching_continuation=m,
                                           non_matching_continuation=n))
    return out


@pytest.fixture(scope="module", params=["rotary", "standard", "gqa"])
def any_model(request):
    from test_attention import gqa_model

    if request.param == "gqa":
        return gqa_model()
    return make_tiny_model(request.param, seed=0 if request.param == "rotary" else 1)


@pytest.mark.parametrize("positions", ["from_last", "all", "prompt"])
@pytest.mark.parametrize("readout", ["letter", "cloze"])
def test_shared_prefixes_equal_per_presentation_runs(any_model, readout, positions):
    """Both orders of an item in one chunk (their common prefix run once) give the numbers of
    each presentation run alone, with and without cross-input batching, and the naive
    engine's, to 1e-5 in float32; per-input vectors."""
    model = any_model
    exs = _pairs(readout)
    assert exs[0].unit == exs[1].unit != exs[2].unit
    vecs = _vectors(len(exs), len(LAYERS), model.cfg.d_model, seed=4)
    mults = torch.tensor(MULTS)
    together, _ = fast_chunk(model, vecs, LAYERS, mults, exs, positions)
    alone = np.stack([fast_chunk(model, vecs[i : i + 1], LAYERS, mults, [ex], positions)[0][0]
                      for i, ex in enumerate(exs)])
    assert np.abs(together - alone).max() <= 1e-5
    for max_rows in (4, 1000):
        got, _ = fast_chunk(model, vecs, LAYERS, mults, exs, positions, max_rows=max_rows)
        assert np.abs(got - alone).max() <= 1e-5
    naive = naive_chunk(model, vecs, LAYERS, MULTS, exs, positions)
    assert np.abs(together - naive).max() <= 1e-5
    assert np.ptp(naive, axis=-1).min() > 1e-2  # the vectors move every readout


def test_input_vectors_on_mirrored_items_through_run_sweep(any_model):
    """L2S's path: InputVectors (one vector per presentation and layer) on both letter orders,
    fast engine against naive."""
    from w2s_lens.steering.vectors import InputVectors, model_name
    from w2s_lens.sweep.runner import run_sweep

    model = any_model
    exs = _pairs("letter")
    vecs = InputVectors(_vectors(len(exs), 4, model.cfg.d_model, seed=5), [0, 1, 2, 3],
                        [ex.id for ex in exs], "resid_pre",
                        {"model": model_name(model), "d_model": model.cfg.d_model})
    kw = {"multipliers": [-1.0, 0.0, 1.0], "progress": False, "chunk_size": 4}
    fast = run_sweep(model, vecs, exs, engine="fast", **kw)
    naive = run_sweep(model, vecs, exs, engine="naive", **kw)
    assert np.abs(fast.propensity - naive.propensity).max() <= 1e-5
    assert np.abs(fast.steerability).min() > 1e-3


def test_a_zero_multiplier_reads_the_unsteered_model_once():
    """λ = 0 does not steer, so no steered rows are run for it (fewer rows through the last
    block), and its readout is the same at every layer."""
    model = make_tiny_model()
    exs = _pairs("cloze")
    vecs = _vectors(len(exs), len(LAYERS), model.cfg.d_model)
    rows = {}
    last = f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"
    for grid in ([-1.0, 0.0, 1.0], [-1.0, 0.5, 1.0]):
        seen: list[int] = []

        def count(act, hook, seen=seen):
            seen.append(act.shape[0])

        with model.hooks(fwd_hooks=[(last, count)]):
            prop, _ = fast_chunk(model, vecs, LAYERS, torch.tensor(grid), exs)
        rows[grid[1]] = sum(seen)
        if grid[1] == 0.0:
            assert np.ptp(prop[:, :, 1], axis=1).max() == 0.0
            assert np.ptp(prop, axis=-1).min() > 1e-2
    assert rows[0.0] < rows[0.5]


@pytest.mark.parametrize("positions", ["all", "prompt"])
def test_a_steered_prompt_runs_once_for_both_continuations(positions):
    """Steering the prompt, an example's prompt runs once per (layer, multiplier), not once
    per continuation row: through the last block pass one unsteered prefix row and one steered
    prefix row per multiplier, and the continuation rows start at the last prompt token (the
    numbers are the naive engine's, as the other tests check)."""
    model = make_tiny_model()
    prompt = (9, 2, 44, 8, 30, 12, 7)
    ex = SteeringExample("e", "", prompt, matching_letter="A",
                         matching_continuation=(7, 8, 9), non_matching_continuation=(7, 11))
    mults = [-1.0, 0.5, 1.5]
    widths: list[tuple[int, int]] = []

    def record(act, hook):
        widths.append((act.shape[0], act.shape[1]))

    last = f"blocks.{model.cfg.n_layers - 1}.hook_resid_pre"
    vecs = _vectors(1, 1, model.cfg.d_model)
    with model.hooks(fwd_hooks=[(last, record)]):
        fast, _ = fast_chunk(model, vecs, [1], torch.tensor(mults), [ex], positions)
    prompt_rows = sum(n for n, width in widths if width >= len(prompt) - 1)
    assert prompt_rows == 1 + len(mults)
    # the continuation rows: 2 per multiplier, from the last prompt token (1 + 2 tokens)
    assert (2 * len(mults), 3) in widths
    naive = naive_chunk(model, vecs, [1], mults, [ex], positions)
    assert np.abs(fast - naive).max() <= 1e-4
