"""Training with partial labels: batches that pair labeled samples with
unlabeled ones, and the losses that learn from the unlabeled part.

Unlabeled samples (``-1`` for classifiers, ``NaN`` for regressors, as in
scikit-learn's semi-supervised estimators) take part in two ways:

- semi-supervised (``unlabeled``): confident predictions on them become
  targets. ``PseudoLabel`` (Lee, 2013) trains on the network's own confident
  predictions of the same inputs; ``FixMatch`` (Sohn et al., NeurIPS 2020)
  predicts on a weakly augmented view and trains the strongly augmented view
  of the same image toward that prediction.
- unsupervised domain adaptation (``domain_adaptation``): the labeled
  samples are the source domain, the unlabeled ones the target domain, and
  a loss aligns their features at the trunk's output: Deep CORAL (second-order
  statistics, Sun & Saenko 2016), MMD with a multi-bandwidth Gaussian kernel
  (DAN, Long et al. 2015) or DANN (a domain classifier behind a gradient
  reversal layer, Ganin et al. 2016).

The method objects (``sktransfer._methods``) call the losses written here.
Both terms are computed on every batch, each batch being ``batch_size``
labeled samples plus ``ratio`` times as many unlabeled ones
(``PartialBatches``). The domain-adaptation strength and the pseudo-label
weight ramp up from 0 with DANN's schedule ``2 / (1 + exp(-10 p)) - 1`` over
the training progress ``p``; FixMatch's weight is constant, as in its paper.

The three alignment losses are written here rather than imported from skada:
each is a few lines, and skada would add its own dependencies (POT) to
sktransfer's for them. ``benchmarks/partial_labels.py`` compares with
skada's estimators.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Sampler

from .._options import UNLABELED_TARGET
from .batches import even_batches, n_batches


def labeled_mask(y: torch.Tensor) -> torch.Tensor:
    """Which samples of a batch carry a label: classifiers' targets are
    ``UNLABELED_TARGET`` for the others (every task's, multi-task),
    regressors' all-NaN rows."""
    if y.is_floating_point():
        return ~torch.isnan(y.reshape(len(y), -1)).all(dim=1)
    known = y != UNLABELED_TARGET
    return known.any(dim=1) if known.dim() == 2 else known  # multi-task: any task


def ramp(progress: float) -> float:
    """DANN's warm-up of an auxiliary loss: 0 at the start, ~0.76 a fifth of
    the way in, ~1 from half-way."""
    return 2.0 / (1.0 + math.exp(-10.0 * min(max(progress, 0.0), 1.0))) - 1.0


class PartialBatches(Sampler):
    """Batches of ``batch_size`` labeled positions (a shuffled pass over
    them is one epoch) each followed by ``ratio`` times as many unlabeled
    ones, drawn without replacement from a stream of shuffled passes. The
    shuffles draw from torch's global generator, so a seeded fit repeats.
    The labeled positions are cut evenly (``batches.even_batches``), no
    chunk under ``min_last`` (a data-parallel fit gives each process at
    least one)."""

    def __init__(self, labeled, unlabeled, batch_size: int, ratio: int, min_last: int = 1):
        self.labeled = torch.as_tensor(np.asarray(labeled), dtype=torch.long)
        self.unlabeled = torch.as_tensor(np.asarray(unlabeled), dtype=torch.long)
        self.batch_size = int(batch_size)
        self.ratio = int(ratio)
        self.min_last = int(min_last)
        self._stream = torch.empty(0, dtype=torch.long)

    def __len__(self):
        return n_batches(len(self.labeled), self.batch_size, self.min_last)

    def _take(self, n: int) -> torch.Tensor:
        while len(self._stream) < n:
            order = self.unlabeled[torch.randperm(len(self.unlabeled))]
            self._stream = torch.cat([self._stream, order])
        taken, self._stream = self._stream[:n], self._stream[n:]
        return taken

    def __iter__(self):
        order = self.labeled[torch.randperm(len(self.labeled))]
        for chunk in even_batches(order, len(self)):
            yield torch.cat([chunk, self._take(self.ratio * len(chunk))]).tolist()


# -- semi-supervised terms ------------------------------------------------------------------


def confident_targets(logits: torch.Tensor, threshold: float):
    """Hard pseudo-labels of ``logits`` (no gradient) and the mask of those
    whose probability reaches ``threshold``."""
    probabilities = torch.softmax(logits.detach().float(), dim=1)
    confidence, labels = probabilities.max(dim=1)
    return labels, (confidence >= threshold).to(logits.dtype)


def pseudo_label_loss(logits: torch.Tensor, targets_from: torch.Tensor, threshold: float):
    """Cross-entropy of ``logits`` toward the confident predictions of
    ``targets_from`` (the same logits for pseudo-labeling, the weak view's
    for FixMatch), averaged over all unlabeled samples (FixMatch's
    normalisation: the term grows as more predictions become confident)."""
    labels, mask = confident_targets(targets_from, threshold)
    return (F.cross_entropy(logits.float(), labels, reduction="none") * mask).mean()


# -- domain alignment -----------------------------------------------------------------------


def coral_loss(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Deep CORAL: squared Frobenius distance of the two feature covariances
    over ``4 d^2``."""
    d = source.shape[1]
    return (torch.cov(source.float().T) - torch.cov(target.float().T)).pow(2).sum() / (4 * d * d)


def mmd_loss(source: torch.Tensor, target: torch.Tensor,
             scales=(0.25, 0.5, 1.0, 2.0, 4.0)) -> torch.Tensor:
    """Squared maximum mean discrepancy (biased estimate) under the mean of
    Gaussian kernels whose bandwidths are ``scales`` times the mean squared
    distance between the batch's features (DAN's multi-kernel MMD); between
    0 and 2."""
    features = torch.cat([source, target]).float()
    distances = torch.cdist(features, features).pow(2)
    base = distances.detach().sum() / max(1, len(features) ** 2 - len(features))
    base = base.clamp_min(1e-12)
    kernel = sum(torch.exp(-distances / (base * s)) for s in scales) / len(scales)
    n = len(source)
    return (kernel[:n, :n].mean() + kernel[n:, n:].mean() - 2 * kernel[:n, n:].mean())


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.scale * grad, None


def reverse_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Identity forward; the gradient is multiplied by ``-scale`` backward."""
    return _ReverseGradient.apply(x, scale)


def domain_classifier(n_features: int, hidden: int = 256) -> nn.Module:
    """DANN's domain classifier: one hidden layer, one logit (target domain)."""
    return nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, 1))


