"""One writer per run directory: a second process is refused at once, naming the directory,
and the hold is re-entrant inside one process and gone when its holder dies."""

import subprocess
import sys
import textwrap

import pytest
from conftest import write_ab_dataset

import w2s_lens.cli.jobs as jobs
from w2s_lens.artifacts.provenance import ArtifactMismatch
from w2s_lens.evaluation.config import EvalConfig
from w2s_lens.evaluation.pipeline import evaluate_examples
from w2s_lens.evaluation.storage.runlock import RunDirBusy, hold, is_held

pytest.importorskip("fcntl")


@pytest.fixture()
def other_holder(tmp_path):
    """A second process holding ``tmp_path / "run"`` until the test ends (then killed)."""
    run = tmp_path / "run"
    code = textwrap.dedent(f"""
        import sys, time
        from w2s_lens.evaluation.storage.runlock import hold
        with hold({str(run)!r}):
            print("held", flush=True)
            time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        yield run, proc
    finally:
        proc.kill()
        proc.wait()


def test_hold_creates_the_directory_and_is_reentrant(tmp_path):
    run = tmp_path / "a" / "run"
    assert not is_held(run)
    with hold(run) as d:
        assert d == run and run.is_dir() and is_held(run)
        with hold(run):  # the pipeline takes it again below a job: no deadlock
            assert is_held(run)
        assert is_held(run)  # the inner release keeps the outer hold
    assert not is_held(run)
    assert list(run.iterdir()) == []  # nothing written into the run directory


def test_a_second_process_is_refused_and_the_lock_dies_with_its_holder(other_holder):
    run, proc = other_holder
    with pytest.raises(RunDirBusy, match="in use by another w2s-lens process") as err:
        with hold(run):
            pass
    assert str(run) in str(err.value)
    assert isinstance(err.value, ArtifactMismatch)  # the CLI's existing error path
    proc.kill()
    proc.wait()
    with hold(run):  # the OS dropped the dead holder's lock: no stale lock to clean up
        assert is_held(run)


def test_a_file_is_refused(tmp_path):
    afile = tmp_path / "out.txt"
    afile.write_text("keep me")
    with pytest.raises(ArtifactMismatch, match="existing file"):
        with hold(afile):
            pass
    assert afile.read_text() == "keep me"


def test_jobs_refuse_a_busy_directory_before_the_model_loads(tmp_path, monkeypatch,
                                                             other_holder):
    run, _ = other_holder
    data = write_ab_dataset(tmp_path / "data", 6)

    def refuse(*a, **k):
        raise AssertionError("the model was loaded although the directory is busy")

    monkeypatch.setattr(jobs, "load_model", refuse)
    cfg = EvalConfig(dataset=str(data), n_train=4, n_test=2, layers=(1,), cross_fit=0)
    with pytest.raises(RunDirBusy, match="run"):
        jobs.run_evaluation(cfg, run)
    with pytest.raises(RunDirBusy, match="run"):
        jobs.run_sweep_job(cfg, run)
    with pytest.raises(RunDirBusy, match="run"):  # the library entry point as well
        evaluate_examples(object(), object(), cfg, run, progress=False)
    assert list(run.iterdir()) == []
