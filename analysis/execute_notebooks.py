"""Execute the notebooks in place, so the committed copies carry outputs a reader can trust.

Each notebook under ``notebooks/`` is run top to bottom with nbclient, on a kernel spec written
to a temporary folder that points at this interpreter (``sys.executable``, as
``tests/test_notebooks.py`` does), at a stated setting:

* every inherited ``W2S_NB_*`` variable is cleared, then the notebook's entry in
  :data:`SETTINGS` is applied (both notebooks run at their parameter cell's defaults:
  the synthetic positive control; SmolLM2-135M on the embedded sycophancy items, 6 training
  and 4 test items, 3 layers, letter and cloze readouts);
* ``W2S_NB_RUN_DIR`` points into a temporary folder (never the work tree), deleted afterwards;
* ``W2S_OFFLINE=1`` (the model must be cached) and ``PLOTLY_RENDERER`` (figures as plotly's
  mime type for JupyterLab / VS Code plus HTML that loads plotly.js from its CDN, instead of
  the 4 MB plotly.js inlined; no static image, since that needs kaleido and a browser).

Then the outputs are scrubbed of anything machine-specific: the run directory becomes
``<run dir>``, the temporary folder ``<tmp>``, the virtual environment ``<venv>``, the
repository ``<repo>``, the home directory ``~``, any other absolute path under ``/tmp``,
``/work``, ``/root`` or ``/home`` becomes ``<local path>``, and memory addresses
(``0x7f...``) become ``0x…``. Timings the cells print stay (they are from this run, on this
machine, and say so in the record). nbclient's per-cell timing metadata is not recorded.

What was run is recorded twice: in the notebook metadata (``metadata["w2s_lens"]``: the
environment variables, the resolved parameters, the model, the UTC date, the w2s-lens version
and commit, whether ``w2s_lens/`` had uncommitted changes, Python and torch versions, the wall
time, and a SHA-256 of the code cells' sources) and in a markdown cell after the title. The
test ``tests/test_notebooks.py`` recomputes the hash, so a code cell edited without re-running
this script fails the tests.

Usage (the machine is shared: nice it; the notebooks run one after the other)::

    nice -n 10 .venv/bin/python analysis/execute_notebooks.py            # both notebooks
    nice -n 10 .venv/bin/python analysis/execute_notebooks.py positive_control
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
KERNEL_NAME = "w2s-lens-execute"
#: nbclient needs numbers for the kernel start and trailing-output waits; a day is "no limit"
NO_LIMIT_S = 24 * 3600
METADATA_KEY = "w2s_lens"
RECORD_CELL_ID = "execution-record"
SCRIPT = "analysis/execute_notebooks.py"
PLOTLY_RENDERER = "plotly_mimetype+notebook_connected"
#: set for every notebook (recorded with the notebook's own settings)
COMMON_ENV = {"W2S_OFFLINE": "1", "PLOTLY_RENDERER": PLOTLY_RENDERER}
#: per notebook: the ``W2S_NB_*`` settings (empty: the parameter cell's defaults) and the model
SETTINGS: dict[str, dict] = {
    "positive_control": {
        "env": {},
        "model": "the synthetic positive control (w2s_lens.controls.synthetic, hand-written "
                 "weights, 4 layers)",
    },
    "layer_analysis": {
        "env": {},
        "model": "smollm2-135m-instruct (SmolLM2-135M-Instruct), on the embedded sycophancy "
                 "items (dataset 'default')",
    },
}
#: a trailing cell (run, read, then removed) reports the notebook's resolved parameters
PARAMS_MARK = "__W2S_NOTEBOOK_PARAMS__"
PARAMS_CELL = (
    "import json as _json\n"
    "print(" + repr(PARAMS_MARK) + " + _json.dumps({_k: _v for _k, _v in globals().items()\n"
    "    if _k.isupper() and _k != 'RUN_DIR' and not _k.startswith('_')\n"
    "    and isinstance(_v, (int, float, str, bool, list, tuple, type(None)))}))"
)
#: what must not remain in a committed output (tests/test_notebooks.py checks it)
LOCAL_PATH = re.compile(
    r"(?<![\w.<])/(?:tmp|work|root|home|Users|private|var/folders)/[^\s'\"<>),\]]*")
ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{4,}\b")


def code_sha256(nb: nbformat.NotebookNode) -> str:
    """SHA-256 of the code cells' sources, in order (markdown cells are not included)."""
    sources = [c.source for c in nb.cells if c.cell_type == "code"]
    return hashlib.sha256(json.dumps(sources).encode("utf-8")).hexdigest()


