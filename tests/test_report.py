"""write_report on synthetic run / sweep directories: self-contained HTML, values, verdicts."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from plotly.offline import get_plotlyjs
from safetensors.numpy import save_file

from w2s_lens.report import (
    VERDICT_BETTER,
    VERDICT_NONE,
    VERDICT_WORSE,
    letter_gain_share,
    verdict,
    write_report,
)

LAYERS = [1, 2, 3, 4]
MULT = [-1.0, 0.0, 1.0]
EVIL = "<script>alert('x')</script>&"
CHROMIUM = Path("/usr/bin/chromium")


def _sweep(d: Path, n: int, seed: int, ids: list[str] | None = None) -> list[str]:
    rng = np.random.default_rng(seed)
    slopes = rng.normal(0.2, 0.2, size=(n, len(LAYERS))).astype(np.float32)
    prop = 0.5 + slopes[:, :, None] * np.asarray(MULT, dtype=np.float32)[None, None, :]
    d.mkdir(parents=True, exist_ok=True)
    save_file(
        {
            "propensity": prop.astype(np.float32),
            "steerability": slopes,
            "layers": np.asarray(LAYERS, dtype=np.int64),
            "multipliers": np.asarray(MULT, dtype=np.float32),
        },
        str(d / "sweep.safetensors"),
    )
    ids = ids or [f"{d.name}-{i}" for i in range(n)]
    letters = ["A" if i % 2 else "B" for i in range(n)]
    (d / "sweep_ids.json").write_text(json.dumps({"ids": ids, "matching_letters": letters}))
    return ids


def _stats(m: float, lo: float, hi: float, f: float = 0.6) -> dict:
    return {
        "steerability": m,
        "steerability_ci": [lo, hi],
        "steerable_fraction": f,
        "steerable_fraction_ci": [f - 0.1, f + 0.1],
    }


def _variant(fixed: float, w2s: float, diff_ci: list[float], oracle: float, letter: float) -> dict:
    router = {
        **_stats(w2s, w2s - 0.05, w2s + 0.05, 0.7),
        "accuracy": 0.42,
        "top3_accuracy": 0.81,
        "diff_vs_fixed": w2s - fixed,
        "diff_vs_fixed_ci": diff_ci,
    }
    return {
        "n": 6,
        "fixed_layer": 2,
        "fixed": _stats(fixed, fixed - 0.1, fixed + 0.15),
        "w2s": {"knn": router, "linear": {**router, "accuracy": 0.3}},
        "oracle": _stats(oracle, oracle - 0.05, oracle + 0.05, 0.9),
        "letter_oracle": {
            **_stats(letter, letter - 0.05, letter + 0.05),
            "layers": {"A": 2, "B": 3},
        },
        "by_letter": {
            "A": {"n": 3, "fixed": _stats(fixed, 0, 1), "w2s": {"knn": _stats(w2s, 0, 1)},
                  "oracle": _stats(oracle, 0, 1)},
            "B": {"n": 3, "fixed": fixed, "w2s": w2s, "oracle": oracle},
        },
    }  # fmt: skip


def make_run(root: Path, with_routing: bool = True, with_train: bool = True) -> Path:
    """A fake ``w2s-lens evaluate`` run dir: three variants, one verdict of each kind."""
    run = root / "run"
    run.mkdir()
    variants = {
        # letter-oracle gets (0.47-0.2)/(0.5-0.2) = 90% of the oracle's gain -> warning
        "base": _variant(0.2, 0.3, [0.02, 0.18], 0.5, 0.47),
        "swapped": _variant(0.25, 0.26, [-0.04, 0.06], 0.5, 0.3),
        "shuffled": _variant(0.3, 0.1, [-0.3, -0.1], 0.4, 0.3),
    }
    results = {
        "model": f"tiny{EVIL}",
        "dataset": "sycophancy",
        "layers": LAYERS,
        "routers": ["linear", "knn"],
        "primary_router": "knn",
        "variants": variants,
    }
    (run / "results.json").write_text(json.dumps(results))
    meta = {
        "model": f"tiny{EVIL}",
        "dataset": "sycophancy",
        "variants": list(variants),
        "n_train": 8,
        "n_test": 6,
        "seed": 0,
        "engine": "fast",
        "versions": {"w2s_lens": "0.1.0", "torch": "2.13"},
    }
    (run / "run.json").write_text(json.dumps(meta))
    if with_train:
        _sweep(run / "train", 8, seed=1)
    for k, v in enumerate(variants):
        ids = [f"q{i}" for i in range(5)] + [EVIL]
        _sweep(run / v, 6, seed=10 + k, ids=ids)
        if with_routing and v != "shuffled":
            routing = {
                "ids": ids[::-1],  # different order from the sweep: must be aligned by id
                "fixed_layer": 2,
                "oracle_layer": [1, 2, 3, 4, 1, 2],
                "router_layer": {"knn": [1, 2, 3, 3, 1, 4], "linear": [2, 2, 2, 2, 2, 2]},
            }
            (run / v / "routing.json").write_text(json.dumps(routing))
    return run


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return make_run(tmp_path)


def _no_external_scripts(text: str) -> None:
    assert not re.search(r"<script[^>]*\bsrc\s*=", text), "report must not load scripts"


def test_verdict_and_letter_share() -> None:
    assert verdict([0.01, 0.3]) == VERDICT_BETTER
    assert verdict([-0.01, 0.3]) == VERDICT_NONE
    assert verdict([0.0, 0.3]) == VERDICT_NONE
    assert verdict([-0.3, -0.01]) == VERDICT_WORSE
    assert verdict(None) == VERDICT_NONE
    v = {"fixed": {"steerability": 0.2}, "oracle": {"steerability": 0.5}}
    assert letter_gain_share({**v, "letter_oracle": {"steerability": 0.47}}) == pytest.approx(0.9)
    assert letter_gain_share({**v, "oracle": {"steerability": 0.1}}) is None


def test_run_report_contents(run_dir: Path) -> None:
    out = write_report(run_dir)
    assert out == run_dir / "report.html"
    text = out.read_text(encoding="utf-8")
    # plotly.js inline exactly once, nothing fetched from the network
    bundle_head = get_plotlyjs()[:300]
    assert text.count(bundle_head) == 1
    _no_external_scripts(text)
    assert text.count('class="plotly-graph-div"') >= 10
    # table values (fixed / W2S / oracle / letter-oracle with CIs; fractions; accuracy; diff)
    assert "0.200 [0.100, 0.350]" in text
    assert "0.300 [0.250, 0.350]" in text
    assert "0.500 [0.450, 0.550]" in text
    assert "0.470 [0.420, 0.520] (A→2, B→3)" in text
    assert "60.0% [50.0%, 70.0%]" in text
    assert "42.0% (81.0%)" in text
    assert "0.100 [0.020, 0.180]" in text
    # one verdict of each kind
    for v in (VERDICT_BETTER, VERDICT_NONE, VERDICT_WORSE):
        assert f">{v}</span>" in text
    # letter artifact only for base
    assert text.count("Letter artifact suspected") == 1
    assert "variant &#x27;base&#x27;" in text and "90%" in text
    # secondary tables and metadata
    assert "Routers — base" in text and "(primary)" in text
    assert "By matching letter — base" in text
    assert "n_train" in text and "&quot;w2s_lens&quot;: &quot;0.1.0&quot;" in text
    # shuffled has no routing.json: skipped with a note, not a crash
    assert "No routing.json for variant &#x27;shuffled&#x27;" in text
    # escaping: the hostile string never appears raw (neither in HTML nor figure JSON)
    assert EVIL not in text
    assert "tiny&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&amp;" in text
    assert "not drawn" not in text


def test_out_path_and_missing_pieces(tmp_path: Path) -> None:
    run = make_run(tmp_path, with_routing=False, with_train=False)
    shutil.rmtree(run / "swapped")
    results = json.loads((run / "results.json").read_text())
    del results["variants"]["shuffled"]["w2s"]
    (run / "results.json").write_text(json.dumps(results))
    (run / "run.json").unlink()
    out = write_report(run, tmp_path / "sub" / "r.html")
    text = out.read_text(encoding="utf-8")
    assert out == tmp_path / "sub" / "r.html"
    assert "No training sweep" in text
    assert "No sweep for variant &#x27;swapped&#x27;" in text
    assert "No routing.json for variant &#x27;base&#x27;" in text
    assert "no router results" in text
    assert "No run.json found." in text
    _no_external_scripts(text)


def test_sweep_dir_report(tmp_path: Path) -> None:
    d = tmp_path / "sweep"
    ids = _sweep(d, 5, seed=3)
    (d / "sweep_ids.json").unlink()  # ids must then come from examples.jsonl
    ex = [
        {"id": f"ex{i}", "text": f"Question {i} <b>bold</b> & co", "matching_letter": "AB"[i % 2]}
        for i in range(5)
    ]
    (d / "examples.jsonl").write_text("\n".join(json.dumps(e) for e in ex) + "\n")
    (d / "run.json").write_text(json.dumps({"model": "tiny", "dataset": "syc"}))
    text = write_report(d).read_text(encoding="utf-8")
    assert ids and "W2S sweep report — tiny / syc" in text
    assert "Question 0 &lt;b&gt;bold&lt;/b&gt; &amp; co" in text
    assert "<b>bold</b>" not in text
    assert text.count('class="plotly-graph-div"') == 4
    assert "ex3" in text
    _no_external_scripts(text)


def test_not_a_run_dir(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="neither a run directory"):
        write_report(tmp_path)
    with pytest.raises(FileNotFoundError):
        write_report(tmp_path / "missing")


# --------------------------------------------------------------------------- headless browser

_COLLECTOR = """<script>
window.__errs = [];
window.addEventListener('error', function (e) { window.__errs.push(String(e.message)); });
(function () {
  var orig = console.error;
  console.error = function () {
    window.__errs.push(Array.prototype.join.call(arguments, ' '));
    orig.apply(console, arguments);
  };
})();
window.addEventListener('load', function () {
  setTimeout(function () {
    document.body.setAttribute('data-js-errors', JSON.stringify(window.__errs));
    document.body.setAttribute('data-rendered', 'yes');
  }, 1000);
});
</script>"""


def chromium_command(html: Path, profile: Path) -> list[str]:
    """The headless Chromium invocation used to render a report and dump its DOM."""
    return [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=15000",
        "--dump-dom",
        html.resolve().as_uri(),
    ]


@pytest.mark.browser
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium not installed (Debian package 'chromium')")
    report = write_report(make_run(tmp_path))
    text = report.read_text(encoding="utf-8")
    n_divs = text.count('class="plotly-graph-div"')
    probe = tmp_path / "probe.html"
    probe.write_text(text.replace("<head>", "<head>\n" + _COLLECTOR, 1), encoding="utf-8")
    proc = subprocess.run(
        chromium_command(probe, tmp_path / "profile"),
        capture_output=True,
        text=True,
        timeout=180,
    )
    dom, log = proc.stdout, proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert 'data-rendered="yes"' in dom, f"page did not finish loading\n{log[-3000:]}"
    m = re.search(r'data-js-errors="([^"]*)"', dom)
    assert m is not None
    errors = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert errors == [], errors
    console = [ln for ln in log.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    assert not [ln for ln in console if "rror" in ln or "Uncaught" in ln], console
    # every figure div was turned into a plot with its SVG layers
    plots_rendered = re.findall(r'<div[^>]*class="[^"]*\bjs-plotly-plot\b', dom)
    assert len(plots_rendered) == n_divs
    assert len(re.findall(r'<svg[^>]*class="main-svg"', dom)) >= 2 * n_divs


def test_router_layers_aligned_by_id() -> None:
    from w2s_lens.report import _aligned_router_layers, _Doc

    doc = _Doc()
    routing = {"ids": ["b", "a"], "router_layer": {"knn": [3, 1], "lin": [2, 2]}}
    assert _aligned_router_layers(doc, routing, ["a", "b"], "knn", "v") == ("knn", [1, 3])
    assert _aligned_router_layers(doc, routing, ["a", "b"], "nope", "v") == ("knn", [1, 3])
    assert _aligned_router_layers(doc, routing, ["a", "z"], "lin", "v") == ("lin", None)
    assert any("do not match" in p for p in doc.parts)
