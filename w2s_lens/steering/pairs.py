"""CAA vectors from your own contrast pairs: a JSONL file of positive/negative texts.

The file holds one JSON object per line (blank lines are skipped)::

    {"positive": "I love talking about dogs.", "negative": "I hate talking about dogs."}
    {"positive": "...(A", "negative": "...(B", "read_position": -1}

``positive`` and ``negative`` are the exact texts given to the model (chat template included
when you want one); ``read_position`` (optional integer, default ``-1``: the last token;
negative values count from each text's end) is the token whose residual is read. Other keys
(``id``, ``matching_letter``, ...) are ignored, so the ``train_pairs.jsonl`` that
``w2s-lens sweep`` writes is a valid pairs file. This is the shape steering-vectors trains on
(``SteeringVectorTrainingSample(positive_str, negative_str)``, read at token ``-1``).

The vector at layer l is ``mean_i(resid_l(positive_i)[p_i] - resid_l(negative_i)[p_i])``,
read at the hook the vectors are later added at.

Tokenisation rule (:func:`tokenize_text`): the text is tokenised exactly as written
(``tokenizer(text, add_special_tokens=False)``, no truncation) and a BOS token is put in front
when ``prepend_bos`` says so: by default when ``model.cfg.default_prepend_bos`` is true (what
``model.to_tokens(text)`` does), but never a second one when the text already starts with
the BOS token. Why: plain-text pairs written for a model that expects a BOS (GPT-2 style) get
it, as with ``model.to_tokens``; texts that already carry the chat template and, where the
prompt formatter added one, the BOS (the A/B prompts of w2s-lens and the sweep's
``train_pairs.jsonl``) are not changed, so retraining from that file gives the sweep's
vectors (on the embedded models, whose ``default_prepend_bos`` is false, exactly). Tokenizer
extras that ``add_special_tokens=True`` would add (an EOS appended by some tokenizers) are
never added, and an over-long text is refused instead of being silently truncated. Pass
``prepend_bos=False`` to tokenise the text exactly as written.

Example:
    >>> pairs = load_pairs("pairs.jsonl")  # doctest: +SKIP
    >>> vecs = train_caa_from_pairs(model, "pairs.jsonl", layers=range(4, 20))  # doctest: +SKIP
    >>> vecs.metadata["method"], vecs.metadata["n_pairs"]  # doctest: +SKIP
    ('caa-pairs', 128)
    >>> vecs.save("runs/my-vectors")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformer_lens import HookedTransformer

from w2s_lens.artifacts.json_files import write_jsonl
from w2s_lens.artifacts.provenance import library_versions
from w2s_lens.assets import sha256_of
from w2s_lens.data.examples import SteeringExample
from w2s_lens.steering.activations import HOOKS, cache_residuals
from w2s_lens.steering.vectors import SteeringVectors, model_name

__all__ = [
    "ContrastPair",
    "PairsError",
    "load_pairs",
    "pairs_from_examples",
    "pairs_sha256",
    "save_pairs",
    "tokenize_text",
    "train_caa_from_pairs",
]

logger = logging.getLogger(__name__)

#: The keys a pairs record may use; anything else is ignored.
PAIR_KEYS = ("positive", "negative", "read_position")


class PairsError(ValueError):
    """A pairs file or a contrast pair is malformed (the message names the file and line)."""


@dataclass(frozen=True)
class ContrastPair:
    """One positive/negative text pair and the token position to read.

    Attributes:
        positive: the text whose activations the vector points towards.
        negative: the text it points away from.
        read_position: token index read in both texts; negative counts from each text's end.
        source: where the pair came from (``"pairs.jsonl, line 3"``), named in errors.

    Example:
        >>> ContrastPair("I love it.", "I hate it.").read_position
        -1
    """

    positive: str
    negative: str
    read_position: int = -1
    source: str = ""

    def __post_init__(self) -> None:
        where = self.source or "contrast pair"
        for key in ("positive", "negative"):
            value = getattr(self, key)
            if not isinstance(value, str) or not value:
                raise PairsError(f"{where}: {key!r} must be a non-empty string, got {value!r}")
        if isinstance(self.read_position, bool) or not isinstance(self.read_position, int):
            raise PairsError(f"{where}: 'read_position' must be an integer, got "
                             f"{self.read_position!r}")

    def to_record(self) -> dict[str, Any]:
        """The JSON object of this pair in a pairs file (``source`` is not written).

        >>> ContrastPair("a", "b").to_record()
        {'positive': 'a', 'negative': 'b', 'read_position': -1}
        """
        return {"positive": self.positive, "negative": self.negative,
                "read_position": self.read_position}


def load_pairs(path: str | os.PathLike) -> list[ContrastPair]:
    """Read a pairs JSONL file; errors name the file, the line and the key.

    Args:
        path: one ``{"positive": TEXT, "negative": TEXT[, "read_position": INT]}`` per line.

    Returns:
        the pairs in file order, each with ``source="<path>, line <n>"``.

    Raises:
        FileNotFoundError: no such file.
        PairsError: invalid JSON, a record that is not an object, a missing or non-string
            ``positive``/``negative``, a non-integer ``read_position``, or no pairs at all.

    Example:
        >>> pairs = load_pairs("pairs.jsonl")  # doctest: +SKIP
        >>> pairs[0].source  # doctest: +SKIP
        'pairs.jsonl, line 1'
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pairs file {path} does not exist")
    pairs: list[ContrastPair] = []
    # a user's input file (not an artifact): read line by line to name lines in errors
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}, line {lineno}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise PairsError(f"{where}: invalid JSON ({exc.msg})") from exc
            if not isinstance(record, dict):
                raise PairsError(f"{where}: expected a JSON object with 'positive' and "
                                 f"'negative', got {type(record).__name__}")
            for key in ("positive", "negative"):
                if key not in record:
                    raise PairsError(f"{where}: missing key {key!r} (keys: {sorted(record)})")
            pairs.append(ContrastPair(record["positive"], record["negative"],
                                      record.get("read_position", -1), source=where))
    if not pairs:
        raise PairsError(f"pairs file {path} holds no pairs")
    return pairs


