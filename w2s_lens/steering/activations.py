"""Residual-stream caching: one forward pass per prompt, every layer, chosen positions.

Prompts of different lengths are batched with right padding. Under causal attention a real
token never attends to the pads that follow it, and its position index is unchanged, so a
batched result equals the one-by-one result (up to float round-off). An explicit attention
mask is always passed, so TransformerLens never guesses padding from a pad-token id (which
may also occur inside a chat prompt, e.g. ``<|im_end|>``).

Only the requested positions are kept, so memory stays ``n × positions × layers × d_model``
however long the prompts are; prompts are processed in batches (streamed).

Three readers, all one forward pass per sequence:

* :func:`cache_residuals`: one position per prompt, ``[n, layer, d_model]``;
* :func:`cache_residuals_multi`: the same number k of positions per prompt,
  ``[n, k, layer, d_model]``;
* :func:`contrast_residuals`: for contrast pairs (:class:`~w2s_lens.data.examples.SteeringExample`),
  the per-pair differences at the answer position (what CAA averages, and what L2S regresses
  on) and the unanswered prompt's last-token residual, from the same passes.

Example:
    >>> resid = cache_residuals(model, [[1, 2, 3], [4, 5]], layers=[0, 2],
    ...                         positions=[-1, -1])  # doctest: +SKIP
    >>> resid.shape  # [n_prompts, n_layers, d_model]  # doctest: +SKIP
    torch.Size([2, 2, 32])
    >>> multi = cache_residuals_multi(model, [[1, 2, 3], [4, 5]], [0, 2],
    ...                               positions=[[-1, 0], [-1, 0]])  # doctest: +SKIP
    >>> multi.shape  # [n_prompts, n_positions, n_layers, d_model]  # doctest: +SKIP
    torch.Size([2, 2, 2, 32])
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from w2s_lens.data.examples import SteeringExample

__all__ = [
    "HOOKS",
    "BatchStore",
    "ContrastActivations",
    "batches",
    "cache_residuals",
    "cache_residuals_multi",
    "contrast_residuals",
    "hook_name",
    "pad_right",
]

#: Residual-stream hook points a steering vector can be read from / added to.
HOOKS = ("resid_pre", "resid_mid", "resid_post")


def hook_name(layer: int, hook: str = "resid_pre") -> str:
    """The TransformerLens hook name for ``layer``.

    >>> hook_name(14)
    'blocks.14.hook_resid_pre'
    """
    if hook not in HOOKS:
        raise ValueError(f"hook must be one of {HOOKS}, got {hook!r}")
    return f"blocks.{int(layer)}.hook_{hook}"


def pad_right(
    token_seqs: Sequence[Sequence[int]], pad_id: int = 0
) -> tuple[Int[Tensor, "batch pos"], Int[Tensor, "batch pos"], Int[Tensor, " batch"]]:
    """Right-pad token sequences.

    Returns:
        tokens, attention_mask (1 for real tokens) and lengths.

    >>> t, m, n = pad_right([[5, 6, 7], [8]])
    >>> t.tolist(), m.tolist(), n.tolist()
    ([[5, 6, 7], [8, 0, 0]], [[1, 1, 1], [1, 0, 0]], [3, 1])
    """
    if len(token_seqs) == 0:
        raise ValueError("no token sequences given")
    lengths = torch.tensor([len(s) for s in token_seqs], dtype=torch.long)
    if int(lengths.min()) == 0:
        raise ValueError("an empty token sequence was given")
    width = int(lengths.max())
    tokens = torch.full((len(token_seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(token_seqs), width), dtype=torch.long)
    for i, seq in enumerate(token_seqs):
        tokens[i, : len(seq)] = torch.as_tensor(list(seq), dtype=torch.long)
        mask[i, : len(seq)] = 1
    return tokens, mask, lengths


class BatchStore(Protocol):
    """Where a long pass keeps its finished batches, so an interrupted pass resumes.

    :func:`cache_residuals_multi` asks :meth:`load` for each batch before running it and hands
    every batch it ran to :meth:`save`. Batch ``i`` is always the same prompts with the same
    padding, so a batch read back is bit for bit what the pass would compute. An
    implementation: :class:`w2s_lens.evaluation.storage.contrast_cache.ContrastParts`.
    """

    def load(self, index: int, shape: tuple[int, ...]) -> Tensor | None:
        """Batch ``index``'s residuals ``[batch, k, layer, d_model]`` if kept with this
        ``shape``, else ``None``."""

    def save(self, index: int, value: Tensor) -> None:
        """Keep batch ``index``'s residuals."""


