"""The training engine: the one entry point under the estimators.

An estimator validates its inputs, encodes its targets and turns its
parameters into a frozen ``FitSpec``; ``fit(spec, data, targets, ...)`` owns
the rest — seed, build, freeze, the cache decision, the validation split and
training — and returns a ``FitResult`` that ``predict`` reads. The same holds
for embeddings: ``fit_embedder`` / ``embed`` (and ``source_head``, the head a
source model brings, for its label probabilities). Nothing here knows about the
estimator classes.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from .._options import IMAGES, TABULAR, TEXT, UNLABELED_TARGET
from . import distributed
from .data import (
    STRONG,
    ActivationDataset,
    ImageDataset,
    TabularDataset,
    TwoViewDataset,
    data_workers,
    subset,
    tabular_dtype,
)
from .features import cached_embeddings, cut_module, embed_dataset, embedding_key
from .freezing import freeze, frozen_stages, hold_all_norms, unfreeze_plan
from .frozen_cut import (
    CachedActivations,
    activations_collate,
    cache_activations,
    cached_rows,
    refusal,
    skipping,
)
from .inference import Batching, collate_for, evaluating, run_batches
from .model import (
    HeadSpec,
    Trunk,
    attach_head,
    backbone_name,
    check_image_size,
    export_trunk as export_module_trunk,
    load_trunk,
)
from .net import (
    TrainingPlan,
    build_net,
    find_lr,
    first_batch_loss,
    history_records,
    smallest_batch,
)
from .partial import PartialPlan, domain_classifier
from .probe import LinearSolution, load_into_head, solve, trunk_features
from .runtime import (
    cap_worker_threads,
    full_precision,
    resolve_device,
    resolve_precision,
    seeded,
)
from .text import TextDataset, TextPreprocessing
from .source_head import source_head  # noqa: F401  (the estimators' way to a source head)
from .weights import save_weights_file


@dataclass(frozen=True)
class FitSpec:
    """Everything a fit is told, as plain values (the estimator's parameters
    with the backbone resolved, plus the task and a seed)."""

    # what the network is
    task: str  # "classification" or "regression"
    loss: str  # "cross_entropy" or a regression loss
    input_kind: str  # "images" or "tabular"
    backbone: object  # registry name, "mlp", nn.Module, or a fitted estimator's Trunk
    weights: object
    source_head: str
    head: tuple
    head_dropout: float
    head_init: str  # "random" or "probe" (LP-FT)
    probe_alpha: object  # "auto" or the exact probe's penalty
    hidden_layer_sizes: tuple
    activation: str
    freeze_depth: object
    bn_mode: str
    image_size: int | None
    max_length: int  # text backbones
    pooling: str  # text backbones
    # how it trains
    lr: object
    optimizer: str
    weight_decay: float
    max_epochs: object  # int or "auto"
    tol: float
    batch_size: int
    unfreeze_at: object
    layer_decay: float
    backbone_lr_mult: float
    regularization: object
    regularization_strength: float
    lr_schedule: str
    warmup_epochs: float
    early_stopping: bool
    validation_fraction: float
    n_iter_no_change: int
    augment: object
    # unlabeled samples (semi-supervised transfer, domain adaptation)
    unlabeled: object  # None, "ignore", "pseudo_label" or "fixmatch"
    unlabeled_threshold: float
    unlabeled_weight: float
    unlabeled_ratio: object  # int or "auto"
    domain_adaptation: object  # None, "coral", "mmd" or "dann"
    adaptation_strength: float
    precision: str
    max_grad_norm: object
    # caching, workers, device, reproducibility
    cache: bool
    cache_dir: object
    n_jobs: object
    device: str
    seed: int
    verbose: int

    @classmethod
    def from_params(cls, params: dict, **resolved) -> "FitSpec":
        """A spec from an estimator's ``get_params()``, overridden by ``resolved``."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {name: value for name, value in params.items() if name in names}
        values.update(resolved)
        return cls(**values)


@dataclass
class FitResult:
    """A fitted network and what predicting with it needs."""

    net: object
    history: list
    lr: float
    n_stages: int
    device: str
    input_kind: str
    dtype: str
    cache_info: dict
    weights: str | None = None
    converged: bool = True
    probe_alpha: float | None = None
    n_iter: int = 0
    best_epoch: int | None = None
    first_loss: float | None = None  # the first training batch's loss
    preprocessing: object = None
    image_size: int | None = None
    # predict reads the activations it finds cached under this key / cut
    cache_key: str | None = None
    cache_cut: object = None


