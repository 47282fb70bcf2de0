"""analysis/powered_study.py: the plan, which jobs are pending, copying and committing results."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "analysis" / "powered_study.py"
_spec = importlib.util.spec_from_file_location("powered_study", _PATH)
ps = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("powered_study", ps)  # dataclasses look their module up by name
_spec.loader.exec_module(ps)


def test_plan_is_the_issue_s_plan():
    rows = {r.name: r for r in ps.PLAN}
    assert ps.PLAN[0].name == "cloze-0.5b"  # the primary row runs first
    assert rows["cloze-0.5b"].datasets == ps.AI_RISK and len(ps.AI_RISK) == 5
    assert all(r.n_train >= 200 and r.n_test >= 200 for r in ps.PLAN if "0.5b" in r.name)
    assert (rows["cloze-1.5b"].n_train, rows["cloze-1.5b"].n_test) == (96, 96)
    paper = rows["paper-0.5b"].command("corrigible-neutral-HHH", Path("o"))
    assert {"--no-mirror", "--single-order"} <= set(paper)
    assert paper[paper.index("--cross-fit") + 1] == "0"
    cmd = rows["cloze-0.5b"].command("myopic-reward", Path("o"), threads=3)
    assert cmd[cmd.index("--layers") + 1] == ps.GRID_05B
    assert cmd[cmd.index("--threads") + 1] == "3" and cmd[cmd.index("--seed") + 1] == "0"
    assert rows["cloze-1.5b"].command("x", Path("o"))[3] == "qwen2.5-coder-1.5b-instruct"


def test_the_fair_plan_sees_options_retests_all_and_sweeps_ood_on_two():
    rows = {r.name: r for r in ps.PLAN}
    for row in ps.PLAN:
        for d in row.datasets:
            cmd = row.command(d, Path("o"))
            assert cmd[cmd.index("--router-inputs") + 1] == \
                "question,options,question+options,minilm"
            assert cmd[cmd.index("--retest-items") + 1] == "all"
            variants = cmd[cmd.index("--variants") + 1].split(",")
            ood = row.name == "cloze-0.5b" and d in ps.TWO
            assert variants == (["base", "sys-pos", "sys-neg", "user-pos", "user-neg"] if ood
                                else ["base"])
    assert rows["cloze-0.5b"].ood == ps.TWO
    # the v1 plan as it ran: the question view only, the retest on 64 items
    v1 = ps.PLAN_V1[0].command("myopic-reward", Path("o"))
    assert "--router-inputs" not in v1 and v1[v1.index("--retest-items") + 1] == "64"


def test_run_directories_live_outside_the_work_tree(monkeypatch, tmp_path):
    monkeypatch.delenv("W2S_RUNS_DIR", raising=False)
    assert ps.runs_root() == Path.home() / ".local" / "share" / "w2s-lens" / "runs"
    assert not ps.runs_root().is_relative_to(_PATH.parents[1])
    monkeypatch.setenv("W2S_RUNS_DIR", str(tmp_path))
    assert ps.runs_root() == tmp_path


def _finish(results: Path, row: str, dataset: str, n_train: int, n_test: int) -> None:
    d = results / row / dataset
    d.mkdir(parents=True)
    (d / "results.json").write_text(json.dumps({"n_train": n_train, "n_test": n_test}))


def test_pending_skips_finished_datasets_in_plan_order(tmp_path):
    _finish(tmp_path, "cloze-0.5b", "corrigible-neutral-HHH", 200, 200)
    _finish(tmp_path, "paper-0.5b", "self-awareness-text-model", 200, 200)
    jobs = [(r.name, d) for r, d in ps.pending(tmp_path)]
    every = [(r.name, d) for r in ps.PLAN for d in r.datasets]
    assert len(jobs) == len(every) - 2
    assert ("cloze-0.5b", "corrigible-neutral-HHH") not in jobs
    assert jobs == [j for j in every if j in jobs]  # order kept
    assert jobs[0] == ("cloze-0.5b", "myopic-reward")


def test_stale_routers_make_a_finished_dataset_pending_only_with_stale(tmp_path):
    """The letter row's committed results, its MLP given the grid it had until 2026-12-07
    (stale), and the same with today's grids (fresh)."""
    from w2s_lens.routing.estimators import tuning_grid

    real = Path(ps.__file__).parent / "results/fair/letter-0.5b/corrigible-neutral-HHH"
    res = json.loads((real / "results.json").read_text())
    res["methods"]["caa"]["router_cv"]["mlp"]["grid"] = [100.0, 1.0, 0.01, 0.0001]
    for row, dataset in [("letter-0.5b", "corrigible-neutral-HHH"),
                         ("letter-0.5b", "self-awareness-text-model")]:
        (tmp_path / row / dataset).mkdir(parents=True)
        (tmp_path / row / dataset / "results.json").write_text(json.dumps(res))
    fresh = tmp_path / "letter-0.5b" / "self-awareness-text-model"
    for name, tuning in res["methods"]["caa"]["router_cv"].items():  # today's grids
        if tuning.get("grid"):
            tuning["grid"] = tuning_grid(name.split("@")[0], tuning["n_samples"])[1]
            tuning["grid"] = [g[0] if isinstance(g, list) else g for g in tuning["grid"]]
    (fresh / "results.json").write_text(json.dumps(res))
    old = tmp_path / "letter-0.5b" / "corrigible-neutral-HHH"
    assert "caa/mlp" in ps.stale_routers(old) and ps.stale_routers(fresh) == []
    assert ps.needs_run(old, stale=True) and not ps.needs_run(old)
    assert not ps.needs_run(fresh, stale=True)
    plain = {(r.name, d) for r, d in ps.pending(tmp_path)}
    with_stale = {(r.name, d) for r, d in ps.pending(tmp_path, stale=True)}
    assert with_stale - plain == {("letter-0.5b", "corrigible-neutral-HHH")}


