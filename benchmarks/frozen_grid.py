"""Benchmark b: a frozen-backbone grid search, sktransfer vs skorch + Freezer.

The same grid on both sides: ``GridSearchCV(cv=5)`` over the frozen depth
({"all", an intermediate cut}) x 4 learning rates, ImageNet MobileNetV2
(IMAGENET1K_V1) with a new linear head, on real MNIST digits at 64 px.

* sktransfer: ``PretrainedClassifier(freeze_depth=..., lr=...)`` given the
  uint8 digits. Its frozen-stage cache computes each image's activations at a
  cut once, and every candidate and fold trains on them.
* skorch: ``NeuralNetClassifier`` with skorch's ``Freezer`` callback on the
  frozen stages, given the images already resized and normalised (done once,
  before timing, which favours the baseline). Freezer only stops gradients;
  a careful skorch user also keeps the frozen BatchNorm layers in eval mode
  (as sktransfer does). skorch puts the module in training mode before every
  step, so the module's own ``train`` does it here; both sides then train
  the same network.

Both use AdamW, the same weight decay, batch size, epochs and a constant
learning rate. The target is a total-time ratio skorch / sktransfer >= 10
with mean CV accuracies within 0.01 per candidate.

    .venv/bin/python benchmarks/frozen_grid.py            # 2,000 digits, cv=5 (~9 min on 2 cores, 2 threads)
    .venv/bin/python benchmarks/frozen_grid.py --quick --out /tmp/f.json   # smoke run (< 1 min)

One record per search (side and frozen depth: its seconds) and one per
candidate of a search (side, frozen depth, lr: the CV accuracy of each fold
and their mean) is written to ``benchmarks/results/frozen_grid.json`` in the
format of ``_results`` (``--out`` elsewhere; a ``--quick`` or
``--sktransfer-only`` run writes only where ``--out`` says);
``benchmarks/report.py`` makes the README's tables of it: both sides' CV
accuracy per candidate, each search's seconds and the speed-up, the targets.
"""

from __future__ import annotations

import argparse
import os

import torch
from _common import (
    PlainImages,
    header,
    log,
    mnist_digits,
    run_meta,
    store,
    timed,
    torchvision_model,
    weights_file,
)
from report import frozen_grid_tables
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from skorch import NeuralNetClassifier
from skorch.callbacks import Freezer
from torch import nn

import sktransfer
from sktransfer import ImageBackbone, PretrainedClassifier

RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "benchmarks", "results", "frozen_grid.json")
LRS = [3e-4, 1e-3, 3e-3, 1e-2]
# MobileNetV2's stages in sktransfer end at features 1, 3, 6, 13 and 18.
STAGE_ENDS = [1, 3, 6, 13, 18]


def frozen_prefixes(depth) -> list[str]:
    """Parameter-name prefixes of the frozen stages of ``torchvision_model``."""
    if depth == "all":
        return ["features."]
    return [f"features.{i}." for i in range(STAGE_ENDS[depth - 1] + 1)]


class MobileNet(nn.Module):
    """torchvision MobileNetV2 + new head, as a skorch module whose frozen
    BatchNorm layers stay in eval mode: skorch calls ``module.train()``
    before every training step, so a callback cannot hold them there."""

    def __init__(self, weights_path=None, n_classes=10, frozen_depth="all"):
        super().__init__()
        self.model = torchvision_model("mobilenet_v2", n_classes, weights_path)
        prefixes = frozen_prefixes(frozen_depth)
        self.frozen_norms = [m for name, m in self.model.named_modules()
                             if isinstance(m, nn.BatchNorm2d)
                             and any((name + ".").startswith(p) for p in prefixes)]

    def train(self, mode=True):
        super().train(mode)
        for norm in self.frozen_norms:
            norm.eval()
        return self

    def forward(self, x):
        return self.model(x)


def freezer_patterns(depth) -> list[str]:
    return [f"model.{prefix}*" for prefix in frozen_prefixes(depth)]


def skorch_search(X_tensor, y, args, depth, lrs, cv):
    net = NeuralNetClassifier(
        MobileNet, module__weights_path=str(weights_file("mobilenet_v2", "IMAGENET1K_V1")),
        module__n_classes=10, criterion=nn.CrossEntropyLoss,
        optimizer=torch.optim.AdamW, optimizer__weight_decay=1e-4,
        max_epochs=args.epochs, batch_size=args.batch_size, train_split=None,
        iterator_train__shuffle=True, device="cpu", verbose=0,
        callbacks=[("freezer", Freezer(freezer_patterns("all")))],
    )
    grid = {"lr": lrs, "callbacks__freezer__patterns": [freezer_patterns(depth)],
            "module__frozen_depth": [depth]}
    search = GridSearchCV(net, grid, cv=cv, refit=False)
    torch.manual_seed(args.seed)
    seconds, _ = timed(lambda: search.fit(X_tensor, y))
    return seconds, search


