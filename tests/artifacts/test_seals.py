import json

import pytest

from w2s_lens.artifacts.json_files import read_json, write_json
from w2s_lens.artifacts.provenance import ArtifactMismatch
from w2s_lens.artifacts.seals import INTEGRITY_KEY, IntegrityWarning, check_seal, seal


def _sealed(tmp_path):
    (tmp_path / "w.bin").write_bytes(b"weights")
    path = write_json(tmp_path / "meta.json", seal({"model": "m", "x": [1.5]}, tmp_path,
                                                   ["w.bin"]))
    return path


def test_a_sealed_artifact_checks(tmp_path) -> None:
    path = _sealed(tmp_path)
    assert check_seal(read_json(path), path) is True


def test_an_edited_value_is_refused(tmp_path) -> None:
    path = _sealed(tmp_path)
    meta = read_json(path)
    meta["x"] = [2.5]
    with pytest.raises(ArtifactMismatch, match=r"meta\.json was changed after it was written"):
        check_seal(meta, path, redo="save it again")


def test_a_damaged_or_missing_file_is_refused_naming_it(tmp_path) -> None:
    path = _sealed(tmp_path)
    (tmp_path / "w.bin").write_bytes(b"weightz")
    with pytest.raises(ArtifactMismatch, match=r"w\.bin is damaged"):
        check_seal(read_json(path), path)
    (tmp_path / "w.bin").unlink()
    with pytest.raises(ArtifactMismatch, match=r"w\.bin is missing"):
        check_seal(read_json(path), path)


def test_a_file_outside_the_folder_is_refused(tmp_path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "w.bin").write_bytes(b"w")
    meta = seal({"model": "m"}, tmp_path / "sub", ["../w.bin"])
    with pytest.raises(ArtifactMismatch, match="outside its folder"):
        check_seal(meta, tmp_path / "sub" / "meta.json")


def test_an_unsealed_artifact_loads_with_a_warning(tmp_path) -> None:
    with pytest.warns(IntegrityWarning, match="records no digests"):
        assert check_seal({"model": "m"}, tmp_path / "old.json") is False


def test_the_seal_survives_a_json_round_trip(tmp_path) -> None:
    import numpy as np

    meta = seal({"v": np.float32(0.25), "a": np.arange(2)}, tmp_path)
    back = json.loads(json.dumps(meta))
    assert back[INTEGRITY_KEY]["files"] == {} and check_seal(back, tmp_path / "m.json")
