"""skorch nets with the override points the strategies need.

The public estimators hold one of these in ``net_``; they are never exposed
as estimators themselves. What they add to skorch's loop: parameter groups
per stage, mixed precision (autocast, and loss scaling for float16),
gradient clipping, the L2-SP penalty, channels_last inputs and non-blocking
copies to the device.
"""

from __future__ import annotations

import contextlib

import torch
from skorch import NeuralNetClassifier, NeuralNetRegressor
from skorch.dataset import unpack_data
from skorch.utils import TeeGenerator

from .strategies import l2sp_penalty, optimizer_groups
from .training import full_precision, make_optimizer

PRECISIONS = ("auto", "32", "bf16", "16")
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "16": torch.float16}


def resolve_precision(precision: str, device: str) -> str:
    """"auto": bf16 autocast on CUDA devices that support it, fp32 elsewhere."""
    if precision != "auto":
        return precision
    if torch.device(device).type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    return "32"


def autocast(precision: str, device: str):
    if precision not in _AUTOCAST_DTYPES:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=_AUTOCAST_DTYPES[precision])


class TransferNetMixin:
    """What sktransfer adds to skorch's classifier and regressor nets."""

    def __init__(self, *args, precision="32", max_grad_norm=None, l2sp_strength=0.0,
                 channels_last=False, layer_decay=1.0, backbone_lr_mult=1.0,
                 optimizer_name="adamw", weight_decay=0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.precision = precision
        self.max_grad_norm = max_grad_norm
        self.l2sp_strength = l2sp_strength
        self.channels_last = channels_last
        self.layer_decay = layer_decay
        self.backbone_lr_mult = backbone_lr_mult
        self.optimizer_name = optimizer_name
        self.weight_decay = weight_decay

    def initialize_optimizer(self, triggered_directly=None):
        groups = optimizer_groups(
            self.module_, lr=self.lr, weight_decay=self.weight_decay,
            layer_decay=self.layer_decay, backbone_lr_mult=self.backbone_lr_mult,
            l2sp=self.l2sp_strength > 0,
        )
        self.optimizer_ = make_optimizer(groups, name=self.optimizer_name, lr=self.lr)
        return self

    def initialize(self):
        super().initialize()
        if self.channels_last:
            self.module_.to(memory_format=torch.channels_last)
        device_type = torch.device(self.device).type
        self.scaler_ = torch.amp.GradScaler(device_type, enabled=self.precision == "16")
        if self.l2sp_strength > 0:
            self.l2sp_reference_ = {name: param.detach().clone()
                                    for name, param in self.module_.trunk.named_parameters()}
        return self

    def finish_training(self):
        """Drop what only training needs, so pickles stay small and portable."""
        for name in ("scaler_", "l2sp_reference_"):
            self.__dict__.pop(name, None)
        # the validation split holds training data; a fitted model must not
        self.train_split = None
        stopper = dict(self.callbacks_).get("early_stopping")
        if stopper is not None:  # a copy of the weights, pickled without map_location
            stopper.best_model_weights_ = None

    def _set_training(self, training=True):
        # skorch calls this before every batch; walking every submodule each
        # time costs more than a small head's whole step, so skip it when the
        # network is already in that mode (modes change only through train()).
        modules = [getattr(self, name + "_") for name in self._modules + self._criteria]
        if all(not isinstance(m, torch.nn.Module) or m.training == training for m in modules):
            return
        super()._set_training(training)

    def autocast(self):
        return autocast(self.precision, self.device)

    def infer(self, x, **fit_params):
        if isinstance(x, torch.Tensor):
            x = x.to(self.device, non_blocking=True)
            if self.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
        with self.autocast():
            return super().infer(x, **fit_params)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        loss = super().get_loss(full_precision(y_pred), y_true, X=X, training=training)
        if training and self.l2sp_strength > 0:
            penalty = l2sp_penalty(self.module_, self.l2sp_reference_)
            loss = loss + 0.5 * self.l2sp_strength * penalty
        return loss

    def train_step(self, batch, **fit_params):
        self._set_training(True)
        Xi, yi = unpack_data(batch)
        optimizer = self.optimizer_
        optimizer.zero_grad(set_to_none=True)
        y_pred = self.infer(Xi, **fit_params)
        loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        self.scaler_.scale(loss).backward()
        if self.max_grad_norm is not None:
            self.scaler_.unscale_(optimizer)
            params = [p for group in optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm)
        self.notify("on_grad_computed",
                    named_parameters=TeeGenerator(self.get_all_learnable_params()),
                    batch=batch, training=True)
        self.scaler_.step(optimizer)
        self.scaler_.update()
        return {"loss": loss.detach(), "y_pred": y_pred}


class TransferNetClassifier(TransferNetMixin, NeuralNetClassifier):
    """skorch classifier net with sktransfer's training additions."""


class TransferNetRegressor(TransferNetMixin, NeuralNetRegressor):
    """skorch regressor net with sktransfer's training additions."""
