"""The network sktransfer trains: a transferred trunk plus a new head, with
freezing helpers in the style of Lightning's finetuning callback."""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass

import torch
from torch import nn

from . import backbones as bb
from .weights import fetch_torchvision_file, load_into, read_state_dict, torchvision_weights


@dataclass(frozen=True)
class Preprocessing:
    """Input size and normalisation the trunk's weights expect."""

    image_size: int
    mean: tuple
    std: tuple
    fixed_size: bool = False
    min_size: int = 1


def _is_path(weights) -> bool:
    if isinstance(weights, os.PathLike):
        return True
    return isinstance(weights, str) and (os.path.isfile(weights) or
        os.sep in weights or "/" in weights or weights.lower().endswith(
            (".pth", ".pt", ".bin", ".ckpt", ".safetensors"))
    )


def _reset_parameters(module: nn.Module) -> None:
    for sub in module.modules():
        if hasattr(sub, "reset_parameters"):
            sub.reset_parameters()


def _weights_preprocessing(tv_weights, adapter: bb.BackboneAdapter) -> Preprocessing:
    transforms = tv_weights.transforms()
    return Preprocessing(
        image_size=int(transforms.crop_size[0]),
        mean=tuple(float(m) for m in transforms.mean),
        std=tuple(float(s) for s in transforms.std),
        fixed_size=adapter.fixed_size,
        min_size=adapter.min_size,
    )


def _adapter_preprocessing(adapter: bb.BackboneAdapter) -> Preprocessing:
    return Preprocessing(adapter.default_size, adapter.mean, adapter.std,
                         adapter.fixed_size, adapter.min_size)


def _named_trunk(name: str, weights, progress: bool):
    adapter = bb.get_adapter(name)
    skip = adapter.head_path + "."
    if weights is None or _is_path(weights):
        model = adapter.build(name)
        prep = _adapter_preprocessing(adapter)
        if weights is not None:
            load_into(model, read_state_dict(weights), str(weights), skip_prefix=skip)
        return model, adapter, prep
    tv_weights = torchvision_weights(name, weights)
    prep = _weights_preprocessing(tv_weights, adapter)
    # Resolve the file before building: the weights fix the input size of
    # fixed-size architectures (ViT SWAG weights expect 384 or 512 px).
    path = fetch_torchvision_file(name, tv_weights, progress=progress)
    model = adapter.build(name, input_size=prep.image_size)
    load_into(model, read_state_dict(path), f"{name}.{tv_weights.name}", skip_prefix=skip)
    return model, adapter, prep


def _module_trunk(module: nn.Module, weights):
    model = copy.deepcopy(module)  # the user's module is never modified
    adapter = bb.adapter_for_module(model)
    prep = (_adapter_preprocessing(adapter) if adapter is not None
            else Preprocessing(224, bb.IMAGENET_MEAN, bb.IMAGENET_STD))
    if weights is None:
        _reset_parameters(model)
    elif _is_path(weights):
        skip = adapter.head_path + "." if adapter is not None else None
        load_into(model, read_state_dict(weights), str(weights), skip_prefix=skip)
    elif weights != "DEFAULT":
        raise ValueError(
            f"weights={weights!r} names torchvision weights, which only apply to a "
            "backbone given by name. With an nn.Module backbone use 'DEFAULT' (keep "
            "the module's own parameters), None (re-initialise them) or a path to a "
            "state dict."
        )
    return model, adapter, prep


def build_trunk(backbone, weights, progress: bool = False):
    """Build the trunk: the backbone with its source head removed.

    Returns
    -------
    trunk : nn.Module
    n_features : int or None
        Size of the trunk's output; None when only a forward pass can tell.
    stages : list of list of str
    preprocessing : Preprocessing
    """
    if isinstance(backbone, str):
        model, adapter, prep = _named_trunk(backbone, weights, progress)
    elif isinstance(backbone, nn.Module):
        model, adapter, prep = _module_trunk(backbone, weights)
    else:
        raise TypeError(
            "backbone must be a registry name (see sktransfer.list_backbones()) "
            f"or a torch.nn.Module, got {type(backbone).__name__}."
        )
    if adapter is not None:
        n_features = bb.replace_head(model, adapter.head_path)
        stages = adapter.stages(model)
    else:
        n_features = None
        stages = bb.generic_stages(model)
    if not stages:
        raise ValueError(f"backbone {type(model).__name__} has no parameters to transfer.")
    return model, n_features, stages, prep


@torch.no_grad()
def infer_n_features(trunk: nn.Module, sample: torch.Tensor) -> int:
    """Output size of ``trunk`` found by a forward pass in eval mode."""
    was_training = trunk.training
    trunk.eval()
    try:
        out = trunk(sample)
    finally:
        trunk.train(was_training)
    if not isinstance(out, torch.Tensor):
        raise TypeError(
            f"backbone {type(trunk).__name__} returned {type(out).__name__}; an "
            "nn.Module backbone must return a tensor of features."
        )
    return int(out.flatten(1).shape[1])


