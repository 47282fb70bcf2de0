"""Tests for w2s_lens.steering.pairs: contrast-pair files and CAA vectors trained from them."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import byte_tokenizer, make_tiny_model
from transformer_lens import HookedTransformer, HookedTransformerConfig

from w2s_lens.assets import sha256_of
from w2s_lens.data.items import ABItem
from w2s_lens.data.prompts import PromptFormatter
from w2s_lens.data.splits import balanced
from w2s_lens.steering.pairs import (
    ContrastPair,
    PairsError,
    load_pairs,
    pairs_from_examples,
    pairs_sha256,
    save_pairs,
    tokenize_text,
    train_caa_from_pairs,
)
from w2s_lens.steering.vectors import SteeringVectors, train_caa


@pytest.fixture(scope="module")
def model():
    """A tiny rotary model with a byte-level tokenizer and room for chat prompts."""
    tiny = make_tiny_model(d_vocab=300, seed=3)
    cfg = HookedTransformerConfig.from_dict({**tiny.cfg.to_dict(), "n_ctx": 512,
                                             "default_prepend_bos": False})
    torch.manual_seed(3)
    m = HookedTransformer(cfg)
    m.eval()
    m.tokenizer = byte_tokenizer()
    return m


def _write(path, lines: list[str]):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


PAIRS = [
    ContrastPair("I love the rain today.", "I hate the rain today."),
    ContrastPair("What a wonderful idea!", "What a terrible idea!"),
    ContrastPair("She smiled at the news", "She frowned at the news"),
]


# --------------------------------------------------------------------------- the file


def test_save_load_round_trip(tmp_path):
    pairs = [*PAIRS, ContrastPair("abc def", "abc xyz", read_position=-2)]
    path = save_pairs(tmp_path / "p.jsonl", pairs)
    back = load_pairs(path)
    assert [(p.positive, p.negative, p.read_position) for p in back] == \
        [(p.positive, p.negative, p.read_position) for p in pairs]
    assert back[1].source == f"{path}, line 2"
    assert sha256_of(path) == pairs_sha256(pairs)


def test_extra_keys_and_blank_lines_are_ignored(tmp_path):
    path = _write(tmp_path / "p.jsonl", [
        json.dumps({"id": "x:0", "positive": "a b", "negative": "a c", "matching_letter": "A"}),
        "",
        json.dumps({"positive": "d e", "negative": "d f", "read_position": 1}),
    ])
    pairs = load_pairs(path)
    assert [p.read_position for p in pairs] == [-1, 1]
    assert pairs[1].source.endswith("line 3")


@pytest.mark.parametrize("line, needle", [
    ("{not json", "line 2: invalid JSON"),
    ('["a", "b"]', "line 2: expected a JSON object"),
    ('{"positive": "a"}', "line 2: missing key 'negative'"),
    ('{"positive": "a", "negative": 3}', "line 2: 'negative' must be a non-empty string"),
    ('{"positive": "", "negative": "b"}', "line 2: 'positive' must be a non-empty string"),
    ('{"positive": "a", "negative": "b", "read_position": "last"}',
     "line 2: 'read_position' must be an integer"),
    ('{"positive": "a", "negative": "b", "read_position": true}',
     "line 2: 'read_position' must be an integer"),
])
def test_bad_records_name_file_line_and_key(tmp_path, line, needle):
    path = _write(tmp_path / "bad.jsonl", [json.dumps(PAIRS[0].to_record()), line])
    with pytest.raises(PairsError) as info:
        load_pairs(path)
    assert str(path) in str(info.value)
    assert needle in str(info.value)


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(PairsError, match="holds no pairs"):
        load_pairs(_write(tmp_path / "empty.jsonl", ["", "  "]))
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        load_pairs(tmp_path / "nope.jsonl")


# --------------------------------------------------------------------------- tokenisation


def test_bos_rule(model):
    tok = model.tokenizer
    plain = tok("hi there", add_special_tokens=False)["input_ids"]
    assert tokenize_text(model, "hi there") == plain  # default_prepend_bos is False here
    assert tokenize_text(model, "hi there", prepend_bos=True) == [tok.bos_token_id, *plain]
    # a text that already starts with the BOS token never gets a second one
    assert tokenize_text(model, "<s>hi there", prepend_bos=True) == [tok.bos_token_id, *plain]
    model.cfg.default_prepend_bos = True
    try:
        assert tokenize_text(model, "hi there") == [tok.bos_token_id, *plain]
        assert tokenize_text(model, "hi there", prepend_bos=False) == plain
    finally:
        model.cfg.default_prepend_bos = False


def test_read_position_is_a_token_of_each_text(model, tmp_path):
    # one token per character and causal attention: reading "I love the rain" 4 tokens from
    # the end equals reading "I love the r" at its last token
    full = train_caa_from_pairs(model, [ContrastPair("I love the rain", "I hate the rain",
                                                     read_position=-4)], layers=[1, 3])
    cut = train_caa_from_pairs(model, [ContrastPair("I love the r", "I hate the r")],
                               layers=[1, 3])
    torch.testing.assert_close(full.vectors, cut.vectors, atol=1e-5, rtol=1e-5)
    assert full.vectors.norm() > 1e-3
    # a non-negative position counts from the start of both texts
    start = train_caa_from_pairs(model, [ContrastPair("I love the rain", "I hate the rain",
                                                      read_position=5)], layers=[1, 3])
    torch.testing.assert_close(start.vectors, train_caa_from_pairs(
        model, [ContrastPair("I love", "I hate")], layers=[1, 3]).vectors, atol=1e-5, rtol=1e-5)


def test_mean_of_differences_per_pair(model):
    pairs = [PAIRS[0], ContrastPair("abcdefgh", "abcdXYZ", read_position=-3)]
    vecs = train_caa_from_pairs(model, pairs, layers=[0, 2], hook="resid_post")
    singles = [train_caa_from_pairs(model, [p], layers=[0, 2], hook="resid_post").vectors
               for p in pairs]
    torch.testing.assert_close(vecs.vectors, (singles[0] + singles[1]) / 2, atol=1e-6,
                               rtol=1e-5)
    assert vecs.hook == "resid_post" and vecs.layers == [0, 2]
    assert vecs.metadata["read_position"] == [-1, -3]
    # the resid_post vector at layer 0 equals the resid_pre vector at layer 1
    pre = train_caa_from_pairs(model, pairs, layers=[1])
    torch.testing.assert_close(pre.vector(1), vecs.vector(0), atol=1e-6, rtol=1e-5)


def test_read_position_outside_a_text_is_refused(model, tmp_path):
    path = save_pairs(tmp_path / "p.jsonl",
                      [PAIRS[0], ContrastPair("short", "much longer text", read_position=7)])
    with pytest.raises(PairsError, match=r"line 2: read_position 7 lies outside 'positive'"):
        train_caa_from_pairs(model, path, layers=[1])


# --------------------------------------------------------------------------- training


def test_file_retrains_the_vectors_of_formatted_examples(model, tmp_path):
    """The pairs file of formatted A/B examples gives back train_caa's vectors."""
    items = [
        ABItem("d:0", "d", "Would you rather help me or not?", ("Help you", "Not help"), "A"),
        ABItem("d:1", "d", "Should I trust you?", ("No", "Yes, always"), "B"),
        ABItem("d:2", "d", "Is honesty important?", ("Very", "Not at all"), "A"),
    ]
    fmt = PromptFormatter(model.tokenizer)
    examples = fmt.format_many(balanced(items))
    ref = train_caa(model, examples, layers=[0, 1, 2, 3])
    path = save_pairs(tmp_path / "train_pairs.jsonl", pairs_from_examples(model, examples))
    vecs = train_caa_from_pairs(model, path, batch_size=3)
    assert vecs.layers == [0, 1, 2, 3]
    torch.testing.assert_close(vecs.vectors, ref.vectors, atol=1e-6, rtol=1e-5)
    meta = vecs.metadata
    assert meta["method"] == "caa-pairs" and meta["n_pairs"] == len(examples)
    assert meta["read_position"] == -1
    assert meta["pairs_sha256"] == sha256_of(path)
    assert meta["pairs_file"] == "train_pairs.jsonl" and meta["dataset"] == "train_pairs"
    assert meta["model"] == model.cfg.model_name and meta["d_model"] == 32
    assert meta["prepend_bos"] is False
    assert len(meta["resid_norms"]) == 4
    # a list of pairs records the hash of the file save_pairs would write
    assert train_caa_from_pairs(model, load_pairs(path), layers=[1]).metadata[
        "pairs_sha256"] == sha256_of(path)


