"""The network sktransfer trains: a trunk built from any backbone source (a
registry name, an ``nn.Module``, the MLP, or a fitted estimator's exported
trunk) with its weights, plus a new head."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from .._text import is_text_backbone
from . import backbones as bb
from .backbones import Preprocessing
from .runtime import fork_rng
from .tabular import build_mlp, mlp_stages
from .weights import (
    fetch_torchvision_file,
    is_weights_path,
    load_into,
    read_state_dict,
    read_weights_file,
    torchvision_weights,
)


@dataclass
class Trunk:
    """A built trunk (the backbone without its source head).

    ``config`` is a JSON-able description from which the architecture can be
    rebuilt (it goes into files written by ``save_weights``). ``head_state``,
    ``head_config`` and ``head_classes`` describe the source's head (from an
    sktransfer weights file or a fitted estimator), which ``source_head``
    may keep. A fitted estimator exports its trunk as one of these (with a
    ``description``), which is then accepted as a backbone. ``weights``
    names the weights loaded: torchvision's weights name, a file's path,
    "DEFAULT" for a module's or a source's own parameters, None for a random
    initialisation.
    """

    module: nn.Module
    n_features: int | None
    stages: list
    preprocessing: Preprocessing | None
    config: dict
    head_state: dict | None = None
    head_config: dict | None = None
    head_classes: list | None = None
    description: str = ""
    weights: str | None = None


@dataclass(frozen=True)
class NewHead:
    """The new head: hidden layer sizes, dropout, outputs, what happens to
    a head the source brings (``source_head`` for the target ``classes``),
    and the width of a domain-adaptation bottleneck in front of it (None:
    none)."""

    hidden: tuple
    dropout: float
    n_outputs: int
    source_head: str = "auto"
    classes: list | None = None
    bottleneck: int | None = None


def _apply_weights(model: nn.Module, weights, config: dict, skip_prefix, backbone_kind: str):
    """``weights`` for a backbone that already has parameters: None
    re-initialises them, "DEFAULT" keeps them, a path loads a file (returned)."""
    if weights is None:
        _reset_parameters(model)
    elif is_weights_path(weights):
        return _load_file(model, weights, config, skip_prefix)
    elif weights != "DEFAULT":
        raise ValueError(
            f"weights={weights!r} names torchvision weights, which only apply to a "
            f"backbone given by name. With {backbone_kind} use 'DEFAULT' (keep its "
            "parameters), None (re-initialise them) or a path to a weights file."
        )
    return None


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


def _check_file_config(file_config: dict | None, expected: dict, path) -> None:
    """An sktransfer file must describe the same architecture as the backbone."""
    if file_config is None:
        return
    trunk_config = file_config.get("trunk", {})
    diffs = [f"{key}: file {trunk_config.get(key)!r} vs backbone {value!r}"
             for key, value in expected.items()
             if key != "preprocessing" and trunk_config.get(key) != value]
    if diffs:
        raise ValueError(
            f"weights file {str(path)!r} was saved from a different architecture "
            f"({'; '.join(diffs)}). Use a backbone with the same settings."
        )


def _load_file(model: nn.Module, path, expected_config: dict, skip_prefix: str | None):
    """Load a plain or sktransfer weights file into ``model``; return the file."""
    weights = read_weights_file(path)
    _check_file_config(weights.config, expected_config, path)
    load_into(model, weights.trunk_state, str(path), skip_prefix=skip_prefix)
    return weights


def _file_preprocessing(weights, default: Preprocessing) -> Preprocessing:
    prep = (weights.config or {}).get("preprocessing")
    if not prep:
        return default
    return Preprocessing(int(prep["image_size"]), tuple(prep["mean"]), tuple(prep["std"]),
                         default.fixed_size, default.min_size)


def _with_file_head(trunk: "Trunk", weights) -> "Trunk":
    if weights is not None and weights.config is not None:
        trunk.head_state = weights.head_state
        trunk.head_config = weights.config.get("head")
        trunk.head_classes = weights.config.get("classes")
    return trunk


def _named_trunk(name: str, weights, progress: bool) -> Trunk:
    adapter = bb.get_adapter(name)
    skip = adapter.head_path + "."
    config = {"backbone": name}
    loaded = None
    if weights is None or is_weights_path(weights):
        model = adapter.build(name)
        prep = _adapter_preprocessing(adapter)
        if weights is not None:
            loaded = _load_file(model, weights, config, skip)
            prep = _file_preprocessing(loaded, prep)
    else:
        tv_weights = torchvision_weights(name, weights)
        prep = _weights_preprocessing(tv_weights, adapter)
        # Resolve the file before building: the weights fix the input size of
        # fixed-size architectures (ViT SWAG weights expect 384 or 512 px).
        path = fetch_torchvision_file(name, tv_weights, progress=progress)
        model = adapter.build(name, input_size=prep.image_size)
        load_into(model, read_state_dict(path), f"{name}.{tv_weights.name}", skip_prefix=skip)
        weights = tv_weights.name
    n_features = bb.replace_head(model, adapter.head_path)
    trunk = Trunk(model, n_features, adapter.stages(model), prep, config,
                  weights=_weights_label(weights))
    return _with_file_head(trunk, loaded)


def _weights_label(weights) -> str | None:
    return str(weights) if is_weights_path(weights) else weights


def _module_trunk(module: nn.Module, weights) -> Trunk:
    model = copy.deepcopy(module)  # the user's module is never modified
    adapter = bb.adapter_for_module(model)
    prep = (_adapter_preprocessing(adapter) if adapter is not None
            else Preprocessing(224, bb.IMAGENET_MEAN, bb.IMAGENET_STD))
    config = {"backbone": type(model).__name__}
    skip = adapter.head_path + "." if adapter is not None else None
    loaded = _apply_weights(model, weights, config, skip, "an nn.Module backbone")
    if loaded is not None:
        prep = _file_preprocessing(loaded, prep)
    if adapter is not None:
        n_features = bb.replace_head(model, adapter.head_path)
        stages = adapter.stages(model)
    else:
        n_features, stages = None, bb.generic_stages(model)
    trunk = Trunk(model, n_features, stages, prep, config, weights=_weights_label(weights))
    return _with_file_head(trunk, loaded)


def _mlp_trunk(weights, n_features_in: int, hidden_layer_sizes, activation: str) -> Trunk:
    # float64 until the network is cast to the data's type at the end of
    # build_network, so float64 weights files load without rounding.
    model = build_mlp(n_features_in, hidden_layer_sizes, activation).double()
    config = {"backbone": "mlp", "n_features_in": int(n_features_in),
              "hidden_layer_sizes": [int(s) for s in hidden_layer_sizes],
              "activation": activation}
    # the MLP is freshly built, so None and "DEFAULT" both mean random init
    loaded = _apply_weights(model, weights, config, None, "backbone='mlp'")
    n_features = int(hidden_layer_sizes[-1])
    label = None if weights == "DEFAULT" else _weights_label(weights)
    trunk = Trunk(model, n_features, mlp_stages(model), None, config, weights=label)
    return _with_file_head(trunk, loaded)


def _source_trunk(source: Trunk, weights) -> Trunk:
    model = copy.deepcopy(source.module)  # the source estimator is never modified
    for param in model.parameters():
        param.requires_grad_(True)  # the source's own freezing does not carry over
    loaded = _apply_weights(model, weights, source.config, None, "a fitted-estimator backbone")
    trunk = Trunk(model, source.n_features, [list(s) for s in source.stages],
                  source.preprocessing, dict(source.config), source.head_state,
                  source.head_config, source.head_classes, source.description,
                  _weights_label(weights))
    return _with_file_head(trunk, loaded)


def _text_trunk(name: str, weights, progress: bool, *, max_length: int = 128,
                pooling: str = "mean") -> Trunk:
    from .text import load_text_model  # imports transformers: only for text

    if weights not in ("DEFAULT", None) and not is_weights_path(weights):
        raise ValueError(
            f"weights={weights!r} does not apply to text backbone {name!r}: use 'DEFAULT' "
            "(its pretrained weights), None (a random initialisation) or a path to a "
            "weights file (.safetensors, .pt, .bin)."
        )
    file = weights if is_weights_path(weights) else None
    encoder, prep, config, label, n_features = load_text_model(
        name, "DEFAULT" if weights == "DEFAULT" else None, pooling=pooling,
        max_length=max_length, progress=progress)
    loaded = None
    if file is not None:
        # pooling has no parameters: a file fits the architecture whatever its pooling
        expected = {k: v for k, v in config.items() if k != "pooling"}
        loaded = _load_file(encoder, file, expected, None)
        label = str(file)
    trunk = Trunk(encoder, n_features, encoder.stages(), prep, config, weights=label)
    return _with_file_head(trunk, loaded)


def build_trunk(backbone, weights, progress: bool = False, *, n_features_in=None,
                hidden_layer_sizes=(100,), activation="relu", text=None) -> Trunk:
    """Build the trunk: the backbone with its source head removed.

    ``backbone`` is a registry name, ``"mlp"`` (then ``n_features_in``,
    ``hidden_layer_sizes`` and ``activation`` describe it), a text encoder
    (``text`` holds ``max_length`` and ``pooling``), an ``nn.Module`` or a
    :class:`Trunk` exported by a fitted estimator.
    """
    if isinstance(backbone, Trunk):
        trunk = _source_trunk(backbone, weights)
        if text is not None and trunk.config.get("kind") == "text":
            from .text import retarget

            trunk.preprocessing, trunk.config = retarget(
                trunk.module, trunk.preprocessing, trunk.config, **text)
    elif is_text_backbone(backbone):
        trunk = _text_trunk(backbone, weights, progress, **(text or {}))
    elif backbone == "mlp":
        trunk = _mlp_trunk(weights, n_features_in, hidden_layer_sizes, activation)
    elif isinstance(backbone, str):
        trunk = _named_trunk(backbone, weights, progress)
    elif isinstance(backbone, nn.Module):
        trunk = _module_trunk(backbone, weights)
    else:
        raise TypeError(
            "backbone must be a registry name (see sktransfer.list_backbones()), "
            "'mlp', a torch.nn.Module or a fitted sktransfer estimator, got "
            f"{type(backbone).__name__}."
        )
    if not trunk.stages:
        raise ValueError(
            f"backbone {type(trunk.module).__name__} has no parameters to transfer."
        )
    return trunk


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


def bottleneck_layers(n_features: int, width: int) -> list:
    """The domain-adaptation bottleneck: ``Linear -> BatchNorm1d -> ReLU`` to
    ``width`` features, as in DANN's, CDAN's and MCC's experiments with
    pretrained backbones."""
    return [nn.Linear(n_features, width), nn.BatchNorm1d(width), nn.ReLU()]


def make_head(n_features: int, hidden: tuple, n_outputs: int, dropout: float,
              bottleneck: int | None = None) -> nn.Sequential:
    """A new head: the ``bottleneck`` layers when there is one, Linear layers
    of sizes ``hidden`` with ReLU, then the output."""
    layers: list[nn.Module] = []
    width = n_features
    if bottleneck is not None:
        layers += bottleneck_layers(n_features, bottleneck)
        width = bottleneck
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
    The features a domain adaptation aligns (``with_features=True``) are the
    output of the head's first ``tap`` layers (a bottleneck), or the trunk's
    with ``tap=0``.
    """

    def __init__(self, trunk: nn.Module, head: nn.Module, stages: list, n_features: int,
                 config: dict | None = None):
        super().__init__()
        self.trunk = trunk
        self.head = head
        self.stages = [list(stage) for stage in stages]
        self.n_features = int(n_features)
        self.config = dict(config or {})
        self.frozen_norms: list[str] = []
        self.head_from_source = False  # the source's head was kept (source_head)
        self.tap = 0

    def forward(self, x, with_features: bool = False):
        features = torch.flatten(self.trunk(x), 1)
        tap = getattr(self, "tap", 0)  # a module pickled before the bottleneck existed
        if tap:
            features = self.head[:tap](features)
            outputs = self.head[tap:](features)
        else:
            outputs = self.head(features)
        return (features, outputs) if with_features else outputs

    @property
    def n_aligned(self) -> int:
        """Size of the features a domain adaptation aligns."""
        tap = getattr(self, "tap", 0)
        return self.head[0].out_features if tap else self.n_features

    def train(self, mode: bool = True):
        super().train(mode)
        for name in self.frozen_norms:
            self.trunk.get_submodule(name).eval()
        return self

    @property
    def n_stages(self) -> int:
        return len(self.stages)


