"""The results tables (w2s_lens.report.results_tables) on typed results read from results.json
dicts: older results (interval verdict, letter oracle everywhere, keys of newer versions
absent), and newer ones (sign-flip test, MDE, majority accuracy, letter oracle None on mirrored
and cloze rows, the answer-form oracle on cloze rows)."""

from __future__ import annotations

import copy
import doctest
import html
import importlib
import re

import pytest

from w2s_lens.evaluation.results.typed import EvaluationResult
from w2s_lens.report.formatting import Doc
from w2s_lens.report.results_tables import results_section


def _summary(mean: float, lo: float, hi: float) -> dict:
    return {"steerability": mean, "steerability_ci": [lo, hi], "steerable_fraction": 0.75,
            "steerable_fraction_ci": [0.5, 1.0]}


def _router(**extra) -> dict:
    return {**_summary(0.30, 0.20, 0.40), "accuracy": 0.5, "top3_accuracy": 0.9,
            "diff_vs_fixed": 0.10, "diff_vs_fixed_ci": [0.02, 0.18], **extra}


NEW_KEYS = {"diff_vs_fixed_p": 0.0312, "diff_vs_fixed_p_less": 0.98,
            "diff_vs_fixed_test": "sign-flip exact", "diff_vs_fixed_n_nonzero": 9,
            "diff_vs_fixed_verdict": "no detectable difference", "diff_vs_fixed_mde": 0.15,
            "majority_accuracy": 5 / 12}


def _variant(router: dict, **extra) -> dict:
    return {"n": 12, "fixed_layer": 2, "fixed": _summary(0.10, 0.05, 0.15),
            "w2s": {"logreg": router}, "oracle": _summary(0.30, 0.25, 0.35),
            "letter_oracle": {**_summary(0.12, 0.06, 0.18), "layers": {"A": 2, "B": 4}},
            "single_order": None, "by_letter": {}, **extra}


def _results(variants: dict, **extra) -> dict:
    return {"split_seed": 7, "primary_router": "logreg", "readout": "letter", "n_train": 24,
            "cross_fit": 3, "methods": {"caa": {"fixed_layer": 2, "variants": variants}},
            **extra}


OLD = _results({"base": _variant(_router(diff_vs_fixed_p=0.01))})
NEW_LETTER = _results({"base": _variant(_router(**NEW_KEYS))})
FORM = {**_summary(0.29, 0.22, 0.36), "groups": {"match-longer": 4, "match-shorter": 8},
        "group_sizes": {"match-longer": 5, "match-shorter": 7}}
CLOZE_KEYS = {**NEW_KEYS, "diff_vs_fixed_verdict": "too few informative items",
              "diff_vs_fixed_mde": None, "diff_vs_fixed_n_nonzero": 3}
NEW_CLOZE = _results({"base": _variant(_router(**CLOZE_KEYS), letter_oracle=None,
                                       form_oracle=FORM)}, readout="cloze", length_norm=False)


def _page(results: dict) -> str:
    doc = Doc()
    results_section(doc, EvaluationResult.from_dict(results))
    return "\n".join(doc.parts)


def _main(page: str) -> str:
    return page[page.index('id="results"'):page.index("<h3>Steerable fraction")]


def _headers(part: str) -> list[str]:
    head = re.search(r"<thead><tr>(.*?)</tr></thead>", part).group(1)
    return [html.unescape(h) for h in re.findall(r"<th[^>]*>(.*?)</th>", head)]


def _cells(part: str, variant: str = "base") -> list[str]:
    """The cells of the first body row starting with ``variant``."""
    row = next(r for r in re.findall(r"<tr>(.*?)</tr>", part)
               if r.startswith(f'<td class="l">{variant}</td>'))
    return [html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]


