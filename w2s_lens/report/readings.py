"""Plain-words readings of ``results.json`` blocks for the report: the verdict of W2S against
the fixed layer, its test and minimal detectable difference, and the shares of the oracle's
gain that the letter oracle and the answer-form oracle also get (the artifact warnings).

Old results (without the exact test's keys) read as before: the verdict from the interval of
W2S − fixed, the letter oracle on every variant.

Example:
    >>> block = {"diff_vs_fixed_ci": [-0.1, 0.2], "diff_vs_fixed_mde": 0.15}
    >>> router_verdict(block)[:24], mde_reading(block)
    ('no detectable difference', 'none larger than +0.150 (80% power)')
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from w2s_lens.evaluation.stats.paired import verdict
from w2s_lens.report.formatting import _num, _signed, fmt_p, verdict_class

try:  # the sign-flip verdict where results have it, the labelled interval rule otherwise
    from w2s_lens.evaluation.stats.paired import verdict_of as _verdict_of
except ImportError:  # an evaluation package from before the sign-flip test
    _verdict_of = None

__all__ = [
    "FORM_ARTIFACT_THRESHOLD",
    "FORM_ROUTER_THRESHOLD",
    "LETTER_ARTIFACT_THRESHOLD",
    "OLDER_TEST",
    "artifact_warnings",
    "form_gain_share",
    "form_groups_text",
    "form_router_share",
    "letter_artifact",
    "letter_gain_share",
    "mde_reading",
    "router_verdict",
    "diff_test_text",
]

#: How the test of results written before the sign-flip test is named (their p-value is a
#: one-sided bootstrap p-value).
OLDER_TEST = "bootstrap (older results)"
#: Warn about a letter artifact when the letter oracle gets at least this share of the oracle's
#: gain over the fixed layer.
LETTER_ARTIFACT_THRESHOLD = 0.8
#: Warn about an answer-form artifact when the answer-form oracle gets at least this share.
FORM_ARTIFACT_THRESHOLD = 0.8
#: Warn the same way when the answer-form router (cloze runs) gets at least this share.
FORM_ROUTER_THRESHOLD = 0.8


def router_verdict(block: Mapping[str, Any]) -> str:
    """The verdict of one router block: ``diff_vs_fixed_verdict`` (the exact test's) when the
    block has it, else the interval rule on ``diff_vs_fixed_ci`` (older results).

    >>> router_verdict({"diff_vs_fixed_verdict": "too few informative items",
    ...                 "diff_vs_fixed_ci": [0.1, 0.2]})
    'too few informative items'
    >>> router_verdict({"diff_vs_fixed_ci": [0.1, 0.2]})[:32]
    'W2S beats fixed beyond the noise'
    """
    if _verdict_of is not None:
        return str(_verdict_of(block))
    given = block.get("diff_vs_fixed_verdict")
    return str(given) if given else verdict(block.get("diff_vs_fixed_ci"))


def _p(p: Any) -> str:
    text = fmt_p(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def diff_test_text(block: Mapping[str, Any], names: tuple[str, str] = ("W2S", "fixed")) -> str:
    """The test behind the verdict: one-sided p-values (W2S > fixed, and W2S < fixed where
    recorded), the test's name and how many items differ between W2S and fixed (``names``
    renames the two sides, e.g. for the answer-form router).

    >>> diff_test_text({"diff_vs_fixed_p": 0.0312, "diff_vs_fixed_p_less": 0.98,
    ...            "diff_vs_fixed_test": "exact sign-flip", "diff_vs_fixed_n_nonzero": 9})
    'p = 0.0312 for W2S > fixed, p = 0.98 for W2S < fixed (exact sign-flip; 9 informative items)'
    >>> diff_test_text({"diff_vs_fixed_p": 0.2}), diff_test_text({})
    ('p = 0.2 for W2S > fixed (bootstrap (older results))', '–')
    """
    if _num(block.get("diff_vs_fixed_p")) is None:
        return "–"
    a, b = names
    text = f"{_p(block['diff_vs_fixed_p'])} for {a} > {b}"
    if _num(block.get("diff_vs_fixed_p_less")) is not None:
        text += f", {_p(block['diff_vs_fixed_p_less'])} for {a} < {b}"
    bits = [str(block.get("diff_vs_fixed_test") or OLDER_TEST)]
    if block.get("diff_vs_fixed_n_nonzero") is not None:
        bits.append(f"{block['diff_vs_fixed_n_nonzero']} informative items")
    return f"{text} ({'; '.join(bits)})"


def mde_reading(block: Mapping[str, Any]) -> str:
    """The minimal detectable difference (80% power) of W2S − fixed, read as "none larger than
    X" where the verdict finds no difference; just the number where it finds one; ``–`` when
    the block has none.

    >>> mde_reading({"diff_vs_fixed_ci": [0.1, 0.3], "diff_vs_fixed_mde": 0.08})
    'MDE +0.080 (80% power)'
    >>> mde_reading({"diff_vs_fixed_ci": [0.1, 0.3]})
    '–'
    """
    mde = _num(block.get("diff_vs_fixed_mde"))
    if mde is None or math.isinf(mde):
        return "–"
    if verdict_class(router_verdict(block)) != "v-none":
        return f"MDE {_signed(mde)} (80% power)"
    return f"none larger than {_signed(mde)} (80% power)"


def _gain(vres: Mapping[str, Any], key: str) -> float | None:
    a = _num((vres.get(key) or {}).get("steerability"))
    f = _num((vres.get("fixed") or {}).get("steerability"))
    return None if a is None or f is None else a - f


def _gain_share(vres: Mapping[str, Any], key: str) -> float | None:
    g, o = _gain(vres, key), _gain(vres, "oracle")
    if g is None or o is None or o <= 0:
        return None
    return round(g / o, 12)


def letter_gain_share(vres: Mapping[str, Any]) -> float | None:
    """Share of the oracle's gain over fixed that the letter oracle also gets.

    ``(letter_oracle - fixed) / (oracle - fixed)`` in mean steerability; ``None`` when a piece is
    missing (``letter_oracle`` None: not applicable) or the oracle does not beat fixed.

    >>> letter_gain_share({"fixed": {"steerability": 0.1}, "oracle": {"steerability": 0.3},
    ...                    "letter_oracle": {"steerability": 0.28}})
    0.9
    """
    return _gain_share(vres, "letter_oracle")


def form_gain_share(vres: Mapping[str, Any]) -> float | None:
    """Share of the oracle's gain over fixed that the answer-form oracle (one layer per group
    of the answers' form) also gets; ``None`` without a ``form_oracle`` block.

    >>> form_gain_share({"fixed": {"steerability": 0.1}, "oracle": {"steerability": 0.3},
    ...                  "form_oracle": {"steerability": 0.25}})
    0.75
    """
    return _gain_share(vres, "form_oracle")


def form_router_share(vres: Mapping[str, Any]) -> float | None:
    """Share of the oracle's gain over fixed that the answer-form router (routing each test
    item by the form of its answers alone) gets; ``None`` without a ``form_router`` block.

    >>> form_router_share({"fixed": {"steerability": 0.1}, "oracle": {"steerability": 0.3},
    ...                    "form_router": {"steerability": 0.27}})
    0.85
    """
    return _gain_share(vres, "form_router")


def letter_artifact(vres: Mapping[str, Any]) -> tuple[float | None, str]:
    """``(share, basis)``: :func:`letter_gain_share` on the single-order diagnostic of a
    mirrored variant (each letter order scored on its own, where a letter-dependent best layer
    shows), else on the variant's own items; ``basis`` says which.

    >>> letter_artifact({"fixed": {"steerability": 0.1}, "oracle": {"steerability": 0.3},
    ...                  "letter_oracle": {"steerability": 0.3}, "single_order": None})
    (1.0, 'items')
    """
    single = vres.get("single_order")
    if isinstance(single, Mapping):
        return letter_gain_share(single), "single-order presentations"
    return letter_gain_share(vres), "items"


def form_groups_text(block: Mapping[str, Any] | None) -> str:
    """``short→12 (n=3), long→20``: the answer-form oracle's layer per group, with the group's
    size where the block records it (``–`` without groups).

    >>> form_groups_text({"groups": {"short": 12, "long": 20}, "group_sizes": {"short": 3}})
    'short→12 (n=3), long→20'
    """
    groups = (block or {}).get("groups") or {}
    sizes = (block or {}).get("group_sizes") or {}
    return ", ".join(f"{k}→{'–' if v is None else v}"
                     + (f" (n={sizes[k]})" if k in sizes else "")
                     for k, v in groups.items()) or "–"


def _readout_phrase(results: Mapping[str, Any]) -> str:
    return ("mean per-token log-probability readout" if results.get("length_norm")
            else "summed log-probability readout")


def artifact_warnings(results: Mapping[str, Any], name: str, variant: str,
                      vres: Mapping[str, Any]) -> list[str]:
    """The letter- and answer-form-artifact warnings of one variant block, and the answer-form
    router's (empty when none reaches its threshold, or is not applicable).

    >>> v = {"fixed": {"steerability": 0.0}, "oracle": {"steerability": 0.2},
    ...      "letter_oracle": None, "form_oracle": {"steerability": 0.2}}
    >>> artifact_warnings({}, "CAA", "base", v)[0][:44]
    'Answer-form artifact suspected (CAA, variant'
    >>> artifact_warnings({}, "CAA", "base", {**v, "form_oracle": {"steerability": 0.1}})
    []
    """
    out = []
    share, basis = letter_artifact(vres)
    if share is not None and share >= LETTER_ARTIFACT_THRESHOLD:
        judged = vres.get("single_order") or vres
        out.append(
            f"Letter artifact suspected ({name}, variant '{variant}'): on the {basis}, "
            f"the letter oracle (one layer per matching letter) gets {share:.0%} of the "
            f"oracle's gain over the fixed layer ({_signed(_gain(judged, 'letter_oracle'))}"
            f" of {_signed(_gain(judged, 'oracle'))}), so most of the per-input layer choice is "
            "explained by which letter is the matching answer, not by the input.")
    share = form_gain_share(vres)
    groups = form_groups_text(vres.get("form_oracle"))
    if share is not None and share >= FORM_ARTIFACT_THRESHOLD:
        out.append(
            f"Answer-form artifact suspected ({name}, variant '{variant}'): the answer-form "
            f"oracle (one layer per group of the answers' form: {groups}) gets {share:.0%} of "
            "the oracle's gain over the fixed layer "
            f"({_signed(_gain(vres, 'form_oracle'))} of {_signed(_gain(vres, 'oracle'))}), so "
            "the per-input variation is about the answers' form under the "
            f"{_readout_phrase(results)}, not where the behaviour is encoded.")
    share = form_router_share(vres)
    groups = form_groups_text(vres.get("form_router"))
    if share is not None and share >= FORM_ROUTER_THRESHOLD:
        out.append(
            f"Answer-form router artifact suspected ({name}, variant '{variant}'): the "
            "answer-form router (it routes each item by the form of its answers alone"
            f"{'' if groups == '–' else ': ' + groups}) gets {share:.0%} of the "
            "oracle's gain over the fixed layer "
            f"({_signed(_gain(vres, 'form_router'))} of {_signed(_gain(vres, 'oracle'))}), so "
            "the per-input layer choice a router can exploit is about the answers' form under "
            f"the {_readout_phrase(results)}, not where the behaviour is encoded.")
    return out
