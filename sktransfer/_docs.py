"""Docstring parts shared by the estimators, and the class decorator that
puts them in place.

The estimators' docstrings hold placeholder lines (``{parameters}``,
``{attributes}``, ``{fit_x}``, ``{predict_x}``) that
:func:`document_parameters` fills when the class is defined. The Parameters
section is assembled from the signature of ``__init__``, so it follows the
signature's order, and a parameter without an entry (or an entry without a
parameter) fails at import.
"""

from __future__ import annotations

import inspect
import re
import textwrap


def _entries(block: str) -> dict[str, str]:
    """Split a numpydoc parameter block into ``{name: entry}`` in block order.

    An entry is the ``name : type`` line and the indented description under
    it, dedented.
    """
    entries: dict[str, list[str]] = {}
    for line in textwrap.dedent(block).splitlines():
        if line and not line[0].isspace():
            name = line.split(" : ", 1)[0]
            if name in entries:
                raise ValueError(f"Parameter {name!r} is documented twice.")
            entries[name] = []
        entries[name].append(line)
    return {name: "\n".join(lines) for name, lines in entries.items()}


# Parameters of BaseTransferEstimator.__init__, shared by PretrainedClassifier
# and TransferRegressor. Written in signature order for the reader; the
# docstrings follow the signature whatever the order here.
PARAMETERS = _entries("""\
    backbone : str, ImageBackbone, MLP, TextEncoder, torch.nn.Module or fitted estimator, default="mobilenet_v2"
        :class:`ImageBackbone` for images
        (``ImageBackbone("resnet18", image_size=64)``; an image registry name
        from ``sktransfer.list_backbones()``, such as "resnet18", "resnet50",
        "mobilenet_v2", "mobilenet_v3_large", "efficientnet_b0",
        "convnext_tiny" or "vit_b_16", for its defaults: the weights' own
        input size); :class:`MLP` for tabular data
        (``MLP(hidden_layer_sizes=(128, 64), activation="relu")``, "mlp" for
        its defaults); :class:`TextEncoder` for texts
        (``TextEncoder("all-MiniLM-L6-v2", max_length=64, pooling="mean")``,
        a text encoder's name for its defaults); an ``nn.Module``; or a
        fitted :class:`PretrainedClassifier` /
        :class:`TransferRegressor` whose trunk (everything but its head) is
        transferred; the source estimator is never modified (to resize an
        image source's inputs: ``ImageBackbone(fitted, image_size=...)``). A
        torchvision classification model keeps its known stages and has its
        head replaced; any other module is used whole as the feature
        extractor and its top-level children with parameters are its stages
        (``ImageBackbone(module, image_size=...)`` sets its input size). A
        grid searches a backbone object's settings as
        ``backbone__<setting>``.
    weights : str, path or None, default="DEFAULT"
        None trains from random initialisation. "DEFAULT" or a torchvision
        weights name ("IMAGENET1K_V1") loads those weights, found offline in
        the torch hub cache or an installed provider package, else
        downloaded. For an ``nn.Module`` or fitted-estimator backbone
        "DEFAULT" keeps its own parameters. A path to a ``.pth``/``.pt``/
        ``.safetensors`` state dict, or a file written by ``save_weights``,
        is loaded without executing code. Keys or shapes that do not match
        raise.
    freeze_depth : int or "all", default=0
        Number of leading backbone stages that are frozen (0 fine-tunes
        everything); "all" trains only the new head. With the whole backbone
        frozen, a linear head (``head=()``), no augmentation and no
        ``unfreeze_at``, the head is an exact linear probe: fitted to
        convergence on the frozen features (multinomial logistic regression
        by full-batch L-BFGS on the fit's device, the objective of
        scikit-learn's ``LogisticRegression``; scikit-learn's ridge for the
        regressor), so
        ``lr``, ``optimizer``, ``max_epochs`` and the schedule do not apply
        (a grid over them is meaningless there) and ``probe_alpha`` is the
        parameter that matters.
    head : tuple of int, default=()
        Hidden layer sizes of the new head; () is a single linear layer.
    head_dropout : float, default=0.0
        Dropout before each layer of the new head (not used by the exact
        linear probe).
    head_init : {"random", "probe"}, default="random"
        How a new head starts when backbone stages train: "random" draws it,
        "probe" starts from the exact linear probe on the frozen pretrained
        features (LP-FT, Kumar et al., ICLR 2022), which distorts the
        pretrained features less. "probe" needs ``head=()``. A head kept
        from the source (``source_head``) starts as it is.
    probe_alpha : float or "auto", default="auto"
        L2 penalty of the exact linear probe on the frozen features:
        ``LogisticRegression(C=1 / probe_alpha)`` for the classifier,
        ``Ridge(alpha=probe_alpha)`` for the regressor. "auto" chooses it
        from 1e-3 to 1e3 (7 values) by internal cross-validation (stratified
        5-fold log-loss on at most 2,000 samples for the classifier,
        efficient leave-one-out for the regressor); the choice is
        ``probe_alpha_``.
    lr : float, "auto" or None, default=None
        Learning rate of the head (stages get it times their factor, see
        ``layer_decay``). None uses 1e-3, or 5e-5 for a text encoder
        (transformers are fine-tuned at rates 10-50x below a CNN's), and
        1e-2 for a private fit of the head alone (``privacy`` with
        ``freeze_depth="all"``: a few hundred noisy steps from zero). "auto"
        runs a learning-rate range test inside ``fit`` (so once per CV
        fold): the rate rises geometrically from
        1e-7 to 1 over at most 100 steps on a copy of the network and the
        chosen rate is the one at the minimum of the smoothed loss divided
        by 10; it is stored in ``lr_``.
    optimizer : {"adamw", "adam", "sgd"}, default="adamw"
        Optimizer; "sgd" uses momentum 0.9.
    weight_decay : float, default=1e-4
        Weight decay.
    max_epochs : int or "auto", default="auto"
        The most passes over the training data; training stops earlier at
        convergence (see ``tol``) and warns (``ConvergenceWarning``) when
        this budget ends it first. "auto" gives about 1,000 optimizer steps,
        from 10 to 200 epochs: 200 epochs for a 25-sample target, 10 for
        50,000 images at the default batch size.
    tol : float, default=1e-4
        Convergence tolerance, as in scikit-learn's MLP: training has
        converged when the training loss (with ``early_stopping``: the
        validation score) has not improved by at least ``tol`` for more than
        ``n_iter_no_change`` consecutive epochs. A stochastic fit plateaus at
        a noise floor set by its learning rate, so the rate is then taken
        linearly to zero over ``n_iter_no_change // 2`` more epochs (at least
        one) before the fit stops. A ``ConvergenceWarning`` also says when an
        epoch's training loss rose above twice the first batch's (the fit
        diverged: lower ``lr``); a NaN or infinite loss raises
        ``TrainingDivergedError``.
    batch_size : int, default=32
        The most samples per training and inference batch. Each training
        epoch is cut into as few batches as that allows, of even sizes (67
        samples at 32: 23, 22 and 22), so every sample trains in every
        epoch and no short last batch upsets BatchNorm's statistics (a batch
        of one it could not normalise at all).
    unfreeze_at : int, tuple of int or None, default=None
        Gradual unfreezing of the stages frozen by ``freeze_depth``: an int
        releases all of them after that many epochs (fastai's ``fine_tune``
        is ``freeze_depth="all", unfreeze_at=1``); a tuple releases one stage
        per entry, nearest the head first, the last entry the rest.
    layer_decay : float in (0, 1], default=1.0
        Discriminative learning rates: the stage next to the head trains at
        ``lr * layer_decay``, the one below at ``lr * layer_decay**2``, ...
        1.0 is off.
    backbone_lr_mult : float, default=1.0
        One factor on the learning rate of the whole backbone.
    regularization : L2SP, "l2sp" or None, default=None
        :class:`L2SP` pulls the transferred backbone toward its source
        weights with the penalty ``strength / 2 * ||w - w_source||^2`` (Li
        et al., 2018); the new head keeps plain weight decay and the backbone
        gets none. "l2sp" is ``L2SP()`` (strength 0.01).
    bn_mode : {"train", "frozen"}, default="train"
        "frozen" keeps every BatchNorm of the backbone in eval mode (running
        statistics fixed) while its weights train; "train" updates the
        statistics of the stages that train (frozen stages always keep
        theirs: they run in eval mode, dropout and stochastic depth off).
    lr_schedule : {"constant", "cosine", "onecycle"}, default="cosine"
        Learning-rate schedule over all training steps.
    warmup_epochs : float, default=1.0
        Linear warm-up length in epochs (for "onecycle": the rise phase,
        30 % of training when 0).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data (stratified for
        classifiers), stop when the validation score (accuracy, or R² for
        the regressor) has not improved by ``tol`` for more than
        ``n_iter_no_change`` epochs, and restore the best-scoring epoch's
        weights.
    validation_fraction : float, default=0.1
        Share of the training data held out for early stopping.
    n_iter_no_change : int, default=10
        Epochs without an improvement of ``tol`` after which training stops.
    augment : {"auto", "light", "standard"} or None, default="auto"
        Random transforms on training images only (torchvision.transforms.v2):
        "light" is a mild crop and small rotations (safe for digits and
        text), "standard" adds flips and colour jitter. "auto" is "light"
        when the whole backbone trains at some point (``freeze_depth=0`` or
        ``unfreeze_at`` set) and None when some stages stay frozen
        throughout, so that their activations can be cached (see
        ``cache``); it is None for tabular data and texts.
    unlabeled : PseudoLabel, FixMatch, "ignore", "pseudo_label", "fixmatch" or None, default=None
        What unlabeled samples do: scikit-learn's semi-supervised convention
        marks them with the label -1 in ``y`` for classifiers (``NaN`` rows
        for regressors). None: every label is a class, -1 included (a
        regressor refuses all-NaN rows unless ``domain_adaptation`` is set,
        as scikit-learn's regressors refuse NaN). "ignore": -1 samples are left
        out of training. :class:`PseudoLabel` (classifiers): the network's
        confident predictions on them become their targets.
        :class:`FixMatch` (classifiers, images): the prediction on a lightly
        augmented view becomes the target of a strongly augmented view
        (RandAugment and cutout) of the same image. "pseudo_label" and
        "fixmatch" are those methods with default settings; a grid searches
        their settings as ``unlabeled__threshold``. Except with None,
        ``score`` leaves -1 samples out, so ``cross_val_score`` and
        ``GridSearchCV`` score on the labeled samples of each fold. Each
        batch holds ``batch_size`` labeled samples and the method's
        ``ratio`` times as many unlabeled ones; an epoch is one pass over the
        labeled samples, and a fit with unlabeled samples in training runs
        its whole epoch budget (or stops on the validation score with
        ``early_stopping``): the training loss is not a convergence signal
        while pseudo-labels still change.
    domain_adaptation : Coral, MMD, DANN, CDAN, MCC, AutoAdaptation, str or None, \
default=None
        Unsupervised domain adaptation: the labeled samples are the source
        domain, the unlabeled ones (-1, or NaN rows) the target domain, and
        a loss adapts the network to the target: :class:`Coral` aligns the
        features' covariances (Deep CORAL), :class:`MMD` their kernel mean
        embeddings (Gaussian kernels of five bandwidths), :class:`DANN`
        trains a domain classifier behind a gradient reversal layer,
        :class:`CDAN` one that sees the features conditioned on the class
        predictions, and :class:`MCC` lowers the class confusion of the
        target's predictions (CDAN and MCC: classifiers with a 1-D ``y``).
        Each takes a ``strength`` that ramps up from 0 over training and a
        ``bottleneck``: with an image or text backbone the features aligned
        are those of a new 256-wide layer in front of the head, the
        trunk's output with the MLP. :class:`AutoAdaptation` ("auto")
        chooses the method and strength with an unsupervised scorer (one
        fit per candidate). The strings "coral", "mmd", "dann", "cdan",
        "mcc" and "auto" are the methods with default settings. Some stages
        must train (``freeze_depth`` below the number of stages). Combines
        with ``unlabeled``; a batch pairs labeled and unlabeled samples one
        to one unless ``unlabeled``'s method sets another ``ratio``.
    precision : {"auto", "32", "bf16", "16"}, default="auto"
        "auto" is bf16 autocast on CUDA devices that support it and fp32
        elsewhere; "16" uses float16 autocast with loss scaling.
    max_grad_norm : float or None, default=None
        Clip the gradient norm of the trainable parameters to this value.
    privacy : DP, "dp" or None, default=None
        Differentially private training: :class:`DP` ("dp": its defaults,
        epsilon 8) trains the trainable
        parameters by DP-SGD through Opacus (the ``privacy`` extra) with
        Poisson-sampled batches, each sample's gradient clipped to
        ``DP.max_grad_norm`` and Gaussian noise calibrated by Opacus's
        accountant to spend at most ``DP.epsilon`` at ``DP.delta`` over the
        fit's ``max_epochs`` (the fit runs them all: no convergence rule).
        ``freeze_depth="all"`` makes a private linear probe (DP-SGD on the
        head, over cached activations); a trainable stage with BatchNorm
        needs ``bn_mode="frozen"``. Refused with settings that would break
        or leak around the guarantee: ``unlabeled`` methods and
        ``domain_adaptation``, ``early_stopping``, ``lr="auto"``,
        ``head_init="probe"``, ``regularization``, ``max_grad_norm``,
        ``unfreeze_at``, ``precision`` "16" or "bf16" ("auto" is fp32
        here), a text encoder's embeddings (``freeze_depth=0``) and
        data-parallel fits. Inside ``GridSearchCV`` the privacy
        spent composes over candidates and folds; a grid searches
        ``privacy__epsilon``.
    source_head : {"auto", "keep", "new"}, default="auto"
        What happens to the head of a source that brings one (a fitted
        estimator or a ``save_weights`` file): "auto" keeps it when the
        target's classes are the source's classes (same shape), "keep" keeps
        it whenever the shapes match (an error otherwise), "new" always
        builds a new head.
    cache : bool, default=True
        Frozen-stage activation caching. When the first stages stay frozen
        for the whole fit and no augmentation applies, their output for each
        image is computed once and the rest of the network trains on it;
        the result is the same as without the cache (same seed, same
        predictions up to float rounding). Activations are kept in memory
        per image, keyed by architecture, frozen weights, cut, preprocessing
        and the image itself, so the candidates and folds of a grid search
        that share a frozen cut compute it once (budget:
        ``sktransfer.set_cache_budget``). The cache switches itself off when
        it cannot be exact (augmentation, ``unfreeze_at``, dropout or
        stochastic depth in the frozen stages, a cut the architecture cannot
        resume from); ``cache_info_`` says whether it was used and why not.
        The cache also reuses equal fits: an exact probe whose features,
        targets and penalty equal an earlier one's reuses its solution, and
        a trained fit with an int ``random_state`` whose settings, starting
        weights and data equal an earlier one's is restored instead of
        trained again (``cache_info_["restored"]``).
    cache_dir : str, path or None, default=None
        Also keep the cached activations as files in this directory (under
        ``sktransfer-activations/``), so that worker processes
        (``GridSearchCV(n_jobs=...)``) and later sessions share them. Files
        are plain numpy arrays, loaded without pickle and checked against a
        digest (a damaged one is deleted and recomputed, with a warning);
        the directory holds at most 10 GiB, least recently used first out
        (``set_cache_budget(disk_nbytes=...)``). Exact-probe solutions and
        trained fits are kept there too (``sktransfer-probes/``,
        ``sktransfer-fits/``: safetensors, loaded without pickle);
        ``clear_cache(cache_dir)``
        empties it. A directory that cannot be written is warned about once
        and the fit goes on with the in-memory cache.
    n_jobs : int or None, default=None
        Worker processes that decode images for the DataLoader: None
        decodes image files with up to 4 workers and reads arrays in the
        main process; 1 uses no workers; -1 one per CPU core.
    device : str, default="auto"
        "auto" uses CUDA when available, else the CPU; or "cpu", "cuda",
        "cuda:N". In a worker process of a parallel search
        (``GridSearchCV(n_jobs=...)``, a Dask worker) "auto" takes that
        worker's round-robin share of the visible GPUs (worker i uses
        ``cuda:{i % n_gpus}``), so workers do not all load ``cuda:0``; a Ray
        task given GPUs through Ray's resources (``num_gpus``) sees only
        those, and "auto" uses them. In a Dask worker, torch uses the
        worker's share of the cores (loky workers get theirs from joblib).
    random_state : int, RandomState instance or None, default=None
        Seeds the head's initialisation and the batch order; CPU fits with
        the same seed are identical.
    verbose : int, default=0
        0 is silent, 1 prints a line per epoch, 2 adds a progress bar.""")

