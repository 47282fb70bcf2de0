"""The command line: a thin shell whose commands equal the library calls they wrap."""

import json
import re
import subprocess
import sys

import pytest
from conftest import refused, write_ab_dataset

import w2s_lens.sweep.runner as sweep_runner
from w2s_lens.cli.commands import build_parser, main
from w2s_lens.cli.jobs import run_evaluation
from w2s_lens.cli.settings import config_from_args
from w2s_lens.cli.values import usable_cores
from w2s_lens.evaluation.results.typed import EvaluationResult
from w2s_lens.evaluation.storage.rundir import RunDir
from w2s_lens.steering.vectors import SteeringVectors

SMOL = "smollm2-135m-instruct"


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
    # the run steered with those vectors (raw scale: λ = 1 adds the vector as it is)
    given = SteeringVectors.load(tmp_path / "v")
    stored = RunDir(tmp_path / "run").read_results()["methods"]["caa"]["vector_norms"]
    expected = [float(given.vector(layer).norm()) for layer in (3, 15)]
    assert stored == pytest.approx(expected, rel=1e-5)


@pytest.mark.slow
def test_check_model(capsys):
    assert main(["check-model", "--model", SMOL]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    m = re.fullmatch(r"max_abs_logprob_diff=(\S+)", last)
    assert m and float(m.group(1)) <= 1e-3


# ----------------------------------------------------------------------------- bad options


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


def test_os_errors_during_a_command_are_one_line_naming_the_path(tmp_path, monkeypatch, capsys):
    import w2s_lens.cli.commands as cli

    def full(args):
        raise OSError(28, "No space left on device", str(tmp_path / "v" / "vectors.safetensors"))

    monkeypatch.setattr(cli, "cmd_vectors", full)
    err = refused(["vectors", "--pairs", "p.jsonl", "--out", str(tmp_path / "v")], capsys)
    assert err == (f"w2s-lens vectors: error: {tmp_path}/v/vectors.safetensors: No space left "
                   "on device")


@pytest.mark.slow
def test_refit_tunes_stale_routers_again_without_a_sweep(tmp_path, capsys, monkeypatch):
    data = write_ab_dataset(tmp_path / "data", 8)
    out = tmp_path / "run"
    args = [a if a != "logreg" else "logreg,knn" for a in ARGS]
    assert main(["evaluate", "--dataset", str(data), *args, "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["refit", str(out)]) == 2  # the run recorded its data file by name only
    assert "give their folder with --data-dir" in capsys.readouterr().err
    assert main(["refit", str(out), "--data-dir", str(data.parent)]) == 0
    assert "nothing to refit" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    results["methods"]["caa"]["router_cv"]["knn"]["grid"] = [1, 2]  # an older grid
    (out / "results.json").write_text(json.dumps(results))

    def no_sweep(*a, **k):
        raise AssertionError("refit swept")

    monkeypatch.setattr(sweep_runner, "fast_chunk", no_sweep)
    assert main(["refit", str(out), "--data-dir", str(data.parent)]) == 0
    assert "refitted caa/knn" in capsys.readouterr().out
    new = json.loads((out / "results.json").read_text())
    assert new["refits"][-1]["routers"] == ["caa/knn"]
    assert new["methods"]["caa"]["router_cv"]["knn"]["grid"] != [1, 2]
    assert main(["refit", str(out), "--data-dir", str(data.parent), "--routers", "mlp"]) == 2
    assert "no routers ['mlp']" in capsys.readouterr().err
