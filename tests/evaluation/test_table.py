"""The cross-dataset table: assembly from real results (synthetic controls), and run_table end
to end on a tiny chat model (serially, read back, resumed, and on a local Ray instance)."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import scipy.stats
import torch
from conftest import byte_tokenizer, make_tiny_model
from transformer_lens import HookedTransformer, HookedTransformerConfig

import w2s_lens.evaluation.table as table_mod
import w2s_lens.sweep.runner as sweep_mod
from w2s_lens.artifacts import ArtifactMismatch
from w2s_lens.controls.synthetic import build_control
from w2s_lens.evaluation.config import EvalConfig
from w2s_lens.evaluation.metrics import VERDICT_BETTER, VERDICT_NONE
from w2s_lens.evaluation.pipeline import SplitExamples, evaluate_examples
from w2s_lens.evaluation.table import COLUMNS, Table, TableError, readout_label, run_table

# --------------------------------------------------------------------------- synthetic results

SYN = dict(variants=("base",), routers=("logreg",), n_boot=300)


def _control_results(kind: str, out_dir=None) -> dict:
    """The evaluation of a synthetic control, mirrored (both letter orders everywhere). Both
    controls get one model name, so that they summarise as two datasets of one model."""
    c = build_control(kind, n_families=3, n_layers=4, seed=0)
    c.model.cfg.model_name = "w2s-synthetic"
    train = c.make_examples(24, seed=1, both_orders=True)
    test = c.make_examples(12, seed=2, both_orders=True)
    exs = SplitExamples(vector_train=train, sweep_train=train, test={"base": test})
    return evaluate_examples(c.model, exs, EvalConfig(dataset=f"synthetic-{kind}", **SYN),
                             out_dir, progress=False)


@pytest.fixture(scope="module")
def control_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("controls")
    results = [_control_results(k, root / f"synthetic-{k}") for k in ("positive", "negative")]
    return root, results


def test_rows_from_control_results(control_root):
    _, (pos, neg) = control_root
    table = Table.from_results([pos, neg])
    assert [(r["dataset"], r["method"], r["variant"], r["readout"]) for r in table.rows] == [
        ("synthetic-positive", "caa", "base", "letter-mirrored"),
        ("synthetic-negative", "caa", "base", "letter-mirrored")]
    rp, rn = table.rows
    block = pos["methods"]["caa"]["variants"]["base"]
    assert rp["fixed"] == block["fixed"]["steerability"]
    assert rp["w2s"] == block["w2s"]["logreg"]["steerability"]
    assert rp["diff_p"] == block["w2s"]["logreg"]["diff_vs_fixed_p"]
    assert rp["n_test"] == 12 and rp["fixed_layer"] == block["fixed_layer"]
    # the positive control is a real per-input effect, the negative control is none
    assert rp["verdict"] == VERDICT_BETTER and rn["verdict"] == VERDICT_NONE
    assert rp["diff_lo"] > 0 and rn["diff_lo"] <= 0 <= rn["diff_hi"]


def test_summary_counts_and_benjamini_hochberg(control_root):
    _, results = control_root
    table = Table.from_results(results)
    (s,) = table.summary()
    assert (s["method"], s["readout"], s["variant"], s["n_datasets"]) == (
        "caa", "letter-mirrored", "base", 2)
    assert s["wins"] == 1 and s["worse"] == 0
    ps = np.array([r["diff_p"] for r in table.rows])
    assert s["wins_bh"] == int(np.sum(scipy.stats.false_discovery_control(ps) <= 0.05)) == 1
    assert s["fixed"] == pytest.approx(np.mean([r["fixed"] for r in table.rows]))
    # a stricter q leaves fewer (or as many) datasets significant than the raw intervals
    assert table.summary(q=1e-9)[0]["wins_bh"] == 0


def test_markdown_and_csv(control_root, tmp_path):
    _, results = control_root
    table = Table.from_results(results, header="controls")
    md = table.to_markdown()
    assert md.startswith("controls\n")
    assert "| synthetic-positive | caa | letter-mirrored | base |" in md
    assert "| caa | letter-mirrored | base | 2 |" in md and "| 1 of 2 (worse in 0) | 1 of 2 |" in md
    paths = table.write(tmp_path)
    assert paths["md"].read_text() == md
    back = list(csv.DictReader(io.StringIO(paths["csv"].read_text())))
    assert list(back[0]) == list(COLUMNS) and len(back) == 2
    for row, orig in zip(back, table.rows):
        assert float(row["w2s"]) == orig["w2s"] and float(row["diff_hi"]) == orig["diff_hi"]
        assert row["verdict"] == orig["verdict"]


def test_from_run_root_and_combine(control_root):
    root, results = control_root
    again = Table.from_run_root(root, ["synthetic-positive", "synthetic-negative"])
    assert again.rows == Table.from_results(results).rows
    assert again.header.startswith("Model w2s-synthetic;")
    assert [r["dataset"] for r in Table.from_run_root(root).rows] == [
        "synthetic-negative", "synthetic-positive"]  # by name when not given
    single = Table([{**r, "readout": "letter-single"} for r in again.rows], "single")
    both = Table.combine([again, single])
    assert [s["readout"] for s in both.summary()] == ["letter-mirrored", "letter-single"]
    assert both.header.endswith("single")
    assert "| model | method |" not in both.to_markdown()
    other = Table([{**r, "model": "other"} for r in again.rows])
    two = Table.combine([again, other])
    assert [(s["model"], s["n_datasets"]) for s in two.summary()] == [
        ("w2s-synthetic", 2), ("other", 2)]
    assert "| model | method |" in two.to_markdown()


def test_readout_labels():
    assert readout_label({"readout": "letter", "mirror": True}) == "letter-mirrored"
    assert readout_label({"readout": "letter", "mirror": False}) == "letter-single"
    assert readout_label({"readout": "cloze", "mirror": True}) == "cloze"
    assert readout_label({"readout": "cloze", "length_norm": True}) == "cloze-length-norm"


# --------------------------------------------------------------------------- end to end

DATASETS = ["corrigible-neutral-HHH", "narcissism"]


@pytest.fixture(scope="module")
def chat_model() -> HookedTransformer:
    """A tiny random rotary model with a byte-level chat tokenizer (no download)."""
    tiny = make_tiny_model(d_vocab=300, seed=3)
    cfg = HookedTransformerConfig.from_dict({**tiny.cfg.to_dict(), "n_ctx": 512,
                                             "default_prepend_bos": False,
                                             "model_name": "tiny-bytes"})
    torch.manual_seed(3)
    m = HookedTransformer(cfg)
    m.eval()
    m.tokenizer = byte_tokenizer()
    return m


def _write_jsonl(path, records) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Two generated datasets in the anthropics/evals layout: an A/B one and a persona one."""
    root = tmp_path_factory.mktemp("mwe")
    ab = []
    for i in range(16):
        a, b = ("(A)", "(B)") if i % 2 else ("(B)", "(A)")
        ab.append({"question": f"Q{i}: may we change goal {i}?\n\nChoices:\n (A) Yes.\n (B) No.",
                   "answer_matching_behavior": " " + a, "answer_not_matching_behavior": " " + b})
    _write_jsonl(root / "advanced-ai-risk/lm_generated_evals/corrigible-neutral-HHH.jsonl", ab)
    persona = [{"question": f"Is this something you would say?\n\"I am great {i}\"",
                "statement": f"I am great {i}",
                "answer_matching_behavior": " Yes" if i % 2 else " No",
                "answer_not_matching_behavior": " No" if i % 2 else " Yes"} for i in range(16)]
    _write_jsonl(root / "persona/narcissism.jsonl", persona)
    return str(root)


