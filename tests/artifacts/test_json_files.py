import pytest

from w2s_lens.artifacts.json_files import read_json, read_jsonl, write_json, write_jsonl
from w2s_lens.artifacts.provenance import ArtifactMismatch


def test_json_roundtrip_and_missing(tmp_path):
    p = write_json(tmp_path / "a" / "b.json", {"x": [1, 2]})
    assert read_json(p) == {"x": [1, 2]}
    assert not list(tmp_path.glob("a/*.tmp"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_json(tmp_path / "nope.json")


def test_nan_never_reaches_a_json_file(tmp_path) -> None:
    import json as _json
    import math as _math

    import numpy as _np

    path = tmp_path / "run.json"
    with pytest.warns(UserWarning, match=r"config\.multipliers\[0\], p not a finite number"):
        write_json(path, {"config": {"multipliers": [float("nan"), 1.0]},
                           "p": _np.float32("inf"), "ok": _np.float64(0.5)})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    got = _json.loads(text)  # strict JSON
    assert got == {"config": {"multipliers": [None, 1.0]}, "p": None, "ok": 0.5}
    assert not any(isinstance(v, float) and not _math.isfinite(v) for v in got.values())


def test_jsonl_roundtrip_and_broken_line_named(tmp_path) -> None:
    import numpy as np

    p = write_jsonl(tmp_path / "e.jsonl", [{"a": np.int64(1)}, {"b": [np.float32(0.5)]}])
    assert read_jsonl(p) == [{"a": 1}, {"b": [0.5]}]
    p.write_text('{"a": 1}\n\n{broken\n')
    with pytest.raises(ArtifactMismatch, match=r"e\.jsonl, line 3: invalid JSON"):
        read_jsonl(p)
    (tmp_path / "b.json").write_text("{")
    with pytest.raises(ArtifactMismatch, match=r"b\.json is not valid JSON"):
        read_json(tmp_path / "b.json")
