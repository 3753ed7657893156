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

    .venv/bin/python benchmarks/frozen_grid.py            # 2,000 digits, cv=5 (~15 min on 2 cores)
    .venv/bin/python benchmarks/frozen_grid.py --quick    # smoke run (< 1 min)
"""

from __future__ import annotations

import argparse

import torch
from _common import (
    PlainImages,
    header,
    log,
    markdown_table,
    met,
    mnist_digits,
    timed,
    torchvision_model,
    weights_file,
)
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from skorch import NeuralNetClassifier
from skorch.callbacks import Freezer
from torch import nn

import sktransfer
from sktransfer import ImageBackbone, PretrainedClassifier

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
    torch.manual_seed(0)
    seconds, _ = timed(lambda: search.fit(X_tensor, y))
    return seconds, search


def sktransfer_search(X, y, args, depth, lrs, cv):
    estimator = PretrainedClassifier(
        ImageBackbone("mobilenet_v2", image_size=args.image_size), weights="IMAGENET1K_V1",
        max_epochs=args.epochs, batch_size=args.batch_size, weight_decay=1e-4,
        lr_schedule="constant", warmup_epochs=0.0, device="cpu", random_state=0)
    search = GridSearchCV(estimator, {"freeze_depth": [depth], "lr": lrs}, cv=cv, refit=False)
    seconds, _ = timed(lambda: search.fit(X, y))
    return seconds, search


def scores_by_candidate(search, depth_key) -> dict:
    results = search.cv_results_
    return {(params[depth_key], params["lr"]): score
            for params, score in zip(results["params"], results["mean_test_score"])}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="MNIST digits")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--cut", type=int, default=4, help="intermediate frozen depth")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 200 digits, 2 folds, 1 epoch")
    parser.add_argument("--sktransfer-only", action="store_true",
                        help="time the sktransfer side alone and print its scores (to compare "
                             "two versions of sktransfer on one machine via PYTHONPATH)")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.folds, args.epochs, args.image_size = 200, 2, 1, 32

    X, y, data_note = mnist_digits(args.n)
    depths, lrs = ["all", args.cut], [3e-4, 1e-3, 3e-3, 1e-2]
    cv = StratifiedKFold(args.folds, shuffle=True, random_state=0)
    print(header("frozen grid: sktransfer vs skorch + Freezer"))
    print(f"# {data_note} at {args.image_size} px; GridSearchCV(cv={args.folds}) over "
          f"freeze_depth {depths} x lr {lrs} (one search per depth, timed apart); "
          f"{args.epochs} epochs, batch {args.batch_size}, AdamW, constant lr")
    print(f"# sktransfer from {sktransfer.__file__}")
    # the baseline gets its inputs preprocessed once, outside the timing
    plain = PlainImages(X, y, args.image_size)
    X_tensor = torch.stack([plain[i][0] for i in range(len(plain))]).numpy()

    sktransfer.clear_cache()  # the sktransfer side starts with nothing cached
    times, scores = {}, {}
    for depth in depths:
        log(f"freeze_depth={depth}: sktransfer ...")
        seconds, search = sktransfer_search(X, y, args, depth, lrs, cv)
        times["sktransfer", depth] = seconds
        scores["sktransfer", depth] = search.cv_results_["mean_test_score"]
        log(f"  {seconds:.1f} s; cache: {sktransfer.cache_info()}")
        if args.sktransfer_only:
            log(f"  CV accuracies: {' '.join(f'{s:.4f}' for s in scores['sktransfer', depth])}")
            continue
        log(f"freeze_depth={depth}: skorch + Freezer ...")
        seconds, search = skorch_search(X_tensor, y, args, depth, lrs, cv)
        times["skorch", depth] = seconds
        scores["skorch", depth] = search.cv_results_["mean_test_score"]
        log(f"  {seconds:.1f} s")

    if args.sktransfer_only:
        return
    rows, worst = [], 0.0
    for depth in depths:
        for lr, ours, base in zip(lrs, scores["sktransfer", depth], scores["skorch", depth]):
            worst = max(worst, abs(ours - base))
            rows.append([depth, lr, f"{ours:.4f}", f"{base:.4f}", f"{abs(ours - base):.4f}"])
    print()
    print(markdown_table(["freeze_depth", "lr", "sktransfer CV acc", "skorch CV acc", "|diff|"],
                         rows))
    timing_rows = []
    for depth in [*depths, "whole grid"]:
        keys = depths if depth == "whole grid" else [depth]
        ours = sum(times["sktransfer", d] for d in keys)
        base = sum(times["skorch", d] for d in keys)
        ratio = base / ours
        timing_rows.append([f"time (s), freeze_depth={depth}" if depth != "whole grid"
                            else "time (s), whole grid", f"{ours:.1f}", f"{base:.1f}",
                            f"{ratio:.1f}x", ">= 10x" if depth == "whole grid" else "",
                            met(ratio >= 10) if depth == "whole grid" else ""])
    timing_rows.append(["max |CV acc diff|", "", "", f"{worst:.4f}", "<= 0.01",
                        met(worst <= 0.01)])
    print()
    print(markdown_table(["", "sktransfer", "skorch + Freezer", "speed-up", "target", "met"],
                         timing_rows))


if __name__ == "__main__":
    main()
