"""Parameter transfer for linear models: TransferLogisticRegression,
TransferRidge and their CV variants, with every kind of source."""

import pickle
import warnings

import numpy as np
import pytest
from scipy import sparse
from scipy.optimize import approx_fprime
from sklearn.base import clone
from sklearn.datasets import load_diabetes, load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sktransfer import (
    NegativeTransferWarning,
    TransferLogisticRegression,
    TransferLogisticRegressionCV,
    TransferRidge,
    TransferRidgeCV,
)
from sktransfer._linear_solvers import LogisticProblem

TIGHT = dict(tol=1e-10, max_iter=5000)


@pytest.fixture(scope="module")
def wine():
    X, y = load_wine(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _shifted_tasks(seed, n_target, *, n_features=5, wrong=False):
    """A source and a target regression with nearly the same coefficients
    (the target's negated when ``wrong``)."""
    rng = np.random.RandomState(seed)
    coef = rng.randn(n_features)
    X_source, X_target = rng.randn(500, n_features), rng.randn(n_target + 500, n_features)
    target_coef = (-coef if wrong else coef) + 0.05 * rng.randn(n_features)
    y_source = X_source @ coef + 0.5 * rng.randn(500)
    y_target = X_target @ target_coef + 3.0 + 2.0 * rng.randn(len(X_target))
    return (X_source, y_source), (X_target[:n_target], y_target[:n_target]), \
        (X_target[n_target:], y_target[n_target:])


# -- the ends of the penalty -----------------------------------------------------------


def test_logistic_infinite_alpha_keeps_the_source_coefficients(wine):
    X, y = wine
    source = LogisticRegression(max_iter=1000).fit(X[::2], y[::2])
    model = TransferLogisticRegression(source=source, alpha=np.inf).fit(X[1::2], y[1::2])
    np.testing.assert_array_equal(model.coef_, source.coef_)
    huge = TransferLogisticRegression(source=source, alpha=1e10, **TIGHT).fit(X[1::2], y[1::2])
    np.testing.assert_allclose(huge.coef_, source.coef_, atol=1e-6)


def test_logistic_binary_infinite_alpha_keeps_the_source_coefficients(wine):
    X, y = wine
    rows = y < 2
    source = LogisticRegression().fit(X[rows][::2], y[rows][::2])
    model = TransferLogisticRegression(source=source, alpha=np.inf).fit(X[rows][1::2],
                                                                         y[rows][1::2])
    assert model.coef_.shape == (1, X.shape[1])
    np.testing.assert_array_equal(model.coef_, source.coef_)


def test_ridge_infinite_alpha_keeps_the_source_coefficients(diabetes):
    X, y = diabetes
    source = Ridge(alpha=1.0).fit(X[:300], y[:300])
    model = TransferRidge(source=source, alpha=np.inf).fit(X[300:], y[300:])
    np.testing.assert_array_equal(model.coef_, source.coef_)
    huge = TransferRidge(source=source, alpha=1e12).fit(X[300:], y[300:])
    np.testing.assert_allclose(huge.coef_, source.coef_, atol=1e-6)


@pytest.mark.parametrize("binary", [True, False])
def test_logistic_without_source_is_sklearns(wine, binary):
    X, y = wine
    if binary:
        X, y = X[y < 2], y[y < 2]
    ours = TransferLogisticRegression(alpha=2.0, **TIGHT).fit(X, y)
    theirs = LogisticRegression(C=0.5, tol=1e-10, max_iter=5000).fit(X, y)
    np.testing.assert_allclose(ours.coef_, theirs.coef_, atol=1e-5)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-6)


def test_logistic_small_alpha_is_the_target_only_fit(wine):
    X, y = wine
    noisy = y.copy()
    noisy[::7] = (noisy[::7] + 1) % 3  # not separable: the unpenalised optimum exists
    source = LogisticRegression().fit(-X, y)  # far from the target's solution
    ours = TransferLogisticRegression(source=source, alpha=1e-8, **TIGHT).fit(X, noisy)
    theirs = LogisticRegression(C=1e8, tol=1e-10, max_iter=5000).fit(X, noisy)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-4)


