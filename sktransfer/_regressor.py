"""TransferRegressor: fine-tune a pretrained network as a scikit-learn
regressor."""

from __future__ import annotations

import numpy as np
from sklearn.base import RegressorMixin

from . import _docs
from ._base import BaseTransferEstimator
from ._compat import StrOptions, _fit_context
from ._options import LOSSES


_LOSS = """\
loss : {"squared_error", "huber", "absolute_error"}, default="squared_error"
    Training loss, computed on the standardised targets."""


@_docs.document_parameters(extra={"loss": _LOSS})
class TransferRegressor(RegressorMixin, BaseTransferEstimator):
    """Regressor that fine-tunes a pretrained network on your data.

    Same backbones, inputs and fine-tuning controls as
    :class:`PretrainedClassifier`; the new head has one output per target.
    Targets are standardised inside ``fit`` and mapped back in ``predict``;
    ``y`` may be 1-D or of shape ``(n_samples, n_targets)``.

    Parameters
    ----------
    {parameters}

    Attributes
    ----------
    net_ : skorch.NeuralNetRegressor
        The fitted skorch net; ``net_.module_`` is the network.
    {attributes}

    See Also
    --------
    PretrainedClassifier : The same for class labels.
    sklearn.neural_network.MLPRegressor : Multi-layer perceptron regressor.

    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sktransfer import TransferRegressor
    >>> X, y = load_diabetes(return_X_y=True)
    >>> reg = make_pipeline(StandardScaler(), TransferRegressor(
    ...     "mlp", hidden_layer_sizes=(32,), max_epochs=30, random_state=0))
    >>> reg.fit(X[:300], y[:300]).score(X[300:], y[300:]) > 0.3
    True
    """

    _parameter_constraints = {
        **BaseTransferEstimator._parameter_constraints,
        "loss": [StrOptions(set(LOSSES))],
    }
    _y_validation = {"multi_output": True, "y_numeric": True}

    def __init__(self, backbone="mobilenet_v2", *, weights="DEFAULT", freeze_depth=0,
                 head=(), head_dropout=0.0, head_init="random", probe_alpha="auto",
                 hidden_layer_sizes=(100,), activation="relu", loss="squared_error",
                 lr=None, optimizer="adamw", weight_decay=1e-4, max_epochs="auto",
                 tol=1e-4, batch_size=32, image_size=None, max_length=128, pooling="mean",
                 unfreeze_at=None,
                 layer_decay=1.0, backbone_lr_mult=1.0, regularization=None,
                 regularization_strength=0.01, bn_mode="train", lr_schedule="cosine",
                 warmup_epochs=1.0, early_stopping=False, validation_fraction=0.1,
                 n_iter_no_change=10, augment="auto", precision="auto", max_grad_norm=None,
                 source_head="auto", cache=True, cache_dir=None, n_jobs=None,
                 device="auto", random_state=None, verbose=0):
        super().__init__(
            backbone, weights=weights, freeze_depth=freeze_depth, head=head,
            head_dropout=head_dropout, head_init=head_init, probe_alpha=probe_alpha,
            hidden_layer_sizes=hidden_layer_sizes, activation=activation, lr=lr,
            optimizer=optimizer, weight_decay=weight_decay, max_epochs=max_epochs, tol=tol,
            batch_size=batch_size, image_size=image_size, max_length=max_length,
            pooling=pooling,
            unfreeze_at=unfreeze_at, layer_decay=layer_decay,
            backbone_lr_mult=backbone_lr_mult, regularization=regularization,
            regularization_strength=regularization_strength, bn_mode=bn_mode,
            lr_schedule=lr_schedule, warmup_epochs=warmup_epochs,
            early_stopping=early_stopping, validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change, augment=augment, precision=precision,
            max_grad_norm=max_grad_norm, source_head=source_head, cache=cache,
            cache_dir=cache_dir, n_jobs=n_jobs, device=device, random_state=random_state,
            verbose=verbose,
        )
        self.loss = loss

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fine-tune the network on ``X`` with targets ``y``.

        Parameters
        ----------
        {fit_x}
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Numeric targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the samples in the loss; None weighs all equally.

        Returns
        -------
        self : TransferRegressor
            The fitted regressor.
        """
        with self._atomic_fit():
            return self._fit(X, y, sample_weight)

    def _prepare_targets(self, y, sample_weight):
        y = np.asarray(y, dtype=np.float64)
        y2d = y.reshape(len(y), -1)
        # weighted statistics: weighting a sample by 2 equals repeating it
        mean = np.average(y2d, axis=0, weights=sample_weight)
        scale = np.sqrt(np.average((y2d - mean) ** 2, axis=0, weights=sample_weight))
        scale[scale == 0] = 1.0  # a constant target is learnt as its mean
        targets = (y2d - mean) / scale
        attributes = {"_y_mean": mean, "_y_scale": scale, "_y_ndim": y.ndim}
        return targets, y2d.shape[1], attributes

    _task = "regression"

    def _loss_kind(self) -> str:
        return self.loss

    def predict(self, X):
        """Predicted targets of ``X``.

        Parameters
        ----------
        {predict_x}

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_targets)
            float64, in the units of the ``y`` given to ``fit``.
        """
        outputs = self._predict_outputs(X).astype(np.float64)
        y = outputs * self._y_scale + self._y_mean
        return y.ravel() if self._y_ndim == 1 else y

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
