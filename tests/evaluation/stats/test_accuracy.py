"""Tests for w2s_lens.evaluation.stats.accuracy (router accuracy and its majority-layer
baseline)."""

from __future__ import annotations

import numpy as np
import pytest

from w2s_lens.evaluation.stats import accuracy as A
from w2s_lens.evaluation.stats import metrics as M


def test_topk_accuracy() -> None:
    scores = np.array([[0.1, 0.5, 0.3, 0.2], [0.9, 0.05, 0.03, 0.02]])
    assert M.topk_accuracy(scores, [2, 3], k=3) == 0.5
    assert M.topk_accuracy(scores, [2, 3], k=1) == 0.0
    with pytest.raises(ValueError, match="scores must be"):
        A.topk_accuracy([0.1, 0.2], [1])


def test_routing_accuracy() -> None:
    assert A.routing_accuracy([1, 2, 2, 0], [1, 2, 0, 0]) == 0.75
    assert A.routing_accuracy([], []) is None


def test_majority_accuracy_ties_to_the_earlier_layer() -> None:
    assert A.majority_accuracy([3, 3, 1], [3, 1, 3, 0]) == 0.5  # majority 3
    assert A.majority_accuracy([2, 0, 2, 0], [0, 0, 2]) == pytest.approx(2 / 3)  # tie -> 0
    assert A.majority_accuracy([], [1]) is None and A.majority_accuracy([1], []) is None
    with pytest.raises(ValueError, match="negative"):
        A.majority_accuracy([-1, 2], [2])
    # a router that always predicts the majority layer has exactly this accuracy
    rng = np.random.default_rng(0)
    train, test = rng.integers(0, 5, 30), rng.integers(0, 5, 20)
    major = int(np.argmax(np.bincount(train)))
    assert A.majority_accuracy(train, test) == A.routing_accuracy(np.full(20, major), test)