def single_linear(head: nn.Module, description: str):
    """``head``'s ``(weight, bias)`` as float64 arrays, when it is one
    linear layer (nothing else with parameters or between them but
    dropout); else a ``ValueError`` naming ``description``."""
    layers = [m for m in head.modules() if not list(m.children())]
    linears = [m for m in layers if isinstance(m, nn.Linear)]
    others = [type(m).__name__ for m in layers if not isinstance(m, (nn.Linear, nn.Dropout))]
    if len(linears) != 1 or others:
        raise ValueError(
            f"{description} has a head of {len(linears)} linear layers and "
            f"{others or 'no other layers'}; a linear transfer source needs a head of one "
            "linear layer (head=(), e.g. the exact probe: freeze_depth='all').")
    weight, bias = linears[0].weight, linears[0].bias
    bias = torch.zeros(weight.shape[0]) if bias is None else bias
    return (weight.detach().cpu().double().numpy().copy(),
            bias.detach().cpu().double().numpy().copy())


def _check_head(head) -> tuple:
    sizes = tuple(head)
    if not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes):
        raise ValueError(
            f"head must be a tuple of positive ints (hidden layer sizes), got {head!r}; "
            "use () for a single linear layer."
        )
    return sizes


def backbone_name(backbone) -> str:
    if isinstance(backbone, str):
        return backbone
    if isinstance(backbone, Trunk):
        return backbone.description
    return type(backbone).__name__


