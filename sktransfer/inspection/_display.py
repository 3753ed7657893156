"""Displays in scikit-learn's style (``from_estimator``, ``plot(ax=...)``,
``figure_``, ``ax_``): attributions over their inputs, and the top losses.
matplotlib is imported only when plotting."""

from __future__ import annotations

import numpy as np

from .._images import check_images
from .._options import IMAGES, TABULAR, TEXT
from ._attribution import attribute
from ._losses import top_losses


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError(
            f"plotting needs matplotlib ({error}): pip install matplotlib.") from error
    return plt


def _axes(ax, n: int):
    """``(figure, axes as a flat array of n)``: new axes in one row when
    ``ax`` is None, else the ones given."""
    plt = _pyplot()
    if ax is None:
        figure, axes = plt.subplots(1, n, figsize=(2.2 * n, 2.4), squeeze=False)
        return figure, axes.ravel()
    axes = np.ravel(np.asarray(ax, dtype=object))
    if len(axes) != n:
        raise ValueError(f"ax must hold one axes per panel ({n}), got {len(axes)}.")
    return axes[0].figure, axes


def _pictures(X) -> list:
    """Each image of ``X`` as an (H, W) or (H, W, 3) array in [0, 1]."""
    images = check_images(X)
    if images.storage == "files":
        from PIL import Image

        return [np.asarray(item.convert("RGB") if isinstance(item, Image.Image)
                           else Image.open(item).convert("RGB")) / 255.0
                for item in images.data]
    pictures = []
    for item in images.data:  # (C, H, W)
        picture = np.moveaxis(np.asarray(item, dtype=np.float64) * images.scale, 0, -1)
        pictures.append(picture[..., 0] if picture.shape[-1] == 1 else picture)
    return pictures


