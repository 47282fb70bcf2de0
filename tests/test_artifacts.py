import pytest

from w2s_lens.artifacts import (
    ArtifactMismatch,
    check_metadata,
    library_versions,
    read_json,
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
