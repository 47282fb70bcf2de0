import numpy as np
import pytest

from w2s_lens.artifacts import ArtifactMismatch
from w2s_lens.examples import SteeringExample
from w2s_lens.sweep import SweepResult, run_sweep, slopes
from w2s_lens.vectors import train_caa


def _examples(n=5, seed=0):
    rng = np.random.default_rng(seed)
    return [SteeringExample(id=f"e{i}", text="", tokens=tuple(rng.integers(2, 60, size=4 + 2 * i)),
                            matching_token_id=60 + i % 2, non_matching_token_id=61 - i % 2,
                            matching_letter="AB"[i % 2]) for i in range(n)]


@pytest.fixture(params=["tiny_model", "tiny_model_standard"])
def setup(request):
    model = request.getfixturevalue(request.param)
    model.cfg.model_name = request.param
    exs = _examples()
    return model, train_caa(model, exs), exs


def test_slopes_least_squares():
    mults = [-1.0, 0.0, 1.0, 2.0]
    prop = np.array([[1.0, 3.0, 5.0, 7.0], [0.0, 0.0, 0.0, 0.0]])
    assert np.allclose(slopes(prop, mults), [2.0, 0.0])
    noisy = np.array([0.1, 0.9, 2.2, 2.8])
    assert np.isclose(slopes(noisy, mults), np.polyfit(mults, noisy, 1)[0])
    with pytest.raises(ValueError):
        slopes(prop, [1.0, 1.0, 1.0, 1.0])


@pytest.mark.parametrize("positions", ["from_last", "all"])
def test_fast_equals_naive(setup, positions):
    model, vecs, exs = setup
    exs = exs[1:4]  # different lengths; the naive engine is slow by design
    scale = [0.5 + 0.25 * i for i in range(model.cfg.n_layers)]
    fast = run_sweep(model, vecs, exs, engine="fast", positions=positions, layer_scale=scale,
                     progress=False, chunk_size=2)
    naive = run_sweep(model, vecs, exs, engine="naive", positions=positions,
                      layer_scale=scale, progress=False)
    assert fast.propensity.shape == (3, model.cfg.n_layers, 7)
    assert np.abs(fast.propensity - naive.propensity).max() <= 1e-3
    assert np.abs(fast.steerability).mean() > 1e-3  # the vectors do move the answers


def test_zero_multiplier_is_the_unsteered_model(setup):
    model, vecs, exs = setup
    import torch

    res = run_sweep(model, vecs, exs, layers=[0, 2], progress=False)
    j = res.multipliers.index(0.0)
    for i, ex in enumerate(exs):
        logits = model(torch.tensor([ex.tokens]))[0, -1].detach()
        want = float(logits[ex.matching_token_id] - logits[ex.non_matching_token_id])
        assert np.allclose(res.propensity[i, :, j], want, atol=1e-4)


def test_layer_order_and_scales_travel_together(setup):
    model, vecs, exs = setup
    # scales given for layers [3, 1]; a zero scale must zero layer 3, not layer 1
    res = run_sweep(model, vecs, exs[:2], layers=[3, 1], layer_scale=[0.0, 1.0],
                    progress=False)
    assert res.layers == [1, 3]
    assert np.abs(res.steerability[:, 1]).max() < 1e-9
    assert np.abs(res.steerability[:, 0]).max() > 1e-4
    with pytest.raises(ValueError, match="distinct"):
        run_sweep(model, vecs, exs, layers=[1, 1], progress=False)
    with pytest.raises(ValueError, match="two distinct multipliers"):
        run_sweep(model, vecs, exs, multipliers=[1.0], progress=False)


def test_resume_after_interruption(setup, tmp_path, monkeypatch):
    model, vecs, exs = setup
    full = run_sweep(model, vecs, exs, chunk_size=2, progress=False)
    import w2s_lens.sweep as sweep_mod

    real = sweep_mod._fast_chunk
    calls = {"n": 0}

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(sweep_mod, "_fast_chunk", dying)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(model, vecs, exs, out_dir=tmp_path, chunk_size=2, progress=False)
    assert len(list((tmp_path / "chunks").glob("*.safetensors"))) == 1
    monkeypatch.setattr(sweep_mod, "_fast_chunk", real)
    counted = {"n": 0}

    def counting(*args, **kwargs):
        counted["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(sweep_mod, "_fast_chunk", counting)
    resumed = run_sweep(model, vecs, exs, out_dir=tmp_path, chunk_size=2, progress=False)
    assert counted["n"] == 2  # chunks 2 and 3 only
    assert np.allclose(resumed.propensity, full.propensity, atol=1e-6)
    with pytest.raises(ArtifactMismatch, match="different sweep"):
        run_sweep(model, vecs, exs, out_dir=tmp_path, chunk_size=2, multipliers=[0, 1],
                  progress=False)


def test_save_load_roundtrip(setup, tmp_path):
    model, vecs, exs = setup
    res = run_sweep(model, vecs, exs, layers=[1, 3], progress=False)
    res.save(tmp_path)
    back = SweepResult.load(tmp_path)
    assert back.layers == [1, 3] and back.ids == res.ids
    assert back.matching_letters == ["A", "B", "A", "B", "A"]
    assert np.allclose(back.propensity, res.propensity, atol=1e-5)
    assert np.allclose(back.steerability, res.steerability, atol=1e-4)
    assert back.metadata["hook_names"] == ["blocks.1.hook_resid_pre", "blocks.3.hook_resid_pre"]


def test_bad_arguments(setup):
    model, vecs, exs = setup
    with pytest.raises(ValueError, match="engine"):
        run_sweep(model, vecs, exs, engine="turbo", progress=False)
    with pytest.raises(ValueError, match="positions"):
        run_sweep(model, vecs, exs, positions="first", progress=False)
    with pytest.raises(ValueError, match="no examples"):
        run_sweep(model, vecs, [], progress=False)
    with pytest.raises(ValueError, match="layer_scale"):
        run_sweep(model, vecs, exs, layer_scale=[1.0], progress=False)