class AttributionDisplay:
    """Attributions drawn over their inputs.

    Images get the attribution map as a translucent overlay, texts their
    tokens coloured by attribution (red for, blue against), tables a bar per
    feature. Create it with :meth:`from_estimator`.

    Parameters
    ----------
    attributions : ndarray or list of ndarray
        As ``attribute(...).attributions``.
    kind : {"images", "text", "tabular"}
        The input kind.
    inputs : list of ndarray, default=None
        For images, the pictures under the maps ((H, W) or (H, W, 3) in
        [0, 1]).
    tokens : list of list of str, default=None
        For texts, each text's tokens.
    feature_names : list of str, default=None
        For tables, the features' names (default ``x0, x1, ...``).
    targets : array-like, default=None
        The class (or output) explained per sample, shown in the titles.

    Attributes
    ----------
    figure_ : matplotlib.figure.Figure
        The figure drawn on.
    ax_ : ndarray of matplotlib.axes.Axes
        The axes drawn on (one per image; one for texts and tables).

    See Also
    --------
    attribute : The attributions drawn.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from sktransfer import MLP, PretrainedClassifier
    >>> from sktransfer.inspection import AttributionDisplay
    >>> rng = np.random.RandomState(0)
    >>> X = rng.rand(40, 4)
    >>> y = (X[:, 0] > 0.5).astype(int)
    >>> clf = PretrainedClassifier(MLP(hidden_layer_sizes=(8,)), max_epochs=5,
    ...                            random_state=0, device="cpu").fit(X, y)
    >>> display = AttributionDisplay.from_estimator(clf, X[:5])
    >>> display.ax_.shape
    (1,)
    """

    def __init__(self, attributions, kind, *, inputs=None, tokens=None, feature_names=None,
                 targets=None):
        self.attributions = attributions
        self.kind = kind
        self.inputs = inputs
        self.tokens = tokens
        self.feature_names = feature_names
        self.targets = targets

    @classmethod
    def from_estimator(cls, fitted, X, *, method="auto", target=None, feature_names=None,
                       n_steps=32, ax=None):
        """Compute the attributions of ``X`` and draw them.

        Parameters
        ----------
        fitted : PretrainedClassifier or TransferRegressor
            A fitted estimator (single task).
        X : array-like
            Inputs as passed to ``predict`` (a few: images get one panel each).
        method : str, default="auto"
            The attribution method (see :func:`attribute`).
        target : label, array-like of labels, int or None, default=None
            The class explained (None: the predicted class).
        feature_names : list of str, default=None
            For tables, the features' names (default: the estimator's
            ``feature_names_in_`` when it has them).
        n_steps : int, default=32
            Integrated Gradients' number of steps.
        ax : matplotlib Axes or array of Axes, default=None
            Where to draw (one per image); None makes a new figure.

        Returns
        -------
        display : AttributionDisplay
            The display, drawn.
        """
        result = attribute(fitted, X, method=method, target=target, n_steps=n_steps)
        kind = fitted.input_kind_
        if feature_names is None and kind == TABULAR:
            feature_names = getattr(fitted, "feature_names_in_", None)
        display = cls(result.attributions, kind,
                      inputs=_pictures(X) if kind == IMAGES else None, tokens=result.tokens,
                      feature_names=feature_names, targets=result.targets)
        return display.plot(ax=ax)

    def plot(self, ax=None, *, cmap=None, alpha=0.5, max_features=20):
        """Draw the attributions.

        Parameters
        ----------
        ax : matplotlib Axes or array of Axes, default=None
            Where to draw (for images one per image); None makes a new
            figure.
        cmap : str, default=None
            Colour map (None: "jet" over images, "RdBu_r" for tokens).
        alpha : float, default=0.5
            Opacity of the map over an image.
        max_features : int, default=20
            For tables, the features with the largest mean absolute
            attribution that get a bar.

        Returns
        -------
        display : AttributionDisplay
            The display, with ``figure_`` and ``ax_`` set.
        """
        if self.kind == IMAGES:
            self._plot_images(ax, cmap or "jet", alpha)
        elif self.kind == TEXT:
            self._plot_text(ax, cmap or "RdBu_r")
        else:
            self._plot_table(ax, max_features)
        return self

    def _title(self, i) -> str:
        return "" if self.targets is None else f"{self.targets[i]}"

    def _plot_images(self, ax, cmap, alpha):
        maps = list(self.attributions)
        self.figure_, self.ax_ = _axes(ax, len(maps))
        for i, (axis, heat) in enumerate(zip(self.ax_, maps)):
            if self.inputs is not None:
                axis.imshow(self.inputs[i], cmap="gray" if self.inputs[i].ndim == 2 else None)
            axis.imshow(heat, cmap=cmap, alpha=alpha if self.inputs is not None else 1.0)
            axis.set_title(self._title(i))
            axis.axis("off")

    def _plot_text(self, ax, cmap):
        plt = _pyplot()
        self.figure_, self.ax_ = _axes(ax, 1) if ax is not None else _text_axes(
            plt, len(self.tokens))
        axis = self.ax_[0]
        colours = plt.get_cmap(cmap)
        scale = max(float(np.max(np.abs(v))) for v in self.attributions) or 1.0
        renderer = self.figure_.canvas.get_renderer()
        for row, (tokens, values) in enumerate(zip(self.tokens, self.attributions)):
            x, y = 0.01, 1 - (row + 0.5) / len(self.tokens)
            for token, value in zip(tokens, values):
                text = axis.text(x, y, token, va="center", fontsize=9, transform=axis.transAxes,
                                 bbox=dict(facecolor=colours(0.5 + 0.5 * value / scale),
                                           edgecolor="none", pad=1.5))
                box = text.get_window_extent(renderer).transformed(axis.transAxes.inverted())
                x += box.width + 0.01
        axis.axis("off")

    def _plot_table(self, ax, max_features):
        self.figure_, self.ax_ = _axes(ax, 1) if ax is not None else _axes(None, 1)
        values = np.asarray(self.attributions)
        names = (np.asarray(self.feature_names) if self.feature_names is not None
                 else np.array([f"x{j}" for j in range(values.shape[1])]))
        mean = values.mean(0)
        order = np.argsort(-np.abs(values).mean(0), kind="stable")[:max_features][::-1]
        axis = self.ax_[0]
        axis.barh(names[order], mean[order],
                  color=np.where(mean[order] >= 0, "tab:red", "tab:blue"))
        axis.set_xlabel("mean attribution")


