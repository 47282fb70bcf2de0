"""Plain-words readings of typed results for the report: the verdict of W2S against the fixed
layer, its test and minimal detectable difference, and the shares of the oracle's gain that the
letter oracle and the answer-form oracle also get (the artifact warnings).

Every reading takes the parts of an
:class:`~w2s_lens.evaluation.results.typed.EvaluationResult`: a router's comparison
(:class:`~w2s_lens.evaluation.results.nodes.RouterComparison`), a variant
(:class:`~w2s_lens.evaluation.results.typed.VariantResult`). Old results (without the exact
test's keys) read as before: the verdict from the interval of W2S − fixed, the letter oracle on
every variant.

Example:
    >>> c = RouterComparison(diff_ci=(-0.1, 0.2), mde=0.15)
    >>> router_verdict(c)[:24], mde_reading(c)
    ('no detectable difference', 'none larger than +0.150 (80% power)')
"""

from __future__ import annotations

import math

from w2s_lens.evaluation.results.nodes import FormRouter, GroupOracle, RouterComparison, Summary
from w2s_lens.evaluation.results.typed import EvaluationResult, VariantResult
from w2s_lens.report.formatting import _num, _signed, fmt_p, verdict_class

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


def router_verdict(c: RouterComparison) -> str:
    """The verdict of one router's comparison: its recorded sign-flip verdict when it has one,
    else the interval rule on ``diff_ci`` (older results;
    :meth:`~w2s_lens.evaluation.results.nodes.RouterComparison.verdict_text`).

    >>> router_verdict(RouterComparison(verdict="too few informative items",
    ...                                 diff_ci=(0.1, 0.2)))
    'too few informative items'
    >>> router_verdict(RouterComparison(diff_ci=(0.1, 0.2)))[:32]
    'W2S beats fixed beyond the noise'
    """
    return c.verdict_text()


