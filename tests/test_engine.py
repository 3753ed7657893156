"""The training engine under the estimators (sktransfer._nn.engine and the
net it drives), on the tiny registered backbone of ``conftest.py``."""

import numpy as np
import pytest
import torch

from sktransfer import PretrainedClassifier, TransferFeatures, TransferRegressor
from sktransfer._images import check_images
from sktransfer._nn import engine, frozen_cut
from sktransfer._nn.net import TransferNetMixin


@pytest.fixture(scope="module")
def digits32(mnist):
    """80 real MNIST digits of classes 0-3, padded to 32 px."""
    X, y = mnist
    keep = y < 4
    X = np.pad(X[keep][:80], ((0, 0), (2, 2), (2, 2)))
    return X, y[keep][:80]


def tiny(tiny_backbone, **overrides):
    name, weights = tiny_backbone
    params = dict(backbone=name, weights=weights, max_epochs=2, batch_size=16, lr=1e-2,
                  device="cpu", random_state=0)
    params.update(overrides)
    return params


def test_engine_fit_and_predict_without_an_estimator(tiny_backbone, digits32):
    X, y = digits32
    params = PretrainedClassifier(**tiny(tiny_backbone)).get_params()
    spec = engine.FitSpec.from_params(params, task="classification", loss="cross_entropy",
                                      input_kind="images", seed=0)
    targets = (y > 1).astype(np.int64)
    result = engine.fit(spec, check_images(X), targets, np.ones(len(y)), n_outputs=2)
    assert result.n_stages == 3 and len(result.history) == 2
    assert result.image_size == 32 and result.cache_key is None  # freeze_depth=0
    logits = engine.predict(result, check_images(X[:5]))
    assert logits.shape == (5, 2) and logits.dtype == np.float32


def test_the_range_test_runs_the_nets_training_step_on_a_copy(tiny_backbone, digits32,
                                                              monkeypatch):
    X, y = digits32
    steps = []
    original = TransferNetMixin.train_step

    def counting(net, batch, **fit_params):
        steps.append(net.l2sp_strength)
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


def test_cached_fit_on_the_tiny_backbone_matches_the_uncached_fit(tiny_backbone, digits32):
    X, y = digits32
    cached = PretrainedClassifier(**tiny(tiny_backbone, freeze_depth=2)).fit(X, y)
    plain = PretrainedClassifier(**tiny(tiny_backbone, freeze_depth=2, cache=False)).fit(X, y)
    assert cached.cache_info_["used"] and cached.cache_info_["cut"] == "features.1"
    assert not plain.cache_info_["used"] and plain.cache_info_["reason"] == "cache=False"
    np.testing.assert_allclose(cached.predict_proba(X), plain.predict_proba(X),
                               rtol=1e-4, atol=1e-5)


def test_freeze_depth_beyond_the_stages_names_the_backbone(tiny_backbone, digits32):
    X, y = digits32
    with pytest.raises(ValueError, match="freeze_depth=4 but backbone 'tinynet' has 3 stages"):
        PretrainedClassifier(**tiny(tiny_backbone, freeze_depth=4)).fit(X, y)


def test_regressor_and_features_share_the_engine(tiny_backbone, digits32):
    X, y = digits32
    reg = TransferRegressor(**tiny(tiny_backbone, freeze_depth="all")).fit(X, y.astype(float))
    assert reg.predict(X[:3]).shape == (3,) and reg.cache_info_["used"]
    name, weights = tiny_backbone
    features = TransferFeatures(name, weights=weights, stage=2, device="cpu").fit(X)
    assert features.transform(X[:3]).shape == (3, 16) and features.n_stages_ == 3


def test_the_cut_memo_is_bounded(tiny_backbone):
    name, weights = tiny_backbone
    from sktransfer._nn.freezing import freeze
    from sktransfer._nn.model import HeadSpec, attach_head, load_trunk

    trunk = load_trunk(name, weights)
    module = attach_head(trunk, HeadSpec((), 0.0, 2), sample=torch.zeros(3, 32, 32))
    freeze(module, [0, 1])
    frozen_cut._CUTS.clear()
    for size in range(8, 8 + frozen_cut._MAX_MEMO + 6):
        assert frozen_cut.find_cut(module, [0, 1], torch.rand(2, 3, size, size)) is not None
    assert len(frozen_cut._CUTS) == frozen_cut._MAX_MEMO
