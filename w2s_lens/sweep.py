"""The per-input layer × multiplier sweep: how does each answer move when we steer?

For every example, every layer l and every multiplier λ, the sweep adds ``λ · c_l · v_l`` to
the residual stream (``blocks.{l}.hook_resid_pre``) and records the propensity
``logit(matching letter) - logit(non-matching letter)`` at the last prompt position. The
steerability of an (example, layer) is the least-squares slope of propensity against λ.

Two engines give the same numbers (tested to 1e-3):

``naive``
    the reference: one full forward pass per steered run, using the public
    :meth:`SteeringVectors.apply` hook.
``fast``
    reuses what steering cannot change. One forward pass per example caches the residual
    stream at every layer and the key/value cache of every layer. With ``positions=
    "from_last"`` the prefix (all tokens before the last) is untouched by steering, so only the
    last token is recomputed, from layer l upwards, attending to the cached prefix keys and
    values. Rows for all (layer, multiplier) pairs travel through the blocks together: the
    rows that steer at layer l join the batch at block l. Only the two answer-letter columns of
    the unembedding are computed. With ``positions="all"`` the whole sequence is recomputed from
    layer l (only the blocks below l are saved).

Sweeps are resumable: with ``out_dir`` each chunk of examples is written as it finishes, and
a rerun with the same configuration skips the chunks already there.

Example:
    >>> res = run_sweep(model, vectors, test_examples, engine="fast")  # doctest: +SKIP
    >>> res.steerability.shape  # [n_examples, n_layers]  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from jaxtyping import Float
from safetensors.numpy import load_file as np_load_file
from safetensors.numpy import save_file as np_save_file
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

try:  # TransformerLens 3.x
    from transformer_lens.cache.key_value_cache import (
        TransformerLensKeyValueCache as KVCache,
    )
    from transformer_lens.cache.key_value_cache_entry import (
        TransformerLensKeyValueCacheEntry as KVCacheEntry,
    )
except ImportError:  # TransformerLens 2.x
    from transformer_lens.past_key_value_caching import (  # type: ignore[no-redef]
        HookedTransformerKeyValueCache as KVCache,
    )
    from transformer_lens.past_key_value_caching import (  # type: ignore[no-redef]
        HookedTransformerKeyValueCacheEntry as KVCacheEntry,
    )

from w2s_lens.activations import hook_name, pad_right
from w2s_lens.artifacts import (
    FORMAT_VERSION,
    ArtifactMismatch,
    library_versions,
    read_json,
    write_json,
)
from w2s_lens.examples import SteeringExample
from w2s_lens.vectors import SteeringVectors

__all__ = [
    "DEFAULT_MULTIPLIERS",
    "ENGINES",
    "SweepResult",
    "slopes",
    "run_sweep",
]

DEFAULT_MULTIPLIERS: tuple[float, ...] = (-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5)
ENGINES = ("fast", "naive")
SWEEP_FILE = "sweep.safetensors"
IDS_FILE = "sweep_ids.json"

Engine = Literal["fast", "naive"]
SweepPositions = Literal["from_last", "all"]


def slopes(
    propensity: Float[np.ndarray, "... n_mult"], multipliers: Sequence[float]
) -> Float[np.ndarray, "..."]:
    """Least-squares slope of propensity against the multipliers (last axis).

    >>> slopes(np.array([[0.0, 1.0, 2.0]]), [-1, 0, 1])
    array([1.])
    """
    x = np.asarray(multipliers, dtype=np.float64)
    if propensity.shape[-1] != x.shape[0]:
        raise ValueError("the last axis of propensity must match the multipliers")
    if x.shape[0] < 2 or np.ptp(x) == 0:
        raise ValueError("need at least two distinct multipliers for a slope")
    xc = x - x.mean()
    return (np.asarray(propensity, dtype=np.float64) @ xc) / float(xc @ xc)


@dataclass
class SweepResult:
    """A finished sweep.

    Attributes:
        propensity: ``[n_examples, n_layers, n_multipliers]``.
        steerability: ``[n_examples, n_layers]`` slopes.
        layers, multipliers: the grid.
        ids, matching_letters, groups: one per example.
        metadata: the configuration (model, hook, engine, positions, scales, ...).
        captured: ``[n_examples, d_model]`` unsteered ``resid_pre`` at ``capture_layer`` at the
            last prompt token (the ``resid-last`` embedding, free from the fast engine's
            caching pass), or None.
    """

    propensity: np.ndarray
    layers: list[int]
    multipliers: list[float]
    ids: list[str]
    matching_letters: list[str]
    groups: list[str] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)
    captured: np.ndarray | None = None

    @property
    def steerability(self) -> np.ndarray:
        """Slopes ``[n_examples, n_layers]``."""
        return slopes(self.propensity, self.multipliers)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``sweep.safetensors`` (propensity, steerability, layers, multipliers) and
        ``sweep_ids.json`` (ids, letters, groups, metadata)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np_save_file(
            {
                "propensity": np.ascontiguousarray(self.propensity, dtype=np.float32),
                "steerability": np.ascontiguousarray(self.steerability, dtype=np.float32),
                "layers": np.asarray(self.layers, dtype=np.int64),
                "multipliers": np.asarray(self.multipliers, dtype=np.float64),
            },
            str(directory / SWEEP_FILE),
            metadata={"model": str(self.metadata.get("model")),
                      "hook": str(self.metadata.get("hook"))},
        )
        write_json(directory / IDS_FILE, {"format_version": FORMAT_VERSION, "ids": self.ids,
                                          "matching_letters": self.matching_letters,
                                          "groups": self.groups, "metadata": self.metadata})
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> SweepResult:
        """Read a sweep written by :meth:`save`."""
        directory = Path(directory)
        side = read_json(directory / IDS_FILE)
        if side.get("format_version") != FORMAT_VERSION:
            raise ArtifactMismatch(
                f"{directory / IDS_FILE} has format_version {side.get('format_version')!r}; "
                f"this w2s-lens reads {FORMAT_VERSION}")
        arrays = np_load_file(str(directory / SWEEP_FILE))
        return cls(
            propensity=arrays["propensity"].astype(np.float64),
            layers=[int(x) for x in arrays["layers"]],
            multipliers=[float(x) for x in arrays["multipliers"]],
            ids=list(side["ids"]),
            matching_letters=list(side["matching_letters"]),
            groups=list(side.get("groups") or []),
            metadata=dict(side.get("metadata") or {}),
        )


# --------------------------------------------------------------------------- engines


def _answer_logit_diff(
    model: HookedTransformer, resid: Float[Tensor, "rows d_model"], pos_id: int, neg_id: int
) -> Float[Tensor, " rows"]:
    """logit(pos_id) - logit(neg_id) from the final residual, without the full unembedding."""
    if model.cfg.normalization_type is not None:
        resid = model.ln_final(resid[:, None, :])[:, 0]
    cols = model.unembed.W_U[:, [pos_id, neg_id]]
    logits = resid @ cols + model.unembed.b_U[[pos_id, neg_id]]
    cap = getattr(model.cfg, "output_logits_soft_cap", -1.0) or -1.0
    if cap > 0:
        logits = cap * torch.tanh(logits / cap)
    return logits[:, 0] - logits[:, 1]


def _check_fast_supported(model: HookedTransformer, hook: str) -> None:
    if hook != "resid_pre":
        raise ValueError("the fast engine steers at resid_pre; use engine='naive' for "
                         f"hook={hook!r}")
    if model.cfg.positional_embedding_type == "shortformer":
        raise ValueError("the fast engine does not support shortformer positional embeddings; "
                         "use engine='naive'")


@torch.inference_mode()
def _fast_chunk(
    model: HookedTransformer,
    steer_vecs: Float[Tensor, "layer d_model"],
    layers: list[int],
    multipliers: Tensor,
    examples: Sequence[SteeringExample],
    positions: SweepPositions,
    capture_layer: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Propensity ``[len(examples), len(layers), n_mult]`` for one chunk (fast engine), and the
    unsteered last-token residual at ``capture_layer`` ``[len(examples), d_model]`` if asked."""
    device = model.cfg.device
    n_all = model.cfg.n_layers
    tokens, mask, lengths = pad_right([ex.tokens for ex in examples])
    rows = torch.arange(len(examples))
    last = lengths - 1
    grabbed: dict[int, Tensor] = {}

    def grab(act: Tensor, hook) -> None:
        layer = int(hook.name.split(".")[1])
        if positions == "from_last":
            grabbed[layer] = act[rows, last].detach()
        else:
            grabbed[layer] = act.detach()

    cache = None
    if positions == "from_last":
        cache = KVCache.init_cache(model.cfg, device, len(examples))
    hooked = sorted(set(layers) | ({capture_layer} if capture_layer is not None else set()))
    with model.hooks(fwd_hooks=[(hook_name(layer), grab) for layer in hooked]):
        model(tokens.to(device), attention_mask=mask.to(device), past_kv_cache=cache,
              return_type=None)

    n_mult = multipliers.shape[0]
    first = min(layers)
    layer_pos = {layer: j for j, layer in enumerate(layers)}
    out = np.empty((len(examples), len(layers), n_mult), dtype=np.float64)
    for i, ex in enumerate(examples):
        n_i = int(lengths[i])
        residual: Tensor | None = None
        for b in range(first, n_all):
            if b in layer_pos:
                if positions == "from_last":
                    base = grabbed[b][i][None, None, :]  # [1, 1, d]
                else:
                    base = grabbed[b][i, :n_i][None]  # [1, n_i, d]
                vec = steer_vecs[layer_pos[b]].to(device, base.dtype)
                new = base + multipliers.to(device, base.dtype)[:, None, None] * vec
                residual = new if residual is None else torch.cat([residual, new], dim=0)
            entry = None
            if cache is not None:
                rows_now = residual.shape[0]
                src = cache.entries[b]
                entry = KVCacheEntry(
                    past_keys=src.past_keys[i : i + 1, : n_i - 1].expand(rows_now, -1, -1, -1),
                    past_values=src.past_values[i : i + 1, : n_i - 1].expand(
                        rows_now, -1, -1, -1),
                    frozen=True,
                )
            residual = model.blocks[b](residual, past_kv_cache_entry=entry)
        diff = _answer_logit_diff(model, residual[:, -1], ex.matching_token_id,
                                  ex.non_matching_token_id)
        # rows were appended layer by layer, n_mult rows each
        out[i] = diff.reshape(len(layers), n_mult).double().cpu().numpy()
    captured = None
    if capture_layer is not None:
        act = grabbed[capture_layer]
        if positions != "from_last":
            act = act[rows, last]
        captured = act.float().cpu().numpy()
    return out, captured