def test_ridge_without_source_is_sklearns(diabetes):
    X, y = diabetes
    ours = TransferRidge(alpha=3.0).fit(X, y)
    theirs = Ridge(alpha=3.0).fit(X, y)
    np.testing.assert_allclose(ours.coef_, theirs.coef_)
    np.testing.assert_allclose(ours.intercept_, theirs.intercept_)


def test_ridge_zero_alpha_is_least_squares(diabetes):
    X, y = diabetes
    source = Ridge().fit(X[:200], y[:200] * 3)
    ours = TransferRidge(source=source, alpha=0.0).fit(X[200:], y[200:])
    theirs = LinearRegression().fit(X[200:], y[200:])
    np.testing.assert_allclose(ours.coef_, theirs.coef_, atol=1e-8)


def test_ridge_matches_the_closed_form_by_hand(diabetes):
    X, y = diabetes
    X, Y = X[:60, :4], np.column_stack([y[:60], -2 * y[:60] + 5])
    w0, alpha = np.array([[1.0, -2.0, 3.0, 0.5], [0.0, 4.0, -1.0, 2.0]]), 7.0
    weights = np.linspace(0.5, 2.0, len(X))
    model = TransferRidge(source=(w0, [10.0, -10.0]), alpha=alpha).fit(X, Y,
                                                                       sample_weight=weights)
    # minimise sum_i s_i ||y_i - W x_i - b||^2 + alpha ||W - W0||^2 over theta = [W^T; b]
    design = np.column_stack([X, np.ones(len(X))])
    penalty = np.diag([1.0] * 4 + [0.0])
    lhs = design.T @ (weights[:, None] * design) + alpha * penalty
    rhs = design.T @ (weights[:, None] * Y) + alpha * penalty @ np.vstack([w0.T, np.zeros(2)])
    theta = np.linalg.solve(lhs, rhs)
    np.testing.assert_allclose(model.coef_, theta[:4].T, rtol=1e-10)
    np.testing.assert_allclose(model.intercept_, theta[4], rtol=1e-10)


# -- the logistic objective ----------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 3])
def test_logistic_gradient_matches_finite_differences(k):
    rng = np.random.RandomState(0)
    X, targets = rng.randn(40, 4), rng.randint(0, max(k, 2), 40)
    problem = LogisticProblem(X, targets, rng.uniform(0.5, 2, 40), rng.randn(k, 4))

    def flat_loss(flat):
        return problem.loss_and_gradients(flat[:4 * k].reshape(k, 4), flat[4 * k:], 3.0)[0]

    point = rng.randn(5 * k)
    _, grad_w, grad_b = problem.loss_and_gradients(point[:4 * k].reshape(k, 4),
                                                   point[4 * k:], 3.0)
    numeric = approx_fprime(point, flat_loss, 1e-7)
    np.testing.assert_allclose(np.concatenate([grad_w.ravel(), grad_b]), numeric, atol=1e-5)


def test_intercept_is_not_penalised(diabetes):
    X, y = diabetes
    source = Ridge().fit(X[:200], y[:200])
    base = TransferRidge(source=source, alpha=50.0).fit(X[200:], y[200:])
    shifted = TransferRidge(source=source, alpha=50.0).fit(X[200:], y[200:] + 1000.0)
    np.testing.assert_allclose(shifted.coef_, base.coef_)
    np.testing.assert_allclose(shifted.intercept_, base.intercept_ + 1000.0)


def test_logistic_intercept_is_fitted_at_infinite_alpha(wine):
    X, y = wine
    rows = y < 2
    source = LogisticRegression(tol=1e-10, max_iter=5000).fit(X[rows], y[rows])
    shifted = (source.coef_, source.intercept_ + 50.0)  # a far-off source intercept
    model = TransferLogisticRegression(source=shifted, alpha=np.inf, **TIGHT).fit(
        X[rows], y[rows])
    np.testing.assert_allclose(model.intercept_, source.intercept_, atol=1e-4)


# -- sample weights ------------------------------------------------------------------------


