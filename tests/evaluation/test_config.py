"""EvalConfig: settings grouped in parts, every one checked at construction, and run.json as
its faithful dump (nested today, flat before the parts; both read)."""

import copy
import dataclasses
import json
import pickle
from pathlib import Path

import pytest

from w2s_lens import choices
from w2s_lens.evaluation.config import EvalConfig, flat_config, portable_config
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
from w2s_lens.steering.l2s.config import L2SConfig

#: run.json configs in the flat form: today's last flat dump and a real one from before 0.3
FLAT = json.loads((Path(__file__).parent / "fixtures" / "flat_run_configs.json").read_text())


@pytest.mark.parametrize("field,value", [
    ("engine", "fastest"), ("positions", "middle"), ("scale", "log"), ("readout", "logit"),
    ("method", "both-ways"), ("embedding", "bert"), ("primary_router", "forest"),
    ("dtype", "float8"), ("variants", ("base", "upside-down")), ("routers", ("logreg", "forest")),
    ("n_train", 0), ("n_test", -1), ("cross_fit", 1), ("cross_fit", -2), ("seed", 1.5),
    ("train_fraction", 1.0), ("fraction", 0.0), ("multipliers", (1.0, 1.0)),
    ("layers", (-1, 2)), ("n_boot", 0), ("mirror", "yes"), ("max_rows", 0),
    ("generations", -1), ("embedding_layer", -3), ("retest", "on"), ("retest_max_items", 0),
    ("multipliers", (float("nan"), 1.0)), ("multipliers", (-1.0, float("inf"))),
    ("fraction", float("inf")), ("fraction", float("nan")), ("layers", (8, 8)),
    ("train_fraction", float("nan")), ("variants", "base"), ("batch_size", 0),
    ("chunk_size", True), ("list_options", 1),
])
def test_bad_values_name_the_setting_in_its_part(field, value):
    where = f"EvalConfig.{SETTING_PARTS[field]}."
    with pytest.raises(ConfigError, match=where + (field.rstrip("s") if field != "cross_fit"
                                                   else field)):
        EvalConfig(**{field: value})
    with pytest.raises(ConfigError, match=where):  # the part alone says the same
        PARTS[SETTING_PARTS[field]](**{field: value})


def test_structural_rules():
    with pytest.raises(ConfigError, match="EvalConfig.data.variants must include 'base'"):
        EvalConfig(variants=("sys-pos",))
    with pytest.raises(ConfigError, match="EvalConfig.routing.primary_router"):
        EvalConfig(routers=("mlp",), primary_router="logreg")
    with pytest.raises(ConfigError, match="method='caa'"):
        EvalConfig(vectors="some/dir", method="l2s")
    with pytest.raises(ValueError, match="L2SConfig.lr"):
        EvalConfig(l2s={"lr": 0})


def test_defaults_are_letter_free_and_cross_fitted():
    cfg = EvalConfig()
    assert cfg.sweep.mirror and cfg.sweep.readout == "letter" and cfg.mirrored
    assert cfg.statistics.cross_fit == 5 and cfg.sweep.layers is None
    assert cfg.methods == ("caa",)
    assert not EvalConfig(readout="cloze").mirrored  # mirroring is a letter-readout notion
    assert EvalConfig(method="both").methods == ("caa", "l2s")
    # the headroom retest runs by default
    assert cfg.statistics.retest and cfg.statistics.retest_max_items == 64
    assert cfg.data.variants == ("base",)  # the OOD prompt variants only when asked (5x the sweeps)
    assert cfg == EvalConfig(data=DataConfig(), sweep=SweepConfig(), routing=RoutingConfig(),
                             statistics=StatisticsConfig(), l2s=L2SConfig(),
                             compute=ComputeConfig())


def test_the_parts_group_every_setting_once():
    assert tuple(PARTS) == choices.EVAL_PARTS == tuple(
        f.name for f in dataclasses.fields(EvalConfig))
    for name, cls in PARTS.items():
        assert isinstance(getattr(EvalConfig(), name), cls)
        doc = cls.__doc__ or ""
        assert "Attributes:" in doc or name == "l2s", name
        for f in dataclasses.fields(cls):  # each part's docstring lists its settings
            assert f.name in doc, (name, f.name)
    flat = [f.name for n, c in PARTS.items() if n != "l2s" for f in dataclasses.fields(c)]
    assert len(flat) == len(set(flat)) == len(SETTING_PARTS)
    assert "batch_size" in SETTING_PARTS and SETTING_PARTS["batch_size"] == "compute"


