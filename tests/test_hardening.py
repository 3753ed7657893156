"""Fault and newcomer cases (issue 15): each test here failed before its fix."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold, cross_val_score

from sktransfer import PretrainedClassifier, TransferRegressor
from sktransfer._nn.net import MergedBatches, n_batches


def test_a_last_batch_of_one_joins_the_batch_before():
    for n, batch_size in ((33, 32), (65, 32), (5, 4), (32, 32), (1, 32), (34, 32)):
        batches = list(MergedBatches(n, batch_size))
        assert len(batches) == n_batches(n, batch_size)
        assert sorted(i for b in batches for i in b) == list(range(n))
        assert n == 1 or min(len(b) for b in batches) > 1


def test_batchnorm_never_sees_a_training_batch_of_one(mnist):
    """MobileNetV2 at 32 px ends in 1x1 feature maps: a batch of one image
    left its last BatchNorm one value per channel, and the fit raised (and
    cross-validation folds silently scored NaN)."""
    X, y = mnist
    X, y = X[:65], y[:65] % 2
    params = dict(backbone="mobilenet_v2", weights="IMAGENET1K_V1", image_size=32,
                  max_epochs=1, batch_size=32, random_state=0, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        PretrainedClassifier(**params).fit(X, y)  # 65 = 2 x 32 + 1
        PretrainedClassifier(**params, freeze_depth="all", unfreeze_at=0,
                             lr="auto").fit(X, y)  # the range test and unfreezing too
        scores = cross_val_score(PretrainedClassifier(**params), X[:49], y[:49],
                                 cv=KFold(3), error_score="raise")  # folds of 33 = 32 + 1
    assert np.isfinite(scores).all()


def test_regressor_with_a_batch_of_one_left_over(mnist):
    X, y = mnist
    reg = TransferRegressor("mobilenet_v2", weights="IMAGENET1K_V1", image_size=32,
                            max_epochs=1, batch_size=16, random_state=0, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X[:17], y[:17].astype(float))
    assert np.isfinite(reg.predict(X[:3])).all()


def test_pickles_carry_no_optimizer_state():
    """Adam's moments were two thirds of a fitted estimator's pickle."""
    import pickle

    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    clf = PretrainedClassifier("mlp", hidden_layer_sizes=(256, 256), max_epochs=2,
                               random_state=0).fit(X / 16.0, y)
    weights = sum(t.numel() * t.element_size()
                  for t in clf.net_.module_.state_dict().values())
    size = len(pickle.dumps(clf))
    assert not clf.net_.optimizer_.state
    assert size < 1.3 * weights + 200_000
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict(X[:20] / 16.0), clf.predict(X[:20] / 16.0))


def test_a_diverged_fit_says_so():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    with pytest.warns(ConvergenceWarning, match="diverged"):
        PretrainedClassifier("mlp", lr=100.0, max_epochs=3, random_state=0).fit(X / 16.0, y)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        PretrainedClassifier("mlp", lr=1e-2, random_state=0).fit(X / 16.0, y)
    assert not [w for w in caught if "diverged" in str(w.message)]


def test_targets_too_large_to_standardise_are_refused():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    with pytest.raises(ValueError, match="too large to standardise"):
        TransferRegressor("mlp", max_epochs=1).fit(X, y * 1e160)


def test_rank_backbones_repeats_with_a_random_state(mnist):
    from sktransfer import rank_backbones

    X, y = mnist
    candidates = {"random init": ("mobilenet_v2", None)}
    first, second, third = (rank_backbones(candidates, X[:40], y[:40], metrics=("logme",),
                                           image_size=32, device="cpu", cache=False,
                                           random_state=state) for state in (0, 0, 1))
    assert first.rows[0]["logme"] == second.rows[0]["logme"]
    assert first.rows[0]["logme"] != third.rows[0]["logme"]