def scrub_text(text: str, replacements: list[tuple[str, str]]) -> str:
    """``text`` with the given absolute paths replaced (longest first), any other local
    absolute path replaced by ``<local path>`` and memory addresses by ``0x…``."""
    for old, new in sorted(replacements, key=lambda r: -len(r[0])):
        if old:
            text = text.replace(old, new)
    text = LOCAL_PATH.sub("<local path>", text)
    return ADDRESS.sub("0x…", text)


def _scrub(value, replacements):
    if isinstance(value, str):
        return scrub_text(value, replacements)
    if isinstance(value, list):
        return [_scrub(v, replacements) for v in value]
    if isinstance(value, dict):
        return type(value)({k: _scrub(v, replacements) for k, v in value.items()})
    return value


def _coalesce_streams(outputs: list) -> list:
    """Consecutive stream outputs to the same stream merged into one (as Jupyter shows them)."""
    out: list = []
    for o in outputs:
        if (o.get("output_type") == "stream" and out and out[-1].get("output_type") == "stream"
                and out[-1].get("name") == o.get("name")):
            out[-1]["text"] += o["text"]
        else:
            out.append(o)
    return out


def scrub_outputs(nb: nbformat.NotebookNode, replacements: list[tuple[str, str]]) -> None:
    """Scrub every output of every code cell in place (texts, tracebacks, mime bundles)."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs = _coalesce_streams(
            [nbformat.from_dict(_scrub(o, replacements)) for o in cell.outputs])
        cell.metadata.pop("execution", None)


def path_replacements(run_dir: Path, tmp: Path) -> list[tuple[str, str]]:
    """Absolute paths of this machine and their placeholders (both spellings of each: as
    given and resolved, since ``/tmp`` may be a symbolic link)."""
    pairs = [(run_dir, "<run dir>"), (tmp, "<tmp>"), (Path(sys.prefix), "<venv>"),
             (REPO, "<repo>"), (Path.home(), "~")]
    out = []
    for path, new in pairs:
        for spelling in {str(path), str(path.resolve())}:
            if spelling not in ("/", ""):
                out.append((spelling, new))
    return out


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _versions() -> dict:
    import w2s_lens
    out = {"w2s_lens": w2s_lens.__version__, "python": platform.python_version()}
    try:
        import torch
        out["torch"] = torch.__version__
    except ImportError:  # pragma: no cover
        pass
    commit = _git("rev-parse", "--short=12", "HEAD")
    if commit:
        out["commit"] = commit
        out["w2s_lens_modified"] = bool(_git("status", "--porcelain", "--", "w2s_lens"))
    return out


def write_kernel_spec(root: Path) -> Path:
    spec = root / KERNEL_NAME
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "w2s-lens (this venv)", "language": "python"}))
    return root


def record_markdown(name: str, record: dict) -> str:
    env = " ".join(f"{k}={v}" for k, v in record["env"].items())
    params = ", ".join(f"`{k}={v}`" for k, v in record["parameters"].items())
    v = record["versions"]
    commit = ""
    if "commit" in v:
        commit = f", commit `{v['commit']}`" + (
            " with uncommitted changes in `w2s_lens/`" if v.get("w2s_lens_modified") else "")
    return (
        f"> **About the outputs below.** They come from one run of this notebook, top to "
        f"bottom, by `{SCRIPT}` on {record['date']} (w2s-lens {v['w2s_lens']}{commit}; "
        f"Python {v['python']}"
        + (f", torch {v['torch']}" if "torch" in v else "") + f"; CPU), in "
        f"{record['wall_time_s']:.0f} s wall on a shared 2-core machine.\n"
        f">\n"
        f"> **Setting:** the parameter cell's defaults unless set here: `{env}` "
        f"(the run directory was a temporary folder, shown as `<run dir>` and deleted "
        f"afterwards). Model: {record['model']}. Parameters: {params}.\n"
        f">\n"
        f"> Timings printed in cells are from that run and vary with the machine. The figures "
        f"are interactive plotly figures: they show in Jupyter / VS Code (plotly.js from its "
        f"CDN), not on GitHub's static view. To refresh the outputs after editing a code cell: "
        f"`nice -n 10 .venv/bin/python {SCRIPT} {name}` (the tests fail until you do)."
    )


def execute(name: str) -> dict:
    """Execute ``notebooks/<name>.ipynb`` in place; return its record."""
    path = NOTEBOOKS / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells = [c for c in nb.cells if c.get("id") != RECORD_CELL_ID]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    n_cells = len(nb.cells)
    nb.cells.append(nbformat.v4.new_code_cell(PARAMS_CELL))

    setting = SETTINGS[name]
    env = {**COMMON_ENV, **setting["env"]}
    saved = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="w2s-nb-") as tmp_name:
        tmp = Path(tmp_name)
        run_dir = tmp / "run"
        workdir = tmp / "cwd"
        workdir.mkdir()
        kernels = write_kernel_spec(tmp / "kernels")
        try:
            for key in list(os.environ):
                if key.startswith("W2S_NB_"):
                    del os.environ[key]
            os.environ.update(env, W2S_NB_RUN_DIR=str(run_dir))
            km = AsyncKernelManager(
                kernel_name=KERNEL_NAME,
                kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]))
            client = NotebookClient(nb, km=km, timeout=None, startup_timeout=NO_LIMIT_S,
                                    iopub_timeout=NO_LIMIT_S, allow_errors=False,
                                    record_timing=False,
                                    resources={"metadata": {"path": str(workdir)}})
            t0 = time.time()
            client.execute()
            wall = time.time() - t0
        finally:
            os.environ.clear()
            os.environ.update(saved)
        params_out = "".join(o.get("text", "") for o in nb.cells[-1].outputs
                             if o.get("output_type") == "stream")
        parameters = json.loads(params_out.split(PARAMS_MARK, 1)[1])
        nb.cells = nb.cells[:n_cells]
        scrub_outputs(nb, path_replacements(run_dir, tmp))
        shutil.rmtree(run_dir, ignore_errors=True)

    record = {
        "script": SCRIPT,
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "env": {**env, "W2S_NB_RUN_DIR": "<run dir>"},
        "model": setting["model"],
        "parameters": parameters,
        "versions": _versions(),
        "wall_time_s": round(wall, 1),
        "timings_note": "timings printed in cells are from this run and vary with the machine",
        "code_sha256": code_sha256(nb),
    }
    nb.metadata[METADATA_KEY] = record
    cell = nbformat.v4.new_markdown_cell(record_markdown(name, record))
    cell.id = RECORD_CELL_ID
    cell.metadata[METADATA_KEY] = {"role": "execution-record"}
    title = 1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0
    nb.cells.insert(title, cell)
    nbformat.validate(nb)
    nbformat.write(nb, path)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"notebooks to execute, without .ipynb (default: all: "
                             f"{', '.join(SETTINGS)})")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(SETTINGS))
    if unknown:
        parser.error(f"unknown notebook(s) {unknown}; known: {list(SETTINGS)}")
    for name in args.names or list(SETTINGS):
        print(f"executing notebooks/{name}.ipynb ...", flush=True)
        record = execute(name)
        print(f"  {record['wall_time_s']:.0f} s wall; parameters {record['parameters']}",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
