"""The exact probe's penalty search: L-BFGS iterations per
penalty along the warm-started path (``probe._CV_MAX_ITER``), 100 vs 20.

On the frozen MobileNetV2 features (48 px, ``TransferFeatures``) of MNIST at
10 and 50 labels per class, the textures and the faces at 10 per class, 3
seeds each (the benchmarks' own tasks), it prints the penalty each setting
chooses and the mean time of ``probe.solve`` (search plus final solve, best
of 3). The setting is only worth lowering if the choices stay the same.

    .venv/bin/python benchmarks/probe_penalty_search.py      # ~1 min on 2 CPU cores
"""

from __future__ import annotations

import time

import numpy as np
import torch

from sktransfer import ImageBackbone, TransferFeatures
from sktransfer._nn import probe
from strategies import mnist_task, texture_task
from transferability import faces_task

TASKS = {"MNIST 10/class": lambda s: mnist_task(10, s, 100),
         "MNIST 50/class": lambda s: mnist_task(50, s, 100),
         "textures 10/class": lambda s: texture_task(10, s),
         "faces 10/class": lambda s: faces_task(10, s)}


def problems(seeds):
    for name, task in TASKS.items():
        for seed in seeds:
            X, y, *_ = task(seed)
            features = TransferFeatures(ImageBackbone("mobilenet_v2", image_size=48),
                                        weights="IMAGENET1K_V1", device="cpu").fit_transform(X)
            _, encoded = np.unique(y, return_inverse=True)
            yield name, seed, torch.as_tensor(features, dtype=torch.float32), encoded


def solve(features, y, seed):
    start, best = None, np.inf
    for _ in range(3):
        start = time.perf_counter()
        solution = probe.solve("classification", features, y, np.ones(len(y)),
                               n_outputs=int(y.max()) + 1, alpha="auto", seed=seed)
        best = min(best, time.perf_counter() - start)
    return solution.alpha, best


def main():
    settings = (100, 20)
    rows = []
    for name, seed, features, y in problems(range(3)):
        row = [name, seed]
        for iterations in settings:
            probe._CV_MAX_ITER = iterations
            row += list(solve(features, y, seed))
        rows.append(row)
    print("| target | seed | " + " | ".join(f"alpha ({n} its) | solve s ({n} its)"
                                          for n in settings) + " |")
    print("| --- | --- |" + " --- | --- |" * len(settings))
    for name, seed, *values in rows:
        print(f"| {name} | {seed} | " + " | ".join(
            f"{values[i]:g} | {values[i + 1]:.3f}" for i in range(0, len(values), 2)) + " |")
    same = sum(row[2] == row[4] for row in rows)
    print(f"\nsame penalty in {same} of {len(rows)} problems")


if __name__ == "__main__":
    main()
