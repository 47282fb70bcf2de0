"""The synthetic A/B task of a control (:mod:`w2s_lens.controls.synthetic`): prompts, families
and letter orders.

A prompt is ``<bos> =X x.. F<m> x.. ?``:

* ``=A`` / ``=B`` (the *key*) says which answer letter expresses the behaviour: the matching
  letter is ``A`` for half the items and ``B`` for the other half;
* ``x0 .. x{n-1}``: 2-5 random filler tokens, so inputs differ;
* ``F<m>``: the *marker* (the family; for ``null`` an item's random id), at a random place
  among the fillers — never the last token, so the family reaches the steered position only
  through attention;
* ``?``: the query token, always last: the position steering starts at and the answer is read.

The answer is the next token, ``A`` or ``B``; ``propensity = logit(matching) -
logit(non-matching)``.

The ``continuation`` kind (:data:`~w2s_lens.controls.synthetic_kinds.MARKER_READ_KINDS`) moves
the marker out of the prompt and into the answers: the prompt is ``<bos> =X x.. ?``, drawn
exactly as for the other kinds but without looking at the family (its fillers follow the seed,
its key the item's index and the number of families in the pool), and the item is a *cloze*
example whose two continuations are ``(F<m>, A)`` and ``(F<m>, B)`` (the matching one first).
Both start with the marker, so the first token's log-probabilities cancel and ``propensity =
logit(matching) - logit(non-matching)`` read at the marker, a position the sweep steers (from
the last prompt token on).

:class:`SyntheticTask` makes and reads these prompts; ``SyntheticControl``
(:mod:`w2s_lens.controls.synthetic`) mixes it in and holds the fields it reads.

Example:
    >>> from w2s_lens.controls.synthetic import build_control
    >>> ex = build_control("positive").make_examples(2, seed=0)[1]
    >>> ex.group, ex.text.startswith(("<bos> =A", "<bos> =B")), ex.text.endswith(" ?")
    ('family1', True, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from w2s_lens.controls.synthetic_kinds import ID_KINDS, MARKER_READ_KINDS
from w2s_lens.controls.weights import BOS, FIRST_MARKER, KEY_A, KEY_B, QUERY, TOK_A, TOK_B
from w2s_lens.data.examples import SWAP_SUFFIX, SteeringExample

__all__ = ["SyntheticTask"]


class SyntheticTask:
    """Prompts of the synthetic task: ``<bos> =X x.. F<m> x.. ?`` with answers ``A`` / ``B``.

    A mixin: the class it is mixed into provides the fields read here (``kind``, ``vocab``,
    ``n_filler``, ``min_fillers``, ``max_fillers``) and :attr:`n_families`.

    Example:
        >>> from w2s_lens.controls.synthetic import build_control
        >>> c = build_control("positive")
        >>> ex = c.make_examples(1)[0]
        >>> c.swap(c.swap(ex)) == ex, c.family_of(ex), c.to_text(ex.tokens) == ex.text
        (True, 0, True)
    """

    kind: str
    vocab: list[str]
    n_filler: int
    min_fillers: int
    max_fillers: int

    @property
    def n_families(self) -> int:
        """Number of markers (input families; ids for ``null``); given by the subclass."""
        raise NotImplementedError

    @property
    def answer_token_ids(self) -> tuple[int, int]:
        """Token ids of ``A`` and ``B``."""
        return TOK_A, TOK_B

    def family_token(self, family: int) -> int:
        """Token id of the marker ``F<family>``."""
        if not 0 <= family < self.n_families:
            raise ValueError(f"family {family} out of range 0..{self.n_families - 1}")
        return FIRST_MARKER + family

    def family_of(self, example: SteeringExample) -> int:
        """The family of an example, read from its marker token (in the prompt, or in the
        answer continuations for the ``continuation`` kind)."""
        found = [t - FIRST_MARKER for t in example.tokens + example.matching_continuation
                 if FIRST_MARKER <= t < FIRST_MARKER + self.n_families]
        if len(found) != 1:
            raise ValueError(f"example {example.id!r} has {len(found)} marker tokens, not 1")
        return int(found[0])

    def to_text(self, tokens: tuple[int, ...] | list[int]) -> str:
        """Space-joined token strings, e.g. ``"<bos> =A x3 F1 x7 ?"``."""
        return " ".join(self.vocab[int(t)] for t in tokens)

    def make_examples(
        self, n: int, seed: int = 0, both_orders: bool = False,
        families: Sequence[int] | None = None,
    ) -> list[SteeringExample]:
        """``n`` prompts with balanced matching letters.

        Families cycle through ``families`` (default ``0, 1, .., K-1``) and item ``i`` matches
        ``A`` when ``i // len(families)`` is even, so every family sees both letters equally
        often (for ``n`` a multiple of ``2 len(families)``). For ``null`` and ``flat`` each
        item draws an id from ``families`` (default: all ids; without replacement while there
        are enough) and item ``i`` matches ``A`` when ``i`` is even.

        Args:
            n: number of items.
            seed: seed of the draw (fillers, marker place, ids); ids are
                ``"synthetic-<kind>:s<seed>:<i>"`` so two seeds give disjoint ids (use
                different seeds for train and test splits).
            both_orders: also return each item's letter-swapped presentation (key and answers
                swapped, same fillers, id suffixed ``"~swap"``) right after it.
            families: the markers to use, e.g. disjoint halves of the null's ids for the
                training and test splits, so no test id is ever seen in training; a family
                named twice gets twice the items (e.g. ``[0, 0, 1, 2]``).

        For ``continuation`` the prompt is drawn without the marker (the same ``seed`` and
        pool size give the same prompts whatever the families) and each example is a cloze
        example with continuations ``(F<m>, matching letter)`` and ``(F<m>, other letter)``.
        """
        rng = np.random.default_rng(seed)
        pool = list(range(self.n_families)) if families is None else [int(f) for f in families]
        for f in pool:
            self.family_token(f)  # range check
        if not pool:
            raise ValueError("families must name at least one family")
        drawn = (rng.choice(pool, size=n, replace=n > len(pool)) if self.kind in ID_KINDS
                 else None)
        out: list[SteeringExample] = []
        for i in range(n):
            if drawn is not None:
                family, letter = int(drawn[i]), "AB"[i % 2]
            else:
                family = pool[i % len(pool)]
                letter = "A" if (i // len(pool)) % 2 == 0 else "B"
            n_fill = int(rng.integers(self.min_fillers, self.max_fillers + 1))
            fillers = [int(t) for t in rng.integers(0, self.n_filler, size=n_fill)
                       + FIRST_MARKER + self.n_families]
            place = int(rng.integers(0, n_fill + 1))
            body = [*fillers[:place], self.family_token(family), *fillers[place:]]
            if self.kind in MARKER_READ_KINDS:  # the marker goes into the answers instead
                body = fillers
            ex = self._example(f"synthetic-{self.kind}:s{seed}:{i}", family, letter, body)
            out.append(ex)
            if both_orders:
                out.append(self.swap(ex))
        return out

    def swap(self, example: SteeringExample) -> SteeringExample:
        """The same item with the other letter matching (key token and answers swapped)."""
        tokens = list(example.tokens)
        tokens[1] = KEY_B if tokens[1] == KEY_A else KEY_A
        new_id = (example.id[: -len(SWAP_SUFFIX)] if example.id.endswith(SWAP_SUFFIX)
                  else example.id + SWAP_SUFFIX)
        if example.readout == "cloze":
            return replace(example, id=new_id, text=self.to_text(tokens), tokens=tuple(tokens),
                           matching_continuation=example.non_matching_continuation,
                           non_matching_continuation=example.matching_continuation,
                           matching_letter="B" if example.matching_letter == "A" else "A")
        return replace(
            example,
            id=new_id,
            text=self.to_text(tokens),
            tokens=tuple(tokens),
            matching_token_id=example.non_matching_token_id,
            non_matching_token_id=example.matching_token_id,
            matching_letter="B" if example.matching_letter == "A" else "A",
        )

    def _example(self, ex_id: str, family: int, letter: str, body: list[int]) -> SteeringExample:
        tokens = [BOS, KEY_A if letter == "A" else KEY_B, *body, QUERY]
        match, other = (TOK_A, TOK_B) if letter == "A" else (TOK_B, TOK_A)
        if self.kind in MARKER_READ_KINDS:
            marker = self.family_token(family)
            return SteeringExample(id=ex_id, text=self.to_text(tokens), tokens=tuple(tokens),
                                   matching_letter=letter, group=f"family{family}",
                                   matching_continuation=(marker, match),
                                   non_matching_continuation=(marker, other))
        return SteeringExample(id=ex_id, text=self.to_text(tokens), tokens=tuple(tokens),
                               matching_token_id=match, non_matching_token_id=other,
                               matching_letter=letter, group=f"family{family}")

    def family_onehot(self, examples: list[SteeringExample]) -> np.ndarray:
        """A ``[n, K]`` one-hot family matrix (an ideal router embedding, for reference)."""
        fam = np.array([self.family_of(e) for e in examples])
        return np.eye(self.n_families, dtype=np.float32)[fam]