@pytest.mark.parametrize("Estimator", [TransferLogisticRegression, TransferRidge])
def test_sample_weight_is_repetition(wine, Estimator):
    X, y = wine
    X, y = X[::3], y[::3].astype(float) if Estimator is TransferRidge else y[::3]
    source = (np.ones((1 if Estimator is TransferRidge else 3, X.shape[1])), 0.0)
    repeats = np.arange(len(X)) % 3
    params = TIGHT if Estimator is TransferLogisticRegression else {}
    weighted = Estimator(source=source, alpha=5.0, **params).fit(X, y, sample_weight=repeats)
    repeated = Estimator(source=source, alpha=5.0, **params).fit(
        np.repeat(X, repeats, axis=0), np.repeat(y, repeats))
    np.testing.assert_allclose(weighted.coef_, repeated.coef_, atol=1e-6)
    np.testing.assert_allclose(weighted.intercept_, repeated.intercept_, atol=1e-6)


# -- classes matched by label --------------------------------------------------------------


def test_classes_are_matched_by_label(wine):
    X, y = wine
    labels = np.array(["a", "b", "c"])[y]
    source = LogisticRegression().fit(X[labels != "c"], labels[labels != "c"])  # a, b
    target = np.where(labels == "a", "d", labels)  # b, c, d
    model = TransferLogisticRegression(source=source, alpha=np.inf).fit(X, target)
    assert model.classes_.tolist() == ["b", "c", "d"]
    # the binary source's row w becomes -w/2 (a) and w/2 (b); c and d start from zero
    np.testing.assert_allclose(model.source_coef_, [source.coef_[0] / 2, np.zeros(13),
                                                    np.zeros(13)])


def test_binary_target_from_a_multiclass_source_takes_the_log_odds(wine):
    X, y = wine
    source = LogisticRegression(max_iter=1000).fit(X, y)
    rows = y > 0
    model = TransferLogisticRegression(source=source, alpha=np.inf).fit(X[rows], y[rows])
    np.testing.assert_allclose(model.coef_, source.coef_[2:3] - source.coef_[1:2])


def test_raw_coefficients_follow_the_sorted_classes(wine):
    X, y = wine
    coef = np.arange(39.0).reshape(3, 13)
    model = TransferLogisticRegression(source=(coef, np.zeros(3)), alpha=np.inf).fit(X, y)
    np.testing.assert_array_equal(model.coef_, coef)
    with pytest.raises(ValueError, match="has 2 rows but the target has 3 classes"):
        TransferLogisticRegression(source=(coef[:2], np.zeros(2))).fit(X, y)


def test_a_source_sharing_no_class_is_an_error(wine):
    X, y = wine
    source = LogisticRegression().fit(X, y + 10)
    with pytest.raises(ValueError, match="none of which is a target class"):
        TransferLogisticRegression(source=source).fit(X, y)


# -- sources -------------------------------------------------------------------------------


def test_pipeline_source_applies_its_preprocessing(wine):
    X, y = load_wine(return_X_y=True)  # raw: the source Pipeline scales it
    source = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(
        X[::2], y[::2])
    model = TransferLogisticRegression(source=source, alpha=np.inf).fit(X[1::2], y[1::2])
    np.testing.assert_array_equal(model.coef_, source[-1].coef_)
    scaled = source[0].transform(X)
    expected = scaled @ model.coef_.T + model.intercept_
    np.testing.assert_allclose(model.decision_function(X), expected)
    assert model.n_features_in_ == X.shape[1]


def test_pipeline_source_ridge_predicts_through_the_preprocessing(diabetes):
    X, y = load_diabetes(return_X_y=True)
    source = make_pipeline(StandardScaler(), Ridge()).fit(X[:300], y[:300])
    model = TransferRidge(source=source, alpha=np.inf).fit(X[300:], y[300:])
    offset = model.intercept_ - source[-1].intercept_
    np.testing.assert_allclose(model.predict(X), source.predict(X) + offset)


def test_feature_mismatch_is_a_clear_error(wine):
    X, y = wine
    source = LogisticRegression().fit(X[:, :5], y)
    with pytest.raises(ValueError, match="X has 13 features, but the source "
                                         "LogisticRegression has 5"):
        TransferLogisticRegression(source=source).fit(X, y)


@pytest.mark.parametrize("source, error, match", [
    (LogisticRegression(), ValueError, "unfitted LogisticRegression"),
    (StandardScaler().fit([[0.0], [1.0]]), TypeError, "has no coef_"),
    ("coefficients", TypeError, "source must be"),
    ((np.ones(3),), ValueError, "tuple must be"),
])
def test_invalid_sources(source, error, match):
    X, y = np.random.RandomState(0).randn(20, 3), np.arange(20) % 2
    with pytest.raises(error, match=match):
        TransferLogisticRegression(source=source).fit(X, y)


