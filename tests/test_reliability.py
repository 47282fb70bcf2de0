"""Reliability: every file a run loads is checked, damage is refused or healed, and artifacts
can be shared (issue 35, items 1 and 5). Each case below is a test here.

=====================================================  =======================================
case                                                   guaranteed outcome
=====================================================  =======================================
converted-model cache: bit flips in model.safetensors  healed: one CacheWarning, converted again
converted-model cache: cfg.json not JSON / edited       healed: one CacheWarning, converted again
converted-model cache: a tokenizer file deleted        healed: one CacheWarning, converted again
converted-model cache of an older w2s-lens (no seal)   works: digests recorded once, no
                                                       conversion; later damage then heals
(slow) SmolLM2 copy, bit flips in blocks.5.mlp.W_in    healed: reconverted, weights as before
bundle: bit flips / NaN in vectors.safetensors         clear error (ArtifactMismatch naming it)
bundle: vectors.safetensors truncated or deleted       clear error naming the file
bundle: a value edited in router/router.json           clear error naming router/router.json
bundle: a value edited in w2s.json                     clear error naming w2s.json
bundle: bit flips in l2s/l2s.safetensors               clear error naming the file
bundle written before seals (no digests)               works, with an IntegrityWarning
vectors dir: NaN values, norms ×1000 (unsealed JSON)   clear error: non-finite / norms differ
router dir: a hyper-parameter edited in router.json    clear error: router.json was changed
``w2s-lens report``: examples.jsonl broken             exit 2 naming it (page still written)
``w2s-lens report``: sweep damaged, chunks gone        exit 2 naming it (page still written)
``w2s-lens report``: sweep damaged, chunks kept        healed: exit 0
``w2s-lens report`` while another process holds run    clear error: in use (exit 2)
file modes                                             follow the umask (0644 under 022)
safetensors written twice with the same content        byte-identical (sorted metadata)
dataset given as a path; the report's own page         no absolute path in vectors.json,
                                                       l2s.json, w2s.json or report.html
absolute data_dir / dataset path in run.json           left out (None / the file name); a run
                                                       moved to another checkout resumes
the same sweep run twice, in two places                every file byte-identical (chunks too)
=====================================================  =======================================

Old artifacts without digests are accepted with an :class:`IntegrityWarning` (running
experiments and finished runs stay loadable; re-save to seal them); old converted-model caches
get their digests recorded on first load.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_tiny_model
from safetensors.torch import load_file, save_file

from w2s_lens import cli
from w2s_lens.artifacts.json_files import write_json
from w2s_lens.artifacts.provenance import ArtifactMismatch
from w2s_lens.artifacts.seals import IntegrityWarning
from w2s_lens.artifacts.tensors import save_tensors
from w2s_lens.controls.synthetic import build_control
from w2s_lens.evaluation.config import EvalConfig
from w2s_lens.evaluation.storage.rundir import RunDir
from w2s_lens.models import converted
from w2s_lens.models import loading as models
from w2s_lens.routing.bundle import W2S
from w2s_lens.routing.routers import LayerRouter
from w2s_lens.steering.l2s.config import L2SConfig
from w2s_lens.steering.l2s.steerer import L2SSteerer
from w2s_lens.steering.vectors import SteeringVectors, train_caa
from w2s_lens.sweep.chunks import ChunkWarning
from w2s_lens.sweep.runner import run_sweep

sys.path.insert(0, str(Path(__file__).parent / "models"))
from test_gguf_convert import write_tiny_model  # noqa: E402

SMOL = "smollm2-135m-instruct"
LAYERS = [1, 2, 3]


@contextmanager
def no_integrity_warning():
    """Fail on a CacheWarning or IntegrityWarning inside the block (others are library noise)."""
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        yield
    assert not [w for w in got if issubclass(w.category, (converted.CacheWarning,
                                                          IntegrityWarning))]


def flip_bytes(path: Path, at: int | None = None, n: int = 4) -> None:
    """Invert ``n`` bytes of ``path`` (by default in the middle of the file)."""
    data = bytearray(path.read_bytes())
    at = len(data) // 2 if at is None else at
    for i in range(at, at + n):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


# --------------------------------------------------------------------------- model cache


@pytest.fixture
def tiny_cache(monkeypatch, tmp_path):
    """A registered embedded model converted into a temporary cache (a tiny random Qwen2)."""
    monkeypatch.setenv("W2S_CACHE_DIR", str(tmp_path / "cache"))
    entry = dataclasses.replace(models.EMBEDDED_MODELS[SMOL], name="tiny-embedded")
    monkeypatch.setitem(models.EMBEDDED_MODELS, "tiny-embedded", entry)
    conversions: list[Path] = []

    def fake_convert(e, out_dir, download=True):
        conversions.append(out_dir)
        write_tiny_model(out_dir, name=e.name)

    monkeypatch.setattr(models, "convert_gguf", fake_convert)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    first = models.load_model("tiny-embedded")
    return conversions, models.model_cache_dir("tiny-embedded"), first


def _load_healed(conversions: list[Path], first) -> None:
    with pytest.warns(converted.CacheWarning, match="failed its integrity check") as got:
        again = models.load_model("tiny-embedded")
    assert len([w for w in got if w.category is converted.CacheWarning]) == 1
    assert len(conversions) == 2
    assert torch.equal(again.blocks[1].mlp.W_in, first.blocks[1].mlp.W_in)


def test_cache_bit_flips_are_reconverted(tiny_cache) -> None:
    conversions, folder, first = tiny_cache
    flip_bytes(folder / "model.safetensors")
    _load_healed(conversions, first)
    with no_integrity_warning():  # intact now: no warning, no conversion
        models.load_model("tiny-embedded")
    assert len(conversions) == 2


@pytest.mark.parametrize("damage", ["cfg-not-json", "cfg-edited", "tokenizer-file-gone"])
def test_cache_damaged_config_or_tokenizer_is_reconverted(tiny_cache, damage) -> None:
    conversions, folder, first = tiny_cache
    if damage == "cfg-not-json":
        (folder / "cfg.json").write_text("{ not json")
    elif damage == "cfg-edited":
        meta = json.loads((folder / "cfg.json").read_text())
        meta["cfg"]["rotary_base"] = 1.0
        (folder / "cfg.json").write_text(json.dumps(meta))
    else:
        next(p for p in sorted((folder / "tokenizer").iterdir()) if p.is_file()).unlink()
    _load_healed(conversions, first)


def test_a_cache_without_digests_gets_them_once(tiny_cache) -> None:
    conversions, folder, first = tiny_cache
    meta = json.loads((folder / "cfg.json").read_text())
    del meta["integrity"]  # as converted by an older w2s-lens
    write_json(folder / "cfg.json", meta)
    with no_integrity_warning():
        models.load_model("tiny-embedded")
    assert len(conversions) == 1 and "integrity" in json.loads((folder / "cfg.json").read_text())
    flip_bytes(folder / "model.safetensors")
    _load_healed(conversions, first)


@pytest.mark.slow
def test_smollm2_cache_copy_with_bit_flips_is_reconverted(monkeypatch, tmp_path) -> None:
    """On a temporary copy of the real cache (never the cache itself)."""
    real = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "w2s-lens"
    if not (real / "models" / SMOL / "model.safetensors").is_file():
        pytest.skip(f"{SMOL} is not converted in {real}")
    cache = tmp_path / "cache"
    shutil.copytree(real / "models" / SMOL, cache / "models" / SMOL)
    for sub in ("assets", "wheels", "gguf"):  # the GGUF, read only
        if (real / sub).is_dir():
            (cache / sub).symlink_to(real / sub, target_is_directory=True)
    monkeypatch.setenv("W2S_CACHE_DIR", str(cache))
    folder = models.model_cache_dir(SMOL)
    assert folder.is_relative_to(tmp_path)
    pristine = models.load_model(SMOL, device="cpu")  # records the copy's digests
    w_in = pristine.blocks[5].mlp.W_in.detach().clone()
    header = json.loads((folder / "model.safetensors").read_bytes()[8:8 + int.from_bytes(
        (folder / "model.safetensors").read_bytes()[:8], "little")])
    start = 8 + int.from_bytes((folder / "model.safetensors").read_bytes()[:8], "little")
    flip_bytes(folder / "model.safetensors",
               start + header["blocks.5.mlp.W_in"]["data_offsets"][0] + 1000, n=16)
    with pytest.warns(converted.CacheWarning, match="model.safetensors is damaged"):
        healed = models.load_model(SMOL, device="cpu")
    assert torch.equal(healed.blocks[5].mlp.W_in, w_in)


# --------------------------------------------------------------------------- bundles


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    model = make_tiny_model()
    model.cfg.model_name = "tiny-rotary"
    return model


def _bundle(model, out: Path, method: str = "caa", dataset: str = "toy") -> Path:
    rng = np.random.default_rng(0)
    X, S = rng.normal(size=(30, 8)), rng.normal(size=(30, len(LAYERS)))
    router = LayerRouter("logreg", model="tiny-rotary", dataset="toy", embedding="resid-last@2",
                         layers=LAYERS, hook="resid_pre", readout="letter").fit(X, S)
    meta = {"model": "tiny-rotary", "d_model": 32, "dataset": dataset}
    if method == "caa":
        steerer = SteeringVectors(torch.randn(3, 32, generator=torch.Generator().manual_seed(0)),
                                  LAYERS, metadata=meta)
    else:
        steerer = L2SSteerer(L2SConfig(hidden=8, epochs=2, input_layer=2), "tiny-rotary",
                             dataset=dataset).fit(torch.randn(20, 32), torch.randn(20, 3, 32),
                                                  LAYERS)
    W2S(model=model, router=router, steerer=steerer, embedding="resid-last", embedding_layer=2,
        fixed_layer=2).save(out)
    return out


def test_an_intact_bundle_loads(tiny, tmp_path) -> None:
    with no_integrity_warning():
        w2s = W2S.load(_bundle(tiny, tmp_path / "b"), tiny)
    assert w2s.fixed_layer == 2 and w2s.router.layers == LAYERS


def _nan_vectors(path: Path) -> None:
    tensors = load_file(str(path))
    next(iter(tensors.values()))[0] = float("nan")
    save_file(tensors, str(path))


def _edit_json(path: Path, edit) -> None:
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta, indent=2))


BUNDLE_DAMAGE = {
    "vectors-bit-flips": ("vectors/vectors.safetensors", lambda p: flip_bytes(p),
                          "vectors.safetensors is damaged"),
    "vectors-nan": ("vectors/vectors.safetensors", _nan_vectors, "vectors.safetensors is damaged"),
    "vectors-truncated": ("vectors/vectors.safetensors",
                          lambda p: p.write_bytes(p.read_bytes()[:-64]),
                          "vectors.safetensors is damaged"),
    "vectors-deleted": ("vectors/vectors.safetensors", lambda p: p.unlink(),
                        "vectors.safetensors is missing"),
    "router-json-edited": ("router/router.json",
                           lambda p: _edit_json(p, lambda m: m.update(n_features=7)),
                           "router/router.json is damaged"),
    "w2s-json-edited": ("w2s.json", lambda p: _edit_json(p, lambda m: m.update(fixed_layer=3)),
                        "w2s.json was changed after it was written"),
}


@pytest.mark.parametrize("case", sorted(BUNDLE_DAMAGE))
def test_a_damaged_or_edited_bundle_is_refused_naming_the_file(tiny, tmp_path, case) -> None:
    d = _bundle(tiny, tmp_path / "b")
    rel, damage, message = BUNDLE_DAMAGE[case]
    damage(d / rel)
    with pytest.raises(ArtifactMismatch, match=message):
        W2S.load(d, tiny)


def test_damaged_l2s_networks_are_refused(tiny, tmp_path) -> None:
    d = _bundle(tiny, tmp_path / "b", method="l2s")
    W2S.load(d, tiny)
    flip_bytes(d / "l2s" / "l2s.safetensors")
    with pytest.raises(ArtifactMismatch, match="l2s/l2s.safetensors is damaged"):
        W2S.load(d, tiny)


def test_a_bundle_without_digests_loads_with_a_warning(tiny, tmp_path) -> None:
    d = _bundle(tiny, tmp_path / "b")
    for rel in ("w2s.json", "vectors/vectors.json"):
        _edit_json(d / rel, lambda m: m.pop("integrity"))
    _edit_json(d / "router" / "router.json", lambda m: m["estimator"].pop("digest"))
    with pytest.warns(IntegrityWarning, match="no digest") as caught:
        w2s = W2S.load(d, tiny)
    assert w2s.fixed_layer == 2
    # the bundle's own warning points at the line that called W2S.load (here), not inside it
    [bundle_warning] = [w for w in caught if "w2s.json records no digests" in str(w.message)]
    assert bundle_warning.filename == __file__


@pytest.mark.parametrize("damage", ["nan", "times-1000"])
def test_unsealed_vectors_are_still_range_checked(tiny, tmp_path, damage) -> None:
    vecs = SteeringVectors(torch.randn(3, 32), LAYERS, metadata={"model": "tiny-rotary"})
    vecs.save(tmp_path)
    _edit_json(tmp_path / "vectors.json", lambda m: m.pop("integrity"))
    tensors = load_file(str(tmp_path / "vectors.safetensors"))
    for t in tensors.values():
        t.mul_(1000) if damage == "times-1000" else t.fill_(float("nan"))
    save_file(tensors, str(tmp_path / "vectors.safetensors"))
    message = "non-finite" if damage == "nan" else "norms differ"
    with pytest.warns(IntegrityWarning), pytest.raises(ArtifactMismatch, match=message):
        SteeringVectors.load(tmp_path, model=tiny)


def test_an_edited_router_description_is_refused(tmp_path) -> None:
    rng = np.random.default_rng(1)
    LayerRouter("logreg", layers=LAYERS).fit(rng.normal(size=(30, 4)),
                                             rng.normal(size=(30, 3))).save(tmp_path)
    _edit_json(tmp_path / "router.json",
               lambda m: m["estimator"]["steps"][1]["params"].update(C=1e6))
    with pytest.raises(ArtifactMismatch, match="router.json was changed after it was written"):
        LayerRouter.load(tmp_path)


# --------------------------------------------------------------------------- report


def _sweep_run(path: Path, data_dir: str | None = None) -> Path:
    """A sweep directory as ``w2s-lens sweep`` writes it, on the synthetic control, in
    ``path`` (with ``data_dir`` recorded in its config)."""
    control = build_control("positive", n_families=3, n_layers=4, seed=0)
    rd = RunDir(path)
    record = {**EvalConfig(dataset="synthetic", data_dir=data_dir,
                           layers=tuple(LAYERS)).to_dict(), "split": "test", "variant": "base"}
    rd.prepare("sweep", record)
    vectors = train_caa(control.model, control.make_examples(12, seed=1, both_orders=True),
                        layers=LAYERS)
    vectors.save(rd.vectors_dir())
    examples = control.make_examples(4, seed=4, both_orders=True)
    result = run_sweep(control.model, vectors, examples, layers=LAYERS, out_dir=rd.path,
                       progress=False)
    rd.save_sweep(rd.path, result, examples)
    rd.write_run("sweep", record, {"model": control.model.cfg.model_name, "layers": LAYERS})
    return rd.path


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory) -> Path:
    """A sweep directory as ``w2s-lens sweep`` writes it, on the synthetic control."""
    return _sweep_run(tmp_path_factory.mktemp("sweep") / "run")


def _report(run: Path, capsys) -> tuple[int, str]:
    code = cli.main(["report", str(run)])
    return code, capsys.readouterr().err


def test_report_of_an_intact_run_exits_0_without_local_paths(sweep_dir, tmp_path,
                                                             capsys) -> None:
    run = shutil.copytree(sweep_dir, tmp_path / "run")
    assert _report(run, capsys)[0] == 0
    text = (run / "report.html").read_text()
    assert str(tmp_path) not in text and "Generated" in text


@pytest.mark.parametrize("damage", ["examples-jsonl", "sweep-without-chunks"])
def test_report_exits_2_on_damage_it_cannot_heal(sweep_dir, tmp_path, capsys, damage) -> None:
    run = shutil.copytree(sweep_dir, tmp_path / "run")
    if damage == "examples-jsonl":
        with open(run / "examples.jsonl", "a") as f:
            f.write("{ not json\n")
        named = "examples.jsonl"
    else:
        shutil.rmtree(run / "chunks")
        flip_bytes(run / "sweep.safetensors")
        named = "sweep"
    code, err = _report(run, capsys)
    assert code == 2 and "damaged" in err and named in err
    assert (run / "report.html").is_file()  # the page is still written, with the notes


def test_report_heals_a_damaged_sweep_from_its_chunks(sweep_dir, tmp_path, capsys) -> None:
    run = shutil.copytree(sweep_dir, tmp_path / "run")
    # copies: load_file's tensors can share the file's memory map, which flip_bytes rewrites
    original = {k: v.clone() for k, v in load_file(run / "sweep.safetensors").items()}
    flip_bytes(run / "sweep.safetensors")
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        assert _report(run, capsys)[0] == 0
    healing = [w for w in got if issubclass(w.category, ChunkWarning)]
    assert len(healing) == 1 and "rebuilt it from" in str(healing[0].message)
    healed = load_file(run / "sweep.safetensors")  # written back, bit for bit the original
    assert healed.keys() == original.keys()
    assert all(torch.equal(healed[k], original[k]) for k in original)
    assert (run / "report.html").is_file()


def test_report_is_refused_while_another_process_holds_the_run(sweep_dir, tmp_path,
                                                               capsys) -> None:
    run = shutil.copytree(sweep_dir, tmp_path / "run")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], "
         "os.O_RDONLY); fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); "
         "time.sleep(120)", str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, err = _report(run, capsys)
    finally:
        holder.kill()
        holder.wait()
    assert code == 2 and "in use by another w2s-lens process" in err
    assert not (run / "report.html").exists()


# --------------------------------------------------------------------------- sharing


def test_files_follow_the_umask(tmp_path) -> None:
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        save_tensors(tmp_path / "t.safetensors", {"x": np.zeros(2)})
        os.umask(0o077)
        write_json(tmp_path / "b.json", {"x": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "t.safetensors").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "b.json").stat().st_mode & 0o777 == 0o600


def test_identical_tensors_give_identical_files(tmp_path) -> None:
    meta = {"model": "m", "hook": "resid_pre", "kind": "logreg", "format": "x", "seed": "0"}
    written = set()
    for i in range(6):  # safetensors orders the metadata by hash, differently each time
        p = save_tensors(tmp_path / f"{i}.safetensors", {"x": np.arange(4.0)}, metadata=meta)
        written.add(p.read_bytes())
    assert len(written) == 1


def test_no_local_dataset_path_in_shared_jsons(tiny, tmp_path) -> None:
    data = tmp_path / "secret-home" / "toy.jsonl"
    data.parent.mkdir()
    data.write_text('{"question": "q"}\n')
    for method in ("caa", "l2s"):
        d = _bundle(tiny, tmp_path / method, method=method, dataset=str(data))
        for f in [d / "w2s.json", *d.glob("*/*.json")]:
            if f.name != "router.json":  # router.json's dataset: routers.py (another owner)
                assert "secret-home" not in f.read_text(), f
        meta = json.loads(next(d.glob("*/vectors.json"), d / "l2s" / "l2s.json").read_text())
        assert meta["dataset"] == "toy.jsonl" and len(meta["dataset_sha256"]) == 64


def test_identical_runs_write_byte_identical_files(tmp_path) -> None:
    """Two identical sweeps, in two places and from two checkouts of the data: every file
    (chunks, sweep, examples, vectors, run.json) is byte-identical, so digests compare."""
    a = _sweep_run(tmp_path / "home-a" / "run", str(tmp_path / "home-a" / "mwe"))
    b = _sweep_run(tmp_path / "home-b" / "run", str(tmp_path / "home-b" / "mwe"))
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file()
                     and not p.name.endswith(".lock"))
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file()
                     and not p.name.endswith(".lock"))
    assert files_a == files_b and any(p.parts[0] == "chunks" for p in files_a)
    differ = [str(p) for p in files_a if (a / p).read_bytes() != (b / p).read_bytes()]
    assert differ == []
    # safetensors orders the header's metadata differently from call to call; every file the
    # run wrote has it sorted (so the comparison above cannot pass by chance)
    for p in files_a:
        if p.suffix == ".safetensors":
            data = (a / p).read_bytes()
            meta = json.loads(data[8:8 + int.from_bytes(data[:8], "little")]).get(
                "__metadata__") or {}
            assert list(meta) == sorted(meta), p


def test_run_json_names_no_local_path_and_a_moved_run_resumes(tmp_path) -> None:
    run = tmp_path / "run"
    config = EvalConfig(dataset=str(tmp_path / "secret-home" / "toy.jsonl"),
                        data_dir=str(tmp_path / "secret-home"), layers=(1, 2))
    rd = RunDir(run)
    assert rd.prepare("evaluation", config.to_dict()) is False
    rd.write_run("evaluation", config.to_dict(), {"status": "running"})
    text = (run / "run.json").read_text()
    assert "secret-home" not in text
    stored = json.loads(text)["config"]
    assert stored["data"]["data_dir"] is None and stored["data"]["dataset"] == "toy.jsonl"
    # the same run, given from another checkout (other absolute paths), resumes
    moved = config.replace(dataset=str(tmp_path / "elsewhere" / "toy.jsonl"),
                           data_dir=str(tmp_path / "elsewhere"))
    assert RunDir(run).prepare("evaluation", moved.to_dict()) is True
    # a sweep directory too (where data_dir is not one of the settings a rerun may change)
    sweep = tmp_path / "sweep"
    record = {**config.to_dict(), "split": "test", "variant": "base"}
    RunDir(sweep).prepare("sweep", record)
    RunDir(sweep).write_run("sweep", record, {})
    assert "secret-home" not in (sweep / "run.json").read_text()
    assert RunDir(sweep).prepare("sweep", {**moved.to_dict(), "split": "test",
                                           "variant": "base"}) is True
    # but another dataset is still refused
    other = config.replace(dataset=str(tmp_path / "x" / "other.jsonl"))
    with pytest.raises(ArtifactMismatch, match="dataset"):
        RunDir(run).prepare("evaluation", other.to_dict())
