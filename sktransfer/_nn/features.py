"""Pooled embeddings from a trunk, at its end or after a chosen stage."""

from __future__ import annotations

import numpy as np
import torch

from . import activation_store as store
from . import backbones as bb
from .inference import Batching, evaluating, run_batches


class _Captured(Exception):
    """Raised by the hook to stop the forward pass once the cut is reached."""

    def __init__(self, output):
        super().__init__()
        self.output = output


def pool(output: torch.Tensor) -> torch.Tensor:
    """Global average over spatial positions (B, C, H, W) or tokens (B, T, D)."""
    if output.dim() == 4:
        return output.mean(dim=(2, 3))
    if output.dim() == 3:
        return output.mean(dim=1)
    return output.flatten(1)


def cut_module(trunk, stages: list, stage: int | None):
    """The module whose output is the embedding after ``stage`` stages
    (None: the trunk's own output)."""
    if stage is None:
        return None
    members = [bb.resolve_member(trunk, name) for name in stages[stage - 1]]
    modules = [m for m in members if isinstance(m, torch.nn.Module)]
    if not modules:
        raise ValueError(f"stage {stage} has no module whose output can be taken.")
    return modules[-1]


def capture(trunk, X: torch.Tensor, cut) -> torch.Tensor:
    """Output of the submodule ``cut`` when ``trunk`` runs on ``X``; the
    forward pass stops there."""

    def hook(module, inputs, output):
        raise _Captured(output)

    handle = cut.register_forward_hook(hook)
    try:
        trunk(X)
    except _Captured as captured:
        return captured.output
    finally:
        handle.remove()
    raise RuntimeError("the forward pass never reached the chosen stage.")


def embed_batch(trunk, X: torch.Tensor, cut) -> torch.Tensor:
    """The pooled output of ``trunk`` (or of its submodule ``cut``) on ``X``;
    a trunk may pool its inner outputs its own way (``pool_stage_output``:
    a text encoder averages only the real tokens)."""
    pooler = getattr(trunk, "pool_stage_output", pool)
    return pooler(trunk(X) if cut is None else capture(trunk, X, cut))


def embed_dataset(trunk, dataset, stage_module, batching: Batching) -> np.ndarray:
    """Pooled embeddings of ``dataset`` (float32), the trunk in eval mode."""
    with evaluating(trunk):
        outputs = run_batches(lambda X: embed_batch(trunk, X, stage_module).float(),
                              dataset, batching)
    return outputs.numpy()


def embedding_key(trunk, config: dict, stage, settings: dict, device: str) -> str:
    """Activation-store key of pooled embeddings (everything but the input:
    ``settings`` are the dataset's, e.g. an image's size and normalisation)."""
    return store.model_key(
        activations="pooled", trunk=config, stage=stage, state=store.state_fingerprint([trunk]),
        **settings, device=torch.device(device).type, torch=torch.__version__,
    )


def cached_embeddings(key: str, images, embed_fn, *, cache_dir=None):
    """Embeddings of ``images`` from the activation store, computing with
    ``embed_fn(positions) -> ndarray`` only those it does not hold."""
    def compute(positions):
        return torch.from_numpy(embed_fn(positions))

    rows, counts = store.lookup(key, store.sample_keys(images), cache_dir=cache_dir,
                                dtype=torch.float32, compute=compute)
    return rows.numpy(), counts
