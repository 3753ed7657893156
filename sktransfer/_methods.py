"""Training methods with settings of their own, as small estimator-like
objects (scikit-learn's ``kernel=RBF(length_scale=...)`` pattern): what
unlabeled samples do (``unlabeled=PseudoLabel(...)`` / ``FixMatch(...)``),
how source and target features are aligned (``domain_adaptation=Coral(...)``
/ ``MMD(...)`` / ``DANN(...)`` / ``CDAN(...)`` / ``MCC(...)``, or
``AutoAdaptation(...)`` to choose among them without target labels), how
the backbone is regularised (``regularization=L2SP(...)``) and how training
is kept differentially private (``privacy=DP(...)``).

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
from ._compat import Interval, StrOptions

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
    domain) with those of the unlabeled ones (the target domain). Its
    strength ramps up from 0 over training with DANN's schedule
    ``2 / (1 + exp(-10 p)) - 1``, ``p`` the fraction of training done.

    The features are a bottleneck's when there is one: a new
    ``Linear -> BatchNorm -> ReLU`` layer between the trunk and the head
    (part of the network that predicts), as in DANN's, CDAN's and MCC's
    experiments with pretrained backbones; the trunk's pooled output
    otherwise. Not for direct use."""

    _parameter_constraints = {
        **_STRENGTH,
        "bottleneck": [None, Interval(Integral, 1, None, closed="left"),
                       StrOptions({"auto"})],
    }

    #: whether the loss reads the network's class predictions (a classifier's only)
    uses_predictions = False

    def __init__(self, strength=1.0, bottleneck="auto"):
        self.strength = strength
        self.bottleneck = bottleneck

    def bottleneck_width(self, input_kind):
        """The bottleneck's width for a fit on ``input_kind`` data, or None.

        Parameters
        ----------
        input_kind : {"images", "tabular", "text"}
            What the estimator is fitted on.

        Returns
        -------
        width : int or None
            ``bottleneck`` when it is an int; for "auto", 256 in front of a
            pretrained image or text trunk (whose pooled features are wide
            and tuned to their source task) and None for the MLP (its last
            hidden layer is already a small learned layer).
        """
        if self.bottleneck == "auto":
            return None if input_kind == opt.TABULAR else AUTO_BOTTLENECK
        return None if self.bottleneck is None else int(self.bottleneck)

    def _check_fit(self, name, task, input_kind, multi_task):
        if self.uses_predictions and task != "classification":
            raise ValueError(
                f"{name} conditions on class predictions, which a regressor does not "
                "have; use Coral(), MMD() or DANN()."
            )
        if self.uses_predictions and multi_task:
            raise ValueError(
                f"{name} needs a 1-D y (one set of class predictions); with several "
                "tasks use Coral(), MMD() or DANN()."
            )

    def extra_module(self, n_features, n_classes=None):
        """The training-only module the loss needs, if any.

        Parameters
        ----------
        n_features : int
            Size of the aligned features (the bottleneck's, or the trunk's).
        n_classes : int or None, default=None
            Number of the network's outputs (classes), for methods that
            condition on predictions.

        Returns
        -------
        module : torch.nn.Module or None
            A module the net trains with the head (a domain classifier), or
            None. It is dropped when the fit ends: predicting never needs it.
        """
        return self._extra_module(int(n_features), None if n_classes is None else int(n_classes))

    def _extra_module(self, n_features: int, n_classes):
        return None

    def loss(self, source, target, progress, module=None, logits=None):
        """The alignment term of a training batch.

        Parameters
        ----------
        source : torch.Tensor of shape (n_labeled, n_features)
            The aligned features of the labeled samples (the source domain).
        target : torch.Tensor of shape (n_unlabeled, n_features)
            The aligned features of the unlabeled samples (the target domain).
        progress : float
            The ramp of training so far, from 0 to 1.
        module : torch.nn.Module or None, default=None
            The module of :meth:`extra_module`, when there is one.
        logits : tuple of two torch.Tensor or None, default=None
            The network's outputs on the labeled and on the unlabeled
            samples (the methods that read predictions need them).

        Returns
        -------
        weighted : torch.Tensor
            The term as it is added to the loss.
        term : torch.Tensor
            The term before its weight (what the history records).
        """
        return self._terms(source, target, progress, module, logits)

    def _terms(self, source, target, progress, module, logits):
        term = self._distance(source, target)
        return self.strength * progress * term, term


AUTO_BOTTLENECK = 256