def test_ridge_refuses_a_classifier_source_and_other_outputs(diabetes):
    X, y = diabetes
    with pytest.raises(ValueError, match="is a classifier"):
        TransferRidge(source=LogisticRegression().fit(X, y > 150)).fit(X, y)
    with pytest.raises(ValueError, match="has 2 outputs but y has 1"):
        TransferRidge(source=(np.ones((2, 10)), [0.0, 0.0])).fit(X, y)


def test_sparse_input_equals_dense(wine):
    X, y = wine
    dense = TransferLogisticRegression(alpha=3.0, **TIGHT).fit(X, y)
    sparse_fit = TransferLogisticRegression(alpha=3.0, **TIGHT).fit(sparse.csr_matrix(X), y)
    np.testing.assert_allclose(dense.coef_, sparse_fit.coef_, atol=1e-6)


def test_convergence_warning_and_n_iter(wine):
    X, y = wine
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        model = TransferLogisticRegression(alpha=1e-6, max_iter=2).fit(X, y)
    assert model.n_iter_.shape == (1,) and model.n_iter_[0] <= 2


# -- cross-validation ----------------------------------------------------------------------


def test_ridge_cv_keeps_a_right_source():
    # leave-one-out on 10 samples is noisy: judged over five draws
    strong, gains = 0, []
    for seed in range(5):
        (Xs, ys), (Xt, yt), (Xtest, ytest) = _shifted_tasks(seed, 10)
        model = TransferRidgeCV(source=LinearRegression().fit(Xs, ys)).fit(Xt, yt)
        assert model.source_used_ and model.transfer_gain_ > 0
        strong += model.alpha_ >= np.median(model.alphas_[1:])
        gains.append(model.score(Xtest, ytest) - TransferRidgeCV().fit(Xt, yt).score(Xtest, ytest))
    assert strong >= 4 and min(gains) > 0


def test_ridge_cv_picks_a_small_alpha_and_warns_on_a_wrong_source():
    for seed in range(3):
        (Xs, ys), (Xt, yt), _ = _shifted_tasks(seed, 30, wrong=True)
        with pytest.warns(NegativeTransferWarning, match="negative transfer"):
            model = TransferRidgeCV(source=LinearRegression().fit(Xs, ys)).fit(Xt, yt)
        assert model.transfer_gain_ < 0
        assert model.alpha_ <= np.median(model.alphas_[1:])
        # along the source path the small end (the target data decide) beats the source end
        scores = model.cv_results_["mean_test_score"]
        assert scores[-1] > 2 * scores[0]


@pytest.mark.parametrize("seed", [0, 1])
def test_ridge_cv_keeps_the_target_only_model_when_clearly_better(seed):
    # pure noise on 30 samples and 20 features: the target-only model shrinks
    # to the mean, while the source path either keeps large wrong
    # coefficients or overfits the noise
    rng = np.random.RandomState(seed)
    X, y = rng.randn(30, 20), rng.randn(30)
    with pytest.warns(NegativeTransferWarning, match="keeps the target-only model"):
        model = TransferRidgeCV(source=(np.full(20, 5.0), 0.0)).fit(X, y)
    assert not model.source_used_ and model.transfer_gain_ < 0
    plain = TransferRidgeCV().fit(X, y)
    np.testing.assert_allclose(model.coef_, plain.coef_)
    np.testing.assert_allclose(model.source_coef_, 5.0)


def test_log_evidence_is_the_gaussian_marginal_likelihood():
    """Differences between penalties equal those of the dense Gaussian
    log-likelihood of the centred residuals, with covariance
    sigma^2 (I + A A^T / alpha) and sigma^2 at its maximum."""
    from sktransfer._linear_solvers import RidgeProblem

    (Xs, ys), (Xt, yt), _ = _shifted_tasks(1, 12)
    w0 = LinearRegression().fit(Xs, ys).coef_[None, :]
    problem = RidgeProblem.build(Xt, yt[:, None], np.ones(len(yt)), w0)
    A = Xt - Xt.mean(0)
    r = yt - Xt @ w0[0]
    r = r - r.mean()
    dof = len(yt) - 1

    def dense(alpha):
        cov = np.eye(len(yt)) + A @ A.T / alpha
        quadratic = r @ np.linalg.solve(cov, r)
        return -0.5 * dof * np.log(quadratic / dof) - 0.5 * np.linalg.slogdet(cov)[1]

    alphas = [0.01, 0.3, 10.0, 1e4]
    ours = np.array([problem.log_evidence(a) for a in alphas])
    theirs = np.array([dense(a) for a in alphas])
    np.testing.assert_allclose(ours - ours[0], theirs - theirs[0], rtol=1e-8, atol=1e-8)
    assert problem.log_evidence(np.inf) == pytest.approx(-0.5 * dof * np.log(r @ r / dof))


