"""Backbones with settings of their own, as small estimator-like objects:
``ImageBackbone(name, image_size=...)`` for images, ``MLP(hidden_layer_sizes=...,
activation=...)`` for tabular data and ``TextEncoder(name, max_length=...,
pooling=...)`` for texts. An image registry name, "mlp" and a text
encoder's name stand for them with default settings, so a setting that only
means something for one kind of input lives with that kind's backbone, and a
grid searches it as ``backbone__image_size``. This module is torch-free.
"""

from __future__ import annotations

from numbers import Integral

from sklearn.base import BaseEstimator

from . import _options as opt
from ._compat import HasMethods, Interval, StrOptions
from ._text import is_text_backbone


class Backbone(BaseEstimator):
    """Base class of the backbone objects. Not for direct use."""

    input_kind: str = ""

    def check(self, parameter="backbone"):
        """Check the settings.

        Parameters
        ----------
        parameter : str, default="backbone"
            The estimator parameter that holds this backbone (for messages).

        Raises
        ------
        ValueError
            When a setting is invalid; the message names the setting.
        """
        try:
            self._validate_params()
        except ValueError as exc:
            raise ValueError(f"{parameter}: {exc}") from None
        self._check_settings(parameter)

    def _check_settings(self, parameter: str) -> None:
        """Raise ``ValueError`` for settings the constraints cannot express."""

    def __sklearn_clone__(self):
        # a fitted estimator given as the network is the source of the
        # transfer, not a sub-estimator to refit: it is passed on as it is
        params = self.get_params(deep=False)
        name = params.get("name")
        if hasattr(name, "fit") and hasattr(name, "net_"):
            return type(self)(**params)
        return super().__sklearn_clone__()


