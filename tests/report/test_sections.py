"""The report's other sections (w2s_lens.report.sections): unreadable pieces become notes,
prompts, generations and run metadata; each name has one import home."""

from __future__ import annotations

import html

import numpy as np

from w2s_lens.data.examples import SteeringExample
from w2s_lens.evaluation.storage.rundir import RunDir
from w2s_lens.report import formatting, readings, results_tables, sections
from w2s_lens.sweep.result import SweepResult


def test_names_that_moved_are_not_listed_here_again() -> None:
    for home in (formatting, readings, results_tables):
        assert not set(sections.__all__) & set(home.__all__), home.__name__


def test_unreadable_sweeps_and_routing_become_notes(tmp_path) -> None:
    doc = sections.Doc()
    rd = RunDir(tmp_path)
    assert sections.load_sweep(doc, rd, tmp_path / "caa" / "base", "CAA · base") is None
    (tmp_path / "routing.json").write_text("{not json", encoding="utf-8")
    assert sections.read_routing(doc, rd, tmp_path, "CAA · base") is None
    assert doc.parts[0].startswith('<p class="note">CAA · base: no readable sweep in ')
    assert doc.parts[1].startswith('<p class="note">CAA · base: routing.json unreadable (')


def _example(i: int, letter: str) -> SteeringExample:
    return SteeringExample(id=f"q{i}", text=f"Question <{i}>?", tokens=(1, 2), matching_token_id=3,
                           non_matching_token_id=4, matching_letter=letter)


def test_prompts_table_shows_best_and_routed_layers_and_the_limit() -> None:
    steer = np.array([[0.0, 1.0], [2.0, 0.0], [0.5, 0.1]])
    sweep = SweepResult(steer[:, :, None] * np.array([-1.0, 1.0]), [4, 8], [-1.0, 1.0],
                        ["q0", "q1", "q2"], ["A", "B", "A"])
    examples = [_example(i, x) for i, x in enumerate("ABA")]
    doc = sections.Doc()
    sections.prompts_table(doc, sweep, examples, routed={"q0": 4}, limit=2)
    table = doc.parts[0]
    assert ('<td class="l">q0</td><td>A</td><td>8</td><td>4</td><td class="l"><div '
            f'class="prompt">{html.escape("Question <0>?")}</div></td>') in table
    assert '<td class="l">q1</td><td>B</td><td>4</td><td>–</td>' in table
    assert "q2" not in table and doc.parts[1] == '<p class="note">First 2 of 3 prompts shown.</p>'


def test_metadata_section_shortens_long_values() -> None:
    doc = sections.Doc()
    sections.metadata_section(doc, {"config": {"layers": list(range(300))}, "version": "1"})
    assert doc.parts[1] == "<h3>Configuration</h3>"
    assert "… (" in doc.parts[2] and "characters)" in doc.parts[2]
    assert '<td class="l">version</td><td class="l">1</td>' in doc.parts[3]
