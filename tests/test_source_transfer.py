"""A fitted estimator as the source of another (``backbone=estimator``), and
its weights saved to a file (``save_weights``, ``weights=path``): the trunk is
copied and never modified, the head kept or rebuilt (``source_head``),
classification to regression and back, on sklearn's digits."""

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV

from sktransfer import MLP, PretrainedClassifier, TransferRegressor

from .conftest import LONGER_MLP as MLP_PARAMS



@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


@pytest.fixture(scope="module")
def source(digits):
    """An MLP classifier fitted on digits 0-4 (the source task)."""
    X, y = digits
    return PretrainedClassifier(**MLP_PARAMS).fit(X[y < 5], y[y < 5])


def _trunk_params(est):
    return {k: v.detach().clone() for k, v in est.net_.module_.trunk.state_dict().items()}


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_transfer_copies_the_trunk_and_builds_a_new_head(source, digits):
    X, y = digits
    before = _trunk_params(source)
    target = PretrainedClassifier(**dict(MLP_PARAMS, backbone=source, freeze_depth="all"))
    target.fit(X[y >= 5][:100], y[y >= 5][:100])
    assert _same(_trunk_params(target), before)  # frozen: still the source's trunk
    assert list(target.classes_) == [5, 6, 7, 8, 9]
    assert target.n_stages_ == 2
    assert target.net_.module_.trunk is not source.net_.module_.trunk
    assert _same(_trunk_params(source), before)  # the source is never modified
    assert all(p.requires_grad for p in source.net_.module_.trunk.parameters())


def test_fine_tuning_starts_from_the_source_weights(source, digits):
    X, y = digits
    target = PretrainedClassifier(**dict(MLP_PARAMS, backbone=source, lr=1e-9, max_epochs=1))
    target.fit(X[y >= 5][:50], y[y >= 5][:50])
    after, src = _trunk_params(target), _trunk_params(source)
    assert all(torch.allclose(after[k], src[k], atol=1e-6) for k in src)


@pytest.mark.slow
def test_clone_and_grid_search_start_from_the_source_and_never_refit_it(source, digits):
    X, y = digits
    src = _trunk_params(source)
    net_before = source.net_
    target = PretrainedClassifier(**dict(MLP_PARAMS, backbone=source, max_epochs=3))
    cloned = clone(target)
    assert cloned.backbone is source  # the fitted source itself, not an unfitted copy

    def distance_to_source(est, X_, y_):
        # with freeze_depth="all" the trunk must still be the source's exactly
        state = _trunk_params(est)
        return -max(float((state[k] - src[k]).abs().max()) for k in src)

    grid = {"freeze_depth": ["all", 1], "lr": [1e-3, 1e-2]}
    search = GridSearchCV(target, grid, cv=3, scoring={"acc": "accuracy", "dist": distance_to_source},
                          refit="acc", error_score="raise")
    search.fit(X[y >= 5][:150], y[y >= 5][:150])
    results = search.cv_results_
    for params, dist in zip(results["params"], results["mean_test_dist"]):
        if params["freeze_depth"] == "all":
            assert dist == 0.0
        else:
            assert dist < 0.0  # the unfrozen stage moved away from the source weights
    assert source.net_ is net_before and _same(_trunk_params(source), src)
    assert search.best_estimator_.backbone is source


def test_classification_to_regression_and_back(source, digits):
    X, y = digits
    reg = TransferRegressor(**dict(MLP_PARAMS, backbone=source, freeze_depth=1))
    reg.fit(X[y >= 5], y[y >= 5].astype(float))
    assert reg.predict(X[:5]).shape == (5,)
    back = PretrainedClassifier(**dict(MLP_PARAMS, backbone=reg, freeze_depth="all", max_epochs=2))
    back.fit(X[y < 5][:100], y[y < 5][:100])
    assert back.n_stages_ == 2


def test_unfitted_source_is_rejected(digits):
    X, y = digits
    with pytest.raises(ValueError, match="unfitted PretrainedClassifier; fit it"):
        PretrainedClassifier(**dict(MLP_PARAMS, backbone=PretrainedClassifier(**MLP_PARAMS))).fit(X, y)