class Coral(Alignment):
    """Deep CORAL (Sun & Saenko, 2016): aligns the two domains' feature
    covariances.

    Parameters
    ----------
    strength : float, default=1.0
        Weight of the alignment loss.
    bottleneck : int, None or "auto", default="auto"
        Width of the bottleneck layer the alignment acts on (see
        :class:`DANN`); "auto": 256 for images and texts, none for the MLP.

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
    bottleneck : int, None or "auto", default="auto"
        Width of the bottleneck layer the alignment acts on (see
        :class:`DANN`); "auto": 256 for images and texts, none for the MLP.

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
    network learns features it cannot tell apart. The classifier trains with
    the head and is dropped when the fit ends (predicting never uses it).

    Parameters
    ----------
    strength : float, default=1.0
        Scale of the reversed gradient.
    bottleneck : int, None or "auto", default="auto"
        Width of a ``Linear -> BatchNorm -> ReLU`` layer added between the
        trunk and the head, whose output is aligned (it stays in the network
        that predicts). "auto": 256 for images and texts, none for the MLP
        (whose last hidden layer is aligned); None: the trunk's output.

    Examples
    --------
    >>> from sktransfer import DANN
    >>> DANN(strength=0.3)
    DANN(strength=0.3)
    """

    shorthand = opt.DANN

    def _extra_module(self, n_features, n_classes):
        return _partial().domain_classifier(n_features)

    def _terms(self, source, target, progress, module, logits):
        # the reversal scales the trunk's gradient: the term is added as it is
        term = _partial().dann_loss(module, source, target, self.strength * progress)
        return term, term


class CDAN(Alignment):
    """Conditional domain-adversarial training (Long et al., NeurIPS 2018):
    DANN whose domain classifier sees the features conditioned on the class
    predictions (their outer product, or a random multilinear map of it when
    it is wider than 4,096), so the domains are aligned class by class. With
    ``entropy=True`` (CDAN+E) confident predictions weigh more.

    Parameters
    ----------
    strength : float, default=1.0
        Scale of the reversed gradient.
    entropy : bool, default=True
        Weight each sample by ``1 + exp(-H(p))``, ``H`` the entropy of its
        predicted probabilities.
    bottleneck : int, None or "auto", default="auto"
        Width of the bottleneck layer the alignment acts on (see
        :class:`DANN`); "auto": 256 for images and texts, none for the MLP.

    See Also
    --------
    DANN : Unconditional domain-adversarial training.
    MCC : Minimum class confusion on the target's predictions.

    Examples
    --------
    >>> from sktransfer import CDAN
    >>> CDAN(strength=0.5).get_params()["entropy"]
    True
    """

    shorthand = opt.CDAN
    uses_predictions = True
    _parameter_constraints = {**Alignment._parameter_constraints, "entropy": ["boolean"]}

    def __init__(self, strength=1.0, entropy=True, bottleneck="auto"):
        self.strength = strength
        self.entropy = entropy
        self.bottleneck = bottleneck

    def _extra_module(self, n_features, n_classes):
        return _partial().conditional_domain_classifier(n_features, n_classes)

    def _terms(self, source, target, progress, module, logits):
        term = _partial().cdan_loss(module, source, target, logits, self.strength * progress,
                                    entropy=self.entropy)
        return term, term


class MCC(Alignment):
    """Minimum class confusion (Jin et al., ECCV 2020): lowers how often the
    network's predictions on the target domain confuse two classes (the
    off-diagonal mass of the class correlation of its temperature-scaled,
    certainty-weighted probabilities). It acts on the target's predictions,
    not on a distance between the domains' features.

    Parameters
    ----------
    strength : float, default=1.0
        Weight of the loss.
    temperature : float, default=2.5
        Temperature of the softmax (the paper's value).
    bottleneck : int, None or "auto", default="auto"
        Width of the bottleneck layer between the trunk and the head (see
        :class:`DANN`); "auto": 256 for images and texts, none for the MLP.

    See Also
    --------
    CDAN : Conditional domain-adversarial training.

    Examples
    --------
    >>> from sktransfer import MCC
    >>> MCC(temperature=2.0)
    MCC(temperature=2.0)
    """

    shorthand = opt.MCC
    uses_predictions = True
    _parameter_constraints = {**Alignment._parameter_constraints,
                              "temperature": [Interval(Real, 0, None, closed="neither")]}

    def __init__(self, strength=1.0, temperature=2.5, bottleneck="auto"):
        self.strength = strength
        self.temperature = temperature
        self.bottleneck = bottleneck

    def _terms(self, source, target, progress, module, logits):
        term = _partial().mcc_loss(logits[1], self.temperature)
        return self.strength * progress * term, term


