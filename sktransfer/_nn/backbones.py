"""Backbone registry: one small adapter per architecture family.

Every adapter answers the same questions (as timm's model configs do): how to
build the network, where its classification head is, how its trunk splits into
stages for ``freeze_depth``, and which input size / normalisation its weights
expect. Adding an architecture family means adding one adapter here
(``register_backbone`` adds one from outside, e.g. a test's tiny network).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn
from torchvision import models as tvm

from .._text import TEXT_BACKBONES

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Stages = list  # list[list[str]]: qualified module / parameter names per stage


@dataclass(frozen=True)
class Preprocessing:
    """Input size and normalisation a trunk's weights expect."""

    image_size: int
    mean: tuple
    std: tuple
    fixed_size: bool = False
    min_size: int = 1


def _index_stages(prefix: str, bounds: list[tuple[int, int]]) -> Stages:
    """Stages made of consecutive children ``prefix.i`` of a Sequential."""
    return [[f"{prefix}.{i}" for i in range(start, stop)] for start, stop in bounds]


def _resnet_stages(model: nn.Module) -> Stages:
    # The stem's ReLU and max-pool belong to the first stage, so that every
    # module between the input and a stage boundary is inside a stage (the
    # activation cache skips exactly the frozen stages).
    return [["conv1", "bn1", "relu", "maxpool"], ["layer1"], ["layer2"], ["layer3"],
            ["layer4"]]


def _mobilenet_v2_stages(model: nn.Module) -> Stages:
    # Stage boundaries sit at the stride-2 blocks (features 2, 4, 7, 14).
    return _index_stages("features", [(0, 2), (2, 4), (4, 7), (7, 14), (14, 19)])


def _mobilenet_v3_stages(model: nn.Module) -> Stages:
    n = len(model.features)
    if n == 17:  # large: stride-2 blocks at 2, 4, 7, 13
        bounds = [(0, 2), (2, 4), (4, 7), (7, 13), (13, 17)]
    else:  # small (13 blocks): stride-2 blocks at 1, 2, 4, 9
        bounds = [(0, 1), (1, 2), (2, 4), (4, 9), (9, n)]
    stages = _index_stages("features", bounds)
    stages[-1].append("classifier.0")  # the pre-logits Linear belongs to the trunk
    return stages


def _efficientnet_stages(model: nn.Module) -> Stages:
    n = len(model.features)
    if n == 9:  # b0..b7: stride-2 stages at 2, 3, 4, 6
        bounds = [(0, 2), (2, 3), (3, 4), (4, 6), (6, 9)]
    else:  # v2 (8 blocks): stride-2 stages at 2, 3, 4, 6
        bounds = [(0, 2), (2, 3), (3, 4), (4, 6), (6, n)]
    return _index_stages("features", bounds)


def _convnext_stages(model: nn.Module) -> Stages:
    stages = _index_stages("features", [(0, 2), (2, 4), (4, 6), (6, 8)])
    stages[-1].append("classifier.0")  # final LayerNorm2d
    return stages


