"""Transferability scores: the maths, on plain arrays.

:func:`logme` and :func:`h_score` score features against target labels;
:func:`leep` and :func:`nce` score a source model's own label predictions
against them. This module needs only numpy, scipy and scikit-learn, so the
scores can be used (and imported) without torch.

All logarithms are natural (nats).
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.covariance import ledoit_wolf_shrinkage
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_array
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_consistent_length, column_or_1d

__all__ = [
    "FEATURE_METRICS",
    "LABEL_METRICS",
    "METRICS",
    "TASKS",
    "h_score",
    "leep",
    "logme",
    "nce",
]

FEATURE_METRICS = ("logme", "h_score")
LABEL_METRICS = ("leep", "nce")
METRICS = FEATURE_METRICS + LABEL_METRICS
TASKS = ("auto", "classification", "regression")

# Fixed-point iteration of LogME: a target column stops once log(alpha / beta)
# changes by less than _LOGME_TOL or its log evidence per sample by less than
# _LOGME_EVIDENCE_TOL in one round.
_LOGME_MAX_ITER = 500
_LOGME_TOL = 1e-7
_LOGME_EVIDENCE_TOL = 1e-12
# alpha / beta is kept within [1e-10 * smallest, 1e10 * largest squared
# singular value]; beyond, the evidence equals its limits to about 1e-10.
_LOGME_LIMIT = 1e-10
_PROBABILITY_ATOL = 1e-3


# -- input validation ---------------------------------------------------------


def _check_features(features, name="features") -> np.ndarray:
    """A finite float64 ``(n_samples, n_features)`` array with at least 2 samples."""
    # ensure_min_features=0: LogME scores zero-width features as pure noise
    return check_array(features, dtype=np.float64, ensure_min_samples=2,
                       ensure_min_features=0, input_name=name)


def _class_codes(y, metric: str) -> tuple[np.ndarray, int]:
    """Class labels encoded as 0..n_classes-1, checked to be labels."""
    labels = column_or_1d(y)
    kind = type_of_target(labels)
    if kind not in ("binary", "multiclass"):
        raise ValueError(
            f"{metric} needs class labels, but y is {kind!r} (sklearn's type_of_target); "
            "for continuous targets use logme(features, y, task='regression')."
        )
    classes, codes = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(
            f"y holds a single class ({classes[0]!r}); transferability needs labels of "
            "at least two classes."
        )
    return codes.ravel(), len(classes)


def _check_probabilities(probs, name: str) -> np.ndarray:
    array = _check_features(probs, name)
    if (array < 0).any():
        raise ValueError(f"{name} has negative entries; pass probabilities, not logits.")
    sums = array.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > _PROBABILITY_ATOL)
    if bad.size:
        raise ValueError(
            f"each row of {name} must sum to 1 (the source model's class probabilities); "
            f"row {bad[0]} sums to {sums[bad[0]]:.4g}. Turn logits into probabilities "
            "with scipy.special.softmax(logits, axis=1)."
        )
    return array / sums[:, None]


# -- LogME ---------------------------------------------------------------------


def _logme_targets(y, task: str) -> np.ndarray:
    """The target columns whose evidence LogME averages, shape (n, n_columns)."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(map(repr, TASKS))}, got {task!r}.")
    array = np.asarray(y)
    if task == "auto":
        kind = type_of_target(array)
        if kind in ("binary", "multiclass", "multilabel-indicator"):
            task = "classification"
        elif kind in ("continuous", "continuous-multioutput"):
            task = "regression"
        else:
            raise ValueError(
                f"cannot tell the task from y of type {kind!r} (sklearn's type_of_target); "
                "pass task='classification' or task='regression'."
            )
    if task == "regression":
        return _nonzero_columns(_regression_targets(array))
    if array.ndim == 2 and array.shape[1] > 1:  # a label-indicator matrix
        if type_of_target(array) != "multilabel-indicator":
            raise ValueError(
                "2-D classification targets must be a 0/1 label-indicator matrix; pass "
                "1-D class labels otherwise."
            )
        return _nonzero_columns(array.astype(np.float64))
    codes, n_classes = _class_codes(array, "logme")
    return (codes[:, None] == np.arange(n_classes)).astype(np.float64)


def _regression_targets(array) -> np.ndarray:
    columns = check_array(array, ensure_2d=False, dtype=np.float64, input_name="y")
    return columns.reshape(-1, 1) if columns.ndim == 1 else columns


def _nonzero_columns(columns: np.ndarray) -> np.ndarray:
    zero = np.flatnonzero(~columns.any(axis=0))
    if zero.size:
        raise ValueError(
            f"target column {zero[0]} is all zeros: a model with no noise fits it "
            "exactly and its evidence is unbounded. Drop that column."
        )
    return columns