class AutoAdaptation(Method):
    """Domain adaptation whose method and strength are chosen without
    target labels: each candidate is fitted on most of the labeled samples
    and every unlabeled one, rated by an unsupervised scorer on the
    held-out labeled samples and the unlabeled ones, and the best candidate
    is fitted again on all samples. No scorer is reliable (see ``scorer``):
    treat the choice as a better guess than a fixed default, not as a
    validated one. The fitted estimator records the choice
    in ``domain_adaptation_`` and every candidate's score in
    ``adaptation_scores_``. It costs one fit per candidate, plus the refit.

    Parameters
    ----------
    methods : tuple of str, default=("mmd", "dann", "cdan", "mcc")
        The candidate methods, by shorthand.
    strengths : tuple of float, default=(0.3, 1.0)
        The strengths tried for each method.
    include_none : bool, default=False
        Whether no adaptation (the labeled samples alone) is a candidate
        too. Off by default: prediction entropy rewards confidence, and a
        source-only network can be confidently wrong on the target (in
        ``benchmarks/adaptation.py`` it was then chosen over adaptations
        0.3 more accurate); turn it on with a scorer you trust to compare
        them.
    scorer : {"entropy", "iwv", "dev"}, default="entropy"
        The unsupervised scorer that rates the candidates: prediction
        entropy, importance-weighted validation or deep embedded validation
        (see ``sktransfer.selection``). Prediction entropy is the default:
        in ``benchmarks/adaptation.py`` (MobileNetV2, three digit domain
        pairs, the adapted settings) its ranking was the only one that
        agreed with the target accuracy on every pair (Spearman 0.15 to
        0.83); IWV's and DEV's were near zero or reversed.
    validation_fraction : float in (0, 1), default=0.2
        Share of the labeled samples held out to rate the candidates.

    Examples
    --------
    >>> from sktransfer import AutoAdaptation
    >>> AutoAdaptation(methods=("mmd", "mcc"), strengths=(1.0,))
    AutoAdaptation(methods=('mmd', 'mcc'), strengths=(1.0,))
    """

    shorthand = opt.AUTO
    _parameter_constraints = {
        "methods": [tuple, list],
        "strengths": [tuple, list],
        "include_none": ["boolean"],
        "scorer": [StrOptions({"entropy", "iwv", "dev"})],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
    }

    def __init__(self, methods=(opt.MMD, opt.DANN, opt.CDAN, opt.MCC), strengths=(0.3, 1.0),
                 include_none=False, scorer="entropy", validation_fraction=0.2):
        self.methods = methods
        self.strengths = strengths
        self.include_none = include_none
        self.scorer = scorer
        self.validation_fraction = validation_fraction

    def candidates(self):
        """The candidate ``domain_adaptation`` values.

        Returns
        -------
        candidates : list
            None (no adaptation) first when it is a candidate, then each
            method at each strength, as method objects.
        """
        found = [None] if self.include_none else []
        for name in self.methods:
            for strength in self.strengths:
                found.append(_ALIGNMENTS[name](strength=strength))
        return found

    def _check_fit(self, name, task, input_kind, multi_task):
        unknown = [m for m in self.methods if m not in _ALIGNMENTS]
        if unknown or not self.methods:
            raise ValueError(
                f"{name}: methods must be a non-empty tuple of {sorted(_ALIGNMENTS)}; got "
                f"{self.methods!r}."
            )
        if not self.strengths or not all(isinstance(s, Real) and s >= 0
                                         for s in self.strengths):
            raise ValueError(
                f"{name}: strengths must be a non-empty tuple of non-negative numbers; got "
                f"{self.strengths!r}."
            )
        if task != "classification" or multi_task:
            raise ValueError(
                f"{name} rates candidates by their class predictions on the target; it "
                "needs a classifier with a 1-D y. Set domain_adaptation to one method."
            )


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


# -- privacy ------------------------------------------------------------------------------