def check_image_size(size: int, prep: Preprocessing, backbone) -> int:
    name = backbone_name(backbone)
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


def _head_config(n_features: int, hidden: tuple, n_outputs: int, bottleneck=None) -> dict:
    config = {"n_features": int(n_features), "hidden": [int(h) for h in hidden],
              "n_outputs": int(n_outputs)}
    if bottleneck is not None:  # absent otherwise: files written before it still match
        config["bottleneck"] = int(bottleneck)
    return config


def _keep_source_head(trunk: Trunk, head_config: dict, mode: str, classes) -> bool:
    """Whether the source's head is kept (see the ``source_head`` parameter)."""
    if mode == "new" or trunk.head_state is None:
        if mode == "keep":
            raise ValueError(
                "source_head='keep' but the backbone brings no head; it keeps a head only "
                "when it is a fitted estimator or a file written by save_weights."
            )
        return False
    same_shape = trunk.head_config == head_config
    if mode == "keep":
        if not same_shape:
            raise ValueError(
                f"source_head='keep' but the source head {trunk.head_config} does not "
                f"have the shape the target needs {head_config}; use 'auto' or 'new'."
            )
        return True
    known = trunk.head_classes is not None and classes is not None
    return same_shape and known and list(trunk.head_classes) == list(classes)


