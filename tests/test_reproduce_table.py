"""``analysis/reproduce_table.py``: the run log it writes names no path of this machine."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_PATH = Path(__file__).resolve().parents[1] / "analysis" / "reproduce_table.py"
_spec = importlib.util.spec_from_file_location("reproduce_table", _PATH)
rt = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rt)


def test_portable_command_drops_local_paths() -> None:
    home = Path.home()
    command = [sys.executable, str(rt.ROOT / "analysis" / "reproduce_table.py"), "--out",
               str(home / "runs" / "x"), "--data-dir", "/srv/data/mwe", "--n-train", "200",
               "--layers", "3,7"]
    out = rt.portable_command(command)
    assert out[:2] == ["python", "analysis/reproduce_table.py"]
    assert out[3] == "~/runs/x" and out[7:] == ["200", "--layers", "3,7"]
    assert not Path(out[5]).is_absolute() and out[5].endswith("srv/data/mwe")
    assert not any(str(home) in a or str(rt.ROOT) in a for a in out)


def test_run_directories_are_logged_relative_to_the_log(tmp_path) -> None:
    assert rt._relative(tmp_path / "runs" / "a" / "a", tmp_path / "runs") == "a/a"
