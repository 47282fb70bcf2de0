import pytest
import torch

from w2s_lens.steering.scales import layer_scales
from w2s_lens.steering.vectors import SteeringVectors


def _vecs(norms=(10.0, 20.0)):
    v = torch.zeros(2, 4)
    v[0, 0], v[1, 1] = 2.0, 5.0
    return SteeringVectors(v, [3, 7], metadata={"resid_norms": list(norms)})


def test_raw_is_one():
    assert layer_scales(_vecs(), "raw") == [1.0, 1.0]


def test_relative_makes_norm_a_fraction_of_residual():
    vecs = _vecs()
    scales = layer_scales(vecs, "relative", fraction=0.5)
    # |c_l v_l| = fraction * residual norm
    assert scales[0] * 2.0 == pytest.approx(5.0)
    assert scales[1] * 5.0 == pytest.approx(10.0)
    assert layer_scales(vecs, "relative", layers=[7], fraction=0.5) == [scales[1]]


def test_errors():
    with pytest.raises(ValueError, match="scale must be"):
        layer_scales(_vecs(), "log")
    bare = SteeringVectors(torch.ones(1, 4), [0])
    with pytest.raises(ValueError, match="no residual norms"):
        layer_scales(bare, "relative")
