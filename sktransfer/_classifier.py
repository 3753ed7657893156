"""PretrainedClassifier: fine-tune a pretrained network as a scikit-learn
classifier."""

from __future__ import annotations

import warnings
from numbers import Number, Real

import numpy as np
from scipy.special import softmax
from sklearn.base import ClassifierMixin
from sklearn.exceptions import DataConversionWarning
from sklearn.metrics import accuracy_score
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_consistent_length, check_is_fitted

from . import _docs
from ._base import BaseTransferEstimator, rows_of
from ._compat import _fit_context
from ._options import UNLABELED_TARGET
from ._recipe import Recipe, input_kind_of


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
    classes_ : ndarray of shape (n_classes,) or list of ndarray
        Class labels; one array per task for a multi-task classifier.
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
    >>> from sktransfer import ImageBackbone, PretrainedClassifier
    >>> rng = np.random.RandomState(0)
    >>> X = rng.randint(0, 256, size=(16, 32, 32, 3), dtype=np.uint8)
    >>> y = np.array(["cat", "dog"] * 8)
    >>> clf = PretrainedClassifier(ImageBackbone("mobilenet_v2", image_size=32),
    ...                            weights="IMAGENET1K_V1", freeze_depth="all",
    ...                            max_epochs=1, random_state=0).fit(X, y)
    >>> clf.classes_
    array(['cat', 'dog'], dtype='<U3')
    >>> clf.predict_proba(X[:2]).shape
    (2, 2)
    """

    _y_validation = {"multi_output": True, "y_numeric": False}

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fine-tune the network on ``X`` with labels ``y``.

        Parameters
        ----------
        {fit_x}
        y : array-like of shape (n_samples,) or (n_samples, n_tasks)
            Class labels (ints or strings); one column per task for a
            multi-task classifier (one shared trunk, one output layer per
            task, the tasks' losses summed), where -1 marks a task without a
            label for that sample.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the samples in the loss; None weighs all equally.

        Returns
        -------
        self : PretrainedClassifier
            The fitted classifier.
        """
        with self._atomic_fit():
            return self._fit(X, y, sample_weight)

    def _fit_distilled(self, X, targets, sample_weight, classes, distillation):
        """Fit toward a teacher's soft targets (``DistilledClassifier``).

        ``targets`` has one row per sample of ``X``: the index in
        ``classes`` of its hard label (-1: none) followed by the teacher's
        probabilities at the temperature; ``sample_weight`` has mean 1;
        ``distillation`` is the recipe's ``DistillationGroup``.
        """
        with self._atomic_fit():
            source = self._source()
            kind = input_kind_of(self.backbone, X, source)
            data = self._validate_fit_inputs(X, kind)
            check_consistent_length(rows_of(data, kind), targets)
            recipe = Recipe.from_estimator(
                self, input_kind=kind, source=None if source is None else source._export_trunk(),
                distillation=distillation)
            self._train(recipe, data, targets, sample_weight, len(classes),
                        {"classes_": classes})
        return self

    def _validate_y(self, y):
        n_nan = _count_nan(y)
        if n_nan:
            raise ValueError(
                f"Input y contains NaN ({n_nan} labels). In {type(self).__name__} the label "
                "-1 marks unlabeled samples, not NaN: replace NaN by -1 and set "
                "unlabeled='ignore' (leave them out), PseudoLabel() or FixMatch() (train on "
                "them), or domain_adaptation (align to them); with unlabeled=None, -1 is an "
                "ordinary class. In a multi-task y, -1 marks a missing label."
            )
        y = super()._validate_y(y)
        if y.ndim == 2 and y.shape[1] == 1:
            warnings.warn(DataConversionWarning(
                "A column-vector y was passed when a 1d array was expected. Please change "
                "the shape of y to (n_samples,), for example using ravel()."), stacklevel=6)
            y = y.ravel()
        if y.ndim == 1 and not self._marks_unlabeled():
            self._warn_on_minus_one(y)
        else:
            self._warn_on_string_marks(y)
        return y

    def _prepare_targets(self, y, sample_weight):
        if y.ndim == 2:
            return self._prepare_tasks(y)
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

    def _prepare_tasks(self, y):
        """One column per task; -1 marks a task without a label. A task may
        have a single class (it is then predicted for every sample)."""
        missing = _minus_one(y)
        targets = np.full(y.shape, UNLABELED_TARGET, dtype=np.int64)
        classes = []
        for task in range(y.shape[1]):
            known = ~missing[:, task]
            if not known.any():
                raise ValueError(
                    f"Task {task} (column {task} of y) has no label (all -1); every task "
                    "needs labeled samples."
                )
            labels = _task_labels(y[known, task], task)
            check_classification_targets(labels)
            encoder = LabelEncoder().fit(labels)
            targets[known, task] = encoder.transform(labels)
            classes.append(encoder.classes_)
        return targets, tuple(len(c) for c in classes), {"classes_": classes}

    @property
    def _multi_task(self) -> bool:
        return isinstance(self.classes_, list)

    _unlabeled_mark = "label -1"

    def _unlabeled_rows(self, y):
        y = np.asarray(y)
        if y.ndim == 2:  # tasks: -1 is always a missing label, a row of -1 unlabeled
            return _minus_one(y).all(axis=1)
        if not self._marks_unlabeled():
            return np.zeros(len(y), dtype=bool)
        return _minus_one(y)

    @staticmethod
    def _warn_on_minus_one(y):
        """-1 (or -1.0) among non-negative class numbers looks like
        scikit-learn's mark of unlabeled samples, which unlabeled=None trains
        as a class."""
        if y.dtype.kind not in "iuf" or not (y == -1).any():
            return
        others = np.unique(y[y != -1])
        if len(others) >= 2 and others.min() >= 0:
            warnings.warn(
                f"y contains the label -1 ({int((y == -1).sum())} samples) beside classes "
                f"{others.tolist()[:5]}{'...' if len(others) > 5 else ''}; with "
                "unlabeled=None it is trained as a class. If -1 marks unlabeled samples "
                "(scikit-learn's semi-supervised convention), set unlabeled='ignore', "
                "PseudoLabel() or FixMatch().", UserWarning, stacklevel=7)

    @staticmethod
    def _warn_on_string_marks(y):
        """The strings "-1" and "" look like marks of unlabeled samples (or of
        missing task labels), but only the number -1 is one."""
        marked = _string_mark(y)
        if not marked.any():
            return
        found = sorted({str(v) for v in np.asarray(y)[marked].ravel()})
        warnings.warn(
            f"y contains the string label(s) {found} ({int(marked.sum())} labels), which "
            "are trained as classes: only the number -1 marks unlabeled samples (or, in a "
            "multi-task y, missing labels). Mark them with the integer -1 (an object array "
            "holds it beside string labels).", UserWarning, stacklevel=7)

    def _fill_unlabeled(self, targets, unlabeled):
        full = np.full((len(unlabeled), *targets.shape[1:]), UNLABELED_TARGET, dtype=np.int64)
        full[~unlabeled] = targets
        return full

    def score(self, X, y, sample_weight=None):
        """Mean accuracy on the labeled samples of ``X``.

        Samples labeled -1 are left out when -1 marks unlabeled samples
        (``unlabeled`` or ``domain_adaptation`` set), so cross-validation
        scores the labeled part of each fold. For a multi-task classifier
        (a 2-D ``y``) it is the mean over tasks of each task's accuracy on
        the samples labeled for it.

        Parameters
        ----------
        {predict_x}
        y : array-like of shape (n_samples,) or (n_samples, n_tasks)
            True labels (-1: unlabeled or missing, see above).
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        score : float
            Accuracy of ``predict(X)`` against ``y``.
        """
        check_is_fitted(self)
        if self._multi_task and np.ndim(y) != 2:
            n_tasks = len(self.classes_)
            raise ValueError(
                f"This classifier was fitted on {n_tasks} tasks; score expects y with one "
                f"column per task ({n_tasks} tasks), of shape (n_samples, {n_tasks}); got y "
                f"of shape {np.shape(y)}."
            )
        if np.ndim(y) == 2:
            return self._task_score(X, y, sample_weight)
        if self._marks_unlabeled():
            X, y, sample_weight = self._labeled_for_scoring(X, y, sample_weight)
        return super().score(X, y, sample_weight)

    def _task_score(self, X, y, sample_weight):
        """Multi-task: the mean over tasks of each task's accuracy on the
        samples labeled for it (-1: missing)."""
        y = np.asarray(y)
        missing = _minus_one(y)
        predicted = self.predict(X)
        if predicted.ndim != 2 or predicted.shape[1] != y.shape[1]:
            raise ValueError(
                f"y has {y.shape[1]} columns (tasks) but the classifier was fitted on "
                f"{len(self.classes_) if self._multi_task else 1}."
            )
        weights = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight)
        scores = []
        for task in range(y.shape[1]):
            known = ~missing[:, task]
            if known.any():
                scores.append(accuracy_score(_task_labels(y[known, task], task),
                                             _task_labels(predicted[known, task], task),
                                             sample_weight=weights[known]))
        if not scores:
            raise ValueError("Every label of y is -1 (missing); a score needs labeled samples.")
        return float(np.mean(scores))

    def predict_proba(self, X):
        """Class probabilities of ``X``.

        Parameters
        ----------
        {predict_x}

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes) or list of such arrays
            Columns follow ``classes_``; one array per task for a multi-task
            classifier.
        """
        outputs = self._predict_outputs(X).astype(np.float64)
        if self._multi_task:
            return [softmax(part, axis=1) for part in self._split_tasks(outputs)]
        return softmax(outputs, axis=1)

    def _head_in_target_units(self, coef, intercept):
        if isinstance(self.classes_, list):
            raise ValueError(
                f"the fitted {type(self).__name__} has a multi-task head ({len(self.classes_)} "
                "tasks); a linear transfer source needs a single task.")
        return coef, intercept, self.classes_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True  # a 2-D y: one task per column
        return tags

    def _split_tasks(self, outputs):
        bounds = np.cumsum([len(c) for c in self.classes_])[:-1]
        return np.split(outputs, bounds, axis=1)

    def predict(self, X):
        """Predicted class labels of ``X``, taken from ``classes_``.

        Parameters
        ----------
        {predict_x}

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_tasks)
            The class of highest probability for each sample (and task).
        """
        outputs = self._predict_outputs(X)  # checks that the model is fitted
        if self._multi_task:
            labels = [classes[np.argmax(part, axis=1)] for classes, part
                      in zip(self.classes_, self._split_tasks(outputs))]
            if len({column.dtype.kind in "OSU" for column in labels}) > 1:
                # string tasks beside number tasks: keep each task's labels as they are
                labels = [column.astype(object) for column in labels]
            return np.column_stack(labels)
        return self.classes_[np.argmax(outputs, axis=1)]


