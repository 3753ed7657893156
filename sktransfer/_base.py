"""What the classifier and the regressor share: parameters, validation and
the fit / predict steps around the network."""

from __future__ import annotations

import os
from abc import ABCMeta, abstractmethod
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_consistent_length, check_is_fitted

from . import _nn
from ._compat import HasMethods, Interval, StrOptions
from ._images import check_images, check_same_layout


class BaseTransferEstimator(BaseEstimator, metaclass=ABCMeta):
    """Base class of the transfer-learning estimators. Not for direct use."""

    _parameter_constraints: dict = {
        "backbone": [str, HasMethods(["forward", "state_dict"])],
        "weights": [None, str, os.PathLike],
        "freeze_depth": [Interval(Integral, 0, None, closed="left"), StrOptions({"all"})],
        "head": [tuple, list],
        "head_dropout": [Interval(Real, 0, 1, closed="left")],
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

    @abstractmethod
    def __init__(self, backbone="mobilenet_v2", *, weights="DEFAULT", freeze_depth=0,
                 head=(), head_dropout=0.0, lr=1e-3, optimizer="adamw",
                 weight_decay=1e-4, max_epochs=10, batch_size=32, image_size=None,
                 device="auto", random_state=None, verbose=0):
        self.backbone = backbone
        self.weights = weights
        self.freeze_depth = freeze_depth
        self.head = head
        self.head_dropout = head_dropout
        self.lr = lr
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.image_size = image_size
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # -- fit steps -----------------------------------------------------------

    @abstractmethod
    def _make_net(self, module, n_outputs: int, device: str):
        """The skorch net that trains ``module`` for this task."""

    def _validate_images(self, X, y):
        images = check_images(X)
        check_consistent_length(images.data, y)
        return images

    def _seed(self) -> int:
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    def _fit_network(self, images, targets, n_outputs: int) -> dict:
        """Build, train and return the fitted attributes (nothing set yet)."""
        device = _nn.resolve_device(self.device)
        with _nn.seeded(self._seed(), device):
            module, dataset, prep, size = _nn.build_network(
                self.backbone, self.weights, head=self.head,
                head_dropout=self.head_dropout, n_outputs=n_outputs,
                freeze_depth=self.freeze_depth, image_size=self.image_size,
                dataset_fn=lambda prep, size: _nn.ImageDataset(images, prep, size, targets),
                progress=self.verbose >= 1,
            )
            net = self._make_net(module, n_outputs, device)
            _nn.train(net, dataset)
        return {
            "net_": net,
            "history_": _nn.history_records(net),
            "n_stages_": module.n_stages,
            "image_size_": size,
            "preprocessing_": prep,
            "device_": device,
            "input_signature_": images.signature,
            "input_description_": images.describe(),
        }

    def _set_fitted(self, attributes: dict):
        # Assigned together at the very end of fit, so a fit that fails leaves
        # the estimator exactly as it was.
        for name, value in attributes.items():
            setattr(self, name, value)

    # -- predict steps -------------------------------------------------------

    def _predict_outputs(self, X) -> np.ndarray:
        check_is_fitted(self)
        images = check_images(X)
        check_same_layout(self.input_signature_, images, self.input_description_)
        dataset = _nn.ImageDataset(images, self.preprocessing_, self.image_size_)
        return _nn.predict_outputs(self.net_, dataset)

    def __sklearn_is_fitted__(self):
        return hasattr(self, "net_")

    def __setstate__(self, state):
        super().__setstate__(state)
        # skorch maps a net pickled on CUDA to the CPU when no GPU is here;
        # keep device_ telling where the network now lives.
        net = self.__dict__.get("net_")
        if net is not None:
            self.device_ = str(net.device)