# -- training recipe decisions ------------------------------------------------------


def resolve_augment(augment, input_kind: str, freeze_depth, unfreeze_at):
    """``augment="auto"``: light augmentation when the whole backbone trains
    at some point; none when some stages stay frozen throughout, so their
    activations can be cached, and none for tabular data."""
    if augment != "auto":
        return augment
    trains_all = freeze_depth == 0 or unfreeze_at is not None
    return "light" if input_kind == IMAGES and trains_all else None


def _mlp_settings(spec: FitSpec, data) -> dict | None:
    if not (isinstance(spec.backbone, str) and spec.backbone == "mlp"):
        return None
    return {"n_features_in": data.shape[1],
            "hidden_layer_sizes": tuple(spec.hidden_layer_sizes),
            "activation": spec.activation}


def _text_settings(spec: FitSpec) -> dict | None:
    if spec.input_kind != TEXT:
        return None
    return {"max_length": spec.max_length, "pooling": spec.pooling}


def _dataset(data, targets, sample_weight, *, prep, size, dtype, augment=None,
             strong_view=False):
    """The dataset of ``data``; ``strong_view`` pairs each image's ``augment``
    view with a strongly augmented one (FixMatch)."""
    if prep is None:
        return TabularDataset(data, targets, sample_weight, dtype)
    if isinstance(prep, TextPreprocessing):
        return TextDataset(data, prep, targets, sample_weight)
    images = ImageDataset(data, prep, size, targets, sample_weight, augment)
    if strong_view:
        strong = ImageDataset(data, prep, size, targets, sample_weight, STRONG)
        return TwoViewDataset(images, strong)
    return images


def _split(spec: FitSpec, targets, positions):
    """The labeled ``positions`` split into training and validation
    positions when early stopping is on (``positions, None`` otherwise); for
    classifiers the split is stratified when every class has two samples or
    more."""
    if not spec.early_stopping:
        return positions, None
    n = len(positions)
    n_valid = max(1, int(round(spec.validation_fraction * n)))
    if n - n_valid < 1:
        raise ValueError(
            f"early_stopping needs at least 2 labeled samples; got {n}. Turn it off "
            "or pass more data."
        )
    stratify = None
    if spec.task == "classification":
        _, counts = np.unique(targets[positions], return_counts=True)
        if counts.min() >= 2 and n_valid >= len(counts):
            stratify = targets[positions]
    return train_test_split(positions, test_size=n_valid, stratify=stratify,
                            random_state=spec.seed)


# -- unlabeled samples ---------------------------------------------------------------------


def uses_unlabeled(spec: FitSpec) -> bool:
    """Whether unlabeled samples take part in training (else they are left out)."""
    return spec.unlabeled in ("pseudo_label", "fixmatch") or spec.domain_adaptation is not None


def _sample_roles(spec: FitSpec, n: int, unlabeled):
    """Positions of the labeled samples, and of the unlabeled ones that
    train (none when the spec leaves them out)."""
    if unlabeled is None:
        return np.arange(n), np.arange(0)
    training = np.flatnonzero(unlabeled) if uses_unlabeled(spec) else np.arange(0)
    return np.flatnonzero(~unlabeled), training


def _unlabeled_ratio(spec: FitSpec) -> int:
    if spec.unlabeled_ratio != "auto":
        return int(spec.unlabeled_ratio)
    return 7 if spec.unlabeled == "fixmatch" else 1  # FixMatch's mu; one-to-one otherwise


def _partial_plan(spec: FitSpec, n_labeled: int, n_unlabeled: int) -> PartialPlan:
    """The training set's first ``n_labeled`` items are labeled, the rest not."""
    method = spec.unlabeled if spec.unlabeled in ("pseudo_label", "fixmatch") else None
    return PartialPlan(method, spec.domain_adaptation, float(spec.unlabeled_threshold),
                       float(spec.unlabeled_weight), float(spec.adaptation_strength),
                       _unlabeled_ratio(spec), np.arange(n_labeled),
                       np.arange(n_labeled, n_labeled + n_unlabeled))