def _p(p: float | None) -> str:
    text = fmt_p(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def diff_test_text(c: RouterComparison, names: tuple[str, str] = ("W2S", "fixed")) -> str:
    """The test behind the verdict: one-sided p-values (W2S > fixed, and W2S < fixed where
    recorded), the test's name and how many items differ between W2S and fixed (``names``
    renames the two sides, e.g. for the answer-form router).

    >>> diff_test_text(RouterComparison(p=0.0312, p_less=0.98, test="exact sign-flip",
    ...                                 n_nonzero=9))
    'p = 0.0312 for W2S > fixed, p = 0.98 for W2S < fixed (exact sign-flip; 9 informative items)'
    >>> diff_test_text(RouterComparison(p=0.2)), diff_test_text(RouterComparison())
    ('p = 0.2 for W2S > fixed (bootstrap (older results))', '–')
    """
    if _num(c.p) is None:
        return "–"
    a, b = names
    text = f"{_p(c.p)} for {a} > {b}"
    if _num(c.p_less) is not None:
        text += f", {_p(c.p_less)} for {a} < {b}"
    bits = [str(c.test or OLDER_TEST)]
    if c.n_nonzero is not None:
        bits.append(f"{c.n_nonzero} informative items")
    return f"{text} ({'; '.join(bits)})"


def mde_reading(c: RouterComparison) -> str:
    """The minimal detectable difference (80% power) of W2S − fixed, read as "none larger than
    X" where the verdict finds no difference; just the number where it finds one; ``–`` when
    the comparison has none.

    >>> mde_reading(RouterComparison(diff_ci=(0.1, 0.3), mde=0.08))
    'MDE +0.080 (80% power)'
    >>> mde_reading(RouterComparison(diff_ci=(0.1, 0.3)))
    '–'
    """
    mde = _num(c.mde)
    if mde is None or math.isinf(mde):
        return "–"
    if verdict_class(router_verdict(c)) != "v-none":
        return f"MDE {_signed(mde)} (80% power)"
    return f"none larger than {_signed(mde)} (80% power)"


def _gain(vres: VariantResult, other: Summary | None) -> float | None:
    """Mean steerability of ``other`` (an oracle or router of ``vres``) minus the fixed
    layer's."""
    a = _num(other.steerability) if isinstance(other, Summary) else None
    f = _num(vres.fixed.steerability) if isinstance(vres.fixed, Summary) else None
    return None if a is None or f is None else a - f


def _gain_share(vres: VariantResult, other: Summary | None) -> float | None:
    g, o = _gain(vres, other), _gain(vres, vres.oracle)
    if g is None or o is None or o <= 0:
        return None
    return round(g / o, 12)


def letter_gain_share(vres: VariantResult) -> float | None:
    """Share of the oracle's gain over fixed that the letter oracle also gets.

    ``(letter_oracle - fixed) / (oracle - fixed)`` in mean steerability; ``None`` when a piece is
    missing (``letter_oracle`` None: not applicable) or the oracle does not beat fixed.

    >>> letter_gain_share(VariantResult.from_dict({"fixed": {"steerability": 0.1},
    ...     "oracle": {"steerability": 0.3}, "letter_oracle": {"steerability": 0.28}}))
    0.9
    """
    return _gain_share(vres, vres.letter_oracle)


def form_gain_share(vres: VariantResult) -> float | None:
    """Share of the oracle's gain over fixed that the answer-form oracle (one layer per group
    of the answers' form) also gets; ``None`` without a ``form_oracle``.

    >>> form_gain_share(VariantResult.from_dict({"fixed": {"steerability": 0.1},
    ...     "oracle": {"steerability": 0.3}, "form_oracle": {"steerability": 0.25}}))
    0.75
    """
    return _gain_share(vres, vres.form_oracle)


def form_router_share(vres: VariantResult) -> float | None:
    """Share of the oracle's gain over fixed that the answer-form router (routing each test
    item by the form of its answers alone) gets; ``None`` without a ``form_router``.

    >>> form_router_share(VariantResult.from_dict({"fixed": {"steerability": 0.1},
    ...     "oracle": {"steerability": 0.3}, "form_router": {"steerability": 0.27}}))
    0.85
    """
    return _gain_share(vres, vres.form_router)


def letter_artifact(vres: VariantResult) -> tuple[float | None, str]:
    """``(share, basis)``: :func:`letter_gain_share` on the single-order diagnostic of a
    mirrored variant (each letter order scored on its own, where a letter-dependent best layer
    shows), else on the variant's own items; ``basis`` says which.

    >>> letter_artifact(VariantResult.from_dict({"fixed": {"steerability": 0.1},
    ...     "oracle": {"steerability": 0.3}, "letter_oracle": {"steerability": 0.3},
    ...     "single_order": None}))
    (1.0, 'items')
    """
    single = vres.single_order
    if isinstance(single, VariantResult):
        return letter_gain_share(single), "single-order presentations"
    return letter_gain_share(vres), "items"


def form_groups_text(block: GroupOracle | FormRouter | None) -> str:
    """``short→12 (n=3), long→20``: the answer-form oracle's (or router's) layer per group,
    with the group's size where it is recorded (``–`` without groups).

    >>> form_groups_text(GroupOracle(groups={"short": 12, "long": 20},
    ...                              group_sizes={"short": 3}))
    'short→12 (n=3), long→20'
    >>> form_groups_text(None)
    '–'
    """
    groups = (block.groups if block is not None else None) or {}
    sizes = (getattr(block, "group_sizes", None) if block is not None else None) or {}
    return ", ".join(f"{k}→{'–' if v is None else v}"
                     + (f" (n={sizes[k]})" if k in sizes else "")
                     for k, v in groups.items()) or "–"


def _readout_phrase(results: EvaluationResult) -> str:
    return ("mean per-token log-probability readout" if results.length_norm
            else "summed log-probability readout")


def artifact_warnings(results: EvaluationResult, name: str, variant: str,
                      vres: VariantResult) -> list[str]:
    """The letter- and answer-form-artifact warnings of one variant, and the answer-form
    router's (empty when none reaches its threshold, or is not applicable).

    >>> v = VariantResult.from_dict({"fixed": {"steerability": 0.0},
    ...     "oracle": {"steerability": 0.2}, "letter_oracle": None,
    ...     "form_oracle": {"steerability": 0.2}})
    >>> r = EvaluationResult.from_dict({"methods": {}})
    >>> artifact_warnings(r, "CAA", "base", v)[0][:44]
    'Answer-form artifact suspected (CAA, variant'
    >>> import dataclasses
    >>> v = dataclasses.replace(v, form_oracle=GroupOracle(steerability=0.1))
    >>> artifact_warnings(r, "CAA", "base", v)
    []
    """
    out = []
    share, basis = letter_artifact(vres)
    if share is not None and share >= LETTER_ARTIFACT_THRESHOLD:
        judged = vres.single_order if isinstance(vres.single_order, VariantResult) else vres
        out.append(
            f"Letter artifact suspected ({name}, variant '{variant}'): on the {basis}, "
            f"the letter oracle (one layer per matching letter) gets {share:.0%} of the "
            f"oracle's gain over the fixed layer "
            f"({_signed(_gain(judged, judged.letter_oracle))}"
            f" of {_signed(_gain(judged, judged.oracle))}), so most of the per-input layer "
            "choice is explained by which letter is the matching answer, not by the input.")
    share = form_gain_share(vres)
    groups = form_groups_text(vres.form_oracle)
    if share is not None and share >= FORM_ARTIFACT_THRESHOLD:
        out.append(
            f"Answer-form artifact suspected ({name}, variant '{variant}'): the answer-form "
            f"oracle (one layer per group of the answers' form: {groups}) gets {share:.0%} of "
            "the oracle's gain over the fixed layer "
            f"({_signed(_gain(vres, vres.form_oracle))} of {_signed(_gain(vres, vres.oracle))}),"
            " so the per-input variation is about the answers' form under the "
            f"{_readout_phrase(results)}, not where the behaviour is encoded.")
    share = form_router_share(vres)
    groups = form_groups_text(vres.form_router)
    if share is not None and share >= FORM_ROUTER_THRESHOLD:
        out.append(
            f"Answer-form router artifact suspected ({name}, variant '{variant}'): the "
            "answer-form router (it routes each item by the form of its answers alone"
            f"{'' if groups == '–' else ': ' + groups}) gets {share:.0%} of the "
            "oracle's gain over the fixed layer "
            f"({_signed(_gain(vres, vres.form_router))} of {_signed(_gain(vres, vres.oracle))}),"
            " so the per-input layer choice a router can exploit is about the answers' form "
            f"under the {_readout_phrase(results)}, not where the behaviour is encoded.")
    return out
