"""TransferFeatures: pooled backbone embeddings as a scikit-learn transformer
(feature transfer: frozen embeddings + any scikit-learn model)."""

from __future__ import annotations

import os
from numbers import Integral

import numpy as np

from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    is_classifier,
)
from sklearn.utils import check_array
from sklearn.utils.validation import check_is_fitted, validate_data

from ._base import BaseTransferEstimator, _engine, clone_keeping_source
from ._backbone import (
    ImageBackbone,
    TextEncoder,
    backbone_object,
    declared_input_kind,
    network_of,
)
from ._compat import HasMethods, Interval, _fit_context
from ._exceptions import SourceLabelsUnavailableError
from ._images import check_images, check_same_layout
from ._options import IMAGES, TABULAR, TEXT
from ._text import check_texts


def _embedding():
    """The embedding code, imported on first use (it loads torch)."""
    from ._nn import embedding

    return embedding


class TransferFeatures(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Embeddings of images or texts from a pretrained backbone, for any
    sklearn model.

    ``transform`` runs the backbone without its head and returns its pooled
    output (global average over positions; for a text encoder, ``pooling``
    over the tokens, see :class:`TextEncoder`) after the last stage, or after ``stage`` stages.
    Nothing is trained: ``fit`` loads the backbone and records the input
    layout.

    Parameters
    ----------
    backbone : str, TextEncoder, torch.nn.Module or fitted estimator, default="mobilenet_v2"
        As for :class:`PretrainedClassifier`: an image registry name (or an
        :class:`ImageBackbone`, which also gives the size images are resized
        to; a name alone uses the weights' own size), a
        :class:`TextEncoder` (or a text encoder's name, e.g.
        "all-MiniLM-L6-v2", a local Hugging Face model directory or hub id),
        a module, or a fitted image, text or tabular
        :class:`PretrainedClassifier` / :class:`TransferRegressor` whose
        trunk is used. A tabular estimator's stages are its hidden layers
        (``stage=k``: the output of the k-th hidden layer, after its
        activation; None: the last one's), so a source network's learnt
        layers can feed any scikit-learn model on a related table with the
        same columns.
    weights : str, path or None, default="DEFAULT"
        As for :class:`PretrainedClassifier`.
    stage : int or None, default=None
        Take the embedding after this many backbone stages (1 = the first);
        None takes the backbone's own output.
    batch_size : int, default=64
        Images (or texts) per inference batch.
    cache : bool, default=True
        Keep each image's embedding in the in-memory activation cache that
        the estimators' frozen-stage caching uses, keyed by architecture,
        weights, stage, preprocessing and the image itself, so that the
        folds and candidates of a grid search (or
        :func:`sktransfer.selection.rank_backbones` calls) embed each image
        once.
    cache_dir : str, path or None, default=None
        Also keep the embeddings as files in this directory, shared by
        worker processes and later sessions.
    n_jobs : int or None, default=None
        Worker processes that decode images: None decodes image files with
        up to 4 workers and reads arrays in the main process; 1 uses no
        workers; -1 one per CPU core.
    device : str, default="auto"
        "auto" uses CUDA when available, else the CPU.

    Attributes
    ----------
    trunk_ : torch.nn.Module
        The backbone without its head, in eval mode.
    n_stages_ : int
        Number of stages of the backbone.
    image_size_ : int or None
        Side of the images fed to the backbone (None for a text backbone).
    device_ : str
        Device the backbone runs on.
    weights_ : str or None
        The weights loaded (what "DEFAULT" resolved to, a file's path, or
        None for a random initialisation), as for :class:`PretrainedClassifier`.

    See Also
    --------
    PretrainedClassifier : Fine-tunes the backbone instead of freezing it.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sktransfer import ImageBackbone, TransferFeatures
    >>> rng = np.random.RandomState(0)
    >>> X = rng.randint(0, 256, size=(8, 32, 32, 3), dtype=np.uint8)
    >>> features = TransferFeatures(ImageBackbone("mobilenet_v2", image_size=32),
    ...                             weights="IMAGENET1K_V1")
    >>> features.fit_transform(X).shape
    (8, 1280)
    >>> pipe = make_pipeline(features, LogisticRegression()).fit(X, [0, 1] * 4)
    """

    _parameter_constraints: dict = {
        "backbone": [str, ImageBackbone, TextEncoder, HasMethods(["forward", "state_dict"]),
                     HasMethods(["fit", "predict"])],
        "weights": [None, str, os.PathLike],
        "stage": [None, Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "cache": ["boolean"],
        "cache_dir": [None, str, os.PathLike],
        "n_jobs": [None, Integral],
        "device": [str],
    }

    def __init__(self, backbone="mobilenet_v2", *, weights="DEFAULT", stage=None,
                 batch_size=64, cache=True, cache_dir=None, n_jobs=None, device="auto"):
        self.backbone = backbone
        self.weights = weights
        self.stage = stage
        self.batch_size = batch_size
        self.cache = cache
        self.cache_dir = cache_dir
        self.n_jobs = n_jobs
        self.device = device

    def _input_kind(self) -> str:
        if isinstance(self.backbone, BaseTransferEstimator):
            check_is_fitted(self.backbone)
            return self.backbone.input_kind_
        kind = declared_input_kind(self.backbone)
        if kind == TABULAR:
            raise ValueError(
                f"backbone={self.backbone!r} is an untrained tabular network, whose features "
                "transfer nothing; pass a PretrainedClassifier or TransferRegressor fitted on "
                "tabular source data (its hidden layers are the stages), an image registry "
                "name, a TextEncoder or a module.")
        return kind or IMAGES

    def _embedder_settings(self, kind: str):
        """What the engine's embedder is told."""
        backbone = backbone_object(self.backbone)
        text, image_size = {}, None
        if isinstance(backbone, TextEncoder):
            backbone.check()
            text = {"max_length": backbone.max_length, "pooling": backbone.pooling}
            backbone = backbone.name
        elif isinstance(backbone, ImageBackbone):
            backbone.check()
            image_size, backbone = backbone.image_size, backbone.name
        if isinstance(backbone, BaseTransferEstimator):
            backbone = backbone._export_trunk()
        return _embedding().EmbedderSettings(backbone, self.weights, self.stage, image_size,
                                      self.batch_size, self.device, kind, **text)

    def _check_input(self, X, *, reset=False):
        """Validated images, texts or table rows, as the backbone reads."""
        kind = self._input_kind()
        if kind == TABULAR:
            return self._check_table(X, reset)
        return check_texts(X) if kind == TEXT else check_images(X)

    def _check_table(self, X, reset):
        X = validate_data(self, X, reset=reset, dtype=[np.float64, np.float32])
        expected = self.backbone.n_features_in_
        if X.shape[1] != expected:
            raise ValueError(
                f"X has {X.shape[1]} features, but the {type(self.backbone).__name__} given "
                f"as backbone was fitted on {expected}; its layers need the same input "
                "features.")
        return X

    def _check_layout(self, data):
        if self._input_kind() != TABULAR:
            check_same_layout(self.input_signature_, data, self.input_description_)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Load the backbone and record the layout of the images ``X``.

        Parameters
        ----------
        X : images
            As for :meth:`PretrainedClassifier.fit`.
        y : None
            Ignored.

        Returns
        -------
        self : TransferFeatures
            The fitted transformer.
        """
        spec = self._embedder_settings(self._input_kind())
        images = self._check_input(X, reset=True)
        embedder = _embedding().fit_embedder(spec, images, cache=self.cache)
        self._embedder = embedder
        self.trunk_, self.n_stages_, self.image_size_, self.device_ = (
            embedder.trunk, embedder.n_stages, embedder.image_size, embedder.device)
        self.preprocessing_, self.weights_ = embedder.preprocessing, embedder.weights
        self._n_features_out = embedder.n_features_out  # for get_feature_names_out
        if spec.input_kind != TABULAR:
            self.input_signature_, self.input_description_ = (images.signature,
                                                              images.describe())
        return self

    def transform(self, X):
        """Pooled embeddings of the images ``X``.

        Parameters
        ----------
        X : images
            Images in the same layout as those given to ``fit``.

        Returns
        -------
        features : ndarray of shape (n_samples, n_features_out)
            One float64 embedding per image.
        """
        check_is_fitted(self)
        images = self._check_input(X)
        self._check_layout(images)
        return self._embed(images, self.stage)

    def _embed(self, images, stage):
        """Pooled float64 outputs of the checked ``images`` after ``stage``
        stages (None: the backbone's own output), through the activation
        store when the cache is on."""
        return _embedding().embed(self._embedder, images, stage=stage, n_jobs=self.n_jobs,
                               cache=self.cache, cache_dir=self.cache_dir)

    def source_proba(self, X, *, features=None):
        """Class probabilities of the source model on the images ``X``.

        The source model is the network the backbone comes from, with its
        own classification head: for a registry name or a torchvision
        classification module, that head (e.g. the 1000 ImageNet classes)
        applied to the backbone's own pooled output, whatever ``stage``; for
        a fitted :class:`PretrainedClassifier`, its ``predict_proba``. Scores
        such as :func:`sktransfer.selection.leep` take these probabilities.

        Parameters
        ----------
        X : images
            Images in the same layout as those given to ``fit``.
        features : ndarray of shape (n_samples, n_features_out), default=None
            ``transform(X)``, if already computed. With ``stage=None`` it is
            the pooled output the source head takes, so ``X`` is not embedded
            again; with a ``stage`` it is not used.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_source_classes)
            One row per image, summing to 1; the columns follow the source's
            classes (the weights' class order, or the fitted classifier's
            ``classes_``).

        Raises
        ------
        SourceLabelsUnavailableError
            If the source's labels are unknown: the backbone is a fitted
            regressor, ``weights`` replace a fitted estimator's parameters
            or come from a file, or a module has no known classification
            head. The error's ``reason`` says which.

        See Also
        --------
        sktransfer.selection.leep : Scores these probabilities on target labels.
        sktransfer.selection.rank_backbones : Ranks backbones by such scores.

        Examples
        --------
        >>> import numpy as np
        >>> from sktransfer import ImageBackbone, TransferFeatures
        >>> rng = np.random.RandomState(0)
        >>> X = rng.randint(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
        >>> features = TransferFeatures(ImageBackbone("mobilenet_v2", image_size=32),
        ...                             weights="IMAGENET1K_V1")
        >>> proba = features.fit(X).source_proba(X)
        >>> proba.shape
        (4, 1000)
        >>> bool(np.allclose(proba.sum(axis=1), 1))
        True
        """
        check_is_fitted(self)
        source = network_of(self.backbone)  # an ImageBackbone's network
        if isinstance(source, BaseTransferEstimator):
            name = type(source).__name__
            if not is_classifier(source):
                raise SourceLabelsUnavailableError(f"the source {name} predicts no class labels")
            if self.weights != "DEFAULT":
                raise SourceLabelsUnavailableError(
                    f"weights={self.weights!r} replace the fitted {name}'s parameters, so "
                    "its predictions do not come from this network")
            return source.predict_proba(X)
        head, reason = _engine().source_head(source, self.weights)
        if head is None:
            raise SourceLabelsUnavailableError(reason)
        return head.probabilities(self._own_output(X, features))

    def _own_output(self, X, features):
        """The backbone's own pooled output on ``X``, which its source head
        takes: ``features`` (checked) or ``transform(X)`` when ``stage`` is None."""
        if self.stage is None and features is None:
            return self.transform(X)
        images = self._check_input(X)
        self._check_layout(images)
        if self.stage is not None:  # the head follows the whole backbone, not the cut
            return self._embed(images, None)
        features = check_array(features, dtype="float64", input_name="features")
        expected = (len(images.data), self._n_features_out)
        if features.shape != expected:
            raise ValueError(
                f"features has shape {features.shape} but transform(X) gives {expected}; "
                "pass the output of transform(X) for these images, or None.")
        return features

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        if getattr(self.backbone, "input_kind_", None) == TABULAR:
            tags.input_tags.two_d_array = True
        elif declared_input_kind(self.backbone) == TEXT:
            tags.input_tags.string = True
        else:
            tags.input_tags.three_d_array = True
        tags.requires_fit = True
        return tags

    def __sklearn_is_fitted__(self):
        return hasattr(self, "trunk_")

    def __sklearn_clone__(self):
        return clone_keeping_source(self)
