"""Ranking candidate backbones by their transferability scores on target images."""

from __future__ import annotations

import contextlib
import time

import numpy as np
from sklearn.base import clone
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_consistent_length

from .._backbone import ImageBackbone, TextEncoder, declared_input_kind
from .._base import BaseTransferEstimator
from .._exceptions import SourceLabelsUnavailableError
from .._features import TransferFeatures
from .._options import IMAGES
from .._table import rows_frame
from .._text import is_text_backbone
from .scores import LABEL_METRICS, METRICS, h_score, leep, logme, nce

__all__ = ["BackboneRanking", "rank_backbones"]


# -- candidates ---------------------------------------------------------------


def _check_metrics(metrics) -> tuple:
    metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise ValueError(
            f"unknown metric(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
            f"choose one or more of {', '.join(map(repr, METRICS))}."
        )
    if len(set(metrics)) != len(metrics):
        raise ValueError(f"metrics lists a metric twice: {metrics}.")
    return metrics


def _backbone_label(backbone) -> str:
    if isinstance(backbone, str):
        return backbone
    if isinstance(backbone, BaseTransferEstimator):
        return f"fitted {type(backbone).__name__}"
    return type(backbone).__name__


def _weights_label(weights) -> str:
    return "random init" if weights is None else str(weights)


def _derived_name(spec) -> str:
    if isinstance(spec, TransferFeatures):
        name = f"{_backbone_label(spec.backbone)} ({_weights_label(spec.weights)})"
        return name if spec.stage is None else f"{name} stage={spec.stage}"
    if isinstance(spec, tuple):
        return f"{_backbone_label(spec[0])} ({_weights_label(spec[1])})"
    return _backbone_label(spec)


def _named_candidates(candidates) -> list[tuple[str, object]]:
    if isinstance(candidates, dict):
        named = [(str(name), spec) for name, spec in candidates.items()]
    elif isinstance(candidates, (str, tuple, TransferFeatures, BaseTransferEstimator)):
        raise TypeError(
            "candidates must be a dict {name: spec} or a list of specs; wrap a single "
            "candidate in a list."
        )
    else:
        named, seen = [], {}
        for spec in candidates:
            name = _derived_name(spec)
            seen[name] = seen.get(name, 0) + 1
            named.append((name if seen[name] == 1 else f"{name} #{seen[name]}", spec))
    if not named:
        raise ValueError("candidates is empty; give at least one backbone to rank.")
    return named


def _transformer_for(spec, *, image_size, max_length, batch_size, device, cache, cache_dir):
    """The (unfitted) TransferFeatures that computes a candidate's features."""
    if isinstance(spec, TransferFeatures):
        transformer = clone(spec).set_params(cache=cache, cache_dir=cache_dir)
        return transformer.set_params(backbone=_sized(transformer.backbone, image_size))
    if isinstance(spec, tuple):
        if len(spec) != 2:
            raise ValueError(
                f"a tuple candidate is (backbone, weights), got {len(spec)} items: {spec!r}."
            )
        backbone, weights = spec
    elif (isinstance(spec, (str, TextEncoder, BaseTransferEstimator))
          or hasattr(spec, "state_dict")):
        backbone, weights = spec, "DEFAULT"
    else:
        raise TypeError(
            "a candidate must be a registry name, a (name, weights) tuple, a fitted "
            "PretrainedClassifier or TransferRegressor, an nn.Module or a "
            f"TransferFeatures; got {type(spec).__name__}."
        )
    if isinstance(backbone, str) and is_text_backbone(backbone):
        backbone = TextEncoder(backbone, max_length=max_length)
    return TransferFeatures(_sized(backbone, image_size), weights=weights,
                            batch_size=batch_size, cache=cache, cache_dir=cache_dir,
                            device=device)


def _sized(backbone, image_size):
    """An image backbone with ``image_size`` unless it has its own size; any
    other backbone (text, tabular, an image network whose size it decides:
    a fitted estimator or a module) as it is."""
    if image_size is None:
        return backbone
    if isinstance(backbone, ImageBackbone):
        return backbone if backbone.image_size is not None else \
            clone(backbone).set_params(image_size=image_size)
    if isinstance(backbone, BaseTransferEstimator):
        images = getattr(backbone, "input_kind_", None) == IMAGES
    else:
        images = declared_input_kind(backbone) in (None, IMAGES)  # a name or a module
    return ImageBackbone(backbone, image_size=image_size) if images else backbone


# -- scoring one candidate ----------------------------------------------------


def _label_problem(y) -> str | None:
    """Why ``y`` cannot be scored by class-label metrics, or None."""
    kind = type_of_target(y)
    if kind not in ("binary", "multiclass"):
        return f"y is {kind!r}, not class labels"
    if len(np.unique(y)) < 2:
        return "y holds a single class"
    return None


_LABEL_SCORES = {"leep": leep, "nce": nce}


