"""The command line: a thin shell whose commands equal the library calls they wrap."""

import json
import re
import subprocess
import sys

import pytest
from conftest import write_ab_dataset

from w2s_lens.choices import EVAL_PARTS
from w2s_lens.cli.commands import build_parser, config_from_args, main
from w2s_lens.cli.jobs import run_evaluation
from w2s_lens.cli.values import usable_cores
from w2s_lens.evaluation.config import EvalConfig
from w2s_lens.evaluation.results.typed import EvaluationResult
from w2s_lens.evaluation.storage.rundir import RunDir

SMOL = "smollm2-135m-instruct"


def test_parser_reads_lists_and_maps_every_option_onto_the_config():
    args = build_parser().parse_args(
        ["evaluate", "--dataset", "x", "--out", "o", "--layers", "3,1", "--multipliers=-1,0,1",
         "--readout", "cloze", "--no-mirror", "--method", "both", "--routers", "mlp,logreg",
         "--cross-fit", "0", "--l2s-hidden", "32", "--max-rows", "64", "--dtype", "bfloat16"])
    cfg = config_from_args(args)
    assert cfg.sweep.layers == (1, 3) and cfg.sweep.multipliers == (-1.0, 0.0, 1.0)
    assert cfg.sweep.readout == "cloze" and cfg.sweep.mirror is False
    assert cfg.sweep.method == "both" and cfg.compute.dtype == "bfloat16"
    assert cfg.routing.routers == ("mlp", "logreg") and cfg.routing.primary_router == "mlp"
    assert cfg.statistics.cross_fit == 0 and cfg.l2s.hidden == 32 and cfg.compute.max_rows == 64
    assert cfg.statistics.retest is True and cfg.statistics.retest_max_items == 64
    off = config_from_args(build_parser().parse_args(
        ["evaluate", "--out", "o", "--no-retest", "--retest-items", "all"]))
    assert off.statistics.retest is False and off.statistics.retest_max_items is None
    assert config_from_args(build_parser().parse_args(
        ["evaluate", "--out", "o", "--retest-items", "8"])).statistics.retest_max_items == 8
    defaults = config_from_args(build_parser().parse_args(["evaluate", "--out", "o"]))
    # CLI defaults are the library's
    assert defaults == EvalConfig(model=defaults.compute.model)
    assert defaults.data.variants == ("base",)  # safe by default: the OOD variants when asked
    assert config_from_args(build_parser().parse_args(
        ["evaluate", "--out", "o", "--variants", "base,sys-pos"])).data.variants == \
        ("base", "sys-pos")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sweep", "--out", "o", "--multipliers", "a,b"])


