"""Data shared by the L2S test modules (test_l2s*.py): synthetic inputs and contrast pairs."""

from __future__ import annotations

import numpy as np
import torch

from w2s_lens.data.examples import SteeringExample

D_IN, D_OUT, FAMILIES = 16, 12, 3


def families(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs from 3 families; each family has its own linear map x -> P2S, per layer."""
    g = torch.Generator().manual_seed(100)
    centers = torch.randn(FAMILIES, D_IN, generator=g) * 1.5
    maps = torch.randn(FAMILIES, 2, D_IN, D_OUT, generator=g) / D_IN ** 0.5
    g = torch.Generator().manual_seed(seed)
    fam = torch.randint(0, FAMILIES, (n,), generator=g)
    x = centers[fam] + torch.randn(n, D_IN, generator=g)
    return x, torch.einsum("nd,nldm->nlm", x, maps[fam])


def noise(n: int = 40, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets unrelated to the inputs: nothing to learn."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, D_IN, generator=g), torch.randn(n, 2, D_OUT, generator=g)


def examples(n: int = 6, seed: int = 0, swaps: bool = False) -> list[SteeringExample]:
    """Random-token contrast pairs (answers 60/61), with their letter swaps if ``swaps``."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        tokens = tuple(int(t) for t in rng.integers(2, 60, size=5 + i))
        out.append(SteeringExample(id=f"e{i}", text="", tokens=tokens,
                                   matching_token_id=60 + i % 2,
                                   non_matching_token_id=61 - i % 2,
                                   matching_letter="AB"[i % 2]))
        if swaps:
            out.append(SteeringExample(id=f"e{i}~swap", text="", tokens=tokens,
                                       matching_token_id=61 - i % 2,
                                       non_matching_token_id=60 + i % 2,
                                       matching_letter="BA"[i % 2]))
    return out