def test_older_results_keep_the_interval_verdict_and_the_letter_oracle() -> None:
    main = _main(_page(OLD))
    heads = _headers(main)
    assert heads == ["variant", "method", "fixed layer", "fixed", "W2S (logreg)", "oracle",
                     "letter oracle", "W2S − fixed", "test of W2S > fixed", "verdict"]
    cells = dict(zip(heads, _cells(main)))
    assert cells["letter oracle"] == "+0.120 [+0.060, +0.180] (n=12, seed 7) A→2, B→4"
    assert cells["W2S − fixed"] == "+0.100 [+0.020, +0.180] (n=12, seed 7)"
    assert cells["test of W2S > fixed"] == "p = 0.01 for W2S > fixed (bootstrap (older results))"
    assert cells["verdict"].startswith('<span class="v-better">W2S beats fixed beyond the noise')
    assert "interval of W2S − fixed lies above 0" in main
    page = _page(OLD)
    assert "majority layer" not in page and "minimal detectable" not in page
    assert "Answer-form" not in page and "answer-form" not in page


def test_newer_results_show_the_test_the_mde_and_the_majority_baseline() -> None:
    page = _page(NEW_LETTER)
    main = _main(page)
    heads = _headers(main)
    assert heads[-4:] == ["W2S − fixed", "test of W2S > fixed", "minimal detectable difference",
                          "verdict"]
    cells = dict(zip(heads, _cells(main)))
    assert cells["test of W2S > fixed"] == ("p = 0.0312 for W2S > fixed, p = 0.98 for W2S < "
                                            "fixed (sign-flip exact; 9 informative items)")
    assert cells["minimal detectable difference"] == "none larger than +0.150 (80% power)"
    # the sign-flip verdict wins over the interval (which lies above 0 here)
    assert cells["verdict"] == '<span class="v-none">no detectable difference</span>'
    assert "one-sided paired sign-flip test of W2S > fixed" in html.unescape(main)
    frac = page[page.index("<h3>Steerable fraction"):page.index("<h3>Training split")]
    fcells = dict(zip(_headers(frac), _cells(frac)))
    assert fcells["router accuracy (top-3)"] == "50.0% (90.0%)"
    assert fcells["majority layer"] == "41.7%"
    details = page[page.index("<details>"):]
    dcells = dict(zip(_headers(details), _cells(details)))
    assert dcells["majority layer"] == "41.7%" and dcells["verdict"] == "no detectable difference"
    assert dcells["minimal detectable difference"] == "none larger than +0.150 (80% power)"
    assert "items by matching letter" not in details  # by_letter is empty


def test_a_detected_difference_shows_the_mde_as_a_number() -> None:
    res = copy.deepcopy(NEW_LETTER)
    res["methods"]["caa"]["variants"]["base"]["w2s"]["logreg"]["diff_vs_fixed_verdict"] = (
        "W2S beats fixed beyond the noise")
    main = _main(_page(res))
    cells = dict(zip(_headers(main), _cells(main)))
    assert cells["minimal detectable difference"] == "MDE +0.150 (80% power)"
    assert cells["verdict"] == '<span class="v-better">W2S beats fixed beyond the noise</span>'


def test_cloze_rows_show_the_form_oracle_and_its_warning_not_the_letter_oracle() -> None:
    page = _page(NEW_CLOZE)
    main = _main(page)
    heads = _headers(main)
    assert "letter oracle" not in heads and "answer-form oracle" in heads
    cells = dict(zip(heads, _cells(main)))
    assert cells["answer-form oracle"] == ("+0.290 [+0.220, +0.360] (n=12, seed 7) "
                                           "match-longer→4 (n=5), match-shorter→8 (n=7)")
    assert cells["verdict"] == '<span class="v-none">too few informative items</span>'
    assert cells["minimal detectable difference"] == "–"
    warn = re.findall(r'<div class="warn">(.*?)</div>', page)
    assert len(warn) == 1
    text = html.unescape(warn[0])
    assert text.startswith("⚠ Answer-form artifact suspected (CAA, variant 'base')")
    assert "gets 95% of the oracle's gain over the fixed layer (+0.190 of +0.200)" in text
    assert ("the per-input variation is about the answers' form under the summed "
            "log-probability readout, not where the behaviour is encoded") in text
    diag = page[page.index("<h3>Answer-form diagnostic"):page.index("<details>")]
    assert _cells(diag)[-2:] == ["match-longer→4 (n=5), match-shorter→8 (n=7)", "95%"]
    assert "Letter artifact" not in page and "Single-order diagnostic" not in page


