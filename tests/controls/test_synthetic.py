"""The hand-built controls: their construction by hand, then through the unchanged pipeline.

The construction tests check every kind's exact slopes with a plain TransformerLens hook (no
w2s engine). The pipeline tests run :func:`w2s_lens.evaluation.pipeline.evaluate_examples`
(CAA and/or L2S on the training split in both letter orders → cross-fitted sweeps → best layers
→ logistic-regression router on the model's residual → held-out test split with bootstrap
intervals) and check that each control's known answer comes out. The task's own tests are in
test_synthetic_task.py, the kinds' circuits in test_synthetic_kinds.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from w2s_lens.controls.synthetic import SyntheticControl, build_control
from w2s_lens.controls.synthetic_kinds import ID_KINDS, KINDS
from w2s_lens.controls.weights import DIMS
from w2s_lens.evaluation.config import EvalConfig
from w2s_lens.evaluation.headroom.diagnostics import XV_NAMES
from w2s_lens.evaluation.pipeline import evaluate_examples
from w2s_lens.evaluation.split import SplitExamples
from w2s_lens.evaluation.stats import metrics
from w2s_lens.evaluation.stats.bootstrap import paired_diff_ci
from w2s_lens.evaluation.stats.paired import VERDICT_BETTER, verdict, verdict_of
from w2s_lens.evaluation.storage.rundir import RunDir
from w2s_lens.steering.activations import cache_residuals
from w2s_lens.steering.vectors import SteeringVectors, train_caa
from w2s_lens.sweep.runner import run_sweep

N_TRAIN = 36  # items per split (12 per family, both letters); both orders of each are swept
N_TEST = 36
N_BOOT = 1000

# ----------------------------------------------------------------------------- construction


def test_build_shapes_and_names() -> None:
    for kind in KINDS:
        c = build_control(kind)
        assert c.model.cfg.model_name == f"w2s-synthetic-{kind}"
        assert c.model.cfg.d_vocab == len(c.vocab)
    assert build_control("positive").family_layers == [1, 2, 3]
    assert len(set(build_control("negative").family_layers)) == 1
    assert build_control("positive", n_families=2, n_layers=6).family_layers == [1, 5]
    assert build_control("letter").letter_layers == [1, 3]
    assert build_control("letter").family_layers == [2]
    null = build_control("null", n_families=40, seed=3)
    assert len(set(null.family_layers)) > 2  # the ids' best layers vary


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "other"},
        {"n_families": 4, "n_layers": 4},  # positive needs K <= L - 1
        {"d_model": 12},
        {"family_layers": [0, 1, 2]},  # layer 0's CAA vector is ~0: not a valid reader layer
        {"family_layers": [1, 2]},  # one per family
        {"erase": 1.5},
        {"kind": "letter", "n_families": 2},
        {"kind": "letter", "letter_layers": [2, 2]},
        {"kind": "null", "family_layers": [1, 2, 3]},
        {"kind": "linear", "letter_layers": [1, 2]},
    ],
)
def test_build_rejects_bad_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        build_control(**kwargs)


def test_family_reaches_the_steered_position_only_through_attention() -> None:
    """At the steered position the input residual is the same for every family; after
    layer 0's attention it carries the family's code."""
    c = build_control("positive")
    ex = c.make_examples(6, seed=0)
    res = cache_residuals(c.model, [e.tokens for e in ex], [0, 1], [-1] * len(ex))
    assert torch.allclose(res[:, 0], res[0, 0].expand_as(res[:, 0]))
    copied = res[:, 1][:, c.layout.mark_copy]
    want = torch.tensor(c.codes[[c.family_of(e) for e in ex]], dtype=torch.float32)
    torch.testing.assert_close(copied, want, atol=1e-6, rtol=0)


def _hand_slopes(c: SyntheticControl, examples: list, vectors: torch.Tensor) -> np.ndarray:
    """[n, L] slopes from two multipliers with a plain TransformerLens hook; ``vectors`` is
    [n, L, d_model] (one vector per example and layer). Steered from the last prompt token on;
    read where the two answers' last tokens are predicted (for the continuation kind's cloze
    examples: after the marker both answers start with, whose log-probabilities cancel)."""
    out = np.zeros((len(examples), c.n_layers))
    for i, ex in enumerate(examples):
        match, other = ex.continuations
        assert match[:-1] == other[:-1]  # one read position for both answers
        toks = torch.tensor([ex.tokens + match[:-1]])
        start = len(ex.tokens) - 1
        for layer in range(c.n_layers):
            props = []
            for lam in (-1.0, 1.0):

                def add(x: torch.Tensor, hook: Any, v: torch.Tensor = lam * vectors[i, layer],
                        at: int = start) -> torch.Tensor:
                    x[:, at:] += v
                    return x

                with torch.inference_mode():
                    logits = c.model.run_with_hooks(
                        toks, fwd_hooks=[(f"blocks.{layer}.hook_resid_pre", add)])[0, -1]
                props.append(float(logits[match[-1]] - logits[other[-1]]))
            out[i, layer] = (props[1] - props[0]) / 2
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_exact_construction_slopes(kind: str) -> None:
    """Noise-free model, each family's own vector 2 u_f: the documented slopes, per letter."""
    c = build_control(kind, noise=0.0, **({"n_families": 24} if kind in ID_KINDS else {}))
    ex = c.make_examples(6 if kind not in ID_KINDS else 8, seed=5, both_orders=True)
    fam = [c.family_of(e) for e in ex]
    got = _hand_slopes(c, ex, c.family_vectors()[fam])
    want = np.stack([c.expected_slopes(e.matching_letter)[f] for e, f in zip(ex, fam)])
    # flat: float32 dot products over 65 behaviour dimensions, slopes up to ~8
    np.testing.assert_allclose(got, want, atol=1e-4 if kind == "flat" else 1e-5)
    assert np.abs(want).max() > 0.5  # the check is not vacuous


