"""The command line's shared options: value parsers with clear errors, and option groups that
parse to the library's defaults."""

import argparse

import pytest

from w2s_lens.choices import DEFAULT_MULTIPLIERS, ROUTER_KINDS
from w2s_lens.cli_options import (
    DESCRIPTIONS,
    SUMMARIES,
    add_data,
    add_eval,
    add_model,
    cap,
    floats,
    layers,
    names,
)


def test_value_parsers():
    assert floats("-1, 0,1.5,") == [-1.0, 0.0, 1.5]
    assert layers("15,3,3") == [3, 15] and layers("all") is None
    assert names(" logreg,,mlp ") == ["logreg", "mlp"]
    with pytest.raises(argparse.ArgumentTypeError, match="comma-separated numbers"):
        floats("a,b")
    with pytest.raises(argparse.ArgumentTypeError, match="'all' or comma-separated"):
        layers("x")
    with pytest.raises(argparse.ArgumentTypeError, match="non-negative"):
        layers("-1,2")
    assert cap("12") == 12 and cap("all") is None
    for bad in ("0", "x"):
        with pytest.raises(argparse.ArgumentTypeError, match="positive count or 'all'"):
            cap(bad)


def test_option_groups_parse_to_their_defaults():
    p = argparse.ArgumentParser()
    add_model(p)
    add_data(p, default="toy")
    add_eval(p, ["base", "sys-pos"])
    args = p.parse_args([])
    assert args.dataset == "toy" and args.variants == ["base", "sys-pos"]
    assert args.multipliers == list(DEFAULT_MULTIPLIERS) and args.routers == list(ROUTER_KINDS)
    assert args.layers is None and args.mirror is True and args.cross_fit == 5
    assert p.parse_args(["--no-mirror", "--layers", "2,1"]).layers == [1, 2]
    assert args.retest is True and args.retest_items == 64
    assert p.parse_args(["--no-retest"]).retest is False
    help_text = next(a.help for a in p._actions if a.dest == "retest_items")
    assert "two extra test sweeps" in help_text


def test_every_command_has_a_summary_and_a_description():
    assert set(SUMMARIES) == set(DESCRIPTIONS)
    assert all(len(DESCRIPTIONS[c]) > len(SUMMARIES[c]) for c in SUMMARIES)
