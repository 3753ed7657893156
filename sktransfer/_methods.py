"""Training methods with settings of their own, as small estimator-like
objects (scikit-learn's ``kernel=RBF(length_scale=...)`` pattern): what
unlabeled samples do (``unlabeled=PseudoLabel(...)`` / ``FixMatch(...)``),
how source and target features are aligned (``domain_adaptation=Coral(...)``
/ ``MMD(...)`` / ``DANN(...)``) and how the backbone is regularised
(``regularization=L2SP(...)``).

Each is a ``BaseEstimator``, so ``clone`` copies it and a grid searches its
settings (``unlabeled__threshold``); each string shorthand ("pseudo_label",
"coral", "l2sp", ...) stands for its method with default settings. A method
says what it needs (``check``) and provides its loss; the losses themselves
are torch code in ``sktransfer._nn.partial`` and ``sktransfer._nn.optim``,
imported when a loss is first computed, so this module stays torch-free.
"""

from __future__ import annotations

from numbers import Integral, Real

from sklearn.base import BaseEstimator

from . import _options as opt
from ._compat import Interval

_STRENGTH = {"strength": [Interval(Real, 0, None, closed="left")]}


def _partial():
    from ._nn import partial

    return partial


class Method(BaseEstimator):
    """Base class of the method objects. Not for direct use."""

    shorthand: str = ""

    def check(self, *, parameter, task, input_kind, multi_task=False):
        """Check the settings and that this method can serve a fit.

        Parameters
        ----------
        parameter : str
            The estimator parameter that holds this method (for messages).
        task : {"classification", "regression"}
            What the estimator predicts.
        input_kind : {"images", "tabular", "text"}
            What the estimator is fitted on.
        multi_task : bool, default=False
            Whether a classifier's ``y`` has one column per task.

        Raises
        ------
        ValueError
            When a setting is invalid or the method cannot serve such a fit.
        """
        self._validate_params()
        self._check_fit(f"{parameter}={self!r}", task, input_kind, multi_task)

    def _check_fit(self, name: str, task: str, input_kind: str, multi_task: bool) -> None:
        """Raise ``ValueError`` when the method cannot serve the fit."""

    def __repr__(self, N_CHAR_MAX=700):
        return super().__repr__(N_CHAR_MAX)


# -- unlabeled samples --------------------------------------------------------------------


class SemiSupervised(Method):
    """A method that turns confident class predictions on unlabeled samples
    into targets. Not for direct use."""

    #: whether each image comes as a weak and a strong view
    two_views = False

    _parameter_constraints = {
        "threshold": [Interval(Real, 0, 1, closed="right")],
        "weight": [Interval(Real, 0, None, closed="left")],
        "ratio": [Interval(Integral, 1, None, closed="left")],
    }

    def loss(self, logits, targets_from, progress):
        """The unlabeled samples' term of a training batch.

        Parameters
        ----------
        logits : torch.Tensor of shape (n_unlabeled, n_classes)
            The network's logits on the unlabeled samples (for two views: on
            the strong views).
        targets_from : torch.Tensor of shape (n_unlabeled, n_classes)
            The logits whose confident predictions become the targets (the
            same logits, or the weak views').
        progress : float
            The ramp of training so far, from 0 to 1.

        Returns
        -------
        weighted : torch.Tensor
            The term as it is added to the loss.
        term : torch.Tensor
            The term before its weight (what the history records).
        """
        term = _partial().pseudo_label_loss(logits, targets_from, self.threshold)
        return self.weight * self._scale(progress) * term, term

    def _scale(self, progress: float) -> float:
        return progress

    def _check_fit(self, name, task, input_kind, multi_task):
        if task != "classification":
            raise ValueError(
                f"{name} turns confident class predictions into targets, which a "
                "regressor does not have; a regressor accepts unlabeled=None or 'ignore' "
                "(and domain_adaptation)."
            )
        if multi_task:
            raise ValueError(
                f"{name} needs a 1-D y; with several tasks (a 2-D y) use unlabeled=None "
                "or 'ignore', or domain_adaptation."
            )


