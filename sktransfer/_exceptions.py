"""Errors sktransfer raises on purpose, importable without torch."""


class TrainingDivergedError(ValueError):
    """The training loss became NaN or infinite."""


class WeightsNotFoundError(FileNotFoundError, ValueError):
    """Pretrained weights were asked for but no file could be found or fetched."""


class NegativeTransferWarning(UserWarning):
    """Using the source scored worse than not using it.

    Issued by :class:`AutoTransferClassifier` / :class:`AutoTransferRegressor`
    when the best transfer candidate scored below the best baseline without
    transfer on the validation folds, and by
    :class:`TransferLogisticRegressionCV` / :class:`TransferRidgeCV` when the
    cross-validated score with the source coefficients is below the one
    without them (the estimator then keeps the target-only model).

    Examples
    --------
    >>> import warnings
    >>> from sktransfer import NegativeTransferWarning
    >>> issubclass(NegativeTransferWarning, UserWarning)
    True
    """


class BudgetWarning(UserWarning):
    """The time budget was too small to compare every kind of candidate.

    Issued by :class:`AutoTransferClassifier` / :class:`AutoTransferRegressor`
    when no candidate trained by epochs (a fine-tune, LP-FT, a network from
    scratch) finished its first trial on every validation fold within
    ``time_budget``: the chosen model is then the best of the probes and
    baselines, and a larger budget would let the networks be compared.

    Examples
    --------
    >>> from sktransfer import BudgetWarning
    >>> issubclass(BudgetWarning, UserWarning)
    True
    """


class SourceLabelsUnavailableError(ValueError):
    """The source model's class probabilities are unknown.

    Raised by :meth:`TransferFeatures.source_proba` for a backbone whose own
    classification head sktransfer does not know: a fitted regressor, a
    fitted estimator whose parameters ``weights`` replace, weights read from
    a file, or a custom module.

    Parameters
    ----------
    reason : str
        Why the labels are unknown; kept as the ``reason`` attribute.

    See Also
    --------
    TransferFeatures.source_proba : The source model's class probabilities.

    Examples
    --------
    >>> from sktransfer import SourceLabelsUnavailableError
    >>> error = SourceLabelsUnavailableError("the source predicts no class labels")
    >>> error.reason
    'the source predicts no class labels'
    """

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason

    def __str__(self):
        return f"the source model's class probabilities are unknown because {self.reason}."


class OnnxExportError(ValueError):
    """A fitted model cannot be exported to ONNX, or its exported graph does
    not reproduce its predictions.

    Raised by :func:`sktransfer.to_onnx`; ``reason`` says why (an operator
    the ONNX exporter does not support, an input it cannot take, a check on
    ``X_sample`` that failed).

    Parameters
    ----------
    reason : str
        Why; kept as the ``reason`` attribute.

    Examples
    --------
    >>> from sktransfer import OnnxExportError
    >>> OnnxExportError("multi-task heads are not exported").reason
    'multi-task heads are not exported'
    """

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason
