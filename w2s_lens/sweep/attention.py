"""One transformer block of a HookedTransformer over token rows that attend to shared contexts.

The fast engine's passes (:mod:`w2s_lens.sweep.engines`) run many *rows* (token sequences) that
each continue one of a few *contexts*: the cached keys and values of a prompt prefix. Calling
TransformerLens's block with a key/value cache copies the context once per row (the cache
append concatenates, grouped-query attention repeats every key/value head for its query heads,
and rotary re-rotates the whole cache). :func:`block_step` instead folds each context's rows
into the query axis and multiplies them by the context's keys and values *once*, without
copying them (grouped-query heads are a reshape of the queries, not a repeat of the keys):

    scores[row, kv_head, query, rep, :P] = q[row, query, kv_head·rep + rep] · K[kv_head, :P]

plus each row's causal scores over its own tokens; one softmax over both; the same for the
values. The projections, norms and MLP are the block's own modules, so the numbers are
TransformerLens's up to float rounding (the engines agree to 1e-5 in float32, tests).

:func:`check_block_supported` refuses configurations this reimplementation does not cover.

Example:
    >>> out, (k, v) = block_step(model, 3, resid, pos, valid, [(keys, values)],
    ...                          [torch.arange(len(resid))], want_kv=True)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

__all__ = ["KV", "block_step", "check_block_supported", "embed_rows", "unsupported_features"]

#: one context's keys and values at one block, ``[n_kv_heads, P, d_head]`` each (keys rotated)
KV = tuple[Tensor, Tensor]

#: config flags (name, value that is *not* supported) the block reimplementation refuses
_REFUSED = (
    ("use_normalization_before_and_after", True), ("use_attn_in", True),
    ("use_split_qkv_input", True), ("use_logn_attn", True), ("use_dynamic_ntk_rope", True),
    ("use_attention_sinks", True), ("load_in_4bit", True), ("ungroup_grouped_query_attention",
                                                            True),
)
_POST_NORM = ("OlmoeForCausalLM", "Olmo2ForCausalLM", "Olmo3ForCausalLM")


def unsupported_features(model: HookedTransformer) -> list[str]:
    """What in ``model``'s configuration :func:`block_step` does not reimplement (empty: fine).

    Example:
        >>> unsupported_features(tiny_model)  # doctest: +SKIP
        []
    """
    cfg = model.cfg
    bad = [f"{name}={value}" for name, value in _REFUSED if getattr(cfg, name, None) == value]
    if getattr(cfg, "clip_qkv", None) is not None:
        bad.append(f"clip_qkv={cfg.clip_qkv}")
    if getattr(cfg, "attention_dir", "causal") != "causal":
        bad.append(f"attention_dir={cfg.attention_dir!r}")
    if cfg.original_architecture in _POST_NORM:
        bad.append(f"architecture {cfg.original_architecture}")
    if any(getattr(b.attn, "attn_type", "global") != "global" for b in model.blocks):
        bad.append("local (windowed) attention")
    return bad


def check_block_supported(model: HookedTransformer) -> None:
    """Raise ``ValueError`` naming what :func:`block_step` cannot run, and the naive engine.

    Example:
        >>> check_block_supported(tiny_model)  # doctest: +SKIP
    """
    bad = unsupported_features(model)
    if bad:
        raise ValueError(f"the fast engine does not implement {', '.join(bad)} "
                         f"({model.cfg.model_name!r}); use engine=\"naive\"")


def embed_rows(model: HookedTransformer, tokens: Int[Tensor, "rows pos"],
               pos: Int[Tensor, "rows pos"]) -> Float[Tensor, "rows pos d_model"]:
    """Block 0's input for token rows at absolute positions ``pos`` (as TransformerLens's
    ``input_to_embed``: token embedding, plus the learned position embedding if ``standard``).

    Example:
        >>> embed_rows(model, torch.tensor([[5, 6]]), torch.tensor([[10, 11]]))  # doctest: +SKIP
    """
    resid = model.hook_embed(model.embed(tokens))
    if model.cfg.positional_embedding_type == "standard":
        resid = resid + model.hook_pos_embed(model.pos_embed.W_pos[pos])
    return resid


def _rotate(attn, x: Tensor, pos: Tensor) -> Tensor:
    """TransformerLens's ``apply_rotary`` with explicit position ids ``[rows, pos]``."""
    need = int(pos.max()) + 1 if pos.numel() else 0
    if need > attn.rotary_cos.shape[0]:  # let TransformerLens extend its tables
        attn.apply_rotary(x.new_zeros((1, need, 1, x.shape[-1])), 0)
    dim = attn.cfg.rotary_dim
    x_rot, x_pass = x[..., :dim], x[..., dim:]
    cos = attn.rotary_cos[pos, None, :]
    sin = attn.rotary_sin[pos, None, :]
    return torch.cat([x_rot * cos + attn.rotate_every_two(x_rot) * sin, x_pass], dim=-1)


def _softcap(attn, scores: Tensor) -> Tensor:
    cap = getattr(attn.cfg, "attn_scores_soft_cap", -1.0) or -1.0
    return cap * torch.tanh(scores / cap) if cap > 0 else scores