def test_hand_caa_and_p2s_vectors() -> None:
    """CAA by hand (both letter orders) is the mean of the families' P2S directions."""
    for kind in ("positive", "l2s-direction"):
        c = build_control(kind)
        ex = c.make_examples(6, seed=0, both_orders=True)
        L = c.n_layers
        pos = cache_residuals(c.model, [e.positive_tokens for e in ex], range(L), [-1] * len(ex))
        neg = cache_residuals(c.model, [e.negative_tokens for e in ex], range(L), [-1] * len(ex))
        v = (pos - neg).mean(0)
        assert float(v[0].norm()) < 1e-5
        torch.testing.assert_close(v[1:], c.ideal_vectors()[1:], atol=0.15, rtol=0)
        fam = [c.family_of(e) for e in ex]
        p2s = (pos - neg)[:, 1:]
        p2s[..., DIMS["LETTER"]] = 0.0  # the answer tokens' own letter difference
        torch.testing.assert_close(p2s, c.family_vectors()[fam][:, 1:], atol=0.25, rtol=0)
    # the cancelling directions: CAA's mean keeps only family 2's e1
    ideal = build_control("l2s-direction").ideal_vectors()
    assert torch.allclose(ideal[1, c.layout.beh], torch.tensor([0.0, 2 / 3]))


def test_fast_and_naive_engines_agree() -> None:
    """The family is copied by attention: the fast engine's cached keys/values must give it."""
    c = build_control("positive")
    ex = c.make_examples(6, seed=1)
    vecs = train_caa(c.model, [x for e in ex for x in (e, c.swap(e))], dataset="synthetic")
    mults = (-1.5, 0.0, 1.0)  # a short grid keeps the naive engine (one pass per run) quick
    fast = run_sweep(c.model, vecs, ex[:3], multipliers=mults, engine="fast", progress=False)
    naive = run_sweep(c.model, vecs, ex[:3], multipliers=mults, engine="naive", progress=False)
    np.testing.assert_allclose(fast.propensity, naive.propensity, atol=1e-3)
    assert np.ptp(fast.propensity) > 1.0  # the check is not vacuous


# ----------------------------------------------------------------------------- pipeline


