"""The skorch callbacks a fit is made of: stop on a non-finite loss, the
learning-rate schedule, gradual unfreezing and the learning-rate range test.

Each is driven by a plain parameter of the estimators (``lr_schedule``,
``unfreeze_at``, ``lr="auto"`` ...), never by a callback object the user has
to build.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from skorch.callbacks import Callback

from .._deadline import check_deadline
from .._exceptions import TrainingDivergedError
from . import distributed
from .freezing import unfreeze_and_add_param_group


class StopTraining(Exception):
    """Raised by a callback to end the fit loop early, as a finished fit
    (the net's ``partial_fit`` catches it)."""


class StopOnNonFiniteLoss(Callback):
    """Raise as soon as a training batch gives a NaN or infinite loss."""

    def on_batch_end(self, net, batch=None, training=None, loss=None, **kwargs):
        if training and loss is not None and not bool(torch.isfinite(loss).all()):
            epoch = len(net.history)
            raise TrainingDivergedError(
                f"training diverged: the loss became {float(loss.detach())} in epoch {epoch}. "
                "Lower `lr`, or freeze more of the backbone (`freeze_depth`)."
            )


class StopAtDeadline(Callback):
    """End the fit when the time budget's deadline passes (checked after each
    training batch): as a finished fit when the deadline says ``finish``,
    else by raising ``BudgetExhausted``."""

    def __init__(self, limit):
        self.limit = limit

    def on_batch_end(self, net, training=None, **kwargs):
        if training and self.limit.passed():
            if self.limit.finish:
                raise StopTraining
            check_deadline(f"epoch {len(net.history)} of training")


def schedule_factor(shape: str, step: int, total: int, warmup: int) -> float:
    """Multiplier of the base learning rate at optimizer step ``step``.

    A linear warm-up over ``warmup`` steps, then "constant" (1), "cosine"
    (cosine decay to 0) or "onecycle" (cosine rise from 1/25 of the rate to
    it over the warm-up, default 30 % of training, then cosine decay to 1e-4
    of it, as in Smith's one-cycle policy).
    """
    total = max(total, 1)
    if shape == "onecycle":
        rise = warmup if warmup > 0 else max(1, int(0.3 * total))
        if step < rise:
            return 1 / 25 + (1 - 1 / 25) * (1 - math.cos(math.pi * step / rise)) / 2
        t = (step - rise) / max(1, total - rise)
        return 1e-4 + (1 - 1e-4) * (1 + math.cos(math.pi * min(t, 1.0))) / 2
    if step < warmup:
        return (step + 1) / (warmup + 1)
    if shape == "cosine":
        t = (step - warmup) / max(1, total - warmup)
        return (1 + math.cos(math.pi * min(t, 1.0))) / 2
    return 1.0


def _set_rates(net, factor: float) -> None:
    """Every group's rate to ``base_lr * factor``."""
    for group in net.optimizer_.param_groups:
        group["lr"] = group.get("base_lr", group["lr"]) * factor


class LRSchedule(Callback):
    """Set every group's rate to ``base_lr * schedule_factor(...)`` before
    each training step; groups added later (unfreezing) follow along.

    ``cool_down(n_steps)`` (called by ``Convergence``) then takes the rate
    linearly to zero over the next ``n_steps`` steps, so a fit that stops at
    convergence ends annealed, whatever the schedule.
    """

    def __init__(self, shape: str, total_steps: int, warmup_steps: int):
        self.shape = shape
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps

    def on_train_begin(self, net, **kwargs):
        self.step_ = 0
        self.cooldown_ = None  # (first step, number of steps)

    def cool_down(self, n_steps: int) -> None:
        self.cooldown_ = (self.step_, max(1, int(n_steps)))

    def on_batch_begin(self, net, training=False, **kwargs):
        if not training:
            return
        factor = schedule_factor(self.shape, self.step_, self.total_steps, self.warmup_steps)
        if self.cooldown_ is not None:
            start, length = self.cooldown_
            factor *= max(0.0, 1.0 - (self.step_ - start) / length)
        _set_rates(net, factor)
        self.step_ += 1


class GradualUnfreezing(Callback):
    """Release frozen stages at the start of the epochs of ``releases``
    (``[(epoch, [stage indices])]``).

    Released parameters get ``requires_grad=True`` and join the optimizer as
    a new group at their stage's learning rate (Lightning's
    ``unfreeze_and_add_param_group``); their BatchNorm layers start training
    unless ``bn_mode="frozen"``.
    """

    def __init__(self, releases, lr_factors, lr, weight_decay, bn_mode="train"):
        self.releases = releases
        self.lr_factors = lr_factors
        self.lr = lr
        self.weight_decay = weight_decay
        self.bn_mode = bn_mode

    def on_epoch_begin(self, net, **kwargs):
        epochs_done = len(net.history) - 1
        for epoch, stages in self.releases:
            if epoch == epochs_done:
                for stage in stages:
                    unfreeze_and_add_param_group(
                        net.module_, net.optimizer_, stage, lr=self.lr * self.lr_factors[stage],
                        weight_decay=self.weight_decay, release_norms=self.bn_mode == "train")


class LRRangeTest(Callback):
    """``lr="auto"``: a learning-rate range test (Smith 2017; fastai's
    ``lr_find``) run by the net's own training step.

    The rate grows geometrically from ``start`` to ``end`` over ``num_steps``
    steps (each group at ``base_lr`` times it); the loss is smoothed
    exponentially and the test stops once it exceeds 4x its minimum, or the
    loss is not finite. ``suggestion()``: the rate at the minimum smoothed
    loss divided by 10 (well inside the region where the loss still falls),
    clipped to [start, end].
    """

    def __init__(self, start: float = 1e-7, end: float = 1.0, num_steps: int = 100):
        self.start = start
        self.end = end
        self.num_steps = num_steps

    def on_train_begin(self, net, **kwargs):
        self.lrs_, self.losses_ = [], []
        self.step_, self.average_, self.best_ = 0, 0.0, math.inf

    def _rate(self) -> float:
        ratio = (self.end / self.start) ** (1.0 / max(1, self.num_steps - 1))
        return self.start * ratio ** self.step_

    def on_batch_begin(self, net, training=False, **kwargs):
        if training:
            _set_rates(net, self._rate())

    def on_batch_end(self, net, training=False, loss=None, **kwargs):
        if not training:
            return
        value = float(loss.detach())
        if not math.isfinite(value):
            raise StopTraining
        self.average_ = 0.98 * self.average_ + 0.02 * value
        current = self.average_ / (1 - 0.98 ** (self.step_ + 1))
        self.lrs_.append(self._rate())
        self.losses_.append(current)
        self.step_ += 1
        if current > 4 * self.best_ or self.step_ >= self.num_steps:
            raise StopTraining
        self.best_ = min(self.best_, current)

    def suggestion(self) -> float:
        if not self.losses_:
            raise ValueError(
                "the learning-rate range test diverged at once; pass a numeric lr."
            )
        chosen = self.lrs_[int(np.argmin(self.losses_))] / 10
        return float(min(max(chosen, self.start), self.end))


class Convergence(Callback):
    """Stop at convergence, as scikit-learn's MLP does, after a cool-down.

    Without a validation set the rule watches the training loss: it fires
    when the loss has not fallen below its best by ``tol`` for more than
    ``n_iter_no_change`` epochs. With one (early stopping) it watches the
    validation score (accuracy for classifiers, R² for regressors, weighted
    by the sample weights): it fires when the score has not risen above its
    best by ``tol`` for more than ``n_iter_no_change`` epochs, and the
    weights of the best-scoring epoch are restored at the end.

    A stochastic fit plateaus at a noise floor set by its learning rate, so
    when the rule fires the rate is first taken to zero over
    ``n_iter_no_change // 2`` more epochs, at least one (``schedule``'s
    ``cool_down``), then the fit stops (at once without a schedule). ``converged_`` tells
    whether the rule fired (False: the epoch budget ended the fit).
    """

    def __init__(self, stopping, task: str, validate: bool, steps_per_epoch: int = 1,
                 groups=None, schedule: LRSchedule | None = None):
        self.tol = stopping.tol
        self.n_iter_no_change = stopping.n_iter_no_change
        self.task = task
        self.validate = validate
        self.steps_per_epoch = steps_per_epoch
        self.groups = groups  # a multi-task classifier's numbers of classes
        self.schedule = schedule  # cools the rate down before the fit stops

    def on_train_begin(self, net, **kwargs):
        self.converged_ = False
        self.stop_after_ = None
        self.count_ = 0
        self.best_ = -math.inf if self.validate else math.inf
        self.best_epoch_ = None
        self.best_weights_ = None

    def on_epoch_begin(self, net, **kwargs):
        self.batches_ = []

    def on_batch_end(self, net, batch=None, training=False, y_pred=None, **kwargs):
        if self.validate and not training:
            _, (y, weight) = batch
            self.batches_.append((y_pred.detach().float().cpu(), y, weight))

    def _score(self) -> float:
        y_pred = torch.cat([b[0] for b in self.batches_])
        y = torch.cat([b[1] for b in self.batches_]).to(torch.float64)
        weight = torch.cat([b[2] for b in self.batches_]).to(torch.float64)
        if self.task == "classification" and self.groups is not None:
            return self._task_accuracy(y_pred, y, weight)
        if self.task == "classification":
            correct = (y_pred.argmax(dim=1).to(torch.float64) == y).to(torch.float64)
            return float((correct * weight).sum() / weight.sum())
        y_pred = y_pred.to(torch.float64).reshape(y.shape)
        # a NaN target is missing (multi-task rows): weight 0 for that entry
        known = ~torch.isnan(y)
        w = weight.reshape(-1, *([1] * (y.dim() - 1))) * known
        y = torch.where(known, y, y_pred)
        mean = (y * w).sum(dim=0) / w.sum(dim=0).clamp_min(1e-300)
        residual = ((y - y_pred) ** 2 * w).sum(dim=0)
        total = ((y - mean) ** 2 * w).sum(dim=0)
        r2 = torch.where(total > 0, 1 - residual / total.clamp_min(1e-300),
                         torch.zeros_like(total))
        return float(r2.mean())

    def _task_accuracy(self, y_pred, y, weight) -> float:
        """Mean over tasks of each task's weighted accuracy on its labeled rows."""
        scores = []
        for task, logits in enumerate(torch.split(y_pred, list(self.groups), dim=1)):
            known = (y[:, task] >= 0).to(torch.float64) * weight
            correct = (logits.argmax(dim=1).to(torch.float64) == y[:, task]).to(torch.float64)
            if known.sum() > 0:
                scores.append(float((correct * known).sum() / known.sum()))
        return float(np.mean(scores)) if scores else 0.0

    def _improved(self, net) -> bool:
        """Whether this epoch improved on the best by ``tol`` (and track the best)."""
        if self.validate:
            # rank 0's score in a data-parallel fit: every process stops alike
            score = distributed.agree(self._score())
            net.history.record("valid_score", score)
            improved = score >= self.best_ + self.tol
            if score > self.best_:
                self.best_, self.best_epoch_ = score, len(net.history)
                self.best_weights_ = copy.deepcopy(net.module_.state_dict())
            return improved
        loss = distributed.agree(net.history[-1, "train_loss"])
        improved = loss <= self.best_ - self.tol
        self.best_ = min(self.best_, loss)
        return improved

    def on_epoch_end(self, net, **kwargs):
        self.count_ = 0 if self._improved(net) else self.count_ + 1
        epoch = len(net.history)
        if self.stop_after_ is None and self.count_ > self.n_iter_no_change:
            self.converged_ = True
            if self.schedule is None:
                raise StopTraining
            cooldown = max(1, self.n_iter_no_change // 2)
            self.schedule.cool_down(cooldown * self.steps_per_epoch)
            self.stop_after_ = epoch + cooldown
        if self.stop_after_ is not None and epoch >= self.stop_after_:
            raise StopTraining

    def on_train_end(self, net, **kwargs):
        if self.best_weights_ is not None:
            net.module_.load_state_dict(self.best_weights_)
        self.best_weights_ = None  # a copy of the weights; pickles stay small
