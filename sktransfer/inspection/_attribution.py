"""``attribute`` and ``sanity_check``: which parts of an input a fitted
network's prediction rests on, and whether an attribution method passes the
model-randomisation test of Adebayo et al. (2018).

Torch-free to import: the computation lives in ``sktransfer._nn.attribution``,
imported on first use.
"""

from __future__ import annotations

import copy

import numpy as np
from scipy.stats import spearmanr
from sklearn.exceptions import NotFittedError
from sklearn.utils import Bunch
from sklearn.utils.validation import check_is_fitted, validate_data

from .._base import BaseTransferEstimator
from .._images import check_images, check_same_layout
from .._options import IMAGES, TABULAR, TEXT
from .._text import check_texts

# the methods of each input kind, the default first (sktransfer._nn.attribution
# computes them; it is not imported here so that this module stays torch-free)
METHODS = {
    IMAGES: ("gradcam", "integrated_gradients", "gradient_x_input"),
    TEXT: ("gradient_x_input", "integrated_gradients"),
    TABULAR: ("integrated_gradients", "gradient_x_input"),
}

# Adebayo et al.'s reading: a method whose attributions still rank-correlate
# above this with the original after every parameter is random does not
# depend on what the model learnt
SANITY_THRESHOLD = 0.2


def _nn():
    from .._nn import attribution

    return attribution


def _check_estimator(fitted) -> None:
    if not isinstance(fitted, BaseTransferEstimator):
        raise TypeError(
            "attributions explain a fitted PretrainedClassifier or TransferRegressor; got "
            f"{type(fitted).__name__}. For TransferFeatures, fit a PretrainedClassifier "
            "with the same backbone and explain that.")
    try:
        check_is_fitted(fitted)
    except NotFittedError:
        raise NotFittedError(
            f"This {type(fitted).__name__} instance is not fitted yet. Call 'fit' with "
            "appropriate arguments before explaining its predictions.") from None
    if isinstance(getattr(fitted, "classes_", None), list):
        raise ValueError(
            "attributions explain one output; this classifier is multi-task (one head per "
            "task). Fit one classifier per task to explain it.")


def resolve_method(kind: str, method: str) -> str:
    """The method named (``"auto"``: the input kind's default), checked to
    apply to ``kind``."""
    allowed = METHODS[kind]
    if method == "auto":
        return allowed[0]
    if method not in allowed:
        raise ValueError(
            f"method={method!r} does not apply to {kind} inputs; use one of "
            f"{', '.join(map(repr, allowed))} (or 'auto': {allowed[0]!r}).")
    return method


def _network_inputs(fitted, X):
    """``X`` validated and preprocessed as ``predict`` would."""
    nn_ = _nn()
    result = fitted._fit_result
    kind = fitted.input_kind_
    if kind == TABULAR:
        data = validate_data(fitted, X, reset=False, dtype=[np.float64, np.float32])
        return nn_.table_inputs(data, result.dtype)
    if kind == TEXT:
        return nn_.text_inputs(check_texts(X), result.preprocessing)
    data = check_images(X)
    check_same_layout(fitted.input_signature_, data, fitted.input_description_)
    return nn_.image_inputs(data, result.preprocessing, result.image_size)


def _output_index(fitted, outputs: np.ndarray, target) -> tuple[np.ndarray, np.ndarray]:
    """``(index, targets)``: the network output explained for each sample and
    what it stands for (a class label, or a regressor's output column)."""
    n = len(outputs)
    if hasattr(fitted, "classes_"):
        classes = fitted.classes_
        if target is None:
            index = outputs.argmax(1)
        else:
            wanted = np.broadcast_to(np.asarray(target, dtype=object), (n,))
            lookup = {label: i for i, label in enumerate(classes.tolist())}
            unknown = [t for t in wanted if t not in lookup]
            if unknown:
                raise ValueError(
                    f"target {unknown[0]!r} is not a class of the fitted classifier; "
                    f"classes_ = {classes.tolist()}. Pass one of them, or None for the "
                    "predicted class.")
            index = np.array([lookup[t] for t in wanted])
        return index, classes[index]
    n_outputs = outputs.shape[1]
    column = 0 if target is None else target
    if not (isinstance(column, (int, np.integer)) and 0 <= column < n_outputs):
        raise ValueError(
            f"target={target!r}: a regressor's target is the index of an output column "
            f"(0 to {n_outputs - 1}), or None for the first.")
    index = np.full(n, int(column))
    return index, index


