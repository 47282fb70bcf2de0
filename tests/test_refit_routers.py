"""analysis/refit_routers.py without a model: which study folders it finds stale, and that
the table it writes again is the one the study wrote (on a committed row whose routers are
current). The refit itself: tests/evaluation/test_refit.py."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_PATH = ROOT / "analysis" / "refit_routers.py"
_spec = importlib.util.spec_from_file_location("refit_routers", _PATH)
rr = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rr)

CURRENT = ROOT / "analysis" / "results" / "fair" / "cloze-0.5b" / "myopic-reward"


def test_only_folders_with_a_stale_router_are_found(tmp_path: Path) -> None:
    for name in ("current", "stale"):
        shutil.copytree(CURRENT, tmp_path / "fair" / "row" / name)
    f = tmp_path / "fair" / "row" / "stale" / "results.json"
    res = json.loads(f.read_text())
    res["methods"]["caa"]["router_cv"]["mlp@options"]["grid"] = [100.0, 1.0, 0.01, 0.0001]
    f.write_text(json.dumps(res))
    assert rr.stale_folders((tmp_path / "fair",)) == [tmp_path / "fair" / "row" / "stale"]
    assert rr.stale_folders((tmp_path / "missing",)) == []


@pytest.mark.parametrize("suffix", ["md", "csv"])
def test_the_table_is_written_again_as_the_study_wrote_it(tmp_path: Path, suffix: str) -> None:
    folder = tmp_path / "row"
    shutil.copytree(CURRENT, folder)
    (folder / f"table.{suffix}").unlink()
    rr.write_table(folder)
    assert (folder / f"table.{suffix}").read_text() == (CURRENT / f"table.{suffix}").read_text()