@torch.inference_mode()
def _naive_chunk(
    model: HookedTransformer,
    vectors: SteeringVectors,
    scales: list[float],
    layers: list[int],
    multipliers: Sequence[float],
    examples: Sequence[SteeringExample],
    positions: SweepPositions,
) -> np.ndarray:
    """Propensity for one chunk: one full forward pass per steered run (the reference)."""
    out = np.empty((len(examples), len(layers), len(multipliers)), dtype=np.float64)
    for i, ex in enumerate(examples):
        toks = torch.tensor([ex.tokens], dtype=torch.long, device=model.cfg.device)
        ones = torch.ones_like(toks)
        for j, layer in enumerate(layers):
            for k, mult in enumerate(multipliers):
                with vectors.apply(model, layer, mult, positions=positions, scale=scales[j]):
                    logits = model(toks, attention_mask=ones)[0, -1]
                out[i, j, k] = float(logits[ex.matching_token_id]
                                     - logits[ex.non_matching_token_id])
    return out


# --------------------------------------------------------------------------- driver


def _fingerprint(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def _tensor_digest(t: Tensor) -> str:
    return hashlib.sha256(t.detach().float().cpu().numpy().tobytes()).hexdigest()[:16]


def run_sweep(
    model: HookedTransformer,
    vectors: SteeringVectors,
    examples: Sequence[SteeringExample],
    layers: Sequence[int] | None = None,
    multipliers: Sequence[float] = DEFAULT_MULTIPLIERS,
    engine: Engine = "fast",
    positions: SweepPositions = "from_last",
    layer_scale: Sequence[float] | None = None,
    out_dir: str | os.PathLike | None = None,
    chunk_size: int = 8,
    progress: bool = True,
    desc: str = "sweep",
    capture_layer: int | None = None,
) -> SweepResult:
    """Steer every example at every layer with every multiplier; record propensities.

    Args:
        model: the HookedTransformer the vectors were trained on.
        vectors: CAA vectors (must cover ``layers``).
        examples: the prompts to sweep.
        layers: layers to steer at (default: all layers the vectors have).
        multipliers: the λ grid (default {-1.5, ..., 1.5}).
        engine: ``"fast"`` or ``"naive"`` (reference).
        positions: ``"from_last"`` (last prompt token on) or ``"all"`` tokens.
        layer_scale: per-layer factor c_l so the added vector is ``λ · c_l · v_l``
            (default: all 1, the raw scale). See :mod:`w2s_lens.scales`.
        out_dir: if given, chunks are written to ``out_dir/chunks`` as they finish and an
            interrupted sweep resumes from them.
        chunk_size: examples per chunk.
        progress: show a progress bar over examples × layers.
        desc: progress-bar label.
        capture_layer: with the fast engine, also keep each example's unsteered
            ``resid_pre`` at this layer at the last prompt token (``SweepResult.captured``).

    Returns:
        :class:`SweepResult`.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if positions not in ("from_last", "all"):
        raise ValueError(f"positions must be 'from_last' or 'all', got {positions!r}")
    if len(examples) == 0:
        raise ValueError("no examples to sweep")
    vectors.check_model(model)
    layers = list(vectors.layers) if layers is None else [int(x) for x in layers]
    if len(set(layers)) != len(layers):
        raise ValueError(f"layers must be distinct, got {layers}")
    for layer in layers:
        vectors.vector(layer)  # raises KeyError with the stored layers
    mults = [float(m) for m in multipliers]
    slopes(np.zeros(len(mults)), mults)  # fail now, not after the sweep, on a bad grid
    scales = [1.0] * len(layers) if layer_scale is None else [float(s) for s in layer_scale]
    if len(scales) != len(layers):
        raise ValueError("layer_scale needs one factor per swept layer (in the order of "
                         "`layers`, or of vectors.layers when `layers` is None)")
    # sweep in ascending layer order; each scale travels with its layer
    pairs = sorted(zip(layers, scales))
    layers, scales = [p[0] for p in pairs], [p[1] for p in pairs]
    if engine == "fast":
        _check_fast_supported(model, vectors.hook)
    steer_vecs = torch.stack([vectors.vector(layer) * s for layer, s in zip(layers, scales)])
    mult_t = torch.tensor(mults, dtype=torch.float32)

    config = {
        "model": vectors.metadata.get("model"),
        "hook": vectors.hook,
        "hook_names": [hook_name(layer, vectors.hook) for layer in layers],
        "layers": layers,
        "multipliers": mults,
        "positions": positions,
        "layer_scale": scales,
        "vectors_digest": _tensor_digest(steer_vecs),
        "ids_digest": hashlib.sha256("\n".join(ex.id for ex in examples).encode()).hexdigest()[
            :16],
        "tokens_digest": hashlib.sha256(json.dumps(
            [[ex.tokens, ex.matching_token_id, ex.non_matching_token_id] for ex in examples]
        ).encode()).hexdigest()[:16],
        "engine": engine,
        "chunk_size": chunk_size,
        "capture_layer": capture_layer if engine == "fast" else None,
    }
    chunk_dir = None
    if out_dir is not None:
        chunk_dir = Path(out_dir) / "chunks"
        manifest = chunk_dir / "manifest.json"
        if manifest.exists():
            old = read_json(manifest)
            if old.get("fingerprint") != _fingerprint(config):
                raise ArtifactMismatch(
                    f"{chunk_dir} holds chunks of a different sweep (other model, vectors, "
                    f"examples, layers, multipliers or positions); use another --out directory "
                    f"or delete it")
        else:
            write_json(manifest, {"fingerprint": _fingerprint(config), "config": config})

    prop = np.empty((len(examples), len(layers), len(mults)), dtype=np.float64)
    captured = (np.empty((len(examples), model.cfg.d_model), dtype=np.float32)
                if config["capture_layer"] is not None else None)
    bar = tqdm(total=len(examples) * len(layers), desc=desc, unit="input·layer",
               disable=not progress, dynamic_ncols=True)
    for start in range(0, len(examples), chunk_size):
        stop = min(len(examples), start + chunk_size)
        chunk = examples[start:stop]
        path = chunk_dir / f"{start:06d}-{stop:06d}.safetensors" if chunk_dir else None
        if path is not None and path.exists():
            saved = np_load_file(str(path))
            prop[start:stop] = saved["propensity"]
            if captured is not None:
                captured[start:stop] = saved["captured"]
        else:
            cap = None
            if engine == "fast":
                part, cap = _fast_chunk(model, steer_vecs, layers, mult_t, chunk, positions,
                                        config["capture_layer"])
            else:
                part = _naive_chunk(model, vectors, scales, layers, mults, chunk, positions)
            prop[start:stop] = part
            if cap is not None:
                captured[start:stop] = cap
            if path is not None:
                tmp = path.with_name(path.name + ".tmp")
                np_save_file({"propensity": part, **({"captured": cap} if cap is not None
                                                     else {})}, str(tmp))
                tmp.replace(path)
        bar.update((stop - start) * len(layers))
    bar.close()

    meta = {**config, "engine": engine, "dataset": vectors.metadata.get("dataset"),
            "versions": library_versions()}
    return SweepResult(
        propensity=prop,
        layers=layers,
        multipliers=mults,
        ids=[ex.id for ex in examples],
        matching_letters=[ex.matching_letter for ex in examples],
        groups=[ex.group for ex in examples],
        metadata=meta,
        captured=captured,
    )