def _evaluate(c: SyntheticControl, out: Path | None = None, seed: int = 0, **config: Any,
              ) -> dict[str, Any]:
    """The unchanged pipeline on a control: both letter orders swept unless mirror=False."""
    pools: tuple[Any, Any] = (None, None)
    if c.kind in ID_KINDS:  # disjoint ids: a test input's id is never seen in training
        half = c.n_families // 2
        pools = (range(half), range(half, c.n_families))
    train = c.make_examples(N_TRAIN, seed=2 * seed + 1, both_orders=True, families=pools[0])
    test = c.make_examples(N_TEST, seed=2 * seed + 2, both_orders=True, families=pools[1])
    if config.get("mirror", True):
        exs = SplitExamples(train, train, {"base": test})
    else:  # one presentation per item, letters balanced over items
        exs = SplitExamples(train, train[::2], {"base": test[::2]})
    cfg = EvalConfig(dataset=f"synthetic-{c.kind}", variants=("base",), routers=("logreg",),
                     n_boot=N_BOOT, seed=seed, **config)
    return evaluate_examples(c.model, exs, cfg, out_dir=out, progress=False).to_dict()


def _base(res: dict[str, Any], method: str = "caa") -> dict[str, Any]:
    return res["methods"][method]["variants"]["base"]


def _per_family(c: SyntheticControl, units: list[str], layers: list[int]) -> dict[int, set]:
    ex = {e.id: c.family_of(e) for e in c.make_examples(N_TEST, seed=2, both_orders=False)}
    out: dict[int, set] = {}
    for u, layer in zip(units, layers):
        out.setdefault(ex[u], set()).add(layer)
    return out


def test_positive_recovers_the_constructed_layer_numbers(tmp_path: Path) -> None:
    """Families read at layers 2, 5, 9 of a 10-layer model; the sweep covers 2, 3, 5, 7, 9, so
    layer numbers and indices differ everywhere (index 2 is layer 5)."""
    c = build_control("positive", n_families=3, n_layers=10, family_layers=[2, 5, 9])
    res = _evaluate(c, tmp_path, layers=(2, 3, 5, 7, 9), retest=False)  # headroom: below
    b, w = _base(res), _base(res)["w2s"]["logreg"]
    assert res["layers"] == [2, 3, 5, 7, 9]
    assert w["diff_vs_fixed_ci"][0] > 0.3  # a wide margin, well beyond the bootstrap noise
    assert verdict(w["diff_vs_fixed_ci"]) == VERDICT_BETTER
    assert w["accuracy"] > 0.9
    assert w["steerability"] >= 0.95 * b["oracle"]["steerability"]
    assert verdict_of(w) == VERDICT_BETTER
    # mirrored rows carry no letter oracle; the single-order diagnostic keeps it
    assert b["letter_oracle"] is None and b["by_letter"] == {}
    so = b["single_order"]
    assert so["letter_oracle"]["steerability"] <= so["fixed"]["steerability_ci"][1] + 1e-9
    assert res["methods"]["caa"]["fixed_layer"] in (2, 5, 9)
    counts = {int(k): n for k, n in res["methods"]["caa"]["train_best_layer_counts"].items()}
    assert set(counts) == {2, 5, 9} and min(counts.values()) >= 10  # JSON keys: strings
    rd = RunDir(tmp_path)
    routing = rd.read_routing(rd.sweep_dir("base", "caa"))
    oracle = _per_family(c, routing["ids"], routing["oracle_layer"])
    routed = _per_family(c, routing["ids"], routing["router_layer"]["logreg"])
    assert oracle == routed == {0: {2}, 1: {5}, 2: {9}}


@pytest.mark.parametrize("seed", range(5))
def test_null_claims_no_gain(seed: int) -> None:
    """Best layers vary by noise alone: the oracle gains, W2S must not claim to."""
    c = build_control("null", seed=seed)
    res = _evaluate(c, seed=seed, retest=False)  # the retest: test_null_headroom_...
    b, w = _base(res), _base(res)["w2s"]["logreg"]
    assert b["oracle"]["steerability_ci"][0] > b["fixed"]["steerability_ci"][1]
    assert len(res["methods"]["caa"]["train_best_layer_counts"]) >= 4
    assert w["accuracy"] < 0.5
    assert w["diff_vs_fixed_ci"][0] <= 0.0  # no claim
    assert verdict(w["diff_vs_fixed_ci"]) != VERDICT_BETTER


