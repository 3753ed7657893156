"""The exact probe's penalty search: L-BFGS iterations per
penalty along the warm-started path (``probe._CV_MAX_ITER``), 100 vs 20.

On the frozen MobileNetV2 features (48 px, ``TransferFeatures``) of MNIST at
10 and 50 labels per class, the textures and the faces at 10 per class, 3
seeds each (the benchmarks' own tasks), it times ``probe.solve`` (search
plus final solve, ``--repeats`` runs) at each setting and notes the penalty
it chooses. The setting is only worth lowering if the choices stay the same.

    .venv/bin/python benchmarks/probe_penalty_search.py      # ~1 min on one CPU core
    .venv/bin/python benchmarks/probe_penalty_search.py --quick --out /tmp/s.json   # smoke run

One record per task, seed and setting (the chosen penalty, the seconds of
each run) is written to ``benchmarks/results/probe_penalty_search.json`` in
the format of ``_results`` (``--out`` elsewhere; a ``--quick`` run writes
only where ``--out`` says); ``benchmarks/report.py`` makes the README's
tables of it: each problem's penalties and best-of-runs seconds, and per
task how often the settings chose the same penalty.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from _common import faces_task, header, log, mnist_task, run_meta, store, texture_task
from report import probe_penalty_search_tables

from sktransfer import ImageBackbone, TransferFeatures
from sktransfer._nn import probe

RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "benchmarks", "results", "probe_penalty_search.json")
TASKS = {"MNIST 10/class": lambda s: mnist_task(10, s, 100),
         "MNIST 50/class": lambda s: mnist_task(50, s, 100),
         "textures 10/class": lambda s: texture_task(10, s),
         "faces 10/class": lambda s: faces_task(10, s)}


def problems(tasks, seeds):
    for name in tasks:
        for seed in seeds:
            X, y, *_ = TASKS[name](seed)
            features = TransferFeatures(ImageBackbone("mobilenet_v2", image_size=48),
                                        weights="IMAGENET1K_V1", device="cpu").fit_transform(X)
            _, encoded = np.unique(y, return_inverse=True)
            yield name, seed, torch.as_tensor(features, dtype=torch.float32), encoded


def solve(features, y, seed, repeats):
    """The penalty ``probe.solve`` chooses, and the seconds of each run."""
    alphas, seconds = set(), []
    for _ in range(repeats):
        start = time.perf_counter()
        solution = probe.solve("classification", features, y, np.ones(len(y)),
                               n_outputs=int(y.max()) + 1, alpha="auto", seed=seed)
        seconds.append(time.perf_counter() - start)
        alphas.add(float(solution.alpha))
    if len(alphas) > 1:
        raise RuntimeError(f"probe.solve chose different penalties {sorted(alphas)} in "
                           "repeated runs of one problem; it should be deterministic")
    return alphas.pop(), seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--iterations", type=int, nargs="+", default=[100, 20],
                        help="values of probe._CV_MAX_ITER to compare")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each solve")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: MNIST 10/class, 1 seed, 1 run")
    parser.add_argument("--out", default=RESULTS,
                        help="the results file (a --quick run writes only where --out says)")
    args = parser.parse_args(argv)
    if args.quick:
        args.tasks, args.seeds, args.repeats = ["MNIST 10/class"], 1, 1
    print(header("exact probe: L-BFGS iterations per penalty of the penalty search"))
    meta = run_meta(None if argv is None else [__file__, *argv], quick=args.quick,
                    threads=torch.get_num_threads(), tasks=args.tasks, seeds=args.seeds,
                    iterations=args.iterations, repeats=args.repeats,
                    backbone="mobilenet_v2 IMAGENET1K_V1", image_size=48)
    default, records = probe._CV_MAX_ITER, []
    try:
        for name, seed, features, y in problems(args.tasks, range(args.seeds)):
            for iterations in args.iterations:
                probe._CV_MAX_ITER = iterations
                alpha, seconds = solve(features, y, seed, args.repeats)
                records.append({"task": name, "seed": seed, "n": len(y),
                                "cv_max_iter": iterations, "alpha": alpha,
                                "seconds": seconds})
                log(f"{name} seed {seed}, {iterations} its: alpha {alpha:g}, "
                    f"{min(seconds):.3f} s")
    finally:
        probe._CV_MAX_ITER = default
    tables = probe_penalty_search_tables(meta, records)
    print(f"\n{tables['main']}\n\n{tables['summary']}")
    store(args, RESULTS, meta, records)


if __name__ == "__main__":
    main()
