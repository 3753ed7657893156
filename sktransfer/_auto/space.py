"""What an automatic search tries: the candidates, how each is built for
images, texts and tables, and the baselines that involve no transfer.

A candidate is an unfitted estimator plus what the leaderboard says about
it. Candidates whose number of epochs is their resource (networks trained by
gradient steps) go through successive halving; the others (exact probes,
probes at a cut, scikit-learn baselines) are fitted once. Torch-free.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from sklearn.base import clone, is_classifier
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from .._backbone import MLP, ImageBackbone, TextEncoder, network_of
from .._base import BaseTransferEstimator
from .._options import IMAGES, TABULAR, TEXT
from .._recipe import DEFAULT_LR

INPUT_KINDS = (IMAGES, TEXT, TABULAR)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
DEFAULT_TEXT_ENCODER = "all-MiniLM-L6-v2"

# the recipes, as the leaderboard names them
EXACT_PROBE, PROBE_AT_CUT = "exact probe", "probe at a cut"
FINE_TUNE, FINE_TUNE_TOP, LP_FT = "fine-tune", "fine-tune upper stages", "LP-FT"
SCRATCH, BASELINE, GIVEN = "from scratch", "baseline", "given"


@dataclass
class Candidate:
    """One model the search may choose. ``params`` are the estimator's
    parameters that make this candidate (its part of ``best_params_``);
    ``epochs``: the number of training epochs is its resource."""

    name: str
    estimator: object
    recipe: str
    backbone: str = ""
    cut: str = ""
    transfer: bool = True
    epochs: bool = False
    params: dict = field(default_factory=dict)
    # the estimators' own default recipe on this network (full fine-tuning at
    # the default rate)
    default: bool = False

    @property
    def lr(self):
        return self.params.get("lr")

    @property
    def full_budget(self) -> bool:
        """Trained to its whole epoch budget early in the search, not judged
        at a few epochs: the default recipe (what a user would otherwise
        fit) and a network from scratch (the baseline that shows negative
        transfer, and slower to start than a pretrained one)."""
        return self.default or self.recipe == SCRATCH


@dataclass(frozen=True)
class Settings:
    """What every generated candidate shares."""

    task: str  # "classification" or "regression"
    input_kind: str
    image_size: int | None
    cache_dir: object
    device: str
    seed: int
    verbose: int = 0  # 2 and above: each network fit shows its progress bar
    n_samples: int | None = None  # the training set's size, where a candidate's settings follow it

    @property
    def classification(self) -> bool:
        return self.task == "classification"


# -- the kind of input ----------------------------------------------------------------------


def infer_input_kind(X) -> str:
    """"images", "text" or "tabular" from the form of ``X``: a 2-D array or
    a DataFrame is a table (unless it is one column of strings: texts), a
    3-D or 4-D numeric array images, a sequence of strings texts unless they
    name image files, PIL images images."""
    if sparse.issparse(X):
        return TABULAR  # refused there, with scikit-learn's message
    shape = getattr(X, "shape", None)
    if hasattr(X, "iloc") and shape is not None and len(shape) == 2:
        return TEXT if shape[1] == 1 and _all_strings(X.iloc[:, 0].tolist()[:20]) else TABULAR
    if not isinstance(X, np.ndarray) and hasattr(X, "__array__"):
        X = np.asarray(X)  # a Series, an array-like
    if isinstance(X, np.ndarray) and X.ndim == 2:
        one_text_column = X.shape[1] == 1 and _all_strings(X[:20, 0].tolist())
        return TEXT if one_text_column else TABULAR
    if isinstance(X, np.ndarray) and X.dtype.kind in "biuf":
        if X.ndim in (3, 4):
            return IMAGES
        raise ValueError(f"X has {X.ndim} dimensions: pass a 2-D table, 3-D or 4-D images, "
                         "a list of image files or a list of texts.")
    items = X.tolist() if hasattr(X, "tolist") else list(X)
    if not items:
        raise ValueError("X is empty.")
    first = items[0]
    if type(first).__module__.startswith("PIL"):
        return IMAGES
    if isinstance(first, (str, os.PathLike)):
        return IMAGES if _names_image_file(first) else TEXT
    if isinstance(first, bytes):
        return TEXT
    array = np.asarray(items)
    return infer_input_kind(array) if array.dtype.kind in "biuf" else TEXT


def _all_strings(items) -> bool:
    return bool(items) and all(isinstance(item, str) for item in items)


def _names_image_file(item) -> bool:
    path = os.fspath(item)
    return path.lower().endswith(IMAGE_SUFFIXES) and os.path.isfile(path)


# -- estimators ----------------------------------------------------------------------------


def _network_estimator(settings: Settings, **params):
    from .._classifier import PretrainedClassifier
    from .._regressor import TransferRegressor

    cls = PretrainedClassifier if settings.classification else TransferRegressor
    return cls(cache_dir=settings.cache_dir, device=settings.device,
               random_state=settings.seed, verbose=2 if settings.verbose >= 2 else 0,
               **params)


def network_candidates(backbone, label: str, settings: Settings, *, n_stages: int | None,
                       weights="DEFAULT") -> list[Candidate]:
    """The transfer recipes on one network: the exact probe, full fine-tuning
    at three rates, fine-tuning of the upper half of the stages, and LP-FT."""
    rate = DEFAULT_LR[settings.input_kind]
    recipes = [(EXACT_PROBE, {"freeze_depth": "all"}, False)]
    recipes += [(FINE_TUNE, {"freeze_depth": 0, "lr": lr}, True)
                for lr in (rate / 3, rate, rate * 3)]
    if n_stages is not None and n_stages >= 2:
        recipes.append((FINE_TUNE_TOP, {"freeze_depth": n_stages // 2, "lr": rate}, True))
    recipes.append((LP_FT, {"freeze_depth": 0, "head_init": "probe", "lr": rate}, True))
    candidates = []
    for recipe, params, epochs in recipes:
        estimator = _network_estimator(settings, backbone=backbone, weights=weights, **params)
        lr = f", lr={params['lr']:.0e}" if "lr" in params else ""
        depth = f", freeze_depth={params['freeze_depth']}" if recipe == FINE_TUNE_TOP else ""
        default = recipe == FINE_TUNE and params["lr"] == rate
        candidates.append(Candidate(f"{label}: {recipe}{depth}{lr}", estimator, recipe,
                                    backbone=label, transfer=True, epochs=epochs,
                                    params=dict(params), default=default))
    return candidates


def scratch_candidate(backbone, label: str, settings: Settings) -> Candidate:
    """The same network trained from a random initialisation: no transfer."""
    params = {"weights": None, "freeze_depth": 0, "lr": DEFAULT_LR[settings.input_kind]}
    estimator = _network_estimator(settings, backbone=backbone, **params)
    return Candidate(f"{label}: {SCRATCH}", estimator, SCRATCH, backbone=label,
                     transfer=False, epochs=True, params=params)


def cut_probe_candidate(backbone, label: str, stage: int, settings: Settings,
                        weights="DEFAULT") -> Candidate:
    """A linear model on the pooled features of an inner stage."""
    from .._features import TransferFeatures

    features = TransferFeatures(backbone, weights=weights, stage=stage,
                                cache_dir=settings.cache_dir, device=settings.device)
    estimator = make_pipeline(features, StandardScaler(), _linear_model(settings))
    return Candidate(f"{label}: {PROBE_AT_CUT} (stage {stage})", estimator, PROBE_AT_CUT,
                     backbone=label, cut=f"stage {stage}", transfer=True,
                     params={"stage": stage})


def _linear_model(settings: Settings):
    if settings.classification:
        return LogisticRegression(max_iter=1000)
    return RidgeCV(alphas=np.logspace(-3, 3, 13))


def baseline_candidates(settings: Settings) -> list[Candidate]:
    """Models that involve no pretrained network: TF-IDF with a linear model
    for texts; gradient boosting and a linear model for tables. (Networks
    from scratch are added beside the transfer candidates.)"""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.feature_extraction.text import TfidfVectorizer

    if settings.input_kind == TEXT:
        vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=1)
        model = LogisticRegression(C=10.0, max_iter=1000) if settings.classification \
            else RidgeCV(alphas=np.logspace(-3, 3, 13))
        name = "TF-IDF + " + type(model).__name__
        return [Candidate(name, make_pipeline(vectorizer, model), BASELINE,
                          transfer=False, params={"baseline": name})]
    if settings.input_kind != TABULAR:
        return []
    boosting = (HistGradientBoostingClassifier if settings.classification
                else HistGradientBoostingRegressor)(min_samples_leaf=_leaf_size(settings),
                                                    random_state=settings.seed)
    linear = make_pipeline(StandardScaler(), _linear_model(settings))
    return [Candidate(name, estimator, BASELINE, transfer=False, params={"baseline": name})
            for name, estimator in (("gradient boosting", boosting),
                                    ("standardised " + type(linear[-1]).__name__, linear))]


def _leaf_size(settings: Settings) -> int:
    """Gradient boosting's fewest samples per leaf: scikit-learn's 20, or a
    twentieth of a smaller table (at least 2), so that a table of a few dozen
    rows still splits (at 20, 25 rows grow no tree and every sample gets the
    same prediction)."""
    if settings.n_samples is None:
        return 20
    return int(min(20, max(2, settings.n_samples // 20)))


def tabular_scratch(settings: Settings) -> Candidate:
    """The MLP trained from a random initialisation."""
    return scratch_candidate(MLP(), "mlp", settings)


def image_backbone(name: str, settings: Settings):
    return ImageBackbone(name, image_size=settings.image_size)


def text_backbone(name) -> TextEncoder:
    return name if isinstance(name, TextEncoder) else TextEncoder(name)


# -- candidates a user gives ---------------------------------------------------------------


def given_candidates(candidates) -> list[Candidate]:
    """``candidates=``: a dict ``{name: estimator}`` or a list of
    estimators; networks whose ``max_epochs`` is "auto" take part in
    successive halving."""
    if isinstance(candidates, dict):
        named = list(candidates.items())
    else:
        named = [(_estimator_label(est), est) for est in candidates]
    out, seen = [], {}
    for name, estimator in named:
        if not hasattr(estimator, "fit"):
            raise TypeError(f"candidate {name!r} is not an estimator (it has no fit method): "
                            f"{estimator!r}.")
        seen[name] = seen.get(name, 0) + 1
        label = name if seen[name] == 1 else f"{name} #{seen[name]}"
        halving = (isinstance(estimator, BaseTransferEstimator)
                   and estimator.max_epochs == "auto" and estimator.freeze_depth != "all")
        out.append(Candidate(str(label), clone(estimator), GIVEN, transfer=True,
                             epochs=halving, params={"candidate": str(label)}))
    if not out:
        raise ValueError("candidates is empty; give at least one estimator, or None for "
                         "the automatic candidates.")
    return out


def _estimator_label(estimator) -> str:
    if hasattr(estimator, "steps"):
        return " + ".join(type(step).__name__ for _, step in estimator.steps)
    return type(estimator).__name__


def check_task(estimator, settings: Settings, name: str) -> None:
    """A given candidate must solve the same task as the search."""
    if is_classifier(estimator) != settings.classification:
        want = "a classifier" if settings.classification else "a regressor"
        raise ValueError(f"candidate {name!r} is not {want}; every candidate of "
                         f"{'AutoTransferClassifier' if settings.classification else 'AutoTransferRegressor'} "
                         f"must be {want}.")


# -- sources ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """A network to transfer from: the ``backbone`` and ``weights`` values
    that load it, what it takes as input and its number of stages."""

    label: str
    backbone: object
    weights: object
    input_kind: str
    n_stages: int | None


def sized(source: Source, settings: Settings) -> Source:
    """An image source resized to ``settings.image_size`` (when set), as
    every image candidate is."""
    if source.input_kind != IMAGES or settings.image_size is None:
        return source
    network = network_of(source.backbone)
    return dataclasses.replace(source, backbone=ImageBackbone(network,
                                                              image_size=settings.image_size))


def source_of(value, index: int) -> Source:
    """A source given in ``sources=``: a fitted ``PretrainedClassifier`` /
    ``TransferRegressor``, or a weights file written by ``save_weights``
    (its architecture is read from the configuration inside it)."""
    if isinstance(value, BaseTransferEstimator):
        if not hasattr(value, "net_"):
            raise ValueError(f"sources[{index}] is an unfitted {type(value).__name__}; "
                             "fit it on the source task first.")
        return Source(f"source {index} ({type(value).__name__})", value, "DEFAULT",
                      value.input_kind_, value.n_stages_)
    if isinstance(value, (str, os.PathLike)):
        return _file_source(os.fspath(value), index)
    raise TypeError(f"sources[{index}] must be a fitted PretrainedClassifier or "
                    "TransferRegressor, or the path of a file written by save_weights; "
                    f"got {type(value).__name__}.")


def _file_source(path: str, index: int) -> Source:
    if not os.path.isfile(path):
        raise ValueError(f"sources[{index}]: no file {path!r}.")
    from .._nn.weights import read_weights_file

    config = read_weights_file(path).config
    if not config or "trunk" not in config:
        raise ValueError(
            f"sources[{index}]: {path!r} is a plain state dict, which does not say its "
            "architecture; pass a file written by save_weights, or a candidate "
            "PretrainedClassifier(backbone=..., weights=path) in candidates=.")
    trunk, kind = config["trunk"], config.get("input_kind", IMAGES)
    label = f"source {index} ({os.path.basename(path)})"
    if kind == TABULAR:
        backbone = MLP(hidden_layer_sizes=tuple(trunk["hidden_layer_sizes"]),
                       activation=trunk.get("activation", "relu"))
        return Source(label, backbone, path, kind, len(trunk["hidden_layer_sizes"]))
    if kind == TEXT:
        return Source(label, TextEncoder(trunk["backbone"]), path, kind, None)
    return Source(label, ImageBackbone(trunk["backbone"]), path, kind, None)