def _in_user_space(fitted, raw, inputs, index) -> object:
    """Raw attributions mapped back to what the caller passed: maps at each
    image's own resolution, each text's tokens, a regressor's units."""
    raw = raw.double().numpy()
    if hasattr(fitted, "_y_scale"):
        raw = raw * np.ravel(fitted._y_scale)[index].reshape(-1, *[1] * (raw.ndim - 1))
    if fitted.input_kind_ == IMAGES:
        maps = _nn().to_image_resolution(raw, inputs.sizes)
        same = len({m.shape for m in maps}) == 1
        return np.stack(maps) if same else maps
    if fitted.input_kind_ == TEXT:
        return [row[:len(tokens)] for row, tokens in zip(raw, inputs.tokens)]
    return raw


def _explain(fitted, module, inputs, index, method):
    raw = _nn().attribute(module, inputs, index, method, fitted.input_kind_,
                          fitted._fit_result.preprocessing)
    return _in_user_space(fitted, raw, inputs, index)


def _settings(fitted, method, n_steps, batch_size):
    _check_estimator(fitted)
    name = resolve_method(fitted.input_kind_, method)
    for label, value in (("n_steps", n_steps), ("batch_size", batch_size)):
        if not (isinstance(value, (int, np.integer)) and value >= 1):
            raise ValueError(f"{label} must be a positive int, got {value!r}.")
    return _nn().Method(name, int(n_steps), int(batch_size))


def attribute(fitted, X, method="auto", target=None, *, n_steps=32, batch_size=32):
    """Attribute a fitted network's predictions to the parts of its inputs.

    The inputs go through the estimator's own preprocessing, so ``X`` is what
    ``predict`` takes. The network is left as it was (mode, ``requires_grad``
    and parameters).

    Parameters
    ----------
    fitted : PretrainedClassifier or TransferRegressor
        A fitted estimator (single task).
    X : array-like
        Images, texts or a table, as passed to ``predict``.
    method : str, default="auto"
        For images ``"gradcam"`` (the default: Grad-CAM at the trunk's last
        stage), ``"integrated_gradients"`` or ``"gradient_x_input"``; for
        texts ``"gradient_x_input"`` (the default) or
        ``"integrated_gradients"``, on the token embeddings; for tables
        ``"integrated_gradients"`` (the default, from a zero baseline) or
        ``"gradient_x_input"``.
    target : label, array-like of labels, int or None, default=None
        The class explained (None: the predicted class of each sample); for
        a regressor the output column (None: the first).
    n_steps : int, default=32
        Integrated Gradients' number of steps from the baseline (a black
        image, zero embeddings, zero features).
    batch_size : int, default=32
        At most this many inputs (interpolated ones included) go through the
        network at once.

    Returns
    -------
    result : sklearn.utils.Bunch
        ``attributions``: for images an array (n_samples, H, W) at each image's
        own resolution (a list when sizes differ); for texts a list of one
        array per text (one value per token); for tables an array
        (n_samples, n_features). ``tokens``: each text's tokens (None for
        other inputs). ``targets``: the class (or output column) explained
        per sample. ``method``: the method used. Integrated Gradients sum to
        the explained output (a logit for a classifier) minus its value at
        the baseline.

    See Also
    --------
    sanity_check : Adebayo et al.'s model-randomisation test of a method.
    AttributionDisplay : Attributions drawn over their inputs.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import MLP, PretrainedClassifier
    >>> from sktransfer.inspection import attribute
    >>> rng = np.random.RandomState(0)
    >>> X = rng.rand(40, 4)
    >>> y = (X[:, 0] > 0.5).astype(int)
    >>> clf = PretrainedClassifier(MLP(hidden_layer_sizes=(8,)), max_epochs=5,
    ...                            random_state=0, device="cpu").fit(X, y)
    >>> attribute(clf, X[:3]).attributions.shape
    (3, 4)
    """
    settings = _settings(fitted, method, n_steps, batch_size)
    module = fitted._fit_result.net.module_
    inputs = _network_inputs(fitted, X)
    outputs = _nn().outputs_of(module, inputs, settings.batch_size).double().numpy()
    index, targets = _output_index(fitted, outputs, target)
    values = _explain(fitted, module, inputs, index, settings)
    return Bunch(attributions=values, tokens=inputs.tokens, targets=targets, method=settings.name)


COMPARISONS = ("auto", "absolute", "signed")


def _comparison(kind: str, compare) -> str:
    """How attributions are compared: ``compare``, or for "auto" as they are
    drawn (images as magnitude maps, texts and tables with their signs)."""
    if compare not in COMPARISONS:
        raise ValueError(f"compare must be one of {list(COMPARISONS)}, got {compare!r}.")
    if compare != "auto":
        return compare
    return "absolute" if kind == IMAGES else "signed"


