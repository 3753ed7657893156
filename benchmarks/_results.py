"""The one format of ``benchmarks/results/<name>.json``, without torch.

A results file holds two keys::

    {"meta": {"date": "2026-12-07T02:04Z",         # UTC, when the run started
              "commit": "<sha>", "dirty": false,     # the checkout that ran
              "machine": {"cpu": "AMD EPYC", "cores": 2, "gpu": null},
              "versions": {"python": ..., "torch": ..., "torchvision": ...,
                           "scikit-learn": ..., "skorch": ..., "numpy": ...},
              "command": "python benchmarks/x.py --seeds 5",
              ...},                                  # what else the benchmark states once
     "records": [{...}, ...]}                        # one per fit or cell, seeds included

A file combined from several runs keeps each run's own meta in
``meta["runs"]``; each record names its run by index (``"run"``).
``meta["reconstructed"]`` lists the fields filled in after the run from the
git history of the file rather than recorded by the run itself.

``_common`` re-exports these functions for the benchmarks; ``report.py`` and
the tests import this module directly, so that reading results never loads
torch.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import importlib.util
import json
import os
import pathlib
import platform
import shlex
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
VERSIONED = ("torch", "torchvision", "scikit-learn", "skorch", "numpy")


def results_path(name) -> pathlib.Path:
    """``benchmarks/results/<name>.json`` for a bare name, else the path as given."""
    path = pathlib.Path(name)
    return path if path.suffix == ".json" else RESULTS / f"{name}.json"


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")


def command_line(argv=None) -> str:
    """This process's command, the script relative to the repository root."""
    argv = list(sys.argv if argv is None else argv)
    script = pathlib.Path(argv[0]).resolve()
    if script.is_relative_to(ROOT):
        argv[0] = str(script.relative_to(ROOT))
    return shlex.join(["python", *argv])


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            return next(line.split(":", 1)[1].strip() for line in info
                        if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def machine() -> dict:
    gpu = None
    if importlib.util.find_spec("torch") is not None:
        import torch

        if torch.cuda.is_available():
            gpu = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "gpu": gpu}


def versions() -> dict:
    found = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def _git(*args) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()


def run_meta(argv=None, **extra) -> dict:
    """The meta record of this process's run, plus the benchmark's own fields."""
    try:
        commit, dirty = _git("rev-parse", "HEAD"), bool(_git("status", "--porcelain"))
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = None, None
    return {"date": utc_now(), "commit": commit, "dirty": dirty, "machine": machine(),
            "versions": versions(), "command": command_line(argv), **extra}


def write_results(name, meta: dict, records: list) -> pathlib.Path:
    """Write ``{"meta": meta, "records": records}`` to ``results_path(name)``."""
    path = results_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": meta, "records": records}, indent=1,
                               default=float) + "\n")
    return path


def read_results(name) -> tuple[dict, list]:
    """``(meta, records)`` of a results file."""
    path = results_path(name)
    stored = json.loads(path.read_text())
    if not isinstance(stored, dict) or "meta" not in stored or "records" not in stored:
        raise ValueError(f"{path} is not in the results format (a 'meta' record and "
                         "'records'); rerun its benchmark")
    return stored["meta"], stored["records"]


def with_stored(path, meta: dict, records: list, key) -> tuple[dict, list]:
    """This run's ``(meta, records)`` combined with the runs stored at
    ``path``, less the stored records this run measures again (those whose
    ``key(record)`` one of ``records`` has); just this run when nothing is
    stored there."""
    path = results_path(path)
    if not path.exists():
        return meta, records
    stored_meta, stored = read_results(path)
    again = {key(record) for record in records}
    return combine_runs([(stored_meta, [r for r in stored if key(r) not in again]),
                         (meta, records)])


def combine_runs(runs, command: str | None = None) -> tuple[dict, list]:
    """One ``(meta, records)`` of several runs' ``(meta, records)``: the runs'
    metas in ``meta["runs"]``, each record tagged with its run's index; the
    top-level date, commit, machine and versions are the last run's;
    ``command`` is the one that combined them (None when each run added
    itself to the file). A run left without records (all of them replaced
    by a later run's) is dropped."""
    metas, records = [], []
    for meta, run_records in runs:
        first = len(metas)
        metas += [{k: v for k, v in m.items() if k != "runs"} for m in meta.get("runs", [meta])]
        records += [{**r, "run": first + r.get("run", 0)} for r in run_records]
    used = sorted({r["run"] for r in records}) or list(range(len(metas)))
    metas = [metas[i] for i in used]
    records = [{**r, "run": used.index(r["run"])} for r in records]
    last = metas[-1]
    meta = {key: last.get(key) for key in ("date", "commit", "dirty", "machine", "versions")}
    return {**meta, "command": command, "runs": metas}, records