def make_head(n_features: int, hidden: tuple, n_outputs: int, dropout: float) -> nn.Sequential:
    """A new head: Linear layers of sizes ``hidden`` with ReLU, then the output."""
    layers: list[nn.Module] = []
    width = n_features
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = size
    if dropout > 0 and not hidden:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(width, n_outputs))
    return nn.Sequential(*layers)


class TransferModule(nn.Module):
    """A transferred trunk followed by a new head.

    ``stages`` lists the trunk's stages (qualified names, input side first).
    BatchNorm layers inside frozen stages stay in eval mode whenever the module
    is put in training mode, so their running statistics stop changing too.
    """

    def __init__(self, trunk: nn.Module, head: nn.Module, stages: list):
        super().__init__()
        self.trunk = trunk
        self.head = head
        self.stages = [list(stage) for stage in stages]
        self.frozen_norms: list[str] = []

    def forward(self, x):
        return self.head(torch.flatten(self.trunk(x), 1))

    def train(self, mode: bool = True):
        super().train(mode)
        for name in self.frozen_norms:
            self.trunk.get_submodule(name).eval()
        return self

    @property
    def n_stages(self) -> int:
        return len(self.stages)


def _norm_layers(module: nn.Module, prefix: str) -> list[str]:
    norm_types = (nn.modules.batchnorm._BatchNorm,)
    return [
        f"{prefix}.{name}" if prefix and name else (prefix or name)
        for name, sub in module.named_modules()
        if isinstance(sub, norm_types)
    ]


def freeze_stages(module: TransferModule, depth) -> None:
    """Freeze the first ``depth`` trunk stages (``"all"``: the whole trunk).

    Frozen parameters get ``requires_grad=False`` (and so stay out of the
    optimizer) and their BatchNorm layers are held in eval mode.
    """
    if depth == "all":
        members = [("", module.trunk)]
    else:
        members = [(name, bb.resolve_member(module.trunk, name))
                   for stage in module.stages[:depth] for name in stage]
    frozen_norms = []
    for name, member in members:
        if isinstance(member, nn.Module):
            for param in member.parameters():
                param.requires_grad_(False)
            frozen_norms += _norm_layers(member, name)
        else:
            member.requires_grad_(False)
    module.frozen_norms = frozen_norms
    module.train(module.training)


def _check_head(head) -> tuple:
    sizes = tuple(head)
    if not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes):
        raise ValueError(
            f"head must be a tuple of positive ints (hidden layer sizes), got {head!r}; "
            "use () for a single linear layer."
        )
    return sizes


def _check_freeze_depth(depth, n_stages: int, backbone) -> None:
    if depth != "all" and depth > n_stages:
        name = backbone if isinstance(backbone, str) else type(backbone).__name__
        raise ValueError(
            f"freeze_depth={depth} but backbone {name!r} has {n_stages} stages; use "
            f"an int from 0 to {n_stages}, or 'all' to train only the new head."
        )


def check_image_size(size: int, prep: Preprocessing, backbone) -> int:
    name = backbone if isinstance(backbone, str) else type(backbone).__name__
    if prep.fixed_size and size != prep.image_size:
        raise ValueError(
            f"backbone {name!r} only accepts {prep.image_size}x{prep.image_size} "
            f"inputs; got image_size={size}. Use image_size=None or {prep.image_size}."
        )
    if size < prep.min_size:
        raise ValueError(
            f"backbone {name!r} needs images of at least {prep.min_size} px; got "
            f"image_size={size}."
        )
    return size


def build_network(backbone, weights, *, head, head_dropout, n_outputs, freeze_depth,
                  image_size, dataset_fn, progress=False):
    """Build trunk + new head with the first ``freeze_depth`` stages frozen.

    ``dataset_fn(preprocessing, size)`` makes the training dataset once the
    trunk's preprocessing is known; its first item gives the trunk's output
    size by a forward pass when the architecture does not tell it.

    Returns
    -------
    module : TransferModule
    dataset : torch Dataset
    preprocessing : Preprocessing
    size : int
        The input size images are resized to.
    """
    hidden = _check_head(head)
    trunk, n_features, stages, prep = build_trunk(backbone, weights, progress)
    _check_freeze_depth(freeze_depth, len(stages), backbone)
    size = check_image_size(image_size or prep.image_size, prep, backbone)
    dataset = dataset_fn(prep, size)
    if n_features is None:
        n_features = infer_n_features(trunk, dataset[0][0][None])
    module = TransferModule(trunk, make_head(n_features, hidden, n_outputs, head_dropout), stages)
    freeze_stages(module, freeze_depth)
    return module, dataset, prep, size
