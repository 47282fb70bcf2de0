"""Layer advice from first-order steerability (w2s_lens.evaluation.advice) and ``w2s-lens
advise``: the planted layers of the hand-built controls, the verification against a real
sweep, the files, the command line."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import scipy.stats
import torch
from conftest import write_ab_dataset

from w2s_lens.cli.commands import build_parser, main
from w2s_lens.cli.settings import config_from_args
from w2s_lens.controls.synthetic import build_control
from w2s_lens.evaluation.advice import Advice, advise_examples, verification
from w2s_lens.evaluation.config import EvalConfig
from w2s_lens.evaluation.config_parts import ConfigError
from w2s_lens.report.plots_advice import ADVICE_FILES, advice_figure, write_advice
from w2s_lens.steering.vectors import SteeringVectors, model_name, train_caa
from w2s_lens.sweep.runner import run_sweep

CFG = dict(dataset="synthetic", n_boot=300)


@pytest.fixture(scope="module")
def positive():
    c = build_control("positive", n_families=3, n_layers=4, seed=0)
    train = c.make_examples(24, seed=1, both_orders=True)
    test = c.make_examples(12, seed=2, both_orders=True)
    return c, train, test, advise_examples(c.model, train, test, EvalConfig(**CFG), verify=12)


def test_positive_control_items_get_their_planted_layers(positive):
    c, _, test, adv = positive
    assert isinstance(adv, Advice) and adv.layers == (1, 2, 3) and adv.n == 12
    family = {ex.unit: int(ex.group.removeprefix("family")) for ex in test}
    planted = [c.family_layers[family[i]] for i in adv.ids]
    assert sorted(set(planted)) == [1, 2, 3]  # every family present: not vacuous
    assert list(adv.item_layers) == planted
    # the first-order estimate ranks each item's planted layer first, as the sweep does
    v = adv.verification
    assert v is not None and v.n == 12 and v.ids == adv.ids
    assert [adv.layers[i] for i in v.measured.argmax(axis=1)] == planted
    assert v.best_layer_agreement == 1.0 and v.chance == pytest.approx(1 / 3)
    assert v.first_order_choice == pytest.approx(v.oracle)


def test_verification_is_computed_against_a_real_sweep(positive):
    c, train, test, adv = positive
    vecs = train_caa(c.model, train, layers=[1, 2, 3])
    sweep = run_sweep(c.model, vecs, test, layers=[1, 2, 3], progress=False).mirrored()
    v = adv.verification
    assert list(sweep.ids) == list(v.ids)
    assert np.allclose(v.measured, sweep.steerability, atol=1e-6)
    m, f = sweep.steerability, adv.steerability
    rho = [scipy.stats.spearmanr(a, b).statistic for a, b in zip(f, m)
           if np.ptp(a) > 0 and np.ptp(b) > 0]
    assert v.spearman_median == pytest.approx(float(np.median(rho)))
    assert np.nanmedian(v.spearman) == pytest.approx(v.spearman_median)
    mfix = int(m.mean(0).argmax())
    assert v.measured_fixed_layer == adv.layers[mfix]
    assert v.measured_fixed == pytest.approx(m[:, mfix].mean())
    assert v.advised_fixed == pytest.approx(m[:, adv.layers.index(adv.fixed_layer)].mean())
    rows = np.arange(len(m))
    assert v.first_order_choice == pytest.approx(m[rows, f.argmax(1)].mean())
    assert v.oracle == pytest.approx(m.max(1).mean())
    lo, hi = v.choice_vs_fixed_ci
    assert lo <= v.first_order_choice - v.measured_fixed <= hi
    # a partial verification checks the first N items only, with the same numbers
    part = advise_examples(c.model, train, test, EvalConfig(**CFG), verify=4)
    assert part.verification.ids == adv.ids[:4]
    assert np.allclose(part.verification.measured, m[:4], atol=1e-6)


def test_layer_statistics_fixed_layer_and_gain(positive):
    _, _, _, adv = positive
    s = adv.steerability
    assert np.allclose(adv.layer_mean, s.mean(0))
    assert np.all(adv.layer_ci[:, 0] <= adv.layer_mean) and np.all(
        adv.layer_mean <= adv.layer_ci[:, 1])
    j = int(s.mean(0).argmax())
    assert adv.fixed_layer == adv.layers[j]
    assert adv.gain == pytest.approx((s.max(1) - s[:, j]).mean())
    assert adv.gain > 0 and adv.gain_ci[0] > 0  # the planted layers differ per family
    # the ReLU readers and eraser kink at λ = 0: the derivative misjudges the mean per layer
    # here, so the fixed layer it recommends need not be the sweep's (documented)
    assert set(adv.timing) == {"vectors", "first_order", "verify", "total"}
    assert adv.timing["total"]["wall_s"] >= adv.timing["first_order"]["wall_s"] > 0


def test_negative_control_fixed_layer_is_the_planted_one():
    c = build_control("negative", n_families=3, n_layers=4, seed=0)
    adv = advise_examples(c.model, c.make_examples(24, seed=1, both_orders=True),
                          c.make_examples(12, seed=2, both_orders=True), EvalConfig(**CFG),
                          verify=6)
    assert c.family_layers == [2, 2, 2]
    assert adv.fixed_layer == 2 == adv.verification.measured_fixed_layer
    assert set(adv.item_layers) == {2}
    assert adv.gain == pytest.approx(0.0, abs=1e-9)


def test_linear_control_advice_is_the_sweep_exactly():
    """Logits linear in the steering: the first-order steerability is the OLS slope, so the
    advice and the sweep agree on everything (given vectors; one presentation per row)."""
    c = build_control("linear")
    exs = c.make_examples(8, seed=1, both_orders=True)
    layers = list(range(1, c.n_layers))
    g = torch.Generator().manual_seed(0)
    vecs = SteeringVectors(torch.randn(len(layers), c.model.cfg.d_model, generator=g), layers,
                           metadata={"model": model_name(c.model),
                                     "d_model": c.model.cfg.d_model})
    adv = advise_examples(c.model, [], exs, EvalConfig(**CFG, mirror=False), vectors=vecs,
                          verify=len(exs))
    v = adv.verification
    assert adv.n == len(exs) and adv.n_vector_pairs == 0 and not adv.mirrored
    scale = np.abs(v.measured).max()
    assert scale > 1.0
    assert np.abs(adv.steerability - v.measured).max() <= 1e-5 * scale
    assert adv.fixed_layer == v.measured_fixed_layer
    assert v.best_layer_agreement == 1.0 and v.spearman_median == pytest.approx(1.0)


def test_verification_handles_constant_curves():
    v = verification(np.array([[1.0, 1.0], [0.0, 2.0], [3.0, 1.0]]),
                     np.array([[0.5, 0.2], [0.1, 0.9], [0.4, 0.6]]), [4, 7], 7, ["a", "b", "c"],
                     n_boot=100)
    assert np.isnan(v.spearman[0]) and v.spearman[1:] == pytest.approx([1.0, -1.0])
    assert v.spearman_median == pytest.approx(0.0)  # the constant first row left out
    assert v.best_layer_agreement == pytest.approx(2 / 3)  # ties go to the earlier layer
    assert v.measured_fixed_layer == 7 and v.advised_fixed == pytest.approx(1.7 / 3)
    assert v.first_order_choice == pytest.approx((0.5 + 0.9 + 0.4) / 3)


def test_summary_table_and_files(positive, tmp_path):
    _, _, _, adv = positive
    text = adv.summary()
    for needle in (f"recommended fixed layer: {adv.fixed_layer}", "in-sample upper bound",
                   "best-layer agreement: 1.00", "verified against a real sweep of 12 items",
                   "cost: vectors"):
        assert needle in text, needle
    df = adv.to_pandas()
    assert len(df) == 12 and df["advised_layer"].tolist() == list(adv.item_layers)
    assert {"fo_L1", "fo_L3", "sweep_L2", "measured_best_layer", "spearman"} <= set(df.columns)
    assert adv.layer_table()["advised_share"].sum() == pytest.approx(1.0)
    fig = advice_figure(adv)
    assert [t.name for t in fig.data][-1].startswith("measured")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no NaN written as null
        paths = write_advice(adv, tmp_path / "adv")
    assert [p.name for p in paths] == list(ADVICE_FILES)
    data = json.loads((tmp_path / "adv" / "advice.json").read_text())
    assert data["fixed_layer"] == adv.fixed_layer and data["verification"]["n"] == 12
    assert np.allclose(data["steerability"], adv.steerability)
    assert "plotly" in (tmp_path / "adv" / "advice.html").read_text()[:100000].lower()


def test_refusals(positive):
    c, train, test, _ = positive
    with pytest.raises(ConfigError, match="verify"):
        advise_examples(c.model, train, test, EvalConfig(**CFG), verify=-1)
    with pytest.raises(ConfigError, match="no items"):
        advise_examples(c.model, train, [], EvalConfig(**CFG))
    with pytest.raises(ConfigError, match="training items"):
        advise_examples(c.model, [], test, EvalConfig(**CFG))


def test_cli_help_and_options(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["advise", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "first-order" in text and "--verify" in text and "--layers" in text
    assert "--routers" not in text and "--l2s-hidden" not in text  # not used by advise
    args = build_parser().parse_args(["advise", "--readout", "cloze", "--layers", "3,1",
                                      "--verify", "4", "--n-test", "8"])
    cfg = config_from_args(args)
    assert (args.verify, args.out, cfg.sweep.layers, cfg.sweep.readout, cfg.data.n_test) == (
        4, None, (1, 3), "cloze", 8)


def test_cli_refuses_a_negative_verify(tmp_path, capsys):
    data = write_ab_dataset(tmp_path / "data", 8)
    assert main(["advise", "--dataset", str(data), "--verify", "-2",
                 "--model", "smollm2-135m-instruct"]) == 2
    assert "--verify -2" in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    assert main(["advise", "--dataset", str(data), "--out", str(tmp_path / "afile"),
                 "--model", "smollm2-135m-instruct"]) == 2
    assert "is a file" in capsys.readouterr().err


def test_advise_on_a_file_trains_on_the_other_questions(tmp_path, monkeypatch):
    import w2s_lens.cli.jobs as jobs

    data = write_ab_dataset(tmp_path / "data", 8)
    targets = write_ab_dataset(tmp_path / "targets", 3, name="mine")  # the dataset's first 3
    got = {}

    def fake_advise(model, items, config, test_items, verify, progress):
        got.update(items=items, test=test_items, verify=verify)
        return "advice"

    monkeypatch.setattr(jobs, "_model", lambda *a, **k: "model")
    monkeypatch.setattr(jobs, "advise", fake_advise)
    cfg = EvalConfig(dataset=str(data))
    assert jobs.advise_job(cfg, verify=2, advise_on=targets) == "advice"
    asked = {it.question for it in got["test"]}
    assert len(got["test"]) == 3 and got["verify"] == 2
    assert len(got["items"]) == 5 and not asked & {it.question for it in got["items"]}
    jobs.advise_job(cfg)  # without a file: the dataset, split later by advise
    assert len(got["items"]) == 8 and got["test"] is None
    with pytest.raises(ConfigError, match="no dataset items are left"):
        jobs.advise_job(EvalConfig(dataset=str(targets)), advise_on=targets)


@pytest.mark.slow
def test_cli_advise_on_smollm2(tmp_path, capsys):
    data = write_ab_dataset(tmp_path / "data", 8)
    out = tmp_path / "advice"
    assert main(["advise", "--model", "smollm2-135m-instruct", "--dataset", str(data),
                 "--n-train", "4", "--n-test", "3", "--layers", "3,9,15", "--readout", "cloze",
                 "--n-boot", "100", "--verify", "2", "--threads", "1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "recommended fixed layer: " in text and "verified against a real sweep of 2" in text
    data = json.loads((out / "advice.json").read_text())
    assert data["layers"] == [3, 9, 15] and data["n_items"] == 3
    assert data["verification"]["n"] == 2 and data["readout"] == "cloze"
    assert data["fixed_layer"] in (3, 9, 15) and len(data["item_layers"]) == 3
    assert all((out / name).is_file() for name in ADVICE_FILES)