def test_letter_push_is_a_gain_only_without_mirroring(tmp_path: Path) -> None:
    c = build_control("letter")
    single = _evaluate(c, mirror=False, retest=False)
    b, w = _base(single), _base(single)["w2s"]["logreg"]
    assert w["diff_vs_fixed_ci"][0] > 1.0  # the pipeline "finds" a per-input gain ...
    assert b["letter_oracle"]["steerability"] == pytest.approx(b["oracle"]["steerability"])
    assert b["letter_oracle"]["layers"] == {"A": 1, "B": 3}  # ... which is all letter

    mirrored = _evaluate(c, tmp_path, retest=False)
    b, w = _base(mirrored), _base(mirrored)["w2s"]["logreg"]
    lo, hi = w["diff_vs_fixed_ci"]
    assert lo <= 0.0 <= hi and abs(w["diff_vs_fixed"]) < 0.05
    assert mirrored["methods"]["caa"]["fixed_layer"] == c.family_layers[0] == 2
    # the diagnostic still shows the letter push in each order on its own
    so = b["single_order"]
    assert so["letter_oracle"]["steerability"] > so["fixed"]["steerability_ci"][1] + 1.0
    sweep, _ = RunDir(tmp_path).load_sweep("caa/base")
    cols = [sweep.layers.index(x) for x in c.letter_layers]
    each_order = np.abs(sweep.steerability[:, cols]).min()
    assert each_order > 3.0  # each order: ±4
    # mirrored: ~0 (the weight noise leaves a few per cent of the push)
    assert np.abs(sweep.mirrored().steerability[:, cols]).max() < 0.05 * each_order


def test_linear_readout_letter_direction_cancels_exactly(tmp_path: Path) -> None:
    """Logits linear in the steering, vector W_U[:, A] - W_U[:, B]: each order's slope is
    ±|v|^2, the mirrored slope 0 to float precision."""
    c = build_control("linear")
    v = c.letter_direction()
    layers = [1, 2, 3]
    SteeringVectors(v.expand(len(layers), -1).clone(), layers, metadata={
        "model": c.model.cfg.model_name, "d_model": c.model.cfg.d_model}).save(tmp_path / "v")
    res = _evaluate(c, tmp_path / "run", vectors=str(tmp_path / "v"), cross_fit=0)
    sweep, exs = RunDir(tmp_path / "run").load_sweep("caa/base")
    norm2 = float(v @ v)
    sign = np.array([1.0 if e.matching_letter == "A" else -1.0 for e in exs])
    np.testing.assert_allclose(sweep.steerability,
                               np.broadcast_to(sign[:, None] * norm2, sweep.steerability.shape),
                               rtol=1e-4)
    assert norm2 > 1.0
    assert np.abs(sweep.mirrored().steerability).max() < 1e-5
    b = _base(res)
    assert abs(b["fixed"]["steerability"]) < 1e-5
    by_letter = b["single_order"]["by_letter"]
    assert by_letter["A"]["fixed"]["steerability"] == pytest.approx(norm2, rel=1e-4)
    assert by_letter["B"]["fixed"]["steerability"] == pytest.approx(-norm2, rel=1e-4)


def _paired(rd: RunDir, res: dict[str, Any], pick: str) -> tuple[np.ndarray, np.ndarray]:
    """Per test item: L2S and CAA slopes at each method's fixed layer or routed layer."""
    out = []
    for method in ("l2s", "caa"):
        sweep = rd.load_sweep(f"{method}/base")[0].mirrored()
        if pick == "fixed":
            chosen = [res["methods"][method]["fixed_layer"]] * len(sweep.ids)
        else:
            routing = rd.read_routing(rd.sweep_dir("base", method))
            assert routing["ids"] == sweep.ids
            chosen = routing["router_layer"]["logreg"]
        out.append(metrics.select(sweep.steerability, [sweep.layers.index(x) for x in chosen]))
    return out[0], out[1]


