"""The exact linear probe (sktransfer._nn.probe): with every trunk stage
frozen and a linear head, the head is solved as LogisticRegression / Ridge
would solve it, its penalty chosen by cross-validation; and probe-then-fine-
tune (``head_init="probe"``)."""

import inspect
import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV, Ridge
from sklearn.model_selection import StratifiedKFold

from sktransfer import PretrainedClassifier, TransferFeatures, TransferRegressor
from sktransfer._nn import probe


@pytest.fixture(scope="module")
def digits32(mnist):
    """90 real MNIST digits of classes 0-2, padded to 32 px."""
    X, y = mnist
    keep = y < 3
    return np.pad(X[keep][:90], ((0, 0), (2, 2), (2, 2))), y[keep][:90]


@pytest.fixture(scope="module")
def tabular():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


CV_OPTIONS = {name: value for name, value in
              (("use_legacy_attributes", False), ("l1_ratios", (0.0,)))
              if name in inspect.signature(LogisticRegressionCV).parameters}


def tiny(tiny_backbone, **overrides):
    name, weights = tiny_backbone
    params = dict(backbone=name, weights=weights, batch_size=16, device="cpu",
                  random_state=0)
    params.update(overrides)
    return params


def frozen_features(tiny_backbone, X):
    name, weights = tiny_backbone
    return TransferFeatures(name, weights=weights, device="cpu", cache=False).fit_transform(X)


# -- the exact linear probe ------------------------------------------------------------


def test_exact_probe_head_is_the_logistic_regression_solution(tiny_backbone, digits32):
    X, y = digits32
    sample_weight = np.random.RandomState(0).uniform(0.5, 2.0, len(y))
    clf = PretrainedClassifier(**tiny(tiny_backbone, freeze_depth="all", probe_alpha=0.5))
    clf.fit(X, y, sample_weight=sample_weight)
    reference = LogisticRegression(C=2.0, tol=1e-10, max_iter=10_000).fit(
        frozen_features(tiny_backbone, X), y,
        sample_weight=sample_weight / sample_weight.mean())
    np.testing.assert_allclose(clf.predict_proba(X), reference.predict_proba(
        frozen_features(tiny_backbone, X)), atol=2e-4)
    assert clf.n_iter_ == 0 and clf.history_ == [] and clf.probe_alpha_ == 0.5
    assert clf.cache_info_["used"]  # the probe read the cached activations


def test_exact_probe_head_is_the_ridge_solution(tiny_backbone, digits32):
    X, y = digits32
    target = y.astype(float) * 3 + 1
    reg = TransferRegressor(**tiny(tiny_backbone, freeze_depth="all", probe_alpha=10.0))
    reg.fit(X, target)
    standard = (target - target.mean()) / target.std()
    ridge = Ridge(alpha=10.0).fit(frozen_features(tiny_backbone, X), standard)
    expected = ridge.predict(frozen_features(tiny_backbone, X)) * target.std() + target.mean()
    np.testing.assert_allclose(reg.predict(X), expected, rtol=1e-4, atol=1e-4)


def test_exact_probe_chooses_its_penalty_and_pickles(tiny_backbone, digits32, tmp_path):
    X, y = digits32
    clf = PretrainedClassifier(**tiny(tiny_backbone, freeze_depth="all")).fit(X, y)
    assert clf.probe_alpha_ in (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)
    assert clf.score(X, y) > 0.6  # 3 classes; a random 16-feature trunk
    path = clf.save_weights(tmp_path / "probe.safetensors")
    again = PretrainedClassifier(**tiny(tiny_backbone, weights=str(path),
                                        freeze_depth="all", source_head="keep",
                                        max_epochs=1, lr=1e-12))
    with pytest.warns(ConvergenceWarning):  # the kept head trains by gradient steps
        again.fit(X, y)
    np.testing.assert_allclose(again.predict_proba(X), clf.predict_proba(X), atol=1e-5)


@pytest.mark.parametrize("n_classes", [2, 4])
def test_probe_solver_matches_scikit_learn(tabular, n_classes):
    """The L-BFGS solve minimises LogisticRegression's objective (binary:
    scikit-learn's single weight vector), with and without sample weights."""
    X, y = tabular
    keep = y < n_classes
    X, y = X[keep][:300], y[keep][:300]
    sample_weight = np.random.RandomState(1).uniform(0.2, 3.0, len(y))
    sample_weight /= sample_weight.mean()
    solution = probe.solve("classification", torch.as_tensor(X, dtype=torch.float32), y,
                           sample_weight, n_outputs=n_classes, alpha=0.3, seed=0)
    reference = LogisticRegression(C=1 / 0.3, tol=1e-10, max_iter=10_000).fit(
        X, y, sample_weight=sample_weight)
    logits = X @ solution.weight.T + solution.bias
    proba = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(proba / proba.sum(1, keepdims=True),
                               reference.predict_proba(X), atol=1e-4)


@pytest.mark.slow
def test_probe_penalty_search_agrees_with_logistic_regression_cv(tabular):
    X, y = tabular
    X, y = X[:400], y[:400]
    chosen = probe.solve("classification", torch.as_tensor(X, dtype=torch.float32), y,
                         np.ones(len(y)), n_outputs=10, alpha="auto", seed=3).alpha
    search = LogisticRegressionCV(
        Cs=[1 / a for a in probe.ALPHAS], scoring="neg_log_loss", max_iter=10_000,
        cv=StratifiedKFold(5, shuffle=True, random_state=3), **CV_OPTIONS).fit(X, y)
    assert chosen == pytest.approx(1 / np.atleast_1d(search.C_)[0])


def test_probe_is_used_only_when_it_is_exact(tiny_backbone, digits32):
    X, y = digits32
    hidden = PretrainedClassifier(**tiny(tiny_backbone, freeze_depth="all", head=(8,),
                                         max_epochs=2))
    with pytest.warns(ConvergenceWarning):
        hidden.fit(X, y)
    assert hidden.n_iter_ == 2 and not hasattr(hidden, "probe_alpha_")


# -- probe, then fine-tune -------------------------------------------------------------


def test_lp_ft_starts_from_the_probe(tiny_backbone, digits32):
    X, y = digits32
    probe = PretrainedClassifier(**tiny(tiny_backbone, freeze_depth="all", probe_alpha=1.0))
    probe.fit(X, y)
    lpft = PretrainedClassifier(**tiny(tiny_backbone, freeze_depth=1, head_init="probe",
                                       probe_alpha=1.0, lr=1e-12, max_epochs=1,
                                       augment=None))
    random = PretrainedClassifier(**tiny(tiny_backbone, freeze_depth=1, lr=1e-12,
                                         max_epochs=1, augment=None))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        lpft.fit(X, y)
        random.fit(X, y)
    start = probe.net_.module_.head[-1].weight
    torch.testing.assert_close(lpft.net_.module_.head[-1].weight, start, atol=1e-6, rtol=0)
    assert not torch.allclose(random.net_.module_.head[-1].weight, start, atol=1e-2)
    assert lpft.probe_alpha_ == 1.0 and lpft.n_iter_ == 1


def test_lp_ft_needs_a_linear_head(tiny_backbone, digits32):
    X, y = digits32
    with pytest.raises(ValueError, match=r"head_init='probe' .* needs a linear head"):
        PretrainedClassifier(**tiny(tiny_backbone, head_init="probe", head=(8,))).fit(X, y)
