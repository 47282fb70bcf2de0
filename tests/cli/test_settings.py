"""w2s_lens.cli.settings: a command line becomes the EvalConfig it asks for (every setting has
an option, at the library's default), and what can be checked is checked before any model
loads (each refusal one line naming the option, the value and the problem)."""

import json
import re

import pytest
from conftest import refused

from w2s_lens.choices import EVAL_PARTS
from w2s_lens.cli.commands import build_parser, main
from w2s_lens.cli.settings import config_from_args, model_shape
from w2s_lens.evaluation.config import EvalConfig

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


# ----------------------------------------------------------------------------- preflight


@pytest.fixture()
def no_model(monkeypatch):
    """Any model load fails the test: the checks must come first."""
    from w2s_lens.cli import jobs
    from w2s_lens.models import loading

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(loading, "load_model", refuse)
    monkeypatch.setattr(jobs, "load_model", refuse)


def test_layer_options_are_checked_against_the_model_before_it_loads(tmp_path, monkeypatch,
                                                                      capsys, no_model):
    cache = tmp_path / "cache"
    (cache / "models" / SMOL).mkdir(parents=True)
    (cache / "models" / SMOL / "cfg.json").write_text(json.dumps(
        {"cfg": {"n_layers": 30, "n_ctx": 8192}}))
    monkeypatch.setenv("W2S_CACHE_DIR", str(cache))
    # the shape is read from the converted copy's cfg.json, without loading the model
    assert model_shape(SMOL) == (30, 8192)
    assert model_shape("not/a-model-anyone-has") is None
    out = ["--model", SMOL, "--out", str(tmp_path / "o")]
    assert re.search("--embedding-layer 999 is outside smollm2-135m-instruct's layers 0..29",
                     refused(["evaluate", *out, "--embedding-layer", "999"], capsys))
    assert "--layers 40 is outside" in refused(["sweep", *out, "--layers", "3,40"], capsys)
    assert "--l2s-input-layer 30 is" in refused(["evaluate", *out, "--l2s-input-layer", "30"],
                                                 capsys)
    assert "needs at least 2 layers" in refused(["evaluate", *out, "--layers", "8"], capsys)
    assert "needs at least 2 layers" in refused(["sweep", *out, "--layers", "8", "--split",
                                                  "train"], capsys)
    sweep = tmp_path / "sweep"  # train-router: the sweep's model
    sweep.mkdir()
    (sweep / "run.json").write_text(json.dumps({"kind": "sweep", "config": {"model": SMOL},
                                                "derived": {"model": SMOL}}))
    assert f"--embedding-layer 30 is outside {SMOL}'s layers 0..29" in refused(
        ["train-router", "--sweep", str(sweep), "--embedding-layer", "30", "--out",
         str(tmp_path / "o")], capsys)
    # no derived model yet: the config's, in its part (today) or flat (older sweeps)
    for config in ({"compute": {"model": SMOL}}, {"model": SMOL}):
        (sweep / "run.json").write_text(json.dumps({"kind": "sweep", "config": config,
                                                    "derived": {"status": "running"}}))
        assert f"--embedding-layer 30 is outside {SMOL}'s layers 0..29" in refused(
            ["train-router", "--sweep", str(sweep), "--embedding-layer", "30", "--out",
             str(tmp_path / "o")], capsys)
    assert not (tmp_path / "o").exists()


def test_unwritable_out_and_cache_are_named_up_front(tmp_path, monkeypatch, capsys, no_model):
    from w2s_lens.cli import values as cli_values

    (tmp_path / "file").write_text("x")
    err = refused(["sweep", "--out", str(tmp_path / "file" / "run")], capsys)
    assert f"--out {tmp_path}/file/run: cannot create it, {tmp_path}/file is a file" in err
    real = cli_values.tempfile.TemporaryFile
    read_only = tmp_path / "ro"
    read_only.mkdir()

    def probe(*args, dir=None, **kwargs):
        if str(dir).startswith(str(read_only)):
            raise OSError(30, "Read-only file system")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(cli_values.tempfile, "TemporaryFile", probe)
    err = refused(["evaluate", "--out", str(read_only / "run")], capsys)
    assert f"--out {read_only}/run: cannot write in {read_only} (Read-only file system)" in err
    monkeypatch.setenv("W2S_CACHE_DIR", str(read_only / "cache"))  # fresh, nothing converted
    err = refused(["evaluate", "--model", SMOL, "--out", str(tmp_path / "o")], capsys)
    assert re.search(f"the w2s-lens cache {read_only}/cache: cannot write in .*; {SMOL} must be "
                     "converted there first", err)
    assert not (tmp_path / "o").exists()


def test_a_dataset_too_small_to_split_is_named_before_the_model(tmp_path, capsys, no_model):
    one = tmp_path / "one.json"
    one.write_text(json.dumps([{"question": "Q?\n (A) a\n (B) b",
                                "answer_matching_behavior": "(A)",
                                "answer_not_matching_behavior": "(B)"}]))
    err = refused(["evaluate", "--dataset", str(one), "--out", str(tmp_path / "o")], capsys)
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