def test_l2s_direction_beats_caa(tmp_path: Path) -> None:
    """Families steer along +e0, -e0, +e1: CAA's mean misses families 0 and 1, L2S does not."""
    c = build_control("l2s-direction")
    res = _evaluate(c, tmp_path, method="both", cross_fit=3,  # 3 folds: fewer L2S fits
                    retest=False)
    caa, l2s = _base(res, "caa"), _base(res, "l2s")
    assert l2s["fixed"]["steerability_ci"][0] > caa["fixed"]["steerability_ci"][1]
    a, b = _paired(RunDir(tmp_path), res, "fixed")
    lo, _ = paired_diff_ci(a, b, n_boot=N_BOOT)
    assert lo > 0.5
    assert l2s["fixed"]["steerability"] > 0.9 * l2s["oracle"]["steerability"]
    # one reader layer for everyone: routing adds nothing on top of L2S's fixed layer
    assert l2s["w2s"]["logreg"]["diff_vs_fixed_ci"][0] <= 0.0


def test_l2s_direction_and_layer_needs_w2s_over_l2s(tmp_path: Path) -> None:
    c = build_control("l2s-direction-layer")
    res = _evaluate(c, tmp_path, method="both", cross_fit=3,  # 3 folds: fewer L2S fits
                    retest=False)
    caa, l2s = _base(res, "caa"), _base(res, "l2s")
    w = l2s["w2s"]["logreg"]
    assert w["steerability"] >= 0.95 * l2s["oracle"]["steerability"]
    assert w["diff_vs_fixed_ci"][0] > 0.2  # beats L2S at its fixed layer
    a, b = _paired(RunDir(tmp_path), res, "routed")  # beats W2S over CAA
    lo, _ = paired_diff_ci(a, b, n_boot=N_BOOT)
    assert lo > 0.5
    assert caa["oracle"]["steerability_ci"][1] < w["steerability_ci"][0]


# ----------------------------------------------------------------------------- headroom


@pytest.fixture(scope="module")
def headroom_runs() -> dict[str, dict[str, Any]]:
    """The three cases through the unchanged pipeline (retest on, the default): positive with
    nine families on ten layers (so twelve training items cannot cover them all: a learning
    curve can rise), null (stable per-id layers, disjoint ids) and flat (best layers decided by
    the vector estimate's noise)."""
    controls = {"positive": build_control("positive", n_families=9, n_layers=10),
                "null": build_control("null"), "flat": build_control("flat")}
    return {k: _evaluate(c) for k, c in controls.items()}


XV_BEATS = f"{XV_NAMES[0]} beats {XV_NAMES[1]} beyond the noise"


def _curve(res: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in res["methods"]["caa"]["headroom"]["learning_curve"]["rows"]
            if r["router"] == "logreg"]


def _case(res: dict[str, Any]) -> str:
    """The stored reading's words (w2s_lens.evaluation.results.evidence)."""
    return res["methods"]["caa"]["reading"]["text"]


#: Retest κ below which two halves' best layers read as agreeing at chance level.
KAPPA_CHANCE = 0.2


def test_positive_headroom_is_stable_and_learnable(headroom_runs) -> None:
    res = headroom_runs["positive"]
    h = res["methods"]["caa"]["headroom"]
    assert h["retest"]["n_items"] == N_TEST and h["retest"]["half_sizes"] == [18, 18]
    assert h["retest"]["kappa"] > 0.8
    assert h["xv"]["verdict"] == XV_BEATS
    assert h["xv"]["ci"][0] > 0.3 and set(h["xv"]["xv_fixed_layers"]) <= set(res["layers"])
    curve = _curve(res)
    assert [r["n_train"] for r in curve] == [12, 24, 36]
    assert curve[-1]["verdict"] == VERDICT_BETTER
    assert curve[-1]["diff"] > curve[0]["diff"] + 0.1  # the curve rises with training items
    assert curve[-1]["accuracy"] > curve[0]["accuracy"]
    assert curve[-1]["diff"] == pytest.approx(_base(res)["w2s"]["logreg"]["diff_vs_fixed"])
    assert _case(res) == "headroom; robust to re-estimating the vector; learned by question"


