"""Unlabeled data: domain adaptation and semi-supervised fine-tuning
=================================================================

Unlabeled data in sktransfer: domain adaptation and semi-supervised
fine-tuning, with scikit-learn's -1 convention for unlabeled samples.

1. Domain adaptation: MNIST digits (labeled, the source domain) and
   scikit-learn's 8x8 digits upsampled to MNIST's 28x28 layout (unlabeled,
   the target domain: thicker, blurrier strokes). One ``fit`` sees both; the
   target samples carry the label -1. Source-only training vs CORAL, MMD and
   DANN, against a model trained on the target's labels (the upper bound).
2. Semi-supervised: the same digits with only 5 labels per class and the
   rest unlabeled (-1): labeled-only training vs pseudo-labeling, and a
   ``GridSearchCV`` over the pseudo-label threshold whose folds are scored
   on their labeled samples only.

Runs in about two minutes on 2 CPU cores (all offline):

    .venv/bin/python examples/domain_adaptation.py
"""

import sys
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, StratifiedKFold

# sphinx-gallery runs the script from its own folder without defining __file__
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
sys.path.insert(0, str(HERE.parent / "benchmarks"))
from partial_labels import da_task, digits_as_mnist  # noqa: E402  (the benchmark's data)

from sktransfer import DANN, MLP, MMD, Coral, PretrainedClassifier, PseudoLabel  # noqa: E402


def mlp(**params):
    return PretrainedClassifier(MLP(hidden_layer_sizes=(256, 128)), random_state=0,
                                device="cpu", **params)


def domain_adaptation():
    X_fit, y_fit, X_test, y_test, X_target, y_target = da_task("MNIST -> digits")
    print(f"source: {np.sum(y_fit != -1)} labeled MNIST digits; target: "
          f"{np.sum(y_fit == -1)} unlabeled sklearn digits (-1), {len(y_test)} held out")
    source_only = mlp(unlabeled="ignore").fit(X_fit, y_fit)
    epochs = source_only.n_iter_  # give the adapted fits the same budget
    print(f"  source only            {source_only.score(X_test, y_test):.3f}")
    for method in (Coral(), MMD(), DANN()):
        adapted = mlp(domain_adaptation=method, max_epochs=epochs).fit(X_fit, y_fit)
        print(f"  domain_adaptation={method!r:7} {adapted.score(X_test, y_test):.3f}")
    upper = mlp().fit(X_target, y_target)
    print(f"  target labels (bound)  {upper.score(X_test, y_test):.3f}")


def semi_supervised():
    X, y = digits_as_mnist()
    rng = np.random.RandomState(0)
    test = rng.rand(len(y)) < 0.3
    X_train, y_train, X_test, y_test = X[~test], y[~test], X[test], y[test]
    labeled = np.concatenate([rng.choice(np.flatnonzero(y_train == c), 5, replace=False)
                               for c in range(10)])
    y_partial = np.full(len(y_train), -1)
    y_partial[labeled] = y_train[labeled]
    print(f"\n{len(labeled)} labeled and {np.sum(y_partial == -1)} unlabeled digits")
    only = mlp(unlabeled="ignore").fit(X_train, y_partial)
    print(f"  labeled only          {only.score(X_test, y_test):.3f}")
    pseudo = mlp(unlabeled=PseudoLabel(threshold=0.95)).fit(X_train, y_partial)
    print(f"  pseudo-labels          {pseudo.score(X_test, y_test):.3f}")
    # folds are scored on their labeled samples (-1 is left out by score)
    search = GridSearchCV(mlp(unlabeled=PseudoLabel()),
                          {"unlabeled__threshold": [0.8, 0.95]},
                          cv=StratifiedKFold(3, shuffle=True, random_state=0))
    search.fit(X_train, y_partial)
    print(f"  grid search picked {search.best_params_}: test "
          f"{search.score(X_test, y_test):.3f}")


if __name__ == "__main__":
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    domain_adaptation()
    semi_supervised()
