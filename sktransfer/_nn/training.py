"""The training loop: a skorch net configured from the estimator's plain
parameters, plus batched inference."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from skorch.callbacks import Callback, EarlyStopping, ProgressBar
from skorch.helper import predefined_split
from torch import nn
from torch.utils.data import DataLoader, Subset

from .data import ActivationDataset
from .strategies import GradualUnfreezing, LRSchedule, stage_lr_factors

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

    ``params`` are parameters or parameter groups; frozen ones
    (``requires_grad=False``) are left out so the optimizer never touches them,
    and groups left empty are dropped.
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


@dataclass
class TrainingPlan:
    """Everything the training loop is told, as plain values."""

    lr: float
    optimizer: str
    weight_decay: float
    max_epochs: int
    batch_size: int
    device: str
    verbose: int = 0
    layer_decay: float = 1.0
    backbone_lr_mult: float = 1.0
    l2sp_strength: float = 0.0
    lr_schedule: str = "constant"
    warmup_epochs: float = 0.0
    unfreeze_plan: list = field(default_factory=list)
    bn_mode: str = "train"
    precision: str = "32"
    max_grad_norm: float | None = None
    channels_last: bool = False
    n_train: int = 1
    valid_dataset: object = None
    n_iter_no_change: int = 5
    num_workers: int = 0

    @property
    def steps_per_epoch(self) -> int:
        return max(1, math.ceil(self.n_train / self.batch_size))


def _callbacks(module, plan: TrainingPlan) -> list:
    callbacks = [("stop_on_nonfinite_loss", StopOnNonFiniteLoss())]
    if plan.lr_schedule != "constant" or plan.warmup_epochs > 0:
        total = plan.max_epochs * plan.steps_per_epoch
        warmup = int(round(plan.warmup_epochs * plan.steps_per_epoch))
        callbacks.append(("lr_schedule", LRSchedule(plan.lr_schedule, total, warmup)))
    if plan.unfreeze_plan:
        factors = stage_lr_factors(module.n_stages, plan.layer_decay, plan.backbone_lr_mult)
        decay = 0.0 if plan.l2sp_strength > 0 else plan.weight_decay
        callbacks.append(("gradual_unfreezing", GradualUnfreezing(
            plan.unfreeze_plan, factors, plan.lr, decay, plan.bn_mode)))
    if plan.valid_dataset is not None:
        callbacks.append(("early_stopping", EarlyStopping(
            monitor="valid_loss", patience=plan.n_iter_no_change, load_best=True)))
    if plan.verbose >= 2:
        callbacks.append(("progress_bar", ProgressBar()))
    return callbacks


def build_net(module: nn.Module, *, task: str, n_outputs: int, loss: str, plan: TrainingPlan):
    """The skorch net that trains ``module``: a classifier over logits with
    weighted cross-entropy, or a regressor with the weighted ``loss``."""
    from .net import TransferNetClassifier, TransferNetRegressor  # net imports this module

    pin = torch.device(plan.device).type == "cuda"
    kwargs = dict(
        module=module,
        criterion=WeightedLoss,
        lr=plan.lr,
        max_epochs=plan.max_epochs,
        batch_size=plan.batch_size,
        train_split=None if plan.valid_dataset is None else predefined_split(plan.valid_dataset),
        device=plan.device,
        iterator_train__shuffle=True,
        iterator_train__pin_memory=pin,
        iterator_valid__pin_memory=pin,
        iterator_train__num_workers=plan.num_workers,
        iterator_valid__num_workers=plan.num_workers,
        callbacks=_callbacks(module, plan),
        verbose=int(plan.verbose >= 1),
        precision=plan.precision,
        max_grad_norm=plan.max_grad_norm,
        l2sp_strength=plan.l2sp_strength,
        channels_last=plan.channels_last,
        layer_decay=plan.layer_decay,
        backbone_lr_mult=plan.backbone_lr_mult,
        optimizer_name=plan.optimizer,
        weight_decay=plan.weight_decay,
    )
    if task == "classification":
        # skorch's valid_acc scorer expects plain labels, not (label, weight)
        return TransferNetClassifier(criterion__kind="cross_entropy", classes=list(range(n_outputs)),
                                     callbacks__valid_acc=None, **kwargs)
    return TransferNetRegressor(criterion__kind=loss, **kwargs)


def train(net, dataset) -> None:
    """Initialise ``net`` and run its fit loop on ``dataset``.

    Unlike ``net.fit``, a real interruption propagates instead of ending
    training quietly, so an interrupted fit never looks like a finished one;
    only early stopping (which skorch signals the same way) ends it early.
    """
    net.initialize()
    # skorch moves module_ & co. through torch's map_location on unpickling,
    # but pickles the `module` init argument plainly; it is the same trained
    # instance here, so route it the same way (else a net pickled on CUDA
    # cannot load on a CPU-only machine, and the module is stored twice).
    if "module" not in net.cuda_dependent_attributes_:
        net.cuda_dependent_attributes_ = [*net.cuda_dependent_attributes_, "module"]
    net.notify("on_train_begin", X=dataset, y=None)
    try:
        net.fit_loop(dataset, None)
    except KeyboardInterrupt:
        if not _stopped_early(net):
            raise
    net.notify("on_train_end", X=dataset, y=None)
    net.finish_training()


def _stopped_early(net) -> bool:
    stopper = dict(net.callbacks_).get("early_stopping")
    return stopper is not None and stopper.misses_ >= stopper.patience


def full_precision(tensor: torch.Tensor) -> torch.Tensor:
    """Autocast outputs (fp16/bf16) as float32; float32/float64 unchanged."""
    if tensor.dtype in (torch.float16, torch.bfloat16):
        return tensor.float()
    return tensor


def predict_outputs(net, dataset, num_workers: int = 0) -> np.ndarray:
    """Raw module outputs for ``dataset``, batch by batch, in inference mode;
    only the outputs are kept, so memory does not grow with the inputs."""
    module = net.module_
    was_training = module.training
    module.eval()
    outputs = []
    loader = DataLoader(dataset, batch_size=net.batch_size, shuffle=False,
                        num_workers=num_workers,
                        pin_memory=torch.device(net.device).type == "cuda")
    try:
        with torch.inference_mode():
            for X, _ in loader:
                outputs.append(full_precision(net.infer(X)).cpu())
    finally:
        module.train(was_training)
    return torch.cat(outputs).numpy()


def predict_outputs_cached(net, dataset, cached: dict, skip, num_workers: int = 0):
    """``predict_outputs`` where the activations at the cut are ``cached``
    (rows by position): those images run only the layers above the cut
    (``skip``, a context manager), the others the whole network."""
    hits = sorted(cached)
    misses = [i for i in range(len(dataset)) if i not in cached]
    with skip:
        from_cache = predict_outputs(net, ActivationDataset([cached[i] for i in hits]))
    if not misses:
        return from_cache
    from_images = predict_outputs(net, Subset(dataset, misses), num_workers)
    outputs = np.empty((len(dataset), *from_cache.shape[1:]), dtype=from_cache.dtype)
    outputs[hits], outputs[misses] = from_cache, from_images
    return outputs


def history_records(net) -> list[dict]:
    """Per-epoch history as plain dicts (no per-batch entries)."""
    def plain(value):
        return value.item() if isinstance(value, np.generic) else value

    return [{k: plain(v) for k, v in row.items() if k != "batches"} for row in net.history]