def test_flat_keywords_build_the_parts():
    cfg = EvalConfig(dataset="corrigible-neutral-HHH", n_train=24, readout="cloze",
                     routers=("logreg",), n_boot=50, batch_size=4, l2s=L2SConfig(hidden=8))
    assert cfg == EvalConfig(
        data=DataConfig(dataset="corrigible-neutral-HHH", n_train=24),
        sweep=SweepConfig(readout="cloze"), routing=RoutingConfig(routers=("logreg",)),
        statistics=StatisticsConfig(n_boot=50), l2s=L2SConfig(hidden=8),
        compute=ComputeConfig(batch_size=4))
    assert cfg.compute.batch_size == 4 and cfg.l2s.batch_size == 32  # no clash of the names
    # parts as dicts of their settings, and flat keywords for the other parts
    assert EvalConfig(sweep={"readout": "cloze"}, n_train=24, n_boot=50, batch_size=4,
                      dataset="corrigible-neutral-HHH", routers=("logreg",),
                      l2s={"hidden": 8}) == cfg


def test_what_names_no_setting_or_gives_one_twice_is_refused():
    with pytest.raises(ConfigError, match=r"unknown EvalConfig field\(s\) \['n_trian'\] "
                                          r"\(did you mean 'n_train'\?\)"):
        EvalConfig(n_trian=24)
    with pytest.raises(ConfigError, match=r"\['hidden'\] \(an L2S setting\?"):
        EvalConfig(hidden=64)
    # a setting beside its whole part changes that setting of the part
    assert EvalConfig(sweep=SweepConfig(), readout="cloze").sweep.readout == "cloze"
    both = EvalConfig(data={"n_train": 3}, n_test=4).data
    assert (both.n_train, both.n_test) == (3, 4)
    with pytest.raises(ConfigError, match="EvalConfig.sweep must be a SweepConfig or a dict"):
        EvalConfig(sweep="cloze")
    with pytest.raises(ConfigError, match=r"unknown EvalConfig.routing field\(s\) \['readout'\]"):
        EvalConfig(routing={"readout": "cloze"})
    with pytest.raises(TypeError):  # the parts are keywords only
        EvalConfig(DataConfig())
    # a setting is read through its part; the flat name says where
    with pytest.raises(AttributeError, match=r"config\.sweep\.readout"):
        EvalConfig().readout  # noqa: B018
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        EvalConfig().nothing  # noqa: B018


def test_replace_takes_settings_or_parts():
    cfg = EvalConfig(readout="cloze", n_test=10)
    other = cfg.replace(n_test=5, scoring="mean")
    assert other.data.n_test == 5 and other.sweep.scoring == "mean"
    assert other.sweep.readout == "cloze" and cfg.data.n_test == 10  # the rest kept, cfg kept
    assert cfg.replace(sweep=SweepConfig()).sweep.readout == "letter"
    assert cfg.replace(l2s={"hidden": 8}).l2s.hidden == 8
    assert dataclasses.replace(cfg, data=DataConfig(n_test=5)).data.n_test == 5
    # a setting by name beside its part changes that setting of the part (dataclasses.replace
    # passes every part, so this is what makes it work with settings by name)
    changed = dataclasses.replace(cfg, n_test=5)
    assert changed.data.n_test == 5 and changed.data.dataset == cfg.data.dataset
    assert changed == cfg.replace(n_test=5)
    over = cfg.replace(sweep=SweepConfig(readout="cloze", mirror=False), readout="letter")
    assert over.sweep.readout == "letter" and over.sweep.mirror is False
    with pytest.raises(ConfigError, match="unknown EvalConfig field"):
        cfg.replace(n_tests=5)
    with pytest.raises(ConfigError, match="EvalConfig.sweep.scoring and list_options"):
        cfg.replace(readout="letter", scoring="mean")  # the new part is checked as a whole


def test_dump_round_trip_nested_and_unknown_keys():
    cfg = EvalConfig(dataset="d", layers=(5, 2), variants=["base", "sys-neg"],
                     l2s=L2SConfig(hidden=64), readout="cloze", scoring="mean")
    assert cfg.sweep.layers == (2, 5) and cfg.data.variants == ("base", "sys-neg")
    dump = cfg.to_dict()
    assert list(dump) == list(choices.EVAL_PARTS)
    assert dump["l2s"]["hidden"] == 64 and dump["sweep"]["layers"] == [2, 5]
    assert dump["data"]["dataset"] == "d" and dump["sweep"]["readout"] == "cloze"
    assert json.loads(json.dumps(dump)) == dump  # plain JSON, readable with jq
    assert EvalConfig.from_dict(dump) == cfg
    assert EvalConfig.from_dict(json.loads(json.dumps(dump))) == cfg
    assert EvalConfig.from_dict({"sweep": {"readout": "cloze"}}) == EvalConfig(readout="cloze")
    with pytest.raises(ConfigError, match=r"unknown EvalConfig field\(s\) \['scale_name'\]"):
        EvalConfig.from_dict({**dump, "scale_name": "raw"})
    with pytest.raises(ConfigError, match=r"unknown EvalConfig.sweep field\(s\) \['x'\]"):
        EvalConfig.from_dict({**dump, "sweep": {**dump["sweep"], "x": 1}})
    with pytest.raises(ConfigError, match="statistics= and its setting"):
        EvalConfig.from_dict({**dump, "n_boot": 5})  # a nested dump with a flat key besides


