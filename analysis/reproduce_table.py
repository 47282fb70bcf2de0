"""The paper's table on one model: fixed vs W2S vs oracle over the 13 shared datasets.

For each dataset in ``--data-dir`` (default ``$W2S_DATA_DIR`` or ``../shared/data/mwe``) this
runs the whole W2S evaluation (``w2s_lens.evaluation.evaluate``) for BASE and the four OOD
variants, each into ``OUT/<dataset>/``. It is resumable: a dataset with a ``results.json`` is
skipped, and an interrupted one resumes its sweeps from their chunks. At the end it writes
``OUT/table.md`` and ``OUT/table.csv``: per dataset and variant, fixed / W2S / oracle mean
steerability and steerable fraction, W2S − fixed with its bootstrap interval, plus the means
over datasets.

Usage:
    python analysis/reproduce_table.py --model qwen2.5-coder-0.5b-instruct \\
        --n-train 32 --n-test 16 --out runs/table
    python analysis/reproduce_table.py --out runs/table --table-only   # just re-tabulate
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore", category=DeprecationWarning)

from w2s_lens.datasets import DATASET_NAMES, load_dataset  # noqa: E402
from w2s_lens.metrics import verdict  # noqa: E402
from w2s_lens.prompts import VARIANTS  # noqa: E402

PAPER_NOTE = ("For orientation only: the W2S paper reports mean CAA steerability over its 13 "
              "datasets of 1.259 (best fixed layer) → 1.502 (W2S) on 7B–14B chat models; the "
              "model here is far smaller, so the numbers are not comparable.")


def default_data_dir() -> str:
    env = os.environ.get("W2S_DATA_DIR")
    if env:
        return env
    return str(Path(__file__).resolve().parents[2] / "shared" / "data" / "mwe")


def run_all(args: argparse.Namespace) -> None:
    from w2s_lens.evaluation import EvalConfig, evaluate
    from w2s_lens.models import load_model

    model = load_model(args.model)
    for name in args.datasets:
        out = Path(args.out) / name
        if (out / "results.json").exists():
            print(f"[skip] {name}: results.json exists")
            continue
        t0 = time.time()
        items = load_dataset(name, data_dir=args.data_dir)
        cfg = EvalConfig(dataset=name, variants=tuple(args.variants), n_train=args.n_train,
                         n_test=args.n_test, seed=args.seed, scale=args.scale,
                         positions=args.positions, n_boot=args.n_boot)
        res = evaluate(model, items, cfg, out_dir=out, progress=not args.quiet)
        base = res["variants"]["base"]
        print(f"[done] {name} in {time.time() - t0:.0f}s: fixed L{base['fixed_layer']} "
              f"{base['fixed']['steerability']:+.3f}, W2S "
              f"{base['w2s'][res['primary_router']]['steerability']:+.3f}, oracle "
              f"{base['oracle']['steerability']:+.3f}", flush=True)


def tabulate(out_dir: Path) -> list[dict]:
    rows = []
    for res_path in sorted(out_dir.glob("*/results.json")):
        res = json.loads(res_path.read_text())
        run = json.loads((res_path.parent / "run.json").read_text())
        primary = res["primary_router"]
        for variant, r in res["variants"].items():
            w = r["w2s"][primary]
            rows.append({
                "dataset": res["dataset"], "variant": variant, "n_test": r["n"],
                "fixed_layer": r["fixed_layer"],
                "fixed": r["fixed"]["steerability"], "w2s": w["steerability"],
                "oracle": r["oracle"]["steerability"],
                "letter_oracle": r["letter_oracle"]["steerability"],
                "fixed_frac": r["fixed"]["steerable_fraction"],
                "w2s_frac": w["steerable_fraction"],
                "oracle_frac": r["oracle"]["steerable_fraction"],
                "diff": w["diff_vs_fixed"], "diff_lo": w["diff_vs_fixed_ci"][0],
                "diff_hi": w["diff_vs_fixed_ci"][1], "router_acc": w["accuracy"],
                "verdict": verdict(w["diff_vs_fixed_ci"]),
                "wall_time_s": run.get("wall_time_s"),
            })
    return rows


def write_tables(rows: list[dict], out_dir: Path, meta: str) -> None:
    if not rows:
        print("no results yet")
        return
    with open(out_dir / "table.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lines = [meta, "",
             "| dataset | variant | fixed L | fixed | W2S | oracle | letter-oracle | "
             "frac fixed / W2S / oracle | W2S − fixed [95% CI] | router acc |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['variant']} | {r['fixed_layer']} | {r['fixed']:+.3f} | "
            f"{r['w2s']:+.3f} | {r['oracle']:+.3f} | {r['letter_oracle']:+.3f} | "
            f"{r['fixed_frac']:.2f} / {r['w2s_frac']:.2f} / {r['oracle_frac']:.2f} | "
            f"{r['diff']:+.3f} [{r['diff_lo']:+.3f}, {r['diff_hi']:+.3f}] | "
            f"{r['router_acc']:.2f} |")
    lines += ["", "Means over datasets:", "",
              "| variant | datasets | fixed | W2S | oracle | frac fixed / W2S / oracle | "
              "W2S beats fixed beyond the noise |", "|---|---|---|---|---|---|---|"]
    for v in VARIANTS:
        sub = [r for r in rows if r["variant"] == v]
        if not sub:
            continue

        def mean(key, sub=sub):
            return float(np.mean([r[key] for r in sub]))

        wins = sum(r["verdict"].startswith("W2S beats") for r in sub)
        worse = sum(r["verdict"].startswith("W2S is worse") for r in sub)
        lines.append(f"| {v} | {len(sub)} | {mean('fixed'):+.3f} | {mean('w2s'):+.3f} | "
                     f"{mean('oracle'):+.3f} | {mean('fixed_frac'):.2f} / "
                     f"{mean('w2s_frac'):.2f} / {mean('oracle_frac'):.2f} | {wins} of "
                     f"{len(sub)} (worse in {worse}) |")
    lines += ["", PAPER_NOTE, ""]
    (out_dir / "table.md").write_text("\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="qwen2.5-coder-0.5b-instruct")
    p.add_argument("--data-dir", default=default_data_dir())
    p.add_argument("--datasets", default=",".join(DATASET_NAMES),
                   help="comma-separated dataset names (default: the 13)")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--n-train", type=int, default=32)
    p.add_argument("--n-test", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", default="raw", choices=["raw", "relative"])
    p.add_argument("--positions", default="from_last", choices=["from_last", "all"])
    p.add_argument("--n-boot", type=int, default=2000)
    p.add_argument("--out", default="runs/table")
    p.add_argument("--table-only", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args()
    args.datasets = [d for d in args.datasets.split(",") if d]
    args.variants = [v for v in args.variants.split(",") if v]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if not args.table_only:
        run_all(args)
    meta = (f"Model {args.model}; n_train={args.n_train}, n_test={args.n_test} per dataset "
            f"(split seed {args.seed}); multipliers -1.5..1.5 ({args.scale} scale), steering "
            f"{args.positions}; router logreg on resid-last at the middle layer; 95% bootstrap "
            f"intervals over test inputs.")
    write_tables(tabulate(out), out, meta)
    print(f"total wall time {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