def sktransfer_search(X, y, args, depth, lrs, cv):
    estimator = PretrainedClassifier(
        ImageBackbone("mobilenet_v2", image_size=args.image_size), weights="IMAGENET1K_V1",
        max_epochs=args.epochs, batch_size=args.batch_size, weight_decay=1e-4,
        lr_schedule="constant", warmup_epochs=0.0, device="cpu", random_state=args.seed)
    search = GridSearchCV(estimator, {"freeze_depth": [depth], "lr": lrs}, cv=cv, refit=False)
    seconds, _ = timed(lambda: search.fit(X, y))
    return seconds, search


def search_records(side, depth, seconds, search, seed, folds) -> list[dict]:
    """The search's record (its seconds) and one per candidate (its fold scores)."""
    results = search.cv_results_
    records = [{"part": "search", "side": side, "freeze_depth": depth, "seed": seed,
                "seconds": seconds}]
    for i, params in enumerate(results["params"]):
        records.append({"part": "candidate", "side": side, "freeze_depth": depth,
                        "lr": params["lr"], "seed": seed,
                        "fold_scores": [float(results[f"split{k}_test_score"][i])
                                        for k in range(folds)],
                        "mean_test_score": float(results["mean_test_score"][i]),
                        "mean_fit_seconds": float(results["mean_fit_time"][i])})
    return records


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="MNIST digits")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--cut", type=int, default=4, help="intermediate frozen depth")
    parser.add_argument("--seed", type=int, default=0,
                        help="the folds' shuffle, the heads' initialisation, the batch order")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 200 digits, 2 folds, 1 epoch")
    parser.add_argument("--sktransfer-only", action="store_true",
                        help="time the sktransfer side alone and print its scores (to compare "
                             "two versions of sktransfer on one machine via PYTHONPATH)")
    parser.add_argument("--out", default=RESULTS,
                        help="the results file (a --quick or --sktransfer-only run writes "
                             "only where --out says)")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.folds, args.epochs, args.image_size = 200, 2, 1, 32

    X, y, data_note = mnist_digits(args.n)
    depths = ["all", args.cut]
    cv = StratifiedKFold(args.folds, shuffle=True, random_state=args.seed)
    print(header("frozen grid: sktransfer vs skorch + Freezer"))
    print(f"# {data_note} at {args.image_size} px; GridSearchCV(cv={args.folds}) over "
          f"freeze_depth {depths} x lr {LRS} (one search per depth, timed apart); "
          f"{args.epochs} epochs, batch {args.batch_size}, AdamW, constant lr")
    print(f"# sktransfer from {sktransfer.__file__}")
    meta = run_meta(None if argv is None else [__file__, *argv], quick=args.quick,
                    sktransfer_only=args.sktransfer_only, threads=torch.get_num_threads(),
                    n=args.n, data=data_note, folds=args.folds, epochs=args.epochs,
                    batch_size=args.batch_size, image_size=args.image_size,
                    freeze_depths=depths, lrs=LRS, seed=args.seed,
                    backbone="mobilenet_v2 IMAGENET1K_V1")
    # the baseline gets its inputs preprocessed once, outside the timing
    plain = PlainImages(X, y, args.image_size)
    X_tensor = torch.stack([plain[i][0] for i in range(len(plain))]).numpy()

    sktransfer.clear_cache()  # the sktransfer side starts with nothing cached
    records = []
    for depth in depths:
        log(f"freeze_depth={depth}: sktransfer ...")
        seconds, search = sktransfer_search(X, y, args, depth, LRS, cv)
        records += search_records("sktransfer", depth, seconds, search, args.seed, args.folds)
        scores = search.cv_results_["mean_test_score"]
        log(f"  {seconds:.1f} s; cache: {sktransfer.cache_info()}")
        log(f"  CV accuracies: {' '.join(f'{s:.4f}' for s in scores)}")
        if args.sktransfer_only:
            continue
        log(f"freeze_depth={depth}: skorch + Freezer ...")
        seconds, search = skorch_search(X_tensor, y, args, depth, LRS, cv)
        records += search_records("skorch", depth, seconds, search, args.seed, args.folds)
        log(f"  {seconds:.1f} s")

    if args.sktransfer_only:
        if args.out == RESULTS:
            log("sktransfer side alone: nothing written (give --out to keep its records)")
        else:
            store(args, RESULTS, meta, records)
        return
    tables = frozen_grid_tables(meta, records)
    print(f"\n{tables['main']}\n\n{tables['times']}\n\n{tables['targets']}")
    store(args, RESULTS, meta, records)


if __name__ == "__main__":
    main()
