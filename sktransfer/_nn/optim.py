"""Optimizers over parameter groups: one group per trunk stage plus the head,
each with its own learning rate (discriminative rates, fastai's
``set_hyper``), and the L2-SP penalty."""

from __future__ import annotations

import torch

from .._options import OPTIMIZERS
from .backbones import stage_parameters


def stage_lr_factors(n_stages: int, layer_decay: float, backbone_lr_mult: float) -> list:
    """Learning-rate factor of each trunk stage (input side first).

    The head trains at the base rate; the stage next to it at
    ``backbone_lr_mult * layer_decay``, the one below at
    ``backbone_lr_mult * layer_decay**2`` and so on down to the input.
    """
    return [backbone_lr_mult * layer_decay ** (n_stages - i) for i in range(n_stages)]


def stage_group(params, index: int | None, lr: float, weight_decay: float) -> dict:
    """One parameter group; ``base_lr`` is its rate before any schedule and
    ``stage`` its trunk stage (None for the head)."""
    return {"params": list(params), "lr": lr, "base_lr": lr, "weight_decay": weight_decay,
            "stage": index}


def optimizer_groups(module, *, lr: float, weight_decay: float, layer_decay: float,
                     backbone_lr_mult: float, l2sp: bool, extra=None) -> list:
    """Parameter groups: one per trunk stage plus the head, trainable only;
    ``extra`` (a training-only module, such as DANN's domain classifier)
    trains with the head.

    With L2-SP the trunk is pulled toward its source weights instead of
    toward zero, so only the head gets weight decay.
    """
    factors = stage_lr_factors(module.n_stages, layer_decay, backbone_lr_mult)
    groups = []
    for index, factor in enumerate(factors):
        params = [p for p in stage_parameters(module.trunk, module.stages[index])
                  if p.requires_grad]
        if params:
            groups.append(stage_group(params, index, lr * factor, 0.0 if l2sp else weight_decay))
    head = [p for p in module.head.parameters() if p.requires_grad]
    if extra is not None:
        head += list(extra.parameters())
    groups.append(stage_group(head, None, lr, weight_decay))
    return groups


def make_optimizer(params, *, name: str = "adamw", **kwargs) -> torch.optim.Optimizer:
    """Build optimizer ``name`` over the trainable parameters only.

    ``params`` are parameters or parameter groups; frozen ones
    (``requires_grad=False``) are left out so the optimizer never touches them,
    and groups left empty are dropped.
    """
    groups = list(params)
    if groups and isinstance(groups[0], dict):
        groups = [dict(g, params=[p for p in g["params"] if p.requires_grad]) for g in groups]
        groups = [g for g in groups if g["params"]]
    else:
        groups = [p for p in groups if p.requires_grad]
    if name == "adamw":
        return torch.optim.AdamW(groups, **kwargs)
    if name == "adam":
        return torch.optim.Adam(groups, **kwargs)
    if name == "sgd":
        kwargs.setdefault("momentum", 0.9)
        return torch.optim.SGD(groups, **kwargs)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}.")


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