def batches(n: int, batch_size: int) -> Iterator[range]:
    """Consecutive index ranges of at most ``batch_size`` covering ``range(n)``."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    for start in range(0, n, batch_size):
        yield range(start, min(n, start + batch_size))


def _absolute_positions(lengths: Tensor, positions: Tensor) -> Tensor:
    """``positions`` ``[batch, k]`` (negative: from each prompt's end) as absolute indices."""
    pos = torch.where(positions < 0, lengths[:, None] + positions, positions)
    if bool(((pos < 0) | (pos >= lengths[:, None])).any()):
        raise IndexError("a requested position lies outside its prompt")
    return pos


def _check_layers(model: HookedTransformer, layers: Sequence[int]) -> list[int]:
    layers = [int(x) for x in layers]
    if not layers:
        raise ValueError("give at least one layer")
    for layer in layers:
        if not 0 <= layer < model.cfg.n_layers:
            raise ValueError(f"layer {layer} outside 0..{model.cfg.n_layers - 1}")
    return layers


@torch.inference_mode()
def cache_residuals(
    model: HookedTransformer,
    token_seqs: Sequence[Sequence[int]],
    layers: Sequence[int],
    positions: Sequence[int],
    hook: str = "resid_pre",
    batch_size: int = 8,
    progress: bool = False,
) -> Float[Tensor, "n layer d_model"]:
    """Residual stream of each prompt at ``layers``, read at one position per prompt.

    Args:
        model: the HookedTransformer.
        token_seqs: one token-id sequence per prompt (BOS included if the model wants one).
        layers: layer indices to read.
        positions: one position per prompt; negative values count from that prompt's end.
        hook: ``"resid_pre"`` (default), ``"resid_mid"`` or ``"resid_post"``.
        batch_size: prompts per forward pass.
        progress: show a progress bar.

    Returns:
        float32 tensor ``[n_prompts, len(layers), d_model]`` on the CPU.
    """
    if len(positions) != len(token_seqs):
        raise ValueError("give exactly one position per prompt")
    multi = cache_residuals_multi(model, token_seqs, layers, [[int(p)] for p in positions],
                                  hook=hook, batch_size=batch_size, progress=progress)
    return multi[:, 0]


@torch.inference_mode()
def cache_residuals_multi(
    model: HookedTransformer,
    token_seqs: Sequence[Sequence[int]],
    layers: Sequence[int],
    positions: Sequence[Sequence[int]],
    hook: str = "resid_pre",
    batch_size: int = 8,
    progress: bool = False,
    store: BatchStore | None = None,
) -> Float[Tensor, "n pos layer d_model"]:
    """Residual stream of each prompt at ``layers``, read at several positions, one pass each.

    Args:
        model: the HookedTransformer.
        token_seqs: one token-id sequence per prompt (BOS included if the model wants one).
        layers: layer indices to read.
        positions: per prompt, the same number k of positions; negative values count from that
            prompt's end (so ``[-1, 3]`` reads the last token and token 3).
        hook: ``"resid_pre"`` (default), ``"resid_mid"`` or ``"resid_post"``.
        batch_size: prompts per forward pass.
        progress: show a progress bar.
        store: keeps each finished batch and hands back those kept by an earlier, interrupted
            call with the same prompts and settings (:class:`BatchStore`); ``None``: keep
            nothing.

    Returns:
        float32 tensor ``[n_prompts, k, len(layers), d_model]`` on the CPU; ``[i, j]`` is
        prompt i at its j-th requested position.

    Example:
        >>> r = cache_residuals_multi(model, [[5, 6, 7]], [0, 1],
        ...                           positions=[[-1, 0]])  # doctest: +SKIP
        >>> r.shape  # doctest: +SKIP
        torch.Size([1, 2, 2, 32])
    """
    if len(positions) != len(token_seqs):
        raise ValueError(f"give exactly one list of positions per prompt: {len(token_seqs)} "
                         f"prompts, {len(positions)} position lists")
    if len(token_seqs) == 0:
        raise ValueError("no token sequences given")
    rows_pos = [[int(p) for p in ps] for ps in positions]
    k = len(rows_pos[0])
    if k == 0:
        raise ValueError("prompt 0: give at least one position")
    for i, ps in enumerate(rows_pos):
        if len(ps) != k:
            raise ValueError(f"every prompt needs the same number of positions: prompt {i} "
                             f"has {len(ps)}, prompt 0 has {k}")
    layers = _check_layers(model, layers)
    names = [hook_name(layer, hook) for layer in layers]
    out = torch.empty((len(token_seqs), k, len(layers), model.cfg.d_model), dtype=torch.float32)
    stop = max(layers) + 1
    # stop_at_layer skips the blocks (and the unembedding) nobody reads; the hooks of block
    # `max(layers)` fire inside that block, so it still runs.
    stop_at = None if stop >= model.cfg.n_layers else stop
    bar = tqdm(total=len(token_seqs), desc="residuals", unit="prompt", disable=not progress)
    # batch prompts of similar length together: less padding, same results
    order = sorted(range(len(token_seqs)), key=lambda i: len(token_seqs[i]))
    for b, span in enumerate(batches(len(token_seqs), batch_size)):
        idx = [order[j] for j in span]
        kept = None if store is None else store.load(b, (len(idx), k, len(layers),
                                                        model.cfg.d_model))
        if kept is not None:
            out[idx] = kept
            bar.update(len(idx))
            continue
        tokens, mask, lengths = pad_right([token_seqs[i] for i in idx])
        try:
            pos = _absolute_positions(lengths, torch.tensor([rows_pos[i] for i in idx]))
        except IndexError:
            bad = [i for i in idx if any(not -len(token_seqs[i]) <= p < len(token_seqs[i])
                                         for p in rows_pos[i])]
            raise IndexError(f"prompt {bad[0]}: positions {rows_pos[bad[0]]} lie outside its "
                             f"{len(token_seqs[bad[0]])} tokens") from None
        rows = torch.arange(len(idx))[:, None]
        grabbed: dict[str, Tensor] = {}

        def grab(act: Tensor, hook, rows=rows, pos=pos, grabbed=grabbed) -> None:
            grabbed[hook.name] = act[rows, pos].detach().float().cpu()  # [batch, k, d_model]

        with model.hooks(fwd_hooks=[(n, grab) for n in names]):
            model(
                tokens.to(model.cfg.device),
                attention_mask=mask.to(model.cfg.device),
                stop_at_layer=stop_at,
                return_type=None,
            )
        for j, name in enumerate(names):
            out[idx, :, j] = grabbed[name]
        if store is not None:
            store.save(b, out[idx])
        bar.update(len(idx))
    bar.close()
    return out


@dataclass(frozen=True)
class ContrastActivations:
    """Per-pair contrasts and prompt residuals of a set of contrast pairs (one pass each).

    Attributes:
        diffs: ``[n, L, d_model]``: ``resid_l(prompt + matching answer) -
            resid_l(prompt + non-matching answer)`` at the answer's last token, for each pair
            and each of ``layers``: the prompt-to-steer (P2S) vectors of L2S. Their mean over
            pairs is the CAA vector (:meth:`mean_diff`).
        prompt_resid: ``[n, d_model]``: the residual at ``input_layer`` at the prompt's last
            token (the unanswered input's representation ``h(x)``).
        layers: the layer of each row of ``diffs``' second axis (ascending).
        input_layer: the layer ``prompt_resid`` was read at.
        hook: the residual hook everything was read at.
        answer_resid_norms: ``[L]``: mean L2 norm of the residual at the answer position over
            all 2n sequences (what ``train_caa`` records as ``resid_norms``).
        ids: the example ids, in order.
        units: the item each example belongs to (``SteeringExample.unit``: its id without
            ``~swap``), for splits that keep both letter orders of an item together.

    Example:
        >>> acts = contrast_residuals(model, examples, layers=[1, 2])  # doctest: +SKIP
        >>> acts.diffs.shape, acts.prompt_resid.shape  # doctest: +SKIP
        (torch.Size([8, 2, 32]), torch.Size([8, 32]))
        >>> caa = acts.mean_diff()  # [L, d_model], equals train_caa(...).vectors  # doctest: +SKIP
    """

    diffs: Float[Tensor, "n layer d_model"]
    prompt_resid: Float[Tensor, "n d_model"]
    layers: list[int]
    input_layer: int
    hook: str
    answer_resid_norms: Float[Tensor, " layer"]
    ids: list[str] = field(default_factory=list)
    units: list[str] = field(default_factory=list)

    def mean_diff(self) -> Float[Tensor, "layer d_model"]:
        """The CAA vectors: the mean of the per-pair differences."""
        return self.diffs.mean(dim=0)


def contrast_residuals(
    model: HookedTransformer,
    examples: Sequence[SteeringExample],
    layers: Sequence[int] | None = None,
    hook: str = "resid_pre",
    input_layer: int | None = None,
    batch_size: int = 8,
    progress: bool = False,
    store: BatchStore | None = None,
) -> ContrastActivations:
    """Per-pair answer contrasts at ``layers`` and prompt residuals, one pass per sequence.

    Each example gives two sequences, ``prompt + matching answer`` and ``prompt +
    non-matching answer``. Both are read at their last token (the answer position) at every
    layer of ``layers``, and at the prompt's last token (index ``len(tokens) - 1``) at
    ``input_layer``. Under causal attention a token never sees what follows it, so the second
    read equals the residual of the bare prompt at its last token: no extra forward pass is
    needed for ``h(x)``. It is taken from the positive sequence.

    Args:
        model: the HookedTransformer.
        examples: the contrast pairs (letter or multi-token answers).
        layers: layers of the contrasts (default: all); stored ascending.
        hook: residual hook to read at.
        input_layer: layer of the prompt residual (default: ``n_layers // 2``).
        batch_size: sequences per forward pass.
        progress: show a progress bar.
        store: keeps each finished batch so an interrupted pass resumes
            (:func:`cache_residuals_multi`).

    Returns:
        a :class:`ContrastActivations`; ``.mean_diff()`` is the CAA vector set.

    Example:
        >>> acts = contrast_residuals(model, train_examples, layers=[10, 14],
        ...                           input_layer=12)  # doctest: +SKIP
        >>> acts.diffs.shape  # [n_pairs, 2, d_model]  # doctest: +SKIP
    """
    if len(examples) == 0:
        raise ValueError("contrast_residuals needs at least one example")
    layers = (list(range(model.cfg.n_layers)) if layers is None
              else sorted({int(x) for x in layers}))
    layers = _check_layers(model, layers)
    if input_layer is None:
        input_layer = model.cfg.n_layers // 2
    input_layer = int(input_layer)
    if not 0 <= input_layer < model.cfg.n_layers:
        raise ValueError(f"input_layer {input_layer} outside 0..{model.cfg.n_layers - 1}")
    read = sorted(set(layers) | {input_layer})
    n = len(examples)
    seqs = [ex.positive_tokens for ex in examples] + [ex.negative_tokens for ex in examples]
    prompt_last = [len(ex.tokens) - 1 for ex in examples] * 2
    resid = cache_residuals_multi(model, seqs, read, [[-1, p] for p in prompt_last], hook=hook,
                                  batch_size=batch_size, progress=progress, store=store)
    answer = resid[:, 0][:, [read.index(layer) for layer in layers]]  # [2n, L, d_model]
    return ContrastActivations(
        diffs=answer[:n] - answer[n:],
        prompt_resid=resid[:n, 1, read.index(input_layer)].clone(),
        layers=layers,
        input_layer=input_layer,
        hook=hook,
        answer_resid_norms=answer.norm(dim=-1).mean(dim=0),
        ids=[ex.id for ex in examples],
        units=[ex.unit for ex in examples],
    )