def _fixed_point_sums(sigma2, x2, rest, ratio):
    """gamma, |m|^2 and |y - F m|^2 of the posterior mean m for alpha/beta = ratio.

    ``sigma2`` (k, 1) are the squared singular values of the features, ``x2``
    (k, c) the squared projections of the targets on the left singular
    vectors, ``rest`` (c,) the squared norm of the targets outside their span.
    """
    shrink = sigma2 + ratio
    gamma = np.sum(sigma2 / shrink, axis=0)
    m2 = np.sum(sigma2 * x2 / shrink**2, axis=0)
    res2 = np.sum(x2 * (ratio / shrink) ** 2, axis=0) + rest
    return gamma, m2, res2


def _fixed_point_step(sigma2, x2, rest, n, log_ratio, bounds):
    """One update alpha = gamma / |m|^2, beta = (n - gamma) / |y - F m|^2, in log(alpha / beta)."""
    tiny = np.finfo(float).tiny
    gamma, m2, res2 = _fixed_point_sums(sigma2, x2, rest, np.exp(log_ratio))
    alpha = gamma / np.maximum(m2, tiny)
    beta = (n - gamma) / np.maximum(res2, tiny)
    with np.errstate(divide="ignore"):  # alpha = 0 only at a limit; clipped below
        return np.clip(np.log(alpha) - np.log(beta), *bounds)


def _grid_start(sigma2, x2, rest, n, bounds):
    """The best log(alpha / beta) on a grid with one point per factor e.

    The reference code starts from alpha = beta = 1, which depends on the
    scale of the features; from far away the iteration needs hundreds of
    steps. Starting from the grid's best point makes it scale-free.
    """
    grid = np.arange(bounds[0], bounds[1], 1.0)
    values = np.stack([_profile_log_evidence(sigma2, x2, rest, n, np.full(x2.shape[1], u))
                       for u in grid])
    return grid[np.argmax(values, axis=0)]


def _fixed_point(sigma2, x2, rest, n):
    """log(alpha / beta) after the fixed-point iteration of LogME, and which
    columns converged.

    Where the plain iteration converges slowly (linearly, with a rate close to
    1) two steps are taken per round and Aitken's extrapolation of them is
    kept when it raises the evidence. A column stops when alpha / beta or its
    log evidence stop changing. One whose maximum lies at a limit (no signal:
    alpha / beta -> inf; no noise: -> 0) drifts there and stops once alpha /
    beta is 1e10 times above the largest or below the smallest squared
    singular value, where the evidence equals its limit to about 1e-10.
    """
    bounds = (np.log(sigma2.min() * _LOGME_LIMIT), np.log(sigma2.max() / _LOGME_LIMIT))
    log_ratio = _grid_start(sigma2, x2, rest, n, bounds)
    evidence = _profile_log_evidence(sigma2, x2, rest, n, log_ratio)
    active = np.ones(x2.shape[1], dtype=bool)
    for _ in range(_LOGME_MAX_ITER):
        args = (sigma2, x2[:, active], rest[active], n)
        start = log_ratio[active]
        first = _fixed_point_step(*args, start, bounds)
        second = _fixed_point_step(*args, first, bounds)
        curvature = second - 2 * first + start
        with np.errstate(divide="ignore", invalid="ignore"):
            jump = np.clip(start - (first - start) ** 2 / curvature, *bounds)
        jump = np.where(np.isfinite(jump), jump, second)
        plain, extrapolated = (_profile_log_evidence(*args, u) for u in (second, jump))
        new = np.where(extrapolated > plain, jump, second)
        new_evidence = np.maximum(extrapolated, plain)
        done = ((np.abs(new - start) <= _LOGME_TOL)
                | (np.abs(new_evidence - evidence[active]) <= _LOGME_EVIDENCE_TOL)
                | (new == bounds[0]) | (new == bounds[1]))
        log_ratio[active], evidence[active] = new, new_evidence
        active[np.flatnonzero(active)[done]] = False
        if not active.any():
            break
    return log_ratio, ~active


