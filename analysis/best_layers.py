"""Where the behaviour is encoded, per readout and method: best-layer counts over datasets.

Reads every finished evaluation (``results.json``) under the given run folders, as written by
``analysis/reproduce_table.py``, and prints, per (method, readout):

- each dataset's fixed layer, its training items' best-layer counts (cross-fitted labels), the
  share of training items at the most common layer, and the test oracle's gain over the fixed
  layer (an upper bound, biased upwards);
- for mirrored letter runs, what the single-order view of the same test items would have
  claimed: single-order W2S − fixed and letter oracle − fixed, next to the mirrored ones;
- the best-layer histogram summed over datasets.

Nothing is computed again; the numbers come from the runs' ``results.json``.

Usage:
    python analysis/best_layers.py runs/letter-caa-A runs/cloze-persona [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from w2s_lens.report.tables.cross_dataset import readout_label  # noqa: E402


def _results(folders: list[str]) -> list[dict[str, Any]]:
    found = []
    for folder in folders:
        for path in sorted(Path(folder).glob("*/results.json")):
            found.append(json.loads(path.read_text()))
    return found


def _f(x: float | None) -> str:
    return "   n/a" if x is None else f"{x:+.3f}"


def report(results: list[dict[str, Any]], primary: str = "logreg") -> str:
    """The text report for a list of loaded ``results.json`` dicts."""
    groups: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for res in results:
        for method, block in res["methods"].items():
            groups[(method, readout_label(res))].append((res["dataset"], block))
    lines = []
    for (method, readout), rows in sorted(groups.items()):
        total: Counter[int] = Counter()
        lines.append(f"== {method} · {readout} · {len(rows)} datasets ==")
        lines.append(f"{'dataset':<40} {'fixed L':>7} {'modal share':>11} {'oracle-fixed':>12}"
                     f" {'1-order W2S-fixed':>17} {'1-order letterOr-fixed':>22}"
                     "  training best layers")
        for name, block in sorted(rows):
            counts = Counter({int(k): int(v) for k, v in block["train_best_layer_counts"].items()})
            total.update(counts)
            base = block["variants"]["base"]
            share = max(counts.values()) / sum(counts.values())
            gain = base["oracle"]["steerability"] - base["fixed"]["steerability"]
            single = base.get("single_order")
            s_w2s = s_lo = None
            if single:
                s_fixed = single["fixed"]["steerability"]
                s_w2s = single["w2s"][primary]["steerability"] - s_fixed
                s_lo = single["letter_oracle"]["steerability"] - s_fixed
            hist = " ".join(f"{k}:{v}" for k, v in sorted(counts.items()))
            lines.append(f"{name[:40]:<40} {block['fixed_layer']:>7} {share:>11.2f} {_f(gain):>12}"
                         f" {_f(s_w2s):>17} {_f(s_lo):>22}  {hist}")
        n = sum(total.values())
        lines.append("summed over datasets: " + ", ".join(
            f"L{k} {v} ({v / n:.0%})" for k, v in sorted(total.items(), key=lambda kv: -kv[1])))
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", help="run folders of reproduce_table.py (--out)")
    p.add_argument("--out", help="also write the report to this file")
    args = p.parse_args(argv)
    text = report(_results(args.folders))
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
