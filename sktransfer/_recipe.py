"""The recipe of a fit: every estimator parameter resolved and checked once,
before any weights load or any data pass, into one frozen value that the
training code reads where it uses each setting.

``Recipe.from_estimator`` is strict: each parameter of the estimator is
read into one group here, and a parameter no group reads raises, so an
option cannot be silently dropped on its way to training. It owns every
default that depends on other settings (augmentation, the epoch budget, the
default learning rate, the unlabeled ratio, whether the exact linear probe
applies) and every check of parameter combinations. This module is
torch-free: values that depend on the loaded network or the device are
filled in by the engine (``Recipe.resolved``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from numbers import Integral

import numpy as np
from sklearn.utils import check_random_state

from ._backbone import (
    MLP,
    Backbone,
    ImageBackbone,
    TextEncoder,
    backbone_object,
    declared_input_kind,
)
from ._canonical import canonical
from ._methods import DP, Alignment, AutoAdaptation, L2SP, SemiSupervised, resolve_method
from . import _options as opt
from ._options import IMAGES, TABULAR, TEXT
from ._text import refuse_texts_for_table

_UNSET = object()  # Recipe.from_estimator's adaptation: not chosen by a search

# lr=None: the rate for the input kind (transformer encoders are fine-tuned
# at rates 10-50x below a CNN's or an MLP's)
DEFAULT_LR = {IMAGES: 1e-3, TABULAR: 1e-3, TEXT: 5e-5}
# lr=None for a private fit of the head alone (DP-SGD from a zero-mean start,
# a few hundred noisy steps: a CNN's rate underfits in that many)
PRIVATE_HEAD_LR = 1e-2

# max_epochs="auto": about this many optimizer steps, within these bounds
STEP_BUDGET = 1000
MIN_EPOCHS, MAX_EPOCHS = 10, 200


def input_kind_of(backbone, X, source=None) -> str:
    """What a fit takes as input: the fitted ``source`` estimator's kind,
    the kind a backbone value fixes, or for an ``nn.Module`` a table of
    features (a 2-D ``X``) as tabular data and anything else as images."""
    if source is not None:
        return source.input_kind_
    kind = declared_input_kind(backbone)
    if kind is None:
        kind = TABULAR if len(getattr(X, "shape", ())) == 2 else IMAGES
    if kind == TABULAR:
        refuse_texts_for_table(X, backbone)
    return kind


@dataclass(frozen=True)
class BackboneGroup:
    """Where the trunk comes from: ``source`` is a registry name ("mlp" or
    a text encoder's included), an ``nn.Module`` or a fitted estimator's
    exported trunk; ``image_size``, ``mlp`` and ``text`` are the settings of
    the ``ImageBackbone``, ``MLP`` or ``TextEncoder`` given."""

    source: object
    weights: object
    source_head: str
    image_size: int | None = None
    mlp: MLP | None = None
    text: TextEncoder | None = None


@dataclass(frozen=True)
class HeadGroup:
    hidden: tuple
    dropout: float
    init: str  # "random", or "probe" (LP-FT)
    probe_alpha: object  # "auto" or a float


@dataclass(frozen=True)
class FreezingGroup:
    depth: object  # int or "all"
    unfreeze_at: object  # None, an int or a tuple of ints
    bn_mode: str

    @property
    def frozen_throughout(self) -> bool:
        """Whether the frozen stages stay frozen for the whole fit."""
        return self.unfreeze_at is None

    @property
    def head_alone(self) -> bool:
        """Whether only the head trains (freeze_depth="all")."""
        return self.depth == "all"


@dataclass(frozen=True)
class OptimisationGroup:
    lr: float  # the rate training starts from
    find_lr: bool  # lr="auto": the range test replaces ``lr``
    optimizer: str
    weight_decay: float
    layer_decay: float
    backbone_lr_mult: float
    regularization: L2SP | None
    max_grad_norm: float | None


@dataclass(frozen=True)
class ScheduleGroup:
    lr_schedule: str
    warmup_epochs: float
    max_epochs: object  # int, or "auto" until ``Recipe.resolved``
    batch_size: int

    def epochs(self, n_train: int, batch_size: int | None = None) -> int:
        """``max_epochs``, or for "auto" enough epochs for about
        ``STEP_BUDGET`` optimizer steps of ``batch_size`` (default: this
        group's), at least 10 and at most 200 (scikit-learn MLP's
        ``max_iter``): a 25-sample target gets 200 steps of its data, 50,000
        images 10 epochs."""
        if self.max_epochs != "auto":
            return int(self.max_epochs)
        return auto_epochs(n_train, self.batch_size if batch_size is None else batch_size)


def auto_epochs(n_train: int, batch_size: int) -> int:
    """The "auto" epoch budget: about ``STEP_BUDGET`` optimizer steps, at
    least ``MIN_EPOCHS`` and at most ``MAX_EPOCHS``."""
    steps_per_epoch = max(1, math.ceil(n_train / batch_size))
    return min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(STEP_BUDGET / steps_per_epoch)))


@dataclass(frozen=True)
class StoppingGroup:
    tol: float
    n_iter_no_change: int
    early_stopping: bool
    validation_fraction: float


@dataclass(frozen=True)
class DistillationGroup:
    """Knowledge distillation (``DistilledClassifier``): the targets are a
    teacher's probabilities at ``temperature`` beside the hard labels, and
    ``alpha`` weighs the soft term (``sktransfer._nn.losses.distillation_loss``)."""

    temperature: float
    alpha: float


@dataclass(frozen=True)
class MethodsGroup:
    """Augmentation, what unlabeled samples do, and distillation."""

    augment: str | None  # resolved: None, "light" or "standard"
    unlabeled: object  # None, "ignore" or a SemiSupervised method
    adaptation: Alignment | None
    trains_unlabeled: bool  # unlabeled samples are in y and take part in training
    # the width of the adaptation's bottleneck in front of the head: None
    # without one, and None whenever the unlabeled samples do not train (the
    # fit is then the plain supervised one)
    bottleneck: int | None = None
    # every sample has a target (the teacher's): unlabeled ones train as the others
    distillation: DistillationGroup | None = None

    @property
    def semi_supervised(self) -> SemiSupervised | None:
        return self.unlabeled if isinstance(self.unlabeled, SemiSupervised) else None

    @property
    def marks_unlabeled(self) -> bool:
        """Whether -1 marks a classifier's unlabeled samples (else it is a class)."""
        return self.unlabeled is not None or self.adaptation is not None

    @property
    def uses_unlabeled(self) -> bool:
        """Whether unlabeled samples would train (else they are left out)."""
        return self.semi_supervised is not None or self.adaptation is not None

    @property
    def two_views(self) -> bool:
        method = self.semi_supervised
        return self.trains_unlabeled and method is not None and method.two_views

    @property
    def ratio(self) -> int:
        """Unlabeled samples per labeled one in a training batch."""
        method = self.semi_supervised
        return int(method.ratio) if method is not None else 1


@dataclass(frozen=True)
class RuntimeGroup:
    precision: str
    cache: bool
    cache_dir: object
    n_jobs: object
    device: str
    seed: int
    verbose: int
    # random_state is an int: a fit with equal settings and data trains an
    # equal network, so a fit seen before may be restored (``Recipe.fit_key``)
    reproducible: bool = False


@dataclass(frozen=True)
class Recipe:
    """One fit's resolved configuration (see the module docstring)."""

    task: str  # "classification" or "regression"
    loss: str  # "cross_entropy" or a regression loss
    input_kind: str
    backbone: BackboneGroup
    head: HeadGroup
    freezing: FreezingGroup
    optimisation: OptimisationGroup
    schedule: ScheduleGroup
    stopping: StoppingGroup
    methods: MethodsGroup
    runtime: RuntimeGroup
    privacy: DP | None = None  # DP-SGD (``sktransfer._nn.privacy``), or None

    @classmethod
    def from_estimator(cls, estimator, *, input_kind: str, multi_task: bool = False,
                       unlabeled_samples: bool = False, source=None,
                       adaptation=_UNSET, distillation=None) -> "Recipe":
        """The recipe of ``estimator``'s parameters for a fit on ``input_kind``
        data (``multi_task``: a 2-D classification ``y``; ``unlabeled_samples``:
        ``y`` marks some samples unlabeled; ``source``: the trunk exported by
        a fitted estimator given as backbone; ``adaptation``: the candidate
        that ``domain_adaptation=AutoAdaptation()`` chose, an ``Alignment``
        or None; ``distillation``: a ``DistillationGroup`` when the targets
        are a teacher's). Raises ``ValueError`` for an invalid combination of
        parameters and ``TypeError`` for a parameter that no group reads."""
        params = _Params(estimator)
        task = estimator._task
        backbone = _backbone_group(params, source)
        random_state = params.take("random_state")
        freezing = _freezing_group(params)
        head = HeadGroup(tuple(params.take("head")), params.take("head_dropout"),
                         params.take("head_init"), params.take("probe_alpha"))
        methods = _methods_group(params, task, input_kind, freezing, multi_task,
                                 unlabeled_samples, adaptation, head)
        if distillation is not None:
            methods = dataclasses.replace(methods, distillation=distillation)
        privacy = _privacy(params, task, input_kind)
        precision = params.take("precision")
        if privacy is not None and precision == "auto":
            precision = "32"  # per-sample gradients in full precision
        recipe = cls(
            task=task, loss=params.take("loss") if task == "regression" else "cross_entropy",
            input_kind=input_kind, backbone=backbone,
            head=head, freezing=freezing,
            optimisation=_optimisation_group(
                params, input_kind, private_head=privacy is not None and freezing.head_alone),
            schedule=ScheduleGroup(params.take("lr_schedule"), params.take("warmup_epochs"),
                                   params.take("max_epochs"), params.take("batch_size")),
            stopping=StoppingGroup(params.take("tol"), params.take("n_iter_no_change"),
                                   params.take("early_stopping"),
                                   params.take("validation_fraction")),
            methods=methods,
            privacy=privacy,
            runtime=RuntimeGroup(precision, params.take("cache"),
                                 params.take("cache_dir"), params.take("n_jobs"),
                                 params.take("device"), _seed(random_state),
                                 params.take("verbose"), _reproducible(random_state)),
        )
        params.check_all_read()
        _check_combinations(recipe)
        if privacy is not None:
            _check_privacy(recipe, params.values["domain_adaptation"])
        return recipe

    def training_batch(self, n_train: int) -> int:
        """The batch a training step draws on ``n_train`` samples: a private
        fit's expected Poisson batch (``DP.expected_batch``), else
        ``batch_size``."""
        if self.privacy is None:
            return self.schedule.batch_size
        return self.privacy.expected_batch(n_train, self.schedule.batch_size,
                                           head_only=self.freezing.head_alone)

    # -- decisions that need the loaded network ---------------------------------------

    def check_network(self, n_stages: int, frozen: list) -> None:
        """The checks that need the loaded trunk, run before any activation
        is computed."""
        if (self.methods.trains_unlabeled and self.methods.adaptation is not None
                and len(frozen) == n_stages and self.freezing.frozen_throughout):
            raise _all_frozen_adaptation(self)

    def exact_probe(self, n_stages: int, frozen: list, head_from_source: bool) -> bool:
        """Whether the head is solved exactly: the whole trunk frozen
        throughout, a new linear head, the same inputs every epoch and only
        labeled samples in training (a convex problem), without privacy (a
        private probe trains the head by DP-SGD)."""
        return (self.privacy is None and len(frozen) == n_stages and self.head.hidden == ()
                and self.freezing.frozen_throughout and self.methods.augment is None
                and not head_from_source and not self.methods.trains_unlabeled
                and self.methods.distillation is None)

    def resolved(self, **values) -> "Recipe":
        """This recipe with values known only during the fit: ``device``,
        ``precision``, ``seed`` (runtime), ``lr``, ``max_epochs``."""
        groups = {"runtime": ("device", "precision", "seed"), "optimisation": ("lr",),
                  "schedule": ("max_epochs",)}
        changes = {}
        for group, names in groups.items():
            mine = {name: values.pop(name) for name in names if name in values}
            if mine:
                changes[group] = dataclasses.replace(getattr(self, group), **mine)
        if values:
            raise TypeError(f"Recipe.resolved got unknown values {sorted(values)}.")
        return dataclasses.replace(self, **changes)

    def probe_key(self) -> tuple:
        """What the exact probe's solution depends on besides its features
        and targets: equal keys on equal data give the same head (the seed
        only draws the folds that choose ``probe_alpha="auto"``)."""
        alpha = self.head.probe_alpha
        return (self.task, self.loss, alpha, self.runtime.seed if alpha == "auto" else None)

    def fit_key(self) -> tuple | None:
        """What a gradient-trained fit depends on besides its starting network
        and its data, as plain values (``canonical``): every setting that
        the fit reads, the seed, device and precision included (not where or
        whether to cache, what to print, ``probe_alpha`` without LP-FT,
        ``validation_fraction`` without early stopping, nor the unlabeled
        methods when no unlabeled sample trains). None when the fit
        cannot be repeated (``random_state`` is not an int) or a setting has
        no stable description (e.g. a lambda)."""
        if not self.runtime.reproducible:
            return None
        unread = dict(
            runtime=dataclasses.replace(self.runtime, cache=None, cache_dir=None, verbose=None),
            head=self.head if self.head.init == "probe" else
            dataclasses.replace(self.head, probe_alpha=None),
            stopping=self.stopping if self.stopping.early_stopping else
            dataclasses.replace(self.stopping, validation_fraction=None),
            methods=self.methods if self.methods.trains_unlabeled else
            dataclasses.replace(self.methods, unlabeled=None, adaptation=None))
        try:
            return canonical(dataclasses.replace(self, **unread))
        except TypeError:
            return None


def _reproducible(random_state) -> bool:
    return isinstance(random_state, Integral) and not isinstance(random_state, bool)


class _Params:
    """An estimator's parameters, each taken once by the group that reads it."""

    def __init__(self, estimator):
        self.owner = type(estimator).__name__
        self.values = estimator.get_params(deep=False)
        self.read: set[str] = set()

    def take(self, name: str):
        self.read.add(name)
        return self.values[name]

    def check_all_read(self) -> None:
        unread = sorted(set(self.values) - self.read)
        if unread:
            raise TypeError(
                f"{self.owner} parameters {unread} are read by no part of the recipe; "
                "wire each into a group of sktransfer._recipe.Recipe (or drop it)."
            )


def _seed(random_state) -> int:
    """The fit's seed, drawn from ``random_state``."""
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def _backbone_group(params: _Params, source) -> BackboneGroup:
    value = backbone_object(params.take("backbone"))
    settings = {}
    if isinstance(value, Backbone):
        value.check()
        settings = {"image_size": value.image_size} if isinstance(value, ImageBackbone) else \
            {"mlp": value} if isinstance(value, MLP) else {"text": value}
        value = opt.MLP if isinstance(value, MLP) else value.name
    return BackboneGroup(source if source is not None else value, params.take("weights"),
                         params.take("source_head"), **settings)


def _freezing_group(params: _Params) -> FreezingGroup:
    depth, unfreeze_at = params.take("freeze_depth"), params.take("unfreeze_at")
    if isinstance(unfreeze_at, (tuple, list)):
        epochs = list(unfreeze_at)
        if (not epochs or not all(isinstance(e, Integral) and e >= 0 for e in epochs)
                or epochs != sorted(epochs)):
            raise ValueError(
                "unfreeze_at must be None, an int, or a non-empty increasing tuple of "
                f"non-negative ints (epochs); got {unfreeze_at!r}."
            )
        unfreeze_at = tuple(int(e) for e in epochs)
    if unfreeze_at is not None and depth == 0:
        raise ValueError(
            "unfreeze_at releases frozen stages, but freeze_depth=0 freezes none; set "
            "freeze_depth (e.g. 'all') or unfreeze_at=None."
        )
    return FreezingGroup(depth, unfreeze_at, params.take("bn_mode"))


def _methods_group(params: _Params, task: str, input_kind: str, freezing: FreezingGroup,
                   multi_task: bool, unlabeled_samples: bool, chosen,
                   head: HeadGroup) -> MethodsGroup:
    unlabeled = resolve_method(params.take("unlabeled"))
    adaptation = resolve_method(params.take("domain_adaptation"))
    for name, method in (("unlabeled", unlabeled), ("domain_adaptation", adaptation)):
        if hasattr(method, "check"):
            method.check(parameter=name, task=task, input_kind=input_kind,
                         multi_task=multi_task)
    if isinstance(adaptation, AutoAdaptation) or chosen is not _UNSET:
        adaptation = _chosen_adaptation(adaptation, chosen)
        if adaptation is not None:
            adaptation.check(parameter="domain_adaptation", task=task, input_kind=input_kind,
                             multi_task=multi_task)
    augment = params.take("augment")
    if augment not in (None, "auto") and input_kind != IMAGES:
        raise ValueError(
            f"augment={augment!r} applies to images only; use augment=None for "
            f"{input_kind} data."
        )
    trains = unlabeled_samples and (isinstance(unlabeled, SemiSupervised)
                                    or adaptation is not None)
    if augment == "auto":
        # light augmentation when the whole backbone trains at some point; none
        # when some stages stay frozen throughout, so their activations can be
        # cached, and none for tabular data or texts
        trains_all = freezing.depth == 0 or not freezing.frozen_throughout
        augment = "light" if input_kind == IMAGES and trains_all else None
    if trains and isinstance(unlabeled, SemiSupervised) and unlabeled.two_views:
        augment = augment or "light"  # FixMatch's weak view
    bottleneck = _bottleneck(adaptation, input_kind, head) if trains else None
    return MethodsGroup(augment, unlabeled, adaptation, trains, bottleneck)


def _chosen_adaptation(adaptation, chosen):
    """The adaptation a fit trains with: the parameter's method, or for
    ``AutoAdaptation`` the candidate its search chose (which the estimator
    passes); a chosen candidate without a search is a wiring error."""
    if isinstance(adaptation, AutoAdaptation):
        if chosen is _UNSET:
            raise TypeError(
                "domain_adaptation=AutoAdaptation() is resolved by the estimator's search; "
                "pass the chosen candidate to Recipe.from_estimator(adaptation=...)."
            )
        return resolve_method(chosen)
    if chosen is not _UNSET:
        raise TypeError(
            f"Recipe.from_estimator got adaptation={chosen!r}, but domain_adaptation is "
            f"{adaptation!r}, not AutoAdaptation()."
        )
    return adaptation


def _bottleneck(adaptation, input_kind: str, head: HeadGroup):
    """The width of the adaptation's bottleneck: its ``bottleneck_width``,
    except that "auto" adds none in front of a probed linear head (LP-FT
    solves a linear head on the trunk's features); an explicit width there
    is refused."""
    if adaptation is None:
        return None
    if head.init == "probe":
        if adaptation.bottleneck not in ("auto", None):
            raise ValueError(
                f"domain_adaptation={adaptation!r} puts a bottleneck layer in front of the "
                "head, but head_init='probe' solves a linear head on the trunk's features; "
                "use bottleneck=None (or 'auto') in the method, or head_init='random'."
            )
        return None
    return adaptation.bottleneck_width(input_kind)


def _optimisation_group(params: _Params, input_kind: str,
                        private_head: bool) -> OptimisationGroup:
    """``private_head``: a private fit trains the head alone (its own rate
    for lr=None, ``PRIVATE_HEAD_LR``)."""
    lr = params.take("lr")
    regularization = resolve_method(params.take("regularization"))
    if regularization is not None:
        regularization.check(parameter="regularization", task="", input_kind=input_kind,
                             multi_task=False)
    default = PRIVATE_HEAD_LR if private_head else DEFAULT_LR[input_kind]
    rate = default if lr is None or lr == "auto" else float(lr)
    return OptimisationGroup(rate, lr == "auto", params.take("optimizer"),
                             params.take("weight_decay"), params.take("layer_decay"),
                             params.take("backbone_lr_mult"), regularization,
                             params.take("max_grad_norm"))


def _all_frozen_adaptation(recipe: Recipe) -> ValueError:
    return ValueError(
        f"domain_adaptation={recipe.methods.adaptation!r} aligns features the trunk learns, "
        f"but freeze_depth={recipe.freezing.depth!r} freezes every stage; freeze fewer "
        "(e.g. freeze_depth=0) or set unfreeze_at."
    )


def _check_combinations(recipe: Recipe) -> None:
    """The checks of parameter combinations that need no network."""
    head = recipe.head
    if recipe.methods.distillation is not None:
        _check_distillation(recipe)
    if head.init == "probe" and head.hidden != ():
        raise ValueError(
            "head_init='probe' starts fine-tuning from a linear probe, which needs a linear "
            f"head; got head={head.hidden!r}. Use head=() or head_init='random'."
        )
    if (recipe.methods.trains_unlabeled and recipe.methods.adaptation is not None
            and recipe.freezing.depth == "all" and recipe.freezing.frozen_throughout):
        raise _all_frozen_adaptation(recipe)


def _privacy(params: _Params, task: str, input_kind: str) -> DP | None:
    privacy = resolve_method(params.take("privacy"))
    if privacy is not None:
        privacy.check(parameter="privacy", task=task, input_kind=input_kind)
    return privacy


def _privacy_refusals(recipe: Recipe, domain_adaptation) -> list:
    """``(setting, fix, why)`` of each setting that a private fit refuses."""
    optimisation, methods = recipe.optimisation, recipe.methods
    return [
        (f"unlabeled={methods.unlabeled!r}", "unlabeled='ignore' or None",
         "its pseudo-labels are targets computed from the private samples outside the "
         "per-sample clipping") if methods.semi_supervised is not None else None,
        (f"domain_adaptation={domain_adaptation!r}", "domain_adaptation=None",
         "its loss couples samples of a batch, so one sample's gradient is not its own")
        if domain_adaptation is not None else None,
        ("early_stopping=True", "early_stopping=False",
         "choosing when to stop on held-out private samples spends privacy no accountant "
         "counts") if recipe.stopping.early_stopping else None,
        ("lr='auto'", "a fixed lr (e.g. lr=1e-2)",
         "the range test trains on the private samples without noise")
        if optimisation.find_lr else None,
        ("head_init='probe'", "head_init='random'",
         "the exact probe solves the head on the private samples without noise")
        if recipe.head.init == "probe" else None,
        (f"regularization={optimisation.regularization!r}", "regularization=None",
         "its penalty's gradient would bypass the noisy per-sample gradients")
        if optimisation.regularization is not None else None,
        (f"max_grad_norm={optimisation.max_grad_norm!r}",
         "max_grad_norm=None and privacy=DP(max_grad_norm=...)",
         "a private fit clips each sample's gradient instead")
        if optimisation.max_grad_norm is not None else None,
        (f"unfreeze_at={recipe.freezing.unfreeze_at!r}", "unfreeze_at=None",
         "stages released during the fit would train without per-sample gradients")
        if recipe.freezing.unfreeze_at is not None else None,
        (f"precision={recipe.runtime.precision!r}", "precision='32' (or 'auto')",
         "per-sample clipping and noise are computed in full precision")
        if recipe.runtime.precision in ("16", "bf16") else None,
        ("freeze_depth=0 with a text encoder", "freeze_depth=1 or more",
         "its embedding stage adds position embeddings that every sample shares, whose "
         "per-sample gradients Opacus cannot compute")
        if recipe.input_kind == TEXT and recipe.freezing.depth == 0 else None,
        ("distillation", "privacy=None in the student",
         "the teacher's soft targets come from a model fitted on the same samples "
         "without privacy") if methods.distillation is not None else None,
    ]


def _check_privacy(recipe: Recipe, domain_adaptation) -> None:
    """The settings a private fit refuses: those that let the private
    samples reach the network around DP-SGD's clipped, noisy gradients."""
    for refused in _privacy_refusals(recipe, domain_adaptation):
        if refused is not None:
            setting, fix, why = refused
            raise ValueError(
                f"privacy={recipe.privacy!r} cannot be combined with {setting}: {why}. "
                f"Set {fix}, or privacy=None."
            )


def _check_distillation(recipe: Recipe) -> None:
    """A distilled student trains every sample toward the teacher's soft
    targets: the settings that read hard labels alone, or that give
    unlabeled samples targets of their own, do not apply."""
    methods = recipe.methods
    refused = [
        ("unlabeled", methods.unlabeled, "None"),
        ("domain_adaptation", methods.adaptation, "None"),
        ("head_init", "probe" if recipe.head.init == "probe" else None, "'random'"),
        ("early_stopping", True if recipe.stopping.early_stopping else None, "False"),
    ]
    for name, value, allowed in refused:
        if value is not None:
            raise ValueError(
                f"The student's {name}={value!r} does not apply to distillation: every "
                "sample trains toward the teacher's soft targets (the unlabeled ones too), "
                f"with the hard labels where there are some. Set {name}={allowed} in the "
                "student."
            )
