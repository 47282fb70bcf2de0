"""The run directory: preconditions checked before anything runs, and one reader for all files
(the per-sweep files on their own: test_sweepfiles.py)."""

import json
from pathlib import Path

import pytest

from w2s_lens.artifacts.json_files import write_json
from w2s_lens.artifacts.provenance import ArtifactMismatch, stamp
from w2s_lens.controls.synthetic import build_control
from w2s_lens.evaluation.config import EvalConfig, flat_config
from w2s_lens.evaluation.pipeline import evaluate_examples
from w2s_lens.evaluation.split import SplitExamples
from w2s_lens.evaluation.storage.rundir import RunDir

CFG = EvalConfig(dataset="synthetic", variants=("base",), routers=("logreg",), n_boot=200,
                 layers=(1, 2, 3), cross_fit=3)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    control = build_control("positive", n_families=3, n_layers=4, seed=0)
    train = control.make_examples(12, seed=1, both_orders=True)
    test = control.make_examples(6, seed=2, both_orders=True)
    out = tmp_path_factory.mktemp("run")
    res = evaluate_examples(control.model, SplitExamples(train, train, {"base": test}), CFG,
                            out, progress=False).to_dict()
    return out, res, test


def test_prepare_refuses_what_it_would_damage(tmp_path, run):
    out, _, _ = run
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(ArtifactMismatch, match="existing file"):
        RunDir(afile).prepare("evaluation", CFG.to_dict())
    other = CFG.replace(layers=(1, 2))
    with pytest.raises(ArtifactMismatch, match=r"sweep\.layers: \[1, 2, 3\] -> \[1, 2\]"):
        RunDir(out).prepare("evaluation", other.to_dict())
    with pytest.raises(ArtifactMismatch, match="'evaluation' run, not a 'sweep'"):
        RunDir(out).prepare("sweep", CFG.to_dict())
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ArtifactMismatch, match="not empty"):
        RunDir(tmp_path / "busy").prepare("evaluation", CFG.to_dict())
    # same settings: resume; settings that do not change results may differ
    assert RunDir(out).prepare("evaluation", CFG.replace(n_boot=5).to_dict()) is True
    assert RunDir(out).prepare("evaluation", flat_config(CFG.to_dict())) is True  # flat form
    assert RunDir(tmp_path / "new").prepare("evaluation", CFG.to_dict()) is False
    assert not (tmp_path / "new").exists()  # preparing writes nothing


def test_legacy_directories_are_refused_with_a_way_out(tmp_path):
    (tmp_path / "vectors.json").write_text(json.dumps({"format_version": 1}))
    with pytest.raises(ArtifactMismatch, match="w2s-lens 0.1.*rerun"):
        RunDir(tmp_path).prepare("evaluation", CFG.to_dict())
    with pytest.raises(ArtifactMismatch, match="w2s-lens 0.1"):
        RunDir(tmp_path).read_run()


def test_everything_reads_back_through_the_run_dir(run):
    out, res, test = run
    rd = RunDir(out)
    assert rd.kind == "evaluation" and rd.methods() == ["caa"]
    assert rd.splits("caa") == ["train", "base"]  # the variants; the retest only when asked
    assert rd.splits("caa", retest=True) == ["train", "base", "retest-1", "retest-2"]
    assert rd.read_results()["methods"]["caa"]["fixed_layer"] == \
        res["methods"]["caa"]["fixed_layer"]
    run_json = rd.read_run()
    assert run_json["config"] == json.loads(json.dumps(CFG.to_dict()))
    assert run_json["derived"]["hook_names"][0] == "blocks.1.hook_resid_pre"
    sweep, examples = rd.load_sweep("caa/base")
    assert [ex.id for ex in examples] == [ex.id for ex in test] == sweep.ids
    assert examples == test  # the exact examples, tokens and answers included
    assert sweep.mirrored().propensity.shape[0] == len(test) // 2
    routing = rd.read_routing(rd.sweep_dir("base", "caa"))
    assert len(routing["router_layer"]["logreg"]) == len(test) // 2
    assert rd.read_generations("caa") == []


