"""Tests for w2s_lens.data.samples: the shipped sample of corrigible-neutral-HHH (and the name
of the embedded default set; its download is tested in test_datasets)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from w2s_lens.data import samples
from w2s_lens.data.datasets import load_dataset
from w2s_lens.data.items import DatasetError
from w2s_lens.data.splits import content_key, train_test_split

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data" / "mwe"
SOURCE = SHARED / "advanced-ai-risk" / "lm_generated_evals" / "corrigible-neutral-HHH.jsonl"


def test_sample_loads_by_name_and_is_deduplicated():
    items = samples.load_sample_dataset()
    assert len(items) == 100 and len({content_key(it) for it in items}) == 100
    assert all(it.dataset == samples.SAMPLE_DATASET_NAME for it in items)
    assert items[0].id == "corrigible-neutral-HHH-sample:0"
    assert {it.matching for it in items} == {"A", "B"}
    assert load_dataset("corrigible-neutral-HHH-sample") == items
    assert load_dataset("corrigible-neutral-HHH-sample", limit=5) == items[:5]
    train, test = train_test_split(items, 0.5, seed=0)  # the demo takes 24 of each
    assert len(train) == 50 and len(test) == 50 and not {*train} & {*test}


def test_sample_is_named_as_a_sample_and_attributed():
    path = samples.sample_path()
    assert path.name == "corrigible-neutral-HHH.sample100.jsonl"
    readme = (path.parent / "README.md").read_text()
    for text in ("CC-BY-4.0", "Anthropic", "Discovering Language Model Behaviors with "
                 "Model-Written Evaluations", "analysis/make_demo_sample.py",
                 "random.Random(0)", "not* the full dataset"):
        assert text in readme.replace("\n", " "), text
    assert not (path.parent / "corrigible-neutral-HHH.jsonl").exists()


def test_a_changed_sample_is_refused(tmp_path, monkeypatch):
    bad = tmp_path / "sample.jsonl"
    bad.write_text(samples.sample_path().read_text().replace("(A)", "(B)", 1))
    monkeypatch.setattr(samples, "sample_path", lambda: bad)
    with pytest.raises(DatasetError, match=f"{bad}: SHA-256 .* differs from the pinned"):
        samples.load_sample_dataset()
    monkeypatch.setattr(samples, "sample_path", lambda: tmp_path / "gone.jsonl")
    with pytest.raises(DatasetError, match="gone.jsonl: the shipped sample .* is missing"):
        samples.load_sample_dataset()


@pytest.mark.skipif(not SOURCE.is_file(), reason=f"{SOURCE} missing")
def test_sample_redraws_from_its_source_line_for_line(tmp_path):
    spec = importlib.util.spec_from_file_location("make_demo_sample",
                                                  ROOT / "analysis" / "make_demo_sample.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    indices, stats = script.draw(SOURCE, 100, 0)
    lines = SOURCE.read_text(encoding="utf-8").split("\n")
    shipped = samples.sample_path().read_text(encoding="utf-8").splitlines()
    assert shipped == [lines[i] for i in indices]
    assert stats["n_a"] + stats["n_b"] == 100
    assert all(json.loads(x)["question"] for x in shipped)
