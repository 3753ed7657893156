"""Differentially private training (``privacy=DP(...)``): the accountant's
epsilon, per-sample clipping, the refused settings, BatchNorm, pickling,
searches, and the non-private path left as it is."""

import math
import pickle
import subprocess
import sys
import warnings

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from sktransfer import DP, MLP, L2SP, PretrainedClassifier, PseudoLabel, TransferRegressor

from .conftest import HELD_OUT, LABELS, QUICK_MLP, TEXTS, quiet_fit, text_params, tiny

opacus = pytest.importorskip(
    "opacus", reason="privacy=DP(...) needs Opacus: install the 'privacy' extra")

PRIVATE_MLP = dict(QUICK_MLP, max_epochs=4, batch_size=32)


@pytest.fixture(scope="module")
def private_fit(digits):
    X, y = digits
    return PretrainedClassifier(**PRIVATE_MLP, privacy=DP(epsilon=4.0)).fit(X, y)


def _replayed_epsilon(accountant, noise_multiplier, sample_rate, steps, delta):
    """Opacus's accountant stepped through the fit's steps one by one."""
    meter = opacus.accountants.create_accountant(accountant)
    for _ in range(steps):
        meter.step(noise_multiplier=noise_multiplier, sample_rate=sample_rate)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order is the")
        return meter.get_epsilon(delta=delta)


# -- the method object ------------------------------------------------------------------------


def test_dp_is_a_method_object_a_grid_can_search():
    clf = PretrainedClassifier("mlp", privacy=DP(epsilon=3.0, max_grad_norm=0.5))
    params = clf.get_params()
    assert params["privacy__epsilon"] == 3.0 and params["privacy__max_grad_norm"] == 0.5
    copy = clone(clf).set_params(privacy__epsilon=1.0)
    assert copy.privacy.epsilon == 1.0 and clf.privacy.epsilon == 3.0
    assert DP().delta_for(1000) == pytest.approx(1e-4)


def test_the_shorthand_is_dp_with_its_defaults(digits):
    X, y = digits
    clf = PretrainedClassifier(**dict(PRIVATE_MLP, max_epochs=1), privacy="dp").fit(X, y)
    assert clf.epsilon_spent_ <= 8.0 and clf.epsilon_spent_ > 7.0
    with pytest.raises(ValueError, match="privacy"):
        PretrainedClassifier(**PRIVATE_MLP, privacy="private").fit(X, y)
    assert DP(delta=1e-6).delta_for(1000) == 1e-6


@pytest.mark.parametrize("dp, match", [
    (DP(epsilon=0.0), "epsilon"),
    (DP(delta=1.5), "delta"),
    (DP(max_grad_norm=-1.0), "max_grad_norm"),
    (DP(accountant="gdp"), "accountant"),
])
def test_invalid_settings_are_refused(digits, dp, match):
    X, y = digits
    with pytest.raises(ValueError, match=match):
        PretrainedClassifier(**PRIVATE_MLP, privacy=dp).fit(X, y)


# -- the guarantee ------------------------------------------------------------------------------


def test_reported_epsilon_is_the_accountants(private_fit, digits):
    X, _ = digits
    clf, n = private_fit, len(X)
    assert clf.delta_ == pytest.approx(1 / (10 * n))
    assert clf.sample_rate_ == pytest.approx(32 / n)
    assert clf.privacy_steps_ == 4 * math.ceil(n / 32)
    expected = _replayed_epsilon("rdp", clf.noise_multiplier_, clf.sample_rate_,
                                 clf.privacy_steps_, clf.delta_)
    assert clf.epsilon_spent_ == pytest.approx(expected, rel=1e-9)
    # the noise is the smallest that keeps the budget, as Opacus calibrates it
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order is the")
        calibrated = opacus.accountants.utils.get_noise_multiplier(
            target_epsilon=4.0, target_delta=clf.delta_, sample_rate=clf.sample_rate_,
            steps=clf.privacy_steps_, accountant="rdp")
    assert clf.noise_multiplier_ == pytest.approx(calibrated)
    assert 3.5 < clf.epsilon_spent_ <= 4.0


def test_prv_accountant_and_a_given_delta(digits):
    X, y = digits
    clf = PretrainedClassifier(**dict(PRIVATE_MLP, max_epochs=2),
                               privacy=DP(epsilon=2.0, delta=1e-5, accountant="prv")).fit(X, y)
    assert clf.delta_ == 1e-5
    expected = _replayed_epsilon("prv", clf.noise_multiplier_, clf.sample_rate_,
                                 clf.privacy_steps_, 1e-5)
    assert clf.epsilon_spent_ == pytest.approx(expected, rel=1e-6)
    assert clf.epsilon_spent_ <= 2.0 + 1e-2


