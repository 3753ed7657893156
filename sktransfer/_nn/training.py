"""The training loop: a skorch net configured from the estimator's plain
parameters, plus batched inference."""

from __future__ import annotations

import contextlib
from functools import partial

import numpy as np
import torch
from skorch import NeuralNetClassifier, NeuralNetRegressor
from skorch.callbacks import Callback, ProgressBar
from torch import nn

OPTIMIZERS = ("adamw", "adam", "sgd")
LOSSES = ("squared_error", "huber", "absolute_error")


class WeightedLoss(nn.Module):
    """Per-sample loss averaged with sample weights.

    Targets arrive as ``(y, sample_weight)``; the weights are normalised to
    mean 1 over the training set, so unit weights give the plain mean loss.
    """

    def __init__(self, kind: str = "cross_entropy"):
        super().__init__()
        self.kind = kind
        if kind == "cross_entropy":
            self.loss = nn.CrossEntropyLoss(reduction="none")
        elif kind == "squared_error":
            self.loss = nn.MSELoss(reduction="none")
        elif kind == "huber":
            self.loss = nn.HuberLoss(reduction="none")
        elif kind == "absolute_error":
            self.loss = nn.L1Loss(reduction="none")
        else:
            raise ValueError(f"loss must be one of {LOSSES}, got {kind!r}.")

    def forward(self, y_pred, target):
        y_true, weight = target
        if self.kind == "cross_entropy":
            per_sample = self.loss(y_pred, y_true.long())
        else:
            per_sample = self.loss(y_pred, y_true.to(y_pred.dtype)).mean(dim=1)
        return (per_sample * weight.to(per_sample.dtype)).mean()


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


def cuda_available() -> bool:
    return torch.cuda.is_available()


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


def _net_kwargs(*, lr, optimizer, weight_decay, max_epochs, batch_size, device, verbose):
    callbacks = [("stop_on_nonfinite_loss", StopOnNonFiniteLoss())]
    if verbose >= 2:
        callbacks.append(("progress_bar", ProgressBar()))
    pin = torch.device(device).type == "cuda"
    return dict(
        optimizer=partial(make_optimizer, name=optimizer),
        lr=lr,
        optimizer__weight_decay=weight_decay,
        max_epochs=max_epochs,
        batch_size=batch_size,
        train_split=None,
        device=device,
        iterator_train__shuffle=True,
        iterator_train__pin_memory=pin,
        iterator_valid__pin_memory=pin,
        callbacks=callbacks,
        verbose=int(verbose >= 1),
    )


def build_classifier_net(module: nn.Module, *, n_classes: int, **settings) -> NeuralNetClassifier:
    """A skorch classifier over ``module``'s logits (weighted cross-entropy)."""
    return NeuralNetClassifier(
        module=module, criterion=WeightedLoss, criterion__kind="cross_entropy",
        classes=list(range(n_classes)), **_net_kwargs(**settings),
    )


def build_regressor_net(module: nn.Module, *, loss: str, **settings) -> NeuralNetRegressor:
    """A skorch regressor over ``module``'s outputs (weighted ``loss``)."""
    return NeuralNetRegressor(
        module=module, criterion=WeightedLoss, criterion__kind=loss, **_net_kwargs(**settings),
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
