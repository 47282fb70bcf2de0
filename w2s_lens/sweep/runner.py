"""The per-input layer × multiplier sweep: how does each answer move when we steer?

For every example, every layer l and every multiplier λ, the sweep adds ``λ · c_l · v`` to
the residual stream (``blocks.{l}.hook_resid_pre``) and records the propensity (see
:mod:`w2s_lens.sweep.readouts`: the answer-letter logit difference, or the option texts'
log-probability difference for the cloze readout). The steerability of an (example, layer) is
the least-squares slope of propensity against λ. ``v`` is the layer's CAA vector
(:class:`~w2s_lens.steering.vectors.SteeringVectors`) or an input's own vector
(:class:`~w2s_lens.steering.vectors.InputVectors`, e.g. L2S).

The engines (:mod:`w2s_lens.sweep.engines`) give the same numbers (tested to 1e-4); ``fast`` is
the default. Sweeps are resumable: with ``out_dir`` each chunk of examples is written as it
finishes, and a rerun with the same configuration skips the chunks already there and sound
(:mod:`w2s_lens.sweep.chunks`: checked against their recorded SHA-256 and shapes; a broken one
is recomputed, with a warning).

The result, its files and its mirrored view (both letter orders of an item averaged) live in
:mod:`w2s_lens.sweep.result`; :class:`SweepResult` is re-exported here.

Example:
    >>> res = run_sweep(model, vectors, test_examples, engine="fast")  # doctest: +SKIP
    >>> res.steerability.shape  # [n_examples, n_layers]  # doctest: +SKIP
    >>> res.mirrored().steerability.shape  # [n_items, n_layers]  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from w2s_lens.choices import (
    DEFAULT_MULTIPLIERS,
    ENGINES,
    POSITIONS,
    EngineName,
    PositionsName,
    ScoringName,
)
from w2s_lens.data.examples import SteeringExample
from w2s_lens.steering.activations import hook_name
from w2s_lens.steering.vectors import InputVectors, SteeringVectors
from w2s_lens.sweep.chunks import ChunkStore, expected_spec, short_digest
from w2s_lens.sweep.engines import (
    check_fast_supported,
    fast_chunk,
    naive_chunk,
)
from w2s_lens.sweep.readouts import check_scoring, slopes
from w2s_lens.sweep.result import SweepResult

__all__ = [
    "check_examples",
    "run_sweep",
    "steer_vectors",
    "sweep_config_scoring",
    "sweep_grid",
]



# --------------------------------------------------------------------------- driver


def check_examples(examples: Sequence[SteeringExample]) -> str:
    """The readout (``"letter"`` or ``"cloze"``) of ``examples``; refuses none or a mix.

    Example:
        >>> check_examples([SteeringExample("d:0", "", (1, 2), 7, 8, "A")])
        'letter'
    """
    if len(examples) == 0:
        raise ValueError("no examples to sweep")
    kinds = {ex.readout for ex in examples}
    if len(kinds) > 1:
        raise ValueError("a sweep takes examples of one readout, got both letter and cloze")
    return kinds.pop()


def sweep_grid(vectors: SteeringVectors | InputVectors, layers: Sequence[int] | None,
               layer_scale: Sequence[float] | None) -> tuple[list[int], list[float]]:
    """The swept layers, ascending, and each one's scale (``layer_scale`` in the order of
    ``layers``, default all 1); refuses repeated layers and layers the vectors lack.

    Example:
        >>> v = SteeringVectors(torch.zeros(3, 4), [1, 2, 3])
        >>> sweep_grid(v, [3, 1], [2.0, 0.5]), sweep_grid(v, None, None)
        (([1, 3], [0.5, 2.0]), ([1, 2, 3], [1.0, 1.0, 1.0]))
    """
    layers = list(vectors.layers) if layers is None else [int(x) for x in layers]
    if len(set(layers)) != len(layers):
        raise ValueError(f"layers must be distinct, got {layers}")
    missing = [layer for layer in layers if layer not in vectors.layers]
    if missing:
        raise KeyError(f"no vectors for layers {missing}; stored layers: {vectors.layers}")
    scales = [1.0] * len(layers) if layer_scale is None else [float(s) for s in layer_scale]
    if len(scales) != len(layers):
        raise ValueError("layer_scale needs one factor per swept layer (in the order of "
                         "`layers`, or of vectors.layers when `layers` is None)")
    # sweep in ascending layer order; each scale travels with its layer
    pairs = sorted(zip(layers, scales))
    return [p[0] for p in pairs], [p[1] for p in pairs]


def steer_vectors(vectors: SteeringVectors | InputVectors, layers: list[int],
                  scales: list[float], n: int) -> Float[Tensor, "n layer d_model"]:
    """Each of ``n`` examples' vector at each swept layer, times the layer's scale (what the
    engines add at λ = 1).

    Example:
        >>> v = SteeringVectors(torch.ones(3, 4), [1, 2, 3])
        >>> steer_vectors(v, [1, 3], [1.0, 2.0], n=5)[:, :, 0].tolist()[0], tuple(
        ...     steer_vectors(v, [1, 3], [1.0, 2.0], n=5).shape)
        ([1.0, 2.0], (5, 2, 4))
    """
    cols = [vectors.layers.index(layer) for layer in layers]
    scale_t = torch.tensor(scales, dtype=torch.float32)[:, None]
    if isinstance(vectors, InputVectors):
        return vectors.vectors[:, cols] * scale_t
    return (vectors.vectors[cols] * scale_t)[None].expand(n, -1, -1)


def sweep_config_scoring(config: dict) -> ScoringName:
    """The cloze scoring a sweep's recorded configuration stands for (``"sum"`` for the
    letter readout, where every scoring gives the same numbers).

    Only a non-default ``"first"`` is recorded under ``"scoring"``; ``"mean"`` is recorded as
    ``"length_norm": True``, as it was before ``scoring`` existed, so the fingerprints of
    earlier sweeps (and their chunks) still match.

    Example:
        >>> sweep_config_scoring({"length_norm": True}), sweep_config_scoring({"length_norm":
        ...     False, "scoring": "first"}), sweep_config_scoring({"length_norm": False})
        ('mean', 'first', 'sum')
    """
    if "scoring" in config:
        return config["scoring"]
    return "mean" if config.get("length_norm") else "sum"


def _sweep_chunks(model: HookedTransformer, steer_vecs: Float[Tensor, "n layer d_model"],
                  examples: Sequence[SteeringExample], config: dict, store: ChunkStore | None,
                  chunk_size: int, max_rows: int | None,
                  bar: tqdm) -> tuple[np.ndarray, np.ndarray | None]:
    """Propensities (and captured embeddings) of every chunk: loaded when stored and sound,
    else computed (and stored)."""
    layers, mults = config["layers"], config["multipliers"]
    mult_t = torch.tensor(mults, dtype=torch.float32)
    capture = config["capture_layer"]
    scoring = sweep_config_scoring(config)
    d_capture = model.cfg.d_model if capture is not None else None
    prop = np.empty((len(examples), len(layers), len(mults)), dtype=np.float64)
    captured = np.empty((len(examples), d_capture), dtype=np.float32) if d_capture else None
    for start in range(0, len(examples), chunk_size):
        stop = min(len(examples), start + chunk_size)
        spec = expected_spec(stop - start, len(layers), len(mults), d_capture)
        saved = store.load(start, stop, spec) if store is not None else None
        if saved is None:
            chunk, vec_chunk = examples[start:stop], steer_vecs[start:stop]
            if config["engine"] == "fast":
                part, cap = fast_chunk(model, vec_chunk, layers, mult_t, chunk,
                                       config["positions"], capture, scoring, max_rows)
            else:
                part, cap = naive_chunk(model, vec_chunk, layers, mults, chunk,
                                        config["positions"], config["hook"], scoring), None
            saved = {"propensity": part, **({"captured": cap} if cap is not None else {})}
            if store is not None:
                store.save(start, stop, saved)
        prop[start:stop] = saved["propensity"]
        if captured is not None:
            captured[start:stop] = saved["captured"]
        bar.update((stop - start) * len(layers))
    return prop, captured


def run_sweep(
    model: HookedTransformer,
    vectors: SteeringVectors | InputVectors,
    examples: Sequence[SteeringExample],
    layers: Sequence[int] | None = None,
    multipliers: Sequence[float] = DEFAULT_MULTIPLIERS,
    engine: EngineName = "fast",
    positions: PositionsName = "from_last",
    layer_scale: Sequence[float] | None = None,
    out_dir: str | os.PathLike | None = None,
    chunk_size: int = 8,
    progress: bool = True,
    desc: str = "sweep",
    capture_layer: int | None = None,
    scoring: ScoringName = "sum",
    max_rows: int | None = None,
) -> SweepResult:
    """Steer every example at every layer with every multiplier; record propensities.

    Args:
        model: the HookedTransformer the vectors were made for.
        vectors: per-layer CAA vectors, or per-(example, layer) :class:`InputVectors` whose
            ``ids`` are the examples' ids in order.
        examples: the prompts to sweep (all letter or all cloze).
        layers: layers to steer at (default: all layers the vectors have).
        multipliers: the λ grid (default {-1.5, ..., 1.5}).
        engine: ``"fast"`` or ``"naive"`` (reference).
        positions: ``"from_last"`` (last prompt token on, continuation tokens included),
            ``"all"`` tokens, or ``"prompt"`` (every prompt token up to and including the
            last; the continuation tokens see the steered prompt through attention only).
        layer_scale: per-layer factor c_l so the added vector is ``λ · c_l · v`` (default: all
            1, the raw scale), in the order of ``layers``. See :mod:`w2s_lens.steering.scales`.
        out_dir: if given, chunks are written to ``out_dir/chunks`` as they finish and an
            interrupted sweep resumes from them; a stored chunk that fails its check is
            recomputed (:mod:`w2s_lens.sweep.chunks`).
        chunk_size: examples per chunk.
        progress: show a progress bar over examples × layers.
        desc: progress-bar label.
        capture_layer: with the fast engine, also keep each example's unsteered
            ``resid_pre`` at this layer at the last prompt token (``SweepResult.captured``).
        scoring: cloze readout: an option's summed token log-probabilities (``"sum"``),
            their mean (``"mean"``), or its first token's only (``"first"``; read at the last
            prompt token, no continuation rows run). No effect on the letter readout.
        max_rows: fast engine: batch the steered rows of several examples together, up to
            this many rows (None: one example at a time). Same results; a memory bound.

    Returns:
        :class:`SweepResult`.

    Example:
        >>> res = run_sweep(model, vectors, examples, out_dir="runs/x")  # doctest: +SKIP
        >>> res.propensity.shape  # [n_examples, n_layers, n_multipliers]  # doctest: +SKIP
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if positions not in POSITIONS:
        raise ValueError(f"positions must be one of {POSITIONS}, got {positions!r}")
    check_scoring(scoring)
    if max_rows is not None and max_rows < 1:
        raise ValueError(f"max_rows must be >= 1 or None, got {max_rows}")
    readout = check_examples(examples)
    vectors.check_model(model)
    per_input = isinstance(vectors, InputVectors)
    if per_input and vectors.ids != [ex.id for ex in examples]:
        raise ValueError("InputVectors.ids must be the swept examples' ids, in order")
    layers, scales = sweep_grid(vectors, layers, layer_scale)
    mults = [float(m) for m in multipliers]
    slopes(np.zeros(len(mults)), mults)  # fail now, not after the sweep, on a bad grid
    if engine == "fast":
        check_fast_supported(model, vectors.hook)
    steer_vecs = steer_vectors(vectors, layers, scales, len(examples))

    config = {
        "model": vectors.metadata.get("model"),
        "hook": vectors.hook,
        "hook_names": [hook_name(layer, vectors.hook) for layer in layers],
        "layers": layers,
        "multipliers": mults,
        "positions": positions,
        "readout": readout,
        # as before `scoring` existed, so earlier sweeps' fingerprints still match
        "length_norm": readout == "cloze" and scoring == "mean",
        "layer_scale": scales,
        "vector_kind": "per-input" if per_input else "per-layer",
        "vectors_digest": short_digest(vectors.vectors if per_input else steer_vecs[0]),
        "ids_digest": short_digest([ex.id for ex in examples]),
        "tokens_digest": short_digest([[ex.tokens, *ex.continuations] for ex in examples]),
        "engine": engine,
        "chunk_size": chunk_size,
        "capture_layer": capture_layer if engine == "fast" else None,
    }
    if readout == "cloze" and scoring == "first":
        config["scoring"] = "first"  # recorded only where it is not an earlier setting
    store = ChunkStore(out_dir, config) if out_dir is not None else None
    with tqdm(total=len(examples) * len(layers), desc=desc, unit="input·layer",
              disable=not progress, dynamic_ncols=True) as bar:
        prop, captured = _sweep_chunks(model, steer_vecs, examples, config, store, chunk_size,
                                       max_rows, bar)

    meta = {**config, "dataset": vectors.metadata.get("dataset"),
            "method": vectors.metadata.get("method"),
            "dtype": str(model.cfg.dtype).replace("torch.", ""),
            "device": str(model.cfg.device)}
    return SweepResult(
        propensity=prop,
        layers=layers,
        multipliers=mults,
        ids=[ex.id for ex in examples],
        matching_letters=[ex.matching_letter for ex in examples],
        groups=[ex.group for ex in examples],
        metadata=meta,
        captured=captured,
        units=[ex.unit for ex in examples],
    )