def dann_loss(discriminator: nn.Module, source: torch.Tensor, target: torch.Tensor,
              scale: float) -> torch.Tensor:
    """The domain classifier's binary cross-entropy, reached through a
    gradient reversal of ``scale``: the discriminator learns to tell the
    domains apart while the trunk learns features it cannot tell apart."""
    dtype = next(discriminator.parameters()).dtype
    features = reverse_gradient(torch.cat([source, target]).to(dtype), scale)
    logits = discriminator(features).squeeze(1).float()
    domains = torch.cat([torch.zeros(len(source)), torch.ones(len(target))]).to(logits)
    return F.binary_cross_entropy_with_logits(logits, domains)


# -- conditioned on the predictions ------------------------------------------------------------

# CDAN's outer product of features and predictions above this width goes
# through a random multilinear map of this width instead (the paper's 1024
# for ResNet-50's 256-wide bottleneck and 31 classes)
MULTILINEAR_LIMIT = 4096
MULTILINEAR_WIDTH = 1024


class ConditionalDomainClassifier(nn.Module):
    """CDAN's domain classifier: one logit (target domain) from the
    multilinear map of features ``f`` and class probabilities ``g``, that is
    their outer product ``f ⊗ g``, or when it is wider than
    ``MULTILINEAR_LIMIT`` the randomized map ``(R_f f) * (R_g g) / sqrt(d)``
    with fixed Gaussian matrices (buffers, not trained)."""

    def __init__(self, n_features: int, n_classes: int, hidden: int = 256):
        super().__init__()
        self.randomized = n_features * n_classes > MULTILINEAR_LIMIT
        width = MULTILINEAR_WIDTH if self.randomized else n_features * n_classes
        if self.randomized:
            self.register_buffer("features_map", torch.randn(n_features, width))
            self.register_buffer("classes_map", torch.randn(n_classes, width))
        self.classifier = domain_classifier(width, hidden)

    def forward(self, features, probabilities):
        if self.randomized:
            joint = (features @ self.features_map) * (probabilities @ self.classes_map)
            joint = joint / math.sqrt(self.features_map.shape[1])
        else:
            joint = torch.bmm(probabilities.unsqueeze(2), features.unsqueeze(1)).flatten(1)
        return self.classifier(joint)


