"""Tests for w2s_lens.data.behaviours."""

from __future__ import annotations

from pathlib import Path

import pytest

from w2s_lens.data.behaviours import BEHAVIOUR_SENTENCES, BehaviourError, behaviour_sentences
from w2s_lens.data.datasets import DATASET_NAMES
from w2s_lens.data.samples import DEFAULT_DATASET_NAME

SHARED_MWE = Path(__file__).resolve().parents[3] / "shared" / "data" / "mwe"


@pytest.mark.parametrize("name", [*DATASET_NAMES, DEFAULT_DATASET_NAME])
def test_every_dataset_has_sentences(name):
    pos, neg = behaviour_sentences(name)
    assert pos != neg
    for s in (pos, neg):
        assert s.strip() == s and s.endswith(".") and 20 < len(s) < 120
        assert "(A)" not in s and "(B)" not in s


def test_no_stray_entries():
    assert set(BEHAVIOUR_SENTENCES) == {*DATASET_NAMES, DEFAULT_DATASET_NAME}


@pytest.mark.skipif(not SHARED_MWE.is_dir(), reason=f"{SHARED_MWE} missing")
def test_every_shared_file_has_sentences():
    for path in SHARED_MWE.rglob("*.jsonl"):
        assert path.stem in BEHAVIOUR_SENTENCES, path


def test_overrides_and_custom_datasets():
    pos, neg = BEHAVIOUR_SENTENCES["openness"]
    assert behaviour_sentences("openness", pos="P.") == ("P.", neg)
    assert behaviour_sentences("openness", neg="N.") == (pos, "N.")
    assert behaviour_sentences("mine", "P.", "N.") == ("P.", "N.")


def test_unknown_dataset_needs_both():
    with pytest.raises(BehaviourError, match="pass pos= and neg="):
        behaviour_sentences("mine")
    with pytest.raises(KeyError, match="pass neg="):
        behaviour_sentences("mine", pos="P.")
    with pytest.raises(ValueError, match="non-empty"):
        behaviour_sentences("mine", pos="P.", neg="  ")


def test_the_shipped_sample_has_its_source_sentences():
    from w2s_lens.data.behaviours import BEHAVIOUR_ALIASES
    from w2s_lens.data.samples import SAMPLE_DATASET_NAME

    assert BEHAVIOUR_ALIASES == {SAMPLE_DATASET_NAME: "corrigible-neutral-HHH"}
    assert behaviour_sentences(SAMPLE_DATASET_NAME) == \
        BEHAVIOUR_SENTENCES["corrigible-neutral-HHH"]
    assert behaviour_sentences(SAMPLE_DATASET_NAME, neg="N.")[1] == "N."