class ImageBackbone(Backbone):
    """A pretrained image network, and the size its inputs are resized to.

    Parameters
    ----------
    name : str, torch.nn.Module or fitted estimator, default="mobilenet_v2"
        An image registry name (``sktransfer.list_backbones()``), an
        ``nn.Module`` taking image batches, or a fitted image
        :class:`PretrainedClassifier` / :class:`TransferRegressor` whose trunk
        is transferred (``clone`` passes it on as it is).
    image_size : int or None, default=None
        Side of the square input images are resized to; None uses the
        weights' own size (224 for ImageNet weights, the source's size for a
        fitted-estimator backbone).

    Examples
    --------
    >>> from sktransfer import ImageBackbone, PretrainedClassifier
    >>> clf = PretrainedClassifier(ImageBackbone("resnet18", image_size=64))
    >>> clf.get_params()["backbone__image_size"]
    64
    """

    input_kind = opt.IMAGES
    _parameter_constraints = {
        "name": [str, HasMethods(["forward", "state_dict"]), HasMethods(["fit", "predict"])],
        "image_size": [None, Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, name="mobilenet_v2", image_size=None):
        self.name = name
        self.image_size = image_size

    def _check_settings(self, parameter: str) -> None:
        if isinstance(self.name, str) and (self.name == opt.MLP or is_text_backbone(self.name)):
            raise ValueError(
                f"{parameter}__name={self.name!r} is not an image backbone; pass it as "
                f"{parameter}={self.name!r} (or MLP(...) / TextEncoder(...))."
            )


class MLP(Backbone):
    """A multi-layer perceptron trained from scratch on tabular data, each
    hidden layer one stage for ``freeze_depth``.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(100,)
        Sizes of the hidden layers.
    activation : {"relu", "tanh", "logistic", "identity", "gelu"}, default="relu"
        Activation of the hidden layers.

    See Also
    --------
    sklearn.neural_network.MLPClassifier : The same network in scikit-learn.

    Examples
    --------
    >>> from sktransfer import MLP, TransferRegressor
    >>> reg = TransferRegressor(MLP(hidden_layer_sizes=(32, 16)))
    >>> reg.get_params()["backbone__hidden_layer_sizes"]
    (32, 16)
    """

    input_kind = opt.TABULAR
    _parameter_constraints = {
        "hidden_layer_sizes": [tuple, list],
        "activation": [StrOptions(set(opt.ACTIVATIONS))],
    }

    def __init__(self, hidden_layer_sizes=(100,), activation="relu"):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation

    def _check_settings(self, parameter: str) -> None:
        sizes = tuple(self.hidden_layer_sizes)
        if not sizes or not all(isinstance(s, Integral) and not isinstance(s, bool) and s > 0
                                for s in sizes):
            raise ValueError(
                f"{parameter}__hidden_layer_sizes must be a non-empty tuple of positive "
                f"ints; got {self.hidden_layer_sizes!r}."
            )


# The shortest useful TextEncoder.max_length: the two special tokens BERT-like
# tokenisers add to a text, plus one token of the text itself.
MIN_MAX_LENGTH = 3


class TextEncoder(Backbone):
    """A pretrained Hugging Face text encoder (``pip install sktransfer[text]``).

    Parameters
    ----------
    name : str or fitted estimator, default="all-MiniLM-L6-v2"
        A text registry name (``sktransfer.list_backbones()``), a local
        Hugging Face model directory, a hub id ("owner/name"), or a fitted
        text :class:`PretrainedClassifier` / :class:`TransferRegressor` whose
        trunk is transferred with these settings (``clone`` passes it on as
        it is; given alone as ``backbone``, a fitted estimator keeps its
        own settings).
    max_length : int, default=128
        Texts are truncated at this many tokens (capped by the model's own
        limit); each batch is padded to its longest text. At least 3: the
        tokeniser's two special tokens count towards it.
    pooling : {"mean", "cls"}, default="mean"
        The sentence embedding is the mean of the token states ("mean", what
        sentence encoders such as all-MiniLM-L6-v2 are trained with) or the
        first token's state ("cls").

    Examples
    --------
    >>> from sktransfer import TextEncoder
    >>> TextEncoder(max_length=64)
    TextEncoder(max_length=64)
    """

    input_kind = opt.TEXT
    _parameter_constraints = {
        "name": [str, HasMethods(["fit", "predict"])],
        # below MIN_MAX_LENGTH, _check_settings says why
        "max_length": [Interval(Integral, None, None, closed="neither")],
        "pooling": [StrOptions(set(opt.POOLINGS))],
    }

    def __init__(self, name="all-MiniLM-L6-v2", max_length=128, pooling="mean"):
        self.name = name
        self.max_length = max_length
        self.pooling = pooling

    def _check_settings(self, parameter: str) -> None:
        if self.max_length < MIN_MAX_LENGTH:
            raise ValueError(
                f"{parameter}__max_length={self.max_length} is too short: the tokeniser "
                "puts special tokens around every text ([CLS] and [SEP] for BERT-like "
                "encoders) and they count towards max_length, so no word of the text "
                "would be kept and every text would become the same input. Use "
                f"max_length >= {MIN_MAX_LENGTH} (the default, 128, keeps most sentences "
                "whole)."
            )
        if isinstance(self.name, str) and not is_text_backbone(self.name):
            raise ValueError(
                f"{parameter}__name={self.name!r} is not a text encoder: use a text registry "
                "name (sktransfer.list_backbones()), a local Hugging Face model directory "
                "or a hub id ('owner/name')."
            )


def backbone_object(backbone):
    """The backbone object a shorthand stands for ("mlp" -> ``MLP()``, a text
    encoder's name -> ``TextEncoder(name)``, an image registry name ->
    ``ImageBackbone(name)``); any other value as it is."""
    if isinstance(backbone, str):
        if backbone == opt.MLP:
            return MLP()
        if is_text_backbone(backbone):
            return TextEncoder(backbone)
        return ImageBackbone(backbone)
    return backbone


def declared_input_kind(backbone) -> str | None:
    """The input kind a backbone value fixes (None: an ``nn.Module`` or a
    fitted estimator, decided by the data or the estimator)."""
    spec = backbone_object(backbone)
    return spec.input_kind if isinstance(spec, Backbone) else None


def network_of(backbone):
    """The network a backbone value names: a registry name, a module or a
    fitted estimator (an ``ImageBackbone``'s or a ``TextEncoder``'s
    ``name``), else the value."""
    return backbone.name if isinstance(backbone, (ImageBackbone, TextEncoder)) else backbone