def test_ridge_evidence_keeps_a_right_source_and_refuses_a_wrong_one():
    for seed in range(3):
        (Xs, ys), (Xt, yt), (Xtest, ytest) = _shifted_tasks(seed, 10)
        source = LinearRegression().fit(Xs, ys)
        model = TransferRidgeCV(source=source, criterion="evidence").fit(Xt, yt)
        assert model.source_used_ and model.transfer_gain_ > 0
        evidence = model.cv_results_["log_evidence"]
        assert evidence[list(model.alphas_).index(model.alpha_)] == evidence.max()
        assert model.score(Xtest, ytest) > TransferRidgeCV().fit(Xt, yt).score(Xtest, ytest)
    rng = np.random.RandomState(0)
    X, y = rng.randn(30, 20), rng.randn(30)
    with pytest.warns(NegativeTransferWarning, match="more likely without"):
        wrong = TransferRidgeCV(source=(np.full(20, 5.0), 0.0), criterion="evidence").fit(X, y)
    assert not wrong.source_used_
    plain = TransferRidgeCV(criterion="evidence").fit(X, y)
    np.testing.assert_allclose(wrong.coef_, plain.coef_)
    assert plain.alpha_ == plain.alphas_[np.argmax(plain.cv_results_["log_evidence"])]


def test_ridge_evidence_is_steadier_than_leave_one_out_on_ten_real_cars():
    """Auto MPG: a ridge fitted on the American cars moved to 10 European or
    Japanese ones, over five draws (the held-out cars fixed)."""
    from mlxtend.data import autompg_data

    X, y = autompg_data()
    features, american = X[:, :6].astype(float), X[:, 6] == 1
    source = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(features[american],
                                                                   y[american])
    target = np.random.RandomState(0).permutation(np.flatnonzero(~american))
    test, pool = target[:40], target[40:]
    scores = {"cv": [], "evidence": []}
    for seed in range(5):
        rows = np.random.RandomState(seed).permutation(pool)[:10]
        for criterion, kept in scores.items():
            model = TransferRidgeCV(source=source, criterion=criterion)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NegativeTransferWarning)
                model.fit(features[rows], y[rows])
            kept.append(model.score(features[test], y[test]))
    assert np.mean(scores["evidence"]) > np.mean(scores["cv"]) + 0.05, scores
    assert np.std(scores["evidence"]) < np.std(scores["cv"]), scores


def test_ridge_cv_loo_matches_explicit_leave_one_out():
    from sklearn.model_selection import LeaveOneOut

    (Xs, ys), (Xt, yt), _ = _shifted_tasks(2, 15)
    source = LinearRegression().fit(Xs, ys)
    fast = TransferRidgeCV(source=source, alphas=[0.1, 1.0, 10.0]).fit(Xt, yt)
    slow = TransferRidgeCV(source=source, alphas=[0.1, 1.0, 10.0], cv=LeaveOneOut()).fit(Xt, yt)
    np.testing.assert_allclose(fast.cv_results_["mean_test_score"],
                               slow.cv_results_["mean_test_score"], rtol=1e-8)


def test_logistic_cv_keeps_a_right_source_and_warns_on_a_wrong_one(wine):
    X, y = wine
    source = LogisticRegression().fit(X[::2], y[::2])
    target = np.arange(1, len(X), 2)[::4]  # 22 samples
    model = TransferLogisticRegressionCV(source=source).fit(X[target], y[target])
    assert model.source_used_ and model.transfer_gain_ > 0
    assert model.alpha_ > model.alphas_[-1] * 1e3
    wrong = (-source.coef_, source.intercept_, source.classes_)
    with pytest.warns(NegativeTransferWarning):
        bad = TransferLogisticRegressionCV(source=wrong).fit(X[1::2], y[1::2])
    assert not bad.source_used_ and bad.transfer_gain_ < 0


