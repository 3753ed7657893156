"""The training losses, weighted per sample: cross-entropy (one task or
several), the regression losses, and knowledge distillation's mix of a
teacher's soft targets with the hard labels."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .._options import LOSSES, UNLABELED_TARGET

_REGRESSION_LOSSES = {
    "squared_error": nn.MSELoss,
    "huber": nn.HuberLoss,
    "absolute_error": nn.L1Loss,
}


class WeightedLoss(nn.Module):
    """Per-sample loss averaged with sample weights.

    Targets arrive as ``(y, sample_weight)``; the weights are normalised to
    mean 1 over the training set, so unit weights give the plain mean loss.
    ``loss`` is "cross_entropy" (classification) or one of ``LOSSES``;
    ``groups`` (the tasks' numbers of classes) makes it a multi-task
    classification loss over ``y`` of one column per task. ``distillation``
    (a ``Recipe``'s ``DistillationGroup``) makes it knowledge distillation's
    loss over ``y`` of one row per sample: the hard label's index (-1 for
    none) followed by the teacher's soft targets (``distillation_loss``).
    """

    def __init__(self, loss: str = "cross_entropy", groups=None, distillation=None):
        super().__init__()
        self.name = loss
        self.groups = None if groups is None else tuple(groups)
        self.distillation = distillation
        if loss == "cross_entropy":
            self.loss = nn.CrossEntropyLoss(reduction="none", ignore_index=UNLABELED_TARGET)
        elif loss in _REGRESSION_LOSSES:
            self.loss = _REGRESSION_LOSSES[loss](reduction="none")
        else:
            raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}.")

    def forward(self, y_pred, target):
        y_true, weight = target
        if self.distillation is not None:
            per_sample = distillation_loss(y_pred, y_true, self.distillation.temperature,
                                           self.distillation.alpha)
        elif self.name == "cross_entropy" and self.groups is not None:
            per_sample = self._tasks(y_pred, y_true.long())
        elif self.name == "cross_entropy":
            per_sample = self.loss(y_pred, y_true.long())
        else:
            per_sample = self._regression(y_pred, y_true.to(y_pred.dtype))
        return (per_sample * weight.to(per_sample.dtype)).mean()

    def _tasks(self, y_pred, y_true):
        """Multi-task classification: the tasks' cross-entropies summed, each
        over its own slice of the outputs; a task labeled -1 adds nothing."""
        slices = torch.split(y_pred, list(self.groups), dim=1)
        return sum(self.loss(logits, y_true[:, task]) for task, logits in enumerate(slices))

    def _regression(self, y_pred, y_true):
        """Mean loss over each sample's targets; a NaN target is missing (a
        task without a label for that sample) and left out."""
        known = ~torch.isnan(y_true)
        if bool(known.all()):
            return self.loss(y_pred, y_true).mean(dim=1)
        entries = self.loss(y_pred, torch.where(known, y_true, y_pred.detach())) * known
        return entries.sum(dim=1) / known.sum(dim=1).clamp_min(1)


def distillation_loss(logits: torch.Tensor, targets: torch.Tensor, temperature: float,
                      alpha: float) -> torch.Tensor:
    """Knowledge distillation's loss per sample (Hinton et al., 2015):
    ``alpha * T**2 * KL(q || softmax(logits / T)) + (1 - alpha) * CE(logits, label)``.

    ``targets`` holds one row per sample: the hard label's index (-1 when the
    sample has none: its loss is the soft term alone) followed by ``q``, the
    teacher's probabilities at temperature ``T``. The ``T**2`` keeps the soft
    term's gradients at the same scale whatever the temperature: for a
    large ``T`` its gradient tends to ``(logits - teacher logits) / k``
    (zero-mean logits, ``k`` classes), as the paper derives.
    """
    if logits.dtype != torch.float64:  # half precision: the loss in float32
        logits = logits.float()
    targets = targets.to(logits.device, logits.dtype)
    labels, soft = targets[:, 0].long(), targets[:, 1:]
    student = torch.log_softmax(logits / temperature, dim=1)
    kl = (torch.xlogy(soft, soft) - soft * student).sum(dim=1)
    hard = F.cross_entropy(logits, labels, reduction="none", ignore_index=UNLABELED_TARGET)
    return alpha * temperature ** 2 * kl + (1.0 - alpha) * hard