def _profile_log_evidence(sigma2, x2, rest, n, log_ratio):
    """log p(y | F, alpha, beta) / n at log(alpha / beta) = log_ratio, beta at its optimum.

    With beta = n / q, q = |y - F m|^2 + ratio |m|^2, the log evidence is
    -1/2 sum_k log(1 + sigma_k^2 / ratio) - n/2 log(q / n) - n/2 (1 + log 2 pi);
    the d/2 log(alpha) of the prior and the (d - k) zero singular values in
    log|alpha I + beta F'F| cancel exactly.
    """
    ratio = np.exp(log_ratio)
    q = np.sum(x2 * ratio / (sigma2 + ratio), axis=0) + rest
    evidence = (-0.5 * np.sum(np.log1p(sigma2 / ratio), axis=0)
                - n / 2 * np.log(np.maximum(q, np.finfo(float).tiny) / n)
                - n / 2 * (1 + np.log(2 * np.pi)))
    return evidence / n


def _boundary_log_evidence(sigma2, x2, rest, n):
    """The log evidence / n in the limits alpha / beta -> infinity (no signal)
    and, when the features span all n samples, alpha / beta -> 0 (no noise)."""
    constant = -n / 2 * (1 + np.log(2 * np.pi))
    no_signal = -n / 2 * np.log((np.sum(x2, axis=0) + rest) / n) + constant
    if sigma2.shape[0] < n:  # rest > 0: the evidence falls to -inf without noise
        return no_signal / n
    no_noise = (-0.5 * np.sum(np.log(sigma2)) - n / 2 * np.log(np.sum(x2 / sigma2, axis=0) / n)
                + constant)
    return np.maximum(no_signal, no_noise) / n


