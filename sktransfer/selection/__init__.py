"""Transferability scores and ranking of candidate backbones.

Before fine-tuning anything, these scores estimate from one forward pass how
well a pretrained backbone will transfer to a target task:

- :func:`logme` and :func:`h_score` score the backbone's *features* on the
  target labels;
- :func:`leep` and :func:`nce` score the *source model's own label
  predictions* (e.g. its ImageNet classes) against the target labels.

:func:`rank_backbones` computes them for several candidate backbones on the
same images, and :func:`make_transferability_scorer` makes a scorer that
``GridSearchCV`` can use to choose between feature extractors without
training anything.

:class:`PredictionEntropyScorer`, :class:`ImportanceWeightedScorer` and
:class:`DeepEmbeddedValidation` rate a domain-adaptation fit without
target labels (the samples labeled -1 in each scored fold are the target
domain), so ``GridSearchCV`` can choose a method or its strength.

All logarithms are natural (nats).
"""

from .._adaptation_scores import (
    DeepEmbeddedValidation,
    ImportanceWeightedScorer,
    PredictionEntropyScorer,
)
from .ranking import BackboneRanking, rank_backbones
from .scorer import make_transferability_scorer
from .scores import FEATURE_METRICS, LABEL_METRICS, METRICS, TASKS, h_score, leep, logme, nce

__all__ = [
    "FEATURE_METRICS",
    "LABEL_METRICS",
    "METRICS",
    "TASKS",
    "BackboneRanking",
    "DeepEmbeddedValidation",
    "ImportanceWeightedScorer",
    "PredictionEntropyScorer",
    "h_score",
    "leep",
    "logme",
    "make_transferability_scorer",
    "nce",
    "rank_backbones",
]