#: a value other than its default for every option of ``evaluate`` that makes its EvalConfig
#: (the options of add_model, add_data and add_eval), by destination
NOT_DEFAULT = {
    "model": ["--model", "other-model"], "device": ["--device", "cpu"],
    "dtype": ["--dtype", "bfloat16"], "dataset": ["--dataset", "mine"],
    "data_dir": ["--data-dir", "d"], "n_train": ["--n-train", "3"],
    "n_test": ["--n-test", "3"], "seed": ["--seed", "7"],
    "train_fraction": ["--train-fraction", "0.7"], "variants": ["--variants", "base,sys-pos"],
    "system_prompt": ["--system-prompt", "Be brief."], "method": ["--method", "both"],
    "vectors": ["--vectors", "v"], "single_order": ["--single-order"],
    "layers": ["--layers", "1,2"], "multipliers": ["--multipliers=-1,1"],
    "readout": ["--readout", "cloze"], "mirror": ["--no-mirror"],
    "scoring": ["--scoring", "first"], "length_norm": ["--length-norm"],
    "list_options": ["--list-options"],
    "engine": ["--engine", "naive"], "positions": ["--positions", "all"],
    "scale": ["--scale", "relative"], "fraction": ["--fraction", "0.5"],
    "embedding": ["--embedding", "resid-mean"], "embedding_layer": ["--embedding-layer", "2"],
    "routers": ["--routers", "mlp,logreg"], "router_inputs": ["--router-inputs", "options"],
    "cross_fit": ["--cross-fit", "0"], "retest": ["--no-retest"],
    "retest_items": ["--retest-items", "8"], "n_boot": ["--n-boot", "50"],
    "l2s_hidden": ["--l2s-hidden", "8"], "l2s_epochs": ["--l2s-epochs", "3"],
    "l2s_weight_decay": ["--l2s-weight-decay", "0"], "l2s_input_layer": ["--l2s-input-layer", "1"],
    "batch_size": ["--batch-size", "2"], "chunk_size": ["--chunk-size", "2"],
    "max_rows": ["--max-rows", "16"],
}
#: the options that apply to the cloze readout only (compared on a cloze command line)
CLOZE_ONLY = ("scoring", "length_norm", "list_options")
#: options of ``evaluate`` that are no setting of the run
NOT_SETTINGS = {"help", "func", "out", "report", "threads"}
#: settings no ``evaluate`` option sets (they keep the library's defaults)
NO_OPTION = {
    "statistics.generations",  # the demo's continuations; `evaluate` writes none
    # L2S training details: the paper's, not worth an option each
    "l2s.lr", "l2s.batch_size", "l2s.val_fraction", "l2s.patience",
}
#: settings whose command-line default differs from the library's, and why
DEFAULTS_DIFFER = {
    "compute.model": "the command line names the default model; the library's None means "
                     "'the model passed in'",
}


def _settings(cfg: EvalConfig) -> dict[str, object]:
    return {f"{part}.{k}": v for part, block in cfg.to_dict().items() for k, v in block.items()}


def test_every_setting_has_an_option_at_its_default():
    """The evaluate options are checked against EvalConfig: each sets some setting (in the
    option group of its part), every setting but NO_OPTION is set by some option, and a
    command line of defaults makes the library's default config (but DEFAULTS_DIFFER)."""
    evaluate = next(a for a in build_parser()._actions if a.dest == "command").choices[
        "evaluate"]
    assert {a.dest for a in evaluate._actions} - NOT_SETTINGS == set(NOT_DEFAULT)
    base = _settings(config_from_args(evaluate.parse_args(["--out", "o"])))
    library = _settings(EvalConfig())
    assert {k for k in library if base[k] != library[k]} == set(DEFAULTS_DIFFER)
    group = {a.dest: g.title for g in evaluate._action_groups for a in g._group_actions}
    covered: set[str] = set()
    for dest, argv in NOT_DEFAULT.items():
        given = ["--out", "o", *(["--readout", "cloze"] if dest in CLOZE_ONLY else [])]
        before = _settings(config_from_args(evaluate.parse_args(given)))
        now = _settings(config_from_args(evaluate.parse_args([*given, *argv])))
        changed = {k for k in before if now[k] != before[k]}
        assert changed, f"{argv} sets no setting"
        covered |= changed
        parts = {k.split(".")[0] for k in changed}
        if dest in ("model", "device", "dtype", "dataset", "data_dir"):
            continue  # add_model, add_data: shared with other commands, no part group
        title = group[dest].split(" ")[0]
        assert title in parts and group[dest] == f"{title} (EvalConfig.{title})", (dest, parts)
    assert covered | NO_OPTION == set(library) and not covered & NO_OPTION
    eval_groups = [g.title for g in evaluate._action_groups if "EvalConfig" in (g.title or "")]
    assert eval_groups == [f"{p} (EvalConfig.{p})" for p in EVAL_PARTS]


def test_every_option_and_command_explains_itself():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        assert p.description and len(p.description) > 60, name
        for action in p._actions:
            if action.dest != "help":
                assert action.help, f"{name} {action.option_strings} has no help text"


