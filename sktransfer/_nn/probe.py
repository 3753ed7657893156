"""The exact linear probe: the new head's ``nn.Linear`` fitted to convergence
on the frozen trunk's features, by a deterministic full-batch solver:
multinomial logistic regression for classifiers (the objective of
scikit-learn's ``LogisticRegression(C=1 / alpha)``, minimised by L-BFGS with
a strong-Wolfe line search, ``torch.optim.LBFGS``, on the fit's device) and
scikit-learn's ridge for regressors, with the penalty chosen by internal
cross-validation (``alpha="auto"``).

Why torch's L-BFGS rather than scikit-learn's for the logistic head: the same
objective and the same solution (tested against ``LogisticRegression``), but
scikit-learn's multinomial loss evaluates about fifteen times slower than two
matrix products on the CPU, and cannot use a GPU. On 4,000 MNIST features of
MobileNetV2 (1,280 dimensions), one solve takes 0.9 s here against 7 s for
scikit-learn at a looser tolerance (``benchmarks/README.md``); a 50,000-image
probe would otherwise spend minutes in the solver.

With fewer samples than features (the few-shot case), the problem is solved
in the span of the samples: an L2-penalised solution lies there (the
representer theorem), so solving on the coordinates of the features in that
span and mapping back is the same problem with n instead of d unknowns per
class.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.model_selection import StratifiedKFold

from .._deadline import check_deadline
from .._options import UNLABELED_TARGET
from . import activation_store as store
from .digests import arrays_digest
from .frozen_cut import skipping
from .inference import Batching, evaluating, run_batches

# Penalties tried by alpha="auto" (alpha = 1 / C for logistic regression).
ALPHAS = tuple(float(a) for a in np.logspace(-3, 3, 7))
_CV_FOLDS = 5
_MAX_CV_SAMPLES = 2_000  # the penalty is chosen on at most this many samples
_MAX_ITER = 1_000
_PATIENCE = 2  # penalties past the best with a worse held-out loss before the path stops
# warm-started along the path, enough to rank penalties a decade apart: the
# same choices as 100 iterations on 12 real probes
# (benchmarks/probe_penalty_search.py)
_CV_MAX_ITER = 20
# Stop when the largest gradient entry of the mean objective is below this
# (the final solve) or the looser one (the penalty search, which only ranks
# penalties a decade apart).
_GRAD_TOL = {torch.float64: 1e-6, torch.float32: 1e-5}
_CV_GRAD_TOL = 1e-4
# Problems up to this many feature values are solved in float64, larger ones
# in float32 (memory and speed; float32 reaches a relative objective of ~1e-6).
_FLOAT64_SIZE = 1 << 20


@dataclass(frozen=True)
class LinearSolution:
    """``logits = features @ weight.T + bias`` and the penalty used (one per
    task for a multi-task head)."""

    weight: np.ndarray
    bias: np.ndarray
    alpha: float | tuple


def trunk_features(module, dataset, batching: Batching) -> torch.Tensor:
    """The trunk's output (the head's input) for every item of ``dataset``,
    the network in eval mode, as a float32 CPU tensor."""
    with evaluating(module):
        features = run_batches(lambda X: module.trunk(X).flatten(1).float(), dataset,
                               batching)
    return features.clone()  # a normal tensor, not an inference-mode one


# -- logistic regression ---------------------------------------------------------------


@dataclass(frozen=True)
class _Problem:
    """Weighted multinomial logistic regressions sharing their features: for
    each column of ``weights`` (a problem; one per cross-validation fold,
    whose held-out rows weigh 0), minimise
    ``sum_i s_i CE_i / sum(s) + penalty / (2 sum(s)) * ||W||^2``, which is
    scikit-learn's objective divided by ``C sum(s)``; the intercept is not
    penalised. The problems are independent, so one L-BFGS run on the sum
    of their objectives solves them all with one matrix product per step."""

    features: torch.Tensor  # (n, d)
    targets: torch.Tensor  # (n,)
    weights: torch.Tensor  # (n, problems)
    n_classes: int

    @property
    def n_problems(self) -> int:
        return self.weights.shape[1]

    def logits(self, weight, bias):
        """(n, problems, classes) for ``weight`` (problems, classes, d)."""
        flat = self.features @ weight.flatten(0, 1).T + bias.flatten()
        return flat.view(len(self.features), self.n_problems, self.n_classes)

    def losses(self, weight, bias):
        """Cross-entropy of every sample under every problem: (n, problems)."""
        logits = self.logits(weight, bias)
        return torch.logsumexp(logits, dim=2) - logits.gather(
            2, self.targets.view(-1, 1, 1).expand(-1, self.n_problems, 1)).squeeze(2)

    def zeros(self):
        d = self.features.shape[1]
        like = self.features
        return (like.new_zeros(self.n_problems, self.n_classes, d),
                like.new_zeros(self.n_problems, self.n_classes))


def _minimise(problem: _Problem, penalty: float, start, *, max_iter: int, grad_tol: float):
    """L-BFGS from ``start`` = (weight, bias); returns them and whether it
    stopped before its iteration budget."""
    weight, bias = (p.detach().clone().requires_grad_(True) for p in start)
    totals = problem.weights.sum(0)
    solver = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter,
                               tolerance_grad=grad_tol, tolerance_change=1e-12,
                               history_size=10, line_search_fn="strong_wolfe")

    def objective():
        check_deadline("the exact probe's solver")
        solver.zero_grad()
        data = (problem.losses(weight, bias) * problem.weights).sum(0) / totals
        value = (data + penalty / (2 * totals) * (weight * weight).sum((1, 2))).sum()
        value.backward()
        return value

    with torch.enable_grad():
        solver.step(objective)
    state = solver.state[weight]
    stopped_early = state["n_iter"] < max_iter and state["func_evals"] < max_iter * 5 // 4
    return (weight.detach(), bias.detach()), stopped_early


def _penalty(alpha: float, n_classes: int) -> float:
    """The softmax penalty equal to scikit-learn's for ``alpha``: a binary
    problem there has one weight vector v = w1 - w0 penalised by alpha/2 ||v||^2,
    which two softmax rows w0 = -v/2, w1 = v/2 reach with twice the penalty."""
    return alpha * 2.0 if n_classes == 2 else alpha


def _logistic_alpha(problem: _Problem, seed: int):
    """The penalty of ``ALPHAS`` with the best cross-validated weighted
    log-loss, on stratified folds of at most ``_MAX_CV_SAMPLES`` samples, and
    the folds' mean solution for it (a start close to the full solution);
    ``(1.0, None)`` when some class has a single sample (no stratified split
    exists).

    The folds are solved together (one problem each, see ``_Problem``), along
    a warm-started path from the strongest penalty down; the path stops once
    the held-out loss has worsened at two penalties in a row (it is close to
    unimodal in the penalty), which skips the weakest penalties, the slowest
    to solve, when they would not be chosen."""
    targets = problem.targets.cpu().numpy()
    n_folds = min(_CV_FOLDS, int(np.bincount(targets, minlength=problem.n_classes).min()))
    if n_folds < 2:
        return 1.0, None
    rows = np.arange(len(targets))
    if len(rows) > _MAX_CV_SAMPLES:
        rows = np.sort(np.random.RandomState(seed).choice(rows, _MAX_CV_SAMPLES,
                                                          replace=False))
    base = problem.weights[torch.as_tensor(rows, device=problem.weights.device), 0]
    held_out = torch.zeros(len(rows), n_folds, dtype=base.dtype)
    folds = StratifiedKFold(n_folds, shuffle=True, random_state=seed)
    for fold, (_, test) in enumerate(folds.split(rows, targets[rows])):
        held_out[test, fold] = 1.0
    held_out = held_out.to(base.device)
    index = torch.as_tensor(rows, device=problem.features.device)
    folds_problem = _Problem(problem.features[index], problem.targets[index],
                             base[:, None] * (1 - held_out), problem.n_classes)
    test_weights = base[:, None] * held_out
    start, scores, solutions, worse = folds_problem.zeros(), {}, {}, 0
    for alpha in sorted(ALPHAS, reverse=True):
        start, _ = _minimise(folds_problem, _penalty(alpha, problem.n_classes), start,
                             max_iter=_CV_MAX_ITER, grad_tol=_CV_GRAD_TOL)
        with torch.no_grad():
            losses = folds_problem.losses(*start)
        scores[alpha] = float((losses * test_weights).sum() / test_weights.sum())
        solutions[alpha] = tuple(p.mean(0, keepdim=True) for p in start)
        worse = worse + 1 if scores[alpha] > min(scores.values()) else 0
        if worse == _PATIENCE:
            break
    best = min(scores, key=scores.get)
    return best, solutions[best]


def _sample_span(features: torch.Tensor):
    """An orthonormal basis (rows) of the span of the samples, or None when
    there are at least as many samples as features."""
    n, d = features.shape
    if n >= d:
        return None
    _, singular, basis = torch.linalg.svd(features, full_matrices=False)
    keep = singular > singular.max() * max(n, d) * torch.finfo(features.dtype).eps
    return basis[keep] if bool(keep.any()) else None


def _logistic(features: torch.Tensor, targets, sample_weight, n_classes: int, alpha,
              seed: int, device):
    dtype = torch.float64 if features.numel() <= _FLOAT64_SIZE else torch.float32
    features = features.to(device=device, dtype=dtype)
    sample_weight = torch.as_tensor(sample_weight, device=device, dtype=dtype)
    # Centring is exact (the unpenalised intercept absorbs the shift) and
    # makes the problem far better conditioned: trunk features are mostly
    # positive, so their mean direction dominates.
    mean = sample_weight @ features / sample_weight.sum()
    features = features - mean
    span = _sample_span(features)
    inputs = features if span is None else features @ span.T
    problem = _Problem(inputs, torch.as_tensor(np.asarray(targets), device=device).long(),
                       sample_weight[:, None], n_classes)
    start = None
    if alpha == "auto":
        alpha, start = _logistic_alpha(problem, seed)
    (weight, bias), converged = _minimise(problem, _penalty(alpha, n_classes),
                                          start or problem.zeros(), max_iter=_MAX_ITER,
                                          grad_tol=_GRAD_TOL[dtype])
    weight, bias = weight[0], bias[0]
    if not converged:
        warnings.warn(f"The exact linear probe stopped at {_MAX_ITER} L-BFGS iterations "
                      "before converging; a larger probe_alpha makes the problem easier.",
                      ConvergenceWarning, stacklevel=2)
    if span is not None:
        weight = weight @ span
    bias = bias - weight @ mean
    bias = bias - bias.mean()  # logits are defined up to a shared shift
    return weight.cpu().double().numpy(), bias.cpu().double().numpy(), float(alpha)


# -- ridge ---------------------------------------------------------------------------


def _ridge(features: torch.Tensor, targets, sample_weight, alpha):
    features = features.double().numpy()
    targets = targets.reshape(len(targets), -1)
    if alpha == "auto":
        model = RidgeCV(alphas=ALPHAS)  # efficient leave-one-out
    else:
        model = Ridge(alpha=alpha)
    model.fit(features, targets, sample_weight=sample_weight)
    chosen = model.alpha_ if alpha == "auto" else alpha
    return np.atleast_2d(model.coef_), np.atleast_1d(model.intercept_), float(chosen)


def solve(task: str, features: torch.Tensor, targets, sample_weight, *, n_outputs: int,
          alpha, seed: int, device="cpu") -> LinearSolution:
    """The linear head that minimises the penalised loss on ``features``
    (a float CPU tensor, one row per sample)."""
    if task == "classification":
        weight, bias, alpha = _logistic(features, targets, sample_weight, n_outputs,
                                        alpha, seed, device)
    else:
        weight, bias, alpha = _ridge(features, np.asarray(targets), sample_weight, alpha)
    return LinearSolution(weight, bias, alpha)


def load_into_head(head: torch.nn.Module, solution: LinearSolution) -> None:
    """Write ``solution`` into the last ``nn.Linear`` of ``head``."""
    linear = [m for m in head.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        linear.weight.copy_(torch.as_tensor(solution.weight, dtype=linear.weight.dtype))
        linear.bias.copy_(torch.as_tensor(solution.bias, dtype=linear.bias.dtype))


# -- the probe of a fit, and reuse of equal probes --------------------------------------

# At most this many solutions of earlier probes stay in memory (least
# recently used first out): a grid over parameters the probe does not read
# (lr, the schedule, ...) solves each fold once.
_MAX_SOLUTIONS = 256


def _disk_path(cache_dir, key: str):
    return None if cache_dir is None else store.cache_path(cache_dir, store.PROBE_DIRNAME,
                                                            key + ".npz")


def _remembered(key: str, cache_dir) -> LinearSolution | None:
    if key in store.PROBE_SOLUTIONS:
        store.PROBE_SOLUTIONS.move_to_end(key)
        return store.PROBE_SOLUTIONS[key]
    path = _disk_path(cache_dir, key)
    if path is None or not os.path.isfile(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            alpha = stored["alpha"]
            solution = LinearSolution(stored["weight"], stored["bias"],
                                      float(alpha) if alpha.ndim == 0 else tuple(alpha.tolist()))
    except (OSError, ValueError, KeyError):
        return None  # unreadable: solved again and rewritten
    _remember(key, solution, None)
    return solution


def _remember(key: str, solution: LinearSolution, cache_dir) -> None:
    store.PROBE_SOLUTIONS[key] = solution
    while len(store.PROBE_SOLUTIONS) > _MAX_SOLUTIONS:
        store.PROBE_SOLUTIONS.popitem(last=False)
    path = _disk_path(cache_dir, key)
    if path is None:
        return
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        partial = f"{path}.{os.getpid()}.tmp.npz"
        np.savez(partial, weight=solution.weight, bias=solution.bias,
                 alpha=np.asarray(solution.alpha, dtype=np.float64))
        os.replace(partial, path)
    except OSError:
        pass  # the in-memory copy still serves this process


def _solve_tasks(recipe, features, targets, sample_weight, groups, device):
    """One probe per task (column of ``targets``) on its labeled rows,
    stacked into one linear head; ``alpha`` lists the tasks' penalties."""
    weights, biases, alphas = [], [], []
    for task, n_classes in enumerate(groups):
        rows = np.flatnonzero(targets[:, task] != UNLABELED_TARGET)
        if n_classes == 1:  # one class: a constant logit predicts it
            weights.append(np.zeros((1, features.shape[1])))
            biases.append(np.zeros(1))
            alphas.append(float("nan"))
            continue
        part = solve(recipe.task, features[torch.as_tensor(rows)], targets[rows, task],
                     sample_weight[rows], n_outputs=n_classes, alpha=recipe.head.probe_alpha,
                     seed=recipe.runtime.seed, device=device)
        weights.append(part.weight)
        biases.append(part.bias)
        alphas.append(part.alpha)
    return LinearSolution(np.vstack(weights), np.concatenate(biases), tuple(alphas))


