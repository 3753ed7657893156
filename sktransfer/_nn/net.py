"""The skorch nets that train a ``TransferModule``, configured by the fit's
``Recipe`` and its ``TrainingData``.

The public estimators hold one of these in ``net_``; they are never exposed
as estimators themselves. The net owns its loop: ``fit`` initialises and
runs skorch's loop through skorch's own override points
(``initialize_module``, ``initialize_optimizer``, ``train_step``, ``infer``,
``get_loss``, ``partial_fit``) and callbacks, then drops what only training
needs. Each setting is read from the recipe where it is used. What it adds
to skorch: parameter groups per stage, mixed precision (autocast, and loss
scaling for float16), gradient clipping, the backbone regularisation,
the unlabeled samples' terms, DP-SGD (Poisson-sampled batches, per-sample
clipping and noise, ``sktransfer._nn.privacy``), channels_last inputs and
non-blocking copies to the device. The learning-rate range test is a
callback on a copy of the net, so it runs the same training step.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
from skorch import NeuralNetClassifier, NeuralNetRegressor
from skorch.callbacks import PassthroughScoring, ProgressBar
from skorch.dataset import unpack_data
from skorch.helper import predefined_split
from skorch.utils import TeeGenerator
from torch.utils.data import Sampler
from torch.utils.data.dataloader import default_collate

from .._deadline import current_deadline
from .._options import IMAGES
from . import distributed, privacy
from .batches import even_batches, n_batches, smallest_batch
from .callbacks import (
    Convergence,
    GradualUnfreezing,
    LRRangeTest,
    LRSchedule,
    StopAtDeadline,
    StopOnNonFiniteLoss,
    StopTraining,
)
from .freezing import frozen_stages, release_schedule
from .inference import unwrap_worker_error
from .losses import WeightedLoss
from .optim import make_optimizer, optimizer_groups, stage_lr_factors
from .partial import PartialBatches, labeled_mask, ramp
from .runtime import autocast, fork_rng, full_precision, is_cuda, to_device


@dataclass(frozen=True)
class TrainingData:
    """What a net trains on besides its dataset: the number of labeled
    training samples, the validation set (early stopping), how batches are
    collated and loaded, and, with unlabeled samples in training, the
    positions of the labeled and the unlabeled items of the training set."""

    n_train: int
    valid_set: object = None
    collate_fn: object = None  # texts are tokenised per batch
    num_workers: int = 0
    labeled: np.ndarray | None = None
    unlabeled: np.ndarray | None = None

    @property
    def partial(self) -> bool:
        return self.unlabeled is not None and len(self.unlabeled) > 0


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    return n_batches(n_train, batch_size, smallest_batch(distributed.world_size()))


def epoch_steps(recipe, n_train: int) -> int:
    """Optimizer steps in one epoch of ``n_train`` samples: the even cut's
    batches, or a private fit's Poisson-sampled steps."""
    if recipe.privacy is not None:
        return privacy.steps_per_epoch(n_train, recipe.training_batch(n_train))
    return steps_per_epoch(n_train, recipe.schedule.batch_size)


