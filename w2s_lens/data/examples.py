"""The unit every downstream stage works on: one tokenised prompt and the two answers it scores.

A :class:`SteeringExample` is what comes out of prompt formatting (``w2s_lens.data.prompts``) or
out of a synthetic task (``w2s_lens.controls.synthetic``), and what the activation cache, the CAA
trainer and the sweep engines take in. It carries token ids, not text, so the engine never
re-tokenises and never depends on a chat template.

Two readouts (:data:`READOUTS`):

``letter``
    the prompt ends right before an answer letter; the two answers are single tokens
    (``matching_token_id``, ``non_matching_token_id``) and propensity is their logit
    difference.
``cloze``
    the prompt is the question without its choices, the assistant turn opened; the two
    answers are the option *texts* as token sequences (``matching_continuation``,
    ``non_matching_continuation``) and propensity is the difference of their summed
    log-probabilities (as lm-evaluation-harness scores multiple-choice continuations).

For one-token continuations both readouts give the same number: a difference of
log-probabilities at one position is a difference of logits.

Both letter orders of one item share a ``unit`` (the item's id): mirrored evaluation averages
over a unit's presentations, and splits and bootstrap resampling treat a unit as one input.

Example:
    >>> ex = SteeringExample(id="demo:0", text="Q? (", tokens=(5, 6, 7),
    ...                      matching_token_id=11, non_matching_token_id=12, matching_letter="A")
    >>> ex.steer_from_position, ex.readout, ex.continuations
    (2, 'letter', ((11,), (12,)))
    >>> ex.positive_tokens
    (5, 6, 7, 11)
    >>> SteeringExample.from_record(ex.to_record()) == ex
    True
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from w2s_lens.choices import ReadoutName

__all__ = ["SteeringExample", "SWAP_SUFFIX", "fit_context", "unit_of"]


#: Suffix of the id of an item's letter-swapped presentation.
SWAP_SUFFIX = "~swap"


def unit_of(example_id: str) -> str:
    """The item an example id belongs to: the id without its ``~swap`` suffix.

    >>> unit_of("myopic-reward:3~swap"), unit_of("myopic-reward:3")
    ('myopic-reward:3', 'myopic-reward:3')
    """
    return example_id[: -len(SWAP_SUFFIX)] if example_id.endswith(SWAP_SUFFIX) else example_id


@dataclass(frozen=True)
class SteeringExample:
    """One prompt and the two answers whose preference steering should move.

    Attributes:
        id: a stable identifier, e.g. ``"corrigible-neutral-HHH:17"`` (``"~swap"`` appended
            for the letter-swapped presentation).
        text: the exact text given to the model (chat template included), for the record.
        tokens: the prompt's token ids, BOS included when the model uses one.
        matching_token_id: letter readout: token id of the answer that matches the behaviour
            (``None`` for the cloze readout).
        non_matching_token_id: letter readout: token id of the answer that does not.
        matching_letter: ``"A"`` or ``"B"``: which letter (option slot) matches in this
            presentation (for letter-balance checks; for cloze, the slot in the source item).
        group: optional free label (dataset name, synthetic family, ...).
        unit: the item this presentation belongs to (default: ``unit_of(id)``).
        matching_continuation: cloze readout: token ids of the matching option text.
        non_matching_continuation: cloze readout: token ids of the other option text.
    """

    id: str
    text: str
    tokens: tuple[int, ...]
    matching_token_id: int | None = None
    non_matching_token_id: int | None = None
    matching_letter: str = "A"
    group: str = ""
    unit: str = ""
    matching_continuation: tuple[int, ...] = ()
    non_matching_continuation: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if len(self.tokens) == 0:
            raise ValueError(f"example {self.id!r} has no tokens")
        if self.matching_letter not in ("A", "B"):
            raise ValueError(f"example {self.id!r}: matching_letter must be 'A' or 'B'")
        object.__setattr__(self, "tokens", tuple(int(t) for t in self.tokens))
        object.__setattr__(self, "matching_continuation",
                           tuple(int(t) for t in self.matching_continuation))
        object.__setattr__(self, "non_matching_continuation",
                           tuple(int(t) for t in self.non_matching_continuation))
        if not self.unit:
            object.__setattr__(self, "unit", unit_of(self.id))
        if self.matching_continuation or self.non_matching_continuation:
            if not (self.matching_continuation and self.non_matching_continuation):
                raise ValueError(f"example {self.id!r}: a cloze example needs both "
                                 "continuations non-empty")
            if self.matching_continuation == self.non_matching_continuation:
                raise ValueError(f"example {self.id!r}: the two continuations are equal")
            return
        if self.matching_token_id is None or self.non_matching_token_id is None:
            raise ValueError(f"example {self.id!r}: give the two answer token ids (letter "
                             "readout) or the two continuations (cloze readout)")
        object.__setattr__(self, "matching_token_id", int(self.matching_token_id))
        object.__setattr__(self, "non_matching_token_id", int(self.non_matching_token_id))
        if self.matching_token_id == self.non_matching_token_id:
            raise ValueError(f"example {self.id!r}: matching and non-matching tokens are equal")

    @property
    def readout(self) -> ReadoutName:
        """``"cloze"`` when the answers are continuations, else ``"letter"``."""
        return "cloze" if self.matching_continuation else "letter"

    @property
    def continuations(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """``(matching, non-matching)`` answer token sequences (one token each for letters)."""
        if self.readout == "cloze":
            return self.matching_continuation, self.non_matching_continuation
        return (self.matching_token_id,), (self.non_matching_token_id,)  # type: ignore[return-value]

    @property
    def steer_from_position(self) -> int:
        """Index of the first steered token: the last prompt token."""
        return len(self.tokens) - 1

    @property
    def positive_tokens(self) -> tuple[int, ...]:
        """The prompt followed by the matching answer (CAA's positive)."""
        return self.tokens + self.continuations[0]

    @property
    def negative_tokens(self) -> tuple[int, ...]:
        """The prompt followed by the non-matching answer (CAA's negative)."""
        return self.tokens + self.continuations[1]

    def to_record(self) -> dict[str, Any]:
        """A JSON-able dict (tuples as lists), with the readout and steering start spelled out.

        >>> SteeringExample("d:0", "t", (1, 2), 3, 4, "B").to_record()["readout"]
        'letter'
        """
        rec = asdict(self)
        for key in ("tokens", "matching_continuation", "non_matching_continuation"):
            rec[key] = list(rec[key])
        rec["readout"] = self.readout
        rec["steer_from_position"] = self.steer_from_position
        return rec

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> SteeringExample:
        """Rebuild an example from :meth:`to_record` output (derived keys are ignored).

        >>> ex = SteeringExample("d:0", "t", (1, 2), matching_letter="A",
        ...                      matching_continuation=(5, 6), non_matching_continuation=(7,))
        >>> SteeringExample.from_record(ex.to_record()).readout
        'cloze'
        """
        fields = ("id", "text", "tokens", "matching_token_id", "non_matching_token_id",
                  "matching_letter", "group", "unit", "matching_continuation",
                  "non_matching_continuation")
        missing = [k for k in ("id", "tokens") if k not in rec]
        if missing:
            raise KeyError(f"example record lacks {missing}")
        kw = {k: rec[k] for k in fields if k in rec}
        for key in ("tokens", "matching_continuation", "non_matching_continuation"):
            if key in kw:
                kw[key] = tuple(kw[key])
        kw.setdefault("text", "")
        return cls(**kw)


def fit_context(examples: Sequence[SteeringExample], n_ctx: int, skip: bool = False
                ) -> list[SteeringExample]:
    """``examples`` whose prompt and longer answer fit the model's ``n_ctx`` tokens; call it
    after formatting and before any forward pass.

    Args:
        examples: the formatted examples.
        n_ctx: the model's context length (``model.cfg.n_ctx``).
        skip: drop the examples that do not fit (with one :class:`UserWarning` naming them)
            instead of refusing them all.

    Raises:
        ValueError: naming the first few examples that do not fit, their lengths and
            ``n_ctx`` (without ``skip``, or when nothing fits).

    Example:
        >>> ex = SteeringExample("d:0", "t", (1, 2, 3), 4, 5)
        >>> fit_context([ex], 8) == [ex]
        True
        >>> try:
        ...     fit_context([ex], 3)
        ... except ValueError as exc:
        ...     print(exc)
        1 example(s) longer than the model's context of 3 tokens: d:0 (4 tokens)
    """
    def length(ex: SteeringExample) -> int:
        return len(ex.tokens) + max(len(c) for c in ex.continuations)

    long = [ex for ex in examples if length(ex) > n_ctx]
    if not long:
        return list(examples)
    shown = ", ".join(f"{ex.id} ({length(ex):,} tokens)" for ex in long[:5])
    more = ", ..." if len(long) > 5 else ""
    text = (f"{len(long)} example(s) longer than the model's context of {n_ctx:,} tokens: "
            f"{shown}{more}")
    if not skip or len(long) == len(examples):
        raise ValueError(text)
    warnings.warn(f"skipped {text}", UserWarning, stacklevel=2)
    return [ex for ex in examples if length(ex) <= n_ctx]
