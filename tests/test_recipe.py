"""The recipe: parameters resolved and checked once, before any weights load
or any data pass; method and backbone objects as nested parameters."""

import inspect
import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV

import sktransfer
from sktransfer import (
    DANN,
    L2SP,
    MLP,
    MMD,
    Coral,
    FixMatch,
    ImageBackbone,
    PretrainedClassifier,
    PseudoLabel,
    TextEncoder,
    TransferRegressor,
)
from sktransfer._recipe import Recipe

from .conftest import fast_params


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:120] / 16.0, y[:120]


@pytest.fixture
def nothing_loads(monkeypatch):
    """Weight loading and activation caching fail if reached."""
    from sktransfer._nn import build, engine

    def refuse(*args, **kwargs):
        raise AssertionError("reached past validation")

    monkeypatch.setattr(build, "load_trunk", refuse)
    monkeypatch.setattr(engine, "cache_activations", refuse)


IMAGES = np.zeros((6, 32, 32, 3), dtype=np.uint8)
TABLE = np.zeros((6, 4))
Y = np.array([0, 1] * 3)
Y_PARTIAL = np.array([0, 1, -1, -1, 0, 1])
Y_TASKS = np.column_stack([Y, Y])

# (estimator, X, y, words the error names)
INVALID = [
    (PretrainedClassifier("mlp", augment="light"), TABLE, Y, ["augment"]),
    (PretrainedClassifier(freeze_depth=2, unfreeze_at=(3, 1)), IMAGES, Y, ["unfreeze_at"]),
    (PretrainedClassifier(unfreeze_at=2), IMAGES, Y, ["unfreeze_at", "freeze_depth=0"]),
    (PretrainedClassifier(head=(16,), head_init="probe"), IMAGES, Y, ["head_init", "head="]),
    (PretrainedClassifier("mlp", unlabeled="fixmatch"), TABLE, Y_PARTIAL, ["unlabeled=", "images"]),
    (TransferRegressor("mlp", unlabeled=PseudoLabel()), TABLE, Y.astype(float), ["unlabeled=",
                                                                                 "regressor"]),
    (PretrainedClassifier("mlp", unlabeled="pseudo_label"), TABLE, Y_TASKS, ["unlabeled=",
                                                                             "1-D y"]),
    (PretrainedClassifier(freeze_depth="all", domain_adaptation="coral"), IMAGES, Y_PARTIAL,
     ["domain_adaptation=", "freeze_depth='all'"]),
    (PretrainedClassifier(ImageBackbone("mlp")), IMAGES, Y, ["backbone__name", "not an image"]),
    (PretrainedClassifier(ImageBackbone(image_size=0)), IMAGES, Y, ["backbone", "image_size"]),
    (PretrainedClassifier(MLP(hidden_layer_sizes=(0,))), TABLE, Y,
     ["backbone__hidden_layer_sizes"]),
    (PretrainedClassifier(MLP(activation="swish")), TABLE, Y, ["backbone", "activation"]),
    (PretrainedClassifier(TextEncoder(pooling="max")), ["a", "b"] * 3, Y,
     ["backbone", "pooling"]),
    (PretrainedClassifier("mlp", unlabeled=Coral()), TABLE, Y_PARTIAL, ["unlabeled",
                                                                        "SemiSupervised"]),
    (PretrainedClassifier("mlp", domain_adaptation=PseudoLabel()), TABLE, Y_PARTIAL,
     ["domain_adaptation", "Alignment"]),
    (PretrainedClassifier("mlp", unlabeled=PseudoLabel(threshold=2.0)), TABLE, Y_PARTIAL,
     ["threshold"]),
]


@pytest.mark.parametrize("estimator, X, y, words", INVALID,
                         ids=[f"{i}-{w[0]}" for i, (_, _, _, w) in enumerate(INVALID)])
def test_invalid_combinations_raise_before_anything_loads(nothing_loads, estimator, X, y,
                                                          words):
    with pytest.raises(ValueError) as error:
        estimator.fit(X, y)
    for word in words:
        assert word in str(error.value), (word, str(error.value))
    assert not hasattr(estimator, "net_")


