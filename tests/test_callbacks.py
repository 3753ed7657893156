"""What happens between epochs (sktransfer._nn.callbacks, and the epoch budget
of sktransfer._nn.net and its callbacks): learning-rate schedules, lr="auto"'s range test,
gradual unfreezing (``unfreeze_at``), convergence (tol / n_iter_no_change,
ConvergenceWarning, a diverged fit, the "auto" epoch budget) and early
stopping."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state

from sktransfer import PretrainedClassifier, TransferRegressor
from sktransfer._nn.callbacks import schedule_factor
from sktransfer._recipe import Recipe
from sktransfer._nn.freezing import release_schedule
from sktransfer._nn.net import TransferNetMixin

from .conftest import (
    HELD_OUT,
    LABELS,
    TEXTS,
    fast_params,
    quiet_fit,
    text_params,
    tiny,
    QUICK_MLP as MLP_PARAMS,
)


@pytest.fixture(scope="module")
def tabular():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def _stage_state(est, stage):
    trunk = est.net_.module_.trunk
    return [p.detach().clone() for p in trunk[stage].parameters()]


def _equal(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


# -- schedules -------------------------------------------------------------------------


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
    est = PretrainedClassifier(**dict(MLP_PARAMS, lr_schedule="cosine", warmup_epochs=1)).fit(X, y)
    for group in est.net_.optimizer_.param_groups:
        assert group["lr"] < 0.1 * group["base_lr"]


def test_the_rate_cools_down_to_zero_before_a_converged_fit_stops(tabular):
    X, y = tabular
    clf = PretrainedClassifier("mlp", tol=10.0, n_iter_no_change=4, max_epochs=50,
                               lr_schedule="constant", warmup_epochs=0, batch_size=200,
                               device="cpu", random_state=0).fit(X, y)
    # fires after epoch 6, then 2 cool-down epochs of 9 steps each
    assert clf.n_iter_ == 8
    assert clf.net_.optimizer_.param_groups[-1]["lr"] == pytest.approx(1e-3 / 18)


# -- lr="auto": the range test ---------------------------------------------------------


def test_lr_auto_runs_a_range_test_per_fit(digits):
    X, y = digits
    est = PretrainedClassifier(**dict(MLP_PARAMS, lr="auto")).fit(X, y)
    assert 1e-7 <= est.lr_ <= 1.0
    assert est.lr_ == PretrainedClassifier(**dict(MLP_PARAMS, lr="auto")).fit(X, y).lr_
    head = [g for g in est.net_.optimizer_.param_groups if g["stage"] is None][0]
    assert head["base_lr"] == pytest.approx(est.lr_)
    losses = [r["train_loss"] for r in est.history_]
    assert losses[-1] < losses[0] and est.score(X, y) > 0.3  # it trains; chance is 0.1
    fixed = PretrainedClassifier(**MLP_PARAMS).fit(X, y)
    assert fixed.lr_ == 1e-2


@pytest.mark.slow
def test_the_range_test_runs_the_nets_training_step_on_a_copy(tiny_backbone, digits32,
                                                              monkeypatch):
    X, y = digits32
    steps = []
    original = TransferNetMixin.train_step

    def counting(net, batch, **fit_params):
        steps.append(net.recipe.optimisation.regularization.strength)
        return original(net, batch, **fit_params)

    monkeypatch.setattr(TransferNetMixin, "train_step", counting)
    options = dict(regularization="l2sp", max_grad_norm=1.0, augment=None)
    auto = PretrainedClassifier(**tiny(tiny_backbone, lr="auto", **options)).fit(X, y)
    n_auto = len(steps)
    fixed = PretrainedClassifier(**tiny(tiny_backbone, lr=auto.lr_, **options)).fit(X, y)
    steps_per_fit = len(steps) - n_auto
    assert 1e-7 <= auto.lr_ <= 1.0
    # the range test ran its steps through the same train_step, with L2-SP on
    assert n_auto > steps_per_fit and set(steps) == {0.01}
    # ...on a copy and a forked random state: the fit itself is the fixed-rate fit
    np.testing.assert_array_equal(auto.predict_proba(X), fixed.predict_proba(X))


# -- gradual unfreezing: unfreeze_at ---------------------------------------------------


def test_unfreeze_plan_releases_top_stages_first():
    assert release_schedule(None, [0, 1, 2]) == []
    assert release_schedule(2, [0, 1, 2]) == [(2, [2, 1, 0])]
    assert release_schedule((1, 3), [0, 1, 2]) == [(1, [2]), (3, [1, 0])]
    assert release_schedule((1, 2, 3), [0, 1, 2]) == [(1, [2]), (2, [1]), (3, [0])]


def test_frozen_stages_do_not_change_before_unfreeze_at_and_change_after(source, digits):
    X, y = digits
    start = [_stage_state(source, s) for s in (0, 1)]
    params = dict(MLP_PARAMS, backbone=source, freeze_depth="all", unfreeze_at=2)
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
    est = PretrainedClassifier(**dict(MLP_PARAMS, backbone=source, freeze_depth="all",
                                      unfreeze_at=(1, 2), max_epochs=2)).fit(X, y)
    assert not _equal(_stage_state(est, 1), start[1])  # released after epoch 1
    assert _equal(_stage_state(est, 0), start[0])  # released only after epoch 2


@pytest.mark.slow
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


@pytest.mark.slow
def test_early_stopping_unfreezing_and_bf16_on_text(minilm_path):
    clf = PretrainedClassifier(**text_params(freeze_depth=3, unfreeze_at=1, max_epochs=2,
                                             early_stopping=True, validation_fraction=0.25,
                                             precision="bf16"))
    quiet_fit(clf, TEXTS, LABELS)
    assert clf.n_iter_ == 2 and "valid_score" in clf.history_[0]
    assert all(p.requires_grad for p in clf.net_.module_.trunk.parameters())  # released
    assert clf.predict_proba(HELD_OUT).shape == (2, 2)


@pytest.mark.parametrize("bad", [(), (3, 1), (-1,), (1.5,)])
def test_bad_unfreeze_at(digits, bad):
    X, y = digits
    with pytest.raises(ValueError, match="unfreeze_at must be"):
        PretrainedClassifier(**dict(MLP_PARAMS, freeze_depth="all", unfreeze_at=bad)).fit(X, y)


def test_unfreeze_at_without_frozen_stages(digits):
    X, y = digits
    with pytest.raises(ValueError, match="freeze_depth=0 freezes none"):
        PretrainedClassifier(**dict(MLP_PARAMS, unfreeze_at=1)).fit(X, y)


# -- convergence -----------------------------------------------------------------------


def test_convergence_warning_when_the_budget_ends_the_fit(tabular):
    X, y = tabular
    clf = PretrainedClassifier("mlp", max_epochs=2, device="cpu", random_state=0)
    with pytest.warns(ConvergenceWarning, match="stopped at its epoch budget"):
        clf.fit(X, y)
    assert clf.n_iter_ == 2


def test_no_warning_when_the_loss_stops_improving_by_tol(tabular):
    X, y = tabular
    clf = PretrainedClassifier("mlp", tol=10.0, n_iter_no_change=2, max_epochs=50,
                               device="cpu", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf.fit(X, y)
    # the first epoch sets the best loss; no later one beats it by 10: the
    # count passes n_iter_no_change=2 after epoch 4, then the rate cools down
    # to zero over n_iter_no_change // 2 = 1 more epoch
    assert clf.n_iter_ == 5


@pytest.mark.slow
def test_a_diverged_fit_says_so():
    X, y = load_digits(return_X_y=True)
    with pytest.warns(ConvergenceWarning, match="diverged"):
        PretrainedClassifier("mlp", lr=100.0, max_epochs=3, random_state=0).fit(X / 16.0, y)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        PretrainedClassifier("mlp", lr=1e-2, random_state=0).fit(X / 16.0, y)
    assert not [w for w in caught if "diverged" in str(w.message)]


def test_auto_budget_serves_small_and_large_data():
    def epochs(n_train, **params):
        recipe = Recipe.from_estimator(PretrainedClassifier("mlp", **params),
                                       input_kind="tabular")
        return recipe.schedule.epochs(n_train)

    assert epochs(25) == 200  # 200 steps for 25 samples, not 10
    assert epochs(1_000) == 32  # about 1,000 steps
    assert epochs(50_000) == 10  # at most 10 epochs for large data
    assert epochs(25, max_epochs=7) == 7


def test_a_25_sample_target_converges_with_defaults(tabular):
    X, y = tabular
    rng = np.random.RandomState(0)
    rows = np.concatenate([rng.choice(np.where(y == c)[0], 5, replace=False) for c in range(5)])
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = PretrainedClassifier("mlp", device="cpu", random_state=0).fit(X[rows], y[rows])
    assert clf.score(X[rows], y[rows]) == 1.0 and clf.n_iter_ < 200


# -- early stopping --------------------------------------------------------------------


def test_early_stopping_stops_once_the_validation_score_stalls(tabular):
    X, y = tabular
    keep = y < 2  # 0 vs 1: the validation accuracy reaches 1.0 at once
    clf = PretrainedClassifier("mlp", early_stopping=True, n_iter_no_change=3,
                               max_epochs=100, lr=1e-2, device="cpu", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf.fit(X[keep], y[keep])
    scores = [row["valid_score"] for row in clf.history_]
    assert clf.n_iter_ < 20 and max(scores) == 1.0
    assert clf.best_epoch_ == int(np.argmax(scores)) + 1


def test_early_stopping_restores_the_best_epoch(digits):
    X, y = digits
    params = dict(MLP_PARAMS, early_stopping=True, validation_fraction=0.2, n_iter_no_change=3,
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
    est = TransferRegressor(**dict(MLP_PARAMS, early_stopping=True, max_epochs=5)).fit(X, y.astype(float))
    assert "valid_score" in est.history_[0] and 1 <= est.best_epoch_ <= 5