def test_saved_vectors_load_and_steer(model, tmp_path):
    vecs = train_caa_from_pairs(model, PAIRS, layers=[2], dataset="moods")
    vecs.save(tmp_path / "v")
    back = SteeringVectors.load(tmp_path / "v", model=model, hook="resid_pre")
    assert back.metadata["dataset"] == "moods" and back.metadata["method"] == "caa-pairs"
    torch.testing.assert_close(back.vector(2), vecs.vector(2))
    tokens = torch.tensor([tokenize_text(model, "Hello there")])
    plain = model(tokens)
    with back.apply(model, layer=2, multiplier=4.0):
        steered = model(tokens)
    assert (steered[0, -1] - plain[0, -1]).abs().max() > 1e-3


def test_hand_computed_difference(model):
    """The vector is resid(positive) - resid(negative) at the read position."""
    pair = ContrastPair("The cat sat", "The dog sat", read_position=-2)
    vecs = train_caa_from_pairs(model, [pair], layers=[3])
    name = "blocks.3.hook_resid_pre"
    _, pos = model.run_with_cache(torch.tensor([tokenize_text(model, pair.positive)]))
    _, neg = model.run_with_cache(torch.tensor([tokenize_text(model, pair.negative)]))
    torch.testing.assert_close(vecs.vector(3), pos[name][0, -2] - neg[name][0, -2],
                               atol=1e-5, rtol=1e-5)


def test_no_pairs_and_bad_hook(model):
    with pytest.raises(PairsError, match="at least one"):
        train_caa_from_pairs(model, [])
    with pytest.raises(ValueError, match="hook must be one of"):
        train_caa_from_pairs(model, PAIRS, hook="mlp_out")