class PseudoLabel(SemiSupervised):
    """Pseudo-labelling (Lee, 2013): the network's confident predictions on
    unlabeled samples become their targets.

    Parameters
    ----------
    threshold : float in (0, 1], default=0.95
        Probability a prediction needs to become a target.
    weight : float, default=1.0
        Weight of the unlabeled samples' loss against the labeled one's; it
        ramps up from 0 over training with DANN's schedule
        ``2 / (1 + exp(-10 p)) - 1``, ``p`` the fraction of training done.
    ratio : int, default=1
        Unlabeled samples per labeled sample in a training batch.

    See Also
    --------
    FixMatch : Consistency between a weak and a strong view (images).

    Examples
    --------
    >>> from sktransfer import PretrainedClassifier, PseudoLabel
    >>> clf = PretrainedClassifier("mlp", unlabeled=PseudoLabel(threshold=0.9))
    >>> clf.get_params()["unlabeled__threshold"]
    0.9
    """

    shorthand = opt.PSEUDO_LABEL

    def __init__(self, threshold=0.95, weight=1.0, ratio=1):
        self.threshold = threshold
        self.weight = weight
        self.ratio = ratio


class FixMatch(SemiSupervised):
    """FixMatch (Sohn et al., NeurIPS 2020), for images: the prediction on a
    lightly augmented view becomes the target of a strongly augmented view
    (RandAugment and cutout) of the same image.

    Parameters
    ----------
    threshold : float in (0, 1], default=0.95
        Probability the weak view's prediction needs to become a target.
    weight : float, default=1.0
        Weight of the unlabeled samples' loss (constant, as in the paper).
    ratio : int, default=7
        Unlabeled samples per labeled sample in a training batch (the
        paper's mu).

    See Also
    --------
    PseudoLabel : Pseudo-labelling, for any input kind.

    Examples
    --------
    >>> from sktransfer import FixMatch
    >>> FixMatch(ratio=3)
    FixMatch(ratio=3)
    """

    shorthand = opt.FIXMATCH
    two_views = True

    def __init__(self, threshold=0.95, weight=1.0, ratio=7):
        self.threshold = threshold
        self.weight = weight
        self.ratio = ratio

    def _check_fit(self, name, task, input_kind, multi_task):
        super()._check_fit(name, task, input_kind, multi_task)
        if input_kind != opt.IMAGES:
            raise ValueError(
                f"{name} needs images (it trains on augmented views); got {input_kind} "
                "data. Use unlabeled=PseudoLabel() ('pseudo_label')."
            )

    def _scale(self, progress: float) -> float:
        return 1.0  # constant, as in the paper


# -- domain adaptation ----------------------------------------------------------------------


class Alignment(Method):
    """A loss that aligns the features of the labeled samples (the source
    domain) with those of the unlabeled ones (the target domain), at the
    trunk's output. Its strength ramps up from 0 over training with DANN's
    schedule ``2 / (1 + exp(-10 p)) - 1``, ``p`` the fraction of training
    done. Not for direct use."""

    _parameter_constraints = dict(_STRENGTH)

    def __init__(self, strength=1.0):
        self.strength = strength

    def extra_module(self, n_features):
        """The training-only module the loss needs, if any.

        Parameters
        ----------
        n_features : int
            Size of the trunk's features.

        Returns
        -------
        module : torch.nn.Module or None
            A module the net trains with the head (DANN's domain
            classifier), or None.
        """
        return self._extra_module(int(n_features))

    def _extra_module(self, n_features: int):
        return None

    def loss(self, source, target, progress, module=None):
        """The alignment term of a training batch.

        Parameters
        ----------
        source : torch.Tensor of shape (n_labeled, n_features)
            The trunk's features of the labeled samples (the source domain).
        target : torch.Tensor of shape (n_unlabeled, n_features)
            The trunk's features of the unlabeled samples (the target domain).
        progress : float
            The ramp of training so far, from 0 to 1.
        module : torch.nn.Module or None, default=None
            The module of :meth:`extra_module`, when there is one.

        Returns
        -------
        weighted : torch.Tensor
            The term as it is added to the loss.
        term : torch.Tensor
            The term before its weight (what the history records).
        """
        return self._terms(source, target, progress, module)

    def _terms(self, source, target, progress, module):
        term = self._distance(source, target)
        return self.strength * progress * term, term


