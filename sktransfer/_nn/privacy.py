"""DP-SGD through Opacus, as the net's training step uses it: the noise
calibrated to a budget, Poisson-sampled batches, and the module and
optimizer wrapped for per-sample gradients, clipping, noise and
accounting.

Opacus is an optional dependency (the ``privacy`` extra), imported only
here and only by a private fit.
"""

from __future__ import annotations

import contextlib
import functools
import math
import warnings
from dataclasses import dataclass

import torch
from torch.utils.data import Sampler


def _opacus():
    try:
        import opacus
    except ImportError as error:
        raise ImportError(
            "privacy=DP(...) trains with Opacus, which is not installed; install the "
            "'privacy' extra (pip install 'sktransfer[privacy]') or set privacy=None."
        ) from error
    return opacus


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Poisson-sampled steps in an epoch: ``ceil(n / batch_size)`` (each
    draws ``batch_size`` samples on average)."""
    return max(1, math.ceil(n_train / batch_size))


@dataclass(frozen=True)
class PrivacyPlan:
    """The DP-SGD settings of one fit: the accountant's name, the target
    budget, the Poisson sampling rate, the steps and the noise multiplier
    that spends the budget over them."""

    accountant: str
    epsilon: float
    delta: float
    max_grad_norm: float
    sample_rate: float
    expected_batch_size: int
    steps: int
    noise_multiplier: float


def plan(dp, n_train: int, batch_size: int, epochs: int) -> PrivacyPlan:
    """The noise multiplier that Opacus's ``get_noise_multiplier`` finds
    for ``dp.epsilon`` at the fit's delta, over ``epochs`` epochs of
    Poisson-sampled batches of ``batch_size`` samples on average."""
    batch_size = min(int(batch_size), int(n_train))
    sample_rate = batch_size / n_train
    steps = int(epochs) * steps_per_epoch(n_train, batch_size)
    delta = dp.delta_for(n_train)
    sigma = _noise_multiplier(float(dp.epsilon), delta, sample_rate, steps, dp.accountant)
    return PrivacyPlan(dp.accountant, float(dp.epsilon), delta, float(dp.max_grad_norm),
                       sample_rate, batch_size, steps, float(sigma))


@functools.lru_cache(maxsize=64)
def _noise_multiplier(epsilon: float, delta: float, sample_rate: float, steps: int,
                      accountant: str) -> float:
    """Opacus's ``get_noise_multiplier`` (a search of a second or two, kept
    for the folds and candidates of a search that share it)."""
    _opacus()
    from opacus.accountants.utils import get_noise_multiplier

    with _valid_bounds():
        return float(get_noise_multiplier(target_epsilon=epsilon, target_delta=delta,
                                          sample_rate=sample_rate, steps=steps,
                                          accountant=accountant))


def epsilon_of(accountant: str, noise_multiplier: float, sample_rate: float, steps: int,
               delta: float) -> float:
    """The epsilon that Opacus's ``accountant`` ("rdp" or "prv") gives
    ``steps`` steps at ``noise_multiplier`` and ``sample_rate``."""
    _opacus()
    from opacus.accountants import create_accountant

    if steps == 0:
        return 0.0
    meter = create_accountant(accountant)
    meter.history = [(noise_multiplier, sample_rate, int(steps))]
    with _valid_bounds():
        return float(meter.get_epsilon(delta=delta))


@contextlib.contextmanager
def _valid_bounds():
    """The RDP accountant warns when the best of its fixed Rényi orders is at
    the end of their range (very little or very much noise, as the search
    for the noise multiplier tries): its epsilon is then still an upper
    bound, only a looser one, and the user has no setting to widen the
    orders, so the warning is not passed on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order is the", category=UserWarning)
        yield


class PoissonBatches(Sampler):
    """``n_steps`` batches in which each of ``n`` items is drawn
    independently with probability ``sample_rate`` (a batch may be empty);
    the draws come from torch's global generator, so a seeded fit is
    repeatable."""

    def __init__(self, n: int, sample_rate: float, n_steps: int):
        self.n = int(n)
        self.sample_rate = float(sample_rate)
        self.n_steps = int(n_steps)

    def __len__(self):
        return self.n_steps

    def __iter__(self):
        for _ in range(self.n_steps):
            drawn = torch.rand(self.n) < self.sample_rate
            yield torch.nonzero(drawn, as_tuple=False).reshape(-1).tolist()