def _max_log_evidence(features: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Maximum over alpha, beta of log p(y | F, alpha, beta) / n, per column of ``targets``."""
    n = features.shape[0]
    u, s, _ = np.linalg.svd(features, full_matrices=False)
    rank = int(np.sum(s > s[0] * max(features.shape) * np.finfo(float).eps)) if s.size else 0
    u, sigma2 = u[:, :rank], (s[:rank] ** 2)[:, None]
    x = u.T @ targets
    x2 = x**2
    rest = np.sum((targets - u @ x) ** 2, axis=0)  # the part of y outside span(F)
    boundary = _boundary_log_evidence(sigma2, x2, rest, n)
    if rank == 0:  # constant-zero features: the evidence of pure noise
        return boundary
    log_ratio, converged = _fixed_point(sigma2, x2, rest, n)
    evidence = _profile_log_evidence(sigma2, x2, rest, n, log_ratio)
    # A maximum in a limit is only approached by the iteration; take the limit.
    stalled = ~converged & (evidence >= boundary)
    if stalled.any():
        warnings.warn(
            f"LogME's fixed-point iteration did not converge in {_LOGME_MAX_ITER} steps "
            f"for {int(stalled.sum())} target column(s); the score is approximate.",
            ConvergenceWarning, stacklevel=3,
        )
    return np.maximum(evidence, boundary)


def logme(features, y, *, task="auto"):
    """LogME: log of the maximum evidence of a linear model on the features.

    For each target column, LogME (You et al., 2021) fits the Bayesian linear
    model ``y = F w + noise`` with prior ``w ~ N(0, I / alpha)`` and noise
    ``N(0, 1 / beta)``, maximises the log evidence ``log p(y | F, alpha,
    beta)`` over ``alpha`` and ``beta`` by the fixed-point iteration of the
    reference implementation (computed from the SVD of ``F``), and divides it
    by the number of samples. The score is the mean over target columns.
    Higher is better; values compare between backbones on the same target.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
        Features of the target samples (e.g. from :class:`~sktransfer.TransferFeatures`).
    y : array-like of shape (n_samples,) or (n_samples, n_targets)
        Class labels (scored as one-hot columns, one per class), a 0/1
        label-indicator matrix, or continuous targets.
    task : {"auto", "classification", "regression"}, default="auto"
        "auto" follows :func:`sklearn.utils.multiclass.type_of_target`:
        binary and multiclass labels are classification, continuous targets
        regression. Pass "regression" for integer-valued continuous targets.

    Returns
    -------
    score : float
        Mean log evidence per sample, averaged over target columns.

    See Also
    --------
    h_score : Another score of features against class labels.
    rank_backbones : Scores of several candidate backbones at once.

    Notes
    -----
    The evidence depends on ``alpha`` and ``beta`` only through their ratio
    once ``beta`` takes its best value, so the search is one-dimensional. The
    reference code (``thuml/LogME``, fixed-point version) starts from ``alpha
    = beta = 1``, which depends on the scale of the features and can leave it
    hundreds of slow steps away; here the iteration starts from the best point
    of a coarse grid of ratios and, where it converges slowly, is sped up by
    Aitken's extrapolation (kept only when it raises the evidence). When the
    evidence is highest in a limit (no signal, or, when the features span all
    samples as they often do with fewer samples than features, no noise) the
    score is that limit.

    The log evidence counts all ``n_features`` dimensions of the prior, so the
    score does not change with zero or duplicated feature columns, an
    orthogonal rotation or a global rescaling of the features. (The reference
    code drops the ``(n_features - rank) * log(alpha)`` part of ``log|A|``
    when the features have lower rank than their number, e.g. fewer samples
    than features, so its values differ there.) Relabeling the classes does
    not change the score; scaling regression targets by ``c`` lowers it by
    ``log|c|``.

    References
    ----------
    K. You, Y. Liu, J. Wang and M. Long, "LogME: Practical Assessment of
    Pre-trained Models for Transfer Learning", ICML 2021.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.selection import logme
    >>> rng = np.random.RandomState(0)
    >>> y = rng.randint(0, 3, size=200)
    >>> informative = np.eye(3)[y] + 0.1 * rng.randn(200, 3)
    >>> noise = rng.randn(200, 3)
    >>> bool(logme(informative, y) > logme(noise, y))
    True
    """
    features = _check_features(features)
    targets = _logme_targets(y, task)
    check_consistent_length(features, targets)
    return float(np.mean(_max_log_evidence(features, targets)))


# -- H-score -------------------------------------------------------------------


def h_score(features, y):
    """H-score: how well the features separate the classes, tr(cov(f)^-1 cov(E[f|y])).

    The H-score of Bao et al. (2019) is the trace of the inverse feature
    covariance times the covariance of the class-conditional means. With few
    samples per feature the sample covariance is singular (and its
    pseudo-inverse makes every feature set look perfect), so ``cov(f)`` is the
    Ledoit-Wolf shrinkage estimate, as in the shrinkage H-score of Ibrahim et
    al. (2022); it is inverted as a pseudo-inverse (eigenvalues below machine
    precision, e.g. of constant features, are left out). Higher is better;
    with exact covariances the score lies in ``[0, n_classes - 1]``.

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
        Features of the target samples.
    y : array-like of shape (n_samples,)
        Class labels.

    Returns
    -------
    score : float
        The H-score of the features; higher is better.

    See Also
    --------
    logme : Evidence-based score, for classification or regression.

    Notes
    -----
    The class means of ``n_samples`` noisy samples are themselves noisy, so
    even uninformative features score about ``n_classes * n_features /
    n_samples``. Compare candidates with many more samples than features (or
    with :func:`logme`, which has no such bias).

    References
    ----------
    Y. Bao, Y. Li, S.-L. Huang, L. Zhang, L. Zheng, A. Zamir and L. Guibas,
    "An Information-Theoretic Approach to Transferability in Task Transfer
    Learning", ICIP 2019.

    S. Ibrahim, N. Ponomareva and R. Mazumder, "Newer is not always better:
    Rethinking transferability metrics, their peculiarities, stability and
    performance", ECML PKDD 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.selection import h_score
    >>> rng = np.random.RandomState(0)
    >>> y = rng.randint(0, 3, size=200)
    >>> informative = np.eye(3)[y] + 0.1 * rng.randn(200, 3)
    >>> bool(h_score(informative, y) > h_score(rng.randn(200, 3), y))
    True
    """
    features = _check_features(features)
    check_consistent_length(features, y)
    codes, n_classes = _class_codes(y, "h_score")
    centered = features - features.mean(axis=0)
    counts = np.bincount(codes, minlength=n_classes)
    means = np.zeros((n_classes, features.shape[1]))
    np.add.at(means, codes, centered)
    means /= counts[:, None]
    inverse_quadratic = _shrunk_inverse_quadratic(centered)
    return float(np.sum(counts / len(codes) * inverse_quadratic(means)))


def _shrunk_inverse_quadratic(centered: np.ndarray):
    """``v -> v' C^+ v`` (row-wise) for C the Ledoit-Wolf covariance of ``centered``.

    C = (1 - delta) S + delta mu I with S = X'X / n; from the thin SVD of X the
    eigenvalues of C are known on the span of the samples and equal delta mu
    outside it, so no (n_features, n_features) matrix is formed.
    """
    n, d = centered.shape
    delta = ledoit_wolf_shrinkage(centered, assume_centered=True)
    _, s, vh = np.linalg.svd(centered, full_matrices=False)
    mu = np.sum(s**2) / (n * d)
    inside = (1 - delta) * s**2 / n + delta * mu
    outside = delta * mu
    tol = max(inside.max(initial=0.0), outside) * d * np.finfo(float).eps

    def quadratic(vectors):
        projected = vectors @ vh.T
        value = np.sum(np.where(inside > tol, projected**2 / np.maximum(inside, tol), 0.0),
                       axis=1)
        if outside > tol:
            value += (np.sum(vectors**2, axis=1) - np.sum(projected**2, axis=1)) / outside
        return value

    return quadratic


# -- LEEP and NCE --------------------------------------------------------------


def leep(source_probs, y):
    """LEEP: log expected empirical prediction of the source model's labels.

    With ``theta(x)`` the source model's class probabilities, LEEP (Nguyen et
    al., 2020) forms the empirical joint ``P(y, z) = mean_i theta_z(x_i) [y_i =
    y]`` of target label ``y`` and source label ``z``, the conditional ``P(y |
    z)``, and returns ``mean_i log sum_z P(y_i | z) theta_z(x_i)``: the average
    log-likelihood of a classifier that maps the source model's predictions to
    target labels. It is at most 0 (reached when the source labels determine
    the target labels); higher is better.

    Parameters
    ----------
    source_probs : array-like of shape (n_samples, n_source_classes)
        Probabilities the source model gives its own classes on the target
        samples; each row sums to 1.
    y : array-like of shape (n_samples,)
        Target class labels.

    Returns
    -------
    score : float
        Mean log-likelihood per sample, at most 0; higher is better.

    See Also
    --------
    nce : The same question asked of the source model's hard labels.

    References
    ----------
    C. V. Nguyen, T. Hassner, M. Seeger and C. Archambeau, "LEEP: A New
    Measure to Evaluate Transferability of Learned Representations", ICML 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.selection import leep
    >>> y = np.array([0, 0, 1, 1])
    >>> leep(np.eye(2)[y], y)  # the source labels name the target classes
    0.0
    >>> round(leep(np.full((4, 2), 0.5), y), 4)  # they say nothing: log(1/2)
    -0.6931
    """
    probs = _check_probabilities(source_probs, "source_probs")
    check_consistent_length(probs, y)
    codes, n_classes = _class_codes(y, "leep")
    one_hot = (codes[:, None] == np.arange(n_classes)).astype(np.float64)
    joint = one_hot.T @ probs / len(codes)  # P(y, z)
    p_source = joint.sum(axis=0)
    conditional = np.divide(joint, p_source, out=np.zeros_like(joint), where=p_source > 0)
    expected = np.sum(probs * conditional[codes], axis=1)  # sum_z P(y_i | z) theta_z(x_i)
    return float(np.mean(np.log(expected)))


def _hard_labels(source_labels) -> np.ndarray:
    """The source model's labels, or the argmax of its class probabilities."""
    # dtype=None keeps labels of any kind (strings too); floats must be finite
    array = check_array(source_labels, ensure_2d=False, dtype=None, input_name="source_labels")
    if array.ndim == 2 and array.shape[1] > 1:
        return np.argmax(_check_probabilities(array, "source_labels"), axis=1)
    return column_or_1d(array)