def attach_head(trunk: Trunk, head: NewHead, *, sample: torch.Tensor,
                preprocessing: Preprocessing | None = None, size=None) -> TransferModule:
    """The trunk followed by a new head (or the source's, see ``source_head``).

    ``sample`` is one input (without the batch axis) that gives the trunk's
    output size by a forward pass when the architecture does not tell it.
    ``preprocessing`` and ``size`` are recorded in the module's config.
    """
    hidden = _check_head(head.hidden)
    dtype = next(trunk.module.parameters()).dtype
    n_features = trunk.n_features
    if n_features is None:
        n_features = infer_n_features(trunk.module, sample[None].to(dtype))
    new_head = make_head(n_features, hidden, head.n_outputs, head.dropout,
                         head.bottleneck).to(dtype)
    head_config = _head_config(n_features, hidden, head.n_outputs, head.bottleneck)
    kept = _keep_source_head(trunk, head_config, head.source_head, head.classes)
    if kept:
        new_head.load_state_dict(trunk.head_state)
    config = dict(trunk.config)
    if preprocessing is not None:
        config["preprocessing"] = {"image_size": size, "mean": list(preprocessing.mean),
                                   "std": list(preprocessing.std)}
    classes = None if head.classes is None else list(head.classes)
    module = TransferModule(trunk.module, new_head, trunk.stages, n_features,
                            {"trunk": config, "head": head_config, "classes": classes})
    module.head_from_source = kept
    module.tap = 0 if head.bottleneck is None else len(bottleneck_layers(1, 1))
    return module


def load_trunk(backbone, weights, *, dtype: str = "float32", progress: bool = False,
               mlp: dict | None = None, text: dict | None = None) -> Trunk:
    """``build_trunk`` on a forked random state, cast to ``dtype``: the
    trunk's own random draws (a random init, say) do not consume the fit's
    random numbers, so the new head and the batch order depend on the seed
    only, whatever route the trunk came by."""
    with fork_rng():
        trunk = build_trunk(backbone, weights, progress, text=text, **(mlp or {}))
    trunk.module.to(getattr(torch, dtype))
    return trunk


def export_trunk(module: TransferModule, preprocessing, description: str) -> Trunk:
    """A fitted network's trunk and head, offered as a backbone (a copy of
    nothing: ``build_trunk`` copies the module when it is used)."""
    head_state = {k: v.detach().cpu().clone() for k, v in module.head.state_dict().items()}
    return Trunk(module.trunk, module.n_features, module.stages, preprocessing,
                 module.config.get("trunk", {}), head_state, module.config.get("head"),
                 module.config.get("classes"), description)