def _config(data_dir, **kw) -> EvalConfig:
    base = dict(data_dir=data_dir, variants=("base", "sys-neg"), n_train=6, n_test=4,
                routers=("logreg",), cross_fit=2, n_boot=100)
    return EvalConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def serial(chat_model, data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("serial")
    return root, run_table(DATASETS, _config(data_dir), root, model=chat_model, threads=1,
                           progress=False)


def test_run_table_serial(serial):
    root, table = serial
    assert [(r["dataset"], r["variant"]) for r in table.rows] == [
        (d, v) for d in DATASETS for v in ("base", "sys-neg")]
    assert {r["readout"] for r in table.rows} == {"letter-mirrored"}
    assert {r["n_test"] for r in table.rows} == {4} and table.rows[0]["model"] == "tiny-bytes"
    assert [(r.dataset, r.status) for r in table.runs] == [(d, "computed") for d in DATASETS]
    assert all(r.wall_time_s > 0 for r in table.runs) and table.failures == {}
    for d in DATASETS:
        assert (root / d / "results.json").is_file() and (root / d / "caa/base").is_dir()
    assert table.header.startswith("Model tiny-bytes; n_train=6, n_test=4")


def test_finished_datasets_are_read_back(serial, chat_model, data_dir, monkeypatch):
    root, first = serial

    def no_run(*a, **k):
        raise AssertionError("a finished dataset was recomputed")

    monkeypatch.setattr(table_mod, "evaluate_dataset", no_run)
    again = run_table(DATASETS, _config(data_dir), root, model=chat_model, progress=False)
    assert again == first
    assert [r.status for r in again.runs] == ["read back", "read back"]


def test_interrupted_dataset_resumes_from_its_chunks(serial, chat_model, data_dir, tmp_path,
                                                     monkeypatch):
    _, first = serial
    root = tmp_path / "t"
    run_table(DATASETS[:1], _config(data_dir), root, model=chat_model, threads=1, progress=False)
    (root / DATASETS[0] / "results.json").unlink()  # as if killed before the end

    def no_sweep(*a, **k):
        raise AssertionError("a finished sweep chunk was recomputed")

    monkeypatch.setattr(sweep_mod, "fast_chunk", no_sweep)
    again = run_table(DATASETS[:1], _config(data_dir), root, model=chat_model, threads=1,
                      progress=False)
    assert again.runs[0].status == "computed"
    assert again.rows == first.rows[:2]


def test_other_settings_refused_before_work(serial, chat_model, data_dir, monkeypatch):
    root, _ = serial
    monkeypatch.setattr(table_mod, "evaluate_dataset", lambda *a, **k: pytest.fail("ran"))
    with pytest.raises(ArtifactMismatch, match="n_test"):
        run_table(DATASETS, _config(data_dir, n_test=3), root, model=chat_model,
                  progress=False)


def test_failed_dataset(chat_model, data_dir, tmp_path):
    names = ["no-such-dataset", DATASETS[0]]
    with pytest.raises(TableError, match="no-such-dataset"):
        run_table(names, _config(data_dir), tmp_path / "a", model=chat_model, progress=False)
    table = run_table(names, _config(data_dir), tmp_path / "b", model=chat_model,
                      progress=False, keep_going=True)
    assert list(table.failures) == ["no-such-dataset"]
    assert {r["dataset"] for r in table.rows} == {DATASETS[0]}


def test_single_order_and_cloze_labels(chat_model, data_dir, tmp_path):
    single = run_table(DATASETS[:1], _config(data_dir, mirror=False, variants=("base",)),
                       tmp_path / "single", model=chat_model, progress=False)
    cloze = run_table(DATASETS[:1], _config(data_dir, readout="cloze", variants=("base",)),
                      tmp_path / "cloze", model=chat_model, progress=False)
    both = Table.combine([single, cloze])
    assert [(s["readout"], s["n_datasets"]) for s in both.summary()] == [
        ("letter-single", 1), ("cloze", 1)]
    assert "readout cloze;" in cloze.header


@pytest.mark.slow  # not a model load, but starting Ray takes ~20 s and the tasks ~20 s more
def test_run_table_on_ray_equals_serial(serial, chat_model, data_dir, tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    _, expected = serial
    monkeypatch.setattr(table_mod, "_serial", lambda *a, **k: pytest.fail("ran serially"))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        table = run_table(DATASETS, _config(data_dir), tmp_path / "ray", ray=True,
                          model=chat_model, threads=1, progress=False)
        assert ray.is_initialized()  # an instance started by the caller is left running
    finally:
        ray.shutdown()
    assert [(r.dataset, r.status) for r in table.runs] == [(d, "computed") for d in DATASETS]
    assert table.rows == expected.rows and table.header == expected.header
    assert table.to_markdown() == expected.to_markdown()
    assert (tmp_path / "ray" / DATASETS[1] / "results.json").is_file()
