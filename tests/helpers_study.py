"""A fake powered-study folder for the study tests (test_study.py, test_plots_study.py,
test_study_report.py, test_powered_table.py), made of copies of the real headroom results in
``analysis/results/headroom`` (Qwen2.5-Coder-0.5B, corrigible-neutral-HHH, cloze 12 + 12 and
mirrored letter 24 + 24), some with their primary comparison edited."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

HEADROOM = Path(__file__).resolve().parents[1] / "analysis" / "results" / "headroom"
CLOZE = HEADROOM / "qwen2.5-coder-0.5b_cloze_corrigible-neutral-HHH_12items"
LETTER = HEADROOM / "qwen2.5-coder-0.5b_letter-mirrored_corrigible-neutral-HHH_24items"
MODEL = "qwen2.5-coder-0.5b-instruct"
BEATS = "W2S beats fixed beyond the noise"

#: cloze-0.5b: corrigible (real; too few informative items), myopic-reward (edited: beats at
#: p_beats), self-awareness-good-text-model (edited: no detectable difference at p = 0.6),
#: self-awareness-text-model (not run). letter-0.5b: corrigible (real, n_train edited to 20 of
#: 24 planned), self-awareness-text-model (not run).
PLAN = [
    {"name": "cloze-0.5b", "model": MODEL, "n_train": 12, "n_test": 12, "methods": ["caa"],
     "readout": "cloze", "datasets": ["corrigible-neutral-HHH", "myopic-reward",
                                      "self-awareness-good-text-model",
                                      "self-awareness-text-model"]},
    {"name": "letter-0.5b", "model": MODEL, "n_train": 24, "n_test": 24, "methods": ["caa"],
     "readout": "letter-mirrored",
     "datasets": ["corrigible-neutral-HHH", "self-awareness-text-model"]},
]


def load(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "results.json").read_text())


def edited(results: dict[str, Any], dataset: str, p: float, verdict: str, diff: float,
           ci: list[float], n_nonzero: int = 10) -> dict[str, Any]:
    """A copy of ``results`` renamed to ``dataset`` with the primary W2S − fixed replaced."""
    out = copy.deepcopy(results)
    out["dataset"] = dataset
    w = out["methods"]["caa"]["variants"]["base"]["w2s"][out["primary_router"]]
    w.update(diff_vs_fixed=diff, diff_vs_fixed_ci=ci, diff_vs_fixed_p=p,
             diff_vs_fixed_p_less=1 - p, diff_vs_fixed_n_nonzero=n_nonzero,
             diff_vs_fixed_verdict=verdict)
    return out


def _put(root: Path, row: str, results: dict[str, Any], log: Path | None = None) -> None:
    folder = root / row / results["dataset"]
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(results))
    if log is not None:
        shutil.copy2(log, folder / "run_log.json")


def build_root(root: Path, p_beats: float = 0.02) -> Path:
    """The folder :data:`PLAN` describes, under ``root``; returns ``root``."""
    cloze, letter = load(CLOZE), load(LETTER)
    _put(root, "cloze-0.5b", cloze, CLOZE / "run_log.json")
    _put(root, "cloze-0.5b", edited(cloze, "myopic-reward", p_beats, BEATS, 0.2, [0.05, 0.4]))
    _put(root, "cloze-0.5b", edited(cloze, "self-awareness-good-text-model", 0.6,
                                    "no detectable difference", -0.01, [-0.1, 0.08], 8))
    letter["n_train"] = 20
    _put(root, "letter-0.5b", letter)
    return root