def _check_adaptation(spec: FitSpec, module, frozen) -> None:
    if (spec.domain_adaptation is not None and len(frozen) == module.n_stages
            and spec.unfreeze_at is None):
        raise ValueError(
            f"domain_adaptation={spec.domain_adaptation!r} aligns features the trunk "
            f"learns, but freeze_depth={spec.freeze_depth!r} freezes all "
            f"{module.n_stages} stages; freeze fewer (e.g. freeze_depth=0) or set "
            "unfreeze_at."
        )


# Epochs of max_epochs="auto": about this many optimizer steps, within the bounds.
STEP_BUDGET = 1000
MIN_EPOCHS, MAX_EPOCHS = 10, 200


def budget_epochs(max_epochs, n_train: int, batch_size: int) -> int:
    """``max_epochs``, or for "auto" enough epochs for about ``STEP_BUDGET``
    optimizer steps, at least 10 (a large dataset trains as many epochs as
    with the former fixed default) and at most 200 (scikit-learn MLP's
    ``max_iter``): a 25-sample target gets 200 steps, not 10."""
    if max_epochs != "auto":
        return int(max_epochs)
    steps_per_epoch = max(1, math.ceil(n_train / batch_size))
    return min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(STEP_BUDGET / steps_per_epoch)))


# lr=None: the rate for the backbone's kind (transformer encoders are
# fine-tuned at rates 10-50x below a CNN's or an MLP's)
DEFAULT_LR = {IMAGES: 1e-3, TABULAR: 1e-3, TEXT: 5e-5}


def _learning_rate(spec: FitSpec) -> float:
    """The rate training starts from ("auto": a placeholder the range test
    replaces)."""
    if spec.lr is None or spec.lr == "auto":
        return DEFAULT_LR[spec.input_kind]
    return float(spec.lr)


def _plan(spec: FitSpec, frozen, *, device, precision, n_train, valid_set,
          workers, collate_fn=None, partial=None) -> TrainingPlan:
    return TrainingPlan(
        lr=_learning_rate(spec), optimizer=spec.optimizer,
        weight_decay=spec.weight_decay,
        max_epochs=budget_epochs(spec.max_epochs, n_train, spec.batch_size),
        batch_size=spec.batch_size, device=device, verbose=spec.verbose,
        layer_decay=spec.layer_decay, backbone_lr_mult=spec.backbone_lr_mult,
        l2sp_strength=spec.regularization_strength if spec.regularization == "l2sp" else 0.0,
        lr_schedule=spec.lr_schedule, warmup_epochs=spec.warmup_epochs,
        unfreeze_plan=unfreeze_plan(spec.unfreeze_at, frozen), bn_mode=spec.bn_mode,
        precision=precision, max_grad_norm=spec.max_grad_norm,
        # channels_last speeds up convolutions on CPUs (oneDNN) and GPUs alike
        channels_last=spec.input_kind == IMAGES,
        n_train=n_train, valid_dataset=valid_set, n_iter_no_change=spec.n_iter_no_change,
        tol=spec.tol, num_workers=workers, collate_fn=collate_fn, partial=partial,
        world_size=distributed.world_size(),
    )


# -- fit and predict --------------------------------------------------------------------


def _build(spec: FitSpec, data, targets, sample_weight, *, n_outputs, classes, dtype):
    """The network with its frozen stages, and the un-augmented dataset."""
    trunk = load_trunk(spec.backbone, spec.weights, dtype=dtype, progress=spec.verbose >= 1,
                       mlp=_mlp_settings(spec, data), text=_text_settings(spec))
    frozen = frozen_stages(spec.freeze_depth, len(trunk.stages), backbone_name(spec.backbone))
    prep = size = None
    if spec.input_kind == IMAGES:
        prep = trunk.preprocessing
        size = check_image_size(spec.image_size or prep.image_size, prep, spec.backbone)
    elif spec.input_kind == TEXT:
        prep = trunk.preprocessing
    plain = _dataset(data, targets, sample_weight, prep=prep, size=size, dtype=dtype)
    head = HeadSpec(tuple(spec.head), spec.head_dropout, n_outputs, spec.source_head, classes)
    module = attach_head(trunk, head, sample=plain[0][0],
                         preprocessing=prep if spec.input_kind == IMAGES else None, size=size)
    freeze(module, frozen)
    if spec.bn_mode == "frozen":
        hold_all_norms(module)
    return module, frozen, plain, prep, size, trunk.weights