def nce(source_labels, y):
    """NCE: negative conditional entropy of the target labels given the source labels.

    NCE (Tran et al., 2019) is ``-H(Y | Z)`` of the empirical joint
    distribution of target labels ``Y`` and the source model's hard labels
    ``Z``. It is at most 0, reached when the source label determines the
    target label, and about ``-H(Y)`` when they are independent. Higher is
    better.

    Parameters
    ----------
    source_labels : array-like of shape (n_samples,) or (n_samples, n_source_classes)
        The source model's predicted labels on the target samples, or its class
        probabilities (their argmax is taken).
    y : array-like of shape (n_samples,)
        Target class labels.

    Returns
    -------
    score : float
        ``-H(Y | Z)`` in nats, at most 0; higher is better.

    See Also
    --------
    leep : Uses the source model's probabilities rather than its hard labels.

    References
    ----------
    A. T. Tran, C. V. Nguyen and T. Hassner, "Transferability and Hardness of
    Supervised Classification Tasks", ICCV 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.selection import nce
    >>> y = np.array([0, 0, 1, 1])
    >>> nce(np.array([5, 5, 7, 7]), y)
    0.0
    >>> round(nce(np.array([5, 7, 5, 7]), y), 4)  # independent: -H(Y) = -log 2
    -0.6931
    """
    source = _hard_labels(source_labels)
    check_consistent_length(source, y)
    codes, n_classes = _class_codes(y, "nce")
    _, source_codes = np.unique(source, return_inverse=True)
    joint = np.zeros((n_classes, source_codes.max() + 1))
    np.add.at(joint, (codes, source_codes.ravel()), 1.0 / len(codes))
    p_source = joint.sum(axis=0)
    seen = joint > 0
    conditional = joint[seen] / np.broadcast_to(p_source, joint.shape)[seen]
    return float(np.sum(joint[seen] * np.log(conditional)))

