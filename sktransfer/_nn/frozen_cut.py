"""Training above a frozen cut on cached activations.

When the first stages of the trunk stay frozen for the whole fit (their
BatchNorm layers in eval mode, nothing random in them), their output for an
image never changes. It is computed once (or taken from the activation
store), and training runs the rest of the network on it: the frozen modules
are made to pass their input through while the network trains.

Whether that is exact is checked, not assumed, on a few real images:
  * running the network with the frozen modules passed through, on the
    activation at the cut, gives the same output as the whole network (the
    cut is a clean cut: nothing after it reads anything before it);
  * no module below the cut is random or batch-dependent in training mode
    (dropout, stochastic depth, BatchNorm on batch statistics), and in
    training mode the frozen part gives the same activation as in eval mode
    under two different random seeds (for modules not known by type).
If no cut passes, the fit trains without the cache.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import Dataset, Subset

from .._options import TABULAR
from .inference import collate_for
from . import activation_store as store
from . import backbones as bb
from .data import ActivationDataset
from .features import capture
from .freezing import is_batchnorm
from .inference import Batching, evaluating, run_batches
from .runtime import autocast, fork_rng

# How many cut points (deepest first) are tried before giving up.
_MAX_ATTEMPTS = 32
_CHECK_SAMPLES = 4
# How many architectures' cuts are remembered (each entry is a few names).
_MAX_MEMO = 64


def _passthrough(x, *args, **kwargs):
    return x


@dataclass
class FrozenCut:
    """Where the trunk is cut: ``member`` is the module whose output is
    cached; ``skipped`` are the frozen modules passed through in training."""

    member: str
    skipped: list


@dataclass
class CachedActivations:
    """What a fit trains on when the cache applies; ``dataset`` is None when
    it does not, and ``reason`` says why."""

    dataset: Dataset | None = None
    cut: FrozenCut | None = None
    counts: dict = field(default_factory=dict)
    reason: str = ""
    key: str | None = None

    @property
    def used(self) -> bool:
        return self.dataset is not None

    @property
    def skipped_cut(self) -> FrozenCut | None:
        """The cut training skips to, when the cache is used."""
        return self.cut if self.used else None

    def info(self) -> dict:
        info = {"used": self.used,
                "cut": None if self.cut is None else self.cut.member,
                "reason": self.reason}
        info.update(self.counts)
        return info


# -- why the cache does not apply: every reason in one place ------------------------


def refusal(*, cache: bool, input_kind: str, frozen: list, unfreeze_at, augment) -> str:
    """Why frozen-stage activations cannot be cached for a fit with these
    settings ('' when they may be: the cut is then probed on the data)."""
    if not cache:
        return "cache=False"
    if input_kind == TABULAR:
        return "tabular data: the network is cheap to run"
    if not frozen:
        return "freeze_depth=0: no stage stays frozen"
    if unfreeze_at is not None:
        return "unfreeze_at trains the frozen stages later in the fit"
    if augment is not None:
        return f"augment={augment!r} changes the images every epoch"
    return ""


_NO_EXACT_CUT = ("no exact cut: the frozen stages of this backbone cannot be skipped "
                 "(later layers read inside them, or a module in them is random even in "
                 "eval mode)")


def _over_budget(needed: int) -> str:
    return (f"the activations need {needed / 1e6:.0f} MB, over the cache budget of "
            f"{store.STORE.budget / 1e6:.0f} MB; raise it with "
            "sktransfer.set_cache_budget or freeze fewer stages")


@contextlib.contextmanager
def skipping(trunk: nn.Module, cut: FrozenCut | None):
    """Within this block the frozen modules below the cut pass their input
    through, so the trunk runs on cached activations."""
    if cut is None:
        yield
        return
    modules = [trunk.get_submodule(name) for name in cut.skipped]
    for module in modules:
        module.forward = _passthrough
    try:
        yield
    finally:
        for module in modules:
            del module.forward


def _candidate_cuts(module, frozen: list[int]) -> list[FrozenCut]:
    """Cut points inside the frozen stages, deepest first."""
    members = [name for index in frozen for name in module.stages[index]]
    cuts = []
    for end in range(len(members), 0, -1):
        skipped = members[:end]
        if all(isinstance(bb.resolve_member(module.trunk, n), nn.Module) for n in skipped):
            cuts.append(FrozenCut(skipped[-1], list(skipped)))
        if len(cuts) == _MAX_ATTEMPTS:
            break
    return cuts


_PROBE_ERRORS = (RuntimeError, ValueError, TypeError, IndexError, AssertionError)


def _random_in_training(module: nn.Module) -> bool:
    """Dropout / stochastic depth (torchvision's, or timm's ``drop_prob``)
    with a non-zero rate, or BatchNorm using batch statistics."""
    if is_batchnorm(module):
        return True
    rate = getattr(module, "drop_prob", None)
    if rate is None and (isinstance(module, nn.modules.dropout._DropoutNd)
                         or type(module).__name__ == "StochasticDepth"):
        rate = module.p
    return bool(rate)


def _active_randomness(module, cut: FrozenCut) -> bool:
    """Whether a skipped module behaves differently in training mode."""
    was_training = module.training
    module.train()
    try:
        return any(sub.training and _random_in_training(sub)
                   for name in cut.skipped
                   for sub in module.trunk.get_submodule(name).modules())
    finally:
        module.train(was_training)


def _is_exact(module, cut: FrozenCut, sample: torch.Tensor) -> bool:
    """Check on ``sample`` that training on the activations at ``cut`` is
    the same computation as training on the images (see module docstring)."""
    if _active_randomness(module, cut):
        return False
    trunk = module.trunk
    cut_module = trunk.get_submodule(cut.member)
    was_training = module.training
    try:
        with torch.no_grad():
            module.eval()
            activation = capture(trunk, sample, cut_module)
            whole = trunk(sample)
            with skipping(trunk, cut):
                resumed = trunk(activation)
            if resumed.shape != whole.shape or not torch.allclose(
                    resumed, whole, rtol=1e-4, atol=1e-5):
                return False
            module.train()
            for seed in (0, 1):
                torch.manual_seed(seed)
                if not torch.allclose(capture(trunk, sample, cut_module), activation,
                                      rtol=1e-6, atol=1e-7):
                    return False
        return True
    except _PROBE_ERRORS:  # the architecture cannot resume there: no cache
        return False
    finally:
        module.train(was_training)


# find_cut's answers by architecture (the module's repr and which norms are
# held in eval mode), frozen stages, input shape and device: the probes depend
# on the layers, not on the weights, and a grid search builds the same network
# for every candidate and fold. Least recently used answers go first.
_CUTS: OrderedDict = OrderedDict()


def find_cut(module, frozen: list[int], sample: torch.Tensor) -> FrozenCut | None:
    """The deepest exact cut inside the ``frozen`` stages, or None."""
    key = (repr(module), tuple(module.frozen_norms), tuple(frozen),
           tuple(sample.shape[1:]), sample.device.type, str(sample.dtype))
    if key not in _CUTS:
        _CUTS[key] = next((cut for cut in _candidate_cuts(module, frozen)
                           if _is_exact(module, cut, sample)), None)
        while len(_CUTS) > _MAX_MEMO:
            _CUTS.popitem(last=False)
    _CUTS.move_to_end(key)
    cut = _CUTS[key]
    return None if cut is None else FrozenCut(cut.member, list(cut.skipped))


def _stored(dataset, activation: torch.Tensor) -> torch.Tensor:
    """An activation as the cache keeps it (a text's token rows padded to a
    fixed length, so that rows of every batch stack)."""
    rows = getattr(dataset, "activation_rows", None)
    return activation if rows is None else rows(activation)


def _activations(module, dataset, positions, cut: FrozenCut,
                 batching: Batching) -> torch.Tensor:
    """Activations at the cut, computed as training would compute them
    (same precision and memory format)."""
    trunk = module.trunk
    if batching.channels_last:
        module.to(memory_format=torch.channels_last)
    cut_module = trunk.get_submodule(cut.member)
    with evaluating(module):
        return run_batches(lambda X: _stored(dataset, capture(trunk, X, cut_module)),
                           Subset(dataset, positions), batching)


def activations_collate(dataset):
    """The collate_fn of an ``ActivationDataset`` of ``dataset``'s activations."""
    make = getattr(dataset, "activations_collate", None)
    return None if make is None else make()


