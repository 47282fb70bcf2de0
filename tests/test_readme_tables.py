"""analysis/readme_tables.py: marked tables are pasted from their sources, stale ones are
caught, broken markers are refused — and the committed README matches its committed tables."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("readme_tables",
                                               _ROOT / "analysis" / "readme_tables.py")
rt = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = rt  # the dataclass looks its module up
_spec.loader.exec_module(rt)

_SOURCE = "# title\n\nintro\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nfooter\n"


def _doc(body: str) -> str:
    return ("# Doc\n\ntext\n\n<!-- demo table: res/t.md -->\n" + body
            + "<!-- end demo table -->\n\nafter\n")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "t.md").write_text(_SOURCE)
    return tmp_path


def test_a_stale_table_is_replaced_and_the_rest_kept(root: Path) -> None:
    old = _doc("| a | b |\n|---|---|\n| 9 | 9 |\n| 8 | 8 |\n")
    new = rt.paste(old, root)
    assert new == _doc("| a | b |\n|---|---|\n| 1 | 2 |\n")
    assert rt.paste(new, root) == new  # idempotent


def test_an_empty_block_is_filled(root: Path) -> None:
    assert "| 1 | 2 |" in rt.paste(_doc(""), root)


def test_check_exits_1_on_a_stale_document_and_0_once_written(root: Path, capsys) -> None:
    (root / "README.md").write_text(_doc("| old |\n"))
    assert rt.main(["--root", str(root), "--check"]) == 1
    assert "out of date" in capsys.readouterr().out
    assert (root / "README.md").read_text() == _doc("| old |\n")  # --check writes nothing
    assert rt.main(["--root", str(root)]) == 0
    assert rt.main(["--root", str(root), "--check"]) == 0


@pytest.mark.parametrize("text, message", [
    ("<!-- demo table: res/t.md -->\n| x |\n", "has no '<!-- end demo table -->'"),
    ("| x |\n<!-- end demo table -->\n", "has no start marker"),
    ("<!-- demo table: res/none.md -->\n<!-- end demo table -->\n", "res/none.md does not exist"),
    ("<!-- demo table: res/t.md -->\n<!-- other table: res/t.md -->\n"
     "<!-- end other table -->\n<!-- end demo table -->\n", "inside the 'demo' table"),
])
def test_broken_markers_are_refused_naming_the_line(root: Path, text: str, message: str) -> None:
    with pytest.raises(ValueError, match="README.md:"):
        rt.paste("intro\n" + text, root, where="README.md")
    with pytest.raises(ValueError) as err:
        rt.paste("intro\n" + text, root, where="README.md")
    assert message in str(err.value)


def test_a_source_without_a_table_is_refused(root: Path) -> None:
    (root / "res" / "t.md").write_text("no table here\n")
    with pytest.raises(ValueError, match="holds no table lines"):
        rt.paste(_doc(""), root)


def test_the_committed_readme_shows_its_committed_tables() -> None:
    text = (_ROOT / "README.md").read_text(encoding="utf-8")
    found = rt.blocks(text.split("\n"), "README.md")
    assert {b.name for b in found} >= {"verdict", "ablation"}
    assert rt.paste(text, _ROOT, "README.md") == text, (
        "README.md is out of date with its result tables: run python analysis/readme_tables.py")
