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

    def check(self, *, parameter: str, task: str, input_kind: str, multi_task: bool) -> None:
        """Raise ``ValueError`` when this method cannot serve the fit
        described (``parameter`` is the estimator parameter holding it)."""
        self._validate_params()

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

    def check(self, *, parameter, task, input_kind, multi_task):
        super().check(parameter=parameter, task=task, input_kind=input_kind,
                      multi_task=multi_task)
        name = f"{parameter}={self!r}"
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

    def loss(self, own_logits, progress: float):
        """The weighted unlabeled term and the term itself (for the history),
        from the logits of the unlabeled samples."""
        term = _partial().pseudo_label_loss(own_logits, own_logits, self.threshold)
        return self.weight * progress * term, term


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

    def check(self, *, parameter, task, input_kind, multi_task):
        super().check(parameter=parameter, task=task, input_kind=input_kind,
                      multi_task=multi_task)
        if input_kind != opt.IMAGES:
            raise ValueError(
                f"{parameter}={self!r} needs images (it trains on augmented views); got "
                f"{input_kind} data. Use unlabeled=PseudoLabel() ('pseudo_label')."
            )

    def loss(self, strong_logits, weak_logits, progress: float):
        """The weighted unlabeled term and the term itself: the strong views
        trained toward the weak views' confident predictions."""
        term = _partial().pseudo_label_loss(strong_logits, weak_logits, self.threshold)
        return self.weight * term, term


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

    def extra_module(self, n_features: int):
        """A training-only module the loss needs (None: none)."""
        return None


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

    def loss(self, source, target, progress: float, module=None):
        """The weighted alignment term and the term itself."""
        term = _partial().coral_loss(source, target)
        return self.strength * progress * term, term


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

    def loss(self, source, target, progress: float, module=None):
        """The weighted alignment term and the term itself."""
        term = _partial().mmd_loss(source, target)
        return self.strength * progress * term, term


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

    def extra_module(self, n_features: int):
        return _partial().domain_classifier(n_features)

    def loss(self, source, target, progress: float, module=None):
        """The domain classifier's loss through the reversal (already scaled
        by the reversal), twice: it is both the added and the logged term."""
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
        """The weighted penalty of ``module``'s trunk against ``reference``."""
        from ._nn.optim import l2sp_penalty

        return 0.5 * self.strength * l2sp_penalty(module, reference)


# -- shorthands ---------------------------------------------------------------------------

_SHORTHANDS = {cls.shorthand: cls for cls in (PseudoLabel, FixMatch, Coral, MMD, DANN, L2SP)}


def resolve_method(value, parameter: str, kind: type):
    """The method object of a parameter value: None and other plain strings
    ("ignore") as they are, a shorthand as its method with default settings,
    a method object as it is; ``kind`` is the base class the parameter takes."""
    if isinstance(value, str) and value in _SHORTHANDS:
        value = _SHORTHANDS[value]()
    if isinstance(value, Method) and not isinstance(value, kind):
        raise ValueError(
            f"{parameter}={value!r} is not a {kind.__name__} method; see the "
            f"documentation of {parameter} for the methods it takes."
        )
    return value
