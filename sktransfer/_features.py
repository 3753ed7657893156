"""TransferFeatures: pooled backbone embeddings as a scikit-learn transformer
(feature transfer: frozen embeddings + any scikit-learn model)."""

from __future__ import annotations

import os
from numbers import Integral

from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from . import _nn
from ._base import BaseTransferEstimator, clone_keeping_source
from ._compat import HasMethods, Interval, _fit_context
from ._images import check_images, check_same_layout


class TransferFeatures(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Embeddings of images from a pretrained backbone, for any sklearn model.

    ``transform`` runs the backbone without its head and returns its pooled
    output (global average over positions) after the last stage, or after
    ``stage`` stages. Nothing is trained: ``fit`` loads the backbone and
    records the input layout.

    Parameters
    ----------
    backbone : str, torch.nn.Module or fitted estimator, default="mobilenet_v2"
        As for :class:`PretrainedClassifier`: a registry name, a module, or a
        fitted image :class:`PretrainedClassifier` / :class:`TransferRegressor`
        whose trunk is used.
    weights : str, path or None, default="DEFAULT"
        As for :class:`PretrainedClassifier`.
    stage : int or None, default=None
        Take the embedding after this many backbone stages (1 = the first);
        None takes the backbone's own output.
    image_size : int or None, default=None
        Side of the square input; None uses the weights' own size.
    batch_size : int, default=64
        Images per inference batch.
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
    image_size_ : int
        Side of the images fed to the backbone.
    device_ : str
        Device the backbone runs on.

    See Also
    --------
    PretrainedClassifier : Fine-tunes the backbone instead of freezing it.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sktransfer import TransferFeatures
    >>> rng = np.random.RandomState(0)
    >>> X = rng.randint(0, 256, size=(8, 32, 32, 3), dtype=np.uint8)
    >>> features = TransferFeatures("mobilenet_v2", weights="IMAGENET1K_V1", image_size=32)
    >>> features.fit_transform(X).shape
    (8, 1280)
    >>> pipe = make_pipeline(features, LogisticRegression()).fit(X, [0, 1] * 4)
    """

    _parameter_constraints: dict = {
        "backbone": [str, HasMethods(["forward", "state_dict"]), HasMethods(["fit", "predict"])],
        "weights": [None, str, os.PathLike],
        "stage": [None, Interval(Integral, 1, None, closed="left")],
        "image_size": [None, Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "cache": ["boolean"],
        "cache_dir": [None, str, os.PathLike],
        "n_jobs": [None, Integral],
        "device": [str],
    }

    def __init__(self, backbone="mobilenet_v2", *, weights="DEFAULT", stage=None,
                 image_size=None, batch_size=64, cache=True, cache_dir=None, n_jobs=None,
                 device="auto"):
        self.backbone = backbone
        self.weights = weights
        self.stage = stage
        self.image_size = image_size
        self.batch_size = batch_size
        self.cache = cache
        self.cache_dir = cache_dir
        self.n_jobs = n_jobs
        self.device = device

    def _backbone_spec(self):
        if not isinstance(self.backbone, BaseTransferEstimator):
            return self.backbone
        check_is_fitted(self.backbone)
        if self.backbone.input_kind_ != "images":
            raise ValueError("TransferFeatures takes image backbones; the estimator given "
                             "as backbone was fitted on tabular data.")
        return self.backbone._export_trunk()

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
        """
        spec = self._backbone_spec()
        images = check_images(X)
        device = _nn.resolve_device(self.device)
        trunk = _nn.build_trunk(spec, self.weights)
        if self.stage is not None and self.stage > len(trunk.stages):
            raise ValueError(
                f"stage={self.stage} but the backbone has {len(trunk.stages)} stages; use "
                f"1 to {len(trunk.stages)}, or None for the backbone's output."
            )
        prep = trunk.preprocessing
        size = _nn.check_image_size(self.image_size or prep.image_size, prep, self.backbone)
        module = trunk.module.to(device).eval()
        cut = _nn.cut_module(module, trunk.stages, self.stage)
        first = _nn.ImageDataset(images, prep, size)
        n_out = _nn.embed(module, _nn.subset(first, [0]), stage_module=cut, batch_size=1,
                          device=device).shape[1]
        self.trunk_, self.n_stages_, self.image_size_, self.device_ = (
            module, len(trunk.stages), size, device)
        self.preprocessing_, self._stages, self._n_features_out = prep, trunk.stages, n_out
        self._trunk_config = trunk.config
        self._cache_key = self._embedding_key() if self.cache else None
        self.input_signature_, self.input_description_ = images.signature, images.describe()
        return self

    def transform(self, X):
        """Pooled embeddings of the images ``X``.

        Returns
        -------
        features : ndarray of shape (n_samples, n_features_out)
        """
        check_is_fitted(self)
        images = check_images(X)
        check_same_layout(self.input_signature_, images, self.input_description_)
        dataset = _nn.ImageDataset(images, self.preprocessing_, self.image_size_)
        cut = _nn.cut_module(self.trunk_, self._stages, self.stage)
        workers = _nn.data_workers(self.n_jobs, images.kind)

        def embed(positions=None):
            part = dataset if positions is None else _nn.subset(dataset, positions)
            return _nn.embed(self.trunk_, part, stage_module=cut, batch_size=self.batch_size,
                             device=self.device_, num_workers=workers)

        if not self.cache:
            return embed().astype("float64")
        if self._cache_key is None:  # fitted with cache=False, then switched on
            self._cache_key = self._embedding_key()
        features, _ = _nn.cached_embeddings(self._cache_key, images, embed,
                                            cache_dir=self.cache_dir)
        return features.astype("float64")

    def _embedding_key(self) -> str:
        """Activation-store key of this backbone's embeddings (hashes its
        weights, so it is only computed when the cache is on)."""
        return _nn.embedding_key(self.trunk_, self._trunk_config, self.stage,
                                 self.preprocessing_, self.image_size_, self.device_)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.requires_fit = True
        return tags

    def __sklearn_is_fitted__(self):
        return hasattr(self, "trunk_")

    def __sklearn_clone__(self):
        return clone_keeping_source(self)
