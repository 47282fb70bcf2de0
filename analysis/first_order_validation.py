"""First-order steerability against the sweep, on a finished study run directory (issue 34).

Given one finished evaluation run directory (``w2s-lens evaluate`` / ``reproduce_table.py`` /
``powered_study.py``; any readout, any layer grid), this recomputes the steerability of the
run's base test items by the first-order estimate (:func:`w2s_lens.sweep.first_order.
first_order`) with the run's own vectors, layers, layer scales, λ grid, positions and scoring
(the vectors are checked against the digest the test sweep recorded), and compares it with
the slopes the run measured. One row per dataset × readout × layer grid goes to
``analysis/results/first_order/validation.csv`` (a rerun replaces its rows):

* ``spearman_median`` (``_q25``, ``_q75``): per item, the Spearman correlation across layers
  of first-order and measured slopes (items with a constant curve left out);
* ``best_layer_agreement``: share of items whose first-order best layer is the measured one
  (``best_layer_chance``: its level from the two marginal distributions); beside it
  ``retest_agreement``: the same share between the run's two half-vector retest sweeps
  (``RUN/<method>/retest-1``, ``-2``), the measured best layer's own reproducibility under
  re-estimating the vector (``retest_n`` items; ``retest_same_items``: whether they are all
  the compared items). The two are not the same kind of agreement: first-order and measured
  slopes use the *same* vectors, so their agreement has no vector-estimation noise, while
  the retest compares vectors fitted on two halves of the training items. First-order
  agreement at or above the retest's therefore does not say that first-order labels are as
  good as measured ones, only how the estimate's error compares with that noise;
* ``first_order_choice``, ``fixed``, ``oracle``: mean measured slope at each item's
  first-order best layer, at the best fixed layer on these test items (in-sample, as
  ``w2s-lens advise --verify``), and at each item's measured best layer; ``gain`` =
  choice − fixed with a paired bootstrap interval (``gain_ci_lo``, ``gain_ci_hi``);
  ``gain_vs_train_fixed``: against the run's own fixed layer (chosen on training sweeps;
  empty for a grid other than the run's, where no fixed layer was chosen on training items).
  The interval holds the in-sample fixed layer fixed across resamples (its selection is not
  resampled; the point estimate is biased towards 0, the safe side for a claimed gain);
* the same for the curvature-corrected estimate (``_cubic``:
  :attr:`~w2s_lens.sweep.first_order_result.FirstOrderResult.cubic_slope`; its two end points are
  the measured sweep's own λ = min and max propensities, which ``first_order(...,
  curvature=True)`` recomputes bit for bit up to 1e-4 — tests/sweep/test_first_order.py —
  so no pass is spent on them; ``--compute-endpoints`` recomputes them);
  ``rel_gap_first_order`` / ``rel_gap_cubic``: mean |estimate − measured| / mean |measured|;
* per layer (``validation_layers.csv``) the mean first-order, cubic, label-free and measured
  slopes, and in the row their rank correlation ``layer_mean_spearman``;
* ``fo_fixed_layer_<k>`` / ``fo_fixed_matches_<k>``: the first-order fixed layer (best mean)
  from the first k = 24, 48, 96 test items (and all), and whether it is the measured fixed
  layer of all test items (empty where there are fewer items);
* ``label_free_agreement`` (and ``label_free_gain``): the label-free score's
  (:func:`~w2s_lens.sweep.label_free.label_free`, behaviour direction of the run's training
  pairs at the final residual) best layer against the measured one, beside
  ``router_accuracy``: the question-only router's (the run's primary kind) accuracy on the
  same items, from the run's ``routing.json`` (or ``results.json``).

``validation_items.csv.gz`` (gzip-compressed CSV; ``pandas.read_csv`` reads it as is) holds
the per-item numbers (one line per item × layer: measured,
first-order, cubic, label-free slopes), from which every row can be recomputed.

Options:

``--all-layers N``
    also sweep the first N base test items at every layer (1 … n_layers − 1, as ``evaluate``
    with no ``--layers``) with the toolkit's own sweep (:func:`~w2s_lens.sweep.runner.
    run_sweep`, resumable) and CAA vectors trained at every layer on the run's training
    pairs, into ``OUT/all_layers``; then the same comparison there (``layer_grid=all``; no
    retest or router there).
``--cheap-labels``
    first-order labels for every training item the dataset has after the run's split (not
    only the run's ``n_train``), with the run's CAA vectors (fitted on the run's training
    items: in-sample for those by 1/n_train, out of sample for the rest; the run's measured
    labels are cross-fitted); the run's primary router kind on the question view
    (:class:`~w2s_lens.routing.routers.LayerRouter`, as the pipeline fits it) is trained on
    (a) the run's measured labels, (b) first-order labels of the same items, (c) first-order
    labels of all training items, and each is scored by the measured test slopes of the items
    it routes, against the run's fixed layer (``cheap_labels.csv``; the row gets
    ``cheap_*`` columns).

Everything computed is cached under ``OUT`` (default ``$W2S_RUNS_DIR/first_order/...`` or
``~/.local/share/w2s-lens/runs/first_order/<the run's path under the runs folder>``, outside
the work tree): first-order chunks, the behaviour direction, the all-layer vectors and sweep,
so an interrupted run resumes. Prints wall and CPU time per stage, sizes and seeds. What each
cached thing cost to *compute* is kept beside it (``OUT/costs.json``, :class:`CostLedger`), so
the rows' cost columns (``first_order_cpu_s``, ``label_free_cpu_s``, on the ``all`` grid
``sweep_cpu_s`` and ``sweep_over_first_order_cpu``, with ``--cheap-labels``
``cheap_first_order_cpu_s``) hold the cost of making the numbers even when a rerun reads them
back; ``wall_s`` and ``cpu_s`` are the invocation's own.

Usage:
    python analysis/first_order_validation.py \\
        ~/.local/share/w2s-lens/runs/powered/cloze-0.5b/corrigible-neutral-HHH/corrigible-neutral-HHH
    python analysis/first_order_validation.py RUN --all-layers 96 --cheap-labels --threads 1
    # while RUN's base test sweep is still running: cache the parts that do not need it
    python analysis/first_order_validation.py RUN --prepare --all-layers 96 --cheap-labels
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

warnings.filterwarnings("ignore", category=DeprecationWarning)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy.stats  # noqa: E402
import torch  # noqa: E402

from w2s_lens.artifacts.json_files import read_json, write_json  # noqa: E402
from w2s_lens.artifacts.tensors import load_tensors, save_tensors  # noqa: E402
from w2s_lens.choices import Embedding  # noqa: E402
from w2s_lens.evaluation.config import EvalConfig  # noqa: E402
from w2s_lens.evaluation.config_parts import ConfigError  # noqa: E402
from w2s_lens.evaluation.headroom.diagnostics import retest_agreement  # noqa: E402
from w2s_lens.evaluation.stats.bootstrap import paired_diff_ci  # noqa: E402
from w2s_lens.evaluation.storage.rundir import RETEST_PREFIX, RunDir  # noqa: E402
from w2s_lens.report.tables.cross_dataset import readout_label  # noqa: E402
from w2s_lens.routing.embeddings import default_layer, embed_examples, embedding_name  # noqa: E402
from w2s_lens.routing.routers import LayerRouter  # noqa: E402
from w2s_lens.steering.scales import layer_scales  # noqa: E402
from w2s_lens.steering.vectors import SteeringVectors, model_name, train_caa  # noqa: E402
from w2s_lens.sweep.chunks import ChunkStore, short_digest  # noqa: E402
from w2s_lens.sweep.first_order import first_order  # noqa: E402
from w2s_lens.sweep.first_order_result import cubic_slope  # noqa: E402
from w2s_lens.sweep.label_free import behaviour_direction, label_free  # noqa: E402
from w2s_lens.sweep.runner import run_sweep, steer_vectors, sweep_config_scoring  # noqa: E402

log = logging.getLogger("first_order_validation")

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "analysis" / "results" / "first_order"
SUMMARY_FILE, ITEMS_FILE, LAYERS_FILE, CHEAP_FILE = (
    "validation.csv", "validation_items.csv.gz", "validation_layers.csv", "cheap_labels.csv")
#: columns identifying one row (a rerun replaces the rows with the same key)
KEY = ["model", "dataset", "readout", "method", "layer_grid"]
#: first-order fixed layer from the first k test items
FIXED_SIZES = (24, 48, 96)
#: units per cached first-order chunk
CHUNK_UNITS = 8
#: bumped when the cached estimates' code changes, so older chunks are not read back
CACHE_VERSION = 2


def runs_root() -> Path:
    """``$W2S_RUNS_DIR``, else ``~/.local/share/w2s-lens/runs`` (as analysis/powered_study.py)."""
    env = os.environ.get("W2S_RUNS_DIR")
    return Path(env) if env else Path.home() / ".local" / "share" / "w2s-lens" / "runs"


def default_out(run: Path) -> Path:
    """``<runs>/first_order/<the run's path under <runs>>``, else ``.../first_order/<name>``."""
    root = runs_root()
    run = run.resolve()
    rel = run.relative_to(root.resolve()) if run.is_relative_to(root.resolve()) else Path(run.name)
    return root / "first_order" / rel


