"""The kinds of synthetic control (:mod:`w2s_lens.controls.synthetic`), as circuits.

:func:`kind_circuit` turns a kind and its arguments into the
:class:`~w2s_lens.controls.weights.Circuit` (reader gains per marker and layer, behaviour
directions, letter push, eraser) that :func:`w2s_lens.controls.synthetic.build_control` writes
into a model. The exact slope of family f at layer l, for steering with ``2 u_f``, is
``4 Σ_{l' >= l} gains[f, l'] (1 - erase) ** (l' - l)``.

The kinds, as gains (w = ``readout``):

* ``positive``: ``gains[f, family_layers[f]] = w``, erase 0.5: family f's slope peaks at its
  own layer, ``4 w 0.5 ** (l_f - l)`` before it, ~0 after. Letters are balanced in every
  family, so the letter says nothing about the best layer.
* ``negative``: the same with every family at one layer.
* ``null``: ``n_families`` ids (default 256; each item draws one), ``gains[m, l] = w (1 +
  spread z[m, l])`` at every layer >= 1 with ``z`` standard normal, centred and scaled per
  layer over the ids, erase 1: every layer's mean slope is exactly ``4 w`` and each input's
  argmax layer is random. Draw the training and test items from disjoint ids
  (``make_examples(..., families=...)``): then nothing about a test input's best layer can
  be learnt.
* ``flat``: ``n_families`` ids (default 256) like ``null``, every reader gain ``w`` at every
  layer >= 1, erase 1, but ``1 + FLAT_DIMS`` behaviour dimensions: id m writes along
  ``u_m = e0 + spread ζ_m`` and its reader at layer l reads ``r_ml = e0 + spread ξ_ml``
  (ζ, ξ standard normal in the other dimensions, ζ centred over the ids). With the ideal CAA
  vector ``2 e0`` every input's slope is ``4 w`` at every layer; a CAA vector estimated from
  a few training ids is ``2 (e0 + spread ζ̄)``, and its noise ζ̄ decides each input's best
  layer (``argmax_l ξ_ml · ζ̄``): a different one for vectors from other items (two halves'
  ζ̄ are nearly orthogonal in the ``FLAT_DIMS`` dimensions). Nothing stable to find, nothing
  to learn.
* ``letter``: one family, ``gains[0, family_layers[0]] = w`` plus a letter push of
  ``+letter_gain`` at ``letter_layers[0]`` and ``-letter_gain`` at ``letter_layers[1]``,
  erase 1. Single order: A items are best at the first, B items at the second letter layer
  (slope ``4 letter_gain > 4 w``); mirrored, the push cancels and the behaviour layer wins
  for everyone.
* ``linear``: layer 0's attention only, no MLP, ``W_U[:, A]`` and ``W_U[:, B]`` random (blind
  to the attention's query/key dimensions), noise on the embeddings only.
* ``l2s-direction``: family f's direction is ``±e_BEH(f // 2)`` (+ for even f): with three
  families ``+e0, -e0, +e1``, so CAA's mean is ``(2/3) e1`` and families 0 and 1 cannot be
  steered by it at all (family 2 gets a third of its slope); every reader at one layer,
  erase 0.5.
* ``l2s-direction-layer``: these directions with a different reader layer per family.
* ``continuation``: the gains of ``positive`` (family f read at its own layer), erase 1, but
  the readers sit at the *marker* (``read_at="IS_MARK"``), which is no longer in the prompt:
  it is the first token of both answer continuations, ``(F<f>, A)`` and ``(F<f>, B)``, so the
  family is invisible at the prompt's last token and the best layer is set by the answer.

Example:
    >>> import numpy as np
    >>> c = kind_circuit("positive", 3, 4, None, None, 0.5, 1.0, 0.25, 0.5,
    ...                  np.random.default_rng(0))
    >>> c.slopes().argmax(1).tolist()  # family f is best steered at layer f + 1
    [1, 2, 3]
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from w2s_lens.controls.weights import Circuit

__all__ = ["DEFAULT_ERASE", "DEFAULT_FAMILIES", "DEFAULT_LAYERS", "DEFAULT_SPREAD",
           "FLAT_DIMS", "ID_KINDS", "KINDS", "Kind", "MARKER_READ_KINDS", "kind_circuit",
           "spread_layers"]

Kind = Literal["positive", "negative", "null", "letter", "linear", "l2s-direction",
               "l2s-direction-layer", "flat", "continuation"]
#: Every kind :func:`~w2s_lens.controls.synthetic.build_control` builds.
KINDS: tuple[str, ...] = ("positive", "negative", "null", "letter", "linear", "l2s-direction",
                          "l2s-direction-layer", "flat", "continuation")
#: The kinds whose markers are random ids (each item draws one), not families.
ID_KINDS = ("null", "flat")
#: The kinds whose marker is the first token of the answer continuations (cloze examples),
#: read there; the prompt carries no marker.
MARKER_READ_KINDS = ("continuation",)
#: Defaults of :func:`~w2s_lens.controls.synthetic.build_control` that differ by kind.
DEFAULT_FAMILIES = {"null": 256, "flat": 256, "letter": 1, "linear": 1}
DEFAULT_LAYERS = {"null": 6, "flat": 6}
DEFAULT_ERASE = {"null": 1.0, "flat": 1.0, "letter": 1.0, "linear": 0.0, "continuation": 1.0}
DEFAULT_SPREAD = {"flat": 0.4}
#: ``flat``: behaviour dimensions besides e0 that the vector-estimate noise lives in.
FLAT_DIMS = 64


def spread_layers(n_families: int, n_layers: int) -> list[int]:
    """Distinct reader layers for ``n_families`` families, spread over ``1..n_layers-1``.

    Example:
        >>> spread_layers(3, 10)
        [1, 5, 9]
    """
    if n_families > n_layers - 1:
        raise ValueError(f"{n_families} families with their own layers need n_layers - 1 >= "
                         f"n_families (layer 0's CAA vector is ~0), got n_layers={n_layers}")
    layers = [int(round(x)) for x in np.linspace(1, n_layers - 1, n_families)]
    return layers if len(set(layers)) == n_families else list(range(1, n_families + 1))


def kind_circuit(kind: str, K: int, L: int, family_layers: list[int] | None,
                 letter_layers: list[int] | None, readout: float, letter_gain: float,
                 spread: float, erase: float, rng: np.random.Generator) -> Circuit:
    """The circuit of a ``kind`` with ``K`` markers and ``L`` layers (arguments as in
    :func:`~w2s_lens.controls.synthetic.build_control`; ``rng`` draws the null's gains).

    Example:
        >>> c = kind_circuit("letter", 1, 4, None, None, 0.5, 1.0, 0.25, 1.0,
        ...                  np.random.default_rng(0))
        >>> c.letter_push.tolist()
        [0.0, 1.0, 0.0, -1.0]
    """
    if kind in ("null", "flat", "linear") and family_layers is not None:
        raise ValueError(f"kind {kind!r} takes no family_layers")
    if kind == "flat":
        return _flat_circuit(K, L, letter_layers, readout, letter_gain, spread, erase, rng)
    if family_layers is None and kind not in ("null", "linear"):
        spread_out = kind in ("positive", "l2s-direction-layer", "continuation")
        family_layers = spread_layers(K, L) if spread_out else [max(1, L // 2)] * K
    gains = np.zeros((K, L))
    if kind == "null":
        z = rng.standard_normal((K, L - 1))
        z = (z - z.mean(0)) / z.std(0)
        gains[:, 1:] = readout * (1.0 + spread * z)
    elif family_layers is not None:
        if len(family_layers) != K or not all(1 <= x < L for x in family_layers):
            raise ValueError(f"family_layers must be {K} layer numbers in 1..{L - 1}, got "
                             f"{family_layers}")
        gains[np.arange(K), family_layers] = readout
    n_beh = (K + 1) // 2 if kind.startswith("l2s") else 1
    directions = np.zeros((K, n_beh))
    for f in range(K):
        directions[f, f // 2 if n_beh > 1 else 0] = -1.0 if n_beh > 1 and f % 2 else 1.0
    if kind == "letter" and letter_layers is None:
        letter_layers = [1, L - 1]
    return Circuit(gains, directions, _letter_push(L, letter_layers, letter_gain), erase,
                   linear=kind == "linear",
                   read_at="IS_MARK" if kind in MARKER_READ_KINDS else "END")


def _letter_push(L: int, letter_layers: list[int] | None, letter_gain: float) -> np.ndarray:
    push = np.zeros(L)
    if letter_layers is not None:
        if len(letter_layers) != 2 or len(set(letter_layers)) != 2 or not all(
                1 <= x < L for x in letter_layers):
            raise ValueError(f"letter_layers must be two distinct layers in 1..{L - 1}, got "
                             f"{letter_layers}")
        push[letter_layers[0]], push[letter_layers[1]] = letter_gain, -letter_gain
    return push


def _flat_circuit(K: int, L: int, letter_layers: list[int] | None, readout: float,
                  letter_gain: float, spread: float, erase: float,
                  rng: np.random.Generator) -> Circuit:
    """The ``flat`` kind (see the module docstring)."""
    gains = np.zeros((K, L))
    gains[:, 1:] = readout
    zeta = rng.standard_normal((K, FLAT_DIMS))
    directions = np.concatenate([np.ones((K, 1)), spread * (zeta - zeta.mean(0))], axis=1)
    xi = rng.standard_normal((K, L, FLAT_DIMS))
    readers = np.concatenate([np.ones((K, L, 1)), spread * xi], axis=2)
    return Circuit(gains, directions, _letter_push(L, letter_layers, letter_gain), erase,
                   reader_directions=readers)
