"""Every example in the package's docstrings runs (those marked ``+SKIP`` need a model, a
run directory or the network and are skipped): a renamed setting or a changed return value
breaks its example here, not first in a reader's notebook."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import w2s_lens

MODULES = sorted(m.name for m in pkgutil.walk_packages(w2s_lens.__path__, "w2s_lens."))


def test_every_package_module_is_collected() -> None:
    assert len(MODULES) > 100 and "w2s_lens.evaluation.results.evidence" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name, globs=dict(vars(module))):
        # the report is the first run's own output: a second run would start from cleared
        # globals (or from a state the first run changed) and show a different failure
        report: list[str] = []
        result = runner.run(test, out=report.append)
        if result.failed:
            pytest.fail(f"{test.name}: {result.failed} example(s) failed\n" + "".join(report))