def _count_nan(y) -> int:
    """How many labels of ``y`` (as given to fit) are NaN."""
    values = np.asarray(y)
    if values.dtype.kind == "f":
        return int(np.isnan(values).sum())
    if values.dtype.kind == "O":
        return sum(isinstance(v, Real) and v != v for v in values.ravel())
    return 0


def _string_mark(y) -> np.ndarray:
    """Elementwise: is the label the string "-1" or ""."""
    y = np.asarray(y)
    if y.dtype.kind == "U":
        return (y == "-1") | (y == "")
    if y.dtype.kind == "O":
        flat = np.fromiter((isinstance(v, str) and v in ("-1", "") for v in y.ravel()),
                           dtype=bool, count=y.size)
        return flat.reshape(y.shape)
    return np.zeros(y.shape, dtype=bool)


def _task_labels(labels, task: int) -> np.ndarray:
    """One task's labels as scikit-learn's label checks take them: an object
    column of numbers (a y DataFrame with a string task beside a number
    task) becomes a numeric array."""
    if labels.dtype.kind != "O":
        return labels
    strings = np.fromiter((isinstance(v, str) for v in labels), dtype=bool, count=len(labels))
    if strings.all():
        return labels
    if strings.any():
        raise ValueError(
            f"Task {task} (column {task} of y) mixes strings and numbers, e.g. "
            f"{labels[strings][0]!r} and {labels[~strings][0]!r}; a task's labels must be "
            "all strings or all numbers."
        )
    return np.asarray(labels.tolist())


def _minus_one(y) -> np.ndarray:
    """Elementwise: is the label -1 (numbers, or numbers in an object array;
    strings never are)."""
    y = np.asarray(y)
    if y.dtype.kind in "iuf":
        return y == -1
    if y.dtype.kind == "O":
        flat = np.fromiter((isinstance(v, Number) and not isinstance(v, bool) and v == -1
                            for v in y.ravel()), dtype=bool, count=y.size)
        return flat.reshape(y.shape)
    return np.zeros(y.shape, dtype=bool)
