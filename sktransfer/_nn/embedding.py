"""Embeddings for ``TransferFeatures``: a loaded trunk in eval mode
(``fit_embedder``) and the pooled embeddings of images or texts after a
stage (``embed``), through the activation store."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from .._options import IMAGES, TABULAR, TEXT
from .data import ImageDataset, TabularDataset, data_workers, subset
from .features import cached_embeddings, cut_module, embed_dataset, embedding_key
from .inference import Batching
from .model import check_image_size, load_trunk
from .runtime import resolve_device
from .text import TextDataset


@dataclass(frozen=True)
class EmbedderSettings:
    """What ``TransferFeatures`` is told: backbone, weights, cut, input
    settings (image size; text ``max_length`` and ``pooling``)."""

    backbone: object
    weights: object
    stage: int | None
    image_size: int | None
    batch_size: int
    device: str
    input_kind: str = IMAGES
    max_length: int = 128
    pooling: str = "mean"


@dataclass
class Embedder:
    """A loaded trunk in eval mode that embeds images or texts after
    ``stage`` stages.

    ``cache_keys`` memoises the activation-store key of each stage's
    embeddings (computing one hashes the trunk's weights)."""

    trunk: torch.nn.Module
    stages: list
    stage: int | None
    preprocessing: object
    image_size: int | None
    device: str
    batch_size: int
    config: dict
    input_kind: str = IMAGES
    n_features_out: int = 0
    weights: str | None = None
    dtype: str = "float32"
    cache_keys: dict = dataclasses.field(default_factory=dict)

    @property
    def n_stages(self) -> int:
        return len(self.stages)

    def dataset(self, data):
        """The dataset that feeds ``data`` (validated) to the trunk."""
        if self.input_kind == TABULAR:
            return TabularDataset(data, dtype=self.dtype)
        if self.input_kind == TEXT:
            return TextDataset(data, self.preprocessing)
        return ImageDataset(data, self.preprocessing, self.image_size)

    def cache_key(self, stage, dataset) -> str:
        if stage not in self.cache_keys:
            self.cache_keys[stage] = embedding_key(self.trunk, self.config, stage,
                                                   dataset.cache_settings(), self.device)
        return self.cache_keys[stage]


_SAME = "same"  # embed at the embedder's own stage


def fit_embedder(settings: EmbedderSettings, data, *, cache: bool = True) -> Embedder:
    """Load the trunk of ``settings`` and probe its output size on the first
    item of ``data`` (validated images or texts); with ``cache``, key its
    embeddings in the activation store."""
    device = resolve_device(settings.device)
    text = {"max_length": settings.max_length, "pooling": settings.pooling}
    trunk = load_trunk(settings.backbone, settings.weights,
                       text=text if settings.input_kind == TEXT else None)
    n_stages = len(trunk.stages)
    if settings.stage is not None and settings.stage > n_stages:
        raise ValueError(
            f"stage={settings.stage} but the backbone has {n_stages} stages; use "
            f"1 to {n_stages}, or None for the backbone's output."
        )
    prep, size = trunk.preprocessing, None
    module = trunk.module.to(device).eval()
    if settings.input_kind == IMAGES:
        size = check_image_size(settings.image_size or prep.image_size, prep, settings.backbone)
        module = module.to(memory_format=torch.channels_last)
    embedder = Embedder(module, trunk.stages, settings.stage, prep, size, device,
                        settings.batch_size, trunk.config, settings.input_kind,
                        weights=trunk.weights)
    dataset = embedder.dataset(data)
    first = _embed_positions(embedder, dataset, settings.stage, [0], workers=0)
    embedder.n_features_out = first.shape[1]
    if cache and settings.input_kind != TABULAR:
        embedder.cache_key(settings.stage, dataset)
    return embedder


def _embed_positions(embedder: Embedder, dataset, stage, positions=None, *,
                     workers: int) -> np.ndarray:
    part = dataset if positions is None else subset(dataset, positions)
    batching = Batching(embedder.batch_size, embedder.device,
                        channels_last=embedder.input_kind == IMAGES, num_workers=workers)
    cut = cut_module(embedder.trunk, embedder.stages, stage)
    return embed_dataset(embedder.trunk, part, cut, batching)


def embed(embedder: Embedder, data, *, stage=_SAME, n_jobs=None, cache: bool = True,
          cache_dir=None) -> np.ndarray:
    """Pooled embeddings (float64) of validated ``data`` (images or texts)
    after ``stage`` stages (default: the embedder's; None: the trunk's own
    output, which a source head reads); with ``cache``, only the items the
    activation store does not hold are computed."""
    stage = embedder.stage if stage == _SAME else stage
    dataset = embedder.dataset(data)
    in_memory = embedder.input_kind in (TEXT, TABULAR)
    workers = 0 if in_memory else data_workers(n_jobs, data.storage)

    def compute(positions=None):
        return _embed_positions(embedder, dataset, stage, positions, workers=workers)

    # table rows are cheap to run through a few layers: no activation store
    if not cache or embedder.input_kind == TABULAR:
        return compute().astype("float64")
    features, _ = cached_embeddings(embedder.cache_key(stage, dataset), data, compute,
                                    cache_dir=cache_dir)
    return features.astype("float64")
