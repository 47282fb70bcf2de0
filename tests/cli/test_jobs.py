"""Jobs: preconditions before any model is loaded, resuming without retraining, and the
sweep → router → bundle chain."""

import pytest
from conftest import write_ab_dataset

import w2s_lens.cli.jobs as jobs
from w2s_lens.artifacts.provenance import FORMAT_VERSION, ArtifactMismatch
from w2s_lens.evaluation import split
from w2s_lens.evaluation.config import EvalConfig
from w2s_lens.evaluation.config_parts import ConfigError
from w2s_lens.evaluation.storage.rundir import RunDir
from w2s_lens.steering.vectors import SteeringVectors

SMOL = "smollm2-135m-instruct"


def small(dataset, **kw):
    base = dict(dataset=str(dataset), model=SMOL, n_train=4, n_test=2, layers=(3, 15),
                variants=("base",), routers=("logreg",), cross_fit=0, n_boot=50,
                multipliers=(-1.0, 0.0, 1.0))
    return EvalConfig(**{**base, **kw})


@pytest.fixture()
def no_model(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("the model was loaded before the preconditions were checked")

    monkeypatch.setattr(jobs, "load_model", refuse)


def test_refusals_come_before_the_model_loads(tmp_path, no_model):
    data = write_ab_dataset(tmp_path / "data", 6)
    afile = tmp_path / "out.txt"
    afile.write_text("keep me")
    for call in (lambda: jobs.run_sweep_job(small(data), afile),
                 lambda: jobs.run_evaluation(small(data), afile)):
        with pytest.raises(ArtifactMismatch, match="existing file"):
            call()
    assert afile.read_text() == "keep me"
    with pytest.raises(ConfigError, match="split"):
        jobs.run_sweep_job(small(data), tmp_path / "s", split="validation")


def test_train_router_refuses_a_test_split_sweep_unless_asked(tmp_path, no_model, caplog):
    import json

    sweep = tmp_path / "sweep"
    sweep.mkdir()

    def write(config):
        (sweep / "run.json").write_text(json.dumps({
            "kind": "sweep", "config": config, "derived": {"model": "m"},
            "format_version": FORMAT_VERSION}))

    write({"model": "m", "split": "test"})
    with pytest.raises(ConfigError, match="sweep of the 'test' split.*--allow-test-split"):
        jobs.train_router_job(sweep, tmp_path / "r")
    assert not (tmp_path / "r").exists()
    # asked for, the fit goes on (here to the model load, which the fixture refuses)
    with caplog.at_level("WARNING", logger="w2s_lens.cli.jobs"), \
            pytest.raises(AssertionError, match="model was loaded"):
        jobs.train_router_job(sweep, tmp_path / "r", allow_test_split=True)
    assert "cannot judge this router" in caplog.text
    # a sweep that does not say which split it swept: a warning, not a refusal
    write({"model": "m"})
    caplog.clear()
    with caplog.at_level("WARNING", logger="w2s_lens.cli.jobs"), \
            pytest.raises(AssertionError, match="model was loaded"):
        jobs.train_router_job(sweep, tmp_path / "r")
    assert "does not record which split" in caplog.text


@pytest.mark.slow
def test_sweep_rerun_with_other_layers_damages_nothing(tmp_path, monkeypatch, caplog):
    data = write_ab_dataset(tmp_path / "data", 8)
    out = tmp_path / "sweep"
    with caplog.at_level("INFO", logger="w2s_lens.cli.jobs"):
        first = jobs.run_sweep_job(small(data), out, split="train")
    # one cost line before the sweep: presentations × layers × non-zero multipliers, timed
    n_mult = sum(m != 0 for m in small(data).sweep.multipliers)
    n = first.propensity.shape[0] * len(first.layers) * n_mult
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("cost: ")]
    assert line.startswith(f"cost: {n:,} forward-equivalents") and "≈" in line
    caplog.clear()
    vec_before = (out / "vectors" / "vectors.safetensors").read_bytes()
    run_before = (out / "run.json").read_text()
    with pytest.raises(ArtifactMismatch, match="layers"):
        jobs.run_sweep_job(small(data, layers=(2, 9)), out, split="train")
    assert (out / "vectors" / "vectors.safetensors").read_bytes() == vec_before
    assert (out / "run.json").read_text() == run_before
    # the same command resumes: it says so and reuses the vectors it has
    calls = []
    monkeypatch.setattr(jobs, "train_caa", lambda *a, **k: calls.append(1))
    with caplog.at_level("INFO"):
        again = jobs.run_sweep_job(small(data), out, split="train")
    assert not calls and "resuming" in caplog.text
    assert "nothing left to sweep" in caplog.text  # every chunk on disk
    assert (again.propensity == first.propensity).all()
    sweep, examples = RunDir(out).load_sweep(out)
    assert len(examples) == 8 and examples[0].text.startswith("<|im_start|>")
    assert sweep.metadata["split"] == "train"
    # the router bundle from that sweep routes its own training items to a swept layer
    w2s = jobs.train_router_job(out, tmp_path / "router")
    assert w2s.choose_layer(examples[0]) in (3, 15)
    assert w2s.prompt_format == RunDir(out).read_run()["derived"]["prompt_format"]
    vectors = SteeringVectors.load(out / "vectors")  # the first run's, untouched by the rest
    assert list(vectors.layers) == list(first.layers)
    assert (out / "vectors" / "vectors.safetensors").read_bytes() == vec_before


def test_a_caa_layout_directory_gives_its_own_split(tmp_path):
    import json

    def write(role_dir, stem, questions):
        folder = tmp_path / "caa" / role_dir / "toy"
        folder.mkdir(parents=True)
        records = [{"question": f"{q}\n\nChoices:\n (A) yes\n (B) no",
                    "answer_matching_behavior": "(A)" if i % 2 == 0 else "(B)",
                    "answer_not_matching_behavior": "(B)" if i % 2 == 0 else "(A)"}
                   for i, q in enumerate(questions)]
        (folder / f"{stem}.json").write_text(json.dumps(records))

    write("generate", "generate_dataset", [f"Shall we change goal {i}?" for i in range(6)])
    write("test", "test_dataset_ab", [f"Is test question {i} fine?" for i in range(4)])
    train, test = split.load_items(EvalConfig(dataset="toy", data_dir=str(tmp_path / "caa")))
    assert len(train) == 6 and len(test) == 4
    assert all(":generate:" in it.id for it in train) and all(":test:" in it.id for it in test)
