"""Building what a fit trains from its recipe: the network with its frozen
stages, the datasets, the split of the samples into training, validation
and unlabeled positions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split

from .._options import IMAGES, TEXT
from .data import STRONG, ImageDataset, TabularDataset, TwoViewDataset, subset
from .freezing import freeze, freeze_norms, frozen_stages, hold_all_norms, trainable_norms
from .frozen_cut import CachedActivations
from .inference import Batching
from .model import NewHead, attach_head, backbone_name, check_image_size, load_trunk
from .text import TextDataset, TextPreprocessing


@dataclass
class Prepared:
    """What both ways of fitting the head start from: the built network, its
    frozen stages, the un-augmented training data (cached activations when
    they apply), how to run it, the head's outputs, and the positions of the
    labeled samples and of the unlabeled samples that train (or none)."""

    module: object
    frozen: list
    base: object
    cached: CachedActivations
    batching: Batching
    n_outputs: int
    groups: tuple | None  # a multi-task classifier's numbers of classes
    labeled: np.ndarray
    unlabeled: np.ndarray


@dataclass
class Network:
    """The built network and what its inputs need."""

    module: object
    frozen: list
    plain: object  # the un-augmented dataset of the fit's samples
    preprocessing: object
    image_size: int | None
    weights: str | None


def dataset(data, targets, sample_weight, *, prep, size, dtype, augment=None,
            strong_view=False):
    """The dataset of ``data``; ``strong_view`` pairs each image's ``augment``
    view with a strongly augmented one (FixMatch)."""
    if prep is None:
        return TabularDataset(data, targets, sample_weight, dtype)
    if isinstance(prep, TextPreprocessing):
        return TextDataset(data, prep, targets, sample_weight)
    images = ImageDataset(data, prep, size, targets, sample_weight, augment)
    if strong_view:
        strong = ImageDataset(data, prep, size, targets, sample_weight, STRONG)
        return TwoViewDataset(images, strong)
    return images


def _load(recipe, data, dtype):
    """The trunk of the recipe's backbone (an MLP sized to ``data``)."""
    group = recipe.backbone
    mlp = text = None
    if group.mlp is not None:
        mlp = {"n_features_in": data.shape[1],
               "hidden_layer_sizes": tuple(group.mlp.hidden_layer_sizes),
               "activation": group.mlp.activation}
    if group.text is not None:
        text = {"max_length": group.text.max_length, "pooling": group.text.pooling}
    return load_trunk(group.source, group.weights, dtype=dtype,
                      progress=recipe.runtime.verbose >= 1, mlp=mlp, text=text)


def build_network(recipe, data, targets, sample_weight, *, n_outputs: int, classes,
                  dtype: str) -> Network:
    """The network with its frozen stages, and the un-augmented dataset; the
    recipe's checks that need the loaded trunk run here, before any
    activation is computed."""
    trunk = _load(recipe, data, dtype)
    name = backbone_name(recipe.backbone.source)
    frozen = frozen_stages(recipe.freezing.depth, len(trunk.stages), name)
    recipe.check_network(len(trunk.stages), frozen)
    prep = size = None
    if recipe.input_kind == IMAGES:
        prep = trunk.preprocessing
        size = check_image_size(recipe.backbone.image_size or prep.image_size, prep, name)
    elif recipe.input_kind == TEXT:
        prep = trunk.preprocessing
    plain = dataset(data, targets, sample_weight, prep=prep, size=size, dtype=dtype)
    head = NewHead(recipe.head.hidden, recipe.head.dropout, n_outputs,
                   recipe.backbone.source_head, classes, recipe.methods.bottleneck)
    module = attach_head(trunk, head, sample=plain[0][0],
                         preprocessing=prep if recipe.input_kind == IMAGES else None,
                         size=size)
    freeze(module, frozen)
    if recipe.freezing.bn_mode == "frozen":
        hold_all_norms(module)
    if recipe.privacy is not None:
        _private_norms(recipe, module)
    return Network(module, frozen, plain, prep, size, trunk.weights)


def _private_norms(recipe, module) -> None:
    """A private fit trains no BatchNorm layer: in training mode one
    normalises each sample by its batch, which per-sample clipping cannot
    bound. With ``bn_mode="frozen"`` their statistics and affine parameters
    stay as pretrained; otherwise a trainable one is refused."""
    if recipe.freezing.bn_mode == "frozen":
        freeze_norms(module)
        return
    names = trainable_norms(module)
    if names:
        raise ValueError(
            f"privacy cannot train BatchNorm layers ({len(names)} in the trainable stages, "
            f"e.g. {names[0]!r}): they mix the samples of a batch. Set bn_mode='frozen' "
            "(their statistics and affine parameters stay as pretrained), or freeze their "
            "stages (freeze_depth='all' trains the head alone)."
        )


def split(recipe, targets, positions):
    """The labeled ``positions`` split into training and validation
    positions when early stopping is on (``positions, None`` otherwise); for
    classifiers the split is stratified when it can be (see
    ``stratification``)."""
    if not recipe.stopping.early_stopping:
        return positions, None
    n = len(positions)
    n_valid = max(1, int(round(recipe.stopping.validation_fraction * n)))
    if n - n_valid < 1:
        raise ValueError(
            f"early_stopping needs at least 2 labeled samples; got {n}. Turn it off "
            "or pass more data."
        )
    stratify = None
    if recipe.task == "classification":
        stratify = stratification(targets[positions], n_valid, n - n_valid)
    return train_test_split(positions, test_size=n_valid, stratify=stratify,
                            random_state=recipe.runtime.seed)


def stratification(targets, n_valid: int, n_train: int):
    """What the validation split stratifies on: the classes, or for a
    multi-task classifier the rows' label combinations, else its first
    task's classes; None when no grouping can be split (a group of one
    sample, or more groups than either side has samples)."""
    candidates = [targets]
    if targets.ndim == 2:
        _, rows = np.unique(targets, axis=0, return_inverse=True)
        candidates = [rows.ravel(), targets[:, 0]]
    for groups in candidates:
        _, counts = np.unique(groups, return_counts=True)
        if counts.min() >= 2 and len(counts) <= min(n_valid, n_train):
            return groups
    return None


def sample_roles(recipe, n: int, unlabeled):
    """Positions of the labeled samples, and of the unlabeled ones that
    train (none when the recipe leaves them out)."""
    if unlabeled is None:
        return np.arange(n), np.arange(0)
    training = np.flatnonzero(unlabeled) if recipe.methods.uses_unlabeled else np.arange(0)
    return np.flatnonzero(~unlabeled), training


def training_set(run: Prepared, augmented, train_idx):
    """The training items (labeled ones first, then the unlabeled ones
    that train) and how many are labeled."""
    if len(run.unlabeled):
        return subset(augmented, np.concatenate([train_idx, run.unlabeled])), len(train_idx)
    if len(train_idx) == len(augmented):
        return augmented, len(train_idx)
    return subset(augmented, train_idx), len(train_idx)

