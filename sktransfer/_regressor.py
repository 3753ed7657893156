"""TransferRegressor: fine-tune a pretrained network as a scikit-learn
regressor."""

from __future__ import annotations

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.metrics import r2_score
from sklearn.utils import check_array

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
    >>> from sktransfer import MLP
    >>> reg = make_pipeline(StandardScaler(), TransferRegressor(
    ...     MLP(hidden_layer_sizes=(32,)), max_epochs=30, random_state=0))
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
                 loss="squared_error", lr=None, optimizer="adamw", weight_decay=1e-4,
                 max_epochs="auto", tol=1e-4, batch_size=32, unfreeze_at=None, layer_decay=1.0, backbone_lr_mult=1.0,
                 regularization=None, bn_mode="train", lr_schedule="cosine",
                 warmup_epochs=1.0, early_stopping=False, validation_fraction=0.1,
                 n_iter_no_change=10, augment="auto", unlabeled=None,
                 domain_adaptation=None, precision="auto", max_grad_norm=None,
                 privacy=None, source_head="auto", cache=True, cache_dir=None, n_jobs=None,
                 device="auto", random_state=None, verbose=0):
        super().__init__(
            backbone, weights=weights, freeze_depth=freeze_depth, head=head,
            head_dropout=head_dropout, head_init=head_init, probe_alpha=probe_alpha, lr=lr,
            optimizer=optimizer, weight_decay=weight_decay, max_epochs=max_epochs, tol=tol,
            batch_size=batch_size, unfreeze_at=unfreeze_at,
            layer_decay=layer_decay, backbone_lr_mult=backbone_lr_mult,
            regularization=regularization, bn_mode=bn_mode, lr_schedule=lr_schedule,
            warmup_epochs=warmup_epochs, early_stopping=early_stopping,
            validation_fraction=validation_fraction, n_iter_no_change=n_iter_no_change,
            augment=augment, unlabeled=unlabeled, domain_adaptation=domain_adaptation,
            precision=precision, max_grad_norm=max_grad_norm, privacy=privacy,
            source_head=source_head,
            cache=cache, cache_dir=cache_dir, n_jobs=n_jobs, device=device,
            random_state=random_state, verbose=verbose,
        )
        self.loss = loss

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fine-tune the network on ``X`` with targets ``y``.

        Parameters
        ----------
        {fit_x}
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Numeric targets. NaN marks a missing target; a row of NaN marks
            an unlabeled sample (see ``unlabeled``: with None, such rows are
            refused unless ``domain_adaptation`` is set).
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the samples in the loss; None weighs all equally.

        Returns
        -------
        self : TransferRegressor
            The fitted regressor.
        """
        with self._atomic_fit():
            return self._fit(X, y, sample_weight)

    _unlabeled_mark = "all targets NaN"

    def _validate_y(self, y):
        """Numeric 1-D or 2-D targets; NaN marks a missing label (a row of
        NaN an unlabeled sample, refused unless ``unlabeled`` or
        ``domain_adaptation`` says what it does), infinity is refused."""
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        y = check_array(y, ensure_2d=False, dtype="numeric", ensure_all_finite="allow-nan",
                        input_name="y", estimator=self)
        y = y.astype(np.float64, copy=False)
        unlabeled = self._unlabeled_rows(y)
        if unlabeled.any() and not self._marks_unlabeled():
            raise ValueError(
                f"y contains NaN in {int(unlabeled.sum())} rows (all of a sample's targets), "
                f"which {type(self).__name__} refuses with unlabeled=None, as scikit-learn's "
                "regressors do. A row of NaN marks an unlabeled sample: set "
                "unlabeled='ignore' to leave those samples out of training (score leaves "
                "them out too), set domain_adaptation to use them as the target domain, or "
                "drop them. (NaN in some of a row's targets is a missing target and needs "
                "neither.)"
            )
        return y

    def _unlabeled_rows(self, y):
        y = np.asarray(y, dtype=np.float64)
        return np.isnan(y.reshape(len(y), -1)).all(axis=1)

    def _unlabeled_hint(self, y):
        if not (np.asarray(y) == -1).any():
            return ""
        return (" Its -1 values are regression targets here: TransferRegressor marks an "
                "unlabeled sample with a row of NaN, not -1.")

    def _fill_unlabeled(self, targets, unlabeled):
        full = np.full((len(unlabeled), targets.shape[1]), np.nan)
        full[~unlabeled] = targets
        return full

    def _prepare_targets(self, y, sample_weight):
        y = np.asarray(y, dtype=np.float64)
        y2d = y.reshape(len(y), -1)
        labeled = ~np.isnan(y2d)
        empty = np.flatnonzero(~labeled.any(axis=0))
        if len(empty):
            raise ValueError(
                f"Target column(s) {empty.tolist()} of y have no value (all NaN); every "
                "target needs labeled samples."
            )
        # weighted statistics over each column's labeled entries (NaN: missing);
        # weighting a sample by 2 equals repeating it
        weights = labeled * sample_weight[:, None]
        filled = np.where(labeled, y2d, 0.0)
        mean = (weights * filled).sum(axis=0) / weights.sum(axis=0)
        scale = np.sqrt((weights * (filled - mean) ** 2).sum(axis=0) / weights.sum(axis=0))
        if not (np.isfinite(mean).all() and np.isfinite(scale).all()):
            raise ValueError(
                f"y is too large to standardise in float64 (largest |y| = "
                f"{np.nanmax(np.abs(y2d)):.3g}: its squares overflow). Rescale y, e.g. "
                "divide it by a power of ten, and scale predictions back."
            )
        scale[~(scale > 0)] = 1.0  # a constant target is learnt as its mean
        targets = (y2d - mean) / scale
        attributes = {"_y_mean": mean, "_y_scale": scale, "_y_ndim": y.ndim}
        return targets, y2d.shape[1], attributes

    def score(self, X, y, sample_weight=None):
        """R² of ``predict(X)`` on the labeled entries of ``y``.

        NaN marks a missing target: rows of NaN (unlabeled samples) are left
        out, and with several targets each column is scored on its own
        labeled entries, then the R² are averaged (``"uniform_average"``).
        Without NaN this is scikit-learn's ``RegressorMixin.score``.

        Parameters
        ----------
        {predict_x}
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            True targets (NaN: missing).
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        score : float
            R² of ``predict(X)`` against ``y``.
        """
        y_array = np.asarray(y, dtype=np.float64)
        if not np.isnan(y_array).any():
            return super().score(X, y, sample_weight)
        X, y_array, sample_weight = self._labeled_for_scoring(X, y_array, sample_weight)
        y2d = y_array.reshape(len(y_array), -1)
        predicted = np.asarray(self.predict(X), dtype=np.float64).reshape(len(y2d), -1)
        weights = None if sample_weight is None else np.asarray(sample_weight, np.float64)
        scores = []
        for column in range(y2d.shape[1]):
            rows = ~np.isnan(y2d[:, column])
            scores.append(r2_score(y2d[rows, column], predicted[rows, column],
                                   sample_weight=None if weights is None else weights[rows]))
        return float(np.mean(scores))

    _task = "regression"

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

    def _head_in_target_units(self, coef, intercept):
        # the network learns the standardised targets: undo that
        scale, mean = np.ravel(self._y_scale), np.ravel(self._y_mean)
        return coef * scale[:, None], intercept * scale + mean, None

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
