"""Parsing and checking the values of ``w2s-lens`` options: argparse ``type=`` parsers with
clear errors (:func:`floats`, :func:`finite`, :func:`positive`, :func:`threads`,
:func:`layers`, :func:`cap`, :func:`names`), and the checks run before any model loads
(:func:`check_layer_options`, :func:`unwritable`, :func:`scoring_from_args`), which raise
:class:`OptionError`.

Imports only the standard library, so ``w2s-lens --help`` stays instant.

Example:
    >>> import argparse
    >>> p = argparse.ArgumentParser()
    >>> _ = p.add_argument("--layers", type=layers)
    >>> p.parse_args(["--layers", "15,3"]).layers
    [3, 15]
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["OptionError", "cap", "check_layer_options", "finite", "floats", "layers", "names",
           "positive", "scoring_from_args", "threads", "unwritable", "usable_cores"]


class OptionError(ValueError):
    """A command-line option that parses but cannot work (checked before any model loads)."""


def floats(text: str) -> list[float]:
    """Comma-separated numbers.

    Example:
        >>> floats("-1,0,1.5")
        [-1.0, 0.0, 1.5]
    """
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") \
            from exc
    if not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected finite numbers (no nan or inf), got {text!r}")
    return values


def finite(text: str) -> float:
    """One finite number (``nan`` and ``inf`` refused).

    Example:
        >>> finite("0.25")
        0.25
    """
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from exc
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number (no nan or inf), got {text!r}")
    return value


def positive(text: str) -> float:
    """One finite number above 0.

    Example:
        >>> positive("0.5")
        0.5
    """
    value = finite(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}")
    return value


def scoring_from_args(args: argparse.Namespace) -> str:
    """The cloze scoring a command line asks for: ``--scoring``, else ``mean`` with
    ``--length-norm``, else ``sum``; the two options must not disagree.

    Example:
        >>> scoring_from_args(argparse.Namespace(scoring=None, length_norm=True))
        'mean'
    """
    if args.length_norm and args.scoring not in (None, "mean"):
        raise OptionError(f"--length-norm means --scoring mean, not --scoring {args.scoring}")
    return args.scoring or ("mean" if args.length_norm else "sum")


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one).

    Example:
        >>> usable_cores() >= 1
        True
    """
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else max(1, os.cpu_count() or 1)


def threads(text: str) -> int:
    """A torch CPU thread count: 1 to the cores this process may use.

    Example:
        >>> threads("1")
        1
    """
    cores = usable_cores()
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= cores:
        raise argparse.ArgumentTypeError(
            f"expected 1..{cores} (the cores this process may use), got {text!r}; leave "
            f"--threads out to use all {cores}")
    return value


def layers(text: str) -> list[int] | None:
    """``"all"`` (None) or comma-separated layers, each once, sorted.

    Example:
        >>> layers("15,3"), layers("all")
        ([3, 15], None)
    """
    if text == "all":
        return None
    try:
        given = [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected 'all' or comma-separated layers, got "
                                         f"{text!r}") from exc
    if not given or min(given) < 0:
        raise argparse.ArgumentTypeError(f"layers must be non-negative integers, got {text!r}")
    twice = sorted({x for x in given if given.count(x) > 1})
    if twice:
        raise argparse.ArgumentTypeError(f"layer(s) {', '.join(map(str, twice))} given more than "
                                         f"once in {text!r}; name each layer once")
    return sorted(given)


def cap(text: str) -> int | None:
    """A positive count, or ``"all"`` (None: no cap).

    Example:
        >>> cap("64"), cap("all")
        (64, None)
    """
    if text == "all":
        return None
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a positive count or 'all', got {text!r}") \
            from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive count or 'all', got {text!r}")
    return value


def names(text: str) -> list[str]:
    """Comma-separated names.

    Example:
        >>> names("logreg, mlp,")
        ['logreg', 'mlp']
    """
    return [x.strip() for x in text.split(",") if x.strip()]


def check_layer_options(model: str, n_layers: int | None,
                        options: dict[str, int | list[int] | None], at_least: int = 1) -> None:
    """Refuse layer options outside ``model``'s ``0..n_layers-1`` (``None`` values are the
    defaults and pass; ``n_layers=None``: not known yet, no range check), and a ``--layers``
    list shorter than ``at_least``.

    Raises:
        OptionError: naming the option, the value and the model's range.

    Example:
        >>> check_layer_options("m", 30, {"--layers": [3, 15], "--embedding-layer": None}, 2)
        >>> try:
        ...     check_layer_options("m", 30, {"--embedding-layer": 999})
        ... except OptionError as exc:
        ...     print(exc)
        --embedding-layer 999 is outside m's layers 0..29
    """
    for option, value in options.items():
        values = [value] if isinstance(value, int) else list(value or [])
        bad = [v for v in values if n_layers is not None and not 0 <= v < n_layers]
        if n_layers is not None and bad:
            shown = ",".join(map(str, bad))
            raise OptionError(f"{option} {shown} is outside {model}'s layers 0..{n_layers - 1}")
    chosen = options.get("--layers")
    if isinstance(chosen, list) and len(chosen) < at_least:
        raise OptionError(f"--layers {','.join(map(str, chosen))}: W2S chooses a layer per input "
                          f"and needs at least {at_least} layers to choose from")


def unwritable(path: str | os.PathLike, option: str = "--out") -> str | None:
    """Why files cannot be written at ``path`` (a directory, made if missing), else ``None``.

    Probes the deepest existing folder on the way with a temporary file (removed at once) and
    its free space, so a read-only, unwritable or full destination is named before any work.
    An existing non-directory ``path`` passes (the command says what is wrong with it).

    Example:
        >>> import tempfile
        >>> unwritable(tempfile.mkdtemp()) is None
        True
        >>> afile = tempfile.mkstemp()[1]
        >>> unwritable(afile + "/run") == f"--out {afile}/run: cannot create it, {afile} is a file"
        True
    """
    target = Path(path).expanduser().absolute()
    probe = target
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if probe == target and not target.is_dir():
        return None
    if not probe.is_dir():
        return f"{option} {path}: cannot create it, {probe} is a file"
    try:
        with tempfile.TemporaryFile(dir=probe) as f:
            f.write(b"w2s-lens")
            f.flush()
    except OSError as exc:
        return f"{option} {path}: cannot write in {probe} ({exc.strerror or exc})"
    if shutil.disk_usage(probe).free < 16 << 20:
        return f"{option} {path}: the disk holding {probe} is full (under 16 MiB free)"
    return None