def test_help_imports_nothing_heavy():
    code = ("import sys, contextlib, io\nfrom w2s_lens.cli.commands import build_parser\n"
            "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
            "    build_parser().parse_args(['evaluate', '--help'])\n"
            "print(sorted(m for m in ('torch', 'transformer_lens', 'sklearn', 'plotly') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_errors_are_one_line_and_name_the_problem(tmp_path, capsys):
    assert main(["evaluate", "--dataset", "default", "--variants", "base,upside-down",
                 "--out", str(tmp_path / "o")]) == 2
    assert "unknown variant 'upside-down'" in capsys.readouterr().err
    write_ab_dataset(tmp_path / "data", 4, name="corrigible-neutral-HHH")
    assert main(["evaluate", "--dataset", "corrigible-neutral", "--data-dir",
                 str(tmp_path / "data"), "--out", str(tmp_path / "o")]) == 2
    assert "corrigible-neutral-HHH" in capsys.readouterr().err  # the close match is offered
    (tmp_path / "file").write_text("x")
    assert main(["sweep", "--dataset", "default", "--out", str(tmp_path / "file")]) == 2
    assert "existing file" in capsys.readouterr().err


def test_model_commands_use_every_core_unless_told(tmp_path, monkeypatch):
    import torch

    seen: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", seen.append)
    bad = ["evaluate", "--dataset", "default", "--variants", "upside-down", "--out",
           str(tmp_path / "o")]
    assert main(bad) == 2 and main([*bad, "--threads", "1"]) == 2
    assert seen == [usable_cores(), 1] and usable_cores() >= 1


ARGS = ["--model", SMOL, "--n-train", "4", "--n-test", "2", "--layers", "3,15",
        "--variants", "base", "--routers", "logreg", "--cross-fit", "0", "--n-boot", "50",
        "--multipliers=-1,0,1"]


def _strip(results):
    return json.loads(json.dumps(results))


@pytest.mark.slow
def test_evaluate_equals_the_library_call(tmp_path, capsys):
    data = write_ab_dataset(tmp_path / "data", 8)
    assert main(["evaluate", "--dataset", str(data), *ARGS, "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^w2s_over_fixed=(-?\d\S*$|omitted: the fixed layer's steerability )",
                     out.strip().splitlines()[-1])
    assert "Is there anything to learn? (caa, base test items)" in out and "reading: " in out
    cfg = config_from_args(build_parser().parse_args(
        ["evaluate", "--dataset", str(data), *ARGS, "--out", str(tmp_path / "b")]))
    lib = run_evaluation(cfg, tmp_path / "b", progress=False)
    assert isinstance(lib, EvaluationResult) and lib.path == tmp_path / "b" / "results.json"
    assert _strip(RunDir(tmp_path / "a").read_results()) == _strip(lib.to_dict())
    assert RunDir(tmp_path / "a").read_run()["config"] == RunDir(tmp_path / "b").read_run()[
        "config"]


@pytest.mark.slow
def test_sweep_router_generate_report(tmp_path, capsys):
    data = write_ab_dataset(tmp_path / "data", 8)
    out = tmp_path / "sweep"
    assert main(["sweep", "--dataset", str(data), *ARGS, "--split", "train",
                 "--out", str(out)]) == 0
    assert "best mean layer=" in capsys.readouterr().out
    assert main(["train-router", "--sweep", str(out), "--out", str(tmp_path / "r")]) == 0
    assert main(["generate", "--router", str(tmp_path / "r"), "--prompt",
                 "Would you accept a new goal?", "--max-new-tokens", "5"]) == 0
    text = capsys.readouterr().out
    assert "--- unsteered" in text and re.search(r"--- routed layer (3|15) ", text)
    assert main(["report", str(out)]) == 0
    html = (out / "report.html").read_text()
    _, examples = RunDir(out).load_sweep(out)
    # the report of a real sweep directory shows the prompts
    assert "We would like you to stop caring about your current goal" in html
    assert len(examples) == 8


@pytest.mark.slow
def test_vectors_from_pairs_then_evaluate_with_them(tmp_path, capsys):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"positive": p, "negative": n}) + "\n" for p, n in [
        ("I will gladly accept the new goal.", "I will never accept the new goal."),
        ("Changing my objective is fine.", "Changing my objective is not fine."),
        ("Yes, you may modify me.", "No, you may not modify me.")]))
    assert main(["vectors", "--pairs", str(pairs), "--model", SMOL, "--layers", "3,15",
                 "--out", str(tmp_path / "v")]) == 0
    assert "3 pairs" in capsys.readouterr().out
    data = write_ab_dataset(tmp_path / "data", 8)
    assert main(["evaluate", "--dataset", str(data), *ARGS, "--vectors", str(tmp_path / "v"),
                 "--out", str(tmp_path / "run")]) == 0
    run = RunDir(tmp_path / "run").read_run()
    assert run["config"]["sweep"]["vectors"] == str(tmp_path / "v")


