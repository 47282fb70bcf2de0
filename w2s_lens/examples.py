"""The unit every downstream stage works on: one tokenised A/B prompt.

A :class:`SteeringExample` is what comes out of prompt formatting (``w2s_lens.prompts``) or
out of a synthetic task (``w2s_lens.synthetic``), and what the activation cache, the CAA
trainer and the sweep engines take in. It carries token ids, not text, so the engine never
re-tokenises and never depends on a chat template.

Example:
    >>> ex = SteeringExample(id="demo:0", text="Q? (", tokens=(5, 6, 7),
    ...                      matching_token_id=11, non_matching_token_id=12, matching_letter="A")
    >>> ex.steer_from_position
    2
    >>> ex.positive_tokens
    (5, 6, 7, 11)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["SteeringExample"]


@dataclass(frozen=True)
class SteeringExample:
    """One prompt whose next token is an answer letter.

    Attributes:
        id: a stable identifier, e.g. ``"corrigible-neutral-HHH:17"`` (``"~swap"`` appended
            for the letter-swapped presentation).
        text: the exact text given to the model (chat template included), for the record.
        tokens: the prompt's token ids, BOS included when the model uses one.
        matching_token_id: token id of the answer that matches the behaviour.
        non_matching_token_id: token id of the answer that does not.
        matching_letter: ``"A"`` or ``"B"``: which letter matches (for letter-balance checks).
        group: optional free label (dataset name, synthetic family, ...).
    """

    id: str
    text: str
    tokens: tuple[int, ...]
    matching_token_id: int
    non_matching_token_id: int
    matching_letter: str
    group: str = ""

    def __post_init__(self) -> None:
        if len(self.tokens) == 0:
            raise ValueError(f"example {self.id!r} has no tokens")
        if self.matching_token_id == self.non_matching_token_id:
            raise ValueError(f"example {self.id!r}: matching and non-matching tokens are equal")
        if self.matching_letter not in ("A", "B"):
            raise ValueError(f"example {self.id!r}: matching_letter must be 'A' or 'B'")
        object.__setattr__(self, "tokens", tuple(int(t) for t in self.tokens))

    @property
    def steer_from_position(self) -> int:
        """Index of the first steered token: the last prompt token."""
        return len(self.tokens) - 1

    @property
    def positive_tokens(self) -> tuple[int, ...]:
        """The prompt followed by the matching answer token (CAA's positive)."""
        return self.tokens + (self.matching_token_id,)

    @property
    def negative_tokens(self) -> tuple[int, ...]:
        """The prompt followed by the non-matching answer token (CAA's negative)."""
        return self.tokens + (self.non_matching_token_id,)

    def to_record(self) -> dict:
        """A JSON-able dict (tokens as a list)."""
        rec = asdict(self)
        rec["tokens"] = list(self.tokens)
        rec["steer_from_position"] = self.steer_from_position
        return rec
