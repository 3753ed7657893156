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
    .venv/bin/python benchmarks/probe_solver.py --sizes 100 1000 --repeats 1 --out /tmp/p.json
    .venv/bin/python benchmarks/probe_solver.py --quick --out /tmp/p.json    # smoke run

One record per side (sktransfer, scikit-learn), size and penalty (its
times, the objective excess or the chosen penalty, the test accuracy) is
written to ``benchmarks/results/probe_solver.json`` in the format of
``_results`` (``--out`` elsewhere; a ``--quick`` run writes only where
``--out`` says); ``benchmarks/report.py`` makes the README's table and
target of it.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import header, log, mnist_digits, run_meta, store, timed  # noqa: E402
from report import PROBE_EXCESS, probe_solver_tables  # noqa: E402

from sktransfer import ImageBackbone, TransferFeatures  # noqa: E402
from sktransfer._nn import probe  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "benchmarks", "results", "probe_solver.json")
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
    """The seconds of each of ``repeats`` runs, and the first run's result."""
    runs = [timed(fn) for _ in range(repeats)]
    return [t for t, _ in runs], runs[0][1]


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
    parser.add_argument("--quick", action="store_true", help="smoke run: n 100, 1 repeat")
    parser.add_argument("--out", default=RESULTS,
                        help="the results file (a --quick run writes only where --out says)")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.repeats = [100], 1
    warnings.simplefilter("ignore", ConvergenceWarning)
    print(header("exact linear probe: sktransfer's solver vs scikit-learn's"))
    X, y, note = mnist_digits(5000)
    meta = run_meta(None if argv is None else [__file__, *argv], quick=args.quick,
                    threads=torch.get_num_threads(), data=note, image_size=32,
                    n_features=1280, n_test=1000, sizes=args.sizes, repeats=args.repeats,
                    seed=0, target=f"sktransfer faster than scikit-learn in every row, at a "
                                   f"relative objective excess <= {PROBE_EXCESS:g}")
    log(f"extracting MobileNetV2 features of {note} at 32 px ...")
    features = TransferFeatures(ImageBackbone("mobilenet_v2", image_size=32),
                                weights="IMAGENET1K_V1", batch_size=256,
                                device="cpu").fit_transform(X)
    train, test = features[:4000].astype(np.float64), features[4000:].astype(np.float64)
    y_train, y_test = y[:4000], y[4000:]
    records = []
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
        for side, seconds, (w, b) in (("sktransfer", ours_s, (ours.weight, ours.bias)),
                                      ("scikit-learn", theirs_s,
                                       (theirs.coef_, theirs.intercept_))):
            records.append({"n": n, "penalty": "fixed", "side": side, "seed": 0,
                            "seconds": seconds, "alpha": 1.0,
                            "objective_excess": float(objective(w, b, Xn, yn, 1.0) / best - 1)})
        log(f"n={n}: probe_alpha='auto' ...")
        ours_s, ours = best_of(args.repeats, lambda: probe.solve(
            "classification", torch.as_tensor(Xn, dtype=torch.float32), yn, ones,
            n_outputs=10, alpha="auto", seed=0))
        theirs_s, (model, alpha) = best_of(args.repeats, lambda: sklearn_auto(Xn, yn, 0))
        records += [
            {"n": n, "penalty": "auto", "side": "sktransfer", "seed": 0, "seconds": ours_s,
             "alpha": float(ours.alpha), "test_accuracy":
                 float(((test @ ours.weight.T + ours.bias).argmax(1) == y_test).mean())},
            {"n": n, "penalty": "auto", "side": "scikit-learn", "seed": 0,
             "seconds": theirs_s, "alpha": float(alpha),
             "test_accuracy": float(model.score(test, y_test))}]
    tables = probe_solver_tables(meta, records)
    print(f"\n{tables['main']}\n\n{tables['targets']}")
    store(args, RESULTS, meta, records)


if __name__ == "__main__":
    main()