def test_every_per_sample_gradient_is_clipped(digits, monkeypatch):
    """Opacus's per-sample gradients of each step (read before the noise)
    enter the step's sum each scaled to norm at most ``max_grad_norm``."""
    from opacus.optimizers import DPOptimizer

    seen = []
    clip_and_accumulate = DPOptimizer.clip_and_accumulate

    def observed(self):
        per_sample = [p.grad_sample.reshape(len(p.grad_sample), -1).clone()
                      for p in self.params]
        clip_and_accumulate(self)
        seen.append((torch.cat(per_sample, dim=1),
                     torch.cat([p.summed_grad.reshape(-1) for p in self.params])))

    monkeypatch.setattr(DPOptimizer, "clip_and_accumulate", observed)
    X, y = digits
    limit = 0.05
    PretrainedClassifier(**dict(PRIVATE_MLP, max_epochs=1),
                         privacy=DP(epsilon=8.0, max_grad_norm=limit)).fit(X * 20, y)
    assert len(seen) == math.ceil(len(X) / 32)
    clipped_some = False
    for per_sample, summed in seen:
        norms = per_sample.norm(dim=1)
        factors = (limit / (norms + 1e-6)).clamp(max=1.0)
        clipped = per_sample * factors[:, None]
        assert bool((clipped.norm(dim=1) <= limit * (1 + 1e-5)).all())
        torch.testing.assert_close(summed, clipped.sum(dim=0), rtol=1e-5, atol=1e-7)
        clipped_some |= bool((norms > limit).any())
    assert clipped_some


def test_an_empty_poisson_draw_still_takes_its_noisy_step(digits, monkeypatch):
    from opacus.optimizers import DPOptimizer

    sizes = []
    add_noise = DPOptimizer.add_noise

    def observed(self):
        sizes.append(len(self.grad_samples[0]))
        add_noise(self)

    monkeypatch.setattr(DPOptimizer, "add_noise", observed)
    X, y = digits
    head = PretrainedClassifier(**dict(PRIVATE_MLP, max_epochs=2, batch_size=2),
                                privacy=DP(epsilon=8.0)).fit(X[:40], y[:40])
    assert head.privacy_steps_ == len(sizes) == 2 * 20
    assert 0 in sizes and max(sizes) > 1  # sampled, not cut: some draws are empty
    assert np.isfinite(head.predict_proba(X[:40])).all()


def test_only_trainable_parameters_change_and_the_cache_serves_a_frozen_trunk(
        tiny_backbone, digits32):
    X, y = digits32
    clf = PretrainedClassifier(**tiny(tiny_backbone, freeze_depth="all", max_epochs=3),
                               privacy=DP(epsilon=8.0)).fit(X, y)
    assert clf.cache_info_["used"]
    assert not hasattr(clf, "probe_alpha_")  # DP-SGD on the head, not the exact probe
    # a head alone draws a quarter of the 80 digits per step (DP(batch_size="auto"))
    assert clf.n_iter_ == 3 and clf.privacy_steps_ == 3 * math.ceil(len(X) / 20)
    start = PretrainedClassifier(**tiny(tiny_backbone, freeze_depth="all", max_epochs=1))
    start = quiet_fit(start, X, y).net_.module_.trunk.state_dict()
    for name, value in clf.net_.module_.trunk.state_dict().items():
        torch.testing.assert_close(value, start[name], msg=name)


# -- the private head's batches and rate ------------------------------------------------------


@pytest.mark.parametrize("size, n, batch_size, head_only, expected", [
    ("auto", 400, 32, True, 100),  # a quarter of the samples
    ("auto", 50_000, 32, True, 4096),  # at most 4,096
    ("auto", 60, 32, True, 32),  # at least the estimator's batch_size
    ("auto", 20, 32, True, 20),  # at most every sample
    ("auto", 50_000, 32, False, 32),  # trunk stages train: the estimator's batch_size
    (256, 400, 32, False, 256),
    (1000, 400, 32, True, 400),
])
def test_the_expected_batch(size, n, batch_size, head_only, expected):
    assert DP(batch_size=size).expected_batch(n, batch_size, head_only) == expected


def test_a_private_head_steps_on_a_quarter_of_the_samples_at_the_head_rate(source, digits):
    X, y = digits
    clf = PretrainedClassifier(source, freeze_depth="all", max_epochs=2, device="cpu",
                               random_state=0, privacy=DP()).fit(X, y)
    assert clf.sample_rate_ == pytest.approx(100 / len(X))
    assert clf.privacy_steps_ == 2 * 4 and clf.lr_ == 1e-2
    given = PretrainedClassifier(source, freeze_depth="all", max_epochs=2, device="cpu",
                                 lr=1e-3, random_state=0, privacy=DP(batch_size=50)).fit(X, y)
    assert given.sample_rate_ == pytest.approx(50 / len(X))
    assert given.privacy_steps_ == 2 * 8 and given.lr_ == 1e-3


