"""The training loop: a skorch net configured from the estimator's plain
parameters, plus batched inference."""

from __future__ import annotations

import contextlib
from functools import partial

import numpy as np
import torch
from skorch import NeuralNetClassifier
from skorch.callbacks import Callback, ProgressBar
from torch import nn

OPTIMIZERS = ("adamw", "adam", "sgd")


class TrainingDivergedError(ValueError):
    """The training loss became NaN or infinite."""


def make_optimizer(params, *, name: str = "adamw", **kwargs) -> torch.optim.Optimizer:
    """Build optimizer ``name`` over the trainable parameters only.

    skorch passes every parameter of the module; frozen ones
    (``requires_grad=False``) are left out so the optimizer never touches them.
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


class StopOnNonFiniteLoss(Callback):
    """Raise as soon as a training batch gives a NaN or infinite loss."""

    def on_batch_end(self, net, batch=None, training=None, loss=None, **kwargs):
        if training and loss is not None and not bool(torch.isfinite(loss).all()):
            epoch = len(net.history)
            raise TrainingDivergedError(
                f"training diverged: the loss became {float(loss.detach())} in epoch {epoch}. "
                "Lower `lr`, or freeze more of the backbone (`freeze_depth`)."
            )


def resolve_device(device: str) -> str:
    """'auto' means CUDA when available; anything else must be usable here."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"device={device!r} is not a torch device; use 'auto', 'cpu', 'cuda' or 'cuda:N'."
        ) from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} but CUDA is not available on this machine; use "
            "device='auto' or 'cpu'."
        )
    return device


@contextlib.contextmanager
def seeded(seed: int, device: str):
    """Seed torch for one fit without disturbing the caller's global RNG."""
    cuda = torch.device(device).type == "cuda"
    devices = [torch.device(device).index or 0] if cuda else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def build_classifier_net(module: nn.Module, *, n_classes: int, lr: float, optimizer: str,
                         weight_decay: float, max_epochs: int, batch_size: int,
                         device: str, verbose: int) -> NeuralNetClassifier:
    """A skorch classifier over ``module``'s logits (cross-entropy loss)."""
    callbacks = [("stop_on_nonfinite_loss", StopOnNonFiniteLoss())]
    if verbose >= 2:
        callbacks.append(("progress_bar", ProgressBar()))
    pin = torch.device(device).type == "cuda"
    return NeuralNetClassifier(
        module=module,
        criterion=nn.CrossEntropyLoss,
        optimizer=partial(make_optimizer, name=optimizer),
        lr=lr,
        optimizer__weight_decay=weight_decay,
        max_epochs=max_epochs,
        batch_size=batch_size,
        train_split=None,
        classes=list(range(n_classes)),
        device=device,
        iterator_train__shuffle=True,
        iterator_train__pin_memory=pin,
        iterator_valid__pin_memory=pin,
        callbacks=callbacks,
        verbose=int(verbose >= 1),
    )


def train(net, dataset) -> None:
    """Initialise ``net`` and run its fit loop on ``dataset``.

    Unlike ``net.fit``, an interruption propagates instead of ending training
    quietly, so an interrupted fit never looks like a finished one.
    """
    net.initialize()
    # skorch moves module_ & co. through torch's map_location on unpickling,
    # but pickles the `module` init argument plainly; it is the same trained
    # instance here, so route it the same way (else a net pickled on CUDA
    # cannot load on a CPU-only machine, and the module is stored twice).
    if "module" not in net.cuda_dependent_attributes_:
        net.cuda_dependent_attributes_ = [*net.cuda_dependent_attributes_, "module"]
    net.notify("on_train_begin", X=dataset, y=None)
    net.fit_loop(dataset, None)
    net.notify("on_train_end", X=dataset, y=None)


def predict_outputs(net, dataset) -> np.ndarray:
    """Raw module outputs for ``dataset``, batch by batch, in inference mode."""
    module = net.module_
    was_training = module.training
    module.eval()
    device = torch.device(net.device)
    outputs = []
    try:
        with torch.inference_mode():
            for X, _ in net.get_iterator(dataset, training=False):
                X = X.to(device, non_blocking=True)
                outputs.append(module(X).float().cpu())
    finally:
        module.train(was_training)
    return torch.cat(outputs).numpy()


def history_records(net) -> list[dict]:
    """Per-epoch history as plain dicts (no per-batch entries)."""
    return [{k: v for k, v in row.items() if k != "batches"} for row in net.history]
