"""Gradient-trained fits seen before, restored instead of trained again.

A fit with an int ``random_state`` is repeatable: equal settings
(``Recipe.fit_key``: every setting the fit reads, not where to cache or
what to print), an equal starting network (its parameters digested after
loading, the new head included) and equal data (X, targets, sample weights, the unlabeled
mask) train an equal network, exactly on a CPU. Such a fit is kept, its
trained parameters and what the estimator reports about its training, in
memory (least recently used first out, at most ``_MAX_MEMORY_BYTES``) and,
with ``cache_dir``, as a safetensors file and a JSON file under
``<cache_dir>/sktransfer-fits`` (loaded without pickle). A grid search over
a parameter that the fit does not read, or a cross-validation run again,
then restores each fit. ``cache=False``, a ``random_state`` that is not an
int, a torchrun fit and a fit under a time budget's deadline (which may
end it early) keep nothing and restore nothing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import metadata

import torch

from .._canonical import canonical
from .._deadline import current_deadline
from . import activation_store as store
from . import distributed
from .digests import arrays_digest, fit_data_digest

_MAX_MEMORY_BYTES = 1 << 30
_MAX_DISK_BYTES = 4 << 30  # under each cache_dir; oldest used first out
_STATE, _OUTCOMES = ".safetensors", ".json"


@dataclass(frozen=True)
class TrainedFit:
    """A trained network's parameters and buffers (CPU tensors by name) and
    the plain values its fit reported (history, rate, batch size,
    convergence, ...)."""

    state: dict
    outcomes: dict

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.state.values())


def fit_key(recipe, network, data, arrays, outputs) -> str | None:
    """The key of a fit of ``network`` (the built ``build.Network``, before
    any training) on validated ``data`` with ``arrays`` (targets, weights,
    masks) and ``outputs`` (the head's outputs and the classes); None when
    the fit is not kept."""
    settings = recipe.fit_key()
    # under a time budget's deadline, the clock may cut a fit short
    if (settings is None or not recipe.runtime.cache or distributed.active()
            or current_deadline() is not None):
        return None
    try:
        inputs = canonical((network.preprocessing, network.image_size, network.weights,
                            network.frozen, outputs))
    except TypeError:
        return None
    network_digest = store.state_fingerprint([network.module])  # structure and values
    header = repr((_version(), TRAINING_REVISION, torch.__version__, settings, inputs,
                   network_digest, fit_data_digest(data, *arrays)))
    return arrays_digest(header)


# the training loop's revision, part of every key beside the versions: raised
# with each change that alters what an equal fit learns, so that a fit kept
# under cache_dir by an earlier revision of the same version trains again
TRAINING_REVISION = 2


def _version() -> str:
    """sktransfer's installed version: a fit kept by another version trains again."""
    try:
        return metadata.version("sktransfer")
    except metadata.PackageNotFoundError:
        return "unknown"


def recall(key: str | None, cache_dir) -> TrainedFit | None:
    """The fit kept under ``key`` in memory or under ``cache_dir``, or None."""
    if key is None:
        return None
    if key in store.TRAINED_FITS:
        store.TRAINED_FITS.move_to_end(key)
        return store.TRAINED_FITS[key]
    fit = _read(key, cache_dir)
    if fit is not None:
        _keep_in_memory(key, fit)
    return fit


def remember(key: str | None, module, outcomes: dict, cache_dir) -> None:
    """Keep ``module``'s trained state and ``outcomes`` under ``key``."""
    if key is None:
        return
    try:
        outcomes = json.loads(json.dumps(outcomes))  # plain values only
    except (TypeError, ValueError):
        return  # a value JSON cannot hold: nothing kept
    state = {name: t.detach().to("cpu", copy=True).contiguous()
             for name, t in module.state_dict().items()}
    fit = TrainedFit(state, outcomes)
    _keep_in_memory(key, fit)
    _write(key, fit, cache_dir)


def _keep_in_memory(key: str, fit: TrainedFit) -> None:
    fits = store.TRAINED_FITS
    fits[key] = fit
    while len(fits) > 1 and sum(f.nbytes for f in fits.values()) > _MAX_MEMORY_BYTES:
        fits.popitem(last=False)


# -- on disk ---------------------------------------------------------------------------


def _paths(key: str, cache_dir):
    folder = store.cache_path(cache_dir, store.FIT_DIRNAME)
    return folder, os.path.join(folder, key + _STATE), os.path.join(folder, key + _OUTCOMES)


def _read(key: str, cache_dir) -> TrainedFit | None:
    if cache_dir is None:
        return None
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    _, state_path, outcomes_path = _paths(key, cache_dir)
    try:
        with open(outcomes_path, encoding="utf-8") as f:
            outcomes = json.load(f)
        state = load_file(state_path)
        os.utime(outcomes_path)  # recently used: evicted last
    except (OSError, ValueError, SafetensorError):
        return None  # absent or unreadable: trained again and rewritten
    return TrainedFit(state, outcomes)


def _write(key: str, fit: TrainedFit, cache_dir) -> None:
    if cache_dir is None:
        return
    from safetensors.torch import save_file

    folder, state_path, outcomes_path = _paths(key, cache_dir)
    partial = f".{os.getpid()}.tmp"
    try:
        os.makedirs(folder, exist_ok=True)
        save_file(fit.state, state_path + partial)
        with open(outcomes_path + partial, "w", encoding="utf-8") as f:
            json.dump(fit.outcomes, f)
        # the state first: a reader that finds the outcomes finds the state
        os.replace(state_path + partial, state_path)
        os.replace(outcomes_path + partial, outcomes_path)
        _evict(folder)
    except OSError:
        pass  # the in-memory copy still serves this process


def _evict(folder: str) -> None:
    """Delete the least recently used fits while the folder is over budget."""
    entries = []
    for name in os.listdir(folder):
        if name.endswith(_OUTCOMES):
            key = name[: -len(_OUTCOMES)]
            paths = [os.path.join(folder, key + _OUTCOMES), os.path.join(folder, key + _STATE)]
            try:
                entries.append((os.stat(paths[0]).st_mtime,
                                sum(os.stat(p).st_size for p in paths), paths))
            except OSError:
                continue  # removed by another process meanwhile
    total = sum(size for _, size, _ in entries)
    for _, size, paths in sorted(entries):
        if total <= _MAX_DISK_BYTES:
            break
        for path in paths:
            try:
                os.remove(path)
            except OSError:
                pass
        total -= size