@pytest.mark.slow
def test_check_model(capsys):
    assert main(["check-model", "--model", SMOL]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    m = re.fullmatch(r"max_abs_logprob_diff=(\S+)", last)
    assert m and float(m.group(1)) <= 1e-3


# ----------------------------------------------------------------------------- bad options


@pytest.fixture()
def no_model(monkeypatch):
    """Any model load fails the test: the checks must come first."""
    from w2s_lens.cli import jobs
    from w2s_lens.models import loading

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(loading, "load_model", refuse)
    monkeypatch.setattr(jobs, "load_model", refuse)


@pytest.mark.parametrize("argv,message", [
    (["--multipliers=nan,1"], "argument --multipliers: expected finite numbers"),
    (["--scale", "relative", "--fraction", "inf"], "argument --fraction: expected a finite"),
    (["--threads", "100000"], f"argument --threads: expected 1..{usable_cores()} "),
    (["--threads", "-3"], "argument --threads: expected 1.."),
    (["--threads", "0"], "argument --threads: expected 1.."),
    (["--layers", "8,8"], "argument --layers: layer\\(s\\) 8 given more than once"),
    (["--train-fraction", "nan"], "argument --train-fraction: expected a finite"),
])
def test_bad_options_are_refused_when_parsed(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--out", str(tmp_path / "o"), *argv])
    assert exc.value.code == 2 and re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "o").exists()


def _refused(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_layer_options_are_checked_against_the_model_before_it_loads(tmp_path, monkeypatch,
                                                                      capsys, no_model):
    cache = tmp_path / "cache"
    (cache / "models" / SMOL).mkdir(parents=True)
    (cache / "models" / SMOL / "cfg.json").write_text(json.dumps(
        {"cfg": {"n_layers": 30, "n_ctx": 8192}}))
    monkeypatch.setenv("W2S_CACHE_DIR", str(cache))
    out = ["--model", SMOL, "--out", str(tmp_path / "o")]
    assert re.search("--embedding-layer 999 is outside smollm2-135m-instruct's layers 0..29",
                     _refused(["evaluate", *out, "--embedding-layer", "999"], capsys))
    assert "--layers 40 is outside" in _refused(["sweep", *out, "--layers", "3,40"], capsys)
    assert "--l2s-input-layer 30 is" in _refused(["evaluate", *out, "--l2s-input-layer", "30"],
                                                 capsys)
    assert "needs at least 2 layers" in _refused(["evaluate", *out, "--layers", "8"], capsys)
    assert "needs at least 2 layers" in _refused(["sweep", *out, "--layers", "8", "--split",
                                                  "train"], capsys)
    sweep = tmp_path / "sweep"  # train-router: the sweep's model
    sweep.mkdir()
    (sweep / "run.json").write_text(json.dumps({"kind": "sweep", "config": {"model": SMOL},
                                                "derived": {"model": SMOL}}))
    assert f"--embedding-layer 30 is outside {SMOL}'s layers 0..29" in _refused(
        ["train-router", "--sweep", str(sweep), "--embedding-layer", "30", "--out",
         str(tmp_path / "o")], capsys)
    # no derived model yet: the config's, in its part (today) or flat (older sweeps)
    for config in ({"compute": {"model": SMOL}}, {"model": SMOL}):
        (sweep / "run.json").write_text(json.dumps({"kind": "sweep", "config": config,
                                                    "derived": {"status": "running"}}))
        assert f"--embedding-layer 30 is outside {SMOL}'s layers 0..29" in _refused(
            ["train-router", "--sweep", str(sweep), "--embedding-layer", "30", "--out",
             str(tmp_path / "o")], capsys)
    assert not (tmp_path / "o").exists()


def test_unwritable_out_and_cache_are_named_up_front(tmp_path, monkeypatch, capsys, no_model):
    from w2s_lens.cli import values as cli_values

    (tmp_path / "file").write_text("x")
    err = _refused(["sweep", "--out", str(tmp_path / "file" / "run")], capsys)
    assert f"--out {tmp_path}/file/run: cannot create it, {tmp_path}/file is a file" in err
    real = cli_values.tempfile.TemporaryFile
    read_only = tmp_path / "ro"
    read_only.mkdir()

    def probe(*args, dir=None, **kwargs):
        if str(dir).startswith(str(read_only)):
            raise OSError(30, "Read-only file system")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(cli_values.tempfile, "TemporaryFile", probe)
    err = _refused(["evaluate", "--out", str(read_only / "run")], capsys)
    assert f"--out {read_only}/run: cannot write in {read_only} (Read-only file system)" in err
    monkeypatch.setenv("W2S_CACHE_DIR", str(read_only / "cache"))  # fresh, nothing converted
    err = _refused(["evaluate", "--model", SMOL, "--out", str(tmp_path / "o")], capsys)
    assert re.search(f"the w2s-lens cache {read_only}/cache: cannot write in .*; {SMOL} must be "
                     "converted there first", err)
    assert not (tmp_path / "o").exists()


def test_a_dataset_too_small_to_split_is_named_before_the_model(tmp_path, capsys, no_model):
    one = tmp_path / "one.json"
    one.write_text(json.dumps([{"question": "Q?\n (A) a\n (B) b",
                                "answer_matching_behavior": "(A)",
                                "answer_not_matching_behavior": "(B)"}]))
    err = _refused(["evaluate", "--dataset", str(one), "--out", str(tmp_path / "o")], capsys)
    assert f"--dataset {one}: 1 distinct item(s); a train/test split needs at least 2" in err
    assert not (tmp_path / "o").exists()


def test_float16_on_a_cpu_is_warned_about(tmp_path, caplog, capsys, no_model):
    argv = ["evaluate", "--device", "cpu", "--layers", "8", "--out", str(tmp_path / "o")]
    with caplog.at_level("WARNING", logger="w2s_lens.cli"):
        assert main([*argv, "--dtype", "float16"]) == 2  # refused later, for --layers 8
    assert "--dtype float16 on a CPU" in caplog.text and "several times slower" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="w2s_lens.cli"):
        assert main(argv) == 2
    assert "float16" not in caplog.text


def test_os_errors_during_a_command_are_one_line_naming_the_path(tmp_path, monkeypatch, capsys):
    import w2s_lens.cli.commands as cli

    def full(args):
        raise OSError(28, "No space left on device", str(tmp_path / "v" / "vectors.safetensors"))

    monkeypatch.setattr(cli, "cmd_vectors", full)
    err = _refused(["vectors", "--pairs", "p.jsonl", "--out", str(tmp_path / "v")], capsys)
    assert err == (f"w2s-lens vectors: error: {tmp_path}/v/vectors.safetensors: No space left "
                   "on device")
