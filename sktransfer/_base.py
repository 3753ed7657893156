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
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_consistent_length, check_is_fitted, validate_data

from . import _nn
from ._compat import HasMethods, Interval, StrOptions, _check_sample_weight, _check_y
from ._images import check_images, check_same_layout

TABULAR, IMAGES = "tabular", "images"


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
        "lr": [Interval(Real, 0, None, closed="neither")],
        "optimizer": [StrOptions(set(_nn.OPTIMIZERS))],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "image_size": [None, Interval(Integral, 1, None, closed="left")],
        "device": [str],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    # How fit validates y (see sklearn.utils.validation.check_X_y).
    _y_validation: dict = {}

    def __init__(self, backbone="mobilenet_v2", *, weights="DEFAULT", freeze_depth=0,
                 head=(), head_dropout=0.0, hidden_layer_sizes=(100,), activation="relu",
                 lr=1e-3, optimizer="adamw", weight_decay=1e-4, max_epochs=10,
                 batch_size=32, image_size=None, device="auto", random_state=None,
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

    @abstractmethod
    def _make_net(self, module, n_outputs: int, settings: dict):
        """The skorch net that trains ``module`` for this task."""

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
        if source is None:
            return self.backbone
        module = source.net_.module_
        prep = getattr(source, "preprocessing_", None)
        if prep is not None:  # default to the size the source was trained at
            prep = dataclasses.replace(prep, image_size=source.image_size_)
        return _nn.SourceTrunk(module.trunk, module.n_features, module.stages, prep,
                               module.config.get("trunk", {}),
                               f"fitted {type(source).__name__}")

    def _seed(self) -> int:
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    def _fit(self, X, y, sample_weight=None):
        """Validate, build, train, then set every fitted attribute at once."""
        kind = self._input_kind(X)
        data, y = self._validate_fit_data(X, y, kind)
        weights = self._normalised_weights(sample_weight, len(y))
        targets, n_outputs, target_attributes = self._prepare_targets(y, weights)
        device = _nn.resolve_device(self.device)
        backbone = self._backbone_spec()
        dtype = _nn.tabular_dtype(data) if kind == TABULAR else "float32"
        if kind == TABULAR:
            def dataset_fn(prep, size):
                return _nn.TabularDataset(data, targets, weights, dtype)
        else:
            def dataset_fn(prep, size):
                return _nn.ImageDataset(data, prep, size, targets, weights)
        tabular = None
        if kind == TABULAR and backbone == "mlp":
            tabular = {"n_features_in": data.shape[1],
                       "hidden_layer_sizes": tuple(self.hidden_layer_sizes),
                       "activation": self.activation}
        with _nn.seeded(self._seed(), device):
            module, dataset, prep, size = _nn.build_network(
                backbone, self.weights, head=self.head, head_dropout=self.head_dropout,
                n_outputs=n_outputs, freeze_depth=self.freeze_depth,
                image_size=self.image_size, dataset_fn=dataset_fn,
                progress=self.verbose >= 1, tabular=tabular, input_kind=kind, dtype=dtype,
            )
            net = self._make_net(module, n_outputs, self._net_settings(device))
            _nn.train(net, dataset)
        fitted = {"net_": net, "history_": _nn.history_records(net),
                  "n_stages_": module.n_stages, "device_": device, "input_kind_": kind,
                  "_dtype": dtype, **target_attributes}
        if kind == IMAGES:
            fitted.update(image_size_=size, preprocessing_=prep,
                          input_signature_=data.signature,
                          input_description_=data.describe())
        for name, value in fitted.items():
            setattr(self, name, value)
        return self

    def _net_settings(self, device: str) -> dict:
        return dict(lr=self.lr, optimizer=self.optimizer, weight_decay=self.weight_decay,
                    max_epochs=self.max_epochs, batch_size=self.batch_size, device=device,
                    verbose=self.verbose)

    # -- predict ---------------------------------------------------------------

    def _predict_outputs(self, X) -> np.ndarray:
        check_is_fitted(self)
        if self.input_kind_ == TABULAR:
            X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
            dataset = _nn.TabularDataset(X, dtype=self._dtype)
        else:
            images = check_images(X)
            check_same_layout(self.input_signature_, images, self.input_description_)
            dataset = _nn.ImageDataset(images, self.preprocessing_, self.image_size_)
        return _nn.predict_outputs(self.net_, dataset)

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
        # A fitted estimator given as backbone is the *source* of the
        # transfer: clone must pass it on as it is, not as an unfitted copy.
        if not isinstance(self.backbone, BaseTransferEstimator):
            return super().__sklearn_clone__()
        params = self.get_params(deep=False)
        source = params.pop("backbone")
        params = {name: clone(value, safe=False) for name, value in params.items()}
        return type(self)(backbone=source, **params)

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