# Fitted attributes shared by the estimators: the {attributes} placeholder.
ATTRIBUTES = """\
    history_ : list of dict
        One record per epoch: "epoch", "train_loss" (not with ``privacy``),
        "dur" (and
        "valid_loss", "valid_score" with early stopping; "unlabeled_loss"
        and "adaptation_loss", the unlabeled samples' terms before their
        weights, with ``unlabeled`` / ``domain_adaptation``); empty for an
        exact linear probe.
    n_iter_ : int
        Epochs trained (0 for an exact linear probe).
    lr_ : float
        The learning rate used (the range test's choice when ``lr="auto"``).
    best_epoch_ : int
        With early stopping: the epoch whose weights were restored.
    domain_adaptation_ : Alignment or None
        With ``domain_adaptation="auto"`` (:class:`AutoAdaptation`): the
        candidate its search chose and the final fit trained with (None: no
        adaptation, the unlabeled samples left out).
    adaptation_scores_ : list of dict
        With ``domain_adaptation="auto"``: each candidate
        (``"domain_adaptation"``) and its unsupervised score (``"score"``,
        higher is better), in the order they were tried.
    probe_alpha_ : float or ndarray
        The exact linear probe's penalty (when the head was probed, see
        ``freeze_depth`` and ``head_init``); one per task for a multi-task
        classifier (NaN for a task with a single class).
    weights_ : str or None
        The weights loaded: a torchvision weights name (what "DEFAULT"
        resolved to), a file's path, "DEFAULT" for a module's or a fitted
        source's own parameters, None for a random initialisation.
    n_stages_ : int
        Number of backbone stages ``freeze_depth`` counts.
    input_kind_ : {"images", "tabular"}
        What the estimator was fitted on.
    n_features_in_ : int
        Number of features (tabular data only).
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Column names of a pandas DataFrame X (tabular data only).
    image_size_ : int
        Side of the images the network was trained on (images only).
    device_ : str
        Device the network lives on.
    epsilon_spent_ : float
        With ``privacy``: the epsilon Opacus's accountant reports for the
        steps taken (at most ``DP.epsilon``; less when a deadline stopped
        the fit early).
    delta_ : float
        With ``privacy``: the delta of the guarantee.
    noise_multiplier_ : float
        With ``privacy``: the noise's standard deviation relative to the
        clipping norm.
    sample_rate_ : float
        With ``privacy``: the Poisson sampling rate of a batch,
        ``batch_size / n`` (at most 1).
    privacy_steps_ : int
        With ``privacy``: the noisy optimizer steps taken.
    cache_info_ : dict
        Whether frozen-stage activations were cached ("used"), at which
        module ("cut"), why not ("reason"), and how many images came
        "from_memory", "from_disk" or were "computed"; "restored": whether
        the fit was restored from an equal earlier one (see ``cache``)."""

