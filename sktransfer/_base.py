"""What the classifier and the regressor share: parameters, validation and
the fit / predict steps around the network."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from abc import ABCMeta, abstractmethod
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_consistent_length, check_is_fitted, validate_data

from . import _nn
from ._compat import HasMethods, Interval, StrOptions, _check_sample_weight, _check_y
from ._images import check_images, check_same_layout

TABULAR, IMAGES = "tabular", "images"


def _json_labels(target_attributes: dict):
    """Class labels as plain Python values (they go into saved configs)."""
    classes = target_attributes.get("classes_")
    return None if classes is None else np.asarray(classes).tolist()


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
        "backbone": [str, HasMethods(["forward", "state_dict"]), HasMethods(["fit", "predict"])],
        "weights": [None, str, os.PathLike],
        "freeze_depth": [Interval(Integral, 0, None, closed="left"), StrOptions({"all"})],
        "head": [tuple, list],
        "head_dropout": [Interval(Real, 0, 1, closed="left")],
        "hidden_layer_sizes": [tuple, list],
        "activation": [StrOptions(set(_nn.ACTIVATIONS))],
        "lr": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "optimizer": [StrOptions(set(_nn.OPTIMIZERS))],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "image_size": [None, Interval(Integral, 1, None, closed="left")],
        "unfreeze_at": [None, Interval(Integral, 0, None, closed="left"), tuple, list],
        "layer_decay": [Interval(Real, 0, 1, closed="right")],
        "backbone_lr_mult": [Interval(Real, 0, None, closed="neither")],
        "regularization": [None, StrOptions({"l2sp"})],
        "regularization_strength": [Interval(Real, 0, None, closed="left")],
        "bn_mode": [StrOptions(set(_nn.BN_MODES))],
        "lr_schedule": [StrOptions(set(_nn.LR_SCHEDULES))],
        "warmup_epochs": [Interval(Real, 0, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "augment": [None, StrOptions({"auto", *_nn.AUGMENTATIONS})],
        "precision": [StrOptions(set(_nn.PRECISIONS))],
        "max_grad_norm": [None, Interval(Real, 0, None, closed="neither")],
        "source_head": [StrOptions({"auto", "keep", "new"})],
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
                 head=(), head_dropout=0.0, hidden_layer_sizes=(100,), activation="relu",
                 lr=1e-3, optimizer="adamw", weight_decay=1e-4, max_epochs=10,
                 batch_size=32, image_size=None, unfreeze_at=None, layer_decay=1.0,
                 backbone_lr_mult=1.0, regularization=None, regularization_strength=0.01,
                 bn_mode="train", lr_schedule="cosine", warmup_epochs=1.0,
                 early_stopping=False, validation_fraction=0.1, n_iter_no_change=5,
                 augment="auto", precision="auto", max_grad_norm=None, source_head="auto",
                 cache=True, cache_dir=None, n_jobs=None, device="auto", random_state=None,
                 verbose=0):
        self.backbone = backbone
        self.weights = weights
        self.freeze_depth = freeze_depth
        self.head = head
        self.head_dropout = head_dropout
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.lr = lr
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.image_size = image_size
        self.unfreeze_at = unfreeze_at
        self.layer_decay = layer_decay
        self.backbone_lr_mult = backbone_lr_mult
        self.regularization = regularization
        self.regularization_strength = regularization_strength
        self.bn_mode = bn_mode
        self.lr_schedule = lr_schedule
        self.warmup_epochs = warmup_epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.augment = augment
        self.precision = precision
        self.max_grad_norm = max_grad_norm
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

    def _loss_kind(self) -> str:
        return "cross_entropy"

    # -- fit -------------------------------------------------------------------

    @contextlib.contextmanager
    def _atomic_fit(self):
        """Restore the estimator exactly as it was if fit fails half-way
        (validation helpers set ``n_features_in_`` before training)."""
        saved = dict(self.__dict__)
        try:
            yield
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise

    def _source(self):
        """The fitted sktransfer estimator given as backbone, or None."""
        if not isinstance(self.backbone, BaseTransferEstimator):
            return None
        try:
            check_is_fitted(self.backbone)
        except NotFittedError:
            raise ValueError(
                f"backbone is an unfitted {type(self.backbone).__name__}; fit it on "
                "the source task first, then pass the fitted estimator."
            ) from None
        return self.backbone

    def _input_kind(self, X) -> str:
        source = self._source()
        if source is not None:
            return source.input_kind_
        if isinstance(self.backbone, str):
            return TABULAR if self.backbone == "mlp" else IMAGES
        # an nn.Module: a table of features is tabular data, anything else images
        return TABULAR if len(getattr(X, "shape", ())) == 2 else IMAGES

    def _validate_fit_data(self, X, y, kind):
        if kind == TABULAR:
            X, y = validate_data(self, X, y, dtype=[np.float64, np.float32], **self._y_validation)
            self._check_source_features(X)
            return X, y
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        y = _check_y(y, estimator=self, **self._y_validation)
        images = check_images(X)
        check_consistent_length(images.data, y)
        return images, y

    def _check_source_features(self, X):
        source = self._source()
        if source is not None and source.n_features_in_ != X.shape[1]:
            raise ValueError(
                f"X has {X.shape[1]} features, but the source estimator given as "
                f"backbone was fitted on {source.n_features_in_} features; transfer "
                "needs the same input features."
            )

    @staticmethod
    def _normalised_weights(sample_weight, n_samples: int) -> np.ndarray:
        weights = _check_sample_weight(sample_weight, np.empty((n_samples, 0)),
                                       dtype=np.float64, ensure_non_negative=True)
        if not weights.sum() > 0:
            raise ValueError("sample_weight sums to zero; at least one sample needs weight > 0.")
        return weights / weights.mean()

    def _backbone_spec(self):
        source = self._source()
        return self.backbone if source is None else source._export_trunk()

    def _export_trunk(self):
        """This fitted estimator's trunk and head, offered as a backbone."""
        module = self.net_.module_
        prep = getattr(self, "preprocessing_", None)
        if prep is not None:  # default to the size this estimator was trained at
            prep = dataclasses.replace(prep, image_size=self.image_size_)
        head_state = {k: v.detach().cpu().clone() for k, v in module.head.state_dict().items()}
        return _nn.SourceTrunk(module.trunk, module.n_features, module.stages, prep,
                               module.config.get("trunk", {}),
                               f"fitted {type(self).__name__}", head_state,
                               module.config.get("head"), module.config.get("classes"))

    def _seed(self) -> int:
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    def _fit(self, X, y, sample_weight=None):
        """Validate, build, train, then set every fitted attribute at once."""
        kind = self._input_kind(X)
        data, y = self._validate_fit_data(X, y, kind)
        self._check_strategy_params(kind)
        weights = self._normalised_weights(sample_weight, len(y))
        targets, n_outputs, target_attributes = self._prepare_targets(y, weights)
        device = _nn.resolve_device(self.device)
        dtype = _nn.tabular_dtype(data) if kind == TABULAR else "float32"

        def make_dataset(prep, size, augment=None):
            if kind == TABULAR:
                return _nn.TabularDataset(data, targets, weights, dtype)
            return _nn.ImageDataset(data, prep, size, targets, weights, augment)

        with _nn.seeded(self._seed(), device):
            module, dataset, prep, size = _nn.build_network(
                self._backbone_spec(), self.weights, head=self.head,
                head_dropout=self.head_dropout, n_outputs=n_outputs,
                freeze_depth=self.freeze_depth, image_size=self.image_size,
                dataset_fn=make_dataset, progress=self.verbose >= 1,
                tabular=self._tabular_settings(kind, data), input_kind=kind, dtype=dtype,
                source_head=self.source_head, classes=_json_labels(target_attributes),
            )
            if self.bn_mode == "frozen":
                _nn.freeze_all_norms(module)
            workers = _nn.data_workers(self.n_jobs, data.kind if kind == IMAGES else "array")
            plain = make_dataset(prep, size)
            cached = self._cache_activations(module, kind, data, plain, targets, weights,
                                             device, workers)
            if cached.used:
                train_set, valid_set = self._split(cached.dataset, cached.dataset, targets)
            else:
                train_set, valid_set = self._split(
                    make_dataset(prep, size, self._augment(kind)), plain, targets)
            plan = self._training_plan(module, device, kind, len(train_set), valid_set,
                                       0 if cached.used else workers)
            with _nn.skipping(module.trunk, cached.skipped_cut):
                if self.lr == "auto":
                    plan.lr = _nn.lr_range_test(module, train_set, loss_kind=self._loss_kind(),
                                                plan=plan)[0]
                net = _nn.build_net(module, task=self._task, n_outputs=n_outputs,
                                    loss=self._loss_kind(), plan=plan)
                _nn.train(net, train_set)
        history = _nn.history_records(net)
        fitted = {"net_": net, "history_": history, "lr_": plan.lr,
                  "n_stages_": module.n_stages, "device_": device, "input_kind_": kind,
                  "_dtype": dtype, "cache_info_": cached.info(), **target_attributes}
        if valid_set is not None:
            fitted["best_epoch_"] = int(min(history, key=lambda r: r["valid_loss"])["epoch"])
        # predict reads the activations it finds cached (None: a refit
        # without the cache must not keep the previous fit's key)
        fitted.update(_cache_key=cached.key if cached.used else None,
                      _cache_cut=cached.skipped_cut)
        if kind == IMAGES:
            fitted.update(image_size_=size, preprocessing_=prep,
                          input_signature_=data.signature,
                          input_description_=data.describe())
        for name, value in fitted.items():
            setattr(self, name, value)
        return self

    def _augment(self, kind):
        if self.augment != "auto":
            return self.augment
        # the default recipe augments when the whole backbone trains; when
        # some stages stay frozen, their activations are cached instead
        trains_all = self.freeze_depth == 0 or self.unfreeze_at is not None
        return "light" if kind == IMAGES and trains_all else None

    def _cache_blocker(self, kind) -> str:
        """Why frozen-stage activations cannot be cached exactly ('' if they can)."""
        if not self.cache:
            return "cache=False"
        if kind != IMAGES:
            return "tabular data: the network is cheap to run"
        if self.freeze_depth == 0:
            return "freeze_depth=0: no stage stays frozen"
        if self.unfreeze_at is not None:
            return "unfreeze_at trains the frozen stages later in the fit"
        augment = self._augment(kind)
        if augment is not None:
            return f"augment={augment!r} changes the images every epoch"
        return ""

    def _cache_activations(self, module, kind, data, plain, targets, weights, device,
                           workers):
        reason = self._cache_blocker(kind)
        if reason:
            return _nn.CachedActivations(reason=reason)
        return _nn.cache_activations(
            module, data, plain, targets, weights, frozen_depth=self.freeze_depth,
            batch_size=self.batch_size, device=device,
            precision=_nn.resolve_precision(self.precision, device),
            cache_dir=self.cache_dir, num_workers=workers, channels_last=True)

    def _tabular_settings(self, kind, data):
        if kind != TABULAR or self.backbone != "mlp":
            return None
        return {"n_features_in": data.shape[1],
                "hidden_layer_sizes": tuple(self.hidden_layer_sizes),
                "activation": self.activation}

    def _check_strategy_params(self, kind):
        if self.augment not in (None, "auto") and kind != IMAGES:
            raise ValueError(
                f"augment={self.augment!r} applies to images only; use augment=None "
                "for tabular data."
            )
        if isinstance(self.unfreeze_at, (tuple, list)):
            epochs = list(self.unfreeze_at)
            if (not epochs or not all(isinstance(e, Integral) and e >= 0 for e in epochs)
                    or epochs != sorted(epochs)):
                raise ValueError(
                    "unfreeze_at must be None, an int, or a non-empty increasing tuple "
                    f"of non-negative ints (epochs); got {self.unfreeze_at!r}."
                )
        if self.unfreeze_at is not None and self.freeze_depth == 0:
            raise ValueError(
                "unfreeze_at releases frozen stages, but freeze_depth=0 freezes none; "
                "set freeze_depth (e.g. 'all') or unfreeze_at=None."
            )

    def _split(self, train_dataset, plain_dataset, targets):
        """Training and validation subsets when early stopping is on.

        The validation subset never sees augmentation; for classifiers the
        split is stratified when every class has two samples or more.
        """
        if not self.early_stopping:
            return train_dataset, None
        n = len(targets)
        n_valid = max(1, int(round(self.validation_fraction * n)))
        if n - n_valid < 1:
            raise ValueError(
                f"early_stopping needs at least 2 samples; got {n}. Turn it off "
                "or pass more data."
            )
        stratify = None
        if self._task == "classification":
            _, counts = np.unique(targets, return_counts=True)
            if counts.min() >= 2 and n_valid >= len(counts):
                stratify = targets
        train_idx, valid_idx = train_test_split(
            np.arange(n), test_size=n_valid, stratify=stratify, random_state=self._seed())
        return _nn.subset(train_dataset, train_idx), _nn.subset(plain_dataset, valid_idx)

    def _training_plan(self, module, device, kind, n_train, valid_set, workers=0):
        frozen = (list(range(module.n_stages)) if self.freeze_depth == "all"
                  else list(range(self.freeze_depth)))
        precision = _nn.resolve_precision(self.precision, device)
        return _nn.TrainingPlan(
            lr=self.lr if self.lr != "auto" else 1e-3, optimizer=self.optimizer,
            weight_decay=self.weight_decay, max_epochs=self.max_epochs,
            batch_size=self.batch_size, device=device, verbose=self.verbose,
            layer_decay=self.layer_decay, backbone_lr_mult=self.backbone_lr_mult,
            l2sp_strength=self.regularization_strength if self.regularization == "l2sp" else 0.0,
            lr_schedule=self.lr_schedule, warmup_epochs=self.warmup_epochs,
            unfreeze_plan=_nn.unfreeze_plan(self.unfreeze_at, frozen), bn_mode=self.bn_mode,
            precision=precision, max_grad_norm=self.max_grad_norm,
            # channels_last speeds up convolutions on CPUs (oneDNN) and GPUs alike
            channels_last=kind == IMAGES,
            n_train=n_train, valid_dataset=valid_set, n_iter_no_change=self.n_iter_no_change,
            num_workers=workers,
        )

    # -- predict ---------------------------------------------------------------

    def _predict_outputs(self, X) -> np.ndarray:
        check_is_fitted(self)
        if self.input_kind_ == TABULAR:
            X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
            dataset, workers = _nn.TabularDataset(X, dtype=self._dtype), 0
        else:
            images = check_images(X)
            check_same_layout(self.input_signature_, images, self.input_description_)
            dataset = _nn.ImageDataset(images, self.preprocessing_, self.image_size_)
            workers = _nn.data_workers(self.n_jobs, images.kind)
            cached = self._cached_rows(images)
            if cached:
                skip = _nn.skipping(self.net_.module_.trunk, self._cache_cut)
                return _nn.predict_outputs_cached(self.net_, dataset, cached, skip, workers)
        return _nn.predict_outputs(self.net_, dataset, num_workers=workers)

    def _cached_rows(self, images) -> dict:
        """Frozen-stage activations of ``images`` that a cached fit left in
        the cache (a grid search's test folds were other folds' training
        data); exact, as in training. Empty when there are none."""
        key = self.__dict__.get("_cache_key")
        if key is None or not self.cache:
            return {}
        return _nn.cached_rows(key, images, cache_dir=self.cache_dir)

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
        module = self.net_.module_
        config = dict(module.config, estimator=type(self).__name__, input_kind=self.input_kind_)
        weights_path, _ = _nn.save_weights_file(path, module, config)
        return weights_path

    def __sklearn_clone__(self):
        return clone_keeping_source(self)

    # -- scikit-learn plumbing -------------------------------------------------

    def __sklearn_is_fitted__(self):
        return hasattr(self, "net_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        backbone = self.backbone
        if isinstance(backbone, str) and backbone != "mlp":
            tags.input_tags.two_d_array = False
            tags.input_tags.three_d_array = True
        # CPU fits with a random_state are reproducible; CUDA kernels may not be.
        tags.non_deterministic = self.device != "cpu" and _nn.cuda_available()
        return tags

    def __setstate__(self, state):
        super().__setstate__(state)
        # skorch maps a net pickled on CUDA to the CPU when no GPU is here;
        # keep device_ telling where the network now lives.
        net = self.__dict__.get("net_")
        if net is not None:
            self.device_ = str(net.device)
