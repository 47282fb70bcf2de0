"""The powered study's HTML page (w2s_lens.report.study_report) on a fake results folder made
of the real headroom results (tests/helpers_study.py)."""

from __future__ import annotations

import re

import pytest
from helpers_study import PLAN, build_root

from w2s_lens.report.study_report import render_study_report, write_study_report
from w2s_lens.report.tables.study import PRIMARY_COMPARISON, study_rows
from w2s_lens.report.tables.study_text import study_tables


@pytest.fixture
def rows(tmp_path):
    return study_rows(build_root(tmp_path), PLAN)


def test_page_is_self_contained_with_the_statement_figure_and_tables(rows) -> None:
    page = render_study_report(rows, source="analysis/results/powered")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert len(re.findall(r"<script>", page)) >= 2 and len(page) > 1_000_000  # plotly.js inline
    assert "<script src=" not in page and page.count('class="plotly-graph-div"') == 1
    head = page.index("Primary comparison (stated before running)")
    assert head < page.index("plotly-graph-div") < page.index("<table>")
    assert "with the <code>logreg</code> router" in page  # the statement's code span
    assert "from <code>analysis/results/powered</code>" in page
    assert page.count("<table>") == len(study_tables(rows))
    for title, header, _ in study_tables(rows):
        assert f">{title}</h2>" in page and f'<th class="l">{header[0]}</th>' in page


def test_rows_not_run_and_smaller_than_planned_are_marked(rows) -> None:
    page = render_study_report(rows)
    assert page.count('<span class="v-notrun">not run</span>') == 2
    assert '<span class="smaller">20 + 24 (SMALLER than planned 24 + 24)</span>' in page
    assert '<span class="v-better">W2S beats fixed beyond the noise</span>' in page
    assert '<span class="v-better">beats</span>' not in page  # p = 0.02 does not survive BH
    assert "Status: 4 of 6 planned datasets finished; 1 ran SMALLER than planned." in page


def test_text_from_the_data_is_escaped(rows) -> None:
    rows[0]["dataset"] = "<b>evil</b>"
    page = render_study_report(rows, statement="a < b")
    assert "<b>evil</b>" not in page and "&lt;b&gt;evil&lt;/b&gt;" in page
    assert "a &lt; b" in page and PRIMARY_COMPARISON[:20] not in page


def test_a_study_with_nothing_run_still_renders(tmp_path) -> None:
    rows = study_rows(tmp_path, PLAN)
    path = write_study_report(rows, tmp_path / "out" / "report.html")
    page = path.read_text()
    assert 'every row reads "not run"' in page.replace("&quot;", '"')
    assert page.count('<span class="v-notrun">not run</span>') == len(rows) == 6