# The X of fit: the {fit_x} placeholder.
FIT_X = """\
        X : images or array-like of shape (n_samples, n_features)
            Images: uint8 ``(N, H, W, C)``, grayscale ``(N, H, W)``, float
            ``(N, C, H, W)`` in [0, 1], a list of image file paths or PIL
            images. Tabular data (``backbone="mlp"``): a 2-D array or
            DataFrame of numbers."""

# The X of predict, predict_proba: the {predict_x} placeholder.
PREDICT_X = """\
        X : images or array-like of shape (n_samples, n_features)
            Inputs of the kind given to ``fit``: images, or tabular data
            with the same columns."""


_FRAGMENTS = {"attributes": ATTRIBUTES, "fit_x": FIT_X, "predict_x": PREDICT_X}
_PLACEHOLDER = re.compile(r"^(?P<indent>[ ]*)\{(?P<name>\w+)\}[ ]*$", re.MULTILINE)


def _parameter_entries(cls, extra: dict[str, str]) -> list[str]:
    """Entries of ``cls.__init__``'s parameters in signature order; raises if
    the entries and the signature name different parameters."""
    overlap = sorted(set(extra) & set(PARAMETERS))
    if overlap:
        raise TypeError(f"{cls.__name__}: extra documents the shared parameters {overlap}; "
                        "edit their entries in sktransfer/_docs.py instead.")
    entries = {**PARAMETERS, **{name: textwrap.dedent(text).strip("\n")
                                for name, text in extra.items()}}
    for name, entry in entries.items():
        if entry.split(" : ", 1)[0] != name:
            raise TypeError(f"{cls.__name__}: the entry for {name!r} starts with "
                            f"{entry.splitlines()[0]!r}; it must start with '{name} : '.")
    names = list(inspect.signature(cls.__init__).parameters)[1:]  # without self
    undocumented = [name for name in names if name not in entries]
    unknown = [name for name in entries if name not in names]
    if undocumented or unknown:
        raise TypeError(
            f"The docstring of {cls.__name__} does not match {cls.__name__}.__init__: "
            f"parameters without an entry: {undocumented}; entries without a parameter: "
            f"{unknown}. Add or remove entries in sktransfer/_docs.py (shared) or in the "
            "extra= of @document_parameters (this class's own)."
        )
    return [entries[name] for name in names]


