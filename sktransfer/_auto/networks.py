"""Which pretrained networks a search considers, and their cut points
ranked by LogME on the target's features, so that only the most promising
few are trained."""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass

import numpy as np

from .._compat import _safe_indexing
from .._options import IMAGES, TEXT
from .space import Source, image_backbone, text_backbone

RANKING_SAMPLES = 500  # LogME is computed on at most this many samples
RANKING_SHARE = 0.2  # of the budget, at most, for ranking


def available_networks(kind: str, backbones, settings) -> list[Source]:
    """``backbones="available"``: every registered network of the input's
    kind whose pretrained weights are on this machine (nothing is
    downloaded); or those given: names, backbone objects, or ``(backbone,
    weights)`` tuples."""
    if backbones == "available":
        given = _local_image_backbones() if kind == IMAGES else _local_text_encoders()
    else:
        given = list(backbones)
    return [_network(value, kind, settings) for value in given]


def _network(value, kind: str, settings) -> Source:
    backbone, weights = value if isinstance(value, tuple) else (value, "DEFAULT")
    label = backbone if isinstance(backbone, str) else getattr(
        backbone, "name", type(backbone).__name__)
    if isinstance(backbone, str):
        backbone = text_backbone(backbone) if kind == TEXT else image_backbone(backbone, settings)
    return Source(str(label), backbone, weights, kind, None)


def _local_image_backbones() -> list[str]:
    from .._nn.backbones import REGISTRY
    from .._nn.weights import locally_available

    return [name for name in sorted(REGISTRY) if _has_local_weights(name, locally_available)]


def _has_local_weights(name: str, locally_available) -> bool:
    """Whether torchvision weights of ``name`` are on this machine (a
    registered network torchvision does not know has none)."""
    try:
        return bool(locally_available(name))
    except (KeyError, ValueError):
        return False


def _local_text_encoders() -> list[str]:
    from .._nn.text import model_source
    from .._text import TEXT_BACKBONES

    return [name for name in TEXT_BACKBONES if model_source(name)[1]]


@dataclass
class Pair:
    """A network and a cut point along it (``stage`` None: its output)."""

    network: Source
    stage: int | None
    logme: float = math.nan
    n_stages: int | None = None


def inner_stages(n_stages: int) -> list[int]:
    """The inner cut points tried: the middle stage and the one before last."""
    return sorted({s for s in (n_stages // 2, n_stages - 1) if 1 <= s < n_stages})


def rank_pairs(networks: list[Source], X, y, settings, budget, classification: bool):
    """LogME of every (network, cut) pair on at most ``RANKING_SAMPLES``
    samples, the outputs first; inner cuts only while ranking stays within
    ``RANKING_SHARE`` of the budget. Returns the pairs, best first (NaN
    last)."""
    rows = _ranking_rows(len(y), settings.seed)
    X_rank, y_rank = _safe_indexing(X, rows), np.asarray(y)[rows]
    limit = budget.start + RANKING_SHARE * budget.seconds
    pairs = []
    for network in networks:
        pair = Pair(network, None, n_stages=network.n_stages)
        pairs.append(pair)
        pair.logme, pair.n_stages = _score(network, None, X_rank, y_rank, settings,
                                           classification, budget)
    for network, output in zip(networks, list(pairs)):
        for stage in inner_stages(output.n_stages or 0):
            pair = Pair(network, stage, n_stages=output.n_stages)
            pairs.append(pair)
            if time.time() >= limit:
                budget.note(f"{network.label} stage {stage}: not ranked (ranking's share "
                            "of the budget used)")
                continue
            pair.logme, _ = _score(network, stage, X_rank, y_rank, settings,
                                   classification, budget)
    return sorted(pairs, key=lambda p: (math.isnan(p.logme), -np.nan_to_num(p.logme)))


def _ranking_rows(n: int, seed: int) -> np.ndarray:
    if n <= RANKING_SAMPLES:
        return np.arange(n)
    return np.sort(np.random.RandomState(seed).choice(n, RANKING_SAMPLES, replace=False))


def _score(network: Source, stage, X, y, settings, classification, budget):
    """(LogME of the features at ``stage``, the network's number of stages)."""
    from .._features import TransferFeatures
    from ..selection.scores import logme

    features = TransferFeatures(network.backbone, weights=network.weights, stage=stage,
                                cache_dir=settings.cache_dir, device=settings.device)
    where = network.label + ("" if stage is None else f" stage {stage}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            embedded = features.fit_transform(X)
            score = float(logme(embedded, y, task="classification" if classification
                                else "regression"))
    except Exception as exc:
        budget.note(f"{where}: not ranked ({type(exc).__name__}: {exc})".splitlines()[0])
        return math.nan, getattr(features, "n_stages_", None)
    budget.note(f"{where}: LogME {score:.4f}")
    return score, features.n_stages_


def kept_pairs(pairs: list[Pair], n_ranked: int) -> list[Pair]:
    """The ``n_ranked`` best pairs, plus the output of the best network (the
    one that is fine-tuned) when it is not among them."""
    kept = [p for p in pairs[:n_ranked] if not math.isnan(p.logme)] or pairs[:1]
    outputs = [p for p in pairs if p.stage is None]
    best_output = next((p for p in outputs if p.network is kept[0].network), outputs[0])
    if best_output not in kept:
        kept.append(best_output)
    return kept
