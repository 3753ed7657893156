"""TransferRegressor: scores on real regression data, several outputs on
different scales, an image source's trunk for an image target, every
fine-tuning option together, and targets it refuses."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_diabetes, load_digits

from sktransfer import MLP, PretrainedClassifier, TransferFeatures, TransferRegressor

from .conftest import ALL_OPTIONS, fast_params, tiny, LONGER_MLP as MLP_PARAMS



def _trunk_params(est):
    return {k: v.detach().clone() for k, v in est.net_.module_.trunk.state_dict().items()}


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_regressor_on_diabetes_scores_r2():
    X, y = load_diabetes(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    for loss in ("squared_error", "huber", "absolute_error"):
        reg = TransferRegressor(**dict(MLP_PARAMS, loss=loss, backbone=MLP(hidden_layer_sizes=(32,)), max_epochs=30,
                                       lr=1e-3)).fit(X[:300], y[:300])
        pred = reg.predict(X[300:])
        assert pred.dtype == np.float64 and pred.shape == (len(X) - 300,)
        assert reg.score(X[300:], y[300:]) > 0.3, loss


def test_regressor_multi_output_and_target_scaling():
    X, y = load_diabetes(return_X_y=True)
    Y = np.column_stack([y, 1000.0 + 0.01 * y])  # very different scales
    reg = TransferRegressor(**dict(MLP_PARAMS, backbone=MLP(hidden_layer_sizes=(32,)), max_epochs=20, lr=1e-3))
    reg.fit(X, Y)
    pred = reg.predict(X)
    assert pred.shape == (len(X), 2)
    np.testing.assert_allclose(pred.mean(axis=0), Y.mean(axis=0), rtol=0.05)


@pytest.mark.slow
def test_image_source_to_image_regression(digits_small):
    X, y, X_test, _ = digits_small
    src = PretrainedClassifier(**fast_params(freeze_depth=3, max_epochs=1)).fit(X, y)
    ink = X.reshape(len(X), -1).mean(axis=1) / 255.0  # a real property of each image
    reg = TransferRegressor(backbone=src, freeze_depth="all", max_epochs=2, lr=1e-2,
                            device="cpu", random_state=0).fit(X, ink)
    assert reg.image_size_ == 32  # the source's input size carries over
    assert reg.predict(X_test).shape == (len(X_test),)
    assert _same(_trunk_params(reg), _trunk_params(src))


def test_regressor_and_features_share_the_engine(tiny_backbone, digits32):
    X, y = digits32
    reg = TransferRegressor(**tiny(tiny_backbone, freeze_depth="all")).fit(X, y.astype(float))
    assert reg.predict(X[:3]).shape == (3,) and reg.cache_info_["used"]
    name, weights = tiny_backbone
    features = TransferFeatures(name, weights=weights, stage=2, device="cpu").fit(X)
    assert features.transform(X[:3]).shape == (3, 16) and features.n_stages_ == 3


@pytest.mark.slow
def test_every_option_on_an_image_regressor(digits_small):
    X, y, _, _ = digits_small
    options = dict(ALL_OPTIONS, augment="light", lr="auto")
    reg = TransferRegressor(**fast_params(max_epochs=2, **options)).fit(X, y.astype(float))
    assert reg.predict(X[:4]).shape == (4,)


def test_targets_too_large_to_standardise_are_refused():
    X, y = load_digits(return_X_y=True)
    with pytest.raises(ValueError, match="too large to standardise"):
        TransferRegressor("mlp", max_epochs=1).fit(X, y * 1e160)


def test_nan_rows_need_unlabeled_or_domain_adaptation():
    X, y = load_digits(return_X_y=True)
    X, target = X[:200] / 16.0, y[:200].astype(float)
    target[::5] = np.nan
    with pytest.raises(ValueError, match=r"y contains NaN in 40 rows.*unlabeled='ignore'"):
        TransferRegressor(**dict(MLP_PARAMS, max_epochs=2)).fit(X, target)
    ignored = TransferRegressor(**dict(MLP_PARAMS, max_epochs=2, unlabeled="ignore"))
    assert ignored.fit(X, target).predict(X[:3]).shape == (3,)
    # in a 2-D y, NaN in some columns is a missing target, not an unlabeled sample
    Y = np.c_[y[:200], y[:200] % 2].astype(float)
    Y[::5, 0] = np.nan
    partial = TransferRegressor(**dict(MLP_PARAMS, max_epochs=2)).fit(X, Y)
    assert partial.predict(X[:3]).shape == (3, 2)
