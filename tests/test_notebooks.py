"""The notebooks run from top to bottom, in this virtual environment, and are committed stripped.

Each notebook is executed with nbclient in a temporary working directory, on a kernel spec
written here that points at ``sys.executable`` (so a fresh CI venv is used even when a
``python3`` kernel spec elsewhere points at another interpreter). Two cells are added in memory
only: one first, printing the kernel's ``sys.prefix``, and one last, printing a JSON summary of
variables the notebook defined; the tests check both. The executed copy is written to the
working directory (``executed-<name>``) for inspection.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
CELL_TIMEOUT_S = 600
KERNEL_NAME = "w2s-lens-test"
CHECK_MARK = "__W2S_NOTEBOOK_CHECK__"


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kernels directory holding one spec that runs ipykernel with this interpreter."""
    root = tmp_path_factory.mktemp("kernels")
    spec = root / KERNEL_NAME
    spec.mkdir()
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "w2s-lens test (this venv)",
        "language": "python",
    }))
    return root


def _stdout(cell: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", [])
                   if o.get("output_type") == "stream" and o.get("name") == "stdout")


def run_notebook(name: str, kernel_dir: Path, workdir: Path, check_code: str) -> tuple[
        nbformat.NotebookNode, dict]:
    """Execute ``notebooks/<name>`` in ``workdir``; return it and the check cell's JSON."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell("import sys\nprint(sys.prefix)"))
    nb.cells.append(nbformat.v4.new_code_cell(
        f"import json as _json\nprint({CHECK_MARK!r} + _json.dumps({check_code}, default=str))"))
    km = AsyncKernelManager(kernel_name=KERNEL_NAME,
                            kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_dir)]))
    client = NotebookClient(nb, km=km, timeout=CELL_TIMEOUT_S, allow_errors=False,
                            resources={"metadata": {"path": str(workdir)}})
    try:
        client.execute()  # raises CellExecutionError on the first failing cell
    finally:  # keep the executed copy next to the run for inspection
        nbformat.write(nb, workdir / f"executed-{name}")

    prefix = _stdout(nb.cells[0]).strip()
    assert Path(prefix).resolve() == Path(sys.prefix).resolve(), (
        f"the kernel ran in {prefix}, not in this environment ({sys.prefix})")
    out = _stdout(nb.cells[-1])
    assert CHECK_MARK in out, out
    return nb, json.loads(out.split(CHECK_MARK, 1)[1])


@pytest.mark.parametrize("name", ["layer_analysis.ipynb", "positive_control.ipynb"])
def test_notebook_is_stripped(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, f"{name} has no code cells"
    for i, cell in enumerate(code):
        assert cell.get("outputs") == [], f"{name}: code cell {i} has outputs"
        assert cell.get("execution_count") is None, f"{name}: code cell {i} has an execution count"


def test_positive_control_notebook(kernel_dir: Path, tmp_path: Path) -> None:
    check = ('{"pos": run_pos["result"]["w2s"]["logreg"], "neg": run_neg["result"]["w2s"]'
             '["logreg"], "family_layers": [int(x) for x in pos.family_layers]}')
    _, got = run_notebook("positive_control.ipynb", kernel_dir, tmp_path, check)
    # what the notebook's closing paragraph claims
    assert got["pos"]["diff_vs_fixed_ci"][0] > 0, got["pos"]
    lo, hi = got["neg"]["diff_vs_fixed_ci"]
    assert lo <= 0 <= hi, got["neg"]
    assert len(set(got["family_layers"])) > 1


@pytest.mark.slow
def test_layer_analysis_notebook(kernel_dir: Path, tmp_path: Path) -> None:
    check = ('{"layers": LAYERS, "n_layers": N_LAYERS, "variants": sorted(results["variants"]), '
             '"result_layers": results["layers"], "report": str(report_path), '
             '"routed_layer": routed_layer, "routed": routed.tolist(), '
             '"saved_routed": routing["router_layer"]["logreg"], "texts": texts, '
             '"n_test": [len(v) for v in test_examples.values()]}')
    nb, got = run_notebook("layer_analysis.ipynb", kernel_dir, tmp_path, check)
    report = Path(got["report"])
    try:
        _check_layer_analysis(nb, got, report)
    finally:  # the notebook's run directory is a tempfile.mkdtemp
        if report.parent.name.startswith("w2s-layer-analysis-"):
            shutil.rmtree(report.parent, ignore_errors=True)


def _check_layer_analysis(nb: nbformat.NotebookNode, got: dict, report: Path) -> None:
    assert got["result_layers"] == got["layers"] == list(range(0, got["n_layers"], 2))
    assert got["variants"] == ["base", "sys-neg"]
    assert report.is_file() and "<html" in report.read_text(encoding="utf-8")[:500]
    # the router fitted by hand reproduces the one the pipeline saved
    assert got["routed"] == got["saved_routed"]
    assert len(got["routed"]) == got["n_test"][0]
    assert got["routed_layer"] in got["layers"]
    printed = "".join(_stdout(c) for c in nb.cells)
    assert f"routed layer = {got['routed_layer']}" in printed
    assert len(got["texts"]) == 3 and all(isinstance(t, str) and t for t in got["texts"].values())