def test_source_with_other_features_is_rejected(source, digits):
    X, y = digits
    with pytest.raises(ValueError, match="fitted on 64 features"):
        PretrainedClassifier(**dict(MLP_PARAMS, backbone=source)).fit(X[:, :10], y)


def test_save_weights_round_trip(source, digits, tmp_path):
    X, y = digits
    path = source.save_weights(tmp_path / "source.safetensors")
    assert path.is_file() and (tmp_path / "source.json").is_file()
    # same task shape: the head is kept, so predictions match before any step
    same = PretrainedClassifier(**dict(MLP_PARAMS, weights=str(path), lr=1e-12, max_epochs=1))
    same.fit(X[y < 5], y[y < 5])
    np.testing.assert_allclose(same.predict_proba(X[:20]), source.predict_proba(X[:20]), atol=1e-6)
    # a new target: the trunk is loaded, a new head built
    other = PretrainedClassifier(**dict(MLP_PARAMS, weights=path, freeze_depth="all", max_epochs=1))
    other.fit(X[y >= 5][:60], y[y >= 5][:60])
    assert _same(_trunk_params(other), _trunk_params(source))
    assert other.net_.module_.head[-1].out_features == 5


def test_weights_file_of_another_architecture_is_rejected(source, tmp_path, digits):
    X, y = digits
    path = source.save_weights(tmp_path / "source.safetensors")
    wrong = PretrainedClassifier(**dict(MLP_PARAMS, backbone=MLP(hidden_layer_sizes=(64, 16)), weights=path))
    with pytest.raises(ValueError, match="different architecture.*hidden_layer_sizes"):
        wrong.fit(X, y)


def test_save_weights_needs_safetensors_suffix(source, tmp_path):
    with pytest.raises(ValueError, match=".safetensors suffix"):
        source.save_weights(tmp_path / "w.pth")


def _head(est):
    return [p.detach().clone() for p in est.net_.module_.head.parameters()]


def test_source_head_modes(source, digits):
    X, y = digits
    still = dict(MLP_PARAMS, lr=1e-300, max_epochs=1)  # no step moves anything: compare starts
    same = PretrainedClassifier(**dict(still, backbone=source)).fit(X[y < 5], y[y < 5])
    assert all(torch.equal(a, b) for a, b in zip(_head(same), _head(source)))  # auto: kept
    other = PretrainedClassifier(**dict(still, backbone=source)).fit(X[y >= 5], y[y >= 5])
    assert not any(torch.equal(a, b) for a, b in zip(_head(other), _head(source)))  # new classes
    kept = PretrainedClassifier(**dict(still, backbone=source, source_head="keep"))
    kept.fit(X[y >= 5], y[y >= 5])  # 5 classes again: same shape, kept on request
    assert all(torch.equal(a, b) for a, b in zip(_head(kept), _head(source)))
    fresh = PretrainedClassifier(**dict(still, backbone=source, source_head="new"))
    fresh.fit(X[y < 5], y[y < 5])
    assert not any(torch.equal(a, b) for a, b in zip(_head(fresh), _head(source)))
    with pytest.raises(ValueError, match="source_head='keep' but the source head"):
        PretrainedClassifier(**dict(still, backbone=source, source_head="keep")).fit(
            X[y < 3], y[y < 3])
    with pytest.raises(ValueError, match="brings no head"):
        PretrainedClassifier(**dict(still, source_head="keep")).fit(X, y)


@pytest.mark.slow
def test_file_and_estimator_routes_start_from_the_same_network(source, digits, tmp_path):
    X, y = digits
    path = source.save_weights(tmp_path / "source.safetensors")
    still = dict(MLP_PARAMS, lr=1e-300, max_epochs=1, random_state=3, freeze_depth="all")
    via_estimator = PretrainedClassifier(**dict(still, backbone=source)).fit(X[y >= 6], y[y >= 6])
    via_file = PretrainedClassifier(**dict(still, weights=path)).fit(X[y >= 6], y[y >= 6])
    for a, b in zip(via_estimator.net_.module_.parameters(), via_file.net_.module_.parameters()):
        assert torch.equal(a, b)
    # a kept head comes back bit for bit in float64
    kept = PretrainedClassifier(**dict(still, weights=path)).fit(X[y < 5], y[y < 5])
    assert all(torch.equal(a, b) for a, b in zip(_head(kept), _head(source)))