def _fill(doc: str, fragments: dict[str, str], owner: str) -> str:
    """Replace each placeholder line of ``doc`` by its fragment, indented like
    the placeholder."""
    def replace(match):
        name = match.group("name")
        if name not in fragments:
            raise TypeError(f"{owner}: unknown docstring placeholder {{{name}}}; "
                            f"known: {sorted(fragments)}.")
        return textwrap.indent(textwrap.dedent(fragments[name]), match.group("indent"))

    return _PLACEHOLDER.sub(replace, doc)


def document_parameters(extra=None):
    """Class decorator that completes the docstrings of an estimator.

    In the class docstring, the line ``{parameters}`` becomes the entries of
    ``cls.__init__``'s parameters in signature order, taken from
    :data:`PARAMETERS` and ``extra``; ``{attributes}`` becomes
    :data:`ATTRIBUTES`. In the docstrings of the methods defined in the class
    body, ``{fit_x}`` and ``{predict_x}`` become :data:`FIT_X` and
    :data:`PREDICT_X`. Each fragment is indented like its placeholder line.

    Parameters
    ----------
    extra : dict of str to str or None, default=None
        Entries of the parameters that only this class has, by name; each
        is a ``name : type, default=...`` line followed by its description
        indented by four spaces.

    Returns
    -------
    decorator : callable
        Takes the class and returns it with its docstrings completed.

    Raises
    ------
    TypeError
        When a parameter of ``__init__`` has no entry, an entry names no
        parameter of ``__init__``, ``extra`` repeats a shared entry, the
        class docstring has no ``{parameters}`` line, or a placeholder is
        unknown.
    """
    def decorate(cls):
        parameters = "\n".join(_parameter_entries(cls, dict(extra or {})))
        if cls.__doc__ is None:  # python -OO strips docstrings
            return cls
        if not re.search(r"^[ ]*\{parameters\}[ ]*$", cls.__doc__, re.MULTILINE):
            raise TypeError(f"The docstring of {cls.__name__} has no {{parameters}} line.")
        fragments = {**_FRAGMENTS, "parameters": parameters}
        cls.__doc__ = _fill(cls.__doc__, fragments, cls.__name__)
        for name, member in vars(cls).items():
            if inspect.isfunction(member) and member.__doc__:
                member.__doc__ = _fill(member.__doc__, _FRAGMENTS, f"{cls.__name__}.{name}")
        return cls

    return decorate
