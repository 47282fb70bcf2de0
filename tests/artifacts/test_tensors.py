import pytest

from w2s_lens.artifacts.provenance import ArtifactMismatch
from w2s_lens.artifacts.tensors import load_tensors, save_tensors


def test_tensors_roundtrip_exactly_with_metadata(tmp_path):
    import numpy as np
    from safetensors import safe_open

    arrays = {"a": np.arange(6, dtype=np.int64).reshape(2, 3), "b": np.linspace(0, 1, 4)}
    p = save_tensors(tmp_path / "t.safetensors", arrays, metadata={"kind": "knn"})
    back = load_tensors(p, framework="np")
    assert all(np.array_equal(back[k], v) and back[k].dtype == v.dtype
               for k, v in arrays.items())
    with safe_open(str(p), framework="np") as f:
        assert f.metadata() == {"kind": "knn"}
    (tmp_path / "bad.safetensors").write_bytes(b"\x80\x04 not tensors")
    with pytest.raises(ArtifactMismatch, match="bad.safetensors"):
        load_tensors(tmp_path / "bad.safetensors", framework="np")