def _vit_stages(model: nn.Module) -> Stages:
    n_layers = len(model.encoder.layers)
    chunks = 4
    bounds = [(i * n_layers // chunks, (i + 1) * n_layers // chunks) for i in range(chunks)]
    layer_names = [f"encoder.layers.{name}" for name, _ in model.encoder.layers.named_children()]
    stages = [["conv_proj", "class_token", "encoder.pos_embedding"]]
    stages += [layer_names[start:stop] for start, stop in bounds]
    stages[-1].append("encoder.ln")
    return stages


@dataclass(frozen=True)
class BackboneAdapter:
    """What sktransfer needs to know about one architecture family.

    Attributes
    ----------
    family : str
        Name of the family (e.g. ``"resnet"``).
    names : tuple of str
        Registry names (torchvision constructor names) served by this adapter.
    model_class : type
        Class of the networks of this family, used to recognise a user's module.
    head_path : str
        Dotted path of the final classification ``nn.Linear`` that is replaced.
    stages : callable
        ``stages(model) -> list[list[str]]``: qualified names of the modules and
        parameters of each stage, input side first.
    default_size : int
        Input size used when neither ``image_size`` nor the weights give one.
    min_size : int
        Smallest input size ``image_size`` may take: for the convolutional
        families, their total stride (below it the last stage sees only
        padding, or the network fails).
    fixed_size : bool
        True when the architecture accepts only its own input size (ViT).
    mean, std : tuple of float
        Normalisation of inputs when the weights do not give one.
    builder : callable or None
        ``builder(name, input_size) -> nn.Module`` for networks outside
        torchvision; None builds torchvision's model ``name``.
    """

    family: str
    names: tuple
    model_class: type
    head_path: str
    stages: Callable[[nn.Module], Stages]
    default_size: int = 224
    min_size: int = 1
    fixed_size: bool = False
    mean: tuple = field(default=IMAGENET_MEAN)
    std: tuple = field(default=IMAGENET_STD)
    builder: Callable[[str, int | None], nn.Module] | None = None

    def build(self, name: str, input_size: int | None = None) -> nn.Module:
        """Build the network ``name`` with random parameters.

        ``input_size`` matters only for fixed-size architectures (ViT), whose
        position embeddings depend on it; others accept any size.
        """
        if self.builder is not None:
            return self.builder(name, input_size)
        if self.fixed_size and input_size is not None:
            return tvm.get_model(name, weights=None, image_size=input_size)
        return tvm.get_model(name, weights=None)


# The convolutional families below halve the image five times (ConvNeXt: a
# 4x4 stem, then three 2x2 steps), so 32 px is where the last stage sees one
# real pixel. Padding lets ResNet, MobileNet and EfficientNet run on a single
# pixel, but below 32 px their last stages see only padding; ConvNeXt's
# unpadded strided convolutions fail outright below 32 px.
TOTAL_STRIDE = 32

_ADAPTERS = [
    BackboneAdapter(
        "resnet",
        ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
         "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d",
         "wide_resnet50_2", "wide_resnet101_2"),
        tvm.ResNet, "fc", _resnet_stages, min_size=TOTAL_STRIDE,
    ),
    BackboneAdapter(
        "mobilenet_v2", ("mobilenet_v2",), tvm.MobileNetV2, "classifier.1",
        _mobilenet_v2_stages, min_size=TOTAL_STRIDE,
    ),
    BackboneAdapter(
        "mobilenet_v3", ("mobilenet_v3_large", "mobilenet_v3_small"),
        tvm.MobileNetV3, "classifier.3", _mobilenet_v3_stages, min_size=TOTAL_STRIDE,
    ),
    BackboneAdapter(
        "efficientnet",
        tuple(f"efficientnet_b{i}" for i in range(8))
        + ("efficientnet_v2_s", "efficientnet_v2_m", "efficientnet_v2_l"),
        tvm.EfficientNet, "classifier.1", _efficientnet_stages, min_size=TOTAL_STRIDE,
    ),
    BackboneAdapter(
        "convnext",
        ("convnext_tiny", "convnext_small", "convnext_base", "convnext_large"),
        tvm.ConvNeXt, "classifier.2", _convnext_stages, min_size=TOTAL_STRIDE,
    ),
    BackboneAdapter(
        "vit", ("vit_b_16", "vit_b_32", "vit_l_16", "vit_l_32"),
        tvm.VisionTransformer, "heads.head", _vit_stages, fixed_size=True,
    ),
]

REGISTRY = {name: adapter for adapter in _ADAPTERS for name in adapter.names}


def register_backbone(adapter: BackboneAdapter) -> None:
    """Add an architecture family to the registry (its names must be new)."""
    taken = [name for name in adapter.names if name in REGISTRY]
    if taken:
        raise ValueError(f"backbone names already registered: {', '.join(taken)}.")
    _ADAPTERS.append(adapter)
    REGISTRY.update(dict.fromkeys(adapter.names, adapter))


def unregister_backbone(adapter: BackboneAdapter) -> None:
    """Remove a family added with ``register_backbone``."""
    _ADAPTERS.remove(adapter)
    for name in adapter.names:
        REGISTRY.pop(name, None)


def list_backbones() -> list[str]:
    """Names accepted by the ``backbone`` parameter.

    Returns
    -------
    names : list of str
        Registry names of image backbones and text encoders, sorted (for
        text, a local Hugging Face model directory or a hub id "owner/name"
        is accepted too).
    """
    return sorted({*REGISTRY, *TEXT_BACKBONES})


def get_adapter(name: str) -> BackboneAdapter:
    """Adapter for a registry name; unknown names list close matches."""
    try:
        return REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, REGISTRY, n=5, cutoff=0.5)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"Unknown backbone {name!r}.{hint} Known backbones: "
            f"{', '.join(list_backbones())}; or pass an nn.Module (for text: a Hugging "
            "Face model directory or hub id 'owner/name')."
        ) from None


def adapter_for_module(module: nn.Module) -> BackboneAdapter | None:
    """Adapter of the family ``module`` belongs to, or None for other modules."""
    for adapter in _ADAPTERS:
        if isinstance(module, adapter.model_class):
            return adapter
    return None


def generic_stages(module: nn.Module) -> Stages:
    """Stages of a module outside the registry: its top-level children that
    own parameters, plus its own direct parameters as a first stage."""
    stages = []
    own = [name for name, _ in module.named_parameters(recurse=False)]
    if own:
        stages.append(own)
    for name, child in module.named_children():
        if any(True for _ in child.parameters()):
            stages.append([name])
    return stages


def resolve_member(module: nn.Module, name: str):
    """A stage member: a submodule or a parameter of ``module``."""
    try:
        return module.get_submodule(name)
    except AttributeError:
        return module.get_parameter(name)


def stage_parameters(module: nn.Module, stage: list) -> list[torch.nn.Parameter]:
    params = []
    for name in stage:
        member = resolve_member(module, name)
        if isinstance(member, nn.Module):
            params.extend(member.parameters())
        else:
            params.append(member)
    return params


def replace_head(model: nn.Module, head_path: str) -> int:
    """Replace the classification Linear at ``head_path`` by ``nn.Identity``.

    Returns the number of features that fed the old head.
    """
    parent_path, _, attr = head_path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    old = getattr(parent, attr)
    if not isinstance(old, nn.Linear):
        raise TypeError(
            f"expected an nn.Linear head at {head_path!r} of "
            f"{type(model).__name__}, found {type(old).__name__}"
        )
    setattr(parent, attr, nn.Identity())
    return old.in_features