def conditional_domain_classifier(n_features: int, n_classes: int) -> nn.Module:
    """CDAN's domain classifier for ``n_features`` features and ``n_classes`` classes."""
    if n_classes is None:
        raise ValueError("CDAN conditions on class predictions; it needs the number of classes.")
    return ConditionalDomainClassifier(n_features, n_classes)


def prediction_entropy(probabilities: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of each row of ``probabilities``."""
    return -(probabilities * torch.log(probabilities.clamp_min(1e-12))).sum(dim=1)


def cdan_loss(discriminator: nn.Module, source: torch.Tensor, target: torch.Tensor, logits,
              scale: float, entropy: bool = True) -> torch.Tensor:
    """CDAN's domain loss: the conditional domain classifier's binary
    cross-entropy on the features (reached through a gradient reversal of
    ``scale``) conditioned on the detached class probabilities of
    ``logits`` (the labeled and the unlabeled samples' outputs). With
    ``entropy`` (CDAN+E) each sample weighs ``1 + exp(-H)``, normalised so
    that each domain's weights sum to one half."""
    dtype = next(discriminator.parameters()).dtype
    features = reverse_gradient(torch.cat([source, target]).to(dtype), scale)
    probabilities = torch.softmax(torch.cat(logits).detach().float(), dim=1)
    out = discriminator(features, probabilities.to(dtype)).squeeze(1).float()
    domains = torch.cat([torch.zeros(len(source)), torch.ones(len(target))]).to(out)
    losses = F.binary_cross_entropy_with_logits(out, domains, reduction="none")
    if not entropy:
        return losses.mean()
    weights = 1.0 + torch.exp(-prediction_entropy(probabilities))
    n = len(source)
    weights = torch.cat([weights[:n] / weights[:n].sum(), weights[n:] / weights[n:].sum()]) / 2
    return (weights * losses).sum()


def mcc_loss(logits: torch.Tensor, temperature: float = 2.5) -> torch.Tensor:
    """Minimum class confusion of the unlabeled samples' ``logits``: with
    ``P`` the softmax at ``temperature`` and ``W`` each sample's certainty
    weight ``1 + exp(-H)`` (scaled to sum to the batch size), the class
    correlation ``C = P^T diag(W) P`` is normalised row by row and the loss
    is its off-diagonal mass over the number of classes: near 0 when
    every prediction is confident, up to ``(k - 1) / k`` when all are uniform."""
    probabilities = torch.softmax(logits.float() / temperature, dim=1)
    n, k = probabilities.shape
    weights = 1.0 + torch.exp(-prediction_entropy(probabilities.detach()))
    weights = n * weights / weights.sum()
    confusion = (probabilities * weights[:, None]).T @ probabilities
    confusion = confusion / confusion.sum(dim=1, keepdim=True).clamp_min(1e-12)
    return (confusion.sum() - confusion.trace()) / k

