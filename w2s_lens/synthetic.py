"""A hand-built positive (and negative) control for per-input steering-layer selection.

:func:`build_control` returns a tiny :class:`~transformer_lens.HookedTransformer` whose weights
are written down explicitly (no training), together with a synthetic A/B task whose inputs
fall into ``n_families`` families. In the **positive** control each family is steerable by a
CAA vector at a *different* layer (``control.family_layers[f]``); in the **negative** control
every family is best steered at the same layer. The whole W2S pipeline (CAA → sweep → best
layers → router → evaluation) should find a large gain over the best fixed layer on the
positive control and no gain on the negative one.

The task
--------
A prompt is ``<bos> =X x.. x.. F<f>``:

* ``=A`` / ``=B`` (the *key* token) says which answer letter expresses the behaviour, so the
  matching letter is ``A`` for half the items and ``B`` for the other half;
* ``x0 .. x{n-1}`` are 2-5 random filler tokens (only there so inputs differ);
* ``F<f>`` is the family marker, always the last prompt token, so the residual stream at the
  steered position shows the family directly.

The answer is the next token, ``A`` or ``B``. ``propensity = logit(matching) -
logit(non-matching)``.

The construction
----------------
No normalisation layers (``normalization_type=None``), ReLU MLPs, zero positional
embeddings: the residual stream is exact arithmetic. Named residual dimensions:

======================  ====================================================================
``ONE``                 1 in every token embedding (an attention query / constant)
``IS_KEY``, ``KEY``     1 and +1/-1 in the ``=A``/``=B`` embeddings
``KEY_COPY``            the key copied to every later position by head 0.0
``LETTER``              +1 in the ``A`` embedding, -1 in ``B``
``BEH``                 the *behaviour feature* b
``READOUT``             read by the unembedding: ``logit(A) - logit(B) = 2 * READOUT``
``END``                 1 in every family marker (marks the steered position)
``FAM0 .. FAM{K-1}``    one-hot family indicator in the marker embeddings
junk                    random embeddings of fillers / markers (averaged by head 0.1)
======================  ====================================================================

* **Layer 0, head 0** attends (almost) only to the key token and copies ``KEY`` into
  ``KEY_COPY`` at every position. Head 0.1 attends uniformly and averages junk dimensions.
* **Layer 0, MLP** computes ``b = LETTER * KEY_COPY`` with four ReLU neurons
  (``relu(l+k-1) + relu(-l-k-1) - relu(l-k-1) - relu(-l+k-1)``). On a prompt position
  ``LETTER = 0`` so b stays 0; at an appended *answer* position b is +1 when the answer is
  the matching letter and -1 otherwise. The CAA vector of every layer ``l >= 1`` (mean of
  positive minus negative residuals at the answer position) is therefore ``2 * e_BEH``
  (up to the weight noise), whichever letter matches. At layer 0 (before the MLP) it is
  ``mean(emb(matching) - emb(non-matching))``, which is ~0 when letters are balanced.
* **Reader of family f, MLP of layer ``family_layers[f]``**: four neurons computing
  ``READOUT += w * b * KEY_COPY`` gated on ``FAM_f`` (pre-activations
  ``±b + G*(FAM_f - 1) + G/2*(±KEY_COPY - 1)``, so they are dead unless the marker is
  ``F<f>`` and the key has the matching sign). Then ``propensity = 2 * w * b``: adding
  ``λ * 2 e_BEH`` at the reader's layer gives slope ``4 w``.
* **Eraser, MLP of every layer**: two neurons gated on ``END`` that write ``-α * b``, so a
  b added at layer ``l`` arrives at a reader at layer ``l_f >= l`` scaled by
  ``(1 - α) ** (l_f - l)``. The eraser is off at the answer position (no ``END``), so the
  CAA vectors themselves do not shrink with depth.

Why the best layer differs per family: steering at ``blocks.{l}.hook_resid_pre`` reaches the
family-f reader only when ``l <= l_f`` (a later addition is downstream of the only reader of b
for that family, and the other families' readers are gated off), and every layer between ``l``
and ``l_f`` erases a fraction ``α`` of it. The steerability (slope of propensity against the
multiplier) of family f at layer l is ``4 w (1 - α) ** (l_f - l)`` for ``l <= l_f`` and ~0
after: a unique maximum at ``l_f``. The positive control puts the readers at different layers
(``1 .. n_layers-1`` spread over families); the negative control puts every reader at the same
layer, so one fixed layer is best for every input and per-input routing cannot help. Both
letters are equally frequent in every family, so the matching letter carries no information
about the best layer (a letter-oracle equals the fixed layer). Gaussian noise (``noise``) on
every weight makes inputs, slopes and embeddings vary a little without changing the best layers.

Example:
    >>> control = build_control("positive", n_families=3, n_layers=4)
    >>> control.family_layers
    [1, 2, 3]
    >>> ex = control.make_examples(4, seed=0)[1]
    >>> ex.group, ex.matching_letter in ("A", "B")
    ('family1', True)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from w2s_lens.examples import SteeringExample

__all__ = ["SyntheticControl", "build_control", "DIMS"]

#: Named residual-stream dimensions (family indicators follow at ``DIMS["FAM0"] + f``).
DIMS: dict[str, int] = {
    "ONE": 0,
    "IS_KEY": 1,
    "KEY": 2,
    "KEY_COPY": 3,
    "LETTER": 4,
    "BEH": 5,
    "READOUT": 6,
    "END": 7,
    "FAM0": 8,
}

# Token ids: fixed specials, then family markers, then fillers.
BOS, TOK_A, TOK_B, KEY_A, KEY_B = 0, 1, 2, 3, 4
_FIRST_FAMILY = 5

_N_HEADS = 2
_D_HEAD = 4
_N_JUNK_MIN = 4
_GATE = 20.0  # gate strength G: far above any |b| the sweeps produce (|λ·v| <= ~3)
_KEY_SCORE = 40.0  # attention score of the key token for head 0.0 (others score 0)


@dataclass
class SyntheticControl:
    """A hand-built model plus its synthetic A/B task.

    Attributes:
        model: the HookedTransformer (``cfg.model_name`` is ``"w2s-synthetic-<kind>"``).
        kind: ``"positive"`` or ``"negative"``.
        family_layers: the constructed best steering layer of each family.
        vocab: token strings, indexed by token id.
        n_filler: number of filler token types.
        erase: the fraction α of the behaviour feature erased per layer.
        readout: the reader gain w (steerability at the best layer is ``4 * readout``).
        seed: the seed used for the weight noise and the junk embeddings.
    """

    model: HookedTransformer
    kind: str
    family_layers: list[int]
    vocab: list[str]
    n_filler: int
    erase: float
    readout: float
    seed: int
    min_fillers: int = 2
    max_fillers: int = 5
    _filler_offset: int = field(init=False, repr=False, default=0)

    def __post_init__(self) -> None:
        self._filler_offset = _FIRST_FAMILY + self.n_families

    @property
    def n_families(self) -> int:
        """Number of input families."""
        return len(self.family_layers)

    @property
    def n_layers(self) -> int:
        """Number of transformer blocks."""
        return self.model.cfg.n_layers

    @property
    def answer_token_ids(self) -> tuple[int, int]:
        """Token ids of ``A`` and ``B``."""
        return TOK_A, TOK_B

    def family_token(self, family: int) -> int:
        """Token id of the marker ``F<family>``."""
        if not 0 <= family < self.n_families:
            raise ValueError(f"family {family} out of range 0..{self.n_families - 1}")
        return _FIRST_FAMILY + family

    def family_of(self, example: SteeringExample) -> int:
        """The family of an example, read from its last (marker) token."""
        return int(example.tokens[-1]) - _FIRST_FAMILY

    def to_text(self, tokens: tuple[int, ...] | list[int]) -> str:
        """Space-joined token strings, e.g. ``"<bos> =A x3 x7 F1"``."""
        return " ".join(self.vocab[int(t)] for t in tokens)

    def make_examples(
        self, n: int, seed: int = 0, both_orders: bool = False
    ) -> list[SteeringExample]:
        """``n`` prompts, families cycling ``0, 1, .., K-1`` and matching letters balanced.

        Item ``i`` has family ``i % K`` and matching letter ``A`` when ``(i // K)`` is even,
        so every family sees both letters equally often (for ``n`` a multiple of ``2K``).

        Args:
            n: number of items.
            seed: seed of the filler draw; ids are ``"synthetic-<kind>:s<seed>:<i>"`` so two
                seeds give disjoint ids (use different seeds for train and test splits).
            both_orders: also return each item's letter-swapped presentation (key token and
                answer swapped, same fillers, id suffixed ``"~swap"``) right after it.
        """
        rng = np.random.default_rng(seed)
        out: list[SteeringExample] = []
        for i in range(n):
            family = i % self.n_families
            letter = "A" if (i // self.n_families) % 2 == 0 else "B"
            n_fill = int(rng.integers(self.min_fillers, self.max_fillers + 1))
            fillers = rng.integers(0, self.n_filler, size=n_fill) + self._filler_offset
            ex = self._example(
                f"synthetic-{self.kind}:s{seed}:{i}", family, letter, [int(t) for t in fillers]
            )
            out.append(ex)
            if both_orders:
                out.append(self.swap(ex))
        return out

    def swap(self, example: SteeringExample) -> SteeringExample:
        """The same item with the other letter matching (key token and answers swapped)."""
        tokens = list(example.tokens)
        tokens[1] = KEY_B if tokens[1] == KEY_A else KEY_A
        letter = "B" if example.matching_letter == "A" else "A"
        new_id = (
            example.id[: -len("~swap")] if example.id.endswith("~swap") else example.id + "~swap"
        )
        return replace(
            example,
            id=new_id,
            text=self.to_text(tokens),
            tokens=tuple(tokens),
            matching_token_id=example.non_matching_token_id,
            non_matching_token_id=example.matching_token_id,
            matching_letter=letter,
        )

    def _example(
        self, ex_id: str, family: int, letter: str, fillers: list[int]
    ) -> SteeringExample:
        key = KEY_A if letter == "A" else KEY_B
        tokens = [BOS, key, *fillers, self.family_token(family)]
        match, other = (TOK_A, TOK_B) if letter == "A" else (TOK_B, TOK_A)
        return SteeringExample(
            id=ex_id,
            text=self.to_text(tokens),
            tokens=tuple(tokens),
            matching_token_id=match,
            non_matching_token_id=other,
            matching_letter=letter,
            group=f"family{family}",
        )

    def family_onehot(self, examples: list[SteeringExample]) -> np.ndarray:
        """A ``[n, K]`` one-hot family matrix (an ideal router embedding, for reference)."""
        fam = np.array([self.family_of(e) for e in examples])
        return np.eye(self.n_families, dtype=np.float32)[fam]

    def ideal_vectors(self) -> torch.Tensor:
        """``[n_layers, d_model]``: the noise-free CAA vectors (0 at layer 0, ``2 e_BEH`` after)."""
        v = torch.zeros(self.n_layers, self.model.cfg.d_model)
        v[1:, DIMS["BEH"]] = 2.0
        return v


def _default_family_layers(kind: str, n_families: int, n_layers: int) -> list[int]:
    if kind == "negative":
        return [max(1, n_layers // 2)] * n_families
    if n_families > n_layers - 1:
        raise ValueError(
            f"the positive control needs n_layers - 1 >= n_families (layer 0's CAA vector is"
            f" ~0), got n_families={n_families}, n_layers={n_layers}"
        )
    spread = np.linspace(1, n_layers - 1, n_families)
    layers = [int(round(x)) for x in spread]
    if len(set(layers)) != n_families:  # pragma: no cover - linspace over >= K integers
        layers = list(range(1, n_families + 1))
    return layers


def build_control(
    kind: Literal["positive", "negative"] = "positive",
    n_families: int = 3,
    n_layers: int = 4,
    d_model: int = 32,
    seed: int = 0,
    *,
    family_layers: list[int] | None = None,
    n_filler: int = 16,
    erase: float = 0.5,
    readout: float = 0.5,
    noise: float = 0.02,
) -> SyntheticControl:
    """Build the hand-weighted model and task (instant, deterministic given ``seed``).

    Args:
        kind: ``"positive"`` (a different best layer per family) or ``"negative"`` (the same
            best layer for every family).
        n_families: number of input families K (positive control: ``K <= n_layers - 1``).
        n_layers: number of blocks.
        d_model: residual width; at least ``8 + K + 4`` (the rest are junk dimensions).
        seed: seed of the weight noise and of the random junk embeddings.
        family_layers: override the reader layer of each family (each in ``1..n_layers-1``).
            Default: positive spreads families over ``1..n_layers-1``; negative uses
            ``n_layers // 2`` for all.
        n_filler: number of filler token types.
        erase: fraction α of the behaviour feature the per-layer eraser removes (0 < α < 1).
        readout: reader gain w.
        noise: standard deviation of the Gaussian noise added to every weight (0 = exact).
    """
    if kind not in ("positive", "negative"):
        raise ValueError(f"kind must be 'positive' or 'negative', got {kind!r}")
    if n_families < 1 or n_layers < 2:
        raise ValueError("need n_families >= 1 and n_layers >= 2")
    if family_layers is None:
        family_layers = _default_family_layers(kind, n_families, n_layers)
    family_layers = [int(x) for x in family_layers]
    if len(family_layers) != n_families or not all(1 <= x < n_layers for x in family_layers):
        raise ValueError(f"family_layers must be {n_families} layers in 1..{n_layers - 1}")
    n_junk = d_model - DIMS["FAM0"] - n_families
    if n_junk < _N_JUNK_MIN:
        raise ValueError(f"d_model must be >= {DIMS['FAM0'] + n_families + _N_JUNK_MIN}")
    if not 0.0 <= erase < 1.0:
        raise ValueError("erase must be in [0, 1)")

    d_vocab = _FIRST_FAMILY + n_families + n_filler
    readers_per_layer = [family_layers.count(layer) for layer in range(n_layers)]
    d_mlp = 4 + 2 + 4 * max(readers_per_layer) + 4
    max_fillers = 5
    cfg = HookedTransformerConfig(
        n_layers=n_layers,
        d_model=d_model,
        n_ctx=32,  # prompts are <= max_fillers + 3 tokens; room for answers and padding
        d_head=_D_HEAD,
        n_heads=_N_HEADS,
        d_mlp=d_mlp,
        d_vocab=d_vocab,
        act_fn="relu",
        normalization_type=None,
        positional_embedding_type="standard",
        model_name=f"w2s-synthetic-{kind}",
        seed=seed,
        device="cpu",
    )
    model = HookedTransformer(cfg)
    model.eval()
    state = _weights(cfg, family_layers, n_junk, erase, readout, noise, seed)
    with torch.no_grad():
        for name, value in state.items():
            model.state_dict()[name].copy_(value)
    vocab = (
        ["<bos>", "A", "B", "=A", "=B"]
        + [f"F{f}" for f in range(n_families)]
        + [f"x{i}" for i in range(n_filler)]
    )
    return SyntheticControl(
        model=model,
        kind=kind,
        family_layers=family_layers,
        vocab=vocab,
        n_filler=n_filler,
        erase=erase,
        readout=readout,
        seed=seed,
        max_fillers=max_fillers,
    )


def _weights(
    cfg: HookedTransformerConfig,
    family_layers: list[int],
    n_junk: int,
    erase: float,
    readout: float,
    noise: float,
    seed: int,
) -> dict[str, torch.Tensor]:
    """The explicit parameters (see the module docstring), plus Gaussian noise."""
    gen = torch.Generator().manual_seed(seed)
    d, L, K = cfg.d_model, cfg.n_layers, len(family_layers)
    one, is_key, key, key_copy = DIMS["ONE"], DIMS["IS_KEY"], DIMS["KEY"], DIMS["KEY_COPY"]
    letter, beh, read, end, fam0 = (
        DIMS["LETTER"],
        DIMS["BEH"],
        DIMS["READOUT"],
        DIMS["END"],
        DIMS["FAM0"],
    )
    junk = slice(fam0 + K, d)
    G = _GATE

    W_E = torch.zeros(cfg.d_vocab, d)
    W_E[:, one] = 1.0
    W_E[KEY_A, is_key], W_E[KEY_A, key] = 1.0, 1.0
    W_E[KEY_B, is_key], W_E[KEY_B, key] = 1.0, -1.0
    W_E[TOK_A, letter], W_E[TOK_B, letter] = 1.0, -1.0
    for f in range(K):
        W_E[_FIRST_FAMILY + f, end] = 1.0
        W_E[_FIRST_FAMILY + f, fam0 + f] = 1.0
    first_rand = _FIRST_FAMILY  # markers and fillers get random junk vectors
    W_E[first_rand:, junk] = torch.randn(cfg.d_vocab - first_rand, n_junk, generator=gen)

    state: dict[str, torch.Tensor] = {
        "embed.W_E": W_E,
        "pos_embed.W_pos": torch.zeros(cfg.n_ctx, d),
    }
    for layer in range(L):
        W_Q = torch.zeros(cfg.n_heads, d, cfg.d_head)
        W_K = torch.zeros(cfg.n_heads, d, cfg.d_head)
        W_V = torch.zeros(cfg.n_heads, d, cfg.d_head)
        W_O = torch.zeros(cfg.n_heads, cfg.d_head, d)
        W_in = torch.zeros(d, cfg.d_mlp)
        b_in = torch.zeros(cfg.d_mlp)
        W_out = torch.zeros(cfg.d_mlp, d)
        if layer == 0:
            # head 0.0: every position attends to the key token and copies KEY -> KEY_COPY
            W_Q[0, one, 0] = _KEY_SCORE * cfg.d_head**0.5
            W_K[0, is_key, 0] = 1.0
            W_V[0, key, 0] = 1.0
            W_O[0, 0, key_copy] = 1.0
            # head 0.1: uniform attention, averages the first junk dims into themselves
            for j in range(min(cfg.d_head, n_junk)):
                W_V[1, junk.start + j, j] = 1.0
                W_O[1, j, junk.start + j] = 1.0
            # MLP 0, neurons 0-3: b = LETTER * KEY_COPY (for LETTER, KEY_COPY in {-1, 0, 1})
            for n, (sl, sk, sign) in enumerate([(1, 1, 1), (-1, -1, 1), (1, -1, -1), (-1, 1, -1)]):
                W_in[letter, n], W_in[key_copy, n], b_in[n] = sl, sk, -1.0
                W_out[n, beh] = sign
        # neurons 4-5: the eraser, READOUT-free, active only at the steered (END) position
        for n, sign in [(4, 1.0), (5, -1.0)]:
            W_in[beh, n], W_in[end, n], b_in[n] = sign, G, -G
            W_out[n, beh] = -erase * sign
        # neurons 6..: readers of the families whose best layer is this one
        n = 6
        for f in [f for f in range(K) if family_layers[f] == layer]:
            for sb in (1.0, -1.0):
                for sk in (1.0, -1.0):
                    W_in[beh, n] = sb
                    W_in[fam0 + f, n] = G
                    W_in[key_copy, n] = sk * G / 2
                    b_in[n] = -G - G / 2
                    W_out[n, read] = readout * sb * sk
                    n += 1
        prefix = f"blocks.{layer}"
        state.update(
            {
                f"{prefix}.attn.W_Q": W_Q,
                f"{prefix}.attn.W_K": W_K,
                f"{prefix}.attn.W_V": W_V,
                f"{prefix}.attn.W_O": W_O,
                f"{prefix}.attn.b_Q": torch.zeros(cfg.n_heads, cfg.d_head),
                f"{prefix}.attn.b_K": torch.zeros(cfg.n_heads, cfg.d_head),
                f"{prefix}.attn.b_V": torch.zeros(cfg.n_heads, cfg.d_head),
                f"{prefix}.attn.b_O": torch.zeros(d),
                f"{prefix}.mlp.W_in": W_in,
                f"{prefix}.mlp.b_in": b_in,
                f"{prefix}.mlp.W_out": W_out,
                f"{prefix}.mlp.b_out": torch.zeros(d),
            }
        )
    W_U = torch.zeros(d, cfg.d_vocab)
    W_U[read, TOK_A], W_U[read, TOK_B] = 1.0, -1.0
    state["unembed.W_U"] = W_U
    state["unembed.b_U"] = torch.zeros(cfg.d_vocab)

    if noise > 0:
        # Nothing writes noise into the gate dimensions: the gates multiply them by G, which
        # would turn weight noise into large shifts of the readers' ReLU kinks.
        gate_dims = [key_copy, end, *range(fam0, fam0 + K)]
        for name, value in state.items():
            if not name.split(".")[-1].startswith("W_") or name == "pos_embed.W_pos":
                continue
            eps = noise * torch.randn(value.shape, generator=gen)
            if name.endswith(("W_E", "W_O", "W_out")):
                eps[..., gate_dims] = 0.0
            value += eps
    return state