def save_pairs(path: str | os.PathLike, pairs: Sequence[ContrastPair]) -> Path:
    """Write pairs as a pairs JSONL file (atomically), readable by :func:`load_pairs`.

    Example:
        >>> save_pairs("pairs.jsonl", [ContrastPair("yes", "no")])  # doctest: +SKIP
        PosixPath('pairs.jsonl')
    """
    return write_jsonl(path, [p.to_record() for p in pairs])


def pairs_sha256(pairs: Sequence[ContrastPair]) -> str:
    """SHA-256 of the file :func:`save_pairs` writes for ``pairs`` (without writing it).

    >>> len(pairs_sha256([ContrastPair("a", "b")]))
    64
    """
    text = "".join(json.dumps(p.to_record()) + "\n" for p in pairs)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _resolve_bos(model: HookedTransformer, prepend_bos: bool | None) -> bool:
    return bool(model.cfg.default_prepend_bos) if prepend_bos is None else bool(prepend_bos)


def tokenize_text(
    model: HookedTransformer, text: str, prepend_bos: bool | None = None
) -> list[int]:
    """Token ids of ``text`` under the pairs tokenisation rule (see the module docstring).

    Args:
        model: a HookedTransformer with a tokenizer.
        text: the exact text.
        prepend_bos: put the BOS token in front (never twice); ``None``:
            ``model.cfg.default_prepend_bos``.

    Example:
        >>> tokenize_text(model, "<|im_start|>user\\nHi")  # doctest: +SKIP
        [1, 4093, 198, 22557]
    """
    tokenizer = model.tokenizer
    if tokenizer is None:
        raise ValueError("the model has no tokenizer; set model.tokenizer first")
    ids = [int(t) for t in tokenizer(text, add_special_tokens=False)["input_ids"]]
    if _resolve_bos(model, prepend_bos):
        bos = tokenizer.bos_token_id
        if bos is None:
            raise ValueError("prepend_bos is set but the tokenizer has no BOS token; pass "
                             "prepend_bos=False")
        if not ids or ids[0] != bos:
            ids = [int(bos), *ids]
    return ids


def pairs_from_examples(
    model: HookedTransformer, examples: Sequence[SteeringExample]
) -> list[ContrastPair]:
    """The contrast pairs of formatted A/B examples, as texts (prompt + each answer).

    Each text is the decoded token sequence, and decoding is checked to give back the exact
    tokens under ``tokenize_text(model, text, prepend_bos=False)``, so a file written from
    these pairs retrains the same vectors with ``prepend_bos=False`` (and, when the model's
    ``default_prepend_bos`` agrees with the formatter's BOS choice, with the default).

    Raises:
        PairsError: an example whose text does not re-tokenise to its tokens (named by id).

    Example:
        >>> save_pairs("train_pairs.jsonl", pairs_from_examples(model, examples))  # doctest: +SKIP
    """
    out = []
    for ex in examples:
        texts = []
        for tokens in (ex.positive_tokens, ex.negative_tokens):
            text = model.tokenizer.decode(list(tokens))
            if tokenize_text(model, text, prepend_bos=False) != list(tokens):
                raise PairsError(f"example {ex.id!r}: its decoded text does not tokenise back "
                                 f"to its tokens, so it cannot be stored as text")
            texts.append(text)
        out.append(ContrastPair(texts[0], texts[1], -1, source=f"example {ex.id!r}"))
    return out


def _tokenize_pairs(
    model: HookedTransformer, pairs: Sequence[ContrastPair], prepend_bos: bool | None
) -> tuple[list[list[int]], list[list[int]]]:
    pos_seqs, neg_seqs = [], []
    n_ctx = int(model.cfg.n_ctx)
    for i, pair in enumerate(pairs):
        where = pair.source or f"pair {i}"
        seqs = []
        for key in ("positive", "negative"):
            ids = tokenize_text(model, getattr(pair, key), prepend_bos)
            if len(ids) > n_ctx:
                raise PairsError(f"{where}: {key!r} has {len(ids)} tokens, more than the "
                                 f"model's context of {n_ctx}")
            p = pair.read_position
            if not -len(ids) <= p < len(ids):
                raise PairsError(f"{where}: read_position {p} lies outside {key!r} "
                                 f"({len(ids)} tokens)")
            seqs.append(ids)
        if seqs[0] == seqs[1]:
            logger.warning("%s: positive and negative tokenise identically; their difference "
                           "is zero", where)
        pos_seqs.append(seqs[0])
        neg_seqs.append(seqs[1])
    return pos_seqs, neg_seqs


def train_caa_from_pairs(
    model: HookedTransformer,
    pairs: Sequence[ContrastPair] | str | os.PathLike,
    layers: Sequence[int] | None = None,
    hook: str = "resid_pre",
    batch_size: int = 8,
    dataset: str | None = None,
    progress: bool = False,
    prepend_bos: bool | None = None,
) -> SteeringVectors:
    """CAA vectors from contrast pairs: mean of positive minus negative residuals.

    Args:
        model: the HookedTransformer (with its tokenizer).
        pairs: the pairs, or the path of a pairs JSONL file (then its SHA-256 and name are
            recorded, and ``dataset`` defaults to the file's stem).
        layers: layers to train (default: all); stored in ascending order.
        hook: ``"resid_pre"`` (default), ``"resid_mid"`` or ``"resid_post"``: read here, and
            later added here by :meth:`SteeringVectors.apply`.
        batch_size: sequences per forward pass.
        dataset: recorded in the metadata.
        progress: show a progress bar.
        prepend_bos: the BOS rule of :func:`tokenize_text` (default: the model's default,
            never a second BOS).

    Returns:
        :class:`~w2s_lens.steering.vectors.SteeringVectors` whose metadata has
        ``method="caa-pairs"``, ``read_position`` (the common one, or one per pair), ``n_pairs``,
        ``pairs_sha256`` (of the file, or of the file :func:`save_pairs` would write for a
        list), ``pairs_file``, ``prepend_bos``, ``resid_norms`` and library versions.

    Example:
        >>> vecs = train_caa_from_pairs(model, "pairs.jsonl")  # doctest: +SKIP
        >>> with vecs.apply(model, layer=12, multiplier=4.0):  # doctest: +SKIP
        ...     print(model.generate("Tell me about your day.", max_new_tokens=30))
    """
    if hook not in HOOKS:
        raise ValueError(f"hook must be one of {HOOKS}, got {hook!r}")
    pairs_file = None
    if isinstance(pairs, (str, os.PathLike)):
        pairs_file = Path(pairs)
        pair_list = load_pairs(pairs_file)
        sha = sha256_of(pairs_file)
        dataset = dataset if dataset is not None else pairs_file.stem
    else:
        pair_list = list(pairs)
        if not pair_list:
            raise PairsError("train_caa_from_pairs needs at least one contrast pair")
        sha = pairs_sha256(pair_list)
    layers = (list(range(model.cfg.n_layers)) if layers is None
              else sorted({int(x) for x in layers}))
    pos_seqs, neg_seqs = _tokenize_pairs(model, pair_list, prepend_bos)
    read = [p.read_position for p in pair_list]
    resid = cache_residuals(model, pos_seqs + neg_seqs, layers, read + read, hook=hook,
                            batch_size=batch_size, progress=progress)
    n = len(pair_list)
    vectors = (resid[:n] - resid[n:]).mean(dim=0)
    meta = {
        "model": model_name(model),
        "d_model": model.cfg.d_model,
        "dataset": dataset,
        "method": "caa-pairs",
        "read_position": read[0] if len(set(read)) == 1 else read,
        "n_pairs": n,
        "pairs_sha256": sha,
        "pairs_file": None if pairs_file is None else pairs_file.name,
        "prepend_bos": _resolve_bos(model, prepend_bos),
        "resid_norms": [float(x) for x in resid.norm(dim=-1).mean(dim=0)],
        "versions": library_versions(),
    }
    logger.info("trained %d layer vectors on %d pairs", len(layers), n)
    return SteeringVectors(vectors, layers, hook, meta)
