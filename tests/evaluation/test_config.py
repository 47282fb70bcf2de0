"""EvalConfig: every field checked at construction, and run.json as its faithful dump."""

import dataclasses
import typing

import pytest

from w2s_lens import choices
from w2s_lens.evaluation.config import ConfigError, EvalConfig
from w2s_lens.steering.l2s.config import L2SConfig


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
    ("train_fraction", float("nan")),
])
def test_bad_values_name_the_field(field, value):
    with pytest.raises(ConfigError, match=field.rstrip("s") if field != "cross_fit" else field):
        EvalConfig(**{field: value})


def test_structural_rules():
    with pytest.raises(ConfigError, match="base"):
        EvalConfig(variants=("sys-pos",))
    with pytest.raises(ConfigError, match="primary_router"):
        EvalConfig(routers=("mlp",), primary_router="logreg")
    with pytest.raises(ConfigError, match="method='caa'"):
        EvalConfig(vectors="some/dir", method="l2s")


def test_defaults_are_letter_free_and_cross_fitted():
    cfg = EvalConfig()
    assert cfg.mirror and cfg.readout == "letter" and cfg.mirrored
    assert cfg.cross_fit == 5 and cfg.layers is None and cfg.methods == ("caa",)
    assert not EvalConfig(readout="cloze").mirrored  # mirroring is a letter-readout notion
    assert EvalConfig(method="both").methods == ("caa", "l2s")
    assert cfg.retest and cfg.retest_max_items == 64  # the headroom retest runs by default
    assert cfg.variants == ("base",)  # the OOD prompt variants only when asked (5x the sweeps)


def test_dump_round_trip_and_unknown_keys():
    cfg = EvalConfig(dataset="d", layers=(5, 2), variants=["base", "sys-neg"],
                     l2s=L2SConfig(hidden=64), readout="cloze", scoring="mean")
    assert cfg.layers == (2, 5) and cfg.variants == ("base", "sys-neg")
    dump = cfg.to_dict()
    assert dump["l2s"]["hidden"] == 64 and dump["layers"] == [2, 5]
    assert EvalConfig.from_dict(dump) == cfg
    with pytest.raises(ConfigError, match="unknown EvalConfig field"):
        EvalConfig.from_dict({**dump, "scale_name": "raw"})


def test_every_field_is_in_the_dump_once():
    names = [f.name for f in dataclasses.fields(EvalConfig)]
    assert sorted(EvalConfig().to_dict()) == sorted(names)
    assert len(names) == len(set(names))


def test_literals_follow_the_choices_module():
    hints = typing.get_type_hints(EvalConfig)
    for field, names in [("readout", choices.READOUTS), ("method", choices.METHODS),
                         ("engine", choices.ENGINES), ("scale", choices.SCALES),
                         ("embedding", choices.EMBEDDINGS), ("positions", choices.POSITIONS),
                         ("dtype", choices.DTYPES)]:
        assert typing.get_args(hints[field]) == names, field


def test_scoring_router_inputs_and_older_dumps():
    cfg = EvalConfig(readout="cloze", scoring="first", list_options=True,
                     routers=("logreg", "knn"), router_inputs=("question", "options"))
    assert cfg.router_names == ("logreg", "knn", "logreg@options", "knn@options")
    assert cfg.primary_name == "logreg" and not cfg.length_norm
    assert EvalConfig(readout="cloze", scoring="mean").length_norm
    assert EvalConfig(router_inputs=("options",)).primary_name == "logreg@options"
    # a dump written before 0.3 had a length_norm bool and no views: read as today's fields
    old = EvalConfig(readout="cloze").to_dict()
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
