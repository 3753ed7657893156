"""Solvers of the linear models that transfer a source's coefficients:
ridge in closed form and logistic regression by L-BFGS, both penalising the
distance to the source coefficients ``W0`` (never the intercept), and their
cross-validated paths over the penalty.

The objectives, with sample weights ``s`` (scikit-learn's conventions, so that
``W0 = 0`` is exactly :class:`~sklearn.linear_model.Ridge` and
:class:`~sklearn.linear_model.LogisticRegression` with ``C = 1 / alpha``):

- ridge: ``sum_i s_i ||y_i - W x_i - b||^2 + alpha ||W - W0||^2``;
- logistic: ``sum_i s_i CE_i(W x_i + b) + alpha / 2 ||W - W0||^2``, binary
  with one row of weights (the log-odds of the second class), multinomial
  with one row per class.

``alpha = inf`` keeps ``W0`` exactly and fits the intercept only.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
from scipy import optimize, sparse
from scipy.special import expit, log_expit, logsumexp, softmax
from sklearn.utils.extmath import safe_sparse_dot
from threadpoolctl import threadpool_limits

# Below this many values of X, products are too small to gain from BLAS threads,
# and L-BFGS-B's own BLAS calls pay for waking them: on two busy cores, 11 ms per
# iteration with the threads against 0.14 ms with one.
_ONE_THREAD_SIZE = 1 << 21


def few_blas_threads(X):
    """One BLAS thread while solving a problem on ``X`` of a small size (or
    sparse, whose products do not use BLAS)."""
    small = sparse.issparse(X) or X.shape[0] * X.shape[1] <= _ONE_THREAD_SIZE
    return threadpool_limits(limits=1, user_api="blas") if small else contextlib.nullcontext()

# -- ridge ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RidgeProblem:
    """Ridge toward ``W0`` reduced to ridge toward zero: with ``R = Y - X W0^T``
    weighted-centred and the rows scaled by ``sqrt(s)``, the change ``V = W -
    W0`` solves an ordinary ridge problem, whose thin SVD ``U diag(sv) Vt``
    gives the solution (and the leave-one-out errors) for every ``alpha``."""

    u: np.ndarray  # (n, r)
    sv: np.ndarray  # (r,)
    vt: np.ndarray  # (r, d)
    b: np.ndarray  # (n, t): sqrt(s) * centred residual targets
    x_mean: np.ndarray  # (d,)
    r_mean: np.ndarray  # (t,)
    leverage0: np.ndarray  # (n,): the intercept's share of the hat matrix, s_i / sum(s)
    w0: np.ndarray  # (t, d)

    @classmethod
    def build(cls, X, Y, sample_weight, w0):
        """``X`` (n, d), ``Y`` (n, t), ``w0`` (t, d)."""
        s = sample_weight
        x_mean = s @ X / s.sum()
        residual = Y - X @ w0.T
        r_mean = s @ residual / s.sum()
        root = np.sqrt(s)[:, None]
        u, sv, vt = np.linalg.svd(root * (X - x_mean), full_matrices=False)
        keep = sv > sv.max(initial=0.0) * max(X.shape) * np.finfo(float).eps
        return cls(u[:, keep], sv[keep], vt[keep], root * (residual - r_mean), x_mean, r_mean,
                   s / s.sum(), w0)

    def _shrink(self, alpha):
        if np.isinf(alpha):
            return np.zeros_like(self.sv)
        return self.sv**2 / (self.sv**2 + alpha)

    def solve(self, alpha):
        """``(coef (t, d), intercept (t,))`` for ``alpha``."""
        if np.isinf(alpha):
            change = np.zeros_like(self.w0)
        else:
            scale = self.sv / (self.sv**2 + alpha)
            change = (self.vt.T @ (scale[:, None] * (self.u.T @ self.b))).T
        coef = self.w0 + change
        return coef, self.r_mean + self.w0 @ self.x_mean - coef @ self.x_mean

    def log_evidence(self, alpha):
        """Log marginal likelihood of the centred targets, up to a constant,
        when the change ``V`` is drawn from ``N(0, sigma^2 / alpha)`` per
        coefficient and the errors from ``N(0, sigma^2)`` (in the
        ``sqrt(s)``-scaled rows), with each output's ``sigma^2`` set to its
        maximum-likelihood value; summed over outputs. The centring takes one
        degree of freedom (the intercept's)."""
        n_outputs = self.b.shape[1]
        dof = max(self.b.shape[0] - 1, 1)
        ratio = np.zeros_like(self.sv) if np.isinf(alpha) else (
            np.full_like(self.sv, np.inf) if alpha == 0 else self.sv**2 / alpha)
        projected = self.u.T @ self.b
        outside = np.maximum((self.b**2).sum(0) - (projected**2).sum(0), 0.0)
        with np.errstate(divide="ignore"):
            quadratic = (projected**2 / (1.0 + ratio)[:, None]).sum(0) + outside
            tiny = np.finfo(float).tiny
            return float(-0.5 * dof * np.log(np.maximum(quadratic, tiny) / dof).sum()
                         - 0.5 * n_outputs * np.log1p(ratio).sum())

    def loo_errors(self, alpha):
        """Leave-one-out residuals (in the ``sqrt(s)``-scaled rows, as
        :class:`~sklearn.linear_model.RidgeCV` reports them), shape (n, t);
        infinite where a sample's leverage is 1."""
        shrink = self._shrink(alpha)
        fitted = self.u @ (shrink[:, None] * (self.u.T @ self.b))
        leverage = self.leverage0 + (self.u**2) @ shrink
        with np.errstate(divide="ignore", invalid="ignore"):
            errors = (self.b - fitted) / (1.0 - leverage)[:, None]
        errors[~np.isfinite(errors)] = np.inf
        return errors


# -- logistic regression -------------------------------------------------------------


@dataclass(frozen=True)
class LogisticProblem:
    """Weighted logistic regression toward ``w0``: ``X`` (n, d), dense or
    sparse; ``targets`` class indices; ``w0`` (k, d) with k = 1 for a binary
    problem (the second class's log-odds), else one row per class."""

    X: object
    targets: np.ndarray
    sample_weight: np.ndarray
    w0: np.ndarray

    @property
    def shape(self):
        return self.w0.shape

    def _one_hot(self):
        k = self.w0.shape[0]
        if k == 1:
            return (self.targets == 1).astype(float)[:, None]
        one_hot = np.zeros((len(self.targets), k))
        one_hot[np.arange(len(self.targets)), self.targets] = 1.0
        return one_hot

    def loss_and_gradients(self, coef, intercept, alpha, one_hot=None):
        """The objective divided by ``sum(s)`` (a scale L-BFGS's tolerances
        suit whatever the data size) and its gradients in ``coef`` and
        ``intercept``; ``alpha = inf`` leaves out the penalty (``coef`` is
        held at ``w0`` then)."""
        one_hot = self._one_hot() if one_hot is None else one_hot
        s = self.sample_weight
        total = s.sum()
        logits = safe_sparse_dot(self.X, coef.T, dense_output=True) + intercept
        if coef.shape[0] == 1:
            z = logits[:, 0]
            sign = 2.0 * one_hot[:, 0] - 1.0
            loss = -(s @ log_expit(sign * z))
            residual = (expit(z) - one_hot[:, 0])[:, None]
        else:
            loss = s @ (logsumexp(logits, axis=1) - (logits * one_hot).sum(1))
            residual = softmax(logits, axis=1) - one_hot
        residual = residual * s[:, None]
        grad_coef = safe_sparse_dot(residual.T, self.X, dense_output=True)
        if np.isfinite(alpha):
            diff = coef - self.w0
            loss = loss + 0.5 * alpha * float((diff * diff).sum())
            grad_coef = grad_coef + alpha * diff
        return loss / total, grad_coef / total, residual.sum(0) / total

    def minimise(self, alpha, start, *, tol, max_iter):
        """L-BFGS from ``start = (coef, intercept)``; returns the solution,
        the number of iterations and whether it converged."""
        one_hot = self._one_hot()
        k, d = self.w0.shape
        if np.isinf(alpha):  # the source coefficients kept: the intercept only
            def objective(flat):
                loss, _, grad_b = self.loss_and_gradients(self.w0, flat, alpha, one_hot)
                return loss, grad_b

            result = optimize.minimize(objective, start[1], jac=True, method="L-BFGS-B",
                                       options=_lbfgs_options(tol, max_iter))
            return (self.w0.copy(), result.x), result.nit, result.status == 0

        def objective(flat):
            coef, intercept = flat[:k * d].reshape(k, d), flat[k * d:]
            loss, grad_w, grad_b = self.loss_and_gradients(coef, intercept, alpha, one_hot)
            return loss, np.concatenate([grad_w.ravel(), grad_b])

        flat = np.concatenate([np.asarray(start[0], float).ravel(), start[1]])
        result = optimize.minimize(objective, flat, jac=True, method="L-BFGS-B",
                                   options=_lbfgs_options(tol, max_iter))
        coef, intercept = result.x[:k * d].reshape(k, d), result.x[k * d:]
        return (coef, intercept), result.nit, result.status == 0

    def log_loss(self, coef, intercept, rows):
        """Weighted mean log-loss of the samples ``rows``."""
        part = LogisticProblem(self.X[rows], self.targets[rows], self.sample_weight[rows],
                               self.w0)
        loss, _, _ = part.loss_and_gradients(coef, intercept, np.inf)
        return loss

    def accuracy(self, coef, intercept, rows):
        """Weighted accuracy of the samples ``rows``."""
        logits = safe_sparse_dot(self.X[rows], coef.T, dense_output=True) + intercept
        predicted = (logits[:, 0] > 0).astype(int) if coef.shape[0] == 1 else logits.argmax(1)
        s = self.sample_weight[rows]
        return float(s @ (predicted == self.targets[rows]) / s.sum())

    def start_intercept(self, coef):
        """An intercept that matches the class frequencies given ``coef``'s
        mean logits: a start the intercept-only fit improves quickly."""
        s = self.sample_weight
        prior = np.bincount(self.targets, weights=s, minlength=max(2, self.w0.shape[0]))
        prior = np.clip(prior / s.sum(), 1e-6, None)
        mean_logits = (s @ safe_sparse_dot(self.X, coef.T, dense_output=True)) / s.sum()
        if self.w0.shape[0] == 1:
            return np.log(prior[1:2] / prior[0:1]) - mean_logits
        return np.log(prior) - mean_logits


def _lbfgs_options(tol, max_iter):
    # scikit-learn's LogisticRegression(solver="lbfgs") settings
    return {"maxiter": max_iter, "maxfun": max(15_000, 2 * max_iter), "gtol": tol,
            "ftol": 64 * np.finfo(float).eps}