def _exact_probe_applies(spec: FitSpec, module, frozen, augment, partial: bool) -> bool:
    """The whole trunk frozen throughout, a linear head that is new, the
    same inputs every epoch, and only labeled samples: the head is then a
    convex problem, solved exactly instead of by gradient steps."""
    return (len(frozen) == module.n_stages and tuple(spec.head) == ()
            and spec.unfreeze_at is None and augment is None
            and not module.head_from_source and not partial)


def _probe(spec: FitSpec, module, dataset, positions, targets, sample_weight, *,
           cut, batching, n_outputs, groups=None):
    """The exact linear probe on the trunk's features of ``dataset`` (the
    samples at ``positions``, or all), written into the module's head."""
    if positions is not None:
        dataset = subset(dataset, positions)
        targets, sample_weight = targets[positions], sample_weight[positions]
    if batching.channels_last:
        module.to(memory_format=torch.channels_last)
    with skipping(module.trunk, cut):
        features = trunk_features(module, dataset, batching)
    if groups is None:
        solution = solve(spec.task, features, targets, sample_weight, n_outputs=n_outputs,
                         alpha=spec.probe_alpha, seed=spec.seed, device=batching.device)
    else:
        solution = _solve_tasks(spec, features, targets, sample_weight, groups, batching)
    load_into_head(module.head, solution)
    return solution


def _solve_tasks(spec: FitSpec, features, targets, sample_weight, groups, batching):
    """One probe per task (column of ``targets``) on its labeled rows,
    stacked into one linear head; ``alpha`` lists the tasks' penalties."""
    weights, biases, alphas = [], [], []
    for task, n_classes in enumerate(groups):
        rows = np.flatnonzero(targets[:, task] != UNLABELED_TARGET)
        if n_classes == 1:  # one class: a constant logit predicts it
            weights.append(np.zeros((1, features.shape[1])))
            biases.append(np.zeros(1))
            alphas.append(float("nan"))
            continue
        part = solve(spec.task, features[torch.as_tensor(rows)], targets[rows, task],
                     sample_weight[rows], n_outputs=n_classes, alpha=spec.probe_alpha,
                     seed=spec.seed, device=batching.device)
        weights.append(part.weight)
        biases.append(part.bias)
        alphas.append(part.alpha)
    return LinearSolution(np.vstack(weights), np.concatenate(biases), tuple(alphas))


@dataclass
class _Prepared:
    """What both ways of fitting the head start from: the built network, its
    frozen stages, the un-augmented training data (cached activations when
    they apply) and how to run it."""

    module: object
    frozen: list
    base: object
    cached: CachedActivations
    batching: Batching
    net_kwargs: dict
    labeled: np.ndarray  # positions of the labeled samples
    unlabeled: np.ndarray  # positions of the unlabeled samples that train (or none)


def _fit_exact_probe(spec: FitSpec, run: _Prepared, targets, sample_weight):
    """The head solved on the frozen features; the net is built, not trained."""
    positions = None if len(run.labeled) == len(run.base) else run.labeled
    solution = _probe(spec, run.module, run.base, positions, targets, sample_weight,
                      cut=run.cached.skipped_cut, batching=run.batching,
                      n_outputs=run.net_kwargs["n_outputs"], groups=run.net_kwargs["groups"])
    plan = _plan(spec, run.frozen, device=run.batching.device,
                 precision=run.batching.precision, n_train=len(run.base), valid_set=None,
                 workers=0)
    net = build_net(run.module, plan=plan, **run.net_kwargs).initialize()
    net.drop_training_state()
    return net, plan, solution


def _training_set(run: _Prepared, augmented, train_idx):
    """The training items (labeled ones first, then the unlabeled ones
    that train) and how many are labeled."""
    if len(run.unlabeled):
        return subset(augmented, np.concatenate([train_idx, run.unlabeled])), len(train_idx)
    if len(train_idx) == len(augmented):
        return augmented, len(train_idx)
    return subset(augmented, train_idx), len(train_idx)


