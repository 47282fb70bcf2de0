import pytest

from w2s_lens.artifacts.provenance import (
    FORMAT_VERSION,
    ArtifactMismatch,
    check_format,
    check_metadata,
    library_versions,
    stamp,
)


def test_check_metadata_names_both_values():
    check_metadata({"model": "m", "layers": [1, 2]}, {"model": "m", "layers": (1, 2)})
    check_metadata({"model": "m"}, {"model": None})
    with pytest.raises(ArtifactMismatch, match="model='m', but model='n'"):
        check_metadata({"model": "m"}, {"model": "n"}, what="vectors")


def test_versions_recorded():
    v = library_versions()
    assert {"torch", "transformer-lens", "w2s-lens", "python"} <= set(v)


def test_stamp_and_check_format() -> None:
    meta = stamp({"model": "m", "versions": {"torch": "x"}})
    assert meta["format_version"] == FORMAT_VERSION and meta["versions"] == {"torch": "x"}
    check_format(meta, "v.json")
    with pytest.raises(ArtifactMismatch, match=r"v\.json has format_version 1; .*\(redo it\)"):
        check_format({"format_version": 1}, "v.json", "redo it")
