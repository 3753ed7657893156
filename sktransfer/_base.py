"""What the classifier and the regressor share: parameters, validation and
the fit / predict steps around the network."""

from __future__ import annotations

import contextlib
import os
import warnings
from abc import ABCMeta, abstractmethod
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.utils.validation import check_consistent_length, check_is_fitted, validate_data

from . import _options as opt
from ._compat import (
    HasMethods,
    Interval,
    StrOptions,
    _check_sample_weight,
    _check_y,
    _safe_indexing,
)
from ._backbone import Backbone, declared_input_kind, network_of
from ._images import check_images, check_same_layout
from ._adaptation_search import SearchResult, search as search_adaptation
from ._methods import DP, L2SP, Alignment, AutoAdaptation, SemiSupervised, resolve_method
from ._options import IMAGES, TABULAR, TEXT
from ._recipe import Recipe, input_kind_of
from ._text import check_texts


def _engine():
    """The training engine, imported on first use so that ``import
    sktransfer`` does not load torch."""
    from ._nn import engine

    return engine


def _cuda_available() -> bool:
    from ._nn.runtime import cuda_available

    return cuda_available()


def _json_labels(target_attributes: dict):
    """Class labels as plain Python values (they go into saved configs)."""
    classes = target_attributes.get("classes_")
    if isinstance(classes, list):  # one array per task
        return [np.asarray(c).tolist() for c in classes]
    return None if classes is None else np.asarray(classes).tolist()


def rows_of(data, input_kind: str):
    """What has one entry per sample in validated ``data``: the table
    itself, or the checked images' or texts' ``data``."""
    return data if input_kind == TABULAR else data.data


@contextlib.contextmanager
def atomic_fit(estimator, extra=("_fit_result",)):
    """Start a fit from a clean slate, as scikit-learn's estimators do (no
    fitted attribute of a previous fit outlives a refit), and restore
    ``estimator`` exactly as it was if the fit fails half-way (validation
    helpers set ``n_features_in_`` before training). ``extra``: private
    fitted attributes to clear too."""
    saved = dict(estimator.__dict__)
    for name in saved:
        if name in extra or (name.endswith("_") and not name.startswith("__")):
            delattr(estimator, name)
    try:
        yield
    except BaseException:
        estimator.__dict__.clear()
        estimator.__dict__.update(saved)
        raise


def clone_keeping_source(estimator):
    """``clone`` that passes a fitted estimator given as ``backbone`` on as it
    is: it is the *source* of the transfer, not a sub-estimator to refit."""
    if not isinstance(estimator.backbone, BaseTransferEstimator):
        return BaseEstimator.__sklearn_clone__(estimator)
    params = estimator.get_params(deep=False)
    source = params.pop("backbone")
    params = {name: clone(value, safe=False) for name, value in params.items()}
    return type(estimator)(backbone=source, **params)


