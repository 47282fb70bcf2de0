"""Hand-built controls for per-input steering-layer selection: tasks with a known answer.

:func:`build_control` returns a tiny :class:`~transformer_lens.HookedTransformer` whose weights
are written down explicitly (no training; :mod:`w2s_lens.controls.weights`), together with a
synthetic A/B task. Each *kind* is a task the unchanged pipeline
(:func:`w2s_lens.evaluation.pipeline.evaluate_examples`) must get right — and would get wrong if,
for example, layer numbers and indices were mixed up, the test split leaked into fitting, or
the letter orders were not mirrored:

=======================  ======================================================================
kind                     what is constructed → what the pipeline must report
=======================  ======================================================================
``positive``             family f is steerable only up to its own layer ``family_layers[f]``
                         → W2S − fixed > 0, routing accuracy ≈ 1, best layers = the
                         constructed layer numbers
``negative``             every family's reader at the same layer → one layer is best for all
``null``                 every layer has the same true slope; each input carries an id whose
                         per-layer gains are random → best layers vary by noise alone, and
                         W2S − fixed must not be claimed
``flat``                 every layer equally good for every input with the ideal vector; an
                         estimated vector's noise decides each input's best layer → two
                         vector estimates disagree on it (retest κ ≈ 0), no cross-validated
                         oracle gain
``letter``               a behaviour reader at one layer for everyone, plus a *letter push*:
                         the vector pushes answer A at one layer and B at another → without
                         mirroring a "W2S gain" appears; mirrored it vanishes
``linear``               no MLPs, a random unembedding: logits linear in the steering → a vector
                         along ``W_U[:, A] - W_U[:, B]`` has mirrored slope 0
``l2s-direction``        each family's behaviour feature has its own direction (two of them
                         cancel in the CAA mean); one reader layer → L2S beats CAA
``l2s-direction-layer``  own direction *and* own layer per family → only W2S over L2S
                         reaches the oracle
``continuation``         cloze: the marker is the first token of both answers, not in the
                         prompt; family f is steerable only at its own layer, read at the
                         marker → best layers = the family layers, yet a router on the
                         prompt's last token cannot know them (one on the answers can)
=======================  ======================================================================

The task (:mod:`w2s_lens.controls.synthetic_task`): a prompt is ``<bos> =X x.. F<m> x.. ?``
with ``=A``/``=B`` the *key* (which letter expresses the behaviour), random fillers, the
*marker* ``F<m>`` (the family) among them and the query ``?`` last; the answer is the next
token, ``A`` or ``B``. The kinds' gains are listed in :mod:`w2s_lens.controls.synthetic_kinds`.

The construction
----------------
No normalisation, ReLU MLPs, zero positional embeddings: exact arithmetic. Named residual
dimensions (:data:`DIMS`, :class:`~w2s_lens.controls.weights.Layout`): ``ONE`` (1 everywhere),
``IS_KEY``/``KEY`` (the key), ``KEY_COPY``, ``LETTER`` (+1 in ``A``, −1 in ``B``),
``READOUT`` (``logit(A) - logit(B) = 2 READOUT``), ``END`` (1 in ``?``), ``IS_MARK``,
``BEH0..`` (behaviour feature), ``MARK`` / ``MARK_COPY`` (the marker's code: one-hot for up to
8 markers, else distinct even-parity ±1/√D codes), and random junk.

* **Layer 0, attention**: head 0 attends to the key (score 40, others 0) and copies ``KEY``
  into ``KEY_COPY`` at every later position; head 1 does the same for the marker, copying
  ``MARK`` into ``MARK_COPY`` and adding the marker's first 4 junk dimensions to the same junk
  dimensions (so the family is visible in many dimensions, not only in its code); head 2
  attends uniformly and averages junk dimensions.
* **Layer 0, MLP, the writer**: four ReLU neurons compute ``b = LETTER * KEY_COPY`` and write
  ``b * u_f`` (``u_f``: the family's unit behaviour direction; gated on the marker code when
  directions differ). On prompt tokens ``LETTER = 0`` so ``b = 0``; at an appended answer
  ``b = +1`` for the matching answer and −1 otherwise. So every family's P2S vector (positive
  minus negative residual at the answer) at layers >= 1 is ``2 u_f`` and the CAA vector is
  their mean — ``2 e_BEH0`` when all families share one direction. At layer 0 it is
  ``mean(emb(matching) - emb(non-matching))``, ~0 with balanced letters.
* **Readers**: the reader of marker m at layer l is four neurons gated on ``END`` (only the
  steered position), on ``MARK_COPY`` matching m's code and on the sign of ``KEY_COPY``, writing
  ``READOUT += gains[m, l] * (u_m · BEH) * KEY_COPY``. Steering with ``λ · 2 u_m`` there gives
  slope ``4 gains[m, l]``. In the ``continuation`` kind the readers, the eraser and the letter
  push are gated on ``IS_MARK`` instead of ``END``: they act at the marker, the first token of
  both cloze continuations, whose ``MARK_COPY`` (head 1 attends to the marker itself) and
  ``KEY_COPY`` are set as at ``?`` in the other kinds.
* **Eraser**: two neurons per behaviour dimension in every layer, gated on ``END``, write
  ``-erase * BEH``: a feature added at layer l reaches a reader at layer ``l' >= l`` scaled by
  ``(1 - erase) ** (l' - l)`` (``erase = 1``: each layer's steering reaches only its own
  readers). Off at the answer position, so CAA vectors do not shrink with depth.
* **Letter push** (``letter_layers``): two neurons gated on ``END`` write
  ``READOUT += g * BEH0`` whatever the key: steering there pushes answer A (g > 0) or B (g < 0),
  a slope ``+4g`` for items whose matching letter is A and ``-4g`` for B, 0 once mirrored.
* **Noise**: Gaussian noise (``noise``, default 0.02) on every weight, except the copy heads
  and the dimensions gates read, makes inputs and slopes vary a little (a few per cent of a
  slope: e.g. the letter push's mirrored residue is 0.4-5% of its ±4 across seeds).

The exact slope of family f at layer l, for steering with ``2 u_f``, is
``4 Σ_{l' >= l} gains[f, l'] (1 - erase) ** (l' - l)`` (:meth:`SyntheticControl.expected_slopes`;
the tests check it to 1e-5 on noise-free models).

Example:
    >>> control = build_control("positive", n_families=3, n_layers=4)
    >>> control.family_layers
    [1, 2, 3]
    >>> ex = control.make_examples(4, seed=0)[1]
    >>> ex.group, ex.matching_letter in ("A", "B"), ex.text.endswith(" ?")
    ('family1', True, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer, HookedTransformerConfig

from w2s_lens.controls.synthetic_kinds import (
    DEFAULT_ERASE,
    DEFAULT_FAMILIES,
    DEFAULT_LAYERS,
    DEFAULT_SPREAD,
    KINDS,
    Kind,
    kind_circuit,
)
from w2s_lens.controls.synthetic_task import SyntheticTask
from w2s_lens.controls.weights import (
    FIRST_MARKER,
    MARK_JUNK,
    TOK_A,
    TOK_B,
    Circuit,
    Layout,
    circuit_weights,
    marker_codes,
)

__all__ = ["SyntheticControl", "build_control"]


@dataclass
class SyntheticControl(SyntheticTask):
    """A hand-built model plus its synthetic A/B task (the task's methods:
    :class:`~w2s_lens.controls.synthetic_task.SyntheticTask`).

    Attributes:
        model: the HookedTransformer (``cfg.model_name`` is ``"w2s-synthetic-<kind>"``).
        kind: one of :data:`KINDS`.
        family_layers: the constructed best steering layer (a layer *number*) of each family;
            for ``null`` each id's argmax (random), for ``letter`` the behaviour layer, empty
            for ``linear``.
        vocab: token strings, indexed by token id.
        n_filler: number of filler token types.
        erase: the fraction α of the behaviour feature erased per layer.
        readout: the reader gain w (steerability at the best layer is ``4 * readout``).
        seed: the seed of the weight noise, the junk embeddings and the random gains.
        circuit: the gains, directions and letter push (:class:`Circuit`).
        layout: the residual layout (:class:`Layout`).
        codes: ``[n_families, D]`` marker codes.
    """

    model: HookedTransformer
    kind: str
    family_layers: list[int]
    vocab: list[str]
    n_filler: int
    erase: float
    readout: float
    seed: int
    circuit: Circuit = field(repr=False)
    layout: Layout = field(repr=False)
    codes: np.ndarray = field(repr=False)
    min_fillers: int = 2
    max_fillers: int = 5

    @property
    def n_families(self) -> int:
        """Number of markers (input families; ids for ``null``)."""
        return self.circuit.n_markers

    @property
    def n_layers(self) -> int:
        """Number of transformer blocks."""
        return self.model.cfg.n_layers

    @property
    def letter_layers(self) -> list[int]:
        """Layers of the letter push (empty when there is none)."""
        return [int(x) for x in np.flatnonzero(self.circuit.letter_push)]

    def family_vectors(self) -> Float[Tensor, "family layer d_model"]:
        """``[K, n_layers, d_model]``: ``2 u_f`` (the family's noise-free P2S vector from layer 1
        on) at every layer, layer 0 included."""
        v = torch.zeros(self.n_families, self.n_layers, self.model.cfg.d_model)
        v[:, :, self.layout.beh] = 2.0 * torch.tensor(
            self.circuit.directions, dtype=torch.float32)[:, None, :]
        return v

    def ideal_vectors(self) -> Float[Tensor, "layer d_model"]:
        """``[n_layers, d_model]``: the noise-free CAA vectors for family-balanced training
        data (0 at layer 0, the mean of the families' ``2 u_f`` after; ``2 e_BEH0`` when they
        share one direction)."""
        v = self.family_vectors().mean(0)
        v[0] = 0.0
        return v

    def letter_direction(self) -> Float[Tensor, " d_model"]:
        """``W_U[:, A] - W_U[:, B]``: the pure "answer A, not B" direction of the unembedding."""
        W_U = self.model.W_U.detach()
        return (W_U[:, TOK_A] - W_U[:, TOK_B]).float().cpu()

    def expected_slopes(self, letter: str | None = None) -> np.ndarray:
        """``[K, n_layers]`` exact (noise-free) slopes for steering family f with
        :meth:`family_vectors`; ``letter`` gives one presentation's slope (the letter push
        with its sign), ``None`` the mirrored slope."""
        if letter not in (None, "A", "B"):
            raise ValueError(f"letter must be None, 'A' or 'B', got {letter!r}")
        if not self.circuit.linear:
            return self.circuit.slopes(letter)
        out = np.zeros((self.n_families, self.n_layers))
        if letter is not None:
            direct = self.letter_direction()[self.layout.beh].double().numpy()
            out += (1.0 if letter == "A" else -1.0) * 2.0 * (self.circuit.directions @ direct
                                                             )[:, None]
        return out


def build_control(
    kind: Kind = "positive",
    n_families: int | None = None,
    n_layers: int | None = None,
    d_model: int | None = None,
    seed: int = 0,
    *,
    family_layers: list[int] | None = None,
    letter_layers: list[int] | None = None,
    n_filler: int = 16,
    erase: float | None = None,
    readout: float = 0.5,
    letter_gain: float | None = None,
    spread: float | None = None,
    noise: float = 0.02,
) -> SyntheticControl:
    """Build the hand-weighted model and task (instant, deterministic given ``seed``).

    Args:
        kind: one of :data:`KINDS` (see the module docstring).
        n_families: number of markers K. Default 3; ``null``, ``flat``: 256 ids;
            ``letter``, ``linear``: 1.
        n_layers: number of blocks. Default 4; ``null``, ``flat``: 6.
        d_model: residual width (default: at least 32, with >= 12 junk dimensions).
        seed: seed of the weight noise, the junk embeddings, the codes and the null's gains.
        family_layers: each family's reader layer (numbers in ``1..n_layers-1``). Default:
            ``positive``, ``l2s-direction-layer`` and ``continuation`` spread the families over
            ``1..n_layers-1``; ``negative``, ``l2s-direction`` and ``letter`` put every reader
            at ``n_layers // 2``. Not for ``null``, ``flat`` and ``linear``.
        letter_layers: two layers where a letter push of ``+letter_gain`` (answer A) and
            ``-letter_gain`` (answer B) sits; any kind but ``linear``. Default for ``letter``:
            ``[1, n_layers - 1]``.
        n_filler: number of filler token types.
        erase: fraction α in [0, 1] erased per layer. Default 0.5; ``null``, ``flat``,
            ``letter``, ``continuation``: 1.
        readout: reader gain w (the best slope is ``4 w``).
        letter_gain: gain of the letter push (default ``2 * readout``).
        spread: ``null``: relative spread of the per-id gains (default 0.25); ``flat``: of the
            per-id writer and reader directions off e0 (default 0.4).
        noise: standard deviation of the weight noise (0 = exact).

    Example:
        >>> c = build_control("null", n_families=64, seed=1)
        >>> np.allclose(c.expected_slopes()[:, 1:].mean(0), 4 * c.readout)
        True
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    K = DEFAULT_FAMILIES.get(kind, 3) if n_families is None else int(n_families)
    L = DEFAULT_LAYERS.get(kind, 4) if n_layers is None else int(n_layers)
    if K < 1 or L < 2:
        raise ValueError(f"need n_families >= 1 and n_layers >= 2, got {K} and {L}")
    if kind in ("letter", "linear") and K != 1:
        raise ValueError(f"kind {kind!r} has one family, got n_families={K}")
    if kind == "linear" and letter_layers is not None:
        raise ValueError("kind 'linear' has no MLPs, hence no letter push")
    erase = DEFAULT_ERASE.get(kind, 0.5) if erase is None else float(erase)
    spread = DEFAULT_SPREAD.get(kind, 0.25) if spread is None else float(spread)
    if not 0.0 <= erase <= 1.0:
        raise ValueError(f"erase must be in [0, 1], got {erase}")
    rng = np.random.default_rng(seed)
    circuit = kind_circuit(kind, K, L, family_layers, letter_layers, readout,
                       2 * readout if letter_gain is None else float(letter_gain), spread,
                       erase, rng)
    codes = marker_codes(K, rng)
    if d_model is None:
        d_model = max(32, Layout.min_d_model(circuit.n_beh, codes.shape[1]) + 8)
    layout = Layout(circuit.n_beh, codes.shape[1], int(d_model))
    max_fillers = 5
    cfg = HookedTransformerConfig(
        n_layers=L, d_model=layout.d_model,
        n_ctx=32,  # prompts are <= max_fillers + 4 tokens; room for answers and padding
        d_head=codes.shape[1] + min(MARK_JUNK, layout.n_junk), n_heads=3, d_mlp=circuit.mlp_width(),
        d_vocab=FIRST_MARKER + K + n_filler, act_fn="relu", normalization_type=None,
        positional_embedding_type="standard", model_name=f"w2s-synthetic-{kind}", seed=seed,
        device="cpu",
    )
    model = HookedTransformer(cfg)
    model.eval()
    state = circuit_weights(cfg, circuit, layout, codes, noise, seed)
    with torch.no_grad():
        for name, value in state.items():
            model.state_dict()[name].copy_(value)
    vocab = (["<bos>", "A", "B", "=A", "=B", "?"] + [f"F{f}" for f in range(K)]
             + [f"x{i}" for i in range(n_filler)])
    best = ([] if kind == "linear" else family_layers if family_layers is not None
            else [int(x) for x in circuit.slopes().argmax(1)])
    return SyntheticControl(model=model, kind=kind, family_layers=[int(x) for x in best],
                            vocab=vocab, n_filler=n_filler, erase=erase, readout=readout,
                            seed=seed, circuit=circuit, layout=layout, codes=codes,
                            max_fillers=max_fillers)
