"""The explicit weights of the synthetic controls (:mod:`w2s_lens.controls.synthetic`).

This module writes down every parameter of the hand-built ``HookedTransformer``: the residual
layout (:class:`Layout`), the marker codes (:func:`marker_codes`), the circuit a control is
made of (:class:`Circuit`: reader gains per marker and layer, behaviour directions, a letter
push, the eraser) and the state dict (:func:`circuit_weights`). The construction and why it
works are described in :mod:`w2s_lens.controls.synthetic`; the comments here name which neuron does
what.

Example:
    >>> import numpy as np
    >>> lay = Layout(n_beh=1, code_dim=3, d_model=32)
    >>> lay.beh, lay.mark, lay.junk.start
    ([8], [9, 10, 11], 15)
    >>> codes = marker_codes(3, np.random.default_rng(0))
    >>> codes.shape, code_margin(codes)
    ((3, 3), 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformerConfig

__all__ = ["BOS", "Circuit", "DIMS", "FIRST_MARKER", "KEY_A", "KEY_B", "Layout", "MARK_JUNK",
           "QUERY", "TOK_A", "TOK_B", "circuit_weights", "code_margin", "marker_codes"]

#: The fixed named residual dimensions (behaviour, marker and junk blocks follow, see Layout).
DIMS: dict[str, int] = {
    "ONE": 0,  # 1 in every token embedding (the attention query)
    "IS_KEY": 1,  # 1 in the key tokens =A / =B
    "KEY": 2,  # +1 in =A, -1 in =B
    "KEY_COPY": 3,  # the key, copied to every later position by head 0.0
    "LETTER": 4,  # +1 in the answer token A, -1 in B
    "READOUT": 5,  # logit(A) - logit(B) = 2 * READOUT
    "END": 6,  # 1 in the query token "?", the steered position
    "IS_MARK": 7,  # 1 in every marker token
    "BEH": 8,  # the first behaviour dimension
}

# Token ids: fixed specials, then markers, then fillers.
BOS, TOK_A, TOK_B, KEY_A, KEY_B, QUERY = 0, 1, 2, 3, 4, 5
FIRST_MARKER = 6

GATE = 20.0  # gate strength G: far above any |b| the sweeps produce (|λ·v| <= ~3)
ATTN_SCORE = 40.0  # attention score of the attended token for the copy heads (others: 0)
N_JUNK_MIN = 4
MARK_JUNK = 4  # junk dimensions of the marker that head 0.1 moves along with its code
_ONE_HOT_MAX = 8  # up to this many markers get one-hot codes, more get +-1 parity codes


@dataclass(frozen=True)
class Layout:
    """Where everything lives in the residual stream.

    Attributes:
        n_beh: number of behaviour dimensions (``BEH0 .. BEH{n_beh-1}``).
        code_dim: width D of a marker code (``MARK``: in the marker's embedding;
            ``MARK_COPY``: moved to every later position by head 0.1).
        d_model: residual width; what is left after the named blocks is junk.
    """

    n_beh: int
    code_dim: int
    d_model: int

    def __post_init__(self) -> None:
        if self.n_junk < N_JUNK_MIN:
            raise ValueError(f"d_model must be >= {self.min_d_model(self.n_beh, self.code_dim)}"
                             f" for {self.n_beh} behaviour dims and {self.code_dim}-dim codes, "
                             f"got {self.d_model}")

    @staticmethod
    def min_d_model(n_beh: int, code_dim: int) -> int:
        """The smallest ``d_model`` with room for the junk dimensions."""
        return DIMS["BEH"] + n_beh + 2 * code_dim + N_JUNK_MIN

    @property
    def beh(self) -> list[int]:
        """The behaviour dimensions."""
        return list(range(DIMS["BEH"], DIMS["BEH"] + self.n_beh))

    @property
    def mark(self) -> list[int]:
        """The marker code dimensions (set in marker embeddings)."""
        start = DIMS["BEH"] + self.n_beh
        return list(range(start, start + self.code_dim))

    @property
    def mark_copy(self) -> list[int]:
        """The copied marker code (written by attention at every position after the marker)."""
        start = DIMS["BEH"] + self.n_beh + self.code_dim
        return list(range(start, start + self.code_dim))

    @property
    def junk(self) -> slice:
        """The random junk dimensions (embeddings of the query, markers and fillers)."""
        return slice(DIMS["BEH"] + self.n_beh + 2 * self.code_dim, self.d_model)

    @property
    def n_junk(self) -> int:
        """Number of junk dimensions."""
        return self.d_model - self.junk.start

    @property
    def exact(self) -> list[int]:
        """Dimensions no weight noise is ever written into (keys, markers, gates)."""
        d = DIMS
        return [d["IS_KEY"], d["KEY"], d["KEY_COPY"], d["END"], d["IS_MARK"], *self.mark,
                *self.mark_copy]


@dataclass
class Circuit:
    """What a control computes, as numbers (see :mod:`w2s_lens.controls.synthetic`).

    Attributes:
        gains: ``[n_markers, n_layers]``: gain w of the key-gated reader of each marker at each
            layer (steering that reaches it with the marker's direction has slope ``4 w``).
        directions: ``[n_markers, n_beh]`` unit vectors: the behaviour feature of items with
            this marker lives along its direction (the marker's P2S direction).
        letter_push: ``[n_layers]``: gain of an ungated reader of ``BEH0`` that pushes answer
            A (> 0) or B (< 0) whichever letter matches.
        erase: fraction α of the behaviour feature erased per layer at the steered position.
        linear: no MLPs at all and a random unembedding: the logits are linear in the steering.
        reader_directions: optional ``[n_markers, n_layers, n_beh]``: the direction each
            marker's reader reads at each layer (default: the marker's own direction).
        read_at: the :data:`DIMS` flag of the position where the readers, the eraser and the
            letter push act and the answer is read: ``"END"`` (the query ``?``, the last
            prompt token) or ``"IS_MARK"`` (the marker, e.g. the first token of a cloze
            continuation that the sweep steers from the last prompt token on).
    """

    gains: np.ndarray
    directions: np.ndarray
    letter_push: np.ndarray
    erase: float
    linear: bool = False
    reader_directions: np.ndarray | None = None
    read_at: str = "END"

    def __post_init__(self) -> None:
        if self.read_at not in ("END", "IS_MARK"):
            raise ValueError(f"read_at must be 'END' or 'IS_MARK', got {self.read_at!r}")

    def readers_at(self, layer: int) -> np.ndarray:
        """``[n_markers, n_beh]``: what each marker's reader at ``layer`` reads."""
        if self.reader_directions is None:
            return self.directions
        return self.reader_directions[:, layer]

    @property
    def n_markers(self) -> int:
        """Number of markers (families, or ids of the null control)."""
        return int(self.gains.shape[0])

    @property
    def n_beh(self) -> int:
        """Number of behaviour dimensions."""
        return int(self.directions.shape[1])

    @property
    def shared_direction(self) -> bool:
        """Whether every marker uses the same behaviour direction (no gated writer needed)."""
        return bool(np.allclose(self.directions, self.directions[:1]))

    def mlp_width(self) -> int:
        """``d_mlp``: the widest layer's neuron count."""
        if self.linear:
            return 1
        writer = 4 if self.shared_direction else 4 * self.n_markers
        widths = []
        for layer in range(self.gains.shape[1]):
            n = (writer if layer == 0 else 0) + (2 * self.n_beh if self.erase > 0 else 0)
            n += 4 * int(np.count_nonzero(self.gains[:, layer]))
            n += 2 * int(self.letter_push[layer] != 0)
            widths.append(n)
        return max(1, *widths)

    def slopes(self, letter: str | None = None) -> np.ndarray:
        """``[n_markers, n_layers]`` exact slopes for steering with ``2 * direction`` per layer.

        ``letter`` (the matching letter of a single presentation) adds the letter push with its
        sign; ``None`` is the mirrored slope (the push cancels over the two orders).
        """
        keep = 1.0 - self.erase
        n_layers = self.gains.shape[1]
        decay = np.array([[keep ** (j - i) if j >= i else 0.0 for j in range(n_layers)]
                          for i in range(n_layers)])  # [steered layer, reader layer]
        gains = self.gains
        if self.reader_directions is not None:  # reader · writer direction per marker, layer
            gains = gains * np.einsum("mlb,mb->ml", self.reader_directions, self.directions)
        out = 4.0 * gains @ decay.T
        if letter is not None:
            sign = 1.0 if letter == "A" else -1.0
            out = out + sign * 4.0 * self.directions[:, :1] * (decay @ self.letter_push)[None]
        return out


def marker_codes(n: int, rng: np.random.Generator) -> np.ndarray:
    """``[n, D]`` unit codes: one-hot for a few markers, else distinct even-parity ±1/√D codes
    (any two differ in >= 2 signs, so their overlap is at most ``1 - 4/D``)."""
    if n <= _ONE_HOT_MAX:
        return np.eye(n)
    dim = int(np.ceil(np.log2(n))) + 2
    picks = rng.choice(2 ** (dim - 1), size=n, replace=False)
    bits = (picks[:, None] >> np.arange(dim - 1)) & 1
    bits = np.concatenate([bits, bits.sum(1, keepdims=True) % 2], axis=1)  # even parity
    return (1.0 - 2.0 * bits) / np.sqrt(dim)


def code_margin(codes: np.ndarray) -> float:
    """``1 - max`` overlap of two different codes (1 for one-hot codes or a single marker)."""
    if len(codes) < 2:
        return 1.0
    overlap = codes @ codes.T
    np.fill_diagonal(overlap, -np.inf)
    return float(1.0 - overlap.max())


def _attention(cfg: HookedTransformerConfig, lay: Layout,
               ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Layer 0's three heads (the other layers' attention is zero)."""
    d, dh = cfg.d_model, cfg.d_head
    W_Q, W_K = torch.zeros(cfg.n_heads, d, dh), torch.zeros(cfg.n_heads, d, dh)
    W_V, W_O = torch.zeros(cfg.n_heads, d, dh), torch.zeros(cfg.n_heads, dh, d)
    one, score = DIMS["ONE"], ATTN_SCORE * dh ** 0.5
    # head 0.0: attend to the key token, copy KEY -> KEY_COPY
    W_Q[0, one, 0], W_K[0, DIMS["IS_KEY"], 0] = score, 1.0
    W_V[0, DIMS["KEY"], 0], W_O[0, 0, DIMS["KEY_COPY"]] = 1.0, 1.0
    # head 0.1: attend to the marker, copy MARK -> MARK_COPY and add its first junk dims
    # to the same junk dims (the family is then visible in many dimensions, as in a real model)
    W_Q[1, one, 0], W_K[1, DIMS["IS_MARK"], 0] = score, 1.0
    for j, (src, dst) in enumerate(zip(lay.mark, lay.mark_copy)):
        W_V[1, src, j], W_O[1, j, dst] = 1.0, 1.0
    for j in range(min(dh - lay.code_dim, lay.n_junk)):
        k = lay.code_dim + j
        W_V[1, lay.junk.start + j, k], W_O[1, k, lay.junk.start + j] = 1.0, 1.0
    # head 0.2: uniform attention, averages the first four junk dims into themselves
    for j in range(min(4, dh, lay.n_junk)):
        W_V[2, lay.junk.start + j, j], W_O[2, j, lay.junk.start + j] = 1.0, 1.0
    return W_Q, W_K, W_V, W_O


class _Neurons:
    """Fills one layer's MLP column by column."""

    def __init__(self, d_model: int, d_mlp: int) -> None:
        self.W_in, self.b_in = torch.zeros(d_model, d_mlp), torch.zeros(d_mlp)
        self.W_out, self.n = torch.zeros(d_mlp, d_model), 0

    def add(self, reads: dict[int, float], bias: float, writes: dict[int, float]) -> int:
        for dim, w in reads.items():
            self.W_in[dim, self.n] += w
        self.b_in[self.n] = bias
        for dim, w in writes.items():
            self.W_out[self.n, dim] += w
        self.n += 1
        return self.n - 1

    def add_block(self, W_in: Tensor, b_in: Tensor, W_out: Tensor) -> None:
        k = b_in.shape[0]
        self.W_in[:, self.n:self.n + k], self.b_in[self.n:self.n + k] = W_in, b_in
        self.W_out[self.n:self.n + k] = W_out
        self.n += k


def _mlp(circ: Circuit, lay: Layout, codes: np.ndarray, layer: int,
         d_mlp: int) -> _Neurons:
    G, d = GATE, DIMS
    at = d[circ.read_at]  # the reading position's flag: END (?) or IS_MARK (the marker)
    g_code = G / code_margin(codes)
    mlp = _Neurons(lay.d_model, d_mlp)

    def marker_gate(m: int) -> tuple[dict[int, float], float]:  # 0 on marker m, <= -G else
        return {dim: g_code * float(c) for dim, c in zip(lay.mark_copy, codes[m])}, -g_code

    def along(direction: np.ndarray, scale: float) -> dict[int, float]:
        return {dim: scale * float(u) for dim, u in zip(lay.beh, direction) if u != 0}

    if layer == 0:  # the writer: b = LETTER * KEY_COPY (exact for values in {-1, 0, 1})
        groups = [None] if circ.shared_direction else range(circ.n_markers)
        for m in groups:
            direction = circ.directions[0 if m is None else m]
            gate, gate_bias = ({}, 0.0) if m is None else marker_gate(m)
            for sl, sk, sign in [(1, 1, 1), (-1, -1, 1), (1, -1, -1), (-1, 1, -1)]:
                mlp.add({d["LETTER"]: sl, d["KEY_COPY"]: sk, **gate}, -1.0 + gate_bias,
                        along(direction, sign))
    if circ.erase > 0:  # the eraser: -α x_p at the steered reading position
        for dim in lay.beh:
            for sign in (1.0, -1.0):
                mlp.add({dim: sign, at: G}, -G, {dim: -circ.erase * sign})
    readers = np.flatnonzero(circ.gains[:, layer])
    if len(readers):  # readers: READOUT += w * b * KEY_COPY, four neurons per marker
        signs = torch.tensor([(1.0, 1.0), (1.0, -1.0), (-1.0, 1.0), (-1.0, -1.0)])
        sb, sk = signs[:, 0].repeat(len(readers)), signs[:, 1].repeat(len(readers))
        m = torch.from_numpy(readers).repeat_interleave(4)
        W_in = torch.zeros(lay.d_model, len(m))
        W_in[lay.beh] = (torch.tensor(circ.readers_at(layer), dtype=torch.float32)[m]
                         * sb[:, None]).T
        W_in[lay.mark_copy] = g_code * torch.tensor(codes, dtype=torch.float32)[m].T
        W_in[at], W_in[d["KEY_COPY"]] = G, sk * G / 2
        W_out = torch.zeros(len(m), lay.d_model)
        W_out[:, d["READOUT"]] = torch.tensor(circ.gains[:, layer], dtype=torch.float32)[m] \
            * sb * sk
        mlp.add_block(W_in, torch.full((len(m),), -g_code - G - G / 2), W_out)
    if circ.letter_push[layer] != 0:  # the letter push: READOUT += g * BEH0 (any key)
        for sb in (1.0, -1.0):
            mlp.add({lay.beh[0]: sb, at: G}, -G,
                    {d["READOUT"]: float(circ.letter_push[layer]) * sb})
    return mlp


def circuit_weights(
    cfg: HookedTransformerConfig,
    circ: Circuit,
    lay: Layout,
    codes: np.ndarray,
    noise: float,
    seed: int,
) -> dict[str, Float[Tensor, "..."]]:
    """The state dict of a control (see :mod:`w2s_lens.controls.synthetic`), plus weight noise.

    Noise (std ``noise``) goes on every weight matrix except the two copy heads of layer 0,
    and never into the :attr:`Layout.exact` dimensions, whose values the gates multiply by
    G or more. In the linear circuit only the embeddings get noise.
    """
    gen = torch.Generator().manual_seed(seed)
    d, n_markers = cfg.d_model, len(codes)
    W_E = torch.zeros(cfg.d_vocab, d)
    W_E[:, DIMS["ONE"]] = 1.0
    W_E[KEY_A, DIMS["IS_KEY"]], W_E[KEY_A, DIMS["KEY"]] = 1.0, 1.0
    W_E[KEY_B, DIMS["IS_KEY"]], W_E[KEY_B, DIMS["KEY"]] = 1.0, -1.0
    W_E[TOK_A, DIMS["LETTER"]], W_E[TOK_B, DIMS["LETTER"]] = 1.0, -1.0
    W_E[QUERY, DIMS["END"]] = 1.0
    markers = slice(FIRST_MARKER, FIRST_MARKER + n_markers)
    W_E[markers, DIMS["IS_MARK"]] = 1.0
    W_E[markers, lay.mark] = torch.tensor(codes, dtype=torch.float32)
    W_E[QUERY:, lay.junk] = torch.randn(cfg.d_vocab - QUERY, lay.n_junk, generator=gen)

    state: dict[str, Tensor] = {"embed.W_E": W_E, "pos_embed.W_pos": torch.zeros(cfg.n_ctx, d)}
    for layer in range(cfg.n_layers):
        if layer == 0:
            W_Q, W_K, W_V, W_O = _attention(cfg, lay)
        else:
            W_Q, W_K, W_V = (torch.zeros(cfg.n_heads, d, cfg.d_head) for _ in range(3))
            W_O = torch.zeros(cfg.n_heads, cfg.d_head, d)
        mlp = (_Neurons(d, cfg.d_mlp) if circ.linear
               else _mlp(circ, lay, codes, layer, cfg.d_mlp))
        p = f"blocks.{layer}"
        state.update({
            f"{p}.attn.W_Q": W_Q, f"{p}.attn.W_K": W_K, f"{p}.attn.W_V": W_V,
            f"{p}.attn.W_O": W_O, f"{p}.attn.b_Q": torch.zeros(cfg.n_heads, cfg.d_head),
            f"{p}.attn.b_K": torch.zeros(cfg.n_heads, cfg.d_head),
            f"{p}.attn.b_V": torch.zeros(cfg.n_heads, cfg.d_head),
            f"{p}.attn.b_O": torch.zeros(d), f"{p}.mlp.W_in": mlp.W_in,
            f"{p}.mlp.b_in": mlp.b_in, f"{p}.mlp.W_out": mlp.W_out,
            f"{p}.mlp.b_out": torch.zeros(d),
        })
    W_U = torch.zeros(d, cfg.d_vocab)
    if circ.linear:  # random answer columns, blind to what the attention heads read
        free = [i for i in range(d) if i not in (DIMS["ONE"], DIMS["IS_KEY"], DIMS["IS_MARK"])]
        scale = (2.0 / len(free)) ** 0.5  # |W_U[:, A] - W_U[:, B]|^2 ~ 4
        W_U[free, TOK_A] = scale * torch.randn(len(free), generator=gen)
        W_U[free, TOK_B] = scale * torch.randn(len(free), generator=gen)
    else:
        W_U[DIMS["READOUT"], TOK_A], W_U[DIMS["READOUT"], TOK_B] = 1.0, -1.0
    state["unembed.W_U"] = W_U
    state["unembed.b_U"] = torch.zeros(cfg.d_vocab)
    if noise > 0:
        _add_noise(state, lay, noise, gen, embeddings_only=circ.linear)
    return state


def _add_noise(state: dict[str, Tensor], lay: Layout, noise: float, gen: torch.Generator,
               embeddings_only: bool) -> None:
    for name, value in state.items():
        if not name.split(".")[-1].startswith("W_") or name == "pos_embed.W_pos":
            continue
        if embeddings_only and name != "embed.W_E":
            continue
        eps = noise * torch.randn(value.shape, generator=gen)
        if name.endswith(("W_E", "W_O", "W_out")):
            eps[..., lay.exact] = 0.0
        if name.startswith("blocks.0.attn."):
            eps[:2] = 0.0  # the copy heads stay exact
        value += eps
