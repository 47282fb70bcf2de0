import pytest

from w2s_lens.steering.l2s.config import L2SConfig


@pytest.mark.parametrize("field,value", [
    ("hidden", 0), ("epochs", 0), ("batch_size", 0), ("patience", 0), ("lr", 0.0),
    ("weight_decay", -1.0), ("val_fraction", 1.0), ("val_fraction", -0.1),
    ("input_layer", -1), ("seed", 1.5), ("hidden", 2.5),
])
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f"L2SConfig.{field} must be"):
        L2SConfig(**{field: value})


def test_config_accepts_the_edges_and_rejects_bools():
    cfg = L2SConfig(input_layer=0, val_fraction=0.0, weight_decay=0.0, hidden=1)
    assert (cfg.input_layer, cfg.val_fraction, cfg.hidden) == (0, 0.0, 1)
    with pytest.raises(ValueError, match="L2SConfig.epochs must be an int >= 1, got True"):
        L2SConfig(epochs=True)
