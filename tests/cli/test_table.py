"""The cross-dataset table, run (w2s_lens.cli.table): run_table end to end on a tiny chat
model (serially, read back, resumed, and on a local Ray instance); the assembly is tested in
test_table_rows.py."""

from __future__ import annotations

import json

import pytest
from conftest import make_chat_model
from transformer_lens import HookedTransformer

import w2s_lens.cli.table as table_mod
import w2s_lens.sweep.runner as sweep_mod
from w2s_lens.artifacts.json_files import read_json
from w2s_lens.artifacts.provenance import ArtifactMismatch
from w2s_lens.cli.table import TableError, run_table
from w2s_lens.evaluation.config import EvalConfig
from w2s_lens.evaluation.results import EvaluationResult
from w2s_lens.evaluation.results.evidence import RULES_VERSION
from w2s_lens.report.tables.cross_dataset import Table

# --------------------------------------------------------------------------- end to end

DATASETS = ["corrigible-neutral-HHH", "narcissism"]


@pytest.fixture(scope="module")
def chat_model() -> HookedTransformer:
    return make_chat_model()


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


def test_a_finished_run_is_read_back_only_with_the_same_routers(chat_model, data_dir, tmp_path,
                                                                monkeypatch):
    root = tmp_path / "t"
    run_table(DATASETS[:1], _config(data_dir), root, model=chat_model, threads=1, progress=False)

    def no_sweep(*a, **k):
        raise AssertionError("a finished sweep chunk was recomputed")

    monkeypatch.setattr(sweep_mod, "fast_chunk", no_sweep)
    cfg = _config(data_dir, router_inputs=("question", "options"))
    assert table_mod.after_sweep_changes(
        json.loads((root / DATASETS[0] / "run.json").read_text())["config"], cfg) == \
        ["router_inputs"]
    again = run_table(DATASETS[:1], cfg, root, model=chat_model, threads=1, progress=False)
    assert again.runs[0].status == "computed"  # not the old results read back
    res = json.loads((root / DATASETS[0] / "results.json").read_text())
    assert "logreg@options" in res["methods"]["caa"]["variants"]["base"]["w2s"]
    third = run_table(DATASETS[:1], cfg, root, model=chat_model, threads=1, progress=False)
    assert third.runs[0].status == "read back"


def test_a_finished_run_tuned_on_another_grid_is_tuned_again(chat_model, data_dir, tmp_path,
                                                              monkeypatch):
    root = tmp_path / "t"
    cfg = _config(data_dir, routers=("logreg", "mlp"))
    run_table(DATASETS[:1], cfg, root, model=chat_model, threads=1, progress=False)
    path = root / DATASETS[0] / "results.json"
    res = json.loads(path.read_text())
    tuned = res["methods"]["caa"]["router_cv"]["mlp"]
    assert table_mod.stale_routers(EvaluationResult.load(path.parent)) == []
    # the MLP's grid of a run written before it changed
    tuned["grid"] = [100.0, 1.0, 0.01, 0.0001]
    path.write_text(json.dumps(res))
    assert table_mod.stale_routers(EvaluationResult.load(path.parent)) == ["caa/mlp"]

    def no_sweep(*a, **k):
        raise AssertionError("a finished sweep chunk was recomputed")

    monkeypatch.setattr(sweep_mod, "fast_chunk", no_sweep)
    again = run_table(DATASETS[:1], cfg, root, model=chat_model, threads=1, progress=False)
    assert again.runs[0].status == "computed"  # tuned again, not read back
    new = json.loads(path.read_text())["methods"]["caa"]["router_cv"]["mlp"]
    assert new["grid"] != [100.0, 1.0, 0.01, 0.0001] and table_mod.stale_routers(
        EvaluationResult.load(path.parent)) == []
    third = run_table(DATASETS[:1], cfg, root, model=chat_model, threads=1, progress=False)
    assert third.runs[0].status == "read back"


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


def test_assembly_names_have_one_import_home():
    from w2s_lens.report.tables import cross_dataset

    for name in ("COLUMNS", "FDR_Q", "DatasetRun", "Table", "describe_config", "readout_label",
                 "summary_rows", "table_rows"):
        assert name in cross_dataset.__all__ and name not in table_mod.__all__, name


def test_ood_variants_store_their_own_reading(serial):
    """An OOD variant's reading is stored under its variant, per view, with the headroom it
    cannot measure (the retest sweeps BASE only) said as such, and read back by the typed
    result."""
    root, _ = serial
    for d in DATASETS:
        res = read_json(root / d / "results.json")
        block = res["methods"]["caa"]["variants"]["sys-neg"]
        reading = block["reading"]
        assert reading["rules"]["version"] == RULES_VERSION
        assert reading["headroom"]["reading"] == "headroom not measured"
        assert "BASE test items only" in reading["headroom"]["text"]
        assert set(reading["views"]) == {"question"}
        view = reading["views"]["question"]
        assert view["diff"] == block["w2s"]["logreg"]["diff_vs_fixed"]
        want = ("learned by question" if str(view["verdict"]).endswith("beyond the noise")
                else "no gain by question (headroom not measured)")
        assert view["reading"] == want
        assert "reading" not in res["methods"]["caa"]["variants"]["base"]
        typed = EvaluationResult.load(root / d / "results.json")
        assert typed.methods["caa"].variants["sys-neg"].reading.text == reading["text"]
        assert typed.methods["caa"].evidence(variant="sys-neg").text == reading["text"]
        assert f"sys-neg: {reading['text']}" in typed.summary()
