"""The exact linear probe's solver against scikit-learn's, on the
same objective, in the same run.

Features: ImageNet MobileNetV2 (``IMAGENET1K_V1``) at 32 px, the trunk's
1,280 pooled outputs of the 5,000 real MNIST digits (extracted once, outside
the timings; 4,000 to train on, 1,000 to test). For n = 100 / 1,000 / 4,000
training digits:

- fixed penalty (``probe_alpha=1``): sktransfer's solve
  (``sktransfer._nn.probe.solve``: centring, the span of the samples when
  n < d, L-BFGS on the fit's device) against
  ``LogisticRegression(C=1, tol=1e-4)`` (scikit-learn's default tolerance, a
  looser one than sktransfer's); both columns report the objective's
  relative excess over a tight scikit-learn reference (``tol=1e-8``; not
  timed), so that speed is compared at a known accuracy;
- ``probe_alpha="auto"``: sktransfer's penalty search plus solve against
  ``LogisticRegressionCV`` over the same 7 penalties and 5 stratified folds
  with ``tol=1e-3`` (the tolerance that picks the same penalties as 1e-6 on
  these features, 2026-12-02) plus a final ``LogisticRegression`` at the
  chosen penalty, ``tol=1e-4``.

Each time is the best of ``--repeats`` runs. Target: sktransfer's time below
scikit-learn's in every row (the ratio < 1), at a relative objective excess
of at most 1e-4.

    .venv/bin/python benchmarks/probe_solver.py
    .venv/bin/python benchmarks/probe_solver.py --sizes 100 1000 --repeats 1
"""

from __future__ import annotations

import argparse
import inspect
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import header, log, markdown_table, met, mnist_digits, timed  # noqa: E402

from sktransfer import ImageBackbone, TransferFeatures  # noqa: E402
from sktransfer._nn import probe  # noqa: E402

CV_OPTIONS = {name: value for name, value in
              (("use_legacy_attributes", False), ("l1_ratios", (0.0,)))
              if name in inspect.signature(LogisticRegressionCV).parameters}


def objective(weight, bias, X, y, alpha):
    """scikit-learn's objective for ``C = 1 / alpha``, divided by C (sum of
    log-losses + alpha / 2 ||W||^2) for softmax weights (classes, d)."""
    logits = X @ weight.T + bias
    logits = logits - logits.max(1, keepdims=True)
    log_proba = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    return -log_proba[np.arange(len(y)), y].sum() + alpha / 2 * (weight ** 2).sum()


def best_of(repeats, fn):
    runs = [timed(fn) for _ in range(repeats)]
    return min(t for t, _ in runs), runs[0][1]


def sklearn_auto(X, y, seed):
    search = LogisticRegressionCV(
        Cs=[1 / a for a in probe.ALPHAS], scoring="neg_log_loss", max_iter=1000, tol=1e-3,
        cv=StratifiedKFold(5, shuffle=True, random_state=seed), **CV_OPTIONS).fit(X, y)
    C = float(np.atleast_1d(search.C_)[0])
    return LogisticRegression(C=C, max_iter=1000, tol=1e-4).fit(X, y), 1 / C


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 4000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", ConvergenceWarning)
    print(header("exact linear probe: sktransfer's solver vs scikit-learn's"))
    X, y, note = mnist_digits(5000)
    log(f"extracting MobileNetV2 features of {note} at 32 px ...")
    features = TransferFeatures(ImageBackbone("mobilenet_v2", image_size=32), weights="IMAGENET1K_V1",
                                batch_size=256, device="cpu").fit_transform(X)
    train, test = features[:4000].astype(np.float64), features[4000:].astype(np.float64)
    y_train, y_test = y[:4000], y[4000:]
    rows = []
    for n in args.sizes:
        Xn, yn = train[:n], y_train[:n]
        ones = np.ones(n)
        reference = LogisticRegression(C=1.0, tol=1e-8, max_iter=10_000).fit(Xn, yn)
        best = objective(reference.coef_, reference.intercept_, Xn, yn, 1.0)
        log(f"n={n}: fixed penalty ...")
        ours_s, ours = best_of(args.repeats, lambda: probe.solve(
            "classification", torch.as_tensor(Xn, dtype=torch.float32), yn, ones,
            n_outputs=10, alpha=1.0, seed=0))
        theirs_s, theirs = best_of(args.repeats, lambda: LogisticRegression(
            C=1.0, max_iter=1000, tol=1e-4).fit(Xn, yn))
        excess = [objective(w, b, Xn, yn, 1.0) / best - 1 for w, b in
                  ((ours.weight, ours.bias), (theirs.coef_, theirs.intercept_))]
        rows.append([n, "probe_alpha=1", f"{ours_s:.2f} s", f"{theirs_s:.2f} s",
                     f"{ours_s / theirs_s:.2f}", f"{excess[0]:.1e} / {excess[1]:.1e}",
                     "-", met(ours_s < theirs_s and excess[0] <= 1e-4)])
        log(f"n={n}: probe_alpha='auto' ...")
        ours_s, ours = best_of(args.repeats, lambda: probe.solve(
            "classification", torch.as_tensor(Xn, dtype=torch.float32), yn, ones,
            n_outputs=10, alpha="auto", seed=0))
        theirs_s, (model, alpha) = best_of(args.repeats, lambda: sklearn_auto(Xn, yn, 0))
        accuracy = [((test @ ours.weight.T + ours.bias).argmax(1) == y_test).mean(),
                    model.score(test, y_test)]
        rows.append([n, "probe_alpha='auto'", f"{ours_s:.2f} s", f"{theirs_s:.2f} s",
                     f"{ours_s / theirs_s:.2f}", f"alpha {ours.alpha:g} / {alpha:g}",
                     f"{accuracy[0]:.3f} / {accuracy[1]:.3f}", met(ours_s < theirs_s)])
    print(markdown_table(["n", "penalty", "sktransfer", "scikit-learn", "ratio",
                          "objective excess / chosen alpha (ours / sklearn)",
                          "test accuracy (ours / sklearn)", "faster"], rows))


if __name__ == "__main__":
    main()