def _score_candidate(name, transformer, X, y, metrics, label_problem) -> dict:
    """One row of the ranking: ``metrics`` of a candidate, NaN with a note
    where a metric does not apply."""
    start = time.perf_counter()
    features = transformer.fit_transform(X)
    scores = dict.fromkeys(metrics, np.nan)
    if "logme" in metrics:
        scores["logme"] = logme(features, y)
    why = label_problem
    if why is None:
        if "h_score" in metrics:
            scores["h_score"] = h_score(features, y)
        wanted = [m for m in LABEL_METRICS if m in metrics]
        if wanted:
            try:
                probs = transformer.source_proba(X, features=features)
            except SourceLabelsUnavailableError as error:
                why = error.reason
            else:
                scores.update({m: _LABEL_SCORES[m](probs, y) for m in wanted})
    missing = [m for m in metrics if np.isnan(scores[m])]
    return {"name": name, **scores, "n_features": int(features.shape[1]),
            "seconds": round(time.perf_counter() - start, 2),
            "notes": f"{', '.join(missing)}: {why}" if missing else ""}


# -- the ranking --------------------------------------------------------------


class BackboneRanking:
    """Transferability scores of candidate backbones, best first.

    Made by :func:`rank_backbones`; not meant to be built directly.

    Parameters
    ----------
    rows : list of dict
        One dict per candidate (see ``rows`` below), in any order.
    metrics : tuple of str
        The metrics in the rows; the first one orders them.

    Attributes
    ----------
    rows : list of dict
        One dict per candidate with keys ``name``, one per metric,
        ``n_features``, ``seconds`` (feature extraction and scoring) and
        ``notes`` (why a metric is NaN), best first.
    metrics : tuple of str
        The metrics computed.

    See Also
    --------
    rank_backbones : Scores candidate backbones and returns their ranking.

    Examples
    --------
    >>> from sktransfer.selection import BackboneRanking
    >>> rows = [{"name": name, "logme": value, "n_features": 8, "seconds": 0.1, "notes": ""}
    ...         for name, value in [("small", -1.5), ("large", -0.5)]]
    >>> ranking = BackboneRanking(rows, ("logme",))
    >>> ranking.best
    'large'
    >>> print(ranking)
    name     logme  n_features  seconds  notes
    large  -0.5000           8     0.10
    small  -1.5000           8     0.10
    """

    def __init__(self, rows, metrics):
        self.metrics = tuple(metrics)
        key = self.metrics[0]
        # best first; NaN last; ties keep the given order
        self.rows = sorted(rows, key=lambda row: (np.isnan(row[key]), -np.nan_to_num(row[key])))

    @property
    def best(self) -> str:
        """Name of the best candidate by the first metric."""
        return self.rows[0]["name"]

    @property
    def columns(self) -> list[str]:
        """Keys of each row, in table order."""
        return ["name", *self.metrics, "n_features", "seconds", "notes"]

    def to_frame(self):
        """The rows as a pandas DataFrame (needs pandas).

        Returns
        -------
        frame : pandas.DataFrame
            One row per candidate, best first.
        """
        return rows_frame(self.rows, self.columns, "BackboneRanking.to_frame")

    def _cells(self, row) -> list[str]:
        cells = [str(row["name"])]
        cells += [f"{row[m]:.4f}" for m in self.metrics]
        cells += [str(row["n_features"]), f"{row['seconds']:.2f}", row["notes"]]
        return cells

    def __str__(self):
        table = [self.columns] + [self._cells(row) for row in self.rows]
        widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
        numeric = range(1, len(self.metrics) + 3)
        lines = []
        for line in table:
            cells = [cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
                     for i, cell in enumerate(line)]
            lines.append("  ".join(cells).rstrip())
        return "\n".join(lines)

    __repr__ = __str__