def test_a_parameter_no_group_reads_raises():
    """A constructor parameter that no part of the recipe reads is an error,
    not a silent no-op."""

    class Extra(PretrainedClassifier):
        def __init__(self, smoothing=0.1, **params):
            super().__init__(**params)
            self.smoothing = smoothing

    signature = inspect.signature(PretrainedClassifier.__init__)
    smoothing = inspect.Parameter("smoothing", inspect.Parameter.KEYWORD_ONLY, default=0.1)
    Extra.__init__.__signature__ = signature.replace(
        parameters=[*signature.parameters.values(), smoothing])
    assert "smoothing" in Extra().get_params()
    with pytest.raises(TypeError, match=r"Extra parameters \['smoothing'\] are read by no"):
        Recipe.from_estimator(Extra(backbone="mlp"), input_kind="tabular")


def test_every_parameter_is_read_and_shorthands_resolve():
    recipe = Recipe.from_estimator(
        PretrainedClassifier(unlabeled="fixmatch", domain_adaptation="dann",
                             regularization="l2sp"), input_kind="images")
    assert isinstance(recipe.methods.unlabeled, FixMatch)
    assert isinstance(recipe.methods.adaptation, DANN)
    assert isinstance(recipe.optimisation.regularization, L2SP)
    assert recipe.optimisation.regularization.strength == 0.01
    tabular = Recipe.from_estimator(PretrainedClassifier("mlp"), input_kind="tabular")
    assert tabular.backbone.source == "mlp" and isinstance(tabular.backbone.mlp, MLP)
    assert tabular.backbone.mlp.hidden_layer_sizes == (100,)
    images = Recipe.from_estimator(PretrainedClassifier(ImageBackbone("resnet18", 64)),
                                   input_kind="images")
    assert (images.backbone.source, images.backbone.image_size) == ("resnet18", 64)
    regression = Recipe.from_estimator(TransferRegressor("mlp", loss="huber"),
                                       input_kind="tabular")
    assert regression.loss == "huber"


def test_defaults_that_depend_on_other_settings():
    def recipe(**params):
        return Recipe.from_estimator(PretrainedClassifier(**params), input_kind="images",
                                     unlabeled_samples=True)

    assert recipe().methods.augment == "light"  # everything trains
    assert recipe(freeze_depth=2).methods.augment is None  # frozen stages can be cached
    assert recipe(freeze_depth=2, unfreeze_at=1).methods.augment == "light"
    assert recipe(freeze_depth=2, unlabeled="fixmatch").methods.augment == "light"
    assert recipe(unlabeled="fixmatch").methods.ratio == 7
    assert recipe(unlabeled=FixMatch(ratio=3)).methods.ratio == 3
    assert recipe(domain_adaptation="mmd").methods.ratio == 1
    assert recipe().optimisation.lr == 1e-3
    text = Recipe.from_estimator(PretrainedClassifier("all-MiniLM-L6-v2"), input_kind="text")
    assert text.optimisation.lr == 5e-5 and text.methods.augment is None
    schedule = recipe().schedule
    assert schedule.epochs(25) == 200  # 200 steps of a 25-sample target
    assert schedule.epochs(1_000) == 32  # about 1,000 steps
    assert schedule.epochs(50_000) == 10
    assert recipe(max_epochs=7).schedule.epochs(25) == 7


def test_exact_probe_decision():
    frozen = Recipe.from_estimator(PretrainedClassifier(freeze_depth="all"), input_kind="images")
    assert frozen.exact_probe(5, list(range(5)), head_from_source=False)
    assert not frozen.exact_probe(5, list(range(5)), head_from_source=True)
    assert not frozen.exact_probe(5, list(range(4)), head_from_source=False)
    hidden = Recipe.from_estimator(PretrainedClassifier(freeze_depth="all", head=(8,)),
                                   input_kind="images")
    assert not hidden.exact_probe(5, list(range(5)), head_from_source=False)


def test_method_objects_clone_and_search_their_settings(digits):
    X, y = digits
    y = y.copy()
    y[::3] = -1
    clf = PretrainedClassifier(MLP(hidden_layer_sizes=(16,)), unlabeled=PseudoLabel(),
                               max_epochs=2, random_state=0, device="cpu")
    params = clf.get_params(deep=True)
    assert params["unlabeled__threshold"] == 0.95
    assert params["backbone__hidden_layer_sizes"] == (16,)
    copy = clone(clf)
    assert copy.unlabeled is not clf.unlabeled and copy.unlabeled.get_params() == \
        clf.unlabeled.get_params()
    search = GridSearchCV(clf, {"unlabeled__threshold": [0.5, 0.9],
                                "backbone__hidden_layer_sizes": [(8,), (16,)]}, cv=2)
    search.fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    best = search.best_estimator_
    assert best.unlabeled.threshold in (0.5, 0.9)
    assert best.net_.module_.head[-1].in_features == best.backbone.hidden_layer_sizes[-1]


