"""Freezing as a small vocabulary of verbs on a ``TransferModule`` (the model
is Lightning's ``BaseFinetuning``: freeze, make trainable, add the released
parameters to the optimizer; BatchNorm handled on purpose).

A frozen stage has ``requires_grad=False`` parameters and is *held*: kept
in eval mode whenever the module trains (Keras' ``base_model(x,
training=False)``), so its BatchNorm running statistics stop changing too,
its dropout drops nothing, and it computes the same function in every epoch
(which is also what lets its activations be cached). The module keeps the
names of the held modules in ``frozen_norms`` and applies them in its
``train``; ``bn_mode="frozen"`` holds every BatchNorm layer as well.
"""

from __future__ import annotations

from torch import nn

from .backbones import resolve_member, stage_parameters
from .optim import stage_group


def is_batchnorm(module: nn.Module) -> bool:
    """BatchNorm of any dimension (the layers whose statistics are held)."""
    return isinstance(module, nn.modules.batchnorm._BatchNorm)


def norm_names(module: nn.Module, prefix: str = "") -> list[str]:
    """Qualified names of the BatchNorm layers inside ``module``."""
    return [f"{prefix}.{name}" if prefix and name else (prefix or name)
            for name, sub in module.named_modules() if is_batchnorm(sub)]


def frozen_stages(freeze_depth, n_stages: int, backbone_name: str) -> list[int]:
    """Indices of the stages ``freeze_depth`` freezes ("all": every one)."""
    if freeze_depth == "all":
        return list(range(n_stages))
    if freeze_depth > n_stages:
        raise ValueError(
            f"freeze_depth={freeze_depth} but backbone {backbone_name!r} has {n_stages} "
            f"stages; use an int from 0 to {n_stages}, or 'all' to train only the new head."
        )
    return list(range(int(freeze_depth)))


def _members(module, stages: list[int]) -> list[tuple[str, object]]:
    if stages and len(stages) == module.n_stages:
        return [("", module.trunk)]  # the whole trunk, parameters outside stages too
    return [(name, resolve_member(module.trunk, name))
            for index in stages for name in module.stages[index]]


def _stage_modules(module, stage: int) -> list[str]:
    """Names of the modules (not bare parameters) that make up ``stage``."""
    return [name for name in module.stages[stage]
            if isinstance(resolve_member(module.trunk, name), nn.Module)]


def freeze(module, stages: list[int]) -> None:
    """Freeze the trunk ``stages`` (indices) and hold them in eval mode;
    every other stage becomes trainable and trains in training mode."""
    for _, member in _members(module, stages):
        if isinstance(member, nn.Module):
            for param in member.parameters():
                param.requires_grad_(False)
        else:
            member.requires_grad_(False)
    module.frozen_norms = [name for index in stages for name in _stage_modules(module, index)]
    module.train(module.training)


def hold_all_norms(module) -> None:
    """``bn_mode="frozen"``: every BatchNorm of the trunk keeps its running
    statistics (eval mode), trained or not."""
    module.frozen_norms = sorted(set(module.frozen_norms) | set(norm_names(module.trunk)))
    module.train(module.training)


def trainable_norms(module) -> list[str]:
    """Names of the trunk's BatchNorm layers with trainable parameters."""
    return [name for name in norm_names(module.trunk)
            if any(p.requires_grad for p in module.trunk.get_submodule(name).parameters())]


def freeze_norms(module) -> None:
    """Freeze the affine parameters of every BatchNorm layer of the trunk
    (a private fit's ``bn_mode="frozen"``: per-sample gradients are not
    computed for layers that keep statistics)."""
    for name in norm_names(module.trunk):
        for param in module.trunk.get_submodule(name).parameters():
            param.requires_grad_(False)


def _release_held(module, stage: int, *, norms: bool) -> None:
    """Let ``stage`` run in training mode again; unless ``norms``, its
    BatchNorm layers stay held."""
    prefixes = tuple(module.stages[stage])
    kept = [name for name in module.frozen_norms
            if not any(name == p or name.startswith(p + ".") for p in prefixes)]
    if not norms:
        kept += [bn for name in _stage_modules(module, stage)
                 for bn in norm_names(module.trunk.get_submodule(name), name)]
    module.frozen_norms = kept


def make_trainable(module, stage: int, *, release_norms: bool) -> list:
    """Set ``requires_grad`` on the frozen parameters of ``stage`` and return
    them; the stage runs in training mode again, its BatchNorm layers too
    only with ``release_norms``."""
    params = [p for p in stage_parameters(module.trunk, module.stages[stage])
              if not p.requires_grad]
    for param in params:
        param.requires_grad_(True)
    _release_held(module, stage, norms=release_norms)
    module.train(module.training)
    return params


def unfreeze_and_add_param_group(module, optimizer, stage: int, *, lr: float,
                                 weight_decay: float, release_norms: bool) -> None:
    """Release ``stage`` and give its parameters to ``optimizer`` as a new
    group at rate ``lr``."""
    params = make_trainable(module, stage, release_norms=release_norms)
    if params:
        optimizer.add_param_group(stage_group(params, stage, lr, weight_decay))


def release_schedule(unfreeze_at, frozen: list[int]) -> list:
    """``[(epoch, [stage indices])]``: which frozen stages are released after
    how many epochs, nearest the head first.

    ``unfreeze_at`` is an int (all frozen stages after that many epochs) or a
    tuple of ints (one stage per entry, the last entry releases the rest).
    """
    if unfreeze_at is None or not frozen:
        return []
    top_down = sorted(frozen, reverse=True)
    if isinstance(unfreeze_at, int):
        return [(int(unfreeze_at), top_down)]
    epochs = [int(e) for e in unfreeze_at]
    releases = [(epoch, [stage]) for epoch, stage in zip(epochs[:-1], top_down)]
    rest = top_down[len(epochs) - 1:]
    if rest:
        releases.append((epochs[-1], rest))
    return releases