def test_every_setting_is_in_the_dump_once():
    dump = EvalConfig().to_dict()
    for name, cls in PARTS.items():
        assert sorted(dump[name]) == sorted(f.name for f in dataclasses.fields(cls))
    assert sorted(flat_config(dump)) == sorted([*SETTING_PARTS, "l2s"])


def test_a_flat_dump_of_an_earlier_version_reads_as_today():
    """run.json written before the parts (one key per setting) rebuilds the same config."""
    flat = FLAT["flat"]
    cfg = EvalConfig.from_dict(flat)
    assert cfg == EvalConfig(**{k: tuple(v) if isinstance(v, list) else v
                                for k, v in flat.items()})
    assert cfg.sweep.readout == "cloze" and cfg.data.n_test == 200
    assert cfg.sweep.layers == (3, 7, 11, 15, 17, 19, 23)
    assert cfg.routing.router_inputs == ("question", "options", "question+options", "minilm")
    assert cfg.statistics.retest_max_items is None and cfg.l2s == L2SConfig()
    assert EvalConfig.from_dict(cfg.to_dict()) == cfg
    # flattening today's dump gives back the flat one, key for key and value for value
    assert flat_config(cfg.to_dict()) == flat
    # before 0.3: a length_norm bool, no router views, an absolute data_dir
    old = EvalConfig.from_dict(FLAT["before_0.3"])
    assert old.sweep.scoring == "sum" and old.routing.router_inputs == ("question",)
    assert old.data.data_dir == "/work/shared/data/mwe"


def test_flat_config_and_portable_config_read_both_forms():
    cfg = EvalConfig(dataset="/home/me/x/toy.jsonl", data_dir="/home/me/mwe", readout="cloze")
    nested, flat = cfg.to_dict(), flat_config(cfg.to_dict())
    assert flat["readout"] == "cloze" and flat["l2s"] == nested["l2s"]
    assert flat_config(flat) == flat and flat_config({**flat, "split": "train"})["split"] == "train"
    assert portable_config(nested)["data"]["data_dir"] is None
    assert portable_config(nested)["data"]["dataset"] == "toy.jsonl"
    assert portable_config(flat)["data_dir"] is None
    assert portable_config(flat)["dataset"] == "toy.jsonl"
    assert flat_config(portable_config(nested)) == portable_config(flat)
    assert nested["data"]["data_dir"] == "/home/me/mwe"  # the dump itself is left alone


def test_configs_copy_pickle_and_hash():
    cfg = EvalConfig(readout="cloze", layers=(1, 2))
    assert pickle.loads(pickle.dumps(cfg)) == cfg and copy.deepcopy(cfg) == cfg
    assert hash(cfg) == hash(EvalConfig(readout="cloze", layers=[2, 1]))


def test_scoring_router_inputs_and_older_dumps():
    cfg = EvalConfig(readout="cloze", scoring="first", list_options=True,
                     routers=("logreg", "knn"), router_inputs=("question", "options"))
    assert cfg.router_names == ("logreg", "knn", "logreg@options", "knn@options")
    assert cfg.primary_name == "logreg" and not cfg.length_norm
    assert EvalConfig(readout="cloze", scoring="mean").length_norm
    assert EvalConfig(router_inputs=("options",)).primary_name == "logreg@options"
    # a dump written before 0.3 had a length_norm bool and no views: read as today's fields
    old = flat_config(EvalConfig(readout="cloze").to_dict())
    for key in ("scoring", "list_options", "router_inputs"):
        old.pop(key)
    assert EvalConfig.from_dict({**old, "length_norm": True}) == \
        EvalConfig(readout="cloze", scoring="mean")
    with pytest.raises(ConfigError, match="cloze readout only"):
        EvalConfig(readout="letter", scoring="first")
    with pytest.raises(ConfigError, match="each once"):
        EvalConfig(router_inputs=("options", "options"))
    with pytest.raises(ConfigError, match="unknown router_input"):
        EvalConfig(router_inputs=("answers",))


def test_the_docstring_examples_run():
    import doctest

    import w2s_lens.evaluation.config as module

    failed, attempted = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert failed == 0 and attempted > 0