def _text_axes(plt, n_texts: int):
    figure, axis = plt.subplots(figsize=(8, 0.4 * n_texts + 0.4))
    return figure, np.array([axis], dtype=object)


class TopLossesDisplay:
    """The samples with the largest loss, with their true and predicted
    labels: images in a row of panels, other inputs as bars of their loss.
    Create it with :meth:`from_estimator`.

    Parameters
    ----------
    losses : sklearn.utils.Bunch
        As returned by :func:`top_losses`.
    inputs : list of ndarray, default=None
        For images, the pictures of the samples listed in ``losses``.

    Attributes
    ----------
    figure_ : matplotlib.figure.Figure
        The figure drawn on.
    ax_ : ndarray of matplotlib.axes.Axes
        The axes drawn on.

    See Also
    --------
    top_losses : The samples drawn.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from sktransfer import MLP, PretrainedClassifier
    >>> from sktransfer.inspection import TopLossesDisplay
    >>> rng = np.random.RandomState(0)
    >>> X = rng.rand(40, 4)
    >>> y = (X[:, 0] > 0.5).astype(int)
    >>> clf = PretrainedClassifier(MLP(hidden_layer_sizes=(8,)), max_epochs=5,
    ...                            random_state=0, device="cpu").fit(X, y)
    >>> TopLossesDisplay.from_estimator(clf, X, y, k=4).ax_.shape
    (1,)
    """

    def __init__(self, losses, *, inputs=None):
        self.losses = losses
        self.inputs = inputs

    @classmethod
    def from_estimator(cls, fitted, X, y, *, k=9, ax=None):
        """Find the ``k`` largest losses and draw those samples.

        Parameters
        ----------
        fitted : PretrainedClassifier or TransferRegressor
            A fitted estimator (single task).
        X : array-like
            Inputs as passed to ``predict``.
        y : array-like of shape (n_samples,)
            The true labels (or values).
        k : int, default=9
            How many samples to draw.
        ax : matplotlib Axes or array of Axes, default=None
            Where to draw (for images one per sample); None makes a new
            figure.

        Returns
        -------
        display : TopLossesDisplay
            The display, drawn.
        """
        losses = top_losses(fitted, X, y, k=k)
        inputs = None
        if fitted.input_kind_ == IMAGES:
            pictures = _pictures(X)
            inputs = [pictures[i] for i in losses.indices]
        return cls(losses, inputs=inputs).plot(ax=ax)

    def plot(self, ax=None):
        """Draw the samples.

        Parameters
        ----------
        ax : matplotlib Axes or array of Axes, default=None
            Where to draw; None makes a new figure.

        Returns
        -------
        display : TopLossesDisplay
            The display, with ``figure_`` and ``ax_`` set.
        """
        found = self.losses
        if self.inputs is not None:
            self.figure_, self.ax_ = _axes(ax, len(found.indices))
            for axis, picture, i in zip(self.ax_, self.inputs, range(len(found.indices))):
                axis.imshow(picture, cmap="gray" if picture.ndim == 2 else None)
                axis.set_title(f"{found.predicted[i]}/{found.true[i]}\n"
                               f"{found.losses[i]:.2f}", fontsize=8)
                axis.axis("off")
            return self
        self.figure_, self.ax_ = _axes(ax, 1)
        labels = [f"#{index}: {true} -> {predicted}" for index, true, predicted
                  in zip(found.indices, found.true, found.predicted)]
        self.ax_[0].barh(labels[::-1], found.losses[::-1])
        self.ax_[0].set_xlabel("loss")
        return self