def test_the_form_warning_needs_most_of_the_oracle_gain() -> None:
    res = copy.deepcopy(NEW_CLOZE)
    vres = res["methods"]["caa"]["variants"]["base"]
    vres["form_oracle"]["steerability"] = 0.2  # half the oracle's gain
    res["length_norm"] = True
    page = _page(res)
    assert '<div class="warn">' not in page
    assert "answer-form oracle" in _headers(_main(page))
    vres["form_oracle"]["steerability"] = 0.27  # 85%
    assert "mean per-token log-probability readout" in _page(res)


def test_mirrored_rows_judge_letters_on_the_single_order_block() -> None:
    single = {**_variant(_router(**NEW_KEYS)), "n": 24,
              "letter_oracle": {**_summary(0.29, 0.2, 0.4), "layers": {"A": 2, "B": 4}}}
    res = _results({"base": _variant(_router(**NEW_KEYS), letter_oracle=None,
                                     single_order=single)})
    page = _page(res)
    assert "letter oracle" not in _headers(_main(page))
    warn = html.unescape(re.search(r'<div class="warn">(.*?)</div>', page).group(1))
    assert warn.startswith("⚠ Letter artifact suspected (CAA, variant 'base'): on the "
                           "single-order presentations, the letter oracle")
    diag = page[page.index("<h3>Single-order diagnostic"):page.index("<details>")]
    assert _cells(diag)[-2:] == ["A→2, B→4", "95%"]
    # a single-order block without a letter oracle has no row in the diagnostic
    single["letter_oracle"] = None
    page = _page(res)
    assert "Single-order diagnostic" not in page and "Letter artifact" not in page


def test_mixed_rows_mark_the_letter_oracle_not_applicable() -> None:
    res = copy.deepcopy(OLD)
    res["methods"]["caa"]["variants"]["cloze"] = NEW_CLOZE["methods"]["caa"]["variants"]["base"]
    main = _main(_page(res))
    heads = _headers(main)
    assert "letter oracle" in heads and "answer-form oracle" in heads
    old, cloze = dict(zip(heads, _cells(main, "base"))), dict(zip(heads, _cells(main, "cloze")))
    assert cloze["letter oracle"] == "not applicable" and old["answer-form oracle"] == "–"
    assert old["minimal detectable difference"] == "–"
    assert old["verdict"].startswith('<span class="v-better">')


def test_no_methods_is_a_note() -> None:
    assert _page({"methods": {}}).endswith('<p class="note">results.json has no methods.</p>')


def _with_form_router(steerability: float) -> dict:
    res = copy.deepcopy(NEW_CLOZE)
    vres = res["methods"]["caa"]["variants"]["base"]
    vres["form_router"] = {**_router(**{**NEW_KEYS, "diff_vs_fixed_verdict":
                                         "no detectable difference"}),
                           "steerability": steerability, "diff_vs_fixed": steerability - 0.10,
                           "diff_vs_fixed_ci": [0.01, 0.2], "diff_vs_fixed_mde": 0.12}
    return res