def _fine_tune(spec: FitSpec, run: _Prepared, augmented, targets, sample_weight):
    """Gradient training (from the probed head with ``head_init="probe"``),
    with a validation split of the labeled samples when early stopping is
    on, and with the unlabeled samples that train (``PartialPlan``)."""
    module, cached = run.module, run.cached
    train_idx, valid_idx = _split(spec, targets, run.labeled)
    solution = None
    if spec.head_init == "probe" and not module.head_from_source:
        solution = _probe(spec, module, run.base, train_idx, targets, sample_weight,
                          cut=cached.skipped_cut, batching=run.batching,
                          n_outputs=run.net_kwargs["n_outputs"],
                          groups=run.net_kwargs["groups"])
    train_set, n_labeled = _training_set(run, augmented, train_idx)
    partial = (_partial_plan(spec, n_labeled, len(run.unlabeled))
               if len(run.unlabeled) else None)
    if partial is not None and partial.adaptation == "dann":
        dtype = next(module.trunk.parameters()).dtype
        module.domain_classifier = domain_classifier(module.n_features).to(dtype)
    valid_set = None if valid_idx is None else subset(run.base, valid_idx)
    plan = _plan(spec, run.frozen, device=run.batching.device,
                 precision=run.batching.precision, n_train=n_labeled,
                 valid_set=valid_set, workers=run.batching.num_workers,
                 collate_fn=collate_for(train_set), partial=partial)
    try:
        with skipping(module.trunk, cached.skipped_cut):
            if spec.lr == "auto":
                plan = dataclasses.replace(
                    plan, lr=find_lr(module, train_set, plan=plan, **run.net_kwargs))
            net = build_net(module, plan=plan, **run.net_kwargs).fit(train_set)
    finally:
        discriminator = getattr(module, "domain_classifier", None)
        if discriminator is not None:
            del module.domain_classifier
    if discriminator is not None:  # training-only: neither predict nor a pickle needs it
        _forget_parameters(net.optimizer_, discriminator.parameters())
    return net, plan, solution


def _forget_parameters(optimizer, parameters) -> None:
    """Take ``parameters`` out of ``optimizer``'s groups (and state)."""
    gone = {id(p) for p in parameters}
    for group in optimizer.param_groups:
        group["params"] = [p for p in group["params"] if id(p) not in gone]
    for param in [p for p in optimizer.state if id(p) in gone]:
        del optimizer.state[param]


def _join_launch(spec: FitSpec, targets) -> tuple[str, int]:
    """The fit's device and seed. Under ``torchrun`` (``distributed``): this
    process's GPU, the process group joined, rank 0's seed, and the same
    data on every rank checked."""
    device = distributed.local_device(resolve_device(spec.device))
    if not distributed.active():
        return device, spec.seed
    distributed.join(device)
    world = distributed.world_size()
    if spec.batch_size < smallest_batch(world):
        raise ValueError(
            f"batch_size={spec.batch_size} is too small for a data-parallel fit on {world} "
            f"processes: each batch is split between them and each needs at least two "
            f"samples; use batch_size >= {smallest_batch(world)}."
        )
    values = np.nan_to_num(np.asarray(targets, dtype=np.float64).reshape(len(targets), -1))
    checksum = float((values.sum(axis=1) * (1 + np.arange(len(values)) % 97)).sum())
    distributed.check_same_data(len(targets), checksum)
    return device, distributed.shared_seed(spec.seed)