def _rank_correlation(a, b, compare: str) -> float:
    """Spearman's correlation of the attributions of one sample (their
    absolute values for ``compare="absolute"``); 0 when either is constant
    (no ranking to agree with)."""
    a, b = np.ravel(a), np.ravel(b)
    if compare == "absolute":
        a, b = np.abs(a), np.abs(b)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(spearmanr(a, b).statistic)


def sanity_check(fitted, X, method="auto", target=None, *, threshold=SANITY_THRESHOLD,
                 compare="auto", n_steps=32, batch_size=32, random_state=0):
    """Adebayo et al.'s model-randomisation test of an attribution method.

    The parameters of a deep copy of ``fitted`` are randomised cascading
    from the output side (the head, then the trunk's stages from the last);
    after each step the attributions of the same inputs and classes are
    compared with those of the fitted model by Spearman's rank correlation,
    of their absolute values for images and of the signed values for texts
    and tables (``compare``). A method that explains the model should lose
    the correlation; one that still correlates above ``threshold`` after
    full randomisation is flagged. ``fitted`` itself is not changed.

    Parameters
    ----------
    fitted : PretrainedClassifier or TransferRegressor
        A fitted estimator (single task).
    X : array-like
        Inputs as passed to ``predict``.
    method : str, default="auto"
        The attribution method (see :func:`attribute`).
    target : label, array-like of labels, int or None, default=None
        The class explained (None: the fitted model's predicted class; the
        randomised models are asked about the same class).
    threshold : float, default=0.2
        The largest mean correlation after full randomisation that passes.
    compare : {"auto", "absolute", "signed"}, default="auto"
        What is ranked: the absolute attributions or the signed ones.
        "auto" compares them as they are drawn: magnitude maps for images,
        signed values for texts and tables, whose sign says which way a token
        or feature pushes the output. Signed comparison matters for
        ``x * gradient`` methods on standardised tables: their magnitudes
        follow ``|x|``, which randomising the model does not change, while
        their signs follow the model.
    n_steps : int, default=32
        Integrated Gradients' number of steps.
    batch_size : int, default=32
        At most this many inputs go through the network at once.
    random_state : int, default=0
        Seed of the random parameters.

    Returns
    -------
    result : sklearn.utils.Bunch
        ``steps``: the names of the cascading steps (``"head"``, ``"stage
        k"``...); ``correlations``: the mean correlation after each step;
        ``per_sample``: array (n_steps, n_samples); ``full_randomisation``:
        the mean correlation with every parameter random; ``flagged``:
        whether it exceeds ``threshold``; ``method``; ``compare``.

    See Also
    --------
    attribute : The attributions compared.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import MLP, PretrainedClassifier
    >>> from sktransfer.inspection import sanity_check
    >>> rng = np.random.RandomState(0)
    >>> X = rng.rand(40, 4)
    >>> y = (X[:, 0] > 0.5).astype(int)
    >>> clf = PretrainedClassifier(MLP(hidden_layer_sizes=(8,)), max_epochs=5,
    ...                            random_state=0, device="cpu").fit(X, y)
    >>> check = sanity_check(clf, X[:10])
    >>> check.steps
    ['head', 'stage 0']
    """
    settings = _settings(fitted, method, n_steps, batch_size)
    compare = _comparison(fitted.input_kind_, compare)
    inputs = _network_inputs(fitted, X)
    module = fitted._fit_result.net.module_
    outputs = _nn().outputs_of(module, inputs, settings.batch_size).double().numpy()
    index, _ = _output_index(fitted, outputs, target)
    original = _explain(fitted, module, inputs, index, settings)
    randomised = copy.deepcopy(fitted)
    copy_module = randomised._fit_result.net.module_
    generator = _nn().torch_generator(random_state)
    steps, per_sample = [], []
    for name, members in _nn().randomisation_groups(copy_module):
        _nn().randomise(members, generator)
        values = _explain(randomised, copy_module, inputs, index, settings)
        steps.append(name)
        per_sample.append([_rank_correlation(a, b, compare) for a, b in zip(original, values)])
    per_sample = np.asarray(per_sample)
    correlations = per_sample.mean(1)
    full = float(correlations[-1])
    return Bunch(steps=steps, correlations=correlations, per_sample=per_sample,
                 full_randomisation=full, flagged=bool(full > threshold),
                 method=settings.name, compare=compare)
