"""The per-sweep files of a run directory: a sweep travels with exactly its examples, and
routing, generations and pairs read back as written."""

import numpy as np
import pytest

from w2s_lens.artifacts.provenance import ArtifactMismatch
from w2s_lens.controls.synthetic import build_control
from w2s_lens.evaluation.storage.rundir import RunDir
from w2s_lens.evaluation.storage.sweepfiles import EXAMPLES_FILE, PAIRS_FILE, SweepFiles
from w2s_lens.steering.pairs import ContrastPair, load_pairs
from w2s_lens.sweep.result import SweepResult


@pytest.fixture(scope="module")
def swept():
    control = build_control("positive", n_families=3, n_layers=4, seed=0)
    examples = control.make_examples(4, seed=2, both_orders=True)
    prop = np.random.default_rng(0).normal(size=(len(examples), 2, 3))
    sweep = SweepResult(prop, [1, 2], [-1.0, 0.0, 1.0], [ex.id for ex in examples],
                        [ex.matching_letter for ex in examples])
    return sweep, examples


def test_examples_must_match_the_sweep(swept, tmp_path):
    sweep, examples = swept
    assert issubclass(RunDir, SweepFiles)
    with pytest.raises(ValueError, match="ids differ"):
        RunDir(tmp_path).save_sweep(tmp_path / "s", sweep, examples[::-1])
    RunDir(tmp_path).save_sweep(tmp_path / "s", sweep, examples)
    back, back_examples = RunDir(tmp_path).load_sweep("s")  # relative to the run
    assert back_examples == examples and np.allclose(back.propensity, sweep.propensity)
    lines = (tmp_path / "s" / EXAMPLES_FILE).read_text().splitlines()
    (tmp_path / "s" / EXAMPLES_FILE).write_text("\n".join(lines[1:]) + "\n")
    with pytest.raises(ArtifactMismatch, match="does not list the swept examples"):
        RunDir(tmp_path).load_sweep(tmp_path / "s")
    assert np.isfinite(sweep.steerability).all()


def test_a_legacy_sweep_is_refused(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "sweep_ids.json").write_text("[]")
    with pytest.raises(ArtifactMismatch, match="w2s-lens 0.1"):
        RunDir(tmp_path).load_sweep(tmp_path / "old")


def test_routing_generations_and_pairs_read_back(tmp_path):
    rd = RunDir(tmp_path)
    assert rd.read_routing(tmp_path / "caa" / "base") is None
    assert rd.read_generations("caa") == []
    record = {"ids": ["a"], "fixed_layer": 2, "oracle_layer": [1],
              "router_layer": {"logreg": [2]}}
    rd.write_routing(tmp_path / "caa" / "base", record)
    assert {k: v for k, v in rd.read_routing(tmp_path / "caa" / "base").items()
            if k in record} == record
    rows = [{"prompt": "Hi", "unsteered": "Hello", "fixed": "Hey", "routed": "Yo"}]
    rd.write_generations("caa", rows)
    assert rd.read_generations("caa") == rows
    pairs = [ContrastPair("I agree.", "I refuse."), ContrastPair("Yes.", "No.")]
    rd.write_pairs(pairs)
    assert [(p.positive, p.negative) for p in load_pairs(tmp_path / PAIRS_FILE)] == \
        [("I agree.", "I refuse."), ("Yes.", "No.")]