class Coral(Alignment):
    """Deep CORAL (Sun & Saenko, 2016): aligns the two domains' feature
    covariances.

    Parameters
    ----------
    strength : float, default=1.0
        Weight of the alignment loss.

    Examples
    --------
    >>> from sktransfer import Coral
    >>> Coral(strength=0.5)
    Coral(strength=0.5)
    """

    shorthand = opt.CORAL

    def _distance(self, source, target):
        return _partial().coral_loss(source, target)


class MMD(Alignment):
    """Maximum mean discrepancy with Gaussian kernels of five bandwidths
    (DAN, Long et al., 2015): aligns the domains' kernel mean embeddings.

    Parameters
    ----------
    strength : float, default=1.0
        Weight of the alignment loss.

    Examples
    --------
    >>> from sktransfer import MMD
    >>> MMD()
    MMD()
    """

    shorthand = opt.MMD

    def _distance(self, source, target):
        return _partial().mmd_loss(source, target)


class DANN(Alignment):
    """Domain-adversarial training (Ganin et al., 2016): a domain classifier
    learns to tell the domains apart behind a gradient reversal layer, so the
    trunk learns features it cannot tell apart. The classifier trains with
    the head; it is part of the fitted net but never used to predict.

    Parameters
    ----------
    strength : float, default=1.0
        Scale of the reversed gradient.

    Examples
    --------
    >>> from sktransfer import DANN
    >>> DANN(strength=0.3)
    DANN(strength=0.3)
    """

    shorthand = opt.DANN

    def _extra_module(self, n_features: int):
        return _partial().domain_classifier(n_features)

    def _terms(self, source, target, progress, module):
        # the reversal scales the trunk's gradient: the term is added as it is
        term = _partial().dann_loss(module, source, target, self.strength * progress)
        return term, term


# -- regularisation -------------------------------------------------------------------------


class L2SP(Method):
    """L2-SP (Li et al., ICML 2018): pulls the transferred backbone toward its
    source weights with the penalty ``strength / 2 * ||w - w_source||^2``;
    the new head keeps plain weight decay and the backbone gets none.

    Parameters
    ----------
    strength : float, default=0.01
        Strength of the penalty.

    Examples
    --------
    >>> from sktransfer import L2SP
    >>> L2SP(strength=0.1)
    L2SP(strength=0.1)
    """

    shorthand = opt.L2SP
    _parameter_constraints = dict(_STRENGTH)

    def __init__(self, strength=0.01):
        self.strength = strength

    def penalty(self, module, reference):
        """The weighted penalty of a network's trunk.

        Parameters
        ----------
        module : torch.nn.Module
            The network being fine-tuned (its ``trunk`` is penalised).
        reference : dict of str to torch.Tensor
            The trunk's source parameters, by name.

        Returns
        -------
        penalty : torch.Tensor
            ``strength / 2`` times the squared distance of the trainable trunk
            parameters to their source values.
        """
        from ._nn.optim import l2sp_penalty

        return 0.5 * self.strength * l2sp_penalty(module, reference)


# -- shorthands ---------------------------------------------------------------------------

_SHORTHANDS = {cls.shorthand: cls for cls in (PseudoLabel, FixMatch, Coral, MMD, DANN, L2SP)}


def resolve_method(value):
    """The method object of a parameter value (the estimators' parameter
    constraints have checked its kind): a shorthand as its method with
    default settings; None, other plain strings ("ignore") and method
    objects as they are."""
    if isinstance(value, str) and value in _SHORTHANDS:
        return _SHORTHANDS[value]()
    return value
