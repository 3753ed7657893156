"""Fine-tuning strategies as small, named pieces: per-stage learning rates,
gradual unfreezing, learning-rate schedules and L2-SP regularisation.

Each is driven by a plain parameter of the estimators (``layer_decay``,
``unfreeze_at``, ``lr_schedule``, ``regularization`` ...), never by a
callback object the user has to build.
"""

from __future__ import annotations

import math

import torch
from skorch.callbacks import Callback
from torch import nn

from . import backbones as bb

LR_SCHEDULES = ("constant", "cosine", "onecycle")
BN_MODES = ("train", "frozen")


def stage_lr_factors(n_stages: int, layer_decay: float, backbone_lr_mult: float) -> list:
    """Learning-rate factor of each trunk stage (input side first).

    The head trains at the base rate; the stage next to it at
    ``backbone_lr_mult * layer_decay``, the one below at
    ``backbone_lr_mult * layer_decay**2`` and so on down to the input.
    """
    return [backbone_lr_mult * layer_decay ** (n_stages - i) for i in range(n_stages)]


def _stage_params(module, stage_index: int) -> list:
    return bb.stage_parameters(module.trunk, module.stages[stage_index])


def optimizer_groups(module, *, lr: float, weight_decay: float, layer_decay: float,
                     backbone_lr_mult: float, l2sp: bool) -> list:
    """Parameter groups: one per trunk stage plus the head, trainable only.

    Each group carries ``base_lr`` (its rate before any schedule) and
    ``stage`` (None for the head). With L2-SP the trunk is pulled toward its
    source weights instead of toward zero, so only the head gets weight decay.
    """
    factors = stage_lr_factors(module.n_stages, layer_decay, backbone_lr_mult)
    groups = []
    for index, factor in enumerate(factors):
        params = [p for p in _stage_params(module, index) if p.requires_grad]
        if params:
            groups.append(stage_group(params, index, lr * factor, 0.0 if l2sp else weight_decay))
    head = [p for p in module.head.parameters() if p.requires_grad]
    groups.append({"params": head, "lr": lr, "base_lr": lr, "weight_decay": weight_decay,
                   "stage": None})
    return groups


def stage_group(params, index: int, lr: float, weight_decay: float) -> dict:
    return {"params": list(params), "lr": lr, "base_lr": lr, "weight_decay": weight_decay,
            "stage": index}


def l2sp_penalty(module, reference: dict) -> torch.Tensor:
    """Squared distance of the trainable trunk parameters to ``reference``
    (their source values): the L2-SP penalty of Li et al. (ICML 2018), without
    the strength factor. Zero at the source weights."""
    total = None
    for name, param in module.trunk.named_parameters():
        if param.requires_grad and name in reference:
            term = (param - reference[name]).pow(2).sum()
            total = term if total is None else total + term
    if total is None:
        return torch.zeros((), device=next(module.parameters()).device)
    return total


def unfreeze_plan(unfreeze_at, frozen_stages: list) -> list:
    """``[(epoch, [stage indices])]``: which frozen stages are released after
    how many epochs, nearest the head first.

    ``unfreeze_at`` is an int (all frozen stages after that many epochs) or a
    tuple of ints (one stage per entry, the last entry releases the rest).
    """
    if unfreeze_at is None or not frozen_stages:
        return []
    top_down = sorted(frozen_stages, reverse=True)
    if isinstance(unfreeze_at, int):
        return [(int(unfreeze_at), top_down)]
    epochs = [int(e) for e in unfreeze_at]
    plan = [(epoch, [stage]) for epoch, stage in zip(epochs[:-1], top_down)]
    rest = top_down[len(epochs) - 1:]
    if rest:
        plan.append((epochs[-1], rest))
    return plan


class GradualUnfreezing(Callback):
    """Release frozen stages at the start of the epochs of ``plan``.

    Released parameters get ``requires_grad=True`` and join the optimizer as
    a new group at their stage's learning rate (Lightning's
    ``unfreeze_and_add_param_group``); their BatchNorm layers start training
    unless ``bn_mode="frozen"``.
    """

    def __init__(self, plan, lr_factors, lr, weight_decay, bn_mode="train"):
        self.plan = plan
        self.lr_factors = lr_factors
        self.lr = lr
        self.weight_decay = weight_decay
        self.bn_mode = bn_mode

    def on_epoch_begin(self, net, **kwargs):
        epochs_done = len(net.history) - 1
        for epoch, stages in self.plan:
            if epoch == epochs_done:
                for stage in stages:
                    self._release(net, stage)

    def _release(self, net, stage: int):
        module = net.module_
        params = [p for p in _stage_params(module, stage) if not p.requires_grad]
        for param in params:
            param.requires_grad_(True)
        if params:
            lr = self.lr * self.lr_factors[stage]
            net.optimizer_.add_param_group(stage_group(params, stage, lr, self.weight_decay))
        if self.bn_mode == "train":
            prefixes = tuple(module.stages[stage])
            module.frozen_norms = [
                name for name in module.frozen_norms
                if not any(name == p or name.startswith(p + ".") for p in prefixes)
            ]
        module.train(module.training)


def schedule_factor(kind: str, step: int, total: int, warmup: int) -> float:
    """Multiplier of the base learning rate at optimizer step ``step``.

    A linear warm-up over ``warmup`` steps, then "constant" (1), "cosine"
    (cosine decay to 0) or "onecycle" (cosine rise from 1/25 of the rate to
    it over the warm-up, default 30 % of training, then cosine decay to 1e-4
    of it, as in Smith's one-cycle policy).
    """
    total = max(total, 1)
    if kind == "onecycle":
        rise = warmup if warmup > 0 else max(1, int(0.3 * total))
        if step < rise:
            return 1 / 25 + (1 - 1 / 25) * (1 - math.cos(math.pi * step / rise)) / 2
        t = (step - rise) / max(1, total - rise)
        return 1e-4 + (1 - 1e-4) * (1 + math.cos(math.pi * min(t, 1.0))) / 2
    if step < warmup:
        return (step + 1) / (warmup + 1)
    if kind == "cosine":
        t = (step - warmup) / max(1, total - warmup)
        return (1 + math.cos(math.pi * min(t, 1.0))) / 2
    return 1.0


class LRSchedule(Callback):
    """Set every group's rate to ``base_lr * schedule_factor(...)`` before
    each training step; groups added later (unfreezing) follow along."""

    def __init__(self, kind: str, total_steps: int, warmup_steps: int):
        self.kind = kind
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps

    def on_train_begin(self, net, **kwargs):
        self.step_ = 0

    def on_batch_begin(self, net, training=False, **kwargs):
        if not training:
            return
        factor = schedule_factor(self.kind, self.step_, self.total_steps, self.warmup_steps)
        for group in net.optimizer_.param_groups:
            group["lr"] = group.get("base_lr", group["lr"]) * factor
        self.step_ += 1


def freeze_all_norms(module) -> None:
    """``bn_mode="frozen"``: every BatchNorm of the trunk keeps its running
    statistics (eval mode), trained or not."""
    names = [name for name, sub in module.trunk.named_modules()
             if isinstance(sub, nn.modules.batchnorm._BatchNorm)]
    module.frozen_norms = sorted(set(module.frozen_norms) | set(names))
    module.train(module.training)