def rank_backbones(candidates, X, y, *, metrics=METRICS, image_size=None, max_length=128,
                   batch_size=64, cache=True, cache_dir=None, device="auto",
                   random_state=None):
    """Score candidate backbones on the target images (or texts) and rank
    them, best first.

    Each candidate's features are the embeddings of :class:`~sktransfer.TransferFeatures`
    (the same code path as the transformer). ``logme`` and ``h_score`` score
    those features; ``leep`` and ``nce`` score the candidate's own label
    predictions (e.g. its ImageNet classes), which exist for:

    - a registry name, with pretrained or random (``weights=None``) weights:
      the torchvision head applied to the trunk's output;
    - a torchvision classification model given as an ``nn.Module``: its own
      head;
    - a fitted :class:`~sktransfer.PretrainedClassifier`: its ``predict_proba``.

    For other candidates (a custom module, a fitted regressor, weights read
    from a file) these metrics are NaN and ``notes`` says why. Nothing is
    trained, so ranking is fast compared with fine-tuning each candidate.

    Parameters
    ----------
    candidates : dict or list
        ``{display name: spec}``, or a list of specs (names are derived). A
        spec is a registry name (weights "DEFAULT"), a tuple ``(name,
        weights)``, a fitted image :class:`~sktransfer.PretrainedClassifier` or
        :class:`~sktransfer.TransferRegressor`, an ``nn.Module`` (its own parameters), or
        an unfitted :class:`~sktransfer.TransferFeatures`, which chooses the cut
        (``stage``), the weights and the image size for that candidate.
    X : images or texts
        Target images or texts, in any form :class:`~sktransfer.TransferFeatures`
        accepts (texts for text encoders such as "all-MiniLM-L6-v2").
    y : array-like of shape (n_samples,)
        Target labels (class labels, or continuous targets: then only
        ``logme`` is computed and the others are NaN).
    metrics : str or sequence of str, default=("logme", "h_score", "leep", "nce")
        Scores to compute; the first one orders the rows.
    image_size : int or None, default=None
        Side of the square input for every image candidate; None uses each
        backbone's own size. An :class:`~sktransfer.ImageBackbone` (also inside a
        :class:`~sktransfer.TransferFeatures` candidate) keeps its own ``image_size``
        unless that is None.
    max_length : int, default=128
        Text candidates: texts are truncated at this many tokens (a
        :class:`~sktransfer.TransferFeatures` candidate keeps its own).
    batch_size : int, default=64
        Images per inference batch (candidates other than TransferFeatures).
    cache : bool, default=True
        Keep the embeddings in :class:`~sktransfer.TransferFeatures`' activation cache,
        so ranking again (or fitting a model on the winner) does not recompute
        them. Applies to every candidate.
    cache_dir : str, path or None, default=None
        Directory of the on-disk activation cache, as for
        :class:`~sktransfer.TransferFeatures`. Applies to every candidate.
    device : str, default="auto"
        "auto" uses CUDA when available, else the CPU (candidates other than
        TransferFeatures).
    random_state : int, RandomState instance or None, default=None
        Seeds the parameters of random-init candidates (``(name, None)``),
        so that a ranking repeats; None draws new ones at each call. The
        caller's global torch random state is left as it was.

    Returns
    -------
    ranking : BackboneRanking
        ``rows`` (dicts), ``best`` (a name), ``to_frame()``; printing it
        shows a table.

    See Also
    --------
    logme, h_score, leep, nce : The scores.
    make_transferability_scorer : A scorer for ``GridSearchCV``.

    Notes
    -----
    Scores compare candidates on the same images only. With fewer images than
    features, ``h_score`` favours wide features even when they carry nothing
    (see :func:`h_score`), and ``nce`` favours sources with many classes, each
    seen a few times; ``logme``, the default order, has neither bias. A
    random-init candidate draws new parameters at each call unless
    ``random_state`` is set.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.selection import rank_backbones
    >>> rng = np.random.RandomState(0)
    >>> X = rng.randint(0, 256, size=(12, 32, 32, 3), dtype=np.uint8)
    >>> y = np.repeat([0, 1, 2], 4)
    >>> ranking = rank_backbones(
    ...     {"imagenet": ("mobilenet_v2", "IMAGENET1K_V1"), "random": ("mobilenet_v2", None)},
    ...     X, y, metrics=("logme", "leep"), image_size=32, device="cpu")
    >>> sorted(row["name"] for row in ranking.rows)
    ['imagenet', 'random']
    >>> ranking.columns
    ['name', 'logme', 'leep', 'n_features', 'seconds', 'notes']
    """
    metrics = _check_metrics(metrics)
    named = _named_candidates(candidates)
    labels = np.asarray(y)
    label_problem = _label_problem(labels)
    settings = {"image_size": image_size, "max_length": max_length, "batch_size": batch_size,
                "device": device, "cache": cache, "cache_dir": cache_dir}
    transformers = []
    for name, spec in named:
        with _naming(name):
            transformers.append((name, _transformer_for(spec, **settings)))
    checked = {}  # X validated once per kind of input (images, texts)
    for name, transformer in transformers:
        with _naming(name):
            kind = transformer._input_kind()
            if kind not in checked:
                checked[kind] = transformer._check_input(X)
        check_consistent_length(checked[kind].data, labels)
    rows = []
    with _seeded(random_state):
        for name, transformer in transformers:
            with _naming(name):
                rows.append(_score_candidate(name, transformer, X, labels, metrics,
                                             label_problem))
    return BackboneRanking(rows, metrics)


@contextlib.contextmanager
def _naming(name: str):
    """Errors raised for one candidate start with its name: the same type of
    error with the message prefixed, or, for an error that cannot be rebuilt
    from a message, the name as a note."""
    try:
        yield
    except Exception as error:
        message = f"candidate {name!r}: {error}"
        try:
            renamed = type(error)(message)
        except Exception:
            renamed = None
        if renamed is None or str(renamed) != message:
            if hasattr(error, "add_note"):  # Python >= 3.11
                error.add_note(f"(raised for candidate {name!r})")
            raise
        raise renamed from error


@contextlib.contextmanager
def _seeded(random_state):
    """torch seeded from ``random_state`` for the ranking (nothing when None)."""
    if random_state is None:
        yield
        return
    from .._nn.runtime import seeded  # torch loads on first use, not on import

    seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
    with seeded(seed, "cpu"):
        yield

