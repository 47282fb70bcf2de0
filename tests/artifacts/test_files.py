import pytest

from w2s_lens.artifacts.files import atomic_path
from w2s_lens.artifacts.json_files import read_json, write_json
from w2s_lens.artifacts.tensors import load_tensors, save_tensors


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


def test_atomic_path_leaves_nothing_on_failure(tmp_path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
