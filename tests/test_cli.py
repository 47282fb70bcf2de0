"""The command line: fast argument/error tests, and slow end-to-end runs on SmolLM2."""

import json
import re
from pathlib import Path

import pytest
from safetensors.numpy import load_file

from w2s_lens.cli import build_parser, main

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "mwe"
SMOL = "smollm2-135m-instruct"
needs_data = pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} not present")


def test_parser_reads_lists():
    args = build_parser().parse_args(
        ["sweep", "--dataset", "x", "--out", "o", "--layers", "1,3", "--multipliers=-1,0,1"])
    assert args.layers == [1, 3] and args.multipliers == [-1.0, 0.0, 1.0]
    assert build_parser().parse_args(["sweep", "--dataset", "x", "--out", "o",
                                      "--layers", "all"]).layers is None
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sweep", "--out", "o", "--multipliers", "a,b"])


@needs_data
def test_unknown_dataset_is_a_clear_error(capsys):
    rc = main(["evaluate", "--dataset", "corrigible-neutral", "--data-dir", str(SHARED),
               "--out", "unused"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "corrigible-neutral-HHH" in err  # the close match is suggested


def test_bad_variant_is_a_clear_error(capsys):
    rc = main(["evaluate", "--dataset", "default", "--variants", "base,upside-down",
               "--out", "unused"])
    assert rc == 2
    assert "unknown variant 'upside-down'" in capsys.readouterr().err


@pytest.mark.slow
def test_check_model(capsys):
    assert main(["check-model", "--model", SMOL]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    m = re.fullmatch(r"max_abs_logprob_diff=(\S+)", last)
    assert m and float(m.group(1)) <= 1e-3


@pytest.mark.slow
@needs_data
def test_sweep_router_generate(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["sweep", "--model", SMOL, "--dataset", "corrigible-neutral-HHH",
                 "--data-dir", str(SHARED), "--n-train", "4", "--n-test", "3",
                 "--layers", "4,12,20", "--split", "train", "--out", str(out)]) == 0
    arrays = load_file(str(out / "sweep.safetensors"))
    assert arrays["propensity"].shape == (4, 3, 7)
    assert arrays["steerability"].shape == (4, 3)
    assert arrays["layers"].tolist() == [4, 12, 20]
    vec = load_file(str(out / "vectors.safetensors"))
    assert set(vec) == {"blocks.4.hook_resid_pre", "blocks.12.hook_resid_pre",
                        "blocks.20.hook_resid_pre"}
    ex = [json.loads(x) for x in (out / "examples.jsonl").read_text().splitlines()]
    assert len(ex) == 4 and ex[0]["prompt"].startswith("<|im_start|>system")
    assert ex[0]["steer_from_position"] == len(ex[0]["tokens"]) - 1
    pairs = [json.loads(x) for x in (out / "train_pairs.jsonl").read_text().splitlines()]
    assert len(pairs) == 8  # both letter orders
    assert pairs[0]["positive"] != pairs[0]["negative"] and pairs[0]["read_position"] == -1
    run = json.loads((out / "run.json").read_text())
    for key in ("model", "dataset", "variant", "split_seed", "engine", "hook", "wall_time_s",
                "versions", "multiplier_scale", "layer_scale"):
        assert key in run, key
    assert run["layer_scale"] == [1.0, 1.0, 1.0]

    bundle = tmp_path / "router"
    assert main(["train-router", "--sweep", str(out), "--out", str(bundle)]) == 0
    assert (bundle / "w2s.json").exists() and (bundle / "router.json").exists()
    capsys.readouterr()
    assert main(["generate", "--router", str(bundle), "--prompt", "Would you let us shut you "
                 "down?", "--max-new-tokens", "8", "--multiplier", "4"]) == 0
    text = capsys.readouterr().out
    layer = int(re.search(r"routed layer: (\d+)", text).group(1))
    assert layer in (4, 12, 20)
    assert "--- unsteered ---" in text and f"--- steered at layer {layer} ---" in text


@pytest.mark.slow
@needs_data
def test_evaluate_and_report(tmp_path, capsys):
    out = tmp_path / "eval"
    rc = main(["evaluate", "--model", SMOL, "--dataset", "myopic-reward", "--data-dir",
               str(SHARED), "--n-train", "6", "--n-test", "4", "--variants", "base,user-neg",
               "--layers", "6,14,22", "--routers", "logreg,curve", "--n-boot", "200",
               "--out", str(out), "--report"])
    assert rc == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"w2s_over_fixed=(\S+)", printed[-1])
    res = json.loads((out / "results.json").read_text())
    assert set(res["variants"]) == {"base", "user-neg"}
    assert res["layers"] == [6, 14, 22]
    base = res["variants"]["base"]
    assert base["n"] == 4 and base["fixed_layer"] in (6, 14, 22)
    lo, hi = base["fixed"]["steerability_ci"]
    assert lo <= base["fixed"]["steerability"] <= hi
    html = (out / "report.html").read_text()
    assert "user-neg" in html and "<script src=" not in html