def test_check_names_a_smaller_row(tmp_path):
    _finish(tmp_path, "cloze-0.5b", "corrigible-neutral-HHH", 200, 200)
    _finish(tmp_path, "cloze-0.5b", "myopic-reward", 180, 200)
    lines = ps.check(tmp_path)
    assert "cloze-0.5b/corrigible-neutral-HHH: planned 200+200, used 200+200" in lines
    assert "cloze-0.5b/myopic-reward: planned 200+200, used 180+200  SMALLER THAN PLANNED" in lines
    _finish(tmp_path, "paper-0.5b", "corrigible-neutral-HHH", None, 200)
    assert "paper-0.5b/corrigible-neutral-HHH: planned 200+200, used None+200  SIZES NOT " \
        "RECORDED" in ps.check(tmp_path)
    assert "cloze-1.5b/corrigible-neutral-HHH: not run" in lines


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout


@pytest.fixture
def repo(tmp_path):
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "config", "user.email", "t@example.org")
    _git(tmp_path, "config", "user.name", "t")
    (tmp_path / "other.txt").write_text("a")
    _git(tmp_path, "add", "other.txt")
    _git(tmp_path, "commit", "-qm", "start")
    return tmp_path


def test_run_copies_and_commits_only_the_dataset_folder(repo, monkeypatch):
    """A finished run's files are copied and committed alone: a change staged elsewhere stays
    staged and uncommitted."""
    _fake(monkeypatch, "import json,pathlib,sys; o=pathlib.Path(sys.argv[1])/sys.argv[2]; "
                       "o.mkdir(parents=True); (o/'results.json').write_text(json.dumps("
                       "{'n_train': 200, 'n_test': 200})); (o/'run.json').write_text('{}'); "
                       "(o/'items.csv').write_text('id\\na'); "
                       "(o.parent/'table.md').write_text('t')")
    (repo / "other.txt").write_text("b")
    _git(repo, "add", "other.txt")
    results = repo / "analysis" / "results" / "powered"
    rc = ps.run(ps.PLAN[0], "myopic-reward", repo / "runs", commit=True, results=results)
    assert rc == 0
    dest = results / "cloze-0.5b" / "myopic-reward"
    assert json.loads((dest / "results.json").read_text())["n_train"] == 200
    assert (dest / "table.md").read_text() == "t" and (dest / "run.json").is_file()
    assert (dest / "items.csv").read_text() == "id\na"  # the per-item data travels along
    log = _git(repo, "log", "--format=%s")
    assert log.splitlines()[0].startswith("Results: powered study, cloze-0.5b/myopic-reward")
    committed = _git(repo, "show", "--name-only", "--format=", "HEAD").split()
    assert sorted(committed) == sorted(
        f"analysis/results/powered/cloze-0.5b/myopic-reward/{n}"
        for n in ("results.json", "run.json", "items.csv", "table.md"))
    assert _git(repo, "diff", "--cached", "--name-only").split() == ["other.txt"]


def test_commit_outside_a_repository_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert ps.commit_results(tmp_path, "m") is False
    assert "not in a git repository" in capsys.readouterr().out


def test_committing_twice_is_nothing_new(repo, capsys):
    folder = repo / "res"
    folder.mkdir()
    (folder / "results.json").write_text("{}")
    assert ps.commit_results(folder, "first") is True
    assert ps.commit_results(folder, "again") is True
    assert "nothing new to commit" in capsys.readouterr().out
    assert _git(repo, "log", "--format=%s").split("\n")[:2] == ["first", "start"]


def _fake(monkeypatch, script: str) -> None:
    monkeypatch.setattr(ps.Row, "command", lambda self, d, out, threads=1:
                        [sys.executable, "-c", script, str(out), d])


def test_a_failed_run_copies_nothing(tmp_path, monkeypatch, capsys):
    """An older results.json in the run folder is not copied when the run fails."""
    runs, results = tmp_path / "runs", tmp_path / "results"
    old = runs / "cloze-0.5b" / "myopic-reward" / "myopic-reward"
    old.mkdir(parents=True)
    (old / "results.json").write_text("{}")
    _fake(monkeypatch, "import sys; sys.exit(3)")
    assert ps.run(ps.PLAN[0], "myopic-reward", runs, results=results) == 3
    assert not (results / "cloze-0.5b" / "myopic-reward").exists()
    assert "nothing copied" in capsys.readouterr().out


def test_a_killed_job_is_not_hidden_by_a_good_one(tmp_path, monkeypatch):
    codes = {"myopic-reward": 0, "corrigible-neutral-HHH": -9}
    monkeypatch.setattr(ps, "run", lambda row, d, *a, **k: codes[d])
    jobs = [(ps.PLAN[0], "myopic-reward"), (ps.PLAN[0], "corrigible-neutral-HHH")]
    assert ps.run_many(jobs, tmp_path, 1, 2, False) == -9


def test_a_dataset_running_elsewhere_is_skipped(tmp_path, monkeypatch, capsys):
    import fcntl

    out = tmp_path / "runs" / "cloze-0.5b"
    out.mkdir(parents=True)
    _fake(monkeypatch, "raise SystemExit('must not run')")
    with open(out / "myopic-reward.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert ps.run(ps.PLAN[0], "myopic-reward", tmp_path / "runs",
                      results=tmp_path / "res") == 0
    assert "another process is running it; skipped" in capsys.readouterr().out


def test_nothing_pending(monkeypatch, capsys):
    assert ps.run_many([], Path("runs"), 1, 2, False) == 0
    assert "nothing pending" in capsys.readouterr().out
