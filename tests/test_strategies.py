"""Fine-tuning strategies: each mechanism is checked directly (what the
optimizer holds, which parameters moved), plus clone / pickle / GridSearchCV
with every option."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.utils import check_random_state

from sktransfer import PretrainedClassifier, TransferRegressor
from sktransfer._nn.callbacks import schedule_factor
from sktransfer._nn.engine import resolve_augment
from sktransfer._nn.freezing import unfreeze_plan
from sktransfer._nn.optim import l2sp_penalty, stage_lr_factors

from .conftest import fast_params

MLP = dict(backbone="mlp", hidden_layer_sizes=(32, 16), lr=1e-2, max_epochs=3,
           batch_size=64, device="cpu", random_state=0)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:400] / 16.0, y[:400]


@pytest.fixture(scope="module")
def source(digits):
    X, y = digits
    return PretrainedClassifier(**MLP).fit(X, y)


def _stage_state(est, stage):
    trunk = est.net_.module_.trunk
    return [p.detach().clone() for p in trunk[stage].parameters()]


def _equal(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


# -- gradual unfreezing ------------------------------------------------------

def test_unfreeze_plan_releases_top_stages_first():
    assert unfreeze_plan(None, [0, 1, 2]) == []
    assert unfreeze_plan(2, [0, 1, 2]) == [(2, [2, 1, 0])]
    assert unfreeze_plan((1, 3), [0, 1, 2]) == [(1, [2]), (3, [1, 0])]
    assert unfreeze_plan((1, 2, 3), [0, 1, 2]) == [(1, [2]), (2, [1]), (3, [0])]


def test_frozen_stages_do_not_change_before_unfreeze_at_and_change_after(source, digits):
    X, y = digits
    start = [_stage_state(source, s) for s in (0, 1)]
    params = dict(MLP, backbone=source, freeze_depth="all", unfreeze_at=2)
    before = PretrainedClassifier(**dict(params, max_epochs=2)).fit(X, y)
    after = PretrainedClassifier(**dict(params, max_epochs=3)).fit(X, y)
    assert all(_equal(_stage_state(before, s), start[s]) for s in (0, 1))
    assert not any(_equal(_stage_state(after, s), start[s]) for s in (0, 1))
    stages_in_optimizer = {g["stage"] for g in after.net_.optimizer_.param_groups}
    assert stages_in_optimizer == {None, 0, 1}
    assert all(p.requires_grad for p in after.net_.module_.trunk.parameters())


def test_stage_by_stage_unfreezing(source, digits):
    X, y = digits
    start = [_stage_state(source, s) for s in (0, 1)]
    est = PretrainedClassifier(**dict(MLP, backbone=source, freeze_depth="all",
                                      unfreeze_at=(1, 2), max_epochs=2)).fit(X, y)
    assert not _equal(_stage_state(est, 1), start[1])  # released after epoch 1
    assert _equal(_stage_state(est, 0), start[0])  # released only after epoch 2


def test_unfreezing_puts_batchnorm_back_in_training_unless_frozen(digits_small):
    X, y, _, _ = digits_small
    params = fast_params(freeze_depth="all", unfreeze_at=1, max_epochs=2, lr=1e-3)
    est = PretrainedClassifier(**params).fit(X, y)
    module = est.net_.module_.train()
    assert module.frozen_norms == []
    assert module.trunk.features[1].conv[0][1].training
    frozen = PretrainedClassifier(**dict(params, bn_mode="frozen")).fit(X, y)
    module = frozen.net_.module_.train()
    assert not module.trunk.features[1].conv[0][1].training


@pytest.mark.parametrize("bad", [(), (3, 1), (-1,), (1.5,)])
def test_bad_unfreeze_at(digits, bad):
    X, y = digits
    with pytest.raises(ValueError, match="unfreeze_at must be"):
        PretrainedClassifier(**dict(MLP, freeze_depth="all", unfreeze_at=bad)).fit(X, y)


def test_unfreeze_at_without_frozen_stages(digits):
    X, y = digits
    with pytest.raises(ValueError, match="freeze_depth=0 freezes none"):
        PretrainedClassifier(**dict(MLP, unfreeze_at=1)).fit(X, y)


# -- discriminative learning rates -------------------------------------------

def test_stage_lr_factors():
    assert stage_lr_factors(3, 0.5, 1.0) == [0.125, 0.25, 0.5]
    assert stage_lr_factors(2, 1.0, 0.1) == [0.1, 0.1]


def test_layer_decay_and_backbone_multiplier_set_per_stage_rates(digits):
    X, y = digits
    est = PretrainedClassifier(**dict(MLP, layer_decay=0.5, backbone_lr_mult=0.1)).fit(X, y)
    rates = {g["stage"]: g["base_lr"] for g in est.net_.optimizer_.param_groups}
    assert rates == pytest.approx({None: 1e-2, 1: 1e-2 * 0.1 * 0.5, 0: 1e-2 * 0.1 * 0.25})
    head = [g for g in est.net_.optimizer_.param_groups if g["stage"] is None][0]
    assert {id(p) for p in head["params"]} == {id(p) for p in est.net_.module_.head.parameters()}


def test_layer_decay_on_an_image_backbone(digits_small):
    X, y, _, _ = digits_small
    est = PretrainedClassifier(**fast_params(freeze_depth=0, layer_decay=0.8, max_epochs=1)).fit(X, y)
    rates = sorted(g["base_lr"] for g in est.net_.optimizer_.param_groups
                   if g["stage"] is not None)
    assert rates == pytest.approx([1e-2 * 0.8 ** k for k in range(5, 0, -1)])


# -- L2-SP -------------------------------------------------------------------

def test_l2sp_penalty_is_zero_at_the_source_weights(source):
    module = source.net_.module_
    reference = {n: p.detach().clone() for n, p in module.trunk.named_parameters()}
    assert float(l2sp_penalty(module, reference).detach()) == 0.0
    moved = {n: p + 0.1 for n, p in reference.items()}
    n_params = sum(p.numel() for p in module.trunk.parameters())
    assert float(l2sp_penalty(module, moved).detach()) == pytest.approx(0.01 * n_params)


def test_l2sp_keeps_the_trunk_near_the_source(source, digits):
    X, y = digits
    src = [p.detach().clone() for p in source.net_.module_.trunk.parameters()]

    def distance(est):
        return sum(float((p.detach() - q).pow(2).sum())
                   for p, q in zip(est.net_.module_.trunk.parameters(), src))

    plain = PretrainedClassifier(**dict(MLP, backbone=source, max_epochs=5)).fit(X, 9 - y)
    l2sp = PretrainedClassifier(**dict(MLP, backbone=source, max_epochs=5, regularization="l2sp",
                                       regularization_strength=10.0)).fit(X, 9 - y)
    assert distance(l2sp) < 0.5 * distance(plain)
    groups = l2sp.net_.optimizer_.param_groups
    assert all(g["weight_decay"] == 0.0 for g in groups if g["stage"] is not None)
    assert [g["weight_decay"] for g in groups if g["stage"] is None] == [1e-4]
    assert not hasattr(l2sp.net_, "l2sp_reference_")  # not carried into pickles


# -- BatchNorm ---------------------------------------------------------------

def test_bn_mode_frozen_keeps_running_statistics(digits_small):
    X, y, _, _ = digits_small
    est = PretrainedClassifier(**fast_params(freeze_depth=0, bn_mode="frozen", lr=1e-3)).fit(X, y)
    ref = PretrainedClassifier(**fast_params(freeze_depth="all", max_epochs=1)).fit(X, y)
    state, source = est.net_.module_.trunk.state_dict(), ref.net_.module_.trunk.state_dict()
    running = [k for k in state if "running_" in k]
    assert running and all(torch.equal(state[k], source[k]) for k in running)
    assert not torch.equal(state["features.10.conv.0.0.weight"], source["features.10.conv.0.0.weight"])


# -- schedules -----------------------------------------------------------------

def test_schedule_factors():
    assert schedule_factor("constant", 5, 10, 0) == 1.0
    assert [schedule_factor("constant", s, 10, 4) for s in range(4)] == [0.2, 0.4, 0.6, 0.8]
    assert schedule_factor("cosine", 0, 10, 0) == 1.0
    assert schedule_factor("cosine", 5, 10, 0) == pytest.approx(0.5)
    assert schedule_factor("cosine", 10, 10, 0) == pytest.approx(0.0)
    assert schedule_factor("onecycle", 0, 10, 0) == pytest.approx(1 / 25)
    assert schedule_factor("onecycle", 3, 10, 0) == pytest.approx(1.0)
    assert schedule_factor("onecycle", 10, 10, 0) == pytest.approx(1e-4)


def test_cosine_schedule_runs_down_the_rate(digits):
    X, y = digits
    est = PretrainedClassifier(**dict(MLP, lr_schedule="cosine", warmup_epochs=1)).fit(X, y)
    for group in est.net_.optimizer_.param_groups:
        assert group["lr"] < 0.1 * group["base_lr"]


# -- lr="auto" -------------------------------------------------------------------

def test_lr_auto_runs_a_range_test_per_fit(digits):
    X, y = digits
    est = PretrainedClassifier(**dict(MLP, lr="auto")).fit(X, y)
    assert 1e-7 <= est.lr_ <= 1.0
    assert est.lr_ == PretrainedClassifier(**dict(MLP, lr="auto")).fit(X, y).lr_
    head = [g for g in est.net_.optimizer_.param_groups if g["stage"] is None][0]
    assert head["base_lr"] == pytest.approx(est.lr_)
    losses = [r["train_loss"] for r in est.history_]
    assert losses[-1] < losses[0] and est.score(X, y) > 0.3  # it trains; chance is 0.1
    fixed = PretrainedClassifier(**MLP).fit(X, y)
    assert fixed.lr_ == 1e-2


# -- early stopping ------------------------------------------------------------

def test_early_stopping_restores_the_best_epoch(digits):
    X, y = digits
    params = dict(MLP, early_stopping=True, validation_fraction=0.2, n_iter_no_change=3,
                  max_epochs=40, lr=0.05)
    est = PretrainedClassifier(**params).fit(X, y)
    scores = [r["valid_score"] for r in est.history_]
    assert est.best_epoch_ == int(np.argmax(scores)) + 1
    assert len(est.history_) < 40  # stopped once the score stalled
    # the restored weights give the best epoch's validation accuracy
    seed = check_random_state(0).randint(np.iinfo(np.int32).max)
    _, valid = train_test_split(np.arange(len(y)), test_size=80, stratify=y, random_state=seed)
    assert est.score(X[valid], y[valid]) == pytest.approx(max(scores))
    assert est.net_.train_split is None  # no training data kept in the fitted model


def test_early_stopping_for_regression(digits):
    X, y = digits
    est = TransferRegressor(**dict(MLP, early_stopping=True, max_epochs=5)).fit(X, y.astype(float))
    assert "valid_score" in est.history_[0] and 1 <= est.best_epoch_ <= 5


# -- augmentation ---------------------------------------------------------------

def test_augmentation_applies_to_training_batches_only(digits_small):
    from sktransfer._images import check_images
    from sktransfer._nn.data import ImageDataset
    from sktransfer._nn.backbones import Preprocessing

    X, y, _, _ = digits_small
    prep = Preprocessing(32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    train = ImageDataset(check_images(X), prep, 32, y, augment="light")
    plain = ImageDataset(check_images(X), prep, 32, y)
    torch.manual_seed(0)
    assert not torch.equal(train[0][0], train[0][0])
    assert torch.equal(plain[0][0], plain[0][0])
    assert train[0][0].shape == plain[0][0].shape == (3, 32, 32)
    est = PretrainedClassifier(**fast_params(augment="standard", max_epochs=1)).fit(X, y)
    np.testing.assert_array_equal(est.predict_proba(X[:5]), est.predict_proba(X[:5]))


def test_augment_with_tabular_data_is_rejected(digits):
    X, y = digits
    with pytest.raises(ValueError, match="images only"):
        PretrainedClassifier(**dict(MLP, augment="light")).fit(X, y)


# -- precision, clipping, channels_last ----------------------------------------

@pytest.mark.parametrize("precision", ["bf16", "16"])
def test_reduced_precision_paths_run_on_cpu(digits_small, precision):
    X, y, X_test, y_test = digits_small
    est = PretrainedClassifier(**fast_params(precision=precision, max_epochs=3)).fit(X, y)
    assert est.net_.precision == precision
    assert est.score(X_test[:60], y_test[:60]) > 0.6
    assert np.isfinite(est.predict_proba(X_test[:60])).all()


def test_precision_auto_is_fp32_on_cpu(digits):
    X, y = digits
    assert PretrainedClassifier(**MLP).fit(X, y).net_.precision == "32"


def test_gradient_clipping_bounds_sgd_steps(source, digits):
    X, y = digits
    src = [p.detach().clone() for p in source.net_.module_.parameters()]
    clipped = PretrainedClassifier(**dict(MLP, backbone=source, optimizer="sgd", weight_decay=0.0,
                                          max_grad_norm=1e-6)).fit(X, y)
    trunk_moves = [float((p.detach() - q).abs().max()) for p, q in
                   zip(clipped.net_.module_.trunk.parameters(), src)]
    steps = 3 * 7  # epochs x batches
    assert max(trunk_moves) <= steps * 1e-2 * 1e-6 * 10  # lr * clip * momentum bound


def test_channels_last_inference_matches(digits_small):
    X, y, X_test, _ = digits_small
    est = PretrainedClassifier(**fast_params(max_epochs=1, cache=False)).fit(X, y)
    assert est.net_.channels_last  # images train in channels_last, CPU included
    expected = est.predict_proba(X_test[:40])
    est.net_.channels_last = False
    est.net_.module_.to(memory_format=torch.contiguous_format)
    np.testing.assert_allclose(est.predict_proba(X_test[:40]), expected, rtol=1e-4, atol=1e-5)


# -- sklearn machinery with every option ---------------------------------------

ALL_OPTIONS = dict(freeze_depth=1, unfreeze_at=1, layer_decay=0.7, backbone_lr_mult=0.5,
                   regularization="l2sp", bn_mode="frozen", lr_schedule="onecycle",
                   warmup_epochs=1, early_stopping=True, n_iter_no_change=2,
                   precision="bf16", max_grad_norm=1.0)


def test_clone_pickle_and_grid_search_with_every_option(digits):
    X, y = digits
    est = PretrainedClassifier(**dict(MLP, **ALL_OPTIONS)).fit(X, y)
    copy = clone(est)
    assert copy.get_params() == est.get_params() and not hasattr(copy, "net_")
    loaded = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))
    grid = {"lr_schedule": ["cosine", "onecycle"], "layer_decay": [0.5, 1.0],
            "regularization": [None, "l2sp"], "lr": [1e-2, "auto"]}
    search = GridSearchCV(PretrainedClassifier(**dict(MLP, freeze_depth="all", unfreeze_at=1)),
                          grid, cv=2, error_score="raise").fit(X, y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_every_option_on_an_image_regressor(digits_small):
    X, y, _, _ = digits_small
    options = dict(ALL_OPTIONS, augment="light", lr="auto")
    reg = TransferRegressor(**fast_params(max_epochs=2, **options)).fit(X, y.astype(float))
    assert reg.predict(X[:4]).shape == (4,)


def test_default_recipe_augments_images_only(digits):
    X, y = digits
    clf = PretrainedClassifier()
    assert (clf.lr_schedule, clf.warmup_epochs, clf.augment) == ("cosine", 1.0, "auto")
    assert resolve_augment(clf.augment, "images", clf.freeze_depth, clf.unfreeze_at) == "light"
    assert resolve_augment(clf.augment, "tabular", clf.freeze_depth, clf.unfreeze_at) is None
    PretrainedClassifier(**MLP).fit(X, y)  # "auto" never rejects tabular data