class EvenBatches(Sampler):
    """Shuffled batches of at most ``batch_size``, their sizes even
    (``batches.even_batches``) and never under two samples per process:
    a BatchNorm layer in training mode cannot normalise one sample, and a
    short last batch upsets its statistics."""

    def __init__(self, n: int, batch_size: int, world_size: int = 1):
        self.n = int(n)
        self.batch_size = int(batch_size)
        self.world_size = int(world_size)

    def __len__(self):
        return n_batches(self.n, self.batch_size, smallest_batch(self.world_size))

    def __iter__(self):
        # the draws of DataLoader's own shuffling (RandomSampler): a seeded fit
        # sees the same batches as a plain shuffled DataLoader
        seed = int(torch.empty((), dtype=torch.int64).random_().item())
        generator = torch.Generator()
        generator.manual_seed(seed)
        order = torch.randperm(self.n, generator=generator).tolist()
        yield from even_batches(order, len(self))


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
    """What sktransfer adds to skorch's classifier and regressor nets; every
    setting comes from ``recipe`` (``sktransfer._recipe.Recipe``, without its
    backbone group)."""

    def __init__(self, *args, recipe=None, data: TrainingData | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.recipe = recipe
        self.data = data

    @property
    def precision(self) -> str:
        return self.recipe.runtime.precision

    @property
    def channels_last(self) -> bool:
        # channels_last speeds up convolutions on CPUs (oneDNN) and GPUs alike
        return self.recipe.input_kind == IMAGES

    @property
    def total_steps(self) -> int:
        return self.recipe.schedule.max_epochs * epoch_steps(self.recipe, self.data.n_train)

    # -- initialisation ----------------------------------------------------------

    def initialize_module(self):
        """skorch's module, plus the training-only module of the alignment
        (DANN's or CDAN's domain classifier) when unlabeled samples train: a
        module of the net, so it moves, trains and is optimised with the
        head; ``drop_training_state`` removes it when the fit ends."""
        super().initialize_module()
        adaptation = self.recipe.methods.adaptation
        extra = None
        if adaptation is not None and self.data is not None and self.data.partial:
            n_classes = self.module_.head[-1].out_features \
                if self.recipe.task == "classification" else None
            extra = adaptation.extra_module(self.module_.n_aligned, n_classes)
        if extra is not None:
            dtype = next(self.module_.trunk.parameters()).dtype
            self.alignment_module_ = extra.to(device=self.device, dtype=dtype)
        return self

    def initialize_optimizer(self, triggered_directly=None):
        optimisation = self.recipe.optimisation
        groups = optimizer_groups(
            self.module_, lr=self.lr, weight_decay=optimisation.weight_decay,
            layer_decay=optimisation.layer_decay,
            backbone_lr_mult=optimisation.backbone_lr_mult,
            l2sp=optimisation.regularization is not None,
            extra=getattr(self, "alignment_module_", None),
        )
        self.optimizer_ = make_optimizer(groups, name=optimisation.optimizer, lr=self.lr)
        if self.recipe.privacy is not None:
            # the module's per-sample gradients, clipped, noised and accounted
            n_train = self.data.n_train
            plan = privacy.plan(self.recipe.privacy, n_train, self.recipe.training_batch(n_train),
                                self.recipe.schedule.max_epochs)
            self.private_ = privacy.PrivateTraining(self.module_, self.optimizer_, plan)
            self.optimizer_ = self.private_.optimizer
        return self

    def initialize(self):
        super().initialize()
        self._place_module()
        return self._training_state()

    def initialize_holding(self):
        """Initialise only what holding and running the module needs: the
        module, the criterion and an empty history; no optimizer, scaler or
        callbacks (for a head solved in closed form, which never trains by
        steps)."""
        self._initialize_virtual_params()
        self._initialize_callbacks()
        self._initialize_module()
        self._initialize_criterion()
        self._initialize_history()
        self.initialized_ = True
        self._place_module()
        return self

    def _place_module(self):
        # skorch moves module_ & co. through torch's map_location on
        # unpickling, but pickles the `module` init argument plainly; it is
        # the same trained instance here, so route it the same way (else a
        # net pickled on CUDA cannot load on a CPU-only machine).
        if "module" not in self.cuda_dependent_attributes_:
            self.cuda_dependent_attributes_ = [*self.cuda_dependent_attributes_, "module"]
        if self.channels_last:
            self.module_.to(memory_format=torch.channels_last)

    def _training_state(self):
        device_type = torch.device(self.device).type
        self.scaler_ = torch.amp.GradScaler(device_type, enabled=self.precision == "16")
        self.steps_done_ = 0  # training steps so far (the unlabeled terms' ramp reads it)
        if distributed.active() and self.recipe.privacy is not None:
            raise ValueError(
                "privacy trains in one process (its per-sample clipping and noise are not "
                "shared between processes); run the private fit without torchrun, or set "
                "privacy=None."
            )
        # a data-parallel fit (torchrun): DDP trains module_
        self.data_parallel_ = DataParallel(self.module_, self.device) if distributed.active() \
            else None
        if self.recipe.optimisation.regularization is not None:
            self.regularization_reference_ = {
                name: param.detach().clone()
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
        validation data, optimizer state (Adam's two moments per parameter
        were two thirds of a fitted MobileNetV2's pickle) or domain
        classifier (predicting never uses it). The optimizer itself stays,
        empty: a future warm start would keep its state by not calling this."""
        if getattr(self, "private_", None) is not None:
            self._close_private()
        for name in ("scaler_", "regularization_reference_", "steps_done_", "data_parallel_"):
            self.__dict__.pop(name, None)
        if hasattr(self, "alignment_module_"):
            self._drop_alignment_module()
        # they hold training data; a fitted model must not
        self.train_split = None
        self.data = None
        optimizer = getattr(self, "optimizer_", None)
        if optimizer is not None:
            optimizer.state.clear()

    def _close_private(self):
        """Keep what the accountant says was spent (``privacy_spent_``),
        remove Opacus's hooks, go back to the plain optimizer, and drop the
        training losses from the history: they are statistics of the
        private samples, outside the guarantee."""
        self.privacy_spent_ = self.private_.spent()
        self.optimizer_ = self.private_.close()
        del self.private_
        for row in self.history:
            for record in [row, *row.get("batches", [])]:
                for key in [k for k in record if "loss" in k]:
                    del record[key]

    def _drop_alignment_module(self):
        """Remove the domain classifier from the net and from the optimizer
        (skorch's ``__delattr__`` unregisters it from the net's modules)."""
        extra = {id(p) for p in self.alignment_module_.parameters()}
        optimizer = getattr(self, "optimizer_", None)
        if optimizer is not None:
            for group in optimizer.param_groups:
                group["params"] = [p for p in group["params"] if id(p) not in extra]
        delattr(self, "alignment_module_")

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
        ``EvenBatches`` (even sizes, never a batch of one), or with unlabeled samples
        batches of labeled plus unlabeled samples (``PartialBatches``); in
        a data-parallel fit, this process's share of each."""
        if not training:
            return super().get_iterator(dataset, training=training)
        kwargs = self.get_params_for("iterator_train")
        for name in ("shuffle", "batch_size", "drop_last", "sampler"):
            kwargs.pop(name, None)
        world = distributed.world_size() if self._parallel() else 1
        if self.recipe.privacy is not None:
            plan = self.private_.plan
            collate = privacy.EmptySafeCollate(kwargs.pop("collate_fn", None) or default_collate,
                                               dataset)
            sampler = privacy.PoissonBatches(len(dataset), plan.sample_rate,
                                             epoch_steps(self.recipe, len(dataset)))
            return self.iterator_train(dataset, batch_sampler=sampler, collate_fn=collate,
                                       **kwargs)
        if self.data.partial:
            sampler = PartialBatches(self.data.labeled, self.data.unlabeled, self.batch_size,
                                     self.recipe.methods.ratio, min_last=world)
        else:
            sampler = EvenBatches(len(dataset), self.batch_size, world)
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
        regularization = self.recipe.optimisation.regularization
        if training and regularization is not None:
            loss = loss + regularization.penalty(self.module_, self.regularization_reference_)
        return loss

    def _partial_loss(self, Xi, yi):
        """The loss of a batch of labeled and unlabeled samples: the
        labeled samples' loss plus the semi-supervised term and the domain
        alignment (the recipe's methods), each logged in the history per
        batch. Returns the loss and the labeled samples' outputs."""
        methods = self.recipe.methods
        y, weight = yi
        labeled = labeled_mask(y)
        unlabeled = ~labeled
        # two-view items are (weak view, strong view); the others one input
        x = Xi[:, 0] if methods.two_views else Xi
        if methods.two_views:
            x = torch.cat([x, Xi[unlabeled.to(Xi.device), 1]])
        x = to_device(x, self.device, self.channels_last)
        labeled, unlabeled = labeled.to(self.device), unlabeled.to(self.device)
        n = len(labeled)
        features, outputs = self._features_and_outputs(x)
        outputs = full_precision(outputs)
        y_pred = outputs[:n][labeled]
        loss = self.get_loss(y_pred, (y[labeled.cpu()], weight[labeled.cpu()]), training=True)
        if not bool(unlabeled.any()):  # a process's share of a batch may hold none
            for name in ("unlabeled_loss", "adaptation_loss"):
                self.history.record_batch(name, 0.0)
            return loss, y_pred
        progress = ramp(self.steps_done_ / max(1, self.total_steps))
        method = methods.semi_supervised
        if method is not None:
            own = outputs[:n][unlabeled]
            student = outputs[n:] if methods.two_views else own  # strong views, or the same
            added, term = method.loss(student, own, progress)
            self.history.record_batch("unlabeled_loss", term.item())
            loss = loss + added
        if methods.adaptation is not None:
            source, target = features[:n][labeled], features[:n][unlabeled]
            logits = (y_pred, outputs[:n][unlabeled])
            added, term = methods.adaptation.loss(source, target, progress,
                                                  getattr(self, "alignment_module_", None),
                                                  logits)
            self.history.record_batch("adaptation_loss", term.item())
            loss = loss + added
        return loss, y_pred

    def train_step(self, batch, **fit_params):
        self._set_training(True)
        Xi, yi = unpack_data(batch)
        if self.data.partial:
            return self._train_step_partial(Xi, yi)
        optimizer = self.optimizer_
        optimizer.zero_grad(set_to_none=True)
        y_pred = self.infer(Xi, **fit_params)
        if len(y_pred):
            loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        else:  # an empty Poisson draw: no sample's gradient, the step's noise alone
            loss = y_pred.sum()
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
        private = getattr(self, "private_", None)
        with private.backward() if private is not None else contextlib.nullcontext():
            self.scaler_.scale(loss).backward()
        max_norm = self.recipe.optimisation.max_grad_norm
        if max_norm is not None:
            self.scaler_.unscale_(optimizer)
            params = [p for group in optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, max_norm)
        self.notify("on_grad_computed",
                    named_parameters=TeeGenerator(self.get_all_learnable_params()),
                    batch=batch, training=True)
        self.scaler_.step(optimizer)
        self.scaler_.update()


class TransferNetClassifier(TransferNetMixin, NeuralNetClassifier):
    """skorch classifier net with sktransfer's training additions."""


class TransferNetRegressor(TransferNetMixin, NeuralNetRegressor):
    """skorch regressor net with sktransfer's training additions."""


# -- configuring a net from a recipe -------------------------------------------------------


def _callbacks(module, recipe, data: TrainingData, groups=None) -> list:
    # a private fit runs its planned steps whatever its losses (a stop that
    # depends on the private samples is not accounted for)
    private = recipe.privacy is not None
    callbacks = [] if private else [("stop_on_nonfinite_loss", StopOnNonFiniteLoss())]
    schedule, optimisation = recipe.schedule, recipe.optimisation
    per_epoch = epoch_steps(recipe, data.n_train)
    # always there (a "constant" schedule too): the cool-down before a
    # converged fit stops runs through it
    lr_schedule = LRSchedule(schedule.lr_schedule, schedule.max_epochs * per_epoch,
                             int(round(schedule.warmup_epochs * per_epoch)))
    callbacks.append(("lr_schedule", lr_schedule))
    frozen = frozen_stages(recipe.freezing.depth, module.n_stages, "")
    releases = release_schedule(recipe.freezing.unfreeze_at, frozen)
    if releases:
        factors = stage_lr_factors(module.n_stages, optimisation.layer_decay,
                                   optimisation.backbone_lr_mult)
        decay = 0.0 if optimisation.regularization is not None else optimisation.weight_decay
        callbacks.append(("gradual_unfreezing", GradualUnfreezing(
            releases, factors, optimisation.lr, decay, recipe.freezing.bn_mode)))
    validate = data.valid_set is not None
    if (not data.partial or validate) and not private:
        # with unlabeled samples the training loss moves with the pseudo-labels
        # and the alignment's ramp: such a fit runs its budget, or stops on
        # the validation score
        callbacks.append(("convergence", Convergence(
            recipe.stopping, recipe.task, validate=validate, steps_per_epoch=per_epoch,
            groups=groups, schedule=lr_schedule)))
    if data.partial:
        # the per-batch terms of _partial_loss, averaged into each epoch's record
        for name, used in (("unlabeled_loss", recipe.methods.semi_supervised),
                           ("adaptation_loss", recipe.methods.adaptation)):
            if used is not None:
                callbacks.append((name, PassthroughScoring(name, on_train=True)))
    if recipe.runtime.verbose >= 2:
        callbacks.append(("progress_bar", ProgressBar()))
    limit = current_deadline()
    if limit is not None:
        callbacks.append(("deadline", StopAtDeadline(limit)))
    return callbacks


def build_net(module, recipe, data: TrainingData, *, n_outputs: int, groups=None,
              callbacks=None):
    """The skorch net that trains ``module`` as ``recipe`` says (its backbone
    group is left out: the net never needs it, and a pickle must not carry a
    source network): a classifier over logits with weighted cross-entropy, or
    a regressor with the weighted loss. ``callbacks`` replaces the recipe's
    callbacks (the range test's probe); ``groups`` splits a multi-task
    classifier's outputs into its tasks."""
    recipe = dataclasses.replace(recipe, backbone=None)
    runtime = recipe.runtime
    pin = is_cuda(runtime.device)
    kwargs = dict(
        module=module,
        criterion=WeightedLoss,
        lr=recipe.optimisation.lr,
        max_epochs=recipe.schedule.max_epochs,
        batch_size=recipe.schedule.batch_size,
        train_split=None if data.valid_set is None else predefined_split(data.valid_set),
        device=runtime.device,
        iterator_train__shuffle=True,
        iterator_train__pin_memory=pin,
        iterator_valid__pin_memory=pin,
        iterator_train__num_workers=data.num_workers,
        iterator_valid__num_workers=data.num_workers,
        iterator_train__collate_fn=data.collate_fn,
        iterator_valid__collate_fn=data.collate_fn,
        callbacks=_callbacks(module, recipe, data, groups) if callbacks is None else callbacks,
        verbose=int(runtime.verbose >= 1),
        recipe=recipe,
        data=data,
    )
    if recipe.privacy is not None:
        kwargs["callbacks__train_loss"] = None  # a statistic of the private samples
    if recipe.task == "classification":
        # skorch's valid_acc scorer expects plain labels, not (label, weight)
        return TransferNetClassifier(criterion__loss="cross_entropy", criterion__groups=groups,
                                     criterion__distillation=recipe.methods.distillation,
                                     classes=list(range(n_outputs)),
                                     callbacks__valid_acc=None, **kwargs)
    return TransferNetRegressor(criterion__loss=recipe.loss, **kwargs)


def find_lr(module, dataset, recipe, data: TrainingData, *, n_outputs: int, groups=None,
            num_steps: int = 100) -> float:
    """``lr="auto"``: the range test's suggested rate, run with the net's own
    training step on a copy of ``module`` (the real network is untouched)
    and a forked random state (the fit's batch order is the same as with a
    fixed rate). At most ``num_steps`` steps, and at most ten epochs' worth
    on small data."""
    per_epoch = steps_per_epoch(data.n_train, recipe.schedule.batch_size)
    steps = max(2, min(num_steps, 10 * per_epoch))
    test = LRRangeTest(num_steps=steps)
    probe = dataclasses.replace(
        recipe,
        optimisation=dataclasses.replace(recipe.optimisation, lr=1.0),
        schedule=dataclasses.replace(recipe.schedule, lr_schedule="constant",
                                     warmup_epochs=0.0,
                                     max_epochs=math.ceil(steps / per_epoch)),
        freezing=dataclasses.replace(recipe.freezing, unfreeze_at=None),
        runtime=dataclasses.replace(recipe.runtime, verbose=0))
    net = build_net(copy.deepcopy(module), probe, dataclasses.replace(data, valid_set=None),
                    n_outputs=n_outputs, groups=groups, callbacks=[("lr_range_test", test)])
    with fork_rng(recipe.runtime.device):
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