def fit(spec: FitSpec, data, targets, sample_weight, *, n_outputs,
        classes=None, unlabeled=None) -> FitResult:
    """Build, freeze and train a network on validated ``data`` (a table, or
    ``CheckedImages``) with encoded ``targets`` and normalised
    ``sample_weight``; ``n_outputs`` is the head's size (for a multi-task
    classifier, a tuple of each task's number of classes: the head's outputs
    are the tasks' logits side by side, and ``targets`` has one column per
    task, -1 where a task has no label) and ``classes`` the target's labels
    (a source head with the same labels may be kept).
    ``unlabeled`` (a boolean mask, or None) marks the samples without a
    label: they train when ``uses_unlabeled(spec)``, else they are left out.

    A linear head on a trunk frozen throughout is solved exactly (the exact
    linear probe); otherwise the network trains by gradient steps, with
    ``head_init="probe"`` from that probe (LP-FT), until convergence
    (``tol``, ``n_iter_no_change``) or the epoch budget.
    """
    groups = tuple(int(k) for k in n_outputs) if isinstance(n_outputs, tuple) else None
    n_outputs = sum(groups) if groups else int(n_outputs)
    cap_worker_threads()
    device, seed = _join_launch(spec, targets)
    spec = dataclasses.replace(spec, seed=seed)  # under torchrun: rank 0's, on every rank
    dtype = tabular_dtype(data) if spec.input_kind == TABULAR else "float32"
    precision = resolve_precision(spec.precision, device)
    workers = data_workers(spec.n_jobs, data.kind if spec.input_kind == IMAGES else "array")
    augment = resolve_augment(spec.augment, spec.input_kind, spec.freeze_depth,
                              spec.unfreeze_at)
    labeled, unlabeled_train = _sample_roles(spec, len(targets), unlabeled)
    partial = len(unlabeled_train) > 0
    two_views = partial and spec.unlabeled == "fixmatch"
    if two_views:
        augment = augment or "light"  # FixMatch's weak view
    batching = Batching(spec.batch_size, device, precision, spec.input_kind == IMAGES, workers)
    with seeded(spec.seed, device):
        module, frozen, plain, prep, size, weights = _build(
            spec, data, targets, sample_weight, n_outputs=n_outputs, classes=classes,
            dtype=dtype)
        if spec.verbose >= 1:
            print(f"sktransfer: {backbone_name(spec.backbone)} with weights {weights!r}")
        reason = refusal(cache=spec.cache, input_kind=spec.input_kind, frozen=frozen,
                         unfreeze_at=spec.unfreeze_at, augment=augment)
        cached = CachedActivations(reason=reason) if reason else cache_activations(
            module, data, plain, targets, sample_weight, frozen=frozen, batching=batching,
            cache_dir=spec.cache_dir)
        if partial:
            _check_adaptation(spec, module, frozen)
        run = _Prepared(module, frozen, cached.dataset if cached.used else plain, cached,
                        dataclasses.replace(batching, num_workers=0 if cached.used else workers),
                        dict(task=spec.task, n_outputs=n_outputs, loss=spec.loss,
                             groups=groups),
                        labeled, unlabeled_train)
        if _exact_probe_applies(spec, module, frozen, augment, partial):
            net, plan, solution = _fit_exact_probe(spec, run, targets, sample_weight)
        else:
            augmented = run.base if cached.used or augment is None else _dataset(
                data, targets, sample_weight, prep=prep, size=size, dtype=dtype,
                augment=augment, strong_view=two_views)
            net, plan, solution = _fine_tune(spec, run, augmented, targets, sample_weight)
    distributed.sync_from_main(net.module_)  # the same network on every rank
    first_loss = first_batch_loss(net)
    history = history_records(net)
    best_epoch = None
    if history and "valid_score" in history[0]:
        best_epoch = int(max(history, key=lambda r: r["valid_score"])["epoch"])
    return FitResult(
        net=net, history=history, lr=plan.lr, n_stages=module.n_stages, device=device,
        input_kind=spec.input_kind, dtype=dtype, cache_info=cached.info(), weights=weights,
        converged=not history or net.converged_, n_iter=len(history),
        probe_alpha=None if solution is None else solution.alpha,
        best_epoch=best_epoch, first_loss=first_loss, preprocessing=prep, image_size=size,
        # a refit without the cache must not keep a previous fit's key
        cache_key=cached.key if cached.used else None, cache_cut=cached.skipped_cut)


def _outputs(net, dataset, workers: int) -> np.ndarray:
    """Raw outputs of the fitted network for ``dataset``."""
    batching = Batching(net.batch_size, str(net.device), net.precision, net.channels_last,
                        workers)
    with evaluating(net.module_):
        return full_precision(run_batches(net.module_, dataset, batching)).numpy()


def _outputs_cached(result: FitResult, dataset, cached: dict, workers: int) -> np.ndarray:
    """``_outputs`` where the activations at the cut are ``cached`` (rows by
    position): those images run only the layers above the cut, the others
    the whole network."""
    net = result.net
    hits = sorted(cached)
    misses = [i for i in range(len(dataset)) if i not in cached]
    with skipping(net.module_.trunk, result.cache_cut):
        from_cache = _outputs(net, ActivationDataset([cached[i] for i in hits],
                                                     collate_fn=activations_collate(dataset)), 0)
    if not misses:
        return from_cache
    from_images = _outputs(net, subset(dataset, misses), workers)
    outputs = np.empty((len(dataset), *from_cache.shape[1:]), dtype=from_cache.dtype)
    outputs[hits], outputs[misses] = from_cache, from_images
    return outputs