class DP(Method):
    """Differentially private training (DP-SGD, Abadi et al., CCS 2016)
    through Opacus: each optimizer step draws its batch by Poisson sampling
    (every training sample joins with probability ``batch_size / n``),
    clips each sample's gradient of the trainable parameters to
    ``max_grad_norm`` and adds Gaussian noise of standard deviation
    ``noise_multiplier * max_grad_norm`` to their sum. The noise multiplier
    is the smallest that Opacus's accountant (``get_noise_multiplier``)
    finds to spend at most ``epsilon`` at ``delta`` over the fit's steps
    (``max_epochs`` times ``ceil(n / batch_size)``); the fitted estimator
    reports what the accountant says was spent (``epsilon_spent_``,
    ``delta_``, ``noise_multiplier_``).

    The guarantee covers the fitted network (and what it predicts) with
    respect to the samples of ``X``: only the trainable parameters get
    private gradients. Frozen stages are a fixed function of each sample,
    so their activations may come from the activation cache
    (``freeze_depth="all"`` trains the head alone, by DP-SGD: the exact
    closed-form probe is not private and is not used). The number of steps
    is fixed in advance (no convergence rule, no validation split), and
    ``history_`` records no training loss, which is a statistic of the
    private samples. Inside ``GridSearchCV`` every candidate and fold is
    one fit on (parts of) the same data: the privacy spent by the search
    is the composition of each fit's ``epsilon_spent_``, and the chosen
    candidate is not itself private. Outside the guarantee, as in DP-SGD
    generally: a classifier's label set (``classes_``) and the mean and
    scale by which :class:`TransferRegressor` standardises its targets are
    taken from ``y`` as it is.

    Trainable BatchNorm layers mix the samples of a batch, which per-sample
    clipping cannot bound: a trainable stage with BatchNorm needs
    ``bn_mode="frozen"``, under which a private fit keeps every BatchNorm
    layer's statistics *and* affine parameters as pretrained.

    Parameters
    ----------
    epsilon : float, default=8.0
        The privacy budget of the fit.
    delta : float or None, default=None
        The probability with which the ``epsilon`` bound may fail; None is
        ``1 / (10 n)`` for ``n`` training samples (below ``1 / n``, as the
        guarantee needs).
    max_grad_norm : float, default=1.0
        The clipping norm of each sample's gradient.
    accountant : {"rdp", "prv"}, default="rdp"
        Opacus's accountant that calibrates the noise and reports
        ``epsilon_spent_``: Rényi DP ("rdp", Mironov 2017) or the privacy
        random variable accountant ("prv", Gopi et al. 2021, a tighter
        bound).
    batch_size : int or "auto", default="auto"
        The expected size of the Poisson-sampled batches (the sampling
        rate is ``batch_size / n``). The noise added to a step's averaged
        gradient shrinks as its batch grows, so DP-SGD wants larger batches
        than plain training. "auto": when only the head trains
        (``freeze_depth="all"``), a quarter of the training samples, at
        least the estimator's ``batch_size`` and at most 4,096 (a linear
        head's per-sample gradients are small); when trunk stages train,
        the estimator's ``batch_size`` (their per-sample gradients take
        memory in proportion to the batch times the trained parameters).
        The estimator's ``batch_size`` still sets the batches of
        prediction and feature passes.

    See Also
    --------
    PretrainedClassifier : Its ``privacy`` parameter takes this method.

    Examples
    --------
    >>> from sktransfer import DP, PretrainedClassifier
    >>> clf = PretrainedClassifier("mlp", privacy=DP(epsilon=3.0))
    >>> clf.get_params()["privacy__epsilon"]
    3.0
    """

    shorthand = opt.DP
    _parameter_constraints = {
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "delta": [None, Interval(Real, 0, 1, closed="neither")],
        "max_grad_norm": [Interval(Real, 0, None, closed="neither")],
        "accountant": [StrOptions(set(opt.ACCOUNTANTS))],
        "batch_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
    }

    def __init__(self, epsilon=8.0, delta=None, max_grad_norm=1.0, accountant="rdp",
                 batch_size="auto"):
        self.epsilon = epsilon
        self.delta = delta
        self.max_grad_norm = max_grad_norm
        self.accountant = accountant
        self.batch_size = batch_size

    def expected_batch(self, n_samples, batch_size, head_only):
        """The expected size of a step's Poisson-sampled batch.

        Parameters
        ----------
        n_samples : int
            Number of samples the fit trains on.
        batch_size : int
            The estimator's ``batch_size``.
        head_only : bool
            Whether only the head trains (the trunk is frozen).

        Returns
        -------
        expected_batch : int
            ``self.batch_size`` as given, or as "auto" resolves it (see the
            class's parameters), at most ``n_samples``.
        """
        size = self.batch_size
        if size == "auto":
            size = (max(int(batch_size), min(n_samples // 4, opt.PRIVATE_HEAD_MAX_BATCH))
                    if head_only else int(batch_size))
        return max(1, min(int(size), int(n_samples)))

    def delta_for(self, n_samples):
        """The delta of a fit on ``n_samples`` training samples.

        Parameters
        ----------
        n_samples : int
            Number of samples the fit trains on.

        Returns
        -------
        delta : float
            ``delta``, or for None ``1 / (10 * n_samples)``.
        """
        return float(self.delta) if self.delta is not None else 1.0 / (10 * n_samples)


# -- shorthands ---------------------------------------------------------------------------

_ALIGNMENTS = {cls.shorthand: cls for cls in (Coral, MMD, DANN, CDAN, MCC)}
_SHORTHANDS = {cls.shorthand: cls for cls in (PseudoLabel, FixMatch, *_ALIGNMENTS.values(),
                                              AutoAdaptation, L2SP, DP)}


def resolve_method(value):
    """The method object of a parameter value (the estimators' parameter
    constraints have checked its kind): a shorthand as its method with
    default settings; None, other plain strings ("ignore") and method
    objects as they are."""
    if isinstance(value, str) and value in _SHORTHANDS:
        return _SHORTHANDS[value]()
    return value