def run_model_name(cfg: EvalConfig, derived: dict[str, Any], results: dict[str, Any]) -> str:
    """The model a run used: its config's, else the one ``run.json`` recorded as loaded (a run
    on the default model leaves ``EvalConfig.compute.model`` unset), else ``results.json``'s.

    Example:
        >>> run_model_name(EvalConfig(), {"model": "qwen2.5-coder-0.5b-instruct"}, {})
        'qwen2.5-coder-0.5b-instruct'
    """
    name = cfg.compute.model or derived.get("model") or results.get("model")
    if not name:
        raise SystemExit("the run records no model name (run.json config and derived parts)")
    return str(name)


def shown_run(run: Path) -> str:
    """The run directory as the results files name it, without this machine's paths: relative
    to the runs root (``<runs>/...``), else to the home folder (``~/...``), else its name.

    Example:
        >>> shown_run(runs_root() / "powered" / "cloze-0.5b" / "d" / "d")
        '<runs>/powered/cloze-0.5b/d/d'
    """
    run, root, home = run.resolve(), runs_root().resolve(), Path.home().resolve()
    if run.is_relative_to(root):
        return str(Path("<runs>") / run.relative_to(root))
    if run.is_relative_to(home):
        return str(Path("~") / run.relative_to(home))
    return run.name


def find_run(path: Path) -> Path:
    """``path`` itself when it holds ``run.json``, else its one sub-folder that does (the
    study's ``OUT/<dataset>/<dataset>`` layout)."""
    if (path / "run.json").is_file():
        return path
    inner = [p for p in sorted(path.iterdir()) if (p / "run.json").is_file()] \
        if path.is_dir() else []
    if len(inner) != 1:
        raise SystemExit(f"{path} holds no run.json (nor exactly one sub-folder with one)")
    return inner[0]


# --------------------------------------------------------------------------- small pieces


class Clock:
    """Wall and CPU seconds per stage, printed as they finish."""

    def __init__(self) -> None:
        self.stages: dict[str, dict[str, float]] = {}
        self.t0 = time.perf_counter()

    def __call__(self, name: str, fn: Callable[[], Any]) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn()
        rec = {"wall_s": round(time.perf_counter() - wall, 2),
               "cpu_s": round(time.process_time() - cpu, 2)}
        self.stages[name] = rec
        print(f"[time] {name}: wall {rec['wall_s']:.1f} s, cpu {rec['cpu_s']:.1f} s", flush=True)
        return out

    @property
    def total(self) -> float:
        return round(time.perf_counter() - self.t0, 1)