def predict(result: FitResult, data, *, n_jobs=None, cache: bool = True,
            cache_dir=None) -> np.ndarray:
    """Raw network outputs for validated ``data``. Images whose frozen-stage
    activations a cached fit left in the cache (a grid search's test folds
    were other folds' training data) are read from it, exactly as in
    training; nothing is added to the cache."""
    if result.input_kind == TABULAR:
        return _outputs(result.net, TabularDataset(data, dtype=result.dtype), 0)
    if result.input_kind == TEXT:
        dataset, workers = TextDataset(data, result.preprocessing), 0
    else:
        dataset = ImageDataset(data, result.preprocessing, result.image_size)
        workers = data_workers(n_jobs, data.kind)
    rows = {}
    if cache and result.cache_key is not None:
        rows = cached_rows(result.cache_key, data, cache_dir=cache_dir)
    if rows:
        return _outputs_cached(result, dataset, rows, workers)
    return _outputs(result.net, dataset, workers)


# -- a fitted network as a source ------------------------------------------------------------


def export_trunk(result: FitResult, description: str) -> Trunk:
    """The fitted trunk and head, offered as a backbone; images default to
    the size this network was trained at."""
    prep = result.preprocessing
    if result.input_kind == IMAGES:
        prep = dataclasses.replace(prep, image_size=result.image_size)
    return export_module_trunk(result.net.module_, prep, description)


def save_weights(result: FitResult, path, **config):
    """Write the fitted trunk and head as safetensors with the architecture
    config (plus ``config``) embedded and beside it as JSON; return the path."""
    module = result.net.module_
    weights_path, _ = save_weights_file(path, module, dict(module.config, **config))
    return weights_path


# -- embeddings (TransferFeatures) ---------------------------------------------------------------


@dataclass(frozen=True)
class EmbedSpec:
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
    cache_keys: dict = dataclasses.field(default_factory=dict)

    @property
    def n_stages(self) -> int:
        return len(self.stages)

    def dataset(self, data):
        """The dataset that feeds ``data`` (validated) to the trunk."""
        if self.input_kind == TEXT:
            return TextDataset(data, self.preprocessing)
        return ImageDataset(data, self.preprocessing, self.image_size)

    def cache_key(self, stage, dataset) -> str:
        if stage not in self.cache_keys:
            self.cache_keys[stage] = embedding_key(self.trunk, self.config, stage,
                                                   dataset.cache_settings(), self.device)
        return self.cache_keys[stage]


_SAME = "same"  # embed at the embedder's own stage


def fit_embedder(spec: EmbedSpec, data, *, cache: bool = True) -> Embedder:
    """Load the trunk of ``spec`` and probe its output size on the first
    item of ``data`` (validated images or texts); with ``cache``, key its
    embeddings in the activation store."""
    device = resolve_device(spec.device)
    text = {"max_length": spec.max_length, "pooling": spec.pooling}
    trunk = load_trunk(spec.backbone, spec.weights,
                       text=text if spec.input_kind == TEXT else None)
    n_stages = len(trunk.stages)
    if spec.stage is not None and spec.stage > n_stages:
        raise ValueError(
            f"stage={spec.stage} but the backbone has {n_stages} stages; use "
            f"1 to {n_stages}, or None for the backbone's output."
        )
    prep, size = trunk.preprocessing, None
    module = trunk.module.to(device).eval()
    if spec.input_kind == IMAGES:
        size = check_image_size(spec.image_size or prep.image_size, prep, spec.backbone)
        module = module.to(memory_format=torch.channels_last)
    embedder = Embedder(module, trunk.stages, spec.stage, prep, size, device,
                        spec.batch_size, trunk.config, spec.input_kind, weights=trunk.weights)
    dataset = embedder.dataset(data)
    first = _embed_positions(embedder, dataset, spec.stage, [0], workers=0)
    embedder.n_features_out = first.shape[1]
    if cache:
        embedder.cache_key(spec.stage, dataset)
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
    workers = 0 if embedder.input_kind == TEXT else data_workers(n_jobs, data.kind)

    def compute(positions=None):
        return _embed_positions(embedder, dataset, stage, positions, workers=workers)

    if not cache:
        return compute().astype("float64")
    features, _ = cached_embeddings(embedder.cache_key(stage, dataset), data, compute,
                                    cache_dir=cache_dir)
    return features.astype("float64")