def probe_head(recipe, run, positions, targets, sample_weight) -> LinearSolution:
    """The exact linear probe of a fit on the trunk's features of
    ``run.base`` (the samples at ``positions``, or all), written into the
    module's head. A probe whose recipe key, features, targets and weights
    equal an earlier one's (in this process, or in the recipe's
    ``cache_dir``) reuses its solution."""
    module, batching = run.module, run.batching
    dataset = run.base
    if positions is not None:
        dataset = _subset(dataset, positions)
        targets, sample_weight = targets[positions], sample_weight[positions]
    if batching.channels_last:
        module.to(memory_format=torch.channels_last)
    with skipping(module.trunk, run.cached.skipped_cut):
        features = trunk_features(module, dataset, batching)
    key = arrays_digest(repr((recipe.probe_key(), run.n_outputs, run.groups, batching.device)),
                  features.numpy(), np.asarray(targets), np.asarray(sample_weight))
    cache_dir = recipe.runtime.cache_dir if recipe.runtime.cache else None
    solution = _remembered(key, cache_dir)
    if solution is None:
        if run.groups is None:
            solution = solve(recipe.task, features, targets, sample_weight,
                             n_outputs=run.n_outputs, alpha=recipe.head.probe_alpha,
                             seed=recipe.runtime.seed, device=batching.device)
        else:
            solution = _solve_tasks(recipe, features, targets, sample_weight, run.groups,
                                    batching.device)
        _remember(key, solution, cache_dir)
    load_into_head(module.head, solution)
    return solution


def _subset(dataset, positions):
    from .data import subset

    return subset(dataset, positions)
