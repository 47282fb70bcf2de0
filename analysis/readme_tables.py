"""Paste the generated result tables into the README, so that its numbers come from the files.

The README shows tables that scripts in ``analysis/`` build (``powered_table.py`` writes
``analysis/results/fair/powered_verdict.md``; ``ablation_study.py --table`` writes
``analysis/results/ablation/ablation_summary.md``). Each sits between two markers that name
its source file, relative to the repository root::

    <!-- verdict table: analysis/results/fair/powered_verdict.md -->
    | ... the table's lines ... |
    <!-- end verdict table -->

This script replaces what lies between every such pair by the table lines (those starting with
``|``) of the named file. With ``--check`` it writes nothing and exits 1 when a table in the
document differs from its source (the test suite runs the same check on the committed README).
A marker without its end, an end without its start, or a source file that does not exist is an
error naming the document and the marker.

Usage:
    python analysis/readme_tables.py             # update README.md
    python analysis/readme_tables.py --check     # exit 1 if README.md is out of date
    python analysis/readme_tables.py docs/results.md --check
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_START = re.compile(r"^<!-- (?P<name>[\w-]+) table: (?P<source>\S+) -->$")
_END = "<!-- end {name} table -->"


@dataclass(frozen=True)
class Block:
    """One marked table in a document: its name, its source file and where it lies."""

    name: str
    source: str
    start: int  # index of the start marker's line
    end: int  # index of the end marker's line


def blocks(lines: list[str], where: str = "document") -> list[Block]:
    """The marked tables of a document's lines, in order; raises ``ValueError`` naming the
    document and marker when a start marker has no end or an end marker no start."""
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = _START.match(lines[i])
        if m is None:
            if re.match(r"^<!-- end [\w-]+ table -->$", lines[i]):
                raise ValueError(f"{where}:{i + 1}: {lines[i]!r} has no start marker before it")
            i += 1
            continue
        end = _END.format(name=m["name"])
        try:
            j = lines.index(end, i + 1)
        except ValueError:
            raise ValueError(f"{where}:{i + 1}: {lines[i]!r} has no {end!r} after it") from None
        nested = [k for k in range(i + 1, j) if _START.match(lines[k])]
        if nested:
            raise ValueError(f"{where}:{nested[0] + 1}: a table marker inside the "
                             f"{m['name']!r} table")
        out.append(Block(m["name"], m["source"], i, j))
        i = j + 1
    return out


def table_lines(text: str) -> list[str]:
    """The lines of a Markdown file that belong to its table(s): those starting with ``|``."""
    return [line for line in text.splitlines() if line.startswith("|")]


def paste(document: str, root: Path = ROOT, where: str = "document") -> str:
    """``document`` with every marked table replaced by its source file's table lines."""
    lines = document.split("\n")
    out: list[str] = []
    pos = 0
    for b in blocks(lines, where):
        path = root / b.source
        if not path.is_file():
            raise ValueError(f"{where}:{b.start + 1}: the {b.name!r} table's source "
                             f"{b.source} does not exist under {root}")
        table = table_lines(path.read_text(encoding="utf-8"))
        if not table:
            raise ValueError(f"{where}:{b.start + 1}: {b.source} holds no table lines")
        out += lines[pos:b.start + 1] + table
        pos = b.end
    out += lines[pos:]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("documents", nargs="*", default=["README.md"],
                    help="Markdown files relative to the repository root (default: README.md)")
    ap.add_argument("--check", action="store_true",
                    help="write nothing; exit 1 if a document's tables differ from their sources")
    ap.add_argument("--root", type=Path, default=ROOT, help="the repository root")
    args = ap.parse_args(argv)
    stale = []
    for name in args.documents:
        path = args.root / name
        text = path.read_text(encoding="utf-8")
        new = paste(text, args.root, where=name)
        n = len(blocks(text.split("\n"), name))
        if new == text:
            print(f"{name}: {n} table(s) up to date")
        elif args.check:
            stale.append(name)
            print(f"{name}: out of date with its table sources; run "
                  f"python analysis/readme_tables.py {name}")
        else:
            path.write_text(new, encoding="utf-8")
            print(f"{name}: {n} table(s) written")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
