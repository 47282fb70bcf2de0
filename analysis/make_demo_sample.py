"""Draw the demo's offline sample of corrigible-neutral-HHH (package data of w2s-lens).

Reads Anthropic's ``advanced-ai-risk/lm_generated_evals/corrigible-neutral-HHH.jsonl`` (from
anthropics/evals, CC-BY-4.0), keeps the records that parse as two-option A/B items, drops
duplicate questions (the first copy stays; w2s_lens.data.splits.deduplicate), draws ``--n``
of them with ``random.Random(--seed)``, and writes them in source order, each line exactly as
in the source file, to ``w2s_lens/data/samples/corrigible-neutral-HHH.sample<N>.jsonl``, with a
``README.md`` next to it (source, SHA-256, license, how it was drawn, the source line numbers).

Usage:
    python analysis/make_demo_sample.py \\
        /work/shared/data/mwe/advanced-ai-risk/lm_generated_evals/corrigible-neutral-HHH.jsonl
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import textwrap
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from w2s_lens.data.formats import read_ab_items  # noqa: E402
from w2s_lens.data.splits import deduplicate  # noqa: E402

NAME = "corrigible-neutral-HHH"
SOURCE = "advanced-ai-risk/lm_generated_evals/corrigible-neutral-HHH.jsonl"
OUT_DIR = Path(__file__).resolve().parent.parent / "w2s_lens" / "data" / "samples"

README = """# {file}

A sample of {n} items of Anthropic's model-written evaluation
**{name}**, shipped with w2s-lens so that `w2s-lens demo` can steer a model
offline. It is *not* the full dataset ({n_source} lines); load the full file with
`--data-dir` or `$W2S_DATA_DIR`.

- **Source**: `{source}`
  of <https://github.com/anthropics/evals>, the data of Perez et al.,
  "Discovering Language Model Behaviors with Model-Written Evaluations" (Anthropic, 2022,
  arXiv:2212.09251). Source file SHA-256:
  `{sha}`.
- **Author**: Anthropic. **License**: Creative Commons Attribution 4.0 International
  (CC-BY-4.0, <https://creativecommons.org/licenses/by/4.0/>), as the source. Changes: a
  subset of the lines was selected; each line is unchanged.
- **How it was drawn** (`analysis/make_demo_sample.py`, rerun it to redraw): the {n_parsed}
  records that parse as two-option A/B items, deduplicated by normalised question and option
  set ({n_unique} left, the first copy kept), {n} drawn with `random.Random({seed})` and
  written in source order. Matching answer (A) in {n_a} items, (B) in {n_b}.
- **Loaded as**: `load_dataset("{name}-sample")`; item ids are
  `{name}-sample:<0-based line in this file>`.
- **Source lines** (1-based):
{lines}.
"""


def draw(source: Path, n: int, seed: int) -> tuple[list[int], dict[str, object]]:
    """The 0-based source line indices of the sample, and the numbers the README states."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        items = read_ab_items(source, NAME)
        unique = deduplicate(items, warn=False)
    if len(unique) < n:
        raise SystemExit(f"{source}: only {len(unique)} distinct items, fewer than --n {n}")
    chosen = sorted(random.Random(seed).sample(unique, n), key=lambda it: int(it.id.split(":")[1]))
    lines = [int(it.id.split(":")[1]) for it in chosen]
    stats = {"n_parsed": len(items), "n_unique": len(unique),
             "n_a": sum(it.matching == "A" for it in chosen),
             "n_b": sum(it.matching == "B" for it in chosen)}
    return lines, stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", type=Path, help=f"the anthropics/evals file {SOURCE}")
    ap.add_argument("--n", type=int, default=100, help="items in the sample (default 100)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ap.add_argument("--out-dir", type=Path, default=OUT_DIR, help="where to write")
    args = ap.parse_args()
    raw = args.source.read_bytes()
    source_lines = raw.decode("utf-8").split("\n")
    indices, stats = draw(args.source, args.n, args.seed)
    name = f"{NAME}.sample{args.n}.jsonl"
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / name).write_text("".join(source_lines[i] + "\n" for i in indices),
                                     encoding="utf-8")
    (args.out_dir / "README.md").write_text(README.format(
        file=name, n=args.n, name=NAME, n_source=sum(1 for x in source_lines if x.strip()),
        source=SOURCE, sha=hashlib.sha256(raw).hexdigest(), seed=args.seed,
        lines=textwrap.fill(", ".join(str(i + 1) for i in indices), 92, initial_indent="  ",
                            subsequent_indent="  "), **stats), encoding="utf-8")
    print(f"wrote {args.out_dir / name} ({args.n} items: {stats})")


if __name__ == "__main__":
    main()