class CostLedger:
    """Seconds spent *computing* each cached thing, kept beside the cache (``OUT/costs.json``),
    so that a rerun which reads everything back still reports what it cost to make.

    Each computed chunk adds its wall and CPU seconds under its stage name as soon as it is
    done; a run killed mid-chunk loses only that chunk's seconds (the chunk is computed, and
    counted, again). First-order and label-free chunks read back from the cache add nothing;
    the all-layer sweep, timed as one call, adds the seconds of resuming from its chunks (a
    read-back: seconds, not the sweep's cost). The behaviour direction and the all-layer
    vectors are one-off and not counted.

    Example:
        >>> import tempfile
        >>> led = CostLedger(Path(tempfile.mkdtemp()))
        >>> led.add("first_order:study", 2.0, 1.5); led.add("first_order:study", 1.0, 0.5)
        >>> led.get("first_order:study")
        {'wall_s': 3.0, 'cpu_s': 2.0}
        >>> CostLedger(led.path.parent).get("nothing")
        {'wall_s': 0.0, 'cpu_s': 0.0}
    """

    def __init__(self, out: Path) -> None:
        self.path = Path(out) / "costs.json"

    def _read(self) -> dict[str, dict[str, float]]:
        return read_json(self.path) if self.path.is_file() else {}

    def add(self, stage: str, wall_s: float, cpu_s: float) -> None:
        book = self._read()
        old = book.get(stage, {"wall_s": 0.0, "cpu_s": 0.0})
        book[stage] = {"wall_s": round(old["wall_s"] + wall_s, 2),
                       "cpu_s": round(old["cpu_s"] + cpu_s, 2)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.path, book)

    def get(self, stage: str) -> dict[str, float]:
        return dict(self._read().get(stage, {"wall_s": 0.0, "cpu_s": 0.0}))

    def timed(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` wrapped so that each call adds its seconds under ``stage``."""
        def run(*args: Any, **kwargs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.process_time()
            out = fn(*args, **kwargs)
            self.add(stage, time.perf_counter() - wall, time.process_time() - cpu)
            return out
        return run


def unit_mean(units: Sequence[str], x: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Rows averaged per unit, units in first-seen order (a sweep's mirrored view)."""
    order: dict[str, list[int]] = {}
    for i, u in enumerate(units):
        order.setdefault(u, []).append(i)
    return list(order), np.stack([np.asarray(x)[r].mean(axis=0) for r in order.values()])


def unit_ranges(units: Sequence[str], per: int) -> list[tuple[int, int]]:
    """Example ranges of ``per`` whole units each."""
    out, lo, seen = [], 0, 0
    for i in range(1, len(units) + 1):
        if i == len(units) or units[i] != units[i - 1]:
            seen += 1
            if seen == per or i == len(units):
                out.append((lo, i))
                lo, seen = i, 0
    return out


def cached_rows(where: Path, key: dict[str, Any], units: Sequence[str], n_cols: int,
                compute: Callable[[int, int], tuple[np.ndarray, np.ndarray]]
                ) -> tuple[np.ndarray, np.ndarray]:
    """``(gradient [n, L], propensity [n])`` chunk by chunk, read back when cached (checked
    chunks, :class:`~w2s_lens.sweep.chunks.ChunkStore`) or computed and stored."""
    store = ChunkStore(where, key)
    grads, props = [], []
    for lo, hi in unit_ranges(units, CHUNK_UNITS):
        spec = {"gradient": ((hi - lo, n_cols), "float64"), "propensity": ((hi - lo,), "float64")}
        got = store.load(lo, hi, spec)
        if got is None:
            g, p = compute(lo, hi)
            got = {"gradient": np.asarray(g, dtype=np.float64),
                   "propensity": np.asarray(p, dtype=np.float64)}
            store.save(lo, hi, got)
        grads.append(got["gradient"])
        props.append(got["propensity"])
    return np.concatenate(grads), np.concatenate(props)


def spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-row Spearman ρ (NaN where either row is constant)."""
    return np.array([scipy.stats.spearmanr(x, y).statistic if np.ptp(x) > 0 and np.ptp(y) > 0
                     else np.nan for x, y in zip(a, b)], dtype=float)


def choice_stats(est: np.ndarray, m: np.ndarray, prefix: str, n_boot: int, seed: int,
                 train_fixed: int | None) -> dict[str, Any]:
    """Agreement, rank correlation and the measured slope of ``est``'s per-item choice."""
    rows = np.arange(len(m))
    rho = spearman_rows(est, m)
    ok = rho[~np.isnan(rho)]
    agree = retest_agreement(est, m)
    choice = m[rows, est.argmax(axis=1)]
    mfix = int(m.mean(axis=0).argmax())
    lo, hi = paired_diff_ci(choice, m[:, mfix], n_boot=n_boot, seed=seed)
    out = {
        f"spearman_median{prefix}": float(np.median(ok)) if ok.size else np.nan,
        f"spearman_q25{prefix}": float(np.quantile(ok, 0.25)) if ok.size else np.nan,
        f"spearman_q75{prefix}": float(np.quantile(ok, 0.75)) if ok.size else np.nan,
        f"best_layer_agreement{prefix}": agree["agreement"],
        f"best_layer_chance{prefix}": agree["chance"],
        f"choice{prefix}": float(choice.mean()),
        f"gain{prefix}": float((choice - m[:, mfix]).mean()),
        f"gain{prefix}_ci_lo": lo, f"gain{prefix}_ci_hi": hi,
        f"rel_gap{prefix}": float(np.abs(est - m).mean() / max(np.abs(m).mean(), 1e-12)),
    }
    if train_fixed is not None:
        out[f"gain{prefix}_vs_train_fixed"] = float((choice - m[:, train_fixed]).mean())
    return out


def compare(m: np.ndarray, fo: np.ndarray, cubic: np.ndarray | None, lf: np.ndarray | None,
            layers: Sequence[int], n_boot: int, seed: int,
            train_fixed_layer: int | None) -> dict[str, Any]:
    """The row's numbers for one layer grid (measured ``m`` and estimates, ``[n, L]`` each)."""
    layers = [int(x) for x in layers]
    tf = layers.index(train_fixed_layer) if train_fixed_layer in layers else None
    mfix = int(m.mean(axis=0).argmax())
    row: dict[str, Any] = {
        "n_items": len(m), "layers": " ".join(map(str, layers)),
        "measured_fixed_layer": layers[mfix], "train_fixed_layer": train_fixed_layer,
        "fixed": float(m[:, mfix].mean()), "oracle": float(m.max(axis=1).mean()),
    }
    fo_stats = choice_stats(fo, m, "", n_boot, seed, tf)
    row.update({"spearman_median": fo_stats.pop("spearman_median"),
                "spearman_q25": fo_stats.pop("spearman_q25"),
                "spearman_q75": fo_stats.pop("spearman_q75"),
                "best_layer_agreement": fo_stats.pop("best_layer_agreement"),
                "best_layer_chance": fo_stats.pop("best_layer_chance"),
                "first_order_choice": fo_stats.pop("choice"),
                "rel_gap_first_order": fo_stats.pop("rel_gap"), **fo_stats})
    if tf is not None:
        row["fixed_train"] = float(m[:, tf].mean())
    fo_mean, m_mean = fo.mean(axis=0), m.mean(axis=0)
    row["layer_mean_spearman"] = (float(scipy.stats.spearmanr(fo_mean, m_mean).statistic)
                                  if np.ptp(fo_mean) > 0 and np.ptp(m_mean) > 0 else np.nan)
    for k in (*FIXED_SIZES, None):
        name = "all" if k is None else str(k)
        if k is not None and len(m) < k:
            row[f"fo_fixed_layer_{name}"], row[f"fo_fixed_matches_{name}"] = None, None
            continue
        layer = layers[int(fo[:k].mean(axis=0).argmax())]
        row[f"fo_fixed_layer_{name}"] = layer
        row[f"fo_fixed_matches_{name}"] = bool(layer == layers[mfix])
    if cubic is not None:
        c = choice_stats(cubic, m, "_cubic", n_boot, seed, tf)
        c["cubic_choice"] = c.pop("choice_cubic")
        row.update(c)
    if lf is not None:
        rows = np.arange(len(m))
        agree = retest_agreement(lf, m)
        choice = m[rows, lf.argmax(axis=1)]
        row.update({"label_free_agreement": agree["agreement"],
                    "label_free_chance": agree["chance"],
                    "label_free_choice": float(choice.mean()),
                    "label_free_gain": float((choice - m[:, mfix]).mean()),
                    "label_free_spearman_median": float(np.nanmedian(spearman_rows(lf, m)))
                    if np.any(~np.isnan(spearman_rows(lf, m))) else np.nan})
    return row


def replace_rows(path: Path, new: pd.DataFrame, key: Sequence[str]) -> pd.DataFrame:
    """``path``'s rows without those sharing ``new``'s keys, then ``new``; written back.
    A replaced row keeps its values in columns ``new`` does not have at all (e.g. the
    ``cheap_*`` columns of a row rerun without ``--cheap-labels``), but only when both rows
    name the same run directory (``run_dir``): another run's numbers are never carried over."""
    path.parent.mkdir(parents=True, exist_ok=True)
    key = list(key)
    if path.is_file() and path.stat().st_size > 0:
        old = pd.read_csv(path)
        if all(k in old.columns for k in key):
            old_keys = [tuple(r) for r in old[key].astype(str).to_numpy()]
            new_keys = [tuple(r) for r in new[key].astype(str).to_numpy()]
            kept = [c for c in old.columns if c not in new.columns]
            same_run = "run_dir" in old.columns and "run_dir" in new.columns
            carry = key + (["run_dir"] if same_run else [])
            if kept:
                carry_old = [tuple(r) for r in old[carry].astype(str).to_numpy()]
                carry_new = [tuple(r) for r in new[carry].astype(str).to_numpy()]
                by_key = dict(zip(carry_old, old[kept].to_dict("records")))
                extra = pd.DataFrame([by_key.get(k, {}) for k in carry_new],
                                     columns=kept, index=new.index)
                new = pd.concat([new, extra], axis=1)
            old = old[[k not in set(new_keys) for k in old_keys]]
        new = pd.concat([old, new], ignore_index=True)
    tmp = path.with_name(f".{path.name}.tmp")
    # the temporary name hides the suffix: compress by the real one (no timestamp in the bytes)
    gz = {"method": "gzip", "mtime": 0} if path.suffix == ".gz" else None
    new.to_csv(tmp, index=False, compression=gz)
    os.replace(tmp, path)
    return new


def item_frame(ids: Sequence[str], layers: Sequence[int], **cols: np.ndarray | None
               ) -> pd.DataFrame:
    """One line per item × layer with each given ``[n, L]`` array as a column."""
    n, n_layers = len(ids), len(layers)
    df = pd.DataFrame({"item": np.repeat(list(ids), n_layers),
                       "layer": np.tile([int(x) for x in layers], n)})
    for name, a in cols.items():
        df[name] = np.asarray(a, dtype=float).reshape(-1) if a is not None else np.nan
    return df


# --------------------------------------------------------------------------- the run


class Validation:
    """Everything read from one run directory and computed on it (see the module docstring)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.run = find_run(Path(args.run).expanduser())
        self.rd = RunDir(self.run)
        meta = self.rd.read_run()
        if meta.get("kind") != "evaluation":
            raise SystemExit(f"{self.run} is not an evaluation run directory")
        self.cfg = EvalConfig.from_dict(meta["config"])
        self.derived = meta.get("derived") or {}
        self.method = args.method
        if self.method != "caa":
            raise SystemExit("--method l2s is not supported yet (per-input L2S test vectors "
                             "would have to be re-predicted); use caa")
        self.out = Path(args.out).expanduser() if args.out else default_out(self.run)
        if self.out.resolve().is_relative_to(REPO):
            log.warning("--out %s is inside the work tree", self.out)
        self.results_dir = Path(args.results_dir)
        self.results = self.rd.read_results() if (self.run / "results.json").is_file() else {}
        base = self.rd.sweep_dir("base", self.method)
        self.sweep, self.test_exs = None, None
        if (base / "sweep.json").is_file():
            self.sweep, self.test_exs = self.rd.load_sweep(base)
        elif not args.prepare:
            raise SystemExit(f"{base} holds no finished base test sweep: the run is not "
                             "finished far enough (--prepare computes what does not need it)")
        self.readout = readout_label({"readout": self.cfg.sweep.readout,
                                      "mirror": self.cfg.mirrored,
                                      "length_norm": self.cfg.length_norm})
        self.clock = Clock()
        self.costs = CostLedger(self.out)
        self.model = None

    # ---------------------------------------------------------------- model and inputs
    def load(self) -> None:
        from w2s_lens.evaluation.split import load_items, prepare_examples
        from w2s_lens.models.loading import load_model

        cfg = self.cfg
        device = self.args.device or cfg.compute.device
        name = run_model_name(cfg, self.derived, self.results)
        self.model = self.clock("load model", lambda: load_model(name, device=device,
                                                                 dtype=cfg.compute.dtype))
        self.name = model_name(self.model)
        self.vectors = SteeringVectors.load(self.rd.vectors_dir(self.method), model=self.model)
        items, test_items = load_items(self.items_config())
        self.split = prepare_examples(self.model, items, cfg, test_items)
        self.items, self.test_items = items, test_items
        if self.sweep is None:  # --prepare before the base test sweep: the run's settings
            self.layers = (list(cfg.sweep.layers) if cfg.sweep.layers is not None
                           else list(range(1, self.model.cfg.n_layers)))
            self.scales = [float(x) for x in layer_scales(self.vectors, cfg.sweep.scale,
                                                          self.layers,
                                                          fraction=cfg.sweep.fraction)]
            self.scoring = cfg.sweep.scoring
            self.positions = cfg.sweep.positions
            self.mults = list(cfg.sweep.multipliers)
            self.test_exs = self.split.test["base"]
            return
        meta = self.sweep.metadata
        self.layers = list(self.sweep.layers)
        self.scales = [float(x) for x in meta["layer_scale"]]
        self.scoring = sweep_config_scoring(meta)
        self.positions = meta["positions"]
        self.mults = list(self.sweep.multipliers)
        steer = steer_vectors(self.vectors, self.layers, self.scales, 1)
        if meta.get("vectors_digest") not in (None, short_digest(steer[0])):
            raise SystemExit(f"the vectors in {self.rd.vectors_dir(self.method)} are not the "
                             "ones the base test sweep was steered with (digest differs)")
        if [ex.id for ex in self.split.test["base"]] != [ex.id for ex in self.test_exs]:
            raise SystemExit("the run's split could not be reproduced: its test items differ "
                             "from the stored base sweep's")

    def items_config(self) -> EvalConfig:
        """The run's settings pointing at its items: ``--dataset-file`` / ``--data-dir`` when
        given (run.json names no local path: a dataset file is recorded by its name, an
        absolute data directory as null), else the recorded ones, else ``$W2S_DATA_DIR`` or
        ``shared/data/mwe`` next to the repository."""
        cfg = self.cfg
        data_dir = self.args.data_dir or cfg.data.data_dir or os.environ.get("W2S_DATA_DIR")
        shared = REPO.parent / "shared" / "data" / "mwe"
        if data_dir is None and shared.is_dir():
            data_dir = str(shared)
        return cfg.replace(dataset=self.args.dataset_file or cfg.data.dataset, data_dir=data_dir)

    def key(self, kind: str, exs: Sequence[Any], layers: Sequence[int], scales: Sequence[float],
            vectors: SteeringVectors, extra: Any = None) -> dict[str, Any]:
        return {"kind": kind, "version": CACHE_VERSION, "model": self.name,
                "hook": self.vectors.hook, "layers": [int(x) for x in layers],
                "scales": [float(x) for x in scales], "positions": self.positions,
                "scoring": self.scoring, "dtype": str(self.model.cfg.dtype),
                "vectors": short_digest(steer_vectors(vectors, list(layers), list(scales), 1)[0]),
                "ids": short_digest([ex.id for ex in exs]),
                "tokens": short_digest([[ex.tokens, *ex.continuations] for ex in exs]),
                "extra": extra}

    def first_order_of(self, name: str, exs: Sequence[Any], layers: Sequence[int],
                       scales: Sequence[float], vectors: SteeringVectors) -> np.ndarray:
        """First-order slopes ``[n_examples, L]`` (cached chunk by chunk)."""
        def compute(lo: int, hi: int):
            fo = first_order(self.model, vectors, exs[lo:hi], layers=layers,
                             positions=self.positions, layer_scale=scales,
                             scoring=self.scoring, multipliers=self.mults,
                             chunk_size=self.args.chunk_size)
            return fo.gradient, fo.propensity
        g, _ = self.clock(f"first order: {name} ({len(exs)} prompts x {len(layers)} layers)",
                          lambda: cached_rows(self.out / name / "first_order",
                                              self.key("first_order", exs, layers, scales,
                                                       vectors),
                                              [ex.unit for ex in exs], len(layers),
                                              self.costs.timed(f"first_order:{name}",
                                                               compute)))
        return g

    def label_free_of(self, name: str, exs: Sequence[Any], layers: Sequence[int],
                      scales: Sequence[float], vectors: SteeringVectors) -> np.ndarray:
        u = self.direction()

        def compute(lo: int, hi: int):
            lf = label_free(self.model, vectors, exs[lo:hi], u, layers=layers,
                            positions=self.positions, layer_scale=scales,
                            chunk_size=self.args.chunk_size)
            return lf.gradient, lf.propensity
        g, _ = self.clock(f"label-free: {name} ({len(exs)} prompts x {len(layers)} layers)",
                          lambda: cached_rows(self.out / name / "label_free",
                                              self.key("label_free", exs, layers, scales,
                                                       vectors, short_digest(u)),
                                              [ex.unit for ex in exs], len(layers),
                                              self.costs.timed(f"label_free:{name}",
                                                               compute)))
        return g

    def direction(self) -> torch.Tensor:
        """The behaviour direction at the final residual from the run's training pairs
        (cached in ``OUT/behaviour_direction.safetensors``)."""
        if getattr(self, "_u", None) is not None:
            return self._u
        pairs = self.split.vector_train
        digest = short_digest([[ex.id, list(ex.tokens), *map(list, ex.continuations)]
                               for ex in pairs] + [self.name, self.cfg.compute.batch_size])
        path = self.out / f"behaviour_direction_{digest}.safetensors"
        if path.is_file():
            self._u = load_tensors(path)["direction"]
        else:
            self._u = self.clock(f"behaviour direction ({len(pairs)} training pairs)",
                                 lambda: behaviour_direction(self.model, pairs,
                                                             self.cfg.compute.batch_size))
            path.parent.mkdir(parents=True, exist_ok=True)
            save_tensors(path, {"direction": self._u.contiguous()})
        return self._u

    def view(self, units: Sequence[str], x: np.ndarray) -> np.ndarray:
        """One row per item when the run is mirrored (both letter orders averaged)."""
        return unit_mean(units, x)[1] if self.cfg.mirrored else np.asarray(x)

    # ---------------------------------------------------------------- retest and router
    def retest(self) -> dict[str, Any]:
        base = self.rd.method_dir(self.method)
        found = [base / f"{RETEST_PREFIX}{k}" for k in (1, 2)]
        if all((p / "sweep.json").is_file() for p in found):
            views = []
            for p in found:
                res, _ = self.rd.load_sweep(p)
                views.append(res.mirrored() if self.cfg.mirrored else res)
            if views[0].ids == views[1].ids and views[0].layers == views[1].layers:
                r = retest_agreement(views[0].steerability, views[1].steerability)
                compared = self.sweep.mirrored().ids if self.cfg.mirrored else self.sweep.ids
                return {"retest_agreement": r["agreement"], "retest_n": r["n"],
                        "retest_rank_correlation": r["rank_correlation"],
                        # the retest's items: all the compared ones, or the first of them
                        "retest_same_items": list(views[0].ids) == list(compared),
                        "retest_source": "sweeps"}
        head = ((self.results.get("methods") or {}).get(self.method) or {}).get("headroom") or {}
        r = head.get("retest") or {}
        if r.get("agreement") is not None:
            return {"retest_agreement": r["agreement"], "retest_n": r.get("n"),
                    "retest_rank_correlation": r.get("rank_correlation"),
                    "retest_source": "results.json"}
        return {"retest_agreement": np.nan, "retest_n": 0, "retest_rank_correlation": np.nan,
                "retest_source": "none"}

    def router_accuracy(self, ids: Sequence[str]) -> dict[str, Any]:
        kind = self.cfg.routing.primary_router
        routing = self.rd.read_routing(self.rd.sweep_dir("base", self.method)) or {}
        routed = (routing.get("router_layer") or {}).get(kind)
        if routed is not None and list(routing.get("ids", [])) == list(ids):
            acc = float(np.mean(np.array(routed) == np.array(routing["oracle_layer"])))
            return {"router": kind, "router_accuracy": acc, "router_source": "routing.json"}
        block = ((((self.results.get("methods") or {}).get(self.method) or {})
                  .get("variants") or {}).get("base") or {}).get("w2s") or {}
        acc = (block.get(kind) or {}).get("accuracy")
        return {"router": kind, "router_accuracy": np.nan if acc is None else acc,
                "router_source": "results.json" if acc is not None else "none"}

    # ---------------------------------------------------------------- one grid
    def grid_rows(self, grid: str, measured_pres: np.ndarray, prop_pres: np.ndarray,
                  exs: Sequence[Any], layers: Sequence[int], scales: Sequence[float],
                  vectors: SteeringVectors, extra: dict[str, Any]
                  ) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
        """The summary row, per-item and per-layer frames of one layer grid."""
        units = [ex.unit for ex in exs]
        fo_pres = self.first_order_of(grid, exs, layers, scales, vectors)
        if self.args.compute_endpoints:
            ends = self.clock(f"end points: {grid}", lambda: first_order(
                self.model, vectors, exs, layers=layers, positions=self.positions,
                layer_scale=scales, scoring=self.scoring, multipliers=self.mults,
                curvature=True, chunk_size=self.args.chunk_size).endpoints)
        else:  # the measured sweep's own λ = min, max propensities (see the module docstring)
            ends = prop_pres[..., [int(np.argmin(self.mults)), int(np.argmax(self.mults))]]
        mid = int(np.argmin(np.abs(np.asarray(self.mults))))
        p0 = prop_pres[:, 0, mid] if self.mults[mid] == 0 else None
        cubic_pres = None
        if p0 is not None:
            cubic_pres = cubic_slope(p0[:, None], fo_pres, ends[..., 0], ends[..., 1],
                                     self.mults)
        else:
            log.warning("the λ grid has no 0: the cubic estimate is left out")
        lf_pres = None if self.args.no_label_free else self.label_free_of(
            grid, exs, layers, scales, vectors)
        m = self.view(units, measured_pres)
        fo = self.view(units, fo_pres)
        cubic = None if cubic_pres is None else self.view(units, cubic_pres)
        lf = None if lf_pres is None else self.view(units, lf_pres)
        ids = unit_mean(units, fo_pres)[0] if self.cfg.mirrored else [ex.id for ex in exs]
        train_fixed = (((self.results.get("methods") or {}).get(self.method) or {})
                       .get("fixed_layer"))
        if [int(x) for x in layers] != [int(x) for x in self.layers]:
            # another grid (all layers, other vectors and scales): the run's fixed layer was
            # chosen among its own grid's layers, so it is no training choice here
            train_fixed = None
        row = {"model": self.name, "dataset": self.cfg.data.dataset, "readout": self.readout,
               "method": self.method, "layer_grid": grid,
               **compare(m, fo, cubic, lf, layers, self.args.n_boot, self.args.seed,
                         train_fixed), **extra, **self.grid_costs(grid, extra)}
        items = item_frame(ids, layers, measured=m, first_order=fo, cubic=cubic,
                           label_free=lf)
        layer_df = pd.DataFrame({"layer": [int(x) for x in layers],
                                 "measured_mean": m.mean(axis=0),
                                 "first_order_mean": fo.mean(axis=0),
                                 "cubic_mean": np.nan if cubic is None else cubic.mean(axis=0),
                                 "label_free_mean": np.nan if lf is None else lf.mean(axis=0)})
        for df in (items, layer_df):
            for k in reversed(KEY):
                df.insert(0, k, row[k])
        return row, items, layer_df

    def grid_costs(self, grid: str, extra: dict[str, Any]) -> dict[str, Any]:
        """What this grid's first-order and label-free slopes cost to compute (from the
        ledger, whether or not this invocation computed them) and, with an all-layer sweep of
        the same items, the CPU ratio sweep / first order."""
        fo, lf = self.costs.get(f"first_order:{grid}"), self.costs.get(f"label_free:{grid}")
        out = {"first_order_wall_s": fo["wall_s"], "first_order_cpu_s": fo["cpu_s"],
               "label_free_cpu_s": lf["cpu_s"]}
        if extra.get("sweep_cpu_s") and fo["cpu_s"]:
            out["sweep_over_first_order_cpu"] = round(extra["sweep_cpu_s"] / fo["cpu_s"], 2)
        return out

    def study_grid(self) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
        extra = {**self.retest(), **self.router_accuracy(self.sweep.mirrored().ids
                                                         if self.cfg.mirrored
                                                         else self.sweep.ids)}
        return self.grid_rows("study", self.sweep.steerability, self.sweep.propensity,
                              self.test_exs, self.layers, self.scales, self.vectors, extra)

    # ---------------------------------------------------------------- all layers
    def all_layers(self, n: int) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
        res, exs, layers, scales, vecs = self.all_layer_sweep(n)
        spent = self.costs.get("sweep:all")
        extra = {"retest_agreement": np.nan, "retest_n": 0, "retest_source": "none",
                 "router_accuracy": np.nan, "router_source": "none",
                 "sweep_wall_s": spent["wall_s"], "sweep_cpu_s": spent["cpu_s"]}
        return self.grid_rows("all", res.steerability, res.propensity, exs, layers, scales,
                              vecs, extra)

    def all_layer_sweep(self, n: int) -> tuple[Any, list[Any], list[int], list[float],
                                                SteeringVectors]:
        """The all-layer vectors and the sweep of the first ``n`` test items (cached)."""
        cfg = self.cfg
        layers = list(range(1, self.model.cfg.n_layers))
        vec_dir = self.out / "all_layers" / "vectors"
        pairs = self.split.vector_train
        made_from = {"model": self.name, "layers": layers, "dataset": cfg.data.dataset,
                     "batch_size": cfg.compute.batch_size,
                     "pairs": short_digest([[ex.id, ex.tokens, *ex.continuations]
                                            for ex in pairs])}
        key_file = vec_dir / "made_from.json"
        cached = key_file.is_file() and read_json(key_file) == made_from
        if cached and (vec_dir / "vectors.json").is_file():
            vecs = SteeringVectors.load(vec_dir, model=self.model)
        else:
            if (vec_dir / "vectors.json").is_file():
                log.warning("%s holds vectors made from other pairs or settings: made again",
                            vec_dir)
            vecs = self.clock(f"CAA vectors at {len(layers)} layers ({len(pairs)} pairs)",
                              lambda: train_caa(self.model, pairs, layers=layers,
                                                batch_size=cfg.compute.batch_size,
                                                dataset=cfg.data.dataset))
            vecs.save(vec_dir)
            write_json(key_file, made_from)
        same = [layer for layer in self.layers if layer in layers]
        if same:
            a = vecs.vectors[[vecs.layers.index(x) for x in same]]
            b = self.vectors.vectors[[self.vectors.layers.index(x) for x in same]]
            rel = float((a - b).norm() / b.norm())
            print(f"all-layer vectors vs the run's at its layers: relative difference {rel:.2e}")
        scales = layer_scales(vecs, cfg.sweep.scale, layers, fraction=cfg.sweep.fraction)
        units = list(dict.fromkeys(ex.unit for ex in self.test_exs))[:n]
        keep = set(units)
        exs = [ex for ex in self.test_exs if ex.unit in keep]
        sweep = self.costs.timed("sweep:all", run_sweep)
        res = self.clock(f"all-layer sweep ({len(exs)} prompts x {len(layers)} layers)",
                         lambda: sweep(self.model, vecs, exs, layers=layers,
                                       multipliers=self.mults, engine=cfg.sweep.engine,
                                       positions=self.positions, layer_scale=scales,
                                       out_dir=self.out / "all_layers" / "sweep",
                                       chunk_size=cfg.compute.chunk_size, progress=False,
                                       scoring=self.scoring, max_rows=cfg.compute.max_rows))
        return res, exs, layers, scales, vecs

    # ---------------------------------------------------------------- cheap labels
    def every_train(self) -> list[Any]:
        """Every training item the dataset has after the run's split (not only ``n_train``)."""
        from w2s_lens.evaluation.split import prepare_examples

        return prepare_examples(self.model, self.items, self.cfg.replace(n_train=None),
                                self.test_items).sweep_train

    def prepare(self) -> None:
        """Compute and cache what needs no measured sweep (``--prepare``): the first-order
        and label-free slopes of the test items, with ``--cheap-labels`` those of every
        training item, with ``--all-layers N`` the all-layer vectors and sweep. A later run on
        the finished run directory reads them back (their cache keys check the inputs: a
        stored sweep steered otherwise is computed again, never mixed in)."""
        self.first_order_of("study", self.test_exs, self.layers, self.scales, self.vectors)
        if not self.args.no_label_free:
            self.label_free_of("study", self.test_exs, self.layers, self.scales, self.vectors)
        if self.args.cheap_labels:
            self.first_order_of("train_all", self.every_train(), self.layers, self.scales,
                                self.vectors)
        if self.args.all_layers:
            res, exs, layers, scales, vecs = self.all_layer_sweep(self.args.all_layers)
            self.first_order_of("all", exs, layers, scales, vecs)
            if not self.args.no_label_free:
                self.label_free_of("all", exs, layers, scales, vecs)

    def cheap_labels(self) -> tuple[pd.DataFrame, dict[str, Any]]:
        cfg = self.cfg
        every = self.every_train()
        train_sweep, train_exs = self.rd.load_sweep(self.rd.sweep_dir("train", self.method))
        study_units = list(dict.fromkeys(ex.unit for ex in train_exs))
        all_units = list(dict.fromkeys(ex.unit for ex in every))
        missing = sorted(set(study_units) - set(all_units))
        if missing:
            raise SystemExit(f"the run's training items are not in the reproduced training "
                             f"split (e.g. {missing[:3]})")
        fo_all = self.first_order_of("train_all", every, self.layers, self.scales, self.vectors)
        emb_layer = (default_layer(self.model) if cfg.routing.embedding_layer is None
                     else int(cfg.routing.embedding_layer))
        captured: dict[str, np.ndarray] = {}
        for res in (train_sweep, self.sweep):
            if res.captured is not None and Embedding(cfg.routing.embedding).captured_in_sweep \
                    and res.metadata.get("capture_layer") == emb_layer:
                captured.update(zip(res.ids, np.asarray(res.captured, dtype=np.float32)))
        todo = [ex for ex in [*every, *self.test_exs] if ex.id not in captured]
        if todo:
            x = self.clock(f"question embeddings ({len(todo)} prompts)",
                           lambda: embed_examples(self.model, todo, cfg.routing.embedding,
                                                  emb_layer, cfg.compute.batch_size))
            captured.update(zip([ex.id for ex in todo], x))

        def features(exs: Sequence[Any]) -> np.ndarray:
            x = np.stack([captured[ex.id] for ex in exs])
            return self.view([ex.unit for ex in exs], x)

        x_all, s_fo_all = features(every), self.view([ex.unit for ex in every], fo_all)
        in_study = np.isin(np.array(all_units), study_units)
        x_study = features(train_exs)
        s_measured = (train_sweep.mirrored() if cfg.mirrored else train_sweep).steerability
        m_test = self.sweep.mirrored().steerability if cfg.mirrored else self.sweep.steerability
        x_test = features(self.test_exs)
        fixed = int(np.asarray(s_measured).mean(axis=0).argmax())
        oracle = m_test.argmax(axis=1)
        rows = []
        kind = cfg.routing.primary_router
        pos = {u: i for i, u in enumerate(all_units)}
        study_rows = [pos[u] for u in study_units]
        variants = (("measured", x_study, s_measured),
                    ("first_order_study_items", x_all[study_rows], s_fo_all[study_rows]),
                    ("first_order_all", x_all, s_fo_all))
        for labels, x, s in variants:
            router = LayerRouter(kind, seed=cfg.data.seed, model=self.name,
                                 dataset=cfg.data.dataset, layers=self.layers, hook="resid_pre",
                                 embedding=embedding_name(cfg.routing.embedding, emb_layer),
                                 readout=cfg.sweep.readout)
            idx = self.clock(f"router {kind} on {labels} labels ({len(x)} items)",
                             lambda router=router, x=x, s=s: router.fit(x, s).predict(x_test))
            rows_t = np.arange(len(m_test))
            routed = m_test[rows_t, idx]
            lo, hi = paired_diff_ci(routed, m_test[:, fixed], n_boot=self.args.n_boot,
                                    seed=self.args.seed)
            rows.append({"model": self.name, "dataset": cfg.data.dataset, "readout": self.readout,
                         "method": self.method, "labels": labels, "router": kind,
                         "n_train_items": len(x), "n_test_items": len(m_test),
                         "fixed_layer": self.layers[fixed],
                         "fixed": float(m_test[:, fixed].mean()),
                         "routed": float(routed.mean()),
                         "gain_vs_fixed": float((routed - m_test[:, fixed]).mean()),
                         "gain_ci_lo": lo, "gain_ci_hi": hi,
                         "accuracy": float(np.mean(idx == oracle)),
                         "oracle": float(m_test.max(axis=1).mean()), "seed": cfg.data.seed})
        df = pd.DataFrame(rows)
        by = df.set_index("labels")
        summary = {"cheap_n_train_study": int(in_study.sum()),
                   "cheap_n_train_all": len(all_units),
                   "cheap_gain_measured": by.loc["measured", "gain_vs_fixed"],
                   "cheap_gain_first_order_study": by.loc["first_order_study_items",
                                                          "gain_vs_fixed"],
                   "cheap_gain_first_order_all": by.loc["first_order_all", "gain_vs_fixed"],
                   "cheap_accuracy_measured": by.loc["measured", "accuracy"],
                   "cheap_accuracy_first_order_all": by.loc["first_order_all", "accuracy"],
                   "cheap_first_order_cpu_s": self.costs.get("first_order:train_all")["cpu_s"]}
        return df, summary


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="a finished evaluation run directory (or the folder holding "
                               "exactly one)")
    p.add_argument("--method", default="caa", choices=["caa", "l2s"])
    p.add_argument("--out", default=None, help="where computed things are cached (default: "
                   "<runs>/first_order/<the run's path under <runs>>, outside the work tree)")
    p.add_argument("--results-dir", default=str(RESULTS),
                   help="where validation.csv and the other CSVs go")
    p.add_argument("--dataset-file", default=None,
                   help="the run's dataset file, when it was a file (run.json records its name "
                        "only)")
    p.add_argument("--data-dir", default=None,
                   help="the datasets folder (default: the run's, $W2S_DATA_DIR, or "
                        "shared/data/mwe next to the repository)")
    p.add_argument("--all-layers", type=int, default=0, metavar="N",
                   help="also sweep N test items at every layer and compare there")
    p.add_argument("--cheap-labels", action="store_true",
                   help="first-order labels for every training item; routers on them")
    p.add_argument("--prepare", action="store_true",
                   help="only compute and cache what needs no measured sweep (first-order "
                        "and label-free slopes, the all-layer sweep), also while the run's "
                        "base test sweep is still running; writes no rows")
    p.add_argument("--compute-endpoints", action="store_true",
                   help="recompute the curvature check's end points instead of reading the "
                        "sweep's own λ = min, max propensities")
    p.add_argument("--no-label-free", action="store_true", help="skip the label-free score")
    p.add_argument("--n-boot", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--chunk-size", type=int, default=8, help="examples per first-order batch")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--device", default=None, help="default: the run's device setting")
    args = p.parse_args(argv)
    if args.all_layers < 0:
        p.error("--all-layers must be >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        v = Validation(args)
    except ConfigError as err:
        raise SystemExit(str(err)) from err
    v.load()
    print(f"run {v.run}\n  model {v.name}, dataset {v.cfg.data.dataset}, readout {v.readout}, "
          f"layers {v.layers}, scales {v.scales}, λ {v.mults}, positions {v.positions}, "
          f"scoring {v.scoring}\n  test prompts {len(v.test_exs)}, split seed {v.cfg.data.seed}, "
          f"bootstrap n={args.n_boot} seed={args.seed}, torch threads "
          f"{torch.get_num_threads()}\n  cache {v.out}", flush=True)
    if args.prepare:
        v.prepare()
        print(f"prepared (cached under {v.out}; no rows written); wall {v.clock.total} s")
        return 0
    rows, items, layer_dfs = [], [], []
    row, it, ly = v.study_grid()
    cheap = None
    if args.cheap_labels:
        cheap, summary = v.cheap_labels()
        row.update(summary)
    rows.append(row)
    items.append(it)
    layer_dfs.append(ly)
    if args.all_layers:
        row, it, ly = v.all_layers(args.all_layers)
        rows.append(row)
        items.append(it)
        layer_dfs.append(ly)
    stamp_cols = {"run_dir": shown_run(v.run), "n_boot": args.n_boot, "seed": args.seed,
                  "split_seed": v.cfg.data.seed, "wall_s": v.clock.total,
                  "cpu_s": round(sum(s["cpu_s"] for s in v.clock.stages.values()), 1),
                  "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    summary = pd.DataFrame([{**r, **stamp_cols} for r in rows])
    out = Path(args.results_dir)
    replace_rows(out / SUMMARY_FILE, summary, KEY)
    replace_rows(out / ITEMS_FILE, pd.concat(items, ignore_index=True), KEY)
    replace_rows(out / LAYERS_FILE, pd.concat(layer_dfs, ignore_index=True), KEY)
    if cheap is not None:
        replace_rows(out / CHEAP_FILE, cheap, ["model", "dataset", "readout", "method",
                                               "labels"])
    show = ["layer_grid", "n_items", "spearman_median", "best_layer_agreement",
            "retest_agreement", "gain", "gain_ci_lo", "gain_ci_hi", "gain_cubic",
            "label_free_agreement", "router_accuracy"]
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(summary[[c for c in show if c in summary.columns]].to_string(index=False))
        if cheap is not None:
            print(cheap[["labels", "n_train_items", "routed", "fixed", "gain_vs_fixed",
                         "gain_ci_lo", "gain_ci_hi", "accuracy"]].to_string(index=False))
    print(f"wrote {out / SUMMARY_FILE} (+ {ITEMS_FILE}, {LAYERS_FILE}"
          f"{', ' + CHEAP_FILE if cheap is not None else ''}); total wall {v.clock.total} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