def test_cv_path_includes_both_ends(diabetes):
    X, y = diabetes
    model = TransferRidgeCV(source=Ridge().fit(X, y), alphas=5).fit(X[:40], y[:40])
    assert np.isinf(model.alphas_[0]) and len(model.alphas_) == 6
    assert model.alphas_[-1] < 1e-3 * model.alphas_[1] and model.scores_.shape == (40, 6)
    assert set(model.cv_results_) >= {"alphas", "mean_test_score",
                                      "mean_test_score_target_only"}


def test_cv_without_source_is_plain_and_silent(wine):
    X, y = wine
    with warnings.catch_warnings():
        warnings.simplefilter("error", NegativeTransferWarning)
        model = TransferLogisticRegressionCV(alphas=4).fit(X, y)
    assert model.transfer_gain_ == 0.0 and not model.source_used_


def test_invalid_alphas(diabetes):
    X, y = diabetes
    with pytest.raises(ValueError, match="alphas must be"):
        TransferRidgeCV(alphas=[-1.0]).fit(X, y)


# -- scikit-learn protocol -----------------------------------------------------------------


def test_clone_keeps_the_fitted_source_and_pickle_round_trips(wine):
    X, y = wine
    source = LogisticRegression().fit(X, y)
    model = TransferLogisticRegression(source=source, alpha=3.0)
    assert clone(model).source is source
    fitted = model.fit(X, y)
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(again.predict_proba(X), fitted.predict_proba(X))


def test_grid_search_over_alpha(diabetes):
    X, y = load_diabetes(return_X_y=True)
    source = make_pipeline(StandardScaler(), Ridge()).fit(X[:300], y[:300])
    search = GridSearchCV(TransferRidge(source=source), {"alpha": [0.1, 10.0, np.inf]}, cv=3)
    search.fit(X[300:], y[300:])
    assert search.best_params_["alpha"] in (0.1, 10.0, np.inf)
    assert search.best_estimator_.source is source


# -- sktransfer estimators as sources --------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


@pytest.mark.slow  # trains a small network (torch loads)
def test_exact_probe_head_as_a_source(digits):
    from sktransfer import MLP, PretrainedClassifier, TransferFeatures

    X, y = digits
    probe = PretrainedClassifier(MLP(hidden_layer_sizes=(16,)), freeze_depth="all",
                                 device="cpu", random_state=0).fit(X[:600], y[:600])
    pipe = make_pipeline(TransferFeatures(probe, device="cpu"),
                         TransferLogisticRegression(source=probe, alpha=np.inf))
    pipe.fit(X[600:700], y[600:700])
    head = probe._linear_head()
    np.testing.assert_allclose(pipe[-1].coef_, head[0])
    np.testing.assert_array_equal(pipe[-1].classes_, probe.classes_)


@pytest.mark.slow  # trains a small network (torch loads)
def test_regressor_probe_head_is_in_the_units_of_y(digits):
    from sktransfer import MLP, TransferFeatures, TransferRegressor

    X, digit = digits
    y = 100.0 + 10.0 * digit
    probe = TransferRegressor(MLP(hidden_layer_sizes=(16,)), freeze_depth="all", device="cpu",
                              random_state=0).fit(X[:600], y[:600])
    pipe = make_pipeline(TransferFeatures(probe, device="cpu"),
                         TransferRidge(source=probe, alpha=np.inf)).fit(X[:600], y[:600])
    np.testing.assert_allclose(pipe.predict(X[600:700]), probe.predict(X[600:700]), atol=1e-3)


@pytest.mark.slow  # trains a small network (torch loads)
def test_a_network_head_is_refused(digits):
    from sktransfer import MLP, PretrainedClassifier

    X, y = digits
    net = PretrainedClassifier(MLP(hidden_layer_sizes=(8,)), head=(4,), max_epochs=1,
                               device="cpu", random_state=0).fit(X[:100], y[:100])
    with pytest.raises(ValueError, match="needs a head of one linear layer"):
        TransferLogisticRegression(source=net).fit(X[:50], y[:50])
