"""The run directory: where every file of a sweep or an evaluation lives, and its one reader.

Layouts (all files through :mod:`w2s_lens.artifacts`: one format version, atomic writes):

``w2s-lens evaluate --out RUN``::

    RUN/run.json                 {"kind": "evaluation", "config": EvalConfig dump, "derived": ...}
    RUN/results.json             the comparison (see w2s_lens.evaluation.pipeline)
    RUN/report.html              (w2s-lens report)
    RUN/<method>/vectors/        CAA vectors (method "caa") ...
    RUN/<method>/l2s/            ... or the L2S networks (method "l2s")
    RUN/<method>/train/          training sweep: sweep.safetensors, sweep.json, examples.jsonl
    RUN/<method>/<variant>/      test sweep per variant, plus routing.json
    RUN/<method>/retest-1/, -2/  the base test items swept with vectors from each half of the
                                 training items (the headroom retest)
    RUN/<method>/routers/<kind>/ one W2S bundle per router kind (w2s-lens generate --router)
    RUN/<method>/generations.json  continuations of a few test prompts
                                 (EvalConfig.statistics.generations)

``w2s-lens sweep --out DIR``::

    DIR/run.json                 {"kind": "sweep", "config": ..., "derived": ...}
    DIR/vectors/                 CAA vectors
    DIR/sweep.safetensors, DIR/sweep.json, DIR/examples.jsonl, DIR/train_pairs.jsonl

``examples.jsonl`` holds one :meth:`~w2s_lens.data.examples.SteeringExample.to_record` per swept
prompt (text, tokens, answer ids or continuation ids, unit, group).

Before anything is computed, :meth:`RunDir.prepare` refuses a directory that would be damaged:
a path that is a file, a directory of another w2s-lens version, or one holding a run with other
settings (a rerun with the same settings resumes). Directories written by w2s-lens 0.1 are
refused with a message saying to rerun. While a job writes, it holds the directory
(:func:`w2s_lens.evaluation.storage.runlock.hold`): a second process on the same directory is
refused
at once instead of interleaving its writes.

Example:
    >>> rd = RunDir("runs/corrigible")  # doctest: +SKIP
    >>> rd.read_run()["config"]["sweep"]["readout"]  # doctest: +SKIP
    'letter'
    >>> sweep, examples = rd.load_sweep("caa/base")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from w2s_lens.artifacts.files import write_text
from w2s_lens.artifacts.json_files import read_json, write_json
from w2s_lens.artifacts.provenance import ArtifactMismatch, check_format, stamp
from w2s_lens.evaluation.config import EvalConfig, flat_config, portable_config
from w2s_lens.evaluation.config_parts import SETTING_PARTS, ConfigError
from w2s_lens.evaluation.storage.sweepfiles import (
    SweepFiles,
)

__all__ = ["RunDir", "RUN_FILE", "RESULTS_FILE", "REPORT_FILE"]

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
#: the folder-name prefix of the headroom retest sweeps (``RUN/<method>/retest-1``, ``-2``)
RETEST_PREFIX = "retest-"
RESULTS_FILE = "results.json"
REPORT_FILE = "report.html"
#: settings (by name, in either part of the config) that do not change results: a rerun may
#: differ in them and still resume (not
#: ``batch_size``: padding moves the training contrasts, and so the vectors every sweep is
#: keyed by, in their last float bits, so a resume keeps the batch size it started with)
_IGNORED = ("n_boot", "max_rows", "device")
#: settings an evaluation applies after its sweeps (routers, what they see, which test
#: variants are swept, generations): a rerun that changes them reuses every sweep already made
#: and recomputes only what depends on them
_AFTER_SWEEPS = ("routers", "primary_router", "router_inputs", "variants", "generations",
                 # where the dataset files lie (a checkout elsewhere); the sweeps' chunks
                 # record digests of the items' ids and tokens, so other items are refused
                 "data_dir")


class RunDir(SweepFiles):
    """One run directory (see the module docstring for the layout); the per-sweep files
    (sweeps, routing, generations, pairs) are read and written by
    :class:`~w2s_lens.evaluation.storage.sweepfiles.SweepFiles`.

    Args:
        path: the directory (need not exist yet).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # ------------------------------------------------------------------ preconditions
    def prepare(self, kind: str, config: Mapping[str, Any]) -> bool:
        """Check that a run of ``kind`` with ``config`` may be written here; nothing is written.

        Returns:
            True when the directory already holds the same run (it will resume).

        Raises:
            ArtifactMismatch: the path is a file, holds a w2s-lens 0.1 run, or holds a run of
                another kind or with other settings (the message names them).

        Example:
            >>> RunDir("runs/x").prepare("evaluation", cfg.to_dict())  # doctest: +SKIP
            False
        """
        if self.path.exists() and not self.path.is_dir():
            raise ArtifactMismatch(f"--out {self.path} is an existing file, not a directory")
        self._refuse_legacy()
        run_file = self.path / RUN_FILE
        self._clear_stale_temporaries()
        if not run_file.is_file():
            if self.path.is_dir() and any(self.path.iterdir()):
                raise ArtifactMismatch(f"{self.path} is not empty and holds no {RUN_FILE}; "
                                       "use an empty or new --out directory")
            return False
        old = read_json(run_file)
        check_format(old, run_file, "use a new --out directory")
        if old.get("kind") != kind:
            raise ArtifactMismatch(f"{self.path} holds a {old.get('kind')!r} run, not a {kind!r} "
                                   "one; use another --out directory")
        ignored = _IGNORED + (_AFTER_SWEEPS if kind == "evaluation" else ())
        # both without this machine's paths (what run.json stores): a run moved elsewhere
        # resumes; both flat, one key per setting, as run.json is nested (today) or flat (a run
        # started before the config had parts): such a run resumes too
        old_cfg = flat_config(portable_config(old.get("config") or {}))
        new_cfg = flat_config(portable_config(_jsonable(config)))
        if kind == "evaluation":  # both in today's fields, defaults filled in
            old_cfg, new_cfg = _current(old_cfg), _current(new_cfg)
        before = {k: v for k, v in old_cfg.items() if k not in ignored}
        now = {k: v for k, v in new_cfg.items() if k not in ignored}
        diff = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
        if diff:
            shown = ", ".join(f"{_where(k)}: {before.get(k)!r} -> {now.get(k)!r}"
                              for k in diff[:6])
            keep = (f"; to resume it, give --batch-size {before.get('batch_size')}"
                    if diff == ["batch_size"] else "")
            raise ArtifactMismatch(f"{self.path} holds a run with other settings ({shown}); "
                                   "use another --out directory, or delete it to start over"
                                   + keep)
        log.info("%s holds this run already: resuming", self.path)
        return True

    def _clear_stale_temporaries(self) -> None:
        """Remove the temporary files of writes a killed run left half done (``.NAME.*.tmp``
        next to the run's own files, see :func:`~w2s_lens.artifacts.files.atomic_path`): they hold
        nothing a resume needs, and a run killed in its very first write would otherwise look
        like a foreign, non-empty directory. Only called by :meth:`prepare`, i.e. before this
        process writes anything, under the run lock when the pipeline holds it."""
        if not self.path.is_dir():
            return
        for tmp in self.path.glob(".*.tmp"):
            if tmp.is_file():
                log.info("removing %s, left by an interrupted write", tmp)
                tmp.unlink(missing_ok=True)

    def _refuse_legacy(self) -> None:
        if (self.path / "vectors.json").is_file() or (self.path / "sweep_ids.json").is_file():
            raise ArtifactMismatch(f"{self.path} was written by w2s-lens 0.1, whose files this "
                                   "version does not read; rerun the command that made it "
                                   "into a new --out directory")

    # ------------------------------------------------------------------ run.json
    def write_run(self, kind: str, config: Mapping[str, Any], derived: Mapping[str, Any]) -> Path:
        """Write ``run.json``: the config dump (without this machine's absolute paths, see
        :func:`~w2s_lens.evaluation.config.portable_config`) and what the run derived from it."""
        return write_json(self.path / RUN_FILE, stamp({"kind": kind,
                                                       "config": portable_config(_jsonable(config)),
                                                       "derived": dict(derived)}))

    def read_run(self) -> dict[str, Any]:
        """Read ``run.json`` (refusing other versions)."""
        self._refuse_legacy()
        meta = read_json(self.path / RUN_FILE)
        check_format(meta, self.path / RUN_FILE, "rerun the command that made it")
        return meta

    @property
    def kind(self) -> str | None:
        """``"evaluation"``, ``"sweep"``, or None when there is no ``run.json``."""
        f = self.path / RUN_FILE
        return read_json(f).get("kind") if f.is_file() else None

    # ------------------------------------------------------------------ results
    def write_results(self, results: Mapping[str, Any]) -> Path:
        """Write ``results.json``."""
        return write_json(self.path / RESULTS_FILE, stamp(results))

    def read_results(self) -> dict[str, Any]:
        """Read ``results.json``."""
        meta = read_json(self.path / RESULTS_FILE)
        check_format(meta, self.path / RESULTS_FILE, "rerun `w2s-lens evaluate`")
        return meta

    def write_report(self, html: str, out: str | os.PathLike | None = None) -> Path:
        """Write the HTML report (default ``report.html`` in the run directory)."""
        return write_text(Path(out) if out is not None else self.path / REPORT_FILE, html)

    # ------------------------------------------------------------------ places
    def method_dir(self, method: str) -> Path:
        """``RUN/<method>`` (evaluation runs)."""
        return self.path / method

    def vectors_dir(self, method: str | None = None) -> Path:
        """Where the vectors (or L2S networks) of ``method`` live."""
        if method is None:
            return self.path / "vectors"
        return self.path / method / ("l2s" if method == "l2s" else "vectors")

    def sweep_dir(self, split: str, method: str | None = None) -> Path:
        """Folder of one sweep (``split``: ``train`` or a variant); the run folder itself for a
        plain sweep directory (``method=None``, ``split=""``)."""
        base = self.path if method is None else self.path / method
        return base / split if split else base

    def router_dir(self, method: str, kind: str) -> Path:
        """Folder of the W2S bundle of one method and router kind."""
        return self.path / method / "routers" / kind

    def methods(self) -> list[str]:
        """The methods an evaluation run holds, in the order ``caa``, ``l2s``."""
        return [m for m in ("caa", "l2s") if (self.path / m).is_dir()]

    def splits(self, method: str | None = None, retest: bool = False) -> list[str]:
        """The sweeps present: ``train`` first, then the variants; with ``retest``, then the
        headroom retest sweeps (``retest-1``, ``retest-2``: the base test items steered with
        vectors from each half of the training items)."""
        base = self.path if method is None else self.path / method
        if not base.is_dir():
            return []
        found = [p.name for p in sorted(base.iterdir())
                 if p.is_dir() and (p / "sweep.json").is_file()
                 and (retest or not p.name.startswith(RETEST_PREFIX))]
        return sorted(found, key=lambda s: (s != "train", s.startswith(RETEST_PREFIX), s))


def _current(config: Mapping[str, Any]) -> dict[str, Any]:
    """A flat evaluation config dump (:func:`~w2s_lens.evaluation.config.flat_config`) as
    today's :class:`EvalConfig` writes it, flat again (older dumps upgraded, fields added since
    at their defaults); unreadable dumps are compared as they are.
    """
    try:
        dump = EvalConfig.from_dict(dict(config)).to_dict()
        return flat_config(portable_config(_jsonable(dump)))
    except (ConfigError, TypeError):
        return dict(config)


def _where(setting: str) -> str:
    """A setting's place in the config (``sweep.readout``); other keys as they are."""
    return f"{SETTING_PARTS[setting]}.{setting}" if setting in SETTING_PARTS else setting


def _jsonable(config: Mapping[str, Any]) -> dict[str, Any]:
    import json

    return json.loads(json.dumps(dict(config), default=str))