def test_a_run_written_before_the_router_views_resumes_with_them(tmp_path):
    """run.json of an older version (length_norm, no views) resumes with today's config, and
    settings applied after the sweeps (routers, views, variants, data_dir) may change."""

    cfg = EvalConfig(readout="cloze", variants=("base",), data_dir="/old/checkout/data")
    old = flat_config(cfg.to_dict())  # flat, as run.json was then
    for key in ("scoring", "list_options", "router_inputs"):
        old.pop(key)
    old["length_norm"] = False
    rd = RunDir(tmp_path / "run")
    rd.write_run("evaluation", old, {})
    now = EvalConfig(readout="cloze", variants=("base", "sys-pos"), data_dir="/new/data",
                     router_inputs=("question", "options"), routers=("logreg",))
    assert rd.prepare("evaluation", now.to_dict()) is True
    with pytest.raises(ArtifactMismatch, match="scoring: 'sum' -> 'mean'"):
        rd.prepare("evaluation", EvalConfig(readout="cloze", scoring="mean").to_dict())


def test_a_resume_keeps_its_batch_size_and_says_how(tmp_path):
    rd = RunDir(tmp_path / "run")
    rd.write_run("evaluation", EvalConfig(batch_size=8).to_dict(), {})
    with pytest.raises(ArtifactMismatch, match="batch_size: 8 -> 3.*give --batch-size 8"):
        rd.prepare("evaluation", EvalConfig(batch_size=3).to_dict())
    assert rd.prepare("evaluation", EvalConfig(batch_size=8, n_boot=10).to_dict()) is True


def test_a_run_killed_in_its_first_write_resumes(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / ".run.json.abc123.tmp").write_text('{"kind": "eval')  # the kill landed mid-write
    assert RunDir(run).prepare("evaluation", EvalConfig().to_dict()) is False
    assert not list(run.iterdir())  # the half-written temporary is gone
    (run / "stray.txt").write_text("x")  # anything else is still refused
    with pytest.raises(ArtifactMismatch, match="not empty"):
        RunDir(run).prepare("evaluation", EvalConfig().to_dict())


#: run.json configs in the flat form (before EvalConfig had parts): today's last flat dump and
#: a real one from before 0.3 (length_norm, no router views, an absolute data_dir)
FLAT = json.loads((Path(__file__).parents[1] / "fixtures" / "flat_run_configs.json").read_text())
POWERED = dict(model="qwen2.5-coder-0.5b-instruct", n_train=200, n_test=200,
               variants=("base", "sys-pos", "sys-neg", "user-pos", "user-neg"),
               layers=(3, 7, 11, 15, 17, 19, 23), readout="cloze",
               router_inputs=("question", "options", "question+options", "minilm"),
               retest_max_items=None)


@pytest.mark.parametrize("shape,dataset", [("flat", "corrigible-neutral-HHH"),
                                           ("before_0.3", "self-awareness-text-model")])
def test_a_run_with_a_flat_run_json_resumes(tmp_path, shape, dataset):
    """A run started before the config had parts (its run.json flat) resumes with the same
    settings given today, and is still refused with other ones."""
    rd = RunDir(tmp_path / "run")  # run.json as the older version wrote it, byte for byte
    write_json(rd.path / "run.json", stamp({"kind": "evaluation", "config": FLAT[shape],
                                            "derived": {"status": "running"}}))
    now = EvalConfig(dataset=dataset, data_dir="/work/shared/data/mwe", **POWERED)
    assert rd.prepare("evaluation", now.to_dict()) is True
    assert rd.prepare("evaluation", EvalConfig(dataset=dataset, data_dir="../data",
                                               **POWERED).to_dict()) is True
    with pytest.raises(ArtifactMismatch, match="readout: 'cloze' -> 'letter'"):
        rd.prepare("evaluation", EvalConfig(dataset=dataset,
                                            **{**POWERED, "readout": "letter"}).to_dict())
    with pytest.raises(ArtifactMismatch, match="n_test: 200 -> 100"):
        rd.prepare("evaluation", EvalConfig(dataset=dataset,
                                            **{**POWERED, "n_test": 100}).to_dict())
    if shape == "flat":  # a sweep directory's run.json (compared as written, keys and all)
        where = {"split": "test", "variant": "base"}
        sweep = RunDir(tmp_path / "sweep")
        write_json(sweep.path / "run.json", stamp({"kind": "sweep",
                                                   "config": {**FLAT[shape], **where},
                                                   "derived": {"status": "running"}}))
        assert sweep.prepare("sweep", {**now.to_dict(), **where}) is True
        with pytest.raises(ArtifactMismatch, match="variant: 'base' -> 'sys-pos'"):
            sweep.prepare("sweep", {**now.to_dict(), **where, "variant": "sys-pos"})
