"""PretrainedClassifier: fine-tune a pretrained network as a scikit-learn
classifier."""

from __future__ import annotations

import warnings
from numbers import Number

import numpy as np
from scipy.special import softmax
from sklearn.base import ClassifierMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets

from . import _docs
from ._base import BaseTransferEstimator
from ._compat import _fit_context
from ._options import UNLABELLED_TARGET


@_docs.document_parameters()
class PretrainedClassifier(ClassifierMixin, BaseTransferEstimator):
    """Classifier that fine-tunes a pretrained network on your data.

    The backbone's source head is replaced by a new head sized to the classes
    of ``y``; the first ``freeze_depth`` stages of the backbone are frozen and
    the rest is fine-tuned with gradient descent (on the GPU when there is one).
    Training runs through a skorch net held in ``net_``.

    Parameters
    ----------
    {parameters}

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    net_ : skorch.NeuralNetClassifier
        The fitted skorch net; ``net_.module_`` is the network.
    {attributes}

    See Also
    --------
    TransferRegressor : The same for regression targets.
    sklearn.neural_network.MLPClassifier : Multi-layer perceptron classifier.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import PretrainedClassifier
    >>> rng = np.random.RandomState(0)
    >>> X = rng.randint(0, 256, size=(16, 32, 32, 3), dtype=np.uint8)
    >>> y = np.array(["cat", "dog"] * 8)
    >>> clf = PretrainedClassifier("mobilenet_v2", weights="IMAGENET1K_V1",
    ...                            freeze_depth="all", image_size=32,
    ...                            max_epochs=1, random_state=0).fit(X, y)
    >>> clf.classes_
    array(['cat', 'dog'], dtype='<U3')
    >>> clf.predict_proba(X[:2]).shape
    (2, 2)
    """

    _y_validation = {"multi_output": False, "y_numeric": False}

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fine-tune the network on ``X`` with labels ``y``.

        Parameters
        ----------
        {fit_x}
        y : array-like of shape (n_samples,)
            Class labels (ints or strings).
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the samples in the loss; None weighs all equally.

        Returns
        -------
        self : PretrainedClassifier
            The fitted classifier.
        """
        with self._atomic_fit():
            return self._fit(X, y, sample_weight)

    def _prepare_targets(self, y, sample_weight):
        check_classification_targets(y)
        encoder = LabelEncoder().fit(y)
        n_classes = len(encoder.classes_)
        if n_classes < 2:
            raise ValueError(
                f"The number of classes has to be greater than one; got {n_classes} "
                "class. A classifier needs examples of at least two classes."
            )
        targets = encoder.transform(y).astype(np.int64)
        return targets, n_classes, {"classes_": encoder.classes_}

    _unlabelled_mark = "label -1"

    def _marks_unlabelled(self) -> bool:
        """Whether -1 marks unlabelled samples (else it is an ordinary class)."""
        return self.unlabeled is not None or self.domain_adaptation is not None

    def _unlabelled_rows(self, y):
        y = np.asarray(y)
        if not self._marks_unlabelled():
            self._warn_on_minus_one(y)
            return np.zeros(len(y), dtype=bool)
        if y.dtype.kind in "iuf":
            return y == -1
        if y.dtype.kind == "O":
            return np.fromiter((isinstance(v, Number) and not isinstance(v, bool) and v == -1
                                for v in y), dtype=bool, count=len(y))
        return np.zeros(len(y), dtype=bool)  # strings: -1 cannot occur

    @staticmethod
    def _warn_on_minus_one(y):
        """-1 among non-negative class numbers looks like scikit-learn's mark
        of unlabelled samples, which unlabeled=None trains as a class."""
        if y.dtype.kind not in "iu" or not (y == -1).any():
            return
        others = np.unique(y[y != -1])
        if len(others) >= 2 and others.min() >= 0:
            warnings.warn(
                f"y contains the label -1 ({int((y == -1).sum())} samples) beside classes "
                f"{others.tolist()[:5]}{'...' if len(others) > 5 else ''}; with "
                "unlabeled=None it is trained as a class. If -1 marks unlabelled samples "
                "(scikit-learn's semi-supervised convention), set unlabeled='ignore', "
                "'pseudo_label' or 'fixmatch'.", UserWarning, stacklevel=5)

    def _fill_unlabelled(self, targets, unlabelled):
        full = np.full(len(unlabelled), UNLABELLED_TARGET, dtype=np.int64)
        full[~unlabelled] = targets
        return full

    def score(self, X, y, sample_weight=None):
        """Mean accuracy on the labelled samples of ``X``.

        Samples labelled -1 are left out when -1 marks unlabelled samples
        (``unlabeled`` or ``domain_adaptation`` set), so cross-validation
        scores the labelled part of each fold.

        Parameters
        ----------
        {predict_x}
        y : array-like of shape (n_samples,)
            True labels (-1: unlabelled, see above).
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        score : float
            Accuracy of ``predict(X)`` against ``y``.
        """
        if self._marks_unlabelled():
            X, y, sample_weight = self._labelled_for_scoring(X, y, sample_weight)
        return super().score(X, y, sample_weight)

    def predict_proba(self, X):
        """Class probabilities of ``X``.

        Parameters
        ----------
        {predict_x}

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns follow ``classes_``.
        """
        return softmax(self._predict_outputs(X).astype(np.float64), axis=1)

    def predict(self, X):
        """Predicted class labels of ``X``, taken from ``classes_``.

        Parameters
        ----------
        {predict_x}

        Returns
        -------
        y : ndarray of shape (n_samples,)
            The class of highest probability for each sample.
        """
        outputs = self._predict_outputs(X)  # checks that the model is fitted
        return self.classes_[np.argmax(outputs, axis=1)]
