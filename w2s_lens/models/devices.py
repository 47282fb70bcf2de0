"""Which torch device and dtype a model is loaded on: ``"auto"`` and names resolved, checked.

:func:`resolve_device` and :func:`resolve_dtype` turn what a user typed (or a torch object)
into a ``torch.device`` / ``torch.dtype``, refusing unknown values and devices this machine
does not have with a message naming the accepted ones, before anything is downloaded.

Example:
    >>> resolve_device("cpu"), resolve_dtype("auto", "cpu")
    (device(type='cpu'), torch.float32)
"""

from __future__ import annotations

import torch

__all__ = ["DTYPES", "resolve_device", "resolve_dtype"]

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
