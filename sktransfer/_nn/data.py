"""The datasets a network reads: validated images turned into normalised
tensors one item at a time (so file paths are decoded batch by batch inside
a DataLoader), rows of a table, and cached activations. Every item is
``(input, (target, sample_weight))``, or ``(input, 0)`` without targets."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset, Subset
from torchvision.transforms.v2 import functional as TF

from .._options import AUGMENTATIONS
from .backbones import Preprocessing

if TYPE_CHECKING:  # validation lives with the estimators; only its result is read here
    from .._images import CheckedImages


def _read_file(item) -> torch.Tensor:
    from PIL import Image, UnidentifiedImageError

    if isinstance(item, Image.Image):
        image = item
    else:
        path = os.fspath(item)
        try:
            with Image.open(path) as opened:
                image = opened.convert("RGB")
        except (UnidentifiedImageError, OSError) as exc:
            raise ValueError(f"cannot read image file {path!r}: {exc}") from None
    if image.mode != "RGB":
        image = image.convert("RGB")
    return TF.pil_to_tensor(image)


def make_augmentation(augment: str | None, size: int):
    """Random transforms for training batches (torchvision.transforms.v2).

    "light": a mild random resized crop (85-100 % of the area) and small
    rotations, safe for digits and text. "standard": the usual ImageNet-style
    crop (50-100 %), horizontal flips and colour jitter.
    """
    if augment is None:
        return None
    if augment == STRONG:
        return strong_augmentation(size)
    if augment not in AUGMENTATIONS:
        raise ValueError(f"augment must be one of {AUGMENTATIONS} or None, got {augment!r}.")
    from torchvision.transforms import v2

    if augment == "light":
        return v2.Compose([
            v2.RandomResizedCrop(size, scale=(0.85, 1.0), ratio=(0.9, 1.1), antialias=True),
            v2.RandomRotation(10),
        ])
    return v2.Compose([
        v2.RandomResizedCrop(size, scale=(0.5, 1.0), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2),
    ])


STRONG = "strong"  # FixMatch's strong view; internal, not an ``augment`` value


def strong_augmentation(size: int):
    """FixMatch's strong view: a crop, two RandAugment operations at a random
    magnitude, then cutout (a random erased square of up to half the side)."""
    from torchvision.transforms import v2

    crop = v2.RandomResizedCrop(size, scale=(0.85, 1.0), ratio=(0.9, 1.1), antialias=True)
    erase = v2.RandomErasing(p=1.0, scale=(0.02, 0.25), ratio=(1.0, 1.0), value=0.5)
    # FixMatch draws the magnitude per image: one RandAugment per magnitude
    by_magnitude = [v2.RandAugment(num_ops=2, magnitude=m) for m in range(1, 11)]

    def transform(tensor: torch.Tensor) -> torch.Tensor:
        augment = by_magnitude[int(torch.randint(len(by_magnitude), ()).item())]
        as_bytes = crop(tensor).mul(255).round_().to(torch.uint8)  # RandAugment's colour ops
        return erase(augment(as_bytes).float().div_(255.0))

    return transform


class TwoViewDataset(Dataset):
    """FixMatch's training items: ``(stack([weak view, strong view]), target)``
    of the same image, from two ``ImageDataset`` over the same images."""

    def __init__(self, weak: "ImageDataset", strong: "ImageDataset"):
        self.weak = weak
        self.strong = strong

    def __len__(self):
        return len(self.weak)

    def __getitem__(self, index):
        weak, target = self.weak[index]
        return torch.stack([weak, self.strong.image(index)]), target


class ImageDataset(Dataset):
    """Images resized (shorter side, then centre crop) and normalised as the
    trunk's weights expect, with optional targets; ``augment`` adds random
    transforms (for training data only)."""

    def __init__(self, images: CheckedImages, prep: Preprocessing, size: int, targets=None,
                 sample_weight=None, augment: str | None = None):
        self.images = images
        self.augment = make_augmentation(augment, int(size))
        self.size = int(size)
        self.mean = list(prep.mean)
        self.std = list(prep.std)
        self.targets = targets
        if targets is not None and sample_weight is None:
            sample_weight = np.ones(len(images), dtype=np.float32)
        self.sample_weight = sample_weight

    def __len__(self):
        return len(self.images)

    def cache_settings(self) -> dict:
        """What the activation cache keys images by, besides the image."""
        return {"size": self.size, "mean": self.mean, "std": self.std}

    def _raw(self, index) -> torch.Tensor:
        if self.images.storage == "files":
            return _read_file(self.images.data[index]).float().div_(255.0)
        item = np.ascontiguousarray(self.images.data[index])
        tensor = torch.from_numpy(item).float()
        if self.images.scale != 1.0:
            tensor.mul_(self.images.scale)
        return tensor

    def image(self, index) -> torch.Tensor:
        tensor = self._raw(index)
        if tuple(tensor.shape[-2:]) != (self.size, self.size):
            tensor = TF.resize(tensor, self.size, antialias=True)
            tensor = TF.center_crop(tensor, [self.size, self.size])
        if tensor.shape[0] == 1:
            tensor = tensor.expand(3, -1, -1)
        if self.augment is not None:
            tensor = self.augment(tensor.contiguous()).clamp_(0.0, 1.0)
        return TF.normalize(tensor, self.mean, self.std)

    def __getitem__(self, index):
        if self.targets is None:
            return self.image(index), 0
        return self.image(index), (self.targets[index], self.sample_weight[index])


class TabularDataset(Dataset):
    """Rows of a float matrix, with optional ``(target, sample weight)``.

    ``dtype`` is "float64" or "float32"; like scikit-learn's MLP, float64 data
    is computed in float64.
    """

    def __init__(self, X: np.ndarray, targets=None, sample_weight=None, dtype="float32"):
        # A private copy: read-only or memory-mapped inputs stay untouched.
        self.X = torch.tensor(np.asarray(X), dtype=getattr(torch, dtype))
        self.targets = targets
        self.sample_weight = sample_weight

    def __len__(self):
        return len(self.X)

    def __getitem__(self, index):
        if self.targets is None:
            return self.X[index], 0
        return self.X[index], (self.targets[index], self.sample_weight[index])


def tabular_dtype(X: np.ndarray) -> str:
    """The type a table is computed in: float64 stays float64, else float32."""
    return "float64" if X.dtype == np.float64 else "float32"


class ActivationDataset(Dataset):
    """Cached activations (a tensor, or a list of rows) with the targets and
    sample weights of the inputs they came from; items look like those of
    ``ImageDataset``. ``collate_fn`` batches them when the default stacking
    is not enough (a text encoder's token rows are trimmed to the batch's
    longest text)."""

    def __init__(self, activations, targets=None, sample_weight=None, collate_fn=None):
        self.activations = activations
        self.targets = targets
        self.sample_weight = sample_weight
        self.collate_fn = collate_fn

    def __len__(self):
        return len(self.activations)

    def __getitem__(self, index):
        if self.targets is None:
            return self.activations[index], 0
        return self.activations[index], (self.targets[index], self.sample_weight[index])


def data_workers(n_jobs, storage: str) -> int:
    """DataLoader worker processes for ``n_jobs`` (scikit-learn's convention:
    None = automatic, 1 = none, -1 = one per CPU core).

    Automatic: image files are decoded by up to 4 workers; arrays, already
    in memory, are read in the main process.
    """
    cores = os.cpu_count() or 1
    if n_jobs is None:
        return min(4, cores) if storage == "files" else 0
    if n_jobs < 0:
        n_jobs = max(1, cores + 1 + n_jobs)
    return 0 if n_jobs == 1 else int(n_jobs)


def subset(dataset: Dataset, indices) -> Subset:
    """The items of ``dataset`` at ``indices`` (a train / validation split)."""
    return Subset(dataset, [int(i) for i in indices])