@pytest.mark.slow
def test_the_private_head_defaults_beat_plain_training_settings(digits):
    """On 256 frozen features, the head's own batch and rate learn far
    better at epsilon 8 than the estimator's plain defaults (batch 32, the
    MLP's rate 1e-3; 0.84 against 0.71 here, 0.80 against 0.64-0.70 on
    two other seeds), each with max_epochs="auto"."""
    X, y = digits
    settings = dict(backbone=MLP(hidden_layer_sizes=(256,)), freeze_depth="all", device="cpu",
                    random_state=0)
    tuned = PretrainedClassifier(**settings, privacy=DP(epsilon=8.0)).fit(X[:300], y[:300])
    plain = PretrainedClassifier(**settings, lr=1e-3,
                                 privacy=DP(epsilon=8.0, batch_size=32)).fit(X[:300], y[:300])
    assert tuned.epsilon_spent_ <= 8.0 and plain.epsilon_spent_ <= 8.0
    # max_epochs="auto" counts the private batches (75 of the 300 digits):
    # about 1,000 steps, at most 200 epochs
    assert tuned.n_iter_ == 200 and tuned.privacy_steps_ == 200 * 4
    assert plain.privacy_steps_ == 100 * math.ceil(300 / 32)
    held_out = tuned.score(X[300:], y[300:]), plain.score(X[300:], y[300:])
    assert held_out[0] > held_out[1] + 0.05, held_out


def test_an_invalid_private_batch_is_refused(digits):
    X, y = digits
    with pytest.raises(ValueError, match="batch_size"):
        PretrainedClassifier(**PRIVATE_MLP, privacy=DP(batch_size=0)).fit(X, y)


# -- BatchNorm ---------------------------------------------------------------------------------


def test_trainable_batchnorm_is_refused_with_the_fix(tiny_backbone, digits32):
    X, y = digits32
    clf = PretrainedClassifier(**tiny(tiny_backbone, freeze_depth=2), privacy=DP())
    with pytest.raises(ValueError, match="bn_mode='frozen'"):
        clf.fit(X, y)


def test_frozen_batchnorm_keeps_its_pretrained_parameters(tiny_backbone, digits32):
    X, y = digits32
    clf = PretrainedClassifier(**tiny(tiny_backbone, freeze_depth=2, bn_mode="frozen"),
                               privacy=DP(epsilon=8.0)).fit(X, y)
    pretrained = torch.load(tiny_backbone[1])
    trained = clf.net_.module_.trunk.state_dict()
    for name in ("features.2.1.weight", "features.2.1.bias", "features.2.1.running_mean"):
        torch.testing.assert_close(trained[name], pretrained[name], msg=name)
    assert not torch.equal(trained["features.2.0.weight"], pretrained["features.2.0.weight"])


# -- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize("setting, match", [
    (dict(unlabeled=PseudoLabel()), "unlabeled=PseudoLabel"),
    (dict(domain_adaptation="coral"), "domain_adaptation='coral'"),
    (dict(domain_adaptation="auto"), "domain_adaptation='auto'"),
    (dict(early_stopping=True), "early_stopping=True"),
    (dict(lr="auto"), "lr='auto'"),
    (dict(head_init="probe"), "head_init='probe'"),
    (dict(regularization=L2SP()), "regularization=L2SP"),
    (dict(max_grad_norm=1.0), "max_grad_norm=1.0"),
    (dict(freeze_depth=1, unfreeze_at=1), "unfreeze_at=1"),
    (dict(precision="bf16"), "precision='bf16'"),
])
def test_settings_that_bypass_the_guarantee_are_refused(digits, setting, match):
    X, y = digits
    clf = PretrainedClassifier(**dict(PRIVATE_MLP, **setting), privacy=DP())
    with pytest.raises(ValueError, match=match) as raised:
        clf.fit(X, y)
    assert "privacy=None" in str(raised.value)
    assert not hasattr(clf, "net_")


def test_a_text_encoder_keeps_its_embeddings_frozen(minilm_path):
    clf = PretrainedClassifier(**text_params(freeze_depth=0), privacy=DP())
    with pytest.raises(ValueError, match="freeze_depth=1 or more"):
        clf.fit(TEXTS, LABELS)


@pytest.mark.slow
def test_a_private_fine_tune_of_a_text_encoders_last_stage(minilm_path):
    clf = PretrainedClassifier(**text_params(freeze_depth=3, lr=1e-2, max_epochs=3),
                               privacy=DP(epsilon=8.0)).fit(TEXTS, LABELS)
    assert clf.epsilon_spent_ <= 8.0
    assert clf.predict(HELD_OUT).shape == (2,)