def _model_key(module, cut: FrozenCut, dataset, batching: Batching) -> str:
    skipped = [module.trunk.get_submodule(name) for name in cut.skipped]
    return store.model_key(
        activations="frozen-cut", trunk=module.config.get("trunk", {}), cut=cut.member,
        skipped=cut.skipped, state=store.state_fingerprint(skipped),
        **dataset.cache_settings(),
        precision=batching.precision, channels_last=batching.channels_last,
        device=torch.device(batching.device).type, torch=torch.__version__,
    )


def _probe_sample(dataset, device: str) -> torch.Tensor:
    items = [dataset[i] for i in range(min(_CHECK_SAMPLES, len(dataset)))]
    collate = collate_for(dataset)
    if collate is not None:
        sample = collate(items)[0]
    else:
        sample = torch.stack([item[0] for item in items])
    if len(sample) == 1:  # BatchNorm in train mode needs 2
        sample = sample.repeat(2, *[1] * (sample.dim() - 1))
    return sample.to(device)


def cache_activations(module, images, dataset, targets, sample_weight, *,
                      frozen: list[int], batching: Batching,
                      cache_dir=None) -> CachedActivations:
    """Activations at the deepest exact cut of the ``frozen`` stages for
    every image of ``dataset`` (un-augmented), looked up in the activation
    store first; or, when that cannot be done exactly or within the memory
    budget, a ``CachedActivations`` without a dataset that says why.

    Runs on a forked random state, so a fit with the cache draws the same
    batch order and dropout masks as one without.
    """
    device = batching.device
    with fork_rng(device):
        module.to(device)
        sample = _probe_sample(dataset, device)
        cut = find_cut(module, frozen, sample)
        if cut is None:
            return CachedActivations(reason=_NO_EXACT_CUT)
        with torch.no_grad(), autocast(batching.precision, device):  # the dtype training sees
            row = _stored(dataset, capture(module.trunk, sample[:1],
                                           module.trunk.get_submodule(cut.member)))
        needed = row.nbytes * len(dataset)
        if needed > store.STORE.budget:
            return CachedActivations(cut=cut, reason=_over_budget(needed))
        key = _model_key(module, cut, dataset, batching)

        def compute(positions):
            return _activations(module, dataset, positions, cut, batching)

        activations, counts = store.lookup(key, store.sample_keys(images),
                                           cache_dir=cache_dir, dtype=row.dtype,
                                           compute=compute)
    return CachedActivations(ActivationDataset(activations, targets, sample_weight,
                                               activations_collate(dataset)),
                             cut, counts, "", key)


def cached_rows(key: str, images, *, cache_dir=None, dtype=torch.float32) -> dict:
    """Activations already cached for ``images`` (by position); nothing is
    computed or added, so predicting on new images leaves the cache as it is."""
    if not store.STORE.holds(key) and cache_dir is None:
        return {}  # skip hashing every image
    keys = store.sample_keys(images)
    rows = store.STORE.get(key, keys, count=False)
    if cache_dir is not None and len(rows) < len(keys):
        missing = [i for i in range(len(keys)) if i not in rows]
        found = store.disk_get(cache_dir, key, [keys[i] for i in missing], dtype)
        rows.update({missing[j]: row for j, row in found.items()})
    return rows
