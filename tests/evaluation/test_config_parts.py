"""Tests for w2s_lens.evaluation.config_parts: each part checks its own settings (the error
names the setting as EvalConfig.<part>.<name>), its literals follow the choices module, and
the registry of parts and setting names is complete. EvalConfig's own behaviour (shorthand,
dumps, replace) is tested in test_config.py."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from w2s_lens import choices
from w2s_lens.evaluation.config_parts import (
    PARTS,
    SETTING_PARTS,
    ComputeConfig,
    ConfigError,
    DataConfig,
    RoutingConfig,
    StatisticsConfig,
    SweepConfig,
)


@pytest.mark.parametrize("part, settings, where", [
    (DataConfig, {"variants": ("sys-pos",)}, "EvalConfig.data.variants must include 'base'"),
    (DataConfig, {"train_fraction": 0.0}, "EvalConfig.data.train_fraction"),
    (SweepConfig, {"scoring": "first"}, "cloze readout only"),
    (SweepConfig, {"layers": "3"}, "EvalConfig.sweep.layers must be a sequence"),
    (RoutingConfig, {"routers": ()}, "at least one router kind"),
    (RoutingConfig, {"routers": ("mlp",)}, "EvalConfig.routing.primary_router"),
    (StatisticsConfig, {"cross_fit": 1}, "EvalConfig.statistics.cross_fit"),
    (ComputeConfig, {"dtype": "float8"}, "EvalConfig.compute.dtype must be one of"),
])
def test_each_part_checks_its_settings(part, settings, where):
    with pytest.raises(ConfigError, match=where):
        part(**settings)


def test_parts_normalise_what_they_hold():
    sweep = SweepConfig(layers=[7, 3], multipliers=[-1.0, 1.0])
    assert sweep.layers == (3, 7) and sweep.multipliers == (-1.0, 1.0)
    assert DataConfig(variants=["base", "sys-neg"]).variants == ("base", "sys-neg")
    with pytest.raises(dataclasses.FrozenInstanceError):
        sweep.readout = "cloze"


def test_the_registry_names_every_part_and_setting_once():
    assert tuple(PARTS) == choices.EVAL_PARTS
    flat = [f.name for n, c in PARTS.items() if n != "l2s" for f in dataclasses.fields(c)]
    assert len(flat) == len(set(flat)) == len(SETTING_PARTS)
    assert SETTING_PARTS["readout"] == "sweep" and SETTING_PARTS["batch_size"] == "compute"
    assert all(PARTS[part]._part == part for part in PARTS if part != "l2s")


def test_literals_follow_the_choices_module():
    for cls, field, names in [(SweepConfig, "readout", choices.READOUTS),
                              (SweepConfig, "method", choices.METHODS),
                              (SweepConfig, "engine", choices.ENGINES),
                              (SweepConfig, "scale", choices.SCALES),
                              (RoutingConfig, "embedding", choices.EMBEDDINGS),
                              (SweepConfig, "positions", choices.POSITIONS),
                              (ComputeConfig, "dtype", choices.DTYPES)]:
        assert typing.get_args(typing.get_type_hints(cls)[field]) == names, field


def test_the_docstring_examples_run():
    import doctest

    import w2s_lens.evaluation.config_parts as module

    failed, attempted = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert failed == 0 and attempted > 0