class BaseTransferEstimator(BaseEstimator, metaclass=ABCMeta):
    """Base class of the transfer-learning estimators. Not for direct use."""

    _parameter_constraints: dict = {
        "backbone": [str, Backbone, HasMethods(["forward", "state_dict"]),
                     HasMethods(["fit", "predict"])],
        "weights": [None, str, os.PathLike],
        "freeze_depth": [Interval(Integral, 0, None, closed="left"), StrOptions({"all"})],
        "head": [tuple, list],
        "head_dropout": [Interval(Real, 0, 1, closed="left")],
        "head_init": [StrOptions(set(opt.HEAD_INITS))],
        "probe_alpha": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "lr": [None, Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "optimizer": [StrOptions(set(opt.OPTIMIZERS))],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "tol": [Interval(Real, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "unfreeze_at": [None, Interval(Integral, 0, None, closed="left"), tuple, list],
        "layer_decay": [Interval(Real, 0, 1, closed="right")],
        "backbone_lr_mult": [Interval(Real, 0, None, closed="neither")],
        "regularization": [None, StrOptions(set(opt.REGULARIZATIONS)), L2SP],
        "bn_mode": [StrOptions(set(opt.BN_MODES))],
        "lr_schedule": [StrOptions(set(opt.LR_SCHEDULES))],
        "warmup_epochs": [Interval(Real, 0, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "augment": [None, StrOptions({"auto", *opt.AUGMENTATIONS})],
        "unlabeled": [None, StrOptions(set(opt.UNLABELED)), SemiSupervised],
        "domain_adaptation": [None, StrOptions(set(opt.DOMAIN_ADAPTATIONS)), Alignment,
                              AutoAdaptation],
        "precision": [StrOptions(set(opt.PRECISIONS))],
        "max_grad_norm": [None, Interval(Real, 0, None, closed="neither")],
        "privacy": [None, StrOptions(set(opt.PRIVACY)), DP],
        "source_head": [StrOptions(set(opt.SOURCE_HEAD_MODES))],
        "cache": ["boolean"],
        "cache_dir": [None, str, os.PathLike],
        "n_jobs": [None, Integral],
        "device": [str],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    # How fit validates y (see sklearn.utils.validation.check_X_y).
    _y_validation: dict = {}

    def __init__(self, backbone="mobilenet_v2", *, weights="DEFAULT", freeze_depth=0,
                 head=(), head_dropout=0.0, head_init="random", probe_alpha="auto", lr=None,
                 optimizer="adamw", weight_decay=1e-4, max_epochs="auto", tol=1e-4,
                 batch_size=32, unfreeze_at=None, layer_decay=1.0,
                 backbone_lr_mult=1.0, regularization=None, bn_mode="train",
                 lr_schedule="cosine", warmup_epochs=1.0, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, augment="auto",
                 unlabeled=None, domain_adaptation=None, precision="auto",
                 max_grad_norm=None, privacy=None, source_head="auto", cache=True,
                 cache_dir=None, n_jobs=None, device="auto", random_state=None, verbose=0):
        self.backbone = backbone
        self.weights = weights
        self.freeze_depth = freeze_depth
        self.head = head
        self.head_dropout = head_dropout
        self.head_init = head_init
        self.probe_alpha = probe_alpha
        self.lr = lr
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.max_epochs = max_epochs
        self.tol = tol
        self.batch_size = batch_size
        self.unfreeze_at = unfreeze_at
        self.layer_decay = layer_decay
        self.backbone_lr_mult = backbone_lr_mult
        self.regularization = regularization
        self.bn_mode = bn_mode
        self.lr_schedule = lr_schedule
        self.warmup_epochs = warmup_epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.augment = augment
        self.unlabeled = unlabeled
        self.domain_adaptation = domain_adaptation
        self.precision = precision
        self.max_grad_norm = max_grad_norm
        self.privacy = privacy
        self.source_head = source_head
        self.cache = cache
        self.cache_dir = cache_dir
        self.n_jobs = n_jobs
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # -- hooks for the classifier and the regressor ---------------------------

    @abstractmethod
    def _prepare_targets(self, y, sample_weight) -> tuple[np.ndarray, int, dict]:
        """Encode validated ``y`` for the network (``sample_weight`` has mean 1).

        Returns the training targets, the number of network outputs and the
        fitted attributes that describe the targets (``classes_``, ...).
        """

    _task = "classification"  # or "regression"

    # -- fit -------------------------------------------------------------------

    def _atomic_fit(self):
        return atomic_fit(self)

    def _source(self):
        """The fitted sktransfer estimator given as backbone (or as an
        ``ImageBackbone``'s network), or None."""
        source = network_of(self.backbone)
        if not isinstance(source, BaseTransferEstimator):
            return None
        try:
            check_is_fitted(source)
        except NotFittedError:
            raise ValueError(
                f"backbone is an unfitted {type(source).__name__}; fit it on "
                "the source task first, then pass the fitted estimator."
            ) from None
        return source

    def _validate_y(self, y):
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        return _check_y(y, estimator=self, **self._y_validation)

    def _validate_fit_data(self, X, y, input_kind):
        data = self._validate_fit_inputs(X, input_kind)
        y = self._validate_y(y)
        check_consistent_length(rows_of(data, input_kind), y)
        return data, y

    def _validate_fit_inputs(self, X, input_kind):
        """``X`` validated as ``input_kind`` data (a table sets
        ``n_features_in_`` and must match a source estimator's features)."""
        if input_kind == TABULAR:
            X = validate_data(self, X, dtype=[np.float64, np.float32])
            self._check_source_features(X)
            return X
        return check_texts(X) if input_kind == TEXT else check_images(X)

    def _check_source_features(self, X):
        source = self._source()
        if source is not None and source.n_features_in_ != X.shape[1]:
            raise ValueError(
                f"X has {X.shape[1]} features, but the source estimator given as "
                f"backbone was fitted on {source.n_features_in_} features; transfer "
                "needs the same input features."
            )

    @staticmethod
    def _normalised_weights(weights: np.ndarray) -> np.ndarray:
        """Validated weights of the labeled samples scaled to mean 1."""
        if not weights.sum() > 0:
            raise ValueError(
                "sample_weight sums to zero over the labeled samples; at least one "
                "needs weight > 0."
            )
        return weights / weights.mean()

    def _linear_head(self):
        """``(coef, intercept, classes)`` of this fitted network's head, for
        the linear transfer estimators' ``source``: the head must be one
        linear layer on the trunk's pooled features (``head=()``, e.g. the
        exact probe of ``freeze_depth="all"``), which
        ``TransferFeatures(backbone=self)`` computes. ``classes`` is None for
        a regressor; a regressor's head is returned in the units of its ``y``."""
        check_is_fitted(self)
        coef, intercept = _engine().linear_head(self._fit_result,
                                                f"the fitted {type(self).__name__}")
        return self._head_in_target_units(coef, intercept)

    @abstractmethod
    def _head_in_target_units(self, coef, intercept):
        """``(coef, intercept, classes)`` from the raw head's weight and bias."""

    def _export_trunk(self):
        """This fitted estimator's trunk and head, offered as a backbone."""
        return _engine().export_trunk(self._fit_result, f"fitted {type(self).__name__}")

    def _fit(self, X, y, sample_weight=None):
        """Validate, resolve the recipe, prepare the targets, train with the
        engine, then set every fitted attribute at once."""
        source = self._source()
        kind = input_kind_of(self.backbone, X, source)
        data, y = self._validate_fit_data(X, y, kind)
        unlabeled = self._unlabeled_rows(y)
        settings = dict(input_kind=kind,
                        multi_task=self._task == "classification" and y.ndim == 2,
                        unlabeled_samples=bool(unlabeled.any()),
                        source=None if source is None else source._export_trunk())
        auto = resolve_method(self.domain_adaptation)
        searched = None
        if isinstance(auto, AutoAdaptation):
            # every parameter checked (the chosen method left open) before any candidate fits
            checked = Recipe.from_estimator(self, **settings, adaptation=None)
            searched = self._search_adaptation(auto, data if kind == TABULAR else X, y,
                                               sample_weight, unlabeled, checked.runtime.seed)
            settings["adaptation"] = searched.chosen
        recipe = Recipe.from_estimator(self, **settings)
        self._warn_if_nothing_to_adapt(y, unlabeled)
        targets, weights, n_outputs, target_attributes = self._partial_targets(
            y, sample_weight, unlabeled)
        self._train(recipe, data, targets, weights, n_outputs, target_attributes,
                    unlabeled if unlabeled.any() else None)
        if searched is not None:
            self.domain_adaptation_ = searched.chosen
            self.adaptation_scores_ = searched.scores
        return self

    def _train(self, recipe, data, targets, weights, n_outputs, target_attributes,
               unlabeled=None):
        """Train with the engine on validated ``data`` and encoded
        ``targets``, set every fitted attribute at once, and warn when the
        fit diverged or stopped before converging."""
        result = _engine().fit(recipe, data, targets, weights, n_outputs=n_outputs,
                               classes=_json_labels(target_attributes), unlabeled=unlabeled)
        self._set_fitted(result, data, target_attributes)
        self._warn_if_diverged(result)
        if not result.converged:
            watched = "validation score" if self.early_stopping else "training loss"
            warnings.warn(
                f"{type(self).__name__} stopped at its epoch budget ({result.n_iter} epochs) "
                f"before converging: the {watched} still improved by more than "
                f"tol={self.tol} within n_iter_no_change={self.n_iter_no_change} epochs. "
                "Raise max_epochs (or leave it 'auto'), or raise tol.",
                ConvergenceWarning, stacklevel=5)

    def _search_adaptation(self, auto, X, y, sample_weight, unlabeled, seed):
        """``domain_adaptation="auto"``: the candidate its scorer rates best
        (None without unlabeled samples: there is nothing to adapt to)."""
        if not unlabeled.any():
            return SearchResult(None, [])
        return search_adaptation(self, auto, X, y, sample_weight, unlabeled, seed)

    def _adaptation_features(self, X) -> np.ndarray:
        """The features of ``X`` that a domain adaptation aligns (the
        bottleneck's output, or the trunk's): what
        ``DeepEmbeddedValidation`` weighs the source samples on."""
        return self._predict_outputs(X, features=True)

    # -- unlabeled samples (-1 / NaN) -------------------------------------------

    @abstractmethod
    def _unlabeled_rows(self, y) -> np.ndarray:
        """Boolean mask of the samples of validated ``y`` that carry no label."""

    def _marks_unlabeled(self) -> bool:
        """Whether ``y``'s mark (-1, NaN rows) means an unlabeled sample: with
        ``unlabeled`` or ``domain_adaptation`` set (else a classifier's -1 is
        an ordinary class)."""
        return self.unlabeled is not None or self.domain_adaptation is not None

    def _warn_if_nothing_to_adapt(self, y, unlabeled):
        """domain_adaptation aligns the labeled samples to the unlabeled ones;
        without any, the fit is supervised only: say so."""
        if self.domain_adaptation is None or unlabeled.any():
            return
        warnings.warn(
            f"domain_adaptation={self.domain_adaptation!r} is set but y has no unlabeled "
            f"samples ({self._unlabeled_mark}); the fit is supervised only. Pass the target "
            f"domain's samples in X, marked unlabeled in y.{self._unlabeled_hint(y)}",
            UserWarning, stacklevel=5)

    def _unlabeled_hint(self, y) -> str:
        """A sentence added to the warning above for a ``y`` that seems to mark
        unlabeled samples another way ("" when it does not)."""
        return ""

    @abstractmethod
    def _fill_unlabeled(self, targets, unlabeled) -> np.ndarray:
        """Encoded targets of the labeled samples spread over all samples,
        with the engine's mark at the unlabeled ones."""

    def _partial_targets(self, y, sample_weight, unlabeled):
        """Targets, sample weights (mean 1 over the labeled samples, 0 on the
        others), number of outputs and target attributes, from the labeled
        samples of ``y``."""
        n_labeled = int((~unlabeled).sum())
        if n_labeled == 0:
            raise ValueError(
                f"Every one of the {len(y)} samples is unlabeled ({self._unlabeled_mark}); "
                f"{type(self).__name__} needs labeled samples to learn from. In a "
                "cross-validation, each training fold needs some."
            )
        weights = _check_sample_weight(sample_weight, np.empty((len(y), 0)),
                                       dtype=np.float64, ensure_non_negative=True)
        labeled_weights = self._normalised_weights(weights[~unlabeled])
        targets, n_outputs, attributes = self._prepare_targets(y[~unlabeled], labeled_weights)
        weights = np.zeros(len(y))
        weights[~unlabeled] = labeled_weights
        return self._fill_unlabeled(targets, unlabeled), weights, n_outputs, attributes

    def _labeled_for_scoring(self, X, y, sample_weight):
        """``X``, ``y`` and ``sample_weight`` without the unlabeled samples,
        which ``score`` leaves out (scikit-learn's semi-supervised convention)."""
        y_array = np.asarray(y)
        unlabeled = self._unlabeled_rows(y_array)
        if not unlabeled.any():
            return X, y, sample_weight
        if unlabeled.all():
            raise ValueError(
                f"Every one of the {len(y_array)} samples given to score is unlabeled "
                f"({self._unlabeled_mark}); a score needs labeled samples. In a "
                "cross-validation, each test fold needs some."
            )
        keep = np.flatnonzero(~unlabeled)
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight)[keep]
        return _safe_indexing(X, keep), y_array[keep], sample_weight

    # an epoch's training loss this many times the first batch's means divergence
    _DIVERGENCE_FACTOR = 2.0

    def _warn_if_diverged(self, result):
        """A ConvergenceWarning when an epoch's training loss rose far above
        the loss of the first batch (the untrained network): too high a
        learning rate can leave a model at chance with finite losses, which
        the non-finite-loss check does not catch. Not for fits whose loss
        includes unlabeled terms (they ramp up on purpose)."""
        start = result.first_loss
        losses = [r["train_loss"] for r in result.history if "train_loss" in r]
        if start is None or not losses or result.trained_unlabeled or not start > 0:
            return
        worst = int(np.argmax(losses))
        if losses[worst] > self._DIVERGENCE_FACTOR * start:
            warnings.warn(
                f"{type(self).__name__}'s training loss rose from {start:.4g} (the first "
                f"batch) to {losses[worst]:.4g} (epoch {worst + 1}): the fit diverged and "
                f"its model may be no better than chance. Lower lr (it was {self.lr_:.3g}) "
                "or freeze more of the backbone.", ConvergenceWarning, stacklevel=6)

    def _set_fitted(self, result, data, target_attributes: dict):
        fitted = {"net_": result.net, "history_": result.history, "lr_": result.lr,
                  "n_stages_": result.n_stages, "device_": result.device,
                  "input_kind_": result.input_kind, "cache_info_": result.cache_info,
                  "weights_": result.weights, "n_iter_": result.n_iter,
                  "_fit_result": result, **target_attributes}
        if result.probe_alpha is not None:
            fitted["probe_alpha_"] = (np.asarray(result.probe_alpha)
                                      if isinstance(result.probe_alpha, tuple)
                                      else result.probe_alpha)
        if result.best_epoch is not None:
            fitted["best_epoch_"] = result.best_epoch
        if result.privacy is not None:
            fitted.update({f"{name}_": value for name, value in result.privacy.items()})
        if result.input_kind == IMAGES:
            fitted.update(image_size_=result.image_size, preprocessing_=result.preprocessing,
                          input_signature_=data.signature,
                          input_description_=data.describe())
        for name, value in fitted.items():
            setattr(self, name, value)

    # -- predict ---------------------------------------------------------------

    def _predict_outputs(self, X, features: bool = False) -> np.ndarray:
        check_is_fitted(self)
        if self.input_kind_ == TABULAR:
            data = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        elif self.input_kind_ == TEXT:
            data = check_texts(X)
        else:
            data = check_images(X)
            check_same_layout(self.input_signature_, data, self.input_description_)
        return _engine().predict(self._fit_result, data, n_jobs=self.n_jobs, cache=self.cache,
                                 cache_dir=self.cache_dir, features=features)

    # -- transfer --------------------------------------------------------------

    def save_weights(self, path):
        """Write the fitted trunk and head as safetensors, with a JSON config.

        The file (``.safetensors``) embeds the architecture config; the same
        config is written beside it as ``<name>.json``. Pass the file as
        ``weights=path`` to an estimator with a matching backbone to start
        from these parameters (the head is kept when the output size matches,
        replaced otherwise).

        Parameters
        ----------
        path : str or path-like
            Destination ending in ``.safetensors``.

        Returns
        -------
        path : pathlib.Path
            The safetensors file written.
        """
        check_is_fitted(self)
        return _engine().save_weights(self._fit_result, path, estimator=type(self).__name__,
                                      input_kind=self.input_kind_)

    def __sklearn_clone__(self):
        return clone_keeping_source(self)

    # -- scikit-learn plumbing -------------------------------------------------

    def __sklearn_is_fitted__(self):
        return hasattr(self, "net_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        kind = declared_input_kind(self.backbone)
        if kind == TEXT:
            tags.input_tags.two_d_array = False
            tags.input_tags.string = True
        elif kind == IMAGES:
            tags.input_tags.two_d_array = False
            tags.input_tags.three_d_array = True
        # CPU fits with a random_state are reproducible; CUDA kernels may not be.
        tags.non_deterministic = self.device != "cpu" and _cuda_available()
        return tags

    def __setstate__(self, state):
        super().__setstate__(state)
        # skorch maps a net pickled on CUDA to the CPU when no GPU is here;
        # keep device_ telling where the network now lives.
        net = self.__dict__.get("net_")
        if net is not None:
            self.device_ = str(net.device)