def _rows(value, stop):
    """The first ``stop`` rows of every tensor in a collated batch."""
    if isinstance(value, torch.Tensor):
        return value[:stop]
    if isinstance(value, dict):
        return type(value)({k: _rows(v, stop) for k, v in value.items()})
    if isinstance(value, (tuple, list)):
        return type(value)(_rows(v, stop) for v in value)
    return value


class EmptySafeCollate:
    """``collate`` that turns an empty Poisson draw into a batch of no rows
    of the right shapes (the noisy step still runs: skipping it would reveal
    that the draw was empty)."""

    def __init__(self, collate, dataset):
        self.collate = collate
        self.empty = _rows(collate([dataset[0]]), 0)

    def __call__(self, items):
        return self.collate(items) if len(items) else self.empty


def _trains_convolutions(module) -> bool:
    """Whether a convolution trains: Opacus's own per-sample rule for them
    (unfold and einsum) made a step of MobileNetV2's last two stages 5x
    slower than functorch's vmap on a CPU, which the linear layers' rule
    beats 1.5x (an MLP)."""
    return any(isinstance(part, torch.nn.modules.conv._ConvNd)
               and any(p.requires_grad for p in part.parameters(recurse=False))
               for part in module.modules())


class PrivateTraining:
    """A module's per-sample gradients (Opacus's ``GradSampleModule``) and
    an optimizer that clips, noises and accounts them (``DPOptimizer`` with
    an accountant), for a fit that follows ``privacy_plan``; ``close``
    removes Opacus's hooks and returns the plain optimizer."""

    def __init__(self, module, optimizer, privacy_plan: PrivacyPlan):
        opacus = _opacus()
        from opacus.accountants import create_accountant
        from opacus.optimizers import DPOptimizer

        self.plan = privacy_plan
        try:
            self.grad_sample = opacus.GradSampleModule(
                module, loss_reduction="mean", force_functorch=_trains_convolutions(module))
        except NotImplementedError as error:
            raise ValueError(
                "privacy needs per-sample gradients of every trainable layer, but a "
                f"trainable layer keeps statistics of its inputs ({error}); freeze the "
                "stages that hold it (freeze_depth) or set bn_mode='frozen'."
            ) from None
        self.optimizer = DPOptimizer(optimizer, noise_multiplier=privacy_plan.noise_multiplier,
                                     max_grad_norm=privacy_plan.max_grad_norm,
                                     expected_batch_size=privacy_plan.expected_batch_size,
                                     loss_reduction="mean")
        self.accountant = create_accountant(privacy_plan.accountant)
        self.optimizer.attach_step_hook(self._account)

    @staticmethod
    @contextlib.contextmanager
    def backward():
        """The backward pass of a private step. Opacus's per-sample hooks on
        a first trainable layer whose input needs no gradient (cached or
        frozen activations, the input itself) make torch warn on every fit;
        that is how they are meant to fire, so the warning is not passed on."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Full backward hook is firing",
                                    category=UserWarning)
            yield

    def _account(self, optimizer) -> None:
        self.accountant.step(noise_multiplier=self.plan.noise_multiplier,
                             sample_rate=self.plan.sample_rate)

    @property
    def steps(self) -> int:
        return sum(int(n) for _, _, n in self.accountant.history)

    def spent(self) -> dict:
        """What the accountant says the steps so far spent (the fitted
        attributes, without their trailing underscore)."""
        plan_ = self.plan
        return {"epsilon_spent": epsilon_of(plan_.accountant, plan_.noise_multiplier,
                                            plan_.sample_rate, self.steps, plan_.delta),
                "delta": plan_.delta, "noise_multiplier": plan_.noise_multiplier,
                "sample_rate": plan_.sample_rate, "privacy_steps": self.steps}

    def close(self):
        """Remove the per-sample hooks and what Opacus left on the modules
        and parameters (a pickled network must neither need Opacus nor keep
        a batch's activations); the plain optimizer."""
        self.grad_sample.remove_hooks()
        module = self.grad_sample._module
        for part in module.modules():
            for name in ("activations", "max_batch_len"):
                part.__dict__.pop(name, None)
        for param in module.parameters():
            for name in ("grad_sample", "summed_grad", "_forward_counter",
                         "_current_grad_sample"):
                if hasattr(param, name):
                    delattr(param, name)
        return self.optimizer.original_optimizer
