"""Tests for w2s_lens.cli.options: the option groups parse to the library's defaults, and every
command has its texts. (The value parsers are tested in test_values.py.)"""

import argparse

from w2s_lens.choices import DEFAULT_MULTIPLIERS, ROUTER_KINDS
from w2s_lens.cli.options import DESCRIPTIONS, SUMMARIES, add_data, add_eval, add_model


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


