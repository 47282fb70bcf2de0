"""Is an item's best layer related to how long its answer options are? (exploratory, issue 31)

Under the summed cloze readout every option token's log-probability is steered and summed, so
a per-item best layer can follow the options' length. This reads the per-item files of the
fair study (``analysis/results/fair/<row>/<dataset>/items.csv``, written by the pipeline) and,
per row × dataset × method, on the BASE test items (sweep ``base``):

* ``spearman``: the rank correlation between each item's measured best layer and the total
  token count of its two options (matching + non-matching), with a 95% BCa bootstrap interval
  over items (``spearman_lo``, ``spearman_hi``; ``scipy.stats.bootstrap``) and a two-sided
  permutation p-value (``p``; ``scipy.stats.permutation_test``, pairings permuted);
* ``median_tokens_at_<layer>``: the median total option tokens of the items whose best layer
  it is (with ``n_at_<layer>``).

Nothing is refitted and no model is loaded; every number comes from the committed per-item
files. It is exploratory: it was run after the first cloze row had been seen, it tests one
feature of the options, and it says nothing about whether a router can use that feature (the
``options`` view's results do). Letter rows are listed too: their scored continuations are one
letter each, so the count is constant and the correlation undefined (written as empty).

Writes ``analysis/results/fair/option_length.csv`` and ``.md`` (``--root``/``--out`` to change
where it reads and writes) and prints the table.

Usage:
    python analysis/option_length.py
    python analysis/option_length.py --root analysis/results/fair --n-resamples 9999 --seed 0
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: the per-item file the pipeline writes beside each results.json
ITEMS = "items.csv"


def _spearman(best: np.ndarray, tokens: np.ndarray) -> float:
    """Spearman's rho; NaN (without a warning) for a resample in which one side is constant."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.stats.ConstantInputWarning)
        return float(scipy.stats.spearmanr(best, tokens).statistic)


def length_rows(items: pd.DataFrame, n_resamples: int = 9999, seed: int = 0) -> list[dict]:
    """One row per method: the best layer against the options' total token count on the
    BASE test items of one ``items.csv`` (see the module docstring)."""
    rows = []
    base = items[(items["split"] == "test") & (items["sweep"] == "base")]
    for method, part in base.groupby("method", sort=True):
        best = part["best_layer"].to_numpy(dtype=float)
        tokens = (part["matching_tokens"] + part["non_matching_tokens"]).to_numpy(dtype=float)
        row: dict = {"method": method, "n": len(part)}
        if len(part) < 3 or np.ptp(best) == 0 or np.ptp(tokens) == 0:
            row.update(spearman=None, spearman_lo=None, spearman_hi=None, p=None)
        else:
            ci = scipy.stats.bootstrap((best, tokens), _spearman, paired=True, vectorized=False,
                                       n_resamples=n_resamples, method="BCa",
                                       random_state=np.random.default_rng(seed))
            perm = scipy.stats.permutation_test((best, tokens), _spearman,
                                                permutation_type="pairings", vectorized=False,
                                                n_resamples=n_resamples, alternative="two-sided",
                                                random_state=np.random.default_rng(seed))
            row.update(spearman=_spearman(best, tokens),
                       spearman_lo=float(ci.confidence_interval.low),
                       spearman_hi=float(ci.confidence_interval.high), p=float(perm.pvalue))
        for layer in sorted(set(part["best_layer"].astype(int))):
            at = tokens[best == layer]
            row[f"n_at_{layer}"] = len(at)
            row[f"median_tokens_at_{layer}"] = float(np.median(at))
        rows.append(row)
    return rows


def collect(root: Path, n_resamples: int = 9999, seed: int = 0) -> pd.DataFrame:
    """Every ``<row>/<dataset>/items.csv`` under ``root``, one line per row × dataset × method
    (empty frame when there is none)."""
    out = []
    for path in sorted(root.glob(f"*/*/{ITEMS}")):
        items = pd.read_csv(path, dtype={"id": str})
        for r in length_rows(items, n_resamples, seed):
            out.append({"row": path.parent.parent.name, "dataset": path.parent.name, **r})
    return pd.DataFrame(out)


def _markdown(table: pd.DataFrame, n_resamples: int, seed: int, source: str = "") -> str:
    head = ("# Best layer against the options' length (exploratory)\n\n"
            f"Written by `analysis/option_length.py` from the per-item files under "
            f"`{source or 'analysis/results/fair'}`: per "
            "row and dataset, on the BASE test items, the Spearman correlation between each "
            "item's measured best layer and its two options' total token count, with a 95% BCa "
            f"bootstrap interval and a two-sided permutation p ({n_resamples} resamples, seed "
            f"{seed}). Run after the first fair cloze row had been seen; one feature of the "
            "options, not a router.\n\n")
    if table.empty:
        return head + "No per-item file found.\n"
    cols = ["row", "dataset", "method", "n", "spearman", "spearman_lo", "spearman_hi", "p"]
    lines = ["| " + " | ".join(cols + ["median option tokens by best layer (items)"]) + " |",
             "|" + "---|" * (len(cols) + 1)]
    for _, r in table.iterrows():
        cells = [str(r[c]) if c in ("row", "dataset", "method") else
                 str(int(r[c])) if c == "n" else
                 ("–" if pd.isna(r[c]) else f"{r[c]:.3g}" if c == "p" else f"{r[c]:+.2f}")
                 for c in cols]
        layers = sorted(int(c.rsplit("_", 1)[1]) for c in table.columns
                        if c.startswith("n_at_") and not pd.isna(r[c]))
        cells.append(", ".join(f"L{k}: {r[f'median_tokens_at_{k}']:g} ({int(r[f'n_at_{k}'])})"
                               for k in layers))
        lines.append("| " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=str(ROOT / "analysis" / "results" / "fair"),
                    help="folder of <row>/<dataset>/items.csv (default: %(default)s)")
    ap.add_argument("--out", default=None, help="folder for option_length.csv/.md "
                    "(default: --root)")
    ap.add_argument("--n-resamples", type=int, default=9999)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    t0 = time.time()
    root = Path(args.root)
    if not root.is_dir():
        ap.error(f"--root {root} is not a folder")
    table = collect(root, args.n_resamples, args.seed)
    out = Path(args.out) if args.out else root
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "option_length.csv", index=False)
    try:
        shown = root.resolve().relative_to(ROOT).as_posix()
    except ValueError:  # outside the repository: its name only, no local path
        shown = root.name
    text = _markdown(table, args.n_resamples, args.seed, shown)
    (out / "option_length.md").write_text(text, encoding="utf-8")
    print(text)
    print(f"wrote {out / 'option_length.csv'} and .md ({len(table)} lines); "
          f"{time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
