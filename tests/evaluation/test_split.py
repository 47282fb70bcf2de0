"""What a run evaluates on (w2s_lens.evaluation.split): the items a config names, the train /
test split and its caps, the formatted examples of each split and variant, and the dataset label
of a run on given items. No model is loaded: :func:`prepare_examples` needs only a tokenizer and
a context length, given here by a stand-in with the tests' byte tokenizer."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from conftest import byte_tokenizer, write_ab_dataset

from w2s_lens.data.items import ABItem
from w2s_lens.data.samples import DEFAULT_DATASET_NAME
from w2s_lens.data.splits import train_test_split
from w2s_lens.evaluation.config import EvalConfig
from w2s_lens.evaluation.config_parts import ConfigError
from w2s_lens.evaluation.split import SplitExamples, items_dataset, load_items, prepare_examples

DATASET = "corrigible-neutral-HHH"  # a dataset with built-in sentences for the OOD variants


def _items(n: int, dataset: str = DATASET, start: int = 0) -> list[ABItem]:
    return [ABItem(f"{dataset}:{i}", dataset, f"Question {i}?", ("yes", "no"), "AB"[i % 2])
            for i in range(start, start + n)]


@pytest.fixture(scope="module")
def model() -> SimpleNamespace:
    """What prepare_examples reads of a model: its tokenizer and its context length."""
    return SimpleNamespace(tokenizer=byte_tokenizer(), cfg=SimpleNamespace(n_ctx=512))


def _units(examples) -> list[str]:
    return list(dict.fromkeys(ex.unit for ex in examples))


# --------------------------------------------------------------------------- prepare_examples


def test_the_split_is_the_seeded_split_capped_and_mirrored(model) -> None:
    items = _items(10)
    cfg = EvalConfig(n_train=3, n_test=2, seed=4)
    exs = prepare_examples(model, items, cfg)
    assert isinstance(exs, SplitExamples)
    train, test = train_test_split(items, 0.5, 4)
    assert _units(exs.sweep_train) == [it.id for it in train[:3]]
    assert _units(exs.test["base"]) == [it.id for it in test[:2]]
    # mirrored letters: each item in both orders, the original first
    assert [ex.id for ex in exs.sweep_train[:2]] == [train[0].id, f"{train[0].id}~swap"]
    assert [ex.matching_letter for ex in exs.sweep_train[:2]] == [train[0].matching,
                                                                  train[0].swapped().matching]
    assert len(exs.vector_train) == 6 and len(exs.test["base"]) == 4
    assert set(_units(exs.sweep_train)).isdisjoint(_units(exs.test["base"]))
    assert exs.test_questions == [it.question for it in test[:2]]
    assert exs.prompt_format["system_prompt"] == cfg.data.system_prompt


def test_every_variant_is_formatted_from_the_same_test_items(model) -> None:
    exs = prepare_examples(model, _items(8), EvalConfig(variants=("base", "sys-neg")))
    assert list(exs.test) == ["base", "sys-neg"]
    base, neg = exs.test["base"], exs.test["sys-neg"]
    assert [ex.id for ex in base] == [ex.id for ex in neg]
    assert all(a.text != b.text for a, b in zip(base, neg))  # another system prompt
    assert EvalConfig().data.system_prompt in base[0].text
    assert EvalConfig().data.system_prompt not in neg[0].text


def test_single_order_and_cloze_runs_sweep_each_item_once(model) -> None:
    items = _items(10)
    single = prepare_examples(model, items, EvalConfig(mirror=False, both_orders=False))
    assert len(single.sweep_train) == len(single.vector_train) == 5
    assert not any(ex.id.endswith("~swap") for ex in single.sweep_train + single.test["base"])
    cloze = prepare_examples(model, items, EvalConfig(readout="cloze"))
    assert len(cloze.sweep_train) == 5 and len(cloze.vector_train) == 10  # vectors: both orders
    assert {ex.readout for ex in cloze.sweep_train + cloze.test["base"]} == {"cloze"}
    assert {ex.readout for ex in cloze.vector_train} == {"letter"}  # the contrast pairs


def test_a_predefined_split_keeps_its_test_items_apart(model) -> None:
    gen, test = _items(6), _items(4, start=100)
    exs = prepare_examples(model, gen, EvalConfig(n_test=3, mirror=False), test_items=test)
    assert sorted(_units(exs.sweep_train)) == sorted(it.id for it in gen)  # all of them
    assert _units(exs.test["base"]) == [it.id for it in train_test_split(test, 1.0, 0)[0][:3]]


def test_an_empty_side_of_the_split_is_refused_before_formatting(model) -> None:
    with pytest.raises(ConfigError, match="the split left 0 training and 1 test items"):
        prepare_examples(model, _items(1), EvalConfig())
    with pytest.raises(ConfigError, match="left 4 training and 0 test items; give more items"):
        prepare_examples(model, _items(4), EvalConfig(), test_items=[])


def test_a_model_without_a_tokenizer_or_too_short_a_context_is_refused(model) -> None:
    bare = SimpleNamespace(tokenizer=None, cfg=model.cfg)
    with pytest.raises(ValueError, match="no tokenizer; use evaluate_examples"):
        prepare_examples(bare, _items(4), EvalConfig())
    short = SimpleNamespace(tokenizer=model.tokenizer, cfg=SimpleNamespace(n_ctx=16))
    with pytest.raises(ValueError, match=f"longer than the model's context of 16 tokens: "
                                         f"{DATASET}:"):
        prepare_examples(short, _items(4), EvalConfig())


# --------------------------------------------------------------------------- load_items


def test_a_file_or_a_named_file_in_the_data_dir_gives_no_predefined_split(tmp_path) -> None:
    path = write_ab_dataset(tmp_path, n=6, name="toy")
    items, test = load_items(EvalConfig(dataset=str(path)))
    assert test is None and len(items) == 6 and {it.dataset for it in items} == {"toy"}
    again, test = load_items(EvalConfig(dataset="toy", data_dir=str(tmp_path)))
    assert test is None and [it.id for it in again] == [it.id for it in items]


def test_the_default_dataset_is_the_built_in_sample() -> None:
    items, test = load_items(EvalConfig())
    assert test is None and len(items) > 0
    assert {it.dataset for it in items} == {DEFAULT_DATASET_NAME}
    assert [it.id for it in load_items(EvalConfig(dataset=DEFAULT_DATASET_NAME))[0]] == [
        it.id for it in items]


# --------------------------------------------------------------------------- items_dataset


def test_a_run_on_given_items_is_labelled_with_their_dataset() -> None:
    cfg = EvalConfig(n_train=4, seed=3)
    named = items_dataset(cfg, _items(3, "mine"))
    assert named.data.dataset == "mine"
    assert named.replace(dataset=cfg.data.dataset) == cfg  # nothing else changed
    assert cfg.data.dataset == "default"  # the config given is left alone


@pytest.mark.parametrize(("config", "items"), [
    (EvalConfig(dataset="given"), _items(3, "mine")),  # a name was given
    (EvalConfig(), _items(2, "mine") + _items(2, "other")),  # items of two datasets
    (EvalConfig(), _items(3, DEFAULT_DATASET_NAME)),  # the built-in default keeps "default"
    (EvalConfig(), []),  # no items: no dataset to take
])
def test_the_label_is_kept_when_the_items_do_not_name_one_dataset(config, items) -> None:
    assert items_dataset(config, items) is config
