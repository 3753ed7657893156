"""The skorch nets that train a ``TransferModule``, and how one is configured
from plain values (``TrainingPlan``).

The public estimators hold one of these in ``net_``; they are never exposed
as estimators themselves. The net owns its loop: ``fit`` initialises and
runs skorch's loop through skorch's own override points
(``initialize_optimizer``, ``train_step``, ``infer``, ``get_loss``,
``partial_fit``) and callbacks, then drops what only training needs. What
it adds to skorch: parameter groups per stage, mixed precision (autocast,
and loss scaling for float16), gradient clipping, the L2-SP penalty,
channels_last inputs and non-blocking copies to the device. The
learning-rate range test is a callback on a copy of the net, so it runs the
same training step.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from skorch import NeuralNetClassifier, NeuralNetRegressor
from skorch.callbacks import PassthroughScoring, ProgressBar
from skorch.dataset import unpack_data
from skorch.helper import predefined_split
from skorch.utils import TeeGenerator
from torch.utils.data import Sampler

from . import distributed
from .callbacks import (
    Convergence,
    GradualUnfreezing,
    LRRangeTest,
    LRSchedule,
    StopOnNonFiniteLoss,
    StopTraining,
)
from .inference import unwrap_worker_error
from .losses import WeightedLoss
from .optim import l2sp_penalty, make_optimizer, optimizer_groups, stage_lr_factors
from .partial import (
    PartialBatches,
    PartialPlan,
    alignment_loss,
    labeled_mask,
    pseudo_label_loss,
    ramp,
)
from .runtime import autocast, fork_rng, full_precision, is_cuda, to_device


@dataclass(frozen=True)
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
    n_iter_no_change: int = 10
    tol: float = 1e-4
    num_workers: int = 0
    collate_fn: object = None  # texts are tokenised per batch
    partial: PartialPlan | None = None  # unlabeled samples in training
    world_size: int = 1  # processes of a data-parallel fit (``distributed``)

    @property
    def total_steps(self) -> int:
        return self.max_epochs * self.steps_per_epoch

    @property
    def steps_per_epoch(self) -> int:
        return n_batches(self.n_train, self.batch_size, self.world_size)


def smallest_batch(world_size: int = 1) -> int:
    """The fewest samples a training batch may have: two per process, so
    that BatchNorm layers in training mode never see a single sample."""
    return 2 * int(world_size)


def n_batches(n: int, batch_size: int, world_size: int = 1) -> int:
    """Training batches per epoch: a last batch smaller than
    ``smallest_batch`` is merged into the one before (``MergedBatches``)."""
    full, rest = divmod(n, batch_size)
    return max(1, full + (rest >= smallest_batch(world_size)))


class MergedBatches(Sampler):
    """Shuffled batches of ``batch_size``, except that a last batch of a
    single sample joins the one before: a BatchNorm layer in training mode
    cannot normalise one sample (torch raises "Expected more than 1 value
    per channel"), and dropping it would leave a sample out of the epoch.
    In a data-parallel fit the last batch joins the one before when it has
    fewer than two samples per process."""

    def __init__(self, n: int, batch_size: int, world_size: int = 1):
        self.n = int(n)
        self.batch_size = int(batch_size)
        self.world_size = int(world_size)

    def __len__(self):
        return n_batches(self.n, self.batch_size, self.world_size)

    def __iter__(self):
        # the draws of DataLoader's own shuffling (RandomSampler), so a seeded
        # fit sees the batches it saw before this sampler existed
        seed = int(torch.empty((), dtype=torch.int64).random_().item())
        generator = torch.Generator()
        generator.manual_seed(seed)
        order = torch.randperm(self.n, generator=generator).tolist()
        batches = [order[i:i + self.batch_size] for i in range(0, self.n, self.batch_size)]
        if len(batches) > 1 and len(batches[-1]) < smallest_batch(self.world_size):
            last = batches.pop()
            batches[-1] = batches[-1] + last
        yield from batches


class ShardedBatches(Sampler):
    """This process's share of each batch of ``batches`` (a batch sampler
    that every process draws alike): one fit's global batches, split
    between the processes of a data-parallel fit."""

    def __init__(self, batches, index: int, size: int):
        self.batches = batches
        self.index = int(index)
        self.size = int(size)

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        for batch in self.batches:
            yield distributed.shard(batch, self.index, self.size)


class DataParallel:
    """A data-parallel fit's ``DistributedDataParallel`` around the net's
    module (held outside skorch's torch attributes: it is never pickled),
    rebuilt when the set of trainable parameters changes."""

    def __init__(self, module, device: str):
        self.module = module
        self.device = device
        self.ddp = distributed.wrap(module, device)
        self.trainable = distributed.trainable_signature(module)

    def rewrap_if_changed(self) -> None:
        signature = distributed.trainable_signature(self.module)
        if signature != self.trainable:
            self.ddp = distributed.wrap(self.module, self.device)
            self.trainable = signature


class TransferNetMixin:
    """What sktransfer adds to skorch's classifier and regressor nets."""

    def __init__(self, *args, precision="32", max_grad_norm=None, l2sp_strength=0.0,
                 channels_last=False, layer_decay=1.0, backbone_lr_mult=1.0,
                 optimizer_name="adamw", weight_decay=0.0, partial=None, total_steps=1,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.partial = partial
        self.total_steps = total_steps
        self.precision = precision
        self.max_grad_norm = max_grad_norm
        self.l2sp_strength = l2sp_strength
        self.channels_last = channels_last
        self.layer_decay = layer_decay
        self.backbone_lr_mult = backbone_lr_mult
        self.optimizer_name = optimizer_name
        self.weight_decay = weight_decay

    # -- initialisation ----------------------------------------------------------

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
        # skorch moves module_ & co. through torch's map_location on
        # unpickling, but pickles the `module` init argument plainly; it is
        # the same trained instance here, so route it the same way (else a
        # net pickled on CUDA cannot load on a CPU-only machine).
        if "module" not in self.cuda_dependent_attributes_:
            self.cuda_dependent_attributes_ = [*self.cuda_dependent_attributes_, "module"]
        if self.channels_last:
            self.module_.to(memory_format=torch.channels_last)
        device_type = torch.device(self.device).type
        self.scaler_ = torch.amp.GradScaler(device_type, enabled=self.precision == "16")
        self.steps_done_ = 0  # training steps so far (the partial-label ramp reads it)
        # a data-parallel fit (torchrun): DDP trains module_
        self.data_parallel_ = DataParallel(self.module_, self.device) if distributed.active() \
            else None
        if self.l2sp_strength > 0:
            self.l2sp_reference_ = {name: param.detach().clone()
                                    for name, param in self.module_.trunk.named_parameters()}
        return self

    # -- the loop ---------------------------------------------------------------------

    def fit(self, X, y=None, **fit_params):
        """Initialise, train on ``X`` (a Dataset of ``(input, (y, weight))``),
        then drop what only training needs. An error raised in a DataLoader
        worker (an unreadable image file) arrives as the worker raised it."""
        worker_error = None
        try:
            super().fit(X, y, **fit_params)
        except Exception as exc:
            worker_error = unwrap_worker_error(exc)
            if worker_error is exc:
                raise
        if worker_error is not None:
            raise worker_error  # outside the except block: not chained to torch's wrapper
        if self._parallel():
            # every rank leaves with rank 0's network and history
            distributed.sync_from_main(self.module_)
            self.history_ = distributed.agree_object(self.history_)
        self.drop_training_state()
        return self

    def partial_fit(self, X, y=None, classes=None, **fit_params):
        """skorch's ``partial_fit``, except that a real interruption
        propagates instead of ending training quietly, so an interrupted fit
        never looks like a finished one; a callback's ``StopTraining``
        (convergence, the range test) ends it as finished."""
        if not self.initialized_:
            self.initialize()
        self.notify("on_train_begin", X=X, y=y)
        try:
            self.fit_loop(X, y, **fit_params)
        except StopTraining:
            pass
        self.notify("on_train_end", X=X, y=y)
        return self

    @property
    def converged_(self) -> bool:
        """Whether the convergence rule ended the fit (False: ``max_epochs``);
        True for a fit without the rule (unlabeled samples in training, which
        runs its whole budget)."""
        rule = dict(self.callbacks_).get("convergence")
        return rule is None or rule.converged_

    def drop_training_state(self):
        """Keep pickles small and portable: no scaler, L2-SP reference,
        validation data or optimizer state (Adam's two moments per parameter
        were two thirds of a fitted MobileNetV2's pickle). The optimizer
        itself stays, empty: a future warm start would keep its state by
        not calling this."""
        for name in ("scaler_", "l2sp_reference_", "steps_done_", "data_parallel_"):
            self.__dict__.pop(name, None)
        self.train_split = None  # it holds training data; a fitted model must not
        optimizer = getattr(self, "optimizer_", None)
        if optimizer is not None:
            optimizer.state.clear()

    def _set_training(self, training=True):
        # skorch calls this before every batch; walking every submodule each
        # time costs more than a small head's whole step, so skip it when the
        # network is already in that mode (modes change only through train()).
        modules = [getattr(self, name + "_") for name in self._modules + self._criteria]
        if all(not isinstance(m, torch.nn.Module) or m.training == training for m in modules):
            return
        super()._set_training(training)

    def get_iterator(self, dataset, training=False):
        """skorch's iterator for validation; training batches are shuffled
        ``MergedBatches`` (never a batch of one), or with unlabeled samples
        batches of labeled plus unlabeled samples (``PartialBatches``); in
        a data-parallel fit, this process's share of each."""
        if not training:
            return super().get_iterator(dataset, training=training)
        kwargs = self.get_params_for("iterator_train")
        for name in ("shuffle", "batch_size", "drop_last", "sampler"):
            kwargs.pop(name, None)
        world = distributed.world_size() if self._parallel() else 1
        if self.partial is not None:
            sampler = PartialBatches(self.partial.labeled, self.partial.unlabeled,
                                     self.batch_size, self.partial.ratio, min_last=world)
        else:
            sampler = MergedBatches(len(dataset), self.batch_size, world)
        if world > 1:
            sampler = ShardedBatches(sampler, distributed.rank(), world)
        return self.iterator_train(dataset, batch_sampler=sampler, **kwargs)

    def _parallel(self) -> bool:
        return getattr(self, "data_parallel_", None) is not None

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        """skorch's epoch; in a data-parallel fit, DDP is rebuilt when the
        trainable parameters changed (gradual unfreezing), and validation
        runs with rank 0's BatchNorm statistics on every rank."""
        if self._parallel() and iterator is not None:
            if training:
                self.data_parallel_.rewrap_if_changed()
            else:
                distributed.sync_from_main(self.module_)
        return super().run_single_epoch(iterator, training, prefix, step_fn, **fit_params)

    # -- one step -------------------------------------------------------------------------

    def infer(self, x, **fit_params):
        x = to_device(x, self.device, self.channels_last)
        with autocast(self.precision, self.device):
            if self._parallel() and self.module_.training:
                return self.data_parallel_.ddp(x, **fit_params)  # DDP averages the gradients
            return super().infer(x, **fit_params)

    def _features_and_outputs(self, x):
        """The trunk's flattened features and the head's outputs, in one
        forward pass (through DDP in a data-parallel fit)."""
        runner = self.data_parallel_.ddp if self._parallel() else self.module_
        with autocast(self.precision, self.device):
            return runner(x, with_features=True)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        loss = super().get_loss(full_precision(y_pred), y_true, X=X, training=training)
        if training and self.l2sp_strength > 0:
            penalty = l2sp_penalty(self.module_, self.l2sp_reference_)
            loss = loss + 0.5 * self.l2sp_strength * penalty
        return loss

    def _partial_loss(self, Xi, yi):
        """The loss of a batch of labeled and unlabeled samples: the
        labeled samples' loss plus the unlabeled term and the domain
        alignment (``partial``), each logged in the history per batch.
        Returns the loss and the labeled samples' outputs."""
        plan = self.partial
        y, weight = yi
        labeled = labeled_mask(y)
        unlabeled = ~labeled
        two_views = plan.method == "fixmatch"
        # FixMatch items are (weak view, strong view); the others one input
        x = Xi[:, 0] if two_views else Xi
        if two_views:
            x = torch.cat([x, Xi[unlabeled.to(Xi.device), 1]])
        x = to_device(x, self.device, self.channels_last)
        labeled, unlabeled = labeled.to(self.device), unlabeled.to(self.device)
        n = len(labeled)
        features, outputs = self._features_and_outputs(x)
        outputs = full_precision(outputs)
        y_pred = outputs[:n][labeled]
        loss = self.get_loss(y_pred, (y[labeled.cpu()], weight[labeled.cpu()]), training=True)
        if not bool(unlabeled.any()):  # cannot happen with PartialBatches; kept safe
            for name in ("unlabeled_loss", "adaptation_loss"):
                self.history.record_batch(name, 0.0)
            return loss, y_pred
        progress = ramp(self.steps_done_ / max(1, self.total_steps))
        if plan.method is not None:
            own = outputs[:n][unlabeled]
            student = outputs[n:] if two_views else own
            scale = 1.0 if two_views else progress
            term = pseudo_label_loss(student, own, plan.threshold)
            self.history.record_batch("unlabeled_loss", term.item())
            loss = loss + plan.weight * scale * term
        if plan.adaptation is not None:
            source, target = features[:n][labeled], features[:n][unlabeled]
            strength = plan.strength * progress
            term = alignment_loss(plan.adaptation, self.module_, source, target, strength)
            self.history.record_batch("adaptation_loss", term.item())
            loss = loss + (term if plan.adaptation == "dann" else strength * term)
        return loss, y_pred

    def train_step(self, batch, **fit_params):
        self._set_training(True)
        Xi, yi = unpack_data(batch)
        if self.partial is not None:
            return self._train_step_partial(Xi, yi)
        optimizer = self.optimizer_
        optimizer.zero_grad(set_to_none=True)
        y_pred = self.infer(Xi, **fit_params)
        loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        self._backward_and_step(loss, optimizer, batch)
        return {"loss": self._logged(loss), "y_pred": y_pred}

    def _logged(self, loss):
        """The loss the history records and the callbacks act on: in a
        data-parallel fit, averaged over the processes, so every process
        takes the same decisions."""
        loss = loss.detach()
        return distributed.mean(loss) if self._parallel() else loss

    def _train_step_partial(self, Xi, yi):
        optimizer = self.optimizer_
        optimizer.zero_grad(set_to_none=True)
        loss, y_pred = self._partial_loss(Xi, yi)
        self._backward_and_step(loss, optimizer, (Xi, yi))
        self.steps_done_ += 1
        return {"loss": self._logged(loss), "y_pred": y_pred}

    def _backward_and_step(self, loss, optimizer, batch):
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


class TransferNetClassifier(TransferNetMixin, NeuralNetClassifier):
    """skorch classifier net with sktransfer's training additions."""


class TransferNetRegressor(TransferNetMixin, NeuralNetRegressor):
    """skorch regressor net with sktransfer's training additions."""


# -- configuring a net from a plan -------------------------------------------------------


def _callbacks(module, plan: TrainingPlan, task: str, groups=None) -> list:
    callbacks = [("stop_on_nonfinite_loss", StopOnNonFiniteLoss())]
    # always there (a "constant" schedule too): the cool-down before a
    # converged fit stops runs through it
    total = plan.max_epochs * plan.steps_per_epoch
    warmup = int(round(plan.warmup_epochs * plan.steps_per_epoch))
    callbacks.append(("lr_schedule", LRSchedule(plan.lr_schedule, total, warmup)))
    if plan.unfreeze_plan:
        factors = stage_lr_factors(module.n_stages, plan.layer_decay, plan.backbone_lr_mult)
        decay = 0.0 if plan.l2sp_strength > 0 else plan.weight_decay
        callbacks.append(("gradual_unfreezing", GradualUnfreezing(
            plan.unfreeze_plan, factors, plan.lr, decay, plan.bn_mode)))
    if plan.partial is None or plan.valid_dataset is not None:
        # with unlabeled samples the training loss moves with the pseudo-labels
        # and the alignment's ramp: such a fit runs its budget, or stops on
        # the validation score
        callbacks.append(("convergence", Convergence(
            plan.tol, plan.n_iter_no_change, task, validate=plan.valid_dataset is not None,
            steps_per_epoch=plan.steps_per_epoch, groups=groups)))
    if plan.partial is not None:
        # the per-batch terms of _partial_loss, averaged into each epoch's record
        for name, used in (("unlabeled_loss", plan.partial.method),
                           ("adaptation_loss", plan.partial.adaptation)):
            if used is not None:
                callbacks.append((name, PassthroughScoring(name, on_train=True)))
    if plan.verbose >= 2:
        callbacks.append(("progress_bar", ProgressBar()))
    return callbacks


def build_net(module, *, task: str, n_outputs: int, loss: str, plan: TrainingPlan,
              callbacks=None, groups=None):
    """The skorch net that trains ``module``: a classifier over logits with
    weighted cross-entropy, or a regressor with the weighted ``loss``.
    ``callbacks`` replaces the plan's callbacks (the range test's probe);
    ``groups`` splits a multi-task classifier's outputs into its tasks."""
    pin = is_cuda(plan.device)
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
        iterator_train__collate_fn=plan.collate_fn,
        iterator_valid__collate_fn=plan.collate_fn,
        callbacks=_callbacks(module, plan, task, groups) if callbacks is None else callbacks,
        verbose=int(plan.verbose >= 1),
        precision=plan.precision,
        max_grad_norm=plan.max_grad_norm,
        l2sp_strength=plan.l2sp_strength,
        channels_last=plan.channels_last,
        layer_decay=plan.layer_decay,
        backbone_lr_mult=plan.backbone_lr_mult,
        optimizer_name=plan.optimizer,
        weight_decay=plan.weight_decay,
        partial=plan.partial,
        total_steps=plan.total_steps,
    )
    if task == "classification":
        # skorch's valid_acc scorer expects plain labels, not (label, weight)
        return TransferNetClassifier(criterion__kind="cross_entropy", criterion__groups=groups,
                                     classes=list(range(n_outputs)),
                                     callbacks__valid_acc=None, **kwargs)
    return TransferNetRegressor(criterion__kind=loss, **kwargs)


def find_lr(module, dataset, *, task: str, n_outputs: int, loss: str, plan: TrainingPlan,
            num_steps: int = 100, groups=None) -> float:
    """``lr="auto"``: the range test's suggested rate for ``plan``, run with
    the net's own training step on a copy of ``module`` (the real network
    is untouched) and a forked random state (the fit's batch order is the
    same as with a fixed rate). At most ``num_steps`` steps, and at most ten
    epochs' worth on small data."""
    steps = max(2, min(num_steps, 10 * plan.steps_per_epoch))
    test = LRRangeTest(num_steps=steps)
    probe_plan = dataclasses.replace(
        plan, lr=1.0, lr_schedule="constant", warmup_epochs=0.0, unfreeze_plan=[],
        valid_dataset=None, verbose=0, max_epochs=math.ceil(steps / plan.steps_per_epoch))
    net = build_net(copy.deepcopy(module), task=task, n_outputs=n_outputs, loss=loss,
                    plan=probe_plan, callbacks=[("lr_range_test", test)], groups=groups)
    with fork_rng(plan.device):
        net.fit(dataset)
    return test.suggestion()


def first_batch_loss(net) -> float | None:
    """The loss of the first training batch (None when nothing trained)."""
    if not len(net.history) or not net.history[0].get("batches"):
        return None
    return float(net.history[0]["batches"][0].get("train_loss", float("nan")))


def history_records(net) -> list[dict]:
    """Per-epoch history as plain dicts (no per-batch entries)."""
    def plain(value):
        return value.item() if isinstance(value, np.generic) else value

    return [{k: plain(v) for k, v in row.items() if k != "batches"} for row in net.history]
