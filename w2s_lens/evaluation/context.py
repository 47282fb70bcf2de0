"""What every method of one evaluation shares: layers, embedding, vectors, scales and folds.

:class:`EvalContext` is built once per :func:`w2s_lens.evaluation.pipeline.evaluate_examples`
call, before any sweep: it resolves the steered layers, computes the contrast pairs of the
training items (or loads the given ``EvalConfig.sweep.vectors``, keeping the swept layers only), the
multiplier scales and the cross-fitting folds, and runs every sweep of the run.

Example:
    >>> ctx = EvalContext(model, examples, EvalConfig(), rd=None, progress=False)  # doctest: +SKIP
    >>> ctx.layers, ctx.caa.layers == ctx.layers  # doctest: +SKIP
    ([1, 2, 3], True)
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from jaxtyping import Float
from transformer_lens import HookedTransformer

from w2s_lens.choices import Embedding, Engine, RouterView
from w2s_lens.data.examples import SteeringExample
from w2s_lens.evaluation.config import EvalConfig
from w2s_lens.evaluation.config_parts import ConfigError
from w2s_lens.evaluation.storage.contrast_cache import cached_contrasts
from w2s_lens.evaluation.storage.feature_cache import (
    features_key,
    load_view_features,
    load_view_seconds,
    save_view_features,
)
from w2s_lens.evaluation.storage.rundir import RunDir
from w2s_lens.routing.embeddings import default_layer, embed_examples, embedding_name
from w2s_lens.routing.views import view_features
from w2s_lens.steering.activations import ContrastActivations
from w2s_lens.steering.scales import layer_scales
from w2s_lens.steering.vectors import InputVectors, SteeringVectors, caa_from_differences
from w2s_lens.sweep.result import SweepResult
from w2s_lens.sweep.runner import run_sweep

if TYPE_CHECKING:
    from w2s_lens.evaluation.split import SplitExamples

__all__ = ["EvalContext", "folds", "resolve_layers", "swept_vectors", "unique"]

log = logging.getLogger(__name__)


def resolve_layers(model: HookedTransformer, config: EvalConfig) -> list[int]:
    """The steered layers: ``config.sweep.layers``, or every layer but 0 (see :class:`EvalConfig`).

    Example:
        >>> resolve_layers(model, EvalConfig(layers=(3, 1)))  # doctest: +SKIP
        [1, 3]
    """
    n = model.cfg.n_layers
    layers = list(range(1, n)) if config.sweep.layers is None else list(config.sweep.layers)
    bad = [x for x in layers if not 0 <= x < n]
    if bad:
        raise ConfigError(f"EvalConfig.sweep.layers {bad} are outside this model's 0..{n - 1}")
    return layers


def folds(units: list[str], k: int, seed: int) -> dict[str, int]:
    """Cross-fitting folds over training items (0 folds: every item in fold -1, in-sample).

    Example:
        >>> sorted(folds(["a", "b", "c", "d"], 2, seed=0).values())
        [0, 0, 1, 1]
        >>> folds(["a"], 0, seed=0)
        {'a': -1}
    """
    if k == 0:
        return {u: -1 for u in units}
    if len(units) < k:
        raise ConfigError(f"cross_fit={k} folds need at least {k} training items, got "
                          f"{len(units)}")
    order = np.random.default_rng(seed).permutation(len(units))
    return {units[i]: int(r % k) for r, i in enumerate(order)}


def unique(seq: Sequence[str]) -> list[str]:
    """``seq`` without repeats, in first-seen order.

    Example:
        >>> unique(["b", "a", "b"])
        ['b', 'a']
    """
    return list(dict.fromkeys(seq))


def swept_vectors(vectors: SteeringVectors, layers: Sequence[int],
                  source: str | os.PathLike = "the vectors") -> SteeringVectors:
    """The rows of ``vectors`` at ``layers`` (by layer number, in that order).

    Given vectors may be stored for more layers than are swept; every later step (scales,
    norms, bundles) then sees exactly the swept layers. The per-layer residual norms in the
    metadata (the relative scale's unit) are selected alongside.

    Raises:
        ConfigError: a swept layer is not stored (the message names ``source``).

    Example:
        >>> v = SteeringVectors(torch.eye(3), [0, 1, 2], metadata={"resid_norms": [1., 2., 3.]})
        >>> sub = swept_vectors(v, [2, 1])
        >>> sub.layers, sub.vectors[:, 2].tolist(), sub.metadata["resid_norms"]
        ([2, 1], [1.0, 0.0], [3.0, 2.0])
    """
    layers = [int(x) for x in layers]
    missing = [x for x in layers if x not in vectors.layers]
    if missing:
        raise ConfigError(f"the vectors in {source} lack layers {missing} (stored: "
                          f"{vectors.layers}); sweep stored layers only (--layers)")
    if layers == vectors.layers:
        return vectors
    rows = [vectors.layers.index(x) for x in layers]
    meta = dict(vectors.metadata)
    norms = meta.get("resid_norms")
    if norms:
        meta["resid_norms"] = [norms[i] for i in rows]
    meta["stored_layers"] = list(vectors.layers)
    return SteeringVectors(vectors.vectors[rows], layers, vectors.hook, meta)


class EvalContext:
    """What every method shares within one evaluation (see the module docstring).

    Args:
        model: the HookedTransformer.
        exs: the run's examples.
        config: the settings.
        rd: the run directory, or None (nothing written).
        progress: progress bars.
    """

    def __init__(self, model: HookedTransformer, exs: SplitExamples, config: EvalConfig,
                 rd: RunDir | None, progress: bool) -> None:
        self.model, self.exs, self.config, self.rd, self.progress = model, exs, config, rd, progress
        self.layers = resolve_layers(model, config)
        self.emb_layer = (default_layer(model) if config.routing.embedding_layer is None
                          else int(config.routing.embedding_layer))
        self.emb_name = embedding_name(config.routing.embedding, self.emb_layer)
        self.capture = (self.emb_layer if Embedding(config.routing.embedding).captured_in_sweep
                        and Engine(config.sweep.engine).captures else None)
        self.l2s_input = (default_layer(model) if config.l2s.input_layer is None
                          else int(config.l2s.input_layer))
        n = model.cfg.n_layers
        for name, layer in (("routing.embedding_layer", self.emb_layer),
                            ("l2s.input_layer", self.l2s_input)):
            if not 0 <= layer < n:  # before any forward pass
                raise ConfigError(f"EvalConfig.{name} {layer} is outside this model's layers "
                                  f"0..{n - 1}")
        self.acts: ContrastActivations | None = None
        if config.sweep.vectors is not None:  # given vectors: they never saw the training items
            self.caa = swept_vectors(SteeringVectors.load(config.sweep.vectors, model=model),
                                     self.layers, config.sweep.vectors)
        else:
            log.info("contrast pairs: one pass over %d training pairs", len(exs.vector_train))
            self.acts = cached_contrasts(rd, model, exs.vector_train, self.layers,
                                         self.l2s_input, config.compute.batch_size, progress)
            self.caa = caa_from_differences(model, self.acts.diffs, exs.vector_train,
                                            self.layers, dataset=config.data.dataset,
                                            resid_norms=self.acts.answer_resid_norms)
        self.scales = layer_scales(self.caa, config.sweep.scale, self.layers,
                                   fraction=config.sweep.fraction)
        #: what the router views' features cost per sweep (``results.json``'s ``view_costs``)
        self.view_costs: list[dict[str, object]] = []
        self.train_units = unique([ex.unit for ex in exs.sweep_train])
        self.folds = folds(self.train_units, config.statistics.cross_fit, config.data.seed)

    def sweep(self, vectors: SteeringVectors | InputVectors, exs: list[SteeringExample],
              where: str, method: str) -> SweepResult:
        """Sweep ``exs`` at the run's layers (into ``RUN/<method>/<where>`` when writing)."""
        folder = None if self.rd is None else self.rd.sweep_dir(where, method)
        res = run_sweep(self.model, vectors, exs, layers=self.layers,
                        multipliers=self.config.sweep.multipliers, engine=self.config.sweep.engine,
                        positions=self.config.sweep.positions, layer_scale=self.scales,
                        out_dir=folder, chunk_size=self.config.compute.chunk_size,
                        progress=self.progress, desc=f"{method} sweep {where}",
                        capture_layer=self.capture, scoring=self.config.sweep.scoring,
                        max_rows=self.config.compute.max_rows)
        res.metadata.update({"multiplier_scale": self.config.sweep.scale, "split": where,
                             "method": method})
        if self.rd is not None and folder is not None:
            self.rd.save_sweep(folder, res, exs)
        return res

    def view(self, res: SweepResult) -> SweepResult:
        """The sweep as scored: one row per item when mirrored, else one per presentation."""
        return res.mirrored() if self.config.mirrored else res

    def per_input(self, res: SweepResult, x: np.ndarray) -> np.ndarray:
        """Router inputs aligned with :meth:`view` (a mirrored item: its orders' mean)."""
        return res.unit_average(x) if self.config.mirrored else x

    def embed(self, exs: list[SteeringExample], res: SweepResult) -> np.ndarray:
        """Router inputs per presentation (captured by the fast sweep when possible)."""
        if res.captured is not None:
            return np.asarray(res.captured, dtype=np.float32)
        return embed_examples(self.model, exs, self.config.routing.embedding, self.emb_layer,
                              self.config.compute.batch_size)

    def views(self, exs: list[SteeringExample], res: SweepResult,
              split: str | None = None) -> dict[str, np.ndarray]:
        """Router inputs per presentation for every view of ``config.routing.router_inputs``
        (:mod:`w2s_lens.routing.views`), aligned with ``res``: ``{view: [n, features]}``.
        What each feature cost is added to :attr:`view_costs` under ``split`` (once per
        split: a second method reads the same features).

        Example:
            >>> {v: x.shape for v, x in ctx.views(exs, res, "train").items()}  # doctest: +SKIP
            {'question': (48, 896), 'options': (48, 1794)}
        """
        views = self.config.routing.router_inputs
        seconds: dict[str, dict[str, float]] = {}
        question = None
        if any(RouterView(v).needs_question for v in views):
            with _timed(seconds, "question"):
                question = self.embed(exs, res)
        # the option views' features, kept in the run directory (a resume reads them back,
        # with what they cost when computed)
        key = features_key(self.model, exs, self.emb_layer, self.config.compute.batch_size)
        cache = load_view_features(self.rd, key)
        recorded = load_view_seconds(self.rd, key) if cache else {}
        out, per_view = {}, {}
        for v in views:
            before = set(cache)
            with _timed(per_view, v) as spent:
                out[v] = view_features(v, question, self.model, exs, self.emb_layer,
                                       self.config.compute.batch_size, cache)
            for name in set(cache) - before:  # computed now: what this view's call took
                seconds[name] = spent
        save_view_features(self.rd, key, cache, {k: seconds[k] for k in cache if k in seconds})
        if split is not None and not any(c["split"] == split for c in self.view_costs):
            self._record_costs(split, len(exs), res, seconds, recorded, cache)
        return out

    def _record_costs(self, split: str, n: int, res: SweepResult,
                      seconds: dict[str, dict[str, float]],
                      recorded: dict[str, dict[str, float]], cache: dict[str, np.ndarray]
                      ) -> None:
        rows: list[dict[str, object]] = []
        if "question" in seconds:
            free = res.captured is not None
            rows.append({"features": "question", **seconds["question"],
                         "note": "captured by the sweep (no extra pass)" if free else None})
        for name in sorted(cache):
            got = seconds.get(name) or recorded.get(name)
            rows.append({"features": name, "cpu_s": None, "wall_s": None, **(got or {}),
                         "note": None if name in seconds else (
                             "read back from the run directory" if got else
                             "read back; computed before costs were kept")})
        for row in rows:
            row = {"split": split, **row, "n_presentations": n}
            self.view_costs.append({k: v for k, v in row.items() if v is not None})
            if row.get("cpu_s") is not None and row["features"] != "question":
                log.info("router view features %s (%s, %d presentations): %.1f s CPU, "
                         "%.2f s each", row["features"], split, n, row["cpu_s"],
                         row["cpu_s"] / max(n, 1))

    def vector_norms(self, vecs: SteeringVectors | InputVectors) -> list[float]:
        """Mean norm per swept layer of the vectors an input is steered with (λ = 1).

        Example:
            >>> ctx.vector_norms(ctx.caa)  # doctest: +SKIP
            [0.41, 0.87, 1.3]
        """
        norms: Float[torch.Tensor, "n layer"] = (
            vecs.vectors.norm(dim=-1) if isinstance(vecs, InputVectors)
            else vecs.vectors.norm(dim=-1)[None])
        return [float(x) for x in (norms * torch.tensor(self.scales)).mean(dim=0)]


class _timed:
    """Measure a block: ``seconds[name] = {"cpu_s", "wall_s"}`` (this process's CPU time, all
    its threads, and wall time); ``as`` gives the same dict.

    Example:
        >>> got = {}
        >>> with _timed(got, "x") as spent:
        ...     _ = sum(range(1000))
        >>> sorted(got["x"]) == sorted(spent) == ["cpu_s", "wall_s"]
        True
    """

    def __init__(self, seconds: dict[str, dict[str, float]], name: str) -> None:
        self.seconds, self.name, self.spent = seconds, name, {}

    def __enter__(self) -> dict[str, float]:
        self.cpu, self.wall = time.process_time(), time.perf_counter()
        return self.spent

    def __exit__(self, *exc: object) -> None:
        self.spent.update(cpu_s=round(time.process_time() - self.cpu, 3),
                          wall_s=round(time.perf_counter() - self.wall, 3))
        self.seconds[self.name] = self.spent