def test_without_opacus_the_fit_says_what_to_install(digits, monkeypatch):
    monkeypatch.setitem(sys.modules, "opacus", None)  # import opacus raises ImportError
    X, y = digits
    with pytest.raises(ImportError, match=r"sktransfer\[privacy\]"):
        PretrainedClassifier(**PRIVATE_MLP, privacy=DP(epsilon=2.5)).fit(X, y)


def test_a_private_student_is_refused(source, digits):
    from sktransfer import DistilledClassifier

    X, y = digits
    student = PretrainedClassifier(**PRIVATE_MLP, privacy=DP())
    with pytest.raises(ValueError, match="distillation.*privacy=None in the student"):
        DistilledClassifier(source, student).fit(X, y)


# -- the fitted model --------------------------------------------------------------------------


def test_history_holds_no_training_loss(private_fit):
    assert private_fit.history_ and all(
        not any("loss" in key for key in row) for row in private_fit.history_)
    assert all(not any("loss" in key for batch in row["batches"] for key in batch)
               for row in private_fit.net_.history)


def test_pickle_and_joblib_keep_predictions_and_need_no_opacus(private_fit, digits, tmp_path):
    X, _ = digits
    payload = pickle.dumps(private_fit)
    assert b"opacus" not in payload
    loaded = pickle.loads(payload)
    np.testing.assert_array_equal(loaded.predict_proba(X), private_fit.predict_proba(X))
    assert loaded.epsilon_spent_ == private_fit.epsilon_spent_
    joblib.dump(private_fit, tmp_path / "clf.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "clf.joblib").predict(X),
                                  private_fit.predict(X))


def test_an_equal_private_fit_is_restored_with_its_spend(digits):
    X, y = digits
    first = PretrainedClassifier(**PRIVATE_MLP, privacy=DP(epsilon=4.0)).fit(X, y)
    again = PretrainedClassifier(**PRIVATE_MLP, privacy=DP(epsilon=4.0)).fit(X, y)
    assert again.cache_info_["restored"]
    assert again.epsilon_spent_ == first.epsilon_spent_
    assert again.privacy_steps_ == first.privacy_steps_
    np.testing.assert_array_equal(again.predict_proba(X), first.predict_proba(X))


@pytest.mark.slow
def test_grid_search_over_epsilon(digits):
    X, y = digits
    search = GridSearchCV(PretrainedClassifier(**dict(PRIVATE_MLP, max_epochs=1),
                                               privacy=DP()),
                          {"privacy__epsilon": [1.0, 50.0]}, cv=2).fit(X, y)
    best = search.best_estimator_
    assert best.privacy.epsilon == search.best_params_["privacy__epsilon"]
    assert best.epsilon_spent_ <= best.privacy.epsilon
    assert list(search.cv_results_["param_privacy__epsilon"]) == [1.0, 50.0]


def test_a_private_regressor(digits):
    X, _ = digits
    target = X[:, :8].sum(axis=1)
    reg = TransferRegressor(**PRIVATE_MLP, privacy=DP(epsilon=8.0)).fit(X, target)
    assert reg.epsilon_spent_ <= 8.0
    assert np.isfinite(reg.predict(X)).all()


def test_noise_costs_training_fit_but_a_large_budget_learns(digits):
    X, y = digits
    settings = dict(QUICK_MLP, max_epochs=10, batch_size=32, lr=1e-2, tol=0.0)
    plain = quiet_fit(PretrainedClassifier(**settings), X, y).score(X, y)
    private = PretrainedClassifier(**settings, privacy=DP(epsilon=1.0)).fit(X, y).score(X, y)
    generous = PretrainedClassifier(**settings, privacy=DP(epsilon=1e4)).fit(X, y).score(X, y)
    assert private <= plain
    assert generous > 0.3  # ten classes: chance is 0.1


# -- the non-private path ----------------------------------------------------------------------


@pytest.mark.slow
def test_the_non_private_path_never_loads_opacus():
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from sklearn.datasets import load_digits\n"
        "from sktransfer import MLP, PretrainedClassifier\n"
        "X, y = load_digits(return_X_y=True)\n"
        "PretrainedClassifier(MLP(hidden_layer_sizes=(8,)), max_epochs=1, device='cpu',\n"
        "                     random_state=0).fit(X[:100] / 16, y[:100])\n"
        "print('opacus' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_non_private_fits_are_unchanged(digits):
    X, y = digits
    from sktransfer._nn.activation_store import TRAINED_FITS

    first = quiet_fit(PretrainedClassifier(**QUICK_MLP), X, y)
    TRAINED_FITS.clear()  # trained again, not restored
    second = quiet_fit(PretrainedClassifier(**QUICK_MLP, privacy=None), X, y)
    assert not second.cache_info_["restored"]
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))
    assert "train_loss" in first.history_[0]
    assert not hasattr(first, "epsilon_spent_")
