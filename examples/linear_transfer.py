"""Parameter transfer for linear models on real data
=================================================

Offline, about 10 s.

1. Regression: an Auto MPG model fitted on American cars (``StandardScaler``
   + ``RidgeCV``) moved to European and Japanese cars with 30 labelled ones:
   ``TransferRidgeCV(source=that_pipeline)`` applies the source's scaler, then
   pulls the new coefficients toward the source's by a penalty chosen by
   leave-one-out, from "target data only" to "source kept".
   A wrong source (its coefficients negated) makes the CV variant warn
   (``NegativeTransferWarning``).
2. Feature and head transfer from a tabular network: an MLP fitted on 1,000
   digits gives its last hidden layer as features (``TransferFeatures(mlp)``)
   to a logistic regression on other writers' digits with 3 labels per class,
   and its own head as the prior of ``TransferLogisticRegressionCV``.

    python examples/linear_transfer.py
"""

import warnings

import numpy as np
from mlxtend.data import autompg_data
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sktransfer import (
    MLP,
    NegativeTransferWarning,
    PretrainedClassifier,
    TransferFeatures,
    TransferLogisticRegressionCV,
    TransferRidgeCV,
)


def auto_mpg():
    X, y = autompg_data()
    american = X[:, 6] == 1
    features = X[:, :6].astype(float)  # cylinders ... model year
    source = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))
    source.fit(features[american], y[american])
    others = np.random.RandomState(0).permutation(np.flatnonzero(~american))
    train, test = others[:30], others[30:]
    target_only = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))
    target_only.fit(features[train], y[train])
    transfer = TransferRidgeCV(source=source).fit(features[train], y[train])
    print("Auto MPG, American -> European/Japanese cars, 30 labelled target cars (R^2):")
    print(f"  source only      {source.score(features[test], y[test]):.3f}")
    print(f"  target only      {target_only.score(features[test], y[test]):.3f}")
    print(f"  TransferRidgeCV  {transfer.score(features[test], y[test]):.3f}  "
          f"(alpha_={transfer.alpha_:.3g}, transfer_gain_={transfer.transfer_gain_:.3g})")

    # the source's coefficients negated, as raw arrays on the source-scaled features
    scaler, final = source[0], source[-1]
    wrong = (-final.coef_, final.intercept_)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NegativeTransferWarning)
        bad = TransferRidgeCV(source=wrong).fit(scaler.transform(features[others[:60]]),
                                                y[others[:60]])
    warned = any(issubclass(w.category, NegativeTransferWarning) for w in caught)
    print(f"  a negated source: NegativeTransferWarning={warned}, "
          f"source_used_={bad.source_used_}, transfer_gain_={bad.transfer_gain_:.3g}")


def digits_features():
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    # the source: an MLP fitted on the first 1,000 digits (other writers than
    # the target's); its head is one linear layer on its last hidden layer
    source = PretrainedClassifier(MLP(hidden_layer_sizes=(64, 32)), lr=1e-2, max_epochs=40,
                                  device="cpu", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a short budget: convergence is not the point
        source.fit(X[:1000], y[:1000])
    rest = np.arange(1000, len(y))
    rng = np.random.RandomState(0)
    train = np.concatenate([rng.permutation(rest[y[rest] == c])[:3] for c in range(10)])
    test = np.setdiff1d(rest, train)
    pixels = LogisticRegression(max_iter=2000).fit(X[train], y[train])
    features = make_pipeline(TransferFeatures(source, device="cpu"),
                             LogisticRegression(max_iter=2000)).fit(X[train], y[train])
    head = make_pipeline(TransferFeatures(source, device="cpu"),
                         TransferLogisticRegressionCV(source=source)).fit(X[train], y[train])
    print("Digits: an MLP fitted on 1,000 digits -> 797 others, 3 labels per class (accuracy):")
    print(f"  pixels + LogisticRegression                            "
          f"{pixels.score(X[test], y[test]):.3f}")
    print(f"  MLP's last hidden layer + LogisticRegression           "
          f"{features.score(X[test], y[test]):.3f}")
    print(f"  MLP's last hidden layer + TransferLogisticRegressionCV "
          f"{head.score(X[test], y[test]):.3f}  (from the MLP's own head, "
          f"alpha_={head[-1].alpha_:.3g})")


if __name__ == "__main__":
    auto_mpg()
    digits_features()
