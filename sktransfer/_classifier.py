"""PretrainedClassifier: fine-tune a pretrained network as a scikit-learn
classifier."""

from __future__ import annotations

import numpy as np
from scipy.special import softmax
from sklearn.base import ClassifierMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import column_or_1d

from . import _nn
from ._base import BaseTransferEstimator
from ._compat import _fit_context


class PretrainedClassifier(ClassifierMixin, BaseTransferEstimator):
    """Classifier that fine-tunes a pretrained network on your images.

    The backbone's source head is replaced by a new head sized to the classes
    of ``y``; the first ``freeze_depth`` stages of the backbone are frozen and
    the rest is fine-tuned with gradient descent (on the GPU when there is one).
    Training runs through a skorch net held in ``net_``.

    Parameters
    ----------
    backbone : str or torch.nn.Module, default="mobilenet_v2"
        A registry name (``sktransfer.list_backbones()``: "resnet18",
        "resnet50", "mobilenet_v2", "mobilenet_v3_large", "efficientnet_b0",
        "convnext_tiny", "vit_b_16", ...) or a module. A torchvision
        classification model keeps its known stages and has its head replaced;
        any other module is used whole as the feature extractor and its
        top-level children with parameters are its stages.
    weights : str, path or None, default="DEFAULT"
        None trains from random initialisation. "DEFAULT" or a torchvision
        weights name ("IMAGENET1K_V1") loads those weights, found offline in the
        torch hub cache or an installed provider package, else downloaded. For
        an ``nn.Module`` backbone "DEFAULT" keeps the module's own parameters.
        A path to a ``.pth``/``.pt``/``.safetensors`` state dict is loaded
        without executing code. Keys or shapes that do not match raise.
    freeze_depth : int or "all", default=0
        Number of leading backbone stages that are frozen (0 fine-tunes
        everything); "all" trains only the new head.
    head : tuple of int, default=()
        Hidden layer sizes of the new head; () is a single linear layer.
    head_dropout : float, default=0.0
        Dropout before each layer of the new head.
    lr : float, default=1e-3
        Learning rate.
    optimizer : {"adamw", "adam", "sgd"}, default="adamw"
        Optimizer; "sgd" uses momentum 0.9.
    weight_decay : float, default=1e-4
        Weight decay.
    max_epochs : int, default=10
        Number of passes over the training data.
    batch_size : int, default=32
        Images per training and inference batch.
    image_size : int or None, default=None
        Side of the square input images are resized to; None uses the
        weights' own size (224 for ImageNet weights).
    device : str, default="auto"
        "auto" uses CUDA when available, else the CPU; or "cpu", "cuda", "cuda:N".
    random_state : int, RandomState instance or None, default=None
        Seeds the head's initialisation and the batch order.
    verbose : int, default=0
        0 is silent, 1 prints a line per epoch, 2 adds a progress bar per epoch.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    net_ : skorch.NeuralNetClassifier
        The fitted skorch net; ``net_.module_`` is the network.
    history_ : list of dict
        One record per epoch: "epoch", "train_loss", "dur".
    n_stages_ : int
        Number of backbone stages ``freeze_depth`` counts.
    image_size_ : int
        Side of the images the network was trained on.
    device_ : str
        Device the network was trained on.

    See Also
    --------
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

    def __init__(self, backbone="mobilenet_v2", *, weights="DEFAULT", freeze_depth=0,
                 head=(), head_dropout=0.0, lr=1e-3, optimizer="adamw",
                 weight_decay=1e-4, max_epochs=10, batch_size=32, image_size=None,
                 device="auto", random_state=None, verbose=0):
        super().__init__(
            backbone, weights=weights, freeze_depth=freeze_depth, head=head,
            head_dropout=head_dropout, lr=lr, optimizer=optimizer,
            weight_decay=weight_decay, max_epochs=max_epochs, batch_size=batch_size,
            image_size=image_size, device=device, random_state=random_state,
            verbose=verbose,
        )

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Fine-tune the network on images ``X`` with labels ``y``.

        Parameters
        ----------
        X : array-like of images, list of paths or list of PIL images
            uint8 ``(N, H, W, C)``, grayscale ``(N, H, W)``, float
            ``(N, C, H, W)`` in [0, 1], image file paths or PIL images.
        y : array-like of shape (N,)
            Class labels (ints or strings).

        Returns
        -------
        self : PretrainedClassifier
            The fitted classifier.
        """
        y = self._validate_labels(y)
        images = self._validate_images(X, y)
        encoder = LabelEncoder().fit(y)
        targets = encoder.transform(y).astype(np.int64)
        fitted = self._fit_network(images, targets, n_outputs=len(encoder.classes_))
        fitted["classes_"] = encoder.classes_
        self._set_fitted(fitted)
        return self

    @staticmethod
    def _validate_labels(y) -> np.ndarray:
        if y is None:
            raise ValueError("requires y to be passed, but the target y is None.")
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        n_classes = len(np.unique(y))
        if n_classes < 2:
            raise ValueError(
                f"The number of classes has to be greater than one; got {n_classes} "
                "class. A classifier needs examples of at least two classes."
            )
        return y

    def _make_net(self, module, n_outputs, device):
        return _nn.build_classifier_net(
            module, n_classes=n_outputs, lr=self.lr, optimizer=self.optimizer,
            weight_decay=self.weight_decay, max_epochs=self.max_epochs,
            batch_size=self.batch_size, device=device, verbose=self.verbose,
        )

    def predict_proba(self, X):
        """Class probabilities of images ``X``.

        Returns
        -------
        proba : ndarray of shape (N, n_classes)
            Columns follow ``classes_``.
        """
        return softmax(self._predict_outputs(X).astype(np.float64), axis=1)

    def predict(self, X):
        """Predicted class labels of images ``X``, taken from ``classes_``."""
        outputs = self._predict_outputs(X)  # checks that the model is fitted
        return self.classes_[np.argmax(outputs, axis=1)]
