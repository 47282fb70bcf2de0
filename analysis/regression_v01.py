"""Does the rebuilt pipeline reproduce w2s-lens 0.1's numbers under 0.1's settings?

Runs one dataset of the 0.1 table (default corrigible-neutral-HHH: 24 training and 12 test
items, split seed 0, all 24 layers, raw scale, from the last token) with the settings of 0.1:
its plain permutation split (no deduplication, no stratification), vectors on both letter
orders, test and training items in their original letter order only (no mirroring), in-sample
training labels (no cross-fitting), layer 0 included. Prints fixed / oracle / letter oracle /
W2S next to the 0.1 table row
(analysis/results/qwen2.5-coder-0.5b_v0.1-single-order-letter_table.md). The fixed layer, fixed,
oracle and letter oracle must match; W2S may differ because the router's
hyper-parameters are now chosen by log-loss instead of accuracy.

Usage:
    python analysis/regression_v01.py [--dataset NAME] [--data-dir DIR] [--threads 1]
"""

from __future__ import annotations

import argparse
import time
import warnings

warnings.filterwarnings("ignore")

#: 0.1's base-variant row per dataset: fixed layer, fixed, W2S, oracle, letter oracle
V01 = {
    "corrigible-neutral-HHH": (15, 0.421, 0.421, 0.424, 0.421),
    "myopic-reward": (15, 0.018, 0.045, 0.096, 0.081),
    "self-awareness-text-model": (15, 0.490, 0.458, 0.509, 0.505),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="corrigible-neutral-HHH", choices=sorted(V01))
    p.add_argument("--data-dir", default="../shared/data/mwe")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()

    import torch

    from w2s_lens.data.datasets import load_dataset
    from w2s_lens.data.prompts import PromptFormatter
    from w2s_lens.data.splits import balanced, train_test_split
    from w2s_lens.evaluation.config import EvalConfig
    from w2s_lens.evaluation.pipeline import evaluate_examples
    from w2s_lens.evaluation.split import SplitExamples
    from w2s_lens.models.loading import load_model

    torch.set_num_threads(args.threads)
    t0 = time.time()
    model = load_model(device="cpu")
    items = load_dataset(args.dataset, data_dir=args.data_dir)
    train, test = train_test_split(items, 0.5, 0, dedupe=False, stratify=False)
    train, test = train[:24], test[:12]
    fmt = PromptFormatter(model.tokenizer)
    exs = SplitExamples(fmt.format_many(balanced(train)), fmt.format_many(train),
                        {"base": fmt.format_many(test)})
    cfg = EvalConfig(dataset=args.dataset, variants=("base",), routers=("logreg",),
                     layers=tuple(range(model.cfg.n_layers)), mirror=False, cross_fit=0)
    res = evaluate_examples(model, exs, cfg, progress=False).to_dict()
    b = res["methods"]["caa"]["variants"]["base"]
    now = (b["fixed_layer"], b["fixed"]["steerability"], b["w2s"]["logreg"]["steerability"],
           b["oracle"]["steerability"], b["letter_oracle"]["steerability"])
    print(f"{args.dataset}: 24 train / 12 test items, seed 0, 0.1 settings, "
          f"{time.time() - t0:.0f} s")
    for name, old, new in zip(("fixed layer", "fixed", "W2S", "oracle", "letter oracle"),
                              V01[args.dataset], now):
        shown = new if isinstance(new, int) else round(new, 3)
        print(f"  {name:13} 0.1: {old:>7}   now: {shown:>7}")


if __name__ == "__main__":
    main()
