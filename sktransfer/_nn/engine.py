"""The training engine: the one entry point under the estimators.

An estimator validates its inputs, encodes its targets and resolves its
parameters into a ``Recipe`` (``sktransfer._recipe``); ``fit(recipe, data,
targets, ...)`` owns the rest — seed, build, freeze, the cache decision, the
validation split and training — and returns a ``FitResult`` that
``predict`` reads. Nothing here knows about the estimator classes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from skorch.history import History

from .._options import IMAGES, TABULAR, TEXT
from . import distributed, trained_fits
from .build import (
    Prepared,
    build_network,
    dataset,
    sample_roles,
    split,
    training_set,
)
from .data import ActivationDataset, ImageDataset, TabularDataset, data_workers, subset, \
    tabular_dtype
from .frozen_cut import (
    CachedActivations,
    activations_collate,
    cache_activations,
    cached_rows,
    refusal,
    skipping,
)
from .inference import Batching, collate_for, evaluating, run_batches
from .launch import join_launch
from .model import Trunk, backbone_name, export_trunk as export_module_trunk, single_linear
from .net import TrainingData, build_net, find_lr, first_batch_loss, history_records
from .probe import probe_head
from .runtime import cap_worker_threads, full_precision, resolve_precision, seeded
from .source_head import source_head  # noqa: F401  (the estimators' way to a source head)
from .text import TextDataset
from .weights import save_weights_file


@dataclass
class FitResult:
    """A fitted network and what predicting with it needs."""

    net: object
    history: list
    lr: float
    n_stages: int
    batching: Batching  # batch size, device, precision and memory format of predict
    input_kind: str
    dtype: str
    cache_info: dict
    weights: str | None = None
    converged: bool = True
    probe_alpha: float | None = None
    best_epoch: int | None = None
    first_loss: float | None = None  # the first training batch's loss
    trained_unlabeled: bool = False  # unlabeled samples took part in training
    preprocessing: object = None
    image_size: int | None = None
    # predict reads the activations it finds cached under this key / cut
    cache_key: str | None = None
    cache_cut: object = None
    privacy: dict | None = None  # what a private fit's accountant says it spent

    @property
    def device(self) -> str:
        return self.batching.device

    @property
    def n_iter(self) -> int:
        return len(self.history)


def _fit_exact_probe(recipe, run: Prepared, targets, sample_weight):
    """The head solved on the frozen features; the net only holds the module
    for ``net_`` (no optimizer, schedule or callbacks)."""
    positions = None if len(run.labeled) == len(run.base) else run.labeled
    solution = probe_head(recipe, run, positions, targets, sample_weight)
    net = build_net(run.module, recipe.resolved(max_epochs=0), TrainingData(len(run.base)),
                    n_outputs=run.n_outputs, groups=run.groups, callbacks=[])
    return net.initialize_holding(), solution


def _fine_tune(recipe, run: Prepared, augmented, targets, sample_weight):
    """Gradient training (from the probed head with ``head_init="probe"``),
    with a validation split of the labeled samples when early stopping is
    on, and with the unlabeled samples that train."""
    module = run.module
    train_idx, valid_idx = split(recipe, targets, run.labeled)
    solution = None
    if recipe.head.init == "probe" and not module.head_from_source:
        solution = probe_head(recipe, run, train_idx, targets, sample_weight)
    train_set, n_labeled = training_set(run, augmented, train_idx)
    partial = len(run.unlabeled) > 0
    data = TrainingData(
        n_labeled, valid_set=None if valid_idx is None else subset(run.base, valid_idx),
        collate_fn=collate_for(train_set), num_workers=run.batching.num_workers,
        labeled=np.arange(n_labeled) if partial else None,
        unlabeled=np.arange(n_labeled, n_labeled + len(run.unlabeled)) if partial else None)
    recipe = recipe.resolved(
        max_epochs=recipe.schedule.epochs(n_labeled, recipe.training_batch(n_labeled)))
    with skipping(module.trunk, run.cached.skipped_cut):
        if recipe.optimisation.find_lr:
            recipe = recipe.resolved(lr=find_lr(module, train_set, recipe, data,
                                                n_outputs=run.n_outputs, groups=run.groups))
        net = build_net(module, recipe, data, n_outputs=run.n_outputs,
                        groups=run.groups).fit(train_set)
    return net, solution


def _prepare(recipe, network, data, targets, sample_weight, n_outputs, groups, unlabeled):
    """The cache decision and the ``Prepared`` run of a built network."""
    batching = _batching(recipe, data)
    module, frozen = network.module, network.frozen
    labeled, unlabeled_train = sample_roles(recipe, len(targets), unlabeled)
    reason = refusal(cache=recipe.runtime.cache, input_kind=recipe.input_kind, frozen=frozen,
                     unfreeze_at=recipe.freezing.unfreeze_at, augment=recipe.methods.augment)
    cached = CachedActivations(reason=reason) if reason else cache_activations(
        module, data, network.plain, targets, sample_weight, frozen=frozen,
        batching=batching, cache_dir=recipe.runtime.cache_dir)
    if cached.used:
        batching = dataclasses.replace(batching, num_workers=0)
    return Prepared(module, frozen, cached.dataset if cached.used else network.plain, cached,
                    batching, n_outputs, groups, labeled, unlabeled_train)


def _batching(recipe, data) -> Batching:
    images = recipe.input_kind == IMAGES
    workers = data_workers(recipe.runtime.n_jobs, data.storage if images else "array")
    return Batching(recipe.schedule.batch_size, recipe.runtime.device,
                    recipe.runtime.precision, images, workers)


def fit(recipe, data, targets, sample_weight, *, n_outputs, classes=None,
        unlabeled=None) -> FitResult:
    """Build, freeze and train a network on validated ``data`` (a table,
    ``CheckedImages`` or ``CheckedTexts``) with encoded ``targets`` and
    normalised ``sample_weight``, as ``recipe`` says; ``n_outputs`` is the
    head's size (for a multi-task classifier, a tuple of each task's number
    of classes: the head's outputs are the tasks' logits side by side, and
    ``targets`` has one column per task, -1 where a task has no label) and
    ``classes`` the target's labels (a source head with the same labels may
    be kept). ``unlabeled`` (a boolean mask, or None) marks the samples
    without a label: they train when the recipe uses them, else they are
    left out.

    A linear head on a trunk frozen throughout is solved exactly (the exact
    linear probe); otherwise the network trains by gradient steps, with
    ``head_init="probe"`` from that probe (LP-FT), until convergence or the
    epoch budget.
    """
    groups = tuple(int(k) for k in n_outputs) if isinstance(n_outputs, tuple) else None
    n_outputs = sum(groups) if groups else int(n_outputs)
    cap_worker_threads()
    device, seed = join_launch(recipe, data, targets)
    recipe = recipe.resolved(device=device, seed=seed,
                             precision=resolve_precision(recipe.runtime.precision, device))
    dtype = tabular_dtype(data) if recipe.input_kind == TABULAR else "float32"
    with seeded(recipe.runtime.seed, device):
        network = build_network(recipe, data, targets, sample_weight, n_outputs=n_outputs,
                                classes=classes, dtype=dtype)
        if recipe.runtime.verbose >= 1:
            print(f"sktransfer: {backbone_name(recipe.backbone.source)} with weights "
                  f"{network.weights!r}")
        exact = recipe.exact_probe(network.module.n_stages, network.frozen,
                                   network.module.head_from_source)
        key = None if exact else trained_fits.fit_key(
            recipe, network, data, _fit_arrays(targets, sample_weight, unlabeled),
            (n_outputs, groups, classes))
        restored = _restored(recipe, network, key, data, targets, dtype, n_outputs, groups)
        if restored is not None:
            return restored
        run = _prepare(recipe, network, data, targets, sample_weight, n_outputs, groups,
                       unlabeled)
        if exact:
            net, solution = _fit_exact_probe(recipe, run, targets, sample_weight)
        else:
            augmented = run.base if run.cached.used or recipe.methods.augment is None else \
                dataset(data, targets, sample_weight, prep=network.preprocessing,
                        size=network.image_size, dtype=dtype, augment=recipe.methods.augment,
                        strong_view=recipe.methods.two_views)
            net, solution = _fine_tune(recipe, run, augmented, targets, sample_weight)
    distributed.sync_from_main(net.module_)  # the same network on every rank
    result = _result(net, run, network, solution, dtype)
    trained_fits.remember(key, net.module_, _outcomes(result), _fits_dir(recipe))
    return result


def _fit_arrays(targets, sample_weight, unlabeled) -> tuple:
    return (targets, sample_weight, () if unlabeled is None else unlabeled)


def _fits_dir(recipe):
    return recipe.runtime.cache_dir if recipe.runtime.cache else None


# the FitResult values that a restored fit takes from the fit it repeats
_OUTCOMES = ("history", "lr", "converged", "probe_alpha", "best_epoch", "first_loss",
             "trained_unlabeled", "cache_info", "privacy")


def _outcomes(result: FitResult) -> dict:
    outcomes = {name: getattr(result, name) for name in _OUTCOMES}
    outcomes["batch_size"] = result.batching.batch_size
    return outcomes


def _restored(recipe, network, key, data, targets, dtype, n_outputs, groups) -> FitResult | None:
    """The fit kept under ``key`` (``trained_fits``) on ``network``'s
    module, or None when there is none (or it does not fit the module)."""
    kept = trained_fits.recall(key, _fits_dir(recipe))
    if kept is None:
        return None
    current = network.module.state_dict()
    if {k: tuple(v.shape) for k, v in current.items()} != \
            {k: tuple(v.shape) for k, v in kept.state.items()}:
        return None  # another architecture under an equal key: train instead
    outcomes = dict(kept.outcomes)
    net = build_net(network.module, recipe.resolved(max_epochs=0, lr=outcomes["lr"]),
                    TrainingData(len(targets)), n_outputs=n_outputs, groups=groups,
                    callbacks=[]).initialize_holding()
    net.module_.load_state_dict(kept.state)
    net.history = History(outcomes["history"])
    batching = dataclasses.replace(_batching(recipe, data), batch_size=outcomes.pop("batch_size"))
    alpha = outcomes.pop("probe_alpha")
    outcomes["cache_info"] = dict(outcomes["cache_info"], restored=True)
    return FitResult(
        net=net, n_stages=network.module.n_stages, batching=batching,
        input_kind=recipe.input_kind, dtype=dtype, weights=network.weights,
        probe_alpha=tuple(alpha) if isinstance(alpha, list) else alpha,
        preprocessing=network.preprocessing, image_size=network.image_size, **outcomes)


def _result(net, run: Prepared, network, solution, dtype: str) -> FitResult:
    history = history_records(net)
    convergence = dict(net.callbacks_).get("convergence")
    return FitResult(
        net=net, history=history, lr=float(net.lr), n_stages=run.module.n_stages,
        batching=dataclasses.replace(run.batching, batch_size=net.batch_size),
        input_kind=net.recipe.input_kind, dtype=dtype,
        cache_info=dict(run.cached.info(), restored=False),
        weights=network.weights, converged=net.converged_,
        probe_alpha=None if solution is None else solution.alpha,
        best_epoch=None if convergence is None else convergence.best_epoch_,
        first_loss=first_batch_loss(net), trained_unlabeled=len(run.unlabeled) > 0,
        preprocessing=network.preprocessing,
        image_size=network.image_size,
        # a refit without the cache must not keep a previous fit's key
        cache_key=run.cached.key if run.cached.used else None,
        cache_cut=run.cached.skipped_cut, privacy=getattr(net, "privacy_spent_", None))


def _outputs(result: FitResult, dataset, workers: int, features: bool = False) -> np.ndarray:
    """Raw outputs of the fitted network for ``dataset`` (or with
    ``features`` the features a domain adaptation aligns), on the device
    the network lives on now (a pickle fitted on CUDA may load on a CPU)."""
    module = result.net.module_
    batching = dataclasses.replace(result.batching, device=str(result.net.device),
                                   num_workers=workers)
    fn = (lambda x: module(x, with_features=True)[0]) if features else module
    with evaluating(module):
        return full_precision(run_batches(fn, dataset, batching)).numpy()


def _outputs_cached(result: FitResult, dataset, cached: dict, workers: int) -> np.ndarray:
    """``_outputs`` where the activations at the cut are ``cached`` (rows by
    position): those images run only the layers above the cut, the others
    the whole network."""
    hits = sorted(cached)
    misses = [i for i in range(len(dataset)) if i not in cached]
    with skipping(result.net.module_.trunk, result.cache_cut):
        from_cache = _outputs(result, ActivationDataset([cached[i] for i in hits],
                                                     collate_fn=activations_collate(dataset)), 0)
    if not misses:
        return from_cache
    from_images = _outputs(result, subset(dataset, misses), workers)
    outputs = np.empty((len(dataset), *from_cache.shape[1:]), dtype=from_cache.dtype)
    outputs[hits], outputs[misses] = from_cache, from_images
    return outputs


def predict(result: FitResult, data, *, n_jobs=None, cache: bool = True,
            cache_dir=None, features: bool = False) -> np.ndarray:
    """Raw network outputs for validated ``data``. Images whose frozen-stage
    activations a cached fit left in the cache (a grid search's test folds
    were other folds' training data) are read from it, exactly as in
    training; nothing is added to the cache. With ``features``: the
    features a domain adaptation aligns (the bottleneck's, or the trunk's),
    computed without the cache."""
    if result.input_kind == TABULAR:
        return _outputs(result, TabularDataset(data, dtype=result.dtype), 0, features)
    if result.input_kind == TEXT:
        dataset, workers = TextDataset(data, result.preprocessing), 0
    else:
        dataset = ImageDataset(data, result.preprocessing, result.image_size)
        workers = data_workers(n_jobs, data.storage)
    if features:
        return _outputs(result, dataset, workers, features=True)
    rows = {}
    if cache and result.cache_key is not None:
        rows = cached_rows(result.cache_key, data, cache_dir=cache_dir)
    if rows:
        return _outputs_cached(result, dataset, rows, workers)
    return _outputs(result, dataset, workers)


# -- a fitted network as a source ------------------------------------------------------------


def export_trunk(result: FitResult, description: str) -> Trunk:
    """The fitted trunk and head, offered as a backbone; images default to
    the size this network was trained at."""
    prep = result.preprocessing
    if result.input_kind == IMAGES:
        prep = dataclasses.replace(prep, image_size=result.image_size)
    return export_module_trunk(result.net.module_, prep, description)


def linear_head(result: FitResult, description: str):
    """The head's ``(weight, bias)`` as float64 arrays, when the head is one
    linear layer on the trunk's pooled features."""
    return single_linear(result.net.module_.head, description)


def save_weights(result: FitResult, path, **config):
    """Write the fitted trunk and head as safetensors with the architecture
    config (plus ``config``) embedded and beside it as JSON; return the path."""
    module = result.net.module_
    weights_path, _ = save_weights_file(path, module, dict(module.config, **config))
    return weights_path


