"""The ``continuation`` control: a best layer set by the answer, invisible in the prompt.

Family f's marker ``F<f>`` is the first token of both cloze continuations, ``(F<f>, A)`` and
``(F<f>, B)``; the prompt ``<bos> =X x.. ?`` is drawn without looking at the family. Family f
is steerable only at its own layer (erase 1), read at the marker, which the sweep steers (from
the last prompt token on). So the per-item best layers are the planted family layers, and what
today's ``question`` router sees (the prompt's last-token residual) carries no family
information, while the answers' residuals (the ``options`` view) carry all of it.

Families are weighted 2:1:1 (``FAMILIES``): the best-layer label has a clear majority, so a
router that knows nothing routes everyone to it, which is then also the fixed layer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from w2s_lens.controls.synthetic import SyntheticControl, build_control
from w2s_lens.data.examples import SteeringExample
from w2s_lens.evaluation.config import EvalConfig
from w2s_lens.evaluation.pipeline import evaluate_examples
from w2s_lens.evaluation.split import SplitExamples
from w2s_lens.evaluation.stats.paired import VERDICT_BETTER, VERDICT_NONE, VERDICT_TOO_FEW
from w2s_lens.evaluation.storage.rundir import RunDir
from w2s_lens.routing.routers import make_router
from w2s_lens.steering.activations import cache_residuals
from w2s_lens.steering.vectors import SteeringVectors, train_caa
from w2s_lens.sweep.runner import run_sweep

FAMILIES = [0, 0, 1, 2]  # family 0 has half the items
N_TRAIN = 40  # items per split: 20 / 10 / 10 per family, both letters in each
N_TEST = 40
N_BOOT = 1000


def _control(**kw: Any) -> SyntheticControl:
    return build_control("continuation", **kw)


def _hand_options(c: SyntheticControl, exs: list[SteeringExample], layer: int) -> np.ndarray:
    """The ``options`` view by hand: the unsteered residual at ``layer`` averaged over each
    continuation's tokens (prompt + continuation), matching − non-matching and the mean, plus
    the two token counts."""
    rows = []
    for ex in exs:
        means = []
        for cont in ex.continuations:
            _, cache = c.model.run_with_cache(torch.tensor([ex.tokens + cont]),
                                              names_filter=f"blocks.{layer}.hook_resid_pre")
            means.append(cache[f"blocks.{layer}.hook_resid_pre"][0, len(ex.tokens):].mean(0))
        m, n = means
        rows.append(torch.cat([m - n, (m + n) / 2, torch.tensor([len(c) for c in
                                                                 ex.continuations])]))
    return torch.stack(rows).numpy()


def _question(c: SyntheticControl, exs: list[SteeringExample]) -> np.ndarray:
    """The ``question`` view at every layer: the unsteered prompt's last-token residual,
    ``[n, n_layers, d_model]``."""
    return cache_residuals(c.model, [e.tokens for e in exs], range(c.n_layers),
                           [-1] * len(exs)).numpy()


def _probe_accuracy(x: np.ndarray, y: np.ndarray) -> float:
    """Cross-validated accuracy of a logistic regression predicting ``y`` from ``x``."""
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    return float(cross_val_score(probe, x, y, cv=folds).mean())


# ----------------------------------------------------------------------------- the task


def test_examples_are_cloze_with_the_marker_in_the_answers() -> None:
    c = _control()
    exs = c.make_examples(16, seed=3, families=FAMILIES)
    for ex in exs:
        f = c.family_of(ex)
        assert ex.readout == "cloze" and ex.matching_token_id is None
        assert ex.group == f"family{f}"
        assert not set(ex.tokens) & {c.family_token(g) for g in range(c.n_families)}
        assert ex.text.startswith(("<bos> =A ", "<bos> =B ")) and ex.text.endswith(" ?")
        letters = ("A", "B") if ex.matching_letter == "A" else ("B", "A")
        assert [c.to_text(x) for x in ex.continuations] == [f"F{f} {x}" for x in letters]
    assert [c.family_of(e) for e in exs[:4]] == FAMILIES
    for f in range(3):  # both letters in every family
        assert {e.matching_letter for e in exs if c.family_of(e) == f} == {"A", "B"}
    s = c.swap(exs[0])
    assert s.continuations == exs[0].continuations[::-1] and s.tokens[1] != exs[0].tokens[1]
    assert c.swap(s) == exs[0]


def test_prompts_are_drawn_without_looking_at_the_family() -> None:
    """The same seed gives the same prompts whatever the families (the fillers follow the
    seed, the key the item's index and the pool's size): the prompt is drawn independently of
    the family, so its distribution is the same for every family."""
    c = _control()
    by_family = [c.make_examples(12, seed=7, families=[f]) for f in range(3)]
    for a, b in zip(by_family[0], by_family[2]):
        assert a.tokens == b.tokens and a.continuations != b.continuations
    mixed = c.make_examples(12, seed=7, families=FAMILIES)
    other = c.make_examples(12, seed=7, families=[2, 2, 1, 0])
    assert [e.tokens for e in mixed] == [e.tokens for e in other]
    assert [c.family_of(e) for e in mixed] != [c.family_of(e) for e in other]
    assert [e.tokens[2:] for e in mixed] == [e.tokens[2:] for e in by_family[1]]
    # the positive control, by contrast, puts the marker into the prompt
    pos = build_control("positive")
    assert pos.make_examples(3, seed=7)[0].tokens != pos.make_examples(3, seed=7,
                                                                        families=[1])[0].tokens


# ----------------------------------------------------------------------------- information


def test_the_question_view_carries_no_family_information() -> None:
    """A logistic regression on the prompt's last-token residual predicts the family at chance
    (at every layer); on the options view it predicts it perfectly. The same probe on the
    positive control's question view (marker copied to the last token) is perfect too."""
    c = _control()
    exs = c.make_examples(120, seed=11, families=FAMILIES)
    fam = np.array([c.family_of(e) for e in exs])
    majority = float(np.mean(fam == 0))
    question = _question(c, exs)
    for layer in range(c.n_layers):
        acc = _probe_accuracy(question[:, layer], fam)
        assert acc < majority + 0.1, (layer, acc)
    assert _probe_accuracy(_hand_options(c, exs, c.n_layers // 2), fam) > 0.97
    pos = build_control("positive")
    pexs = pos.make_examples(120, seed=11, families=FAMILIES)
    pfam = np.array([pos.family_of(e) for e in pexs])
    assert _probe_accuracy(_question(pos, pexs)[:, pos.n_layers // 2], pfam) > 0.97


# ----------------------------------------------------------------------------- the sweep


def test_sweep_best_layers_are_the_planted_family_layers() -> None:
    """CAA trained on the cloze pairs, then the unchanged sweep (steered from the last prompt
    token on): every test item's best layer is its family's layer; families' layers differ and
    are not their indices (6 layers, families at 4, 1, 3)."""
    c = _control(n_layers=6, family_layers=[4, 1, 3])
    train = c.make_examples(24, seed=1, families=FAMILIES)
    test = c.make_examples(24, seed=2, families=FAMILIES)
    vecs = train_caa(c.model, train, layers=range(1, 6), dataset="synthetic-continuation")
    # the CAA vector is the writer's 2 e_BEH0 at every layer (the A vs B answer position)
    torch.testing.assert_close(vecs.vectors, c.ideal_vectors()[1:], atol=0.15, rtol=0)
    res = run_sweep(c.model, vecs, test, positions="from_last", progress=False)
    assert res.layers == [1, 2, 3, 4, 5]
    best = [res.layers[i] for i in res.steerability.argmax(1)]
    fam = [c.family_of(e) for e in test]
    per_family: dict[int, set[int]] = {}
    for f, b in zip(fam, best):
        per_family.setdefault(f, set()).add(b)
    assert per_family == {0: {4}, 1: {1}, 2: {3}}
    top = np.sort(res.steerability, axis=1)
    assert (top[:, -1] > 1.5).all() and (top[:, -1] - top[:, -2] > 1.0).all()  # clear winners


def test_exact_slopes_at_the_marker() -> None:
    """Noise-free model, the ideal vector: the sweep's slopes are the circuit's (4 w at the
    family's own layer, 0 elsewhere), whatever the letter; steering only the prompt's tokens
    (the last one included) moves nothing: the readers sit at the marker."""
    c = _control(noise=0.0)
    exs = c.make_examples(12, seed=4, families=FAMILIES)
    layers = list(range(1, c.n_layers))
    vecs = SteeringVectors(c.ideal_vectors()[1:], layers, metadata={
        "model": c.model.cfg.model_name, "d_model": c.model.cfg.d_model})
    res = run_sweep(c.model, vecs, exs, progress=False)
    want = c.expected_slopes()[[c.family_of(e) for e in exs]][:, 1:]
    np.testing.assert_allclose(res.steerability, want, atol=1e-5)
    assert want.max() == pytest.approx(4 * c.readout)
    # the prompt alone (its last token steered, no continuation): nothing reads there
    prompt_only = [SteeringExample(e.id, e.text, e.tokens, 1, 2, e.matching_letter) for e in exs]
    flat = run_sweep(c.model, vecs, prompt_only, progress=False)
    assert np.abs(flat.steerability).max() < 1e-5


def test_a_router_on_the_hand_built_options_view_recovers_the_layers() -> None:
    """Before any wiring: the logreg router on the options view computed by hand routes every
    test item to its family's layer; on the question view it routes everyone to the fixed
    layer (the majority), gaining nothing."""
    c = _control()
    train = c.make_examples(N_TRAIN, seed=1, families=FAMILIES)
    test = c.make_examples(N_TEST, seed=2, families=FAMILIES)
    vecs = train_caa(c.model, train, layers=range(1, c.n_layers))
    s_train, s_test = (run_sweep(c.model, vecs, e, progress=False).steerability
                       for e in (train, test))
    fixed, rows, layer = int(s_train.mean(0).argmax()), np.arange(N_TEST), c.n_layers // 2
    views = {"question": (_question(c, train)[:, layer], _question(c, test)[:, layer]),
             "options": (_hand_options(c, train, layer), _hand_options(c, test, layer))}
    routed = {k: make_router("logreg", seed=0).fit(x_tr, s_train).predict(x_te)
              for k, (x_tr, x_te) in views.items()}
    assert (routed["options"] == s_test.argmax(1)).mean() > 0.95
    assert (routed["question"] == fixed).mean() >= 0.9
    gain = {k: s_test[rows, idx].mean() - s_test[:, fixed].mean() for k, idx in routed.items()}
    assert gain["options"] > 0.8 and abs(gain["question"]) < 0.1


# ----------------------------------------------------------------------------- the pipeline


def _evaluate(c: SyntheticControl, out: Path, **config: Any) -> dict[str, Any]:
    train = c.make_examples(N_TRAIN, seed=1, families=FAMILIES)
    test = c.make_examples(N_TEST, seed=2, families=FAMILIES)
    cfg = EvalConfig(dataset="synthetic-continuation", variants=("base",), routers=("logreg",),
                     readout="cloze", n_boot=N_BOOT, seed=0, retest=False, **config)
    return evaluate_examples(c.model, SplitExamples(train, train, {"base": test}), cfg,
                             out_dir=out, progress=False).to_dict()


def _routed(out: Path, router: str) -> tuple[int, list[int], list[int]]:
    """Fixed layer, and per test item the oracle and the routed layer."""
    rd = RunDir(out)
    routing = rd.read_routing(rd.sweep_dir("base", "caa"))
    return routing["fixed_layer"], routing["oracle_layer"], routing["router_layer"][router]


def test_question_router_stays_at_the_fixed_layer(tmp_path: Path) -> None:
    """The unchanged cloze pipeline: the headroom is there (oracle ≫ fixed, the oracle layers
    are the family layers), but the question router cannot see it."""
    c = _control()
    res = _evaluate(c, tmp_path)
    m = res["methods"]["caa"]
    b, w = m["variants"]["base"], m["variants"]["base"]["w2s"]["logreg"]
    assert {int(k): n for k, n in m["train_best_layer_counts"].items()} == {
        1: 20, 2: 10, 3: 10}  # cross-fitted labels (JSON keys: strings)
    assert m["fixed_layer"] == 1 == c.family_layers[0]
    assert b["oracle"]["steerability_ci"][0] > b["fixed"]["steerability_ci"][1]
    assert b["oracle"]["steerability"] > 1.8 and b["fixed"]["steerability"] < 1.2
    assert w["diff_vs_fixed_verdict"] in (VERDICT_NONE, VERDICT_TOO_FEW)
    lo, hi = w["diff_vs_fixed_ci"]
    assert lo <= 0.0 <= hi and abs(w["diff_vs_fixed"]) < 0.1
    fixed, oracle, routed = _routed(tmp_path, "logreg")
    assert np.mean(np.array(routed) == fixed) >= 0.9
    fam = [c.family_of(e) for e in c.make_examples(N_TEST, seed=2, families=FAMILIES)]
    assert oracle == [c.family_layers[f] for f in fam]


def test_options_router_recovers_the_planted_layers(tmp_path: Path) -> None:
    """Router input views: the question router stays at the fixed layer, the options router
    (the answers' residuals) routes each item to its family's layer, beyond the noise."""
    c = _control()
    res = _evaluate(c, tmp_path, router_inputs=("question", "options"))
    w2s = res["methods"]["caa"]["variants"]["base"]["w2s"]
    q, o = w2s["logreg"], w2s["logreg@options"]
    assert q["diff_vs_fixed_verdict"] in (VERDICT_NONE, VERDICT_TOO_FEW)
    assert q["diff_vs_fixed_ci"][0] <= 0.0 <= q["diff_vs_fixed_ci"][1]
    fixed, _, routed_q = _routed(tmp_path, "logreg")
    assert np.mean(np.array(routed_q) == fixed) >= 0.9
    assert o["diff_vs_fixed_verdict"].endswith("beyond the noise")
    assert o["diff_vs_fixed_verdict"] == VERDICT_BETTER
    assert o["diff_vs_fixed_ci"][0] > 0.3  # gain ≈ 1 (half the items move from 0 to 2)
    assert o["accuracy"] > 0.9
    assert o["diff_vs_fixed"] > q["diff_vs_fixed"] + 0.5
    _, oracle, routed_o = _routed(tmp_path, "logreg@options")
    fam = [c.family_of(e) for e in c.make_examples(N_TEST, seed=2, families=FAMILIES)]
    assert oracle == [c.family_layers[f] for f in fam]
    assert np.mean(np.array(routed_o) == np.array(oracle)) >= 0.9
