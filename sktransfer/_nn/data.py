"""Turning validated images into normalised tensors, one item at a time, so
that file paths are decoded batch by batch inside a DataLoader."""

from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as TF

from .._images import CheckedImages
from .model import Preprocessing


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


class ImageDataset(Dataset):
    """Images resized (shorter side, then centre crop) and normalised as the
    trunk's weights expect, with optional targets."""

    def __init__(self, images: CheckedImages, prep: Preprocessing, size: int, targets=None,
                 sample_weight=None):
        self.images = images
        self.size = int(size)
        self.mean = list(prep.mean)
        self.std = list(prep.std)
        self.targets = targets
        if targets is not None and sample_weight is None:
            sample_weight = np.ones(len(images), dtype=np.float32)
        self.sample_weight = sample_weight

    def __len__(self):
        return len(self.images)

    def _raw(self, index) -> torch.Tensor:
        if self.images.kind == "files":
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
        return TF.normalize(tensor, self.mean, self.std)

    def __getitem__(self, index):
        if self.targets is None:
            return self.image(index), 0
        return self.image(index), (self.targets[index], self.sample_weight[index])