def test_the_answer_form_router_is_a_row_with_its_test_and_mde() -> None:
    assert "answer-form router" not in _page(NEW_CLOZE)
    page = _page(_with_form_router(0.20))  # half the oracle's gain over fixed
    main = _main(page)
    heads = _headers(main)
    row = next(r for r in re.findall(r"<tr>(.*?)</tr>", main)
               if '<td class="l">CAA · answer-form router</td>' in r)
    cells = dict(zip(heads, [html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]))
    assert cells["variant"] == "base" and cells["fixed layer"] == "2"
    assert cells["W2S (logreg)"] == "+0.200 [+0.200, +0.400] (n=12, seed 7)"
    assert cells["fixed"] == "+0.100 [+0.050, +0.150] (n=12, seed 7)"
    assert cells["W2S − fixed"] == "+0.100 [+0.010, +0.200] (n=12, seed 7)"
    assert cells["test of W2S > fixed"] == (
        "p = 0.0312 for answer-form router > fixed, p = 0.98 for answer-form router < fixed "
        "(sign-flip exact; 9 informative items)")
    assert cells["minimal detectable difference"] == "none larger than +0.120 (80% power)"
    assert cells["answer-form oracle"] == "–"
    assert 'A row "answer-form router" puts in the W2S column' in html.unescape(main)
    # the W2S row keeps its own cells
    assert dict(zip(heads, _cells(main)))["method"] == "CAA"
    assert "Answer-form router artifact" not in page
    details = page[page.index("<details>"):]
    assert '<td class="l">answer-form router</td>' in details


def test_the_answer_form_router_warns_when_it_gets_most_of_the_oracle_gain() -> None:
    page = _page(_with_form_router(0.27))  # 85% of the oracle's gain over fixed
    warns = [html.unescape(w) for w in re.findall(r'<div class="warn">(.*?)</div>', page)]
    assert len(warns) == 2 and warns[0].startswith("⚠ Answer-form artifact suspected")
    assert warns[1].startswith("⚠ Answer-form router artifact suspected (CAA, variant 'base'): "
                               "the answer-form router (it routes each item by the form of its "
                               "answers alone) gets 85% of the oracle's gain over the fixed "
                               "layer (+0.170 of +0.200)")
    assert "under the summed log-probability readout, not where the behaviour is encoded" in (
        warns[1])


def test_a_variant_without_its_primary_router_says_so() -> None:
    res = copy.deepcopy(NEW_LETTER)
    res["methods"]["caa"]["variants"]["base"]["w2s"] = {}
    main = _main(_page(res))
    cells = dict(zip(_headers(main), _cells(main)))
    assert cells["W2S (logreg)"] == "–" and cells["W2S − fixed"] == "–"
    assert cells["verdict"] == '<span class="v-none">no router results</span>'


def test_the_training_split_and_the_letters_read_the_typed_blocks() -> None:
    res = copy.deepcopy(NEW_LETTER)
    m = res["methods"]["caa"]
    m.update(train_best_layer_counts={"4": 3, "12": 5, "2": 1}, train_fixed_steerability=0.25,
             w2s_over_fixed=1.5, router_cv={"logreg": {"cv_score": -0.75}})
    m["variants"]["base"]["by_letter"] = {"A": _variant(_router(**NEW_KEYS), n=6)}
    page = _page(res)
    train = page[page.index("<h3>Training split"):]
    row = re.search(r"<tbody><tr>(.*?)</tr>", train).group(1)
    cells = [html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
    assert cells == ["CAA", "2", "+0.250", "L2: 1, L4: 3, L12: 5", "logreg: -0.750", "1.500"]
    assert "24 training items, cross-fitted in 3 folds" in train
    details = page[page.index("<details>"):]
    assert "and the items by matching letter" in details
    letter = [html.unescape(c) for c in re.findall(
        r"<td[^>]*>(.*?)</td>", re.findall(r"<tr>(.*?)</tr>", details)[-1])]
    assert letter == ["base", "A", "+0.100 [+0.050, +0.150] (n=6, seed 7)",
                      "+0.300 [+0.200, +0.400] (n=6, seed 7)",
                      "+0.300 [+0.250, +0.350] (n=6, seed 7)"]
    with pytest.raises(AttributeError):
        results_section(Doc(), res)  # the section reads the typed result, not the dict


def test_the_docstring_examples_run() -> None:
    """The examples in the docstrings (typed results in, the text shown out) hold."""
    failed, attempted = doctest.testmod(importlib.import_module("w2s_lens.report.results_tables"),
                                        optionflags=doctest.ELLIPSIS)
    assert failed == 0 and attempted > 0
