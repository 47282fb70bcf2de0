"""JSON and JSON-lines files: strict JSON (no NaN), atomic writes, errors naming the file."""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from w2s_lens.artifacts.files import missing_file, write_text
from w2s_lens.artifacts.provenance import ArtifactMismatch

__all__ = ["finite_json", "json_default", "read_json", "read_jsonl", "write_json",
           "write_jsonl"]


def finite_json(obj: Any, where: str = "") -> tuple[Any, list[str]]:
    """``obj`` with every NaN or infinite float replaced by None, and the paths of those
    replaced (``"config.multipliers[0]"``): NaN and infinity are not JSON.

    Example:
        >>> finite_json({"a": [1.0, float("nan")], "b": {"c": float("inf")}})
        ({'a': [1.0, None], 'b': {'c': None}}, ['a[1]', 'b.c'])
    """
    bad: list[str] = []

    def walk(x: Any, at: str) -> Any:
        if getattr(x, "shape", None) == () and hasattr(x, "item"):  # a numpy scalar
            x = x.item()
        if isinstance(x, float) and not math.isfinite(x):
            bad.append(at or "(the value)")
            return None
        if isinstance(x, Mapping):
            return {k: walk(v, f"{at}.{k}" if at else str(k)) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [walk(v, f"{at}[{i}]") for i, v in enumerate(x)]
        if type(x).__name__ == "ndarray":
            return walk(x.tolist(), at)
        return x

    return walk(obj, where), bad


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically; a NaN or infinite number is written as
    ``null`` with a warning naming its key (NaN and infinity are not JSON)."""
    clean, bad = finite_json(obj)
    if bad:
        warnings.warn(f"{path}: {', '.join(bad[:5])}{' …' if len(bad) > 5 else ''} not a finite "
                      "number; written as null", stacklevel=2)
    return write_text(path, json.dumps(clean, indent=2, sort_keys=False, default=json_default,
                                       allow_nan=False) + "\n")


def json_default(obj: Any) -> Any:
    """The JSON form of a numpy scalar or array (its Python value or list) or a path (its
    string); ``json.dumps(..., default=json_default)``."""
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def read_json(path: str | os.PathLike) -> Any:
    """Read JSON, with a clear error naming the file if it is missing (and where it may be,
    :func:`~w2s_lens.artifacts.files.missing_file`) or broken."""
    path = Path(path)
    if not path.is_file():
        raise missing_file(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ArtifactMismatch(f"{path} is not valid JSON ({exc.msg}, line {exc.lineno})") \
            from exc


def write_jsonl(path: str | os.PathLike, records: Iterable[Mapping[str, Any]]) -> Path:
    """Write one JSON object per line, atomically."""
    lines = [json.dumps(finite_json(dict(r))[0], default=json_default, allow_nan=False)
             for r in records]
    return write_text(path, "".join(line + "\n" for line in lines))


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a JSON-lines file (blank lines skipped); errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise missing_file(path)
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ArtifactMismatch(f"{path}, line {lineno}: invalid JSON ({exc.msg})") \
                    from exc
    return out