def test_method_settings_reach_training(digits):
    X, y = digits
    y = y.copy()
    y[::2] = -1

    def fit(**params):
        return PretrainedClassifier(MLP(hidden_layer_sizes=(16,)), max_epochs=2,
                                    random_state=0, device="cpu", **params).fit(X, y)

    weak = fit(domain_adaptation=MMD(strength=0.0)).net_.module_.head[-1].weight
    plain = fit(domain_adaptation=MMD(strength=1.0)).net_.module_.head[-1].weight
    assert not np.allclose(weak.detach().numpy(), plain.detach().numpy())
    never = fit(unlabeled=PseudoLabel(threshold=1.0, weight=1.0))
    assert all(r["unlabeled_loss"] == 0.0 for r in never.history_)


def test_fitted_with_method_objects_pickles(digits):
    X, y = digits
    y = y.copy()
    y[::2] = -1
    clf = PretrainedClassifier(MLP(hidden_layer_sizes=(16,)), domain_adaptation=DANN(0.5),
                               max_epochs=2, random_state=0, device="cpu").fit(X, y)
    copy = pickle.loads(pickle.dumps(clf))
    np.testing.assert_allclose(copy.predict_proba(X), clf.predict_proba(X))
    assert copy.domain_adaptation.strength == 0.5
    # the fitted net carries no training data and no source network
    assert copy.net_.data is None and copy.net_.recipe.backbone is None


def test_equal_probes_are_solved_once(mnist, monkeypatch):
    from sktransfer._nn import probe

    X, y = mnist[0][:80], mnist[1][:80]
    sktransfer.clear_cache()  # no solution remembered from another test
    calls = []
    solve = probe.solve
    monkeypatch.setattr(probe, "solve", lambda *a, **k: calls.append(1) or solve(*a, **k))
    first = PretrainedClassifier(**fast_params(lr=1e-3)).fit(X, y)
    second = PretrainedClassifier(**fast_params(lr=1e-1, lr_schedule="constant")).fit(X, y)
    assert len(calls) == 1  # lr and the schedule do not change the exact probe
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))
    PretrainedClassifier(**fast_params(probe_alpha=10.0)).fit(X, y)
    assert len(calls) == 2  # another penalty is another problem
    sktransfer.clear_cache()
    PretrainedClassifier(**fast_params()).fit(X, y)
    assert len(calls) == 3  # clear_cache forgets the solutions too


def test_probe_solutions_are_shared_through_cache_dir(mnist, monkeypatch, tmp_path):
    from sktransfer._nn import probe

    X, y = mnist[0][:60], mnist[1][:60]
    sktransfer.clear_cache()
    calls = []
    solve = probe.solve
    monkeypatch.setattr(probe, "solve", lambda *a, **k: calls.append(1) or solve(*a, **k))
    first = PretrainedClassifier(**fast_params(cache_dir=tmp_path)).fit(X, y)
    assert len(list((tmp_path / "sktransfer-probes").glob("*.npz"))) == 1
    sktransfer.clear_cache()  # memory only: another process starts like this
    again = PretrainedClassifier(**fast_params(cache_dir=tmp_path, lr=0.5)).fit(X, y)
    assert len(calls) == 1  # read from cache_dir
    np.testing.assert_array_equal(first.predict_proba(X), again.predict_proba(X))
    assert again.probe_alpha_ == first.probe_alpha_
    sktransfer.clear_cache(tmp_path)
    assert not (tmp_path / "sktransfer-probes").exists()


@pytest.mark.parametrize("estimator_class, most", [(PretrainedClassifier, 36),
                                                   (TransferRegressor, 37)])
def test_constructor_keeps_its_parameters_few(estimator_class, most):
    """Settings of one input kind or one method live in the backbone and
    method objects, not in the constructor."""
    names = list(inspect.signature(estimator_class.__init__).parameters)[1:]
    assert len(names) <= most
    assert not {"hidden_layer_sizes", "max_length", "pooling", "image_size",
                "unlabeled_threshold", "adaptation_strength"} & set(names)
