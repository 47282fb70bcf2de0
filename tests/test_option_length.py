"""analysis/option_length.py on per-item files written here: a best layer that follows the
options' length, one that does not, a constant length (letter rows), and the files it writes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats

_PATH = Path(__file__).resolve().parents[1] / "analysis" / "option_length.py"
_spec = importlib.util.spec_from_file_location("option_length", _PATH)
ol = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ol)


def _items(best: list[int], tokens: list[int], extra_sweep: bool = True) -> pd.DataFrame:
    n = len(best)
    rows = [{"method": "caa", "split": "test", "sweep": "base", "id": f"d:{i}",
             "matching_tokens": tokens[i], "non_matching_tokens": tokens[i] // 2,
             "best_layer": best[i]} for i in range(n)]
    if extra_sweep:  # other sweeps and the training items must not count
        rows += [{**r, "sweep": "retest-1", "best_layer": 3} for r in rows]
        rows += [{**r, "split": "train", "sweep": "train", "best_layer": 23} for r in rows[:n]]
    return pd.DataFrame(rows)


def test_a_best_layer_that_follows_length_is_found() -> None:
    rng = np.random.default_rng(0)
    tokens = rng.integers(5, 100, size=60)
    best = np.where(tokens > 50, 3, 19)  # long options, early layer
    [row] = ol.length_rows(_items(best.tolist(), tokens.tolist()), n_resamples=999)
    assert row["n"] == 60 and row["spearman"] < -0.8
    assert row["spearman_lo"] < row["spearman"] < row["spearman_hi"] < 0 and row["p"] < 0.01
    assert row["n_at_3"] + row["n_at_19"] == 60
    total = tokens + tokens // 2  # matching + non-matching, as _items writes them
    assert row["median_tokens_at_3"] == float(np.median(total[best == 3]))
    assert row["median_tokens_at_19"] == float(np.median(total[best == 19]))


def test_no_relation_reads_no_relation() -> None:
    rng = np.random.default_rng(1)
    tokens = rng.integers(5, 100, size=80)
    best = rng.choice([3, 11, 19], size=80)
    [row] = ol.length_rows(_items(best.tolist(), tokens.tolist()), n_resamples=999)
    assert abs(row["spearman"]) < 0.3 and row["p"] > 0.05
    assert row["spearman_lo"] < 0 < row["spearman_hi"]


def test_a_constant_length_leaves_the_correlation_empty() -> None:
    [row] = ol.length_rows(_items([15, 15, 9, 15], [2, 2, 2, 2]), n_resamples=99)
    assert row["spearman"] is None and row["p"] is None and row["n_at_9"] == 1


def test_main_writes_csv_and_markdown(tmp_path, capsys) -> None:
    root = tmp_path / "fair"
    cloze = ([3, 19, 19, 3, 19, 3] * 2, [90, 10, 12, 80, 8, 70, 91, 11, 13, 81, 9, 71])
    letter = ([15] * 6, [2] * 6)
    for row, ds, best, tok in [("cloze-0.5b", "a", *cloze), ("letter-0.5b", "a", *letter)]:
        (root / row / ds).mkdir(parents=True)
        _items(best, tok).to_csv(root / row / ds / "items.csv", index=False)
    assert ol.main(["--root", str(root), "--n-resamples", "99"]) == 0
    table = pd.read_csv(root / "option_length.csv")
    assert list(table["row"]) == ["cloze-0.5b", "letter-0.5b"]
    expect = scipy.stats.spearmanr(cloze[0], np.array(cloze[1]) * 3 // 2).statistic
    assert table.loc[0, "spearman"] == pytest.approx(expect) and expect < -0.8
    assert pd.isna(table.loc[1, "spearman"])
    md = (root / "option_length.md").read_text()
    assert f"| cloze-0.5b | a | caa | 12 | {expect:+.2f} |" in md
    assert "L3: 120.5 (6), L19: 15.5 (6)" in md and "| letter-0.5b | a | caa | 6 | – |" in md
    assert "per-item files under `fair`" in md  # the folder it read, no local path
    assert "wrote" in capsys.readouterr().out


def test_an_empty_folder_writes_an_empty_table(tmp_path) -> None:
    assert ol.main(["--root", str(tmp_path), "--n-resamples", "99"]) == 0
    assert "No per-item file found." in (tmp_path / "option_length.md").read_text()
