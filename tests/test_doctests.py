"""Every example in the package's docstrings runs (those marked ``+SKIP`` need a model, a
run directory or the network and are skipped): a renamed setting or a changed return value
breaks its example here, not first in a reader's notebook. A module that defines functions or
classes of its own has at least one example (a package ``__init__`` that only re-exports does
not need one)."""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil

import pytest

import w2s_lens

MODULES = sorted(m.name for m in pkgutil.walk_packages(w2s_lens.__path__, "w2s_lens."))


def test_every_package_module_is_collected() -> None:
    assert len(MODULES) > 100 and "w2s_lens.evaluation.results.evidence" in MODULES


def _defines_api(module) -> bool:
    """Whether ``module`` defines a public function or class of its own (a package's
    ``__init__`` that only re-exports, or ``__main__``, does not)."""
    return any(not k.startswith("_") and (inspect.isfunction(v) or inspect.isclass(v))
               and getattr(v, "__module__", None) == module.__name__
               for k, v in vars(module).items())


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = finder.find(module, name, globs=dict(vars(module)))
    # a module with an API of its own shows it by at least one example (those that need a
    # model or a run directory are marked +SKIP: still written, not run here)
    assert any(t.examples for t in tests) or not _defines_api(module), (
        f"{name}: defines functions or classes but no docstring has an example")
    for test in tests:
        # the report is the first run's own output: a second run would start from cleared
        # globals (or from a state the first run changed) and show a different failure
        report: list[str] = []
        result = runner.run(test, out=report.append)
        if result.failed:
            pytest.fail(f"{test.name}: {result.failed} example(s) failed\n" + "".join(report))