def test_null_headroom_is_stable_but_not_learnable(headroom_runs) -> None:
    h = headroom_runs["null"]["methods"]["caa"]["headroom"]
    assert h["retest"]["kappa"] > 0.8  # each id's best layer is a property of the id
    assert h["xv"]["verdict"] == XV_BEATS
    curve = _curve(headroom_runs["null"])
    assert len(curve) == 3
    for row in curve:  # flat at 0: no size beats the fixed layer
        assert row["verdict"] != VERDICT_BETTER
        assert row["ci"][0] <= 0.0
    # headroom no input feature carries: never "learned" (a control that can fail: a router
    # that sneaked the id in would read "learned by question")
    assert _case(headroom_runs["null"]).startswith("headroom; robust to re-estimating the vector")
    assert not _case(headroom_runs["null"]).endswith("learned by question")


def test_the_null_reads_differently_from_a_headroom_the_options_view_learns(
        tmp_path: Path) -> None:
    """Both with the question and options views and the retest on: the continuation control
    (best layer set by the answer, invisible in the prompt) reads *learned by options*; the
    null control (stable per-id layers no input carries) reads *learned* by no view. So the
    stored reading tells the two apart, not only the verdicts behind it."""
    views = ("question", "options")
    null = _evaluate(build_control("null"), tmp_path / "null", router_inputs=views)
    c = build_control("continuation")
    families = [0, 0, 1, 2]
    train = c.make_examples(40, seed=1, families=families)
    test = c.make_examples(40, seed=2, families=families)
    cfg = EvalConfig(dataset="synthetic-continuation", variants=("base",), routers=("logreg",),
                     readout="cloze", n_boot=N_BOOT, seed=0, router_inputs=views)
    cont = evaluate_examples(c.model, SplitExamples(train, train, {"base": test}), cfg,
                             out_dir=tmp_path / "cont", progress=False).to_dict()
    read = {k: r["methods"]["caa"]["reading"] for k, r in (("null", null), ("cont", cont))}
    for r in read.values():  # both have a headroom that survives re-estimating the vector
        assert r["headroom"]["holds"] is True
        assert r["robustness"]["reading"] == "robust to re-estimating the vector"
    assert read["cont"]["views"]["options"]["reading"] == "learned by options"
    assert read["cont"]["views"]["question"]["reading"] != "learned by question"
    assert not any(v["reading"].startswith("learned by") for v in read["null"]["views"].values())
    assert "learned by options" in read["cont"]["text"]
    assert "; learned by" not in read["null"]["text"]
    assert read["null"]["text"] != read["cont"]["text"]


def test_flat_headroom_has_nothing_to_learn(headroom_runs) -> None:
    flat = headroom_runs["flat"]["methods"]["caa"]["headroom"]
    kappas = {k: r["methods"]["caa"]["headroom"]["retest"]["kappa"]
              for k, r in headroom_runs.items()}
    assert abs(kappas["flat"]) < KAPPA_CHANCE  # agreement at chance
    assert abs(flat["retest"]["agreement"] - flat["retest"]["chance"]) < 0.15
    assert kappas["flat"] < min(kappas["positive"], kappas["null"]) - 0.6
    assert flat["xv"]["verdict"] != XV_BEATS and flat["xv"]["n_nonzero"] >= 6
    # the in-sample oracle still "gains": a maximum over the estimate's noise
    b = _base(headroom_runs["flat"])
    assert b["oracle"]["steerability"] > b["fixed"]["steerability"] + 0.2
    assert _case(headroom_runs["flat"]).startswith(
        "no headroom; not robust to re-estimating the vector")


def test_each_synthetic_name_has_one_import_home() -> None:
    from w2s_lens.controls import synthetic, synthetic_kinds, synthetic_task, weights

    assert {"KINDS", "Kind"} <= set(synthetic_kinds.__all__) and "DIMS" in weights.__all__
    assert not {"DIMS", "KINDS", "Kind", "SyntheticTask"} & set(synthetic.__all__)
    assert issubclass(synthetic.SyntheticControl, synthetic_task.SyntheticTask)
    assert {"SyntheticControl", "build_control"} <= set(synthetic.__all__)
