import pytest

from w2s_lens.artifacts import (
    ArtifactMismatch,
    check_metadata,
    library_versions,
    load_tensors,
    read_json,
    save_tensors,
    write_json,
)


def test_check_metadata_names_both_values():
    check_metadata({"model": "m", "layers": [1, 2]}, {"model": "m", "layers": (1, 2)})
    check_metadata({"model": "m"}, {"model": None})
    with pytest.raises(ArtifactMismatch, match="model='m', but model='n'"):
        check_metadata({"model": "m"}, {"model": "n"}, what="vectors")


def test_json_roundtrip_and_missing(tmp_path):
    p = write_json(tmp_path / "a" / "b.json", {"x": [1, 2]})
    assert read_json(p) == {"x": [1, 2]}
    assert not list(tmp_path.glob("a/*.tmp"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_json(tmp_path / "nope.json")


def test_versions_recorded():
    v = library_versions()
    assert {"torch", "transformer-lens", "w2s-lens", "python"} <= set(v)


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


def test_no_pickle_primitives():
    """Nothing a user loads may run code: the module offers no pickle reader or writer."""
    import w2s_lens.artifacts as artifacts

    assert not [n for n in dir(artifacts) if "pickle" in n.lower()]
    assert "sha256_of" not in artifacts.__all__  # its home is w2s_lens.assets


def test_nan_never_reaches_a_json_file(tmp_path) -> None:
    import json as _json
    import math as _math

    import numpy as _np

    from w2s_lens.artifacts import write_json as _write_json

    path = tmp_path / "run.json"
    with pytest.warns(UserWarning, match=r"config\.multipliers\[0\], p not a finite number"):
        _write_json(path, {"config": {"multipliers": [float("nan"), 1.0]},
                           "p": _np.float32("inf"), "ok": _np.float64(0.5)})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    got = _json.loads(text)  # strict JSON
    assert got == {"config": {"multipliers": [None, 1.0]}, "p": None, "ok": 0.5}
    assert not any(isinstance(v, float) and not _math.isfinite(v) for v in got.values())


def test_missing_file_suggests_where_it_is(tmp_path, monkeypatch):
    import numpy as np

    # a run directory inside the one given (the demo's OUT/model), found from a stale path
    bundle = write_json(tmp_path / "demo" / "model" / "caa" / "routers" / "logreg" / "w2s.json",
                        {})
    with pytest.raises(FileNotFoundError) as err:
        read_json(tmp_path / "demo" / "routers" / "caa-logreg" / "w2s.json")
    assert str(err.value).endswith(f"does not exist; did you mean {bundle}?")
    with pytest.raises(FileNotFoundError, match=f"did you mean {bundle}"):
        read_json(tmp_path / "demo" / "w2s.json")  # below the folder given
    # a similarly named file beside it
    sweep = save_tensors(tmp_path / "s" / "sweep.safetensors", {"a": np.zeros(2)})
    with pytest.raises(FileNotFoundError, match=f"did you mean {sweep}"):
        load_tensors(tmp_path / "s" / "sweeps.safetensors")
    # nothing alike: no suggestion; and never a search through the whole working directory
    with pytest.raises(FileNotFoundError, match=r"other\.json does not exist$"):
        read_json(tmp_path / "s" / "other.json")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"does not exist$"):
        read_json("nowhere/at/all/w2s.json")