def _attention(
    attn, q: Tensor, k: Tensor, v: Tensor, valid: Tensor, ctx: Sequence[KV],
    groups: Sequence[Tensor],
) -> Tensor:
    """z ``[R, S, H, d_head]``: rows attend to their context (``groups[g]`` rows to ``ctx[g]``)
    and causally to their own valid tokens."""
    n_rows, n_pos, n_heads, d_head = q.shape
    n_kv = k.shape[2]
    rep = n_heads // n_kv
    scale = attn.attn_scale
    q5 = q.view(n_rows, n_pos, n_kv, rep, d_head)
    # own tokens: [R, kv, S·rep, d] @ [R, kv, d, S]
    q_own = q5.permute(0, 2, 1, 3, 4).reshape(n_rows, n_kv, n_pos * rep, d_head)
    own = (q_own @ k.permute(0, 2, 3, 1)) / scale
    own = _softcap(attn, own).view(n_rows, n_kv, n_pos, rep, n_pos)
    causal = torch.ones(n_pos, n_pos, dtype=torch.bool, device=q.device).tril()
    allowed = causal[None] & valid[:, None, :]  # [R, query, key]
    own = own.masked_fill(~allowed[:, None, :, None, :], float("-inf"))
    width = max((kv[0].shape[1] for kv in ctx), default=0)
    if width:
        scores = own.new_full((n_rows, n_kv, n_pos, rep, width), float("-inf"))
        for (keys, _), rows in zip(ctx, groups):
            if keys.shape[1] == 0 or rows.numel() == 0:
                continue
            qg = q5[rows].permute(2, 0, 1, 3, 4).reshape(n_kv, -1, d_head)  # rows → queries
            sc = _softcap(attn, (qg @ keys.transpose(1, 2)) / scale)  # [kv, Rg·S·rep, P]
            sc = sc.view(n_kv, rows.numel(), n_pos, rep, -1).transpose(0, 1)
            scores[rows, ..., : keys.shape[1]] = sc
        scores = torch.cat([scores, own], dim=-1)
    else:
        scores = own
    pattern = torch.softmax(scores, dim=-1)
    pattern = torch.where(torch.isnan(pattern), torch.zeros_like(pattern), pattern)
    pattern = pattern.to(v.dtype)
    p_own = pattern[..., width:].reshape(n_rows, n_kv, n_pos * rep, n_pos)
    z = (p_own @ v.transpose(1, 2)).view(n_rows, n_kv, n_pos, rep, d_head)
    z = z.permute(0, 2, 1, 3, 4)  # [R, S, kv, rep, d]
    if width:
        z = z.contiguous()
        for (keys, values), rows in zip(ctx, groups):
            p = keys.shape[1]
            if p == 0 or rows.numel() == 0:
                continue
            pg = pattern[rows, ..., :p].transpose(0, 1).reshape(n_kv, -1, p)
            zg = (pg @ values).view(n_kv, rows.numel(), n_pos, rep, d_head)
            z[rows] += zg.permute(1, 2, 0, 3, 4)
    return z.reshape(n_rows, n_pos, n_heads, d_head)


def block_step(
    model: HookedTransformer,
    block_index: int,
    resid: Float[Tensor, "rows pos d_model"],
    pos: Int[Tensor, "rows pos"],
    valid: Bool[Tensor, "rows pos"],
    ctx: Sequence[KV] = (),
    groups: Sequence[Int[Tensor, " rows_g"]] = (),
    want_kv: bool = False,
) -> tuple[Float[Tensor, "rows pos d_model"], KV | None]:
    """Run block ``block_index`` on ``resid``; rows ``groups[g]`` also attend to ``ctx[g]``.

    Args:
        model: the HookedTransformer (its block's norms, projections and MLP are used).
        block_index: which block.
        resid: the block's input ``resid_pre`` (``hook_resid_pre`` and ``hook_resid_post``
            fire on it and on the output, so TransformerLens hooks still see the rows).
        pos: each token's absolute position (rotary).
        valid: False at padding (masked as a key; the padded outputs are garbage).
        ctx: per context, the keys (rotated) and values ``[n_kv_heads, P, d_head]``.
        groups: per context, the indices of the rows that attend to it.
        want_kv: also return this block's keys (rotated) and values ``[rows, pos, n_kv, d]``.

    Returns:
        ``(resid_post, (keys, values) or None)``.
    """
    block = model.blocks[block_index]
    attn, cfg = block.attn, model.cfg
    resid = block.hook_resid_pre(resid)
    x = block.ln1(resid)
    q, k, v = attn.calculate_qkv_matrices(x, x, x)
    if cfg.positional_embedding_type == "rotary":
        q, k = _rotate(attn, q, pos), _rotate(attn, k, pos)
    z = _attention(attn, q, k, v, valid, ctx, groups)
    w_o = attn.W_O.reshape(-1, cfg.d_model).T  # [d_model, heads·d_head]
    attn_out = block.hook_attn_out(
        torch.nn.functional.linear(z.reshape(*z.shape[:2], -1).to(w_o.dtype), w_o, attn.b_O))
    if cfg.attn_only:
        out = resid + attn_out
    elif cfg.parallel_attn_mlp:
        out = resid + attn_out + block.hook_mlp_out(block.mlp(block.ln2(resid)))
    else:
        mid = resid + attn_out
        out = mid + block.hook_mlp_out(block.mlp(block.ln2(mid)))
    return block.hook_resid_post(out), ((k, v) if want_kv else None)
