"""The training loop under the estimators: the engine (sktransfer._nn.engine)
and the skorch net it drives (sktransfer._nn.net) with its optimizer
(sktransfer._nn.optim): batching, per-stage learning rates, L2-SP, reduced
precision, gradient clipping, channels_last, and what a fitted net keeps."""

import dataclasses
import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold, cross_val_score

from sktransfer import L2SP, MLP, ImageBackbone, PretrainedClassifier, TransferRegressor
from sktransfer._recipe import Recipe
from sktransfer._images import check_images
from sktransfer._nn import engine
from sktransfer._nn.batches import n_batches
from sktransfer._nn.net import EvenBatches
from sktransfer._nn.optim import l2sp_penalty, stage_lr_factors

from .conftest import fast_params, tiny, QUICK_MLP as MLP_PARAMS


# -- the engine ------------------------------------------------------------------------


def test_engine_fit_and_predict_without_an_estimator(tiny_backbone, digits32):
    X, y = digits32
    recipe = Recipe.from_estimator(PretrainedClassifier(**tiny(tiny_backbone)),
                                   input_kind="images")
    targets = (y > 1).astype(np.int64)
    result = engine.fit(recipe, check_images(X), targets, np.ones(len(y)), n_outputs=2)
    assert result.n_stages == 3 and len(result.history) == 2
    assert result.image_size == 32 and result.cache_key is None  # freeze_depth=0
    logits = engine.predict(result, check_images(X[:5]))
    assert logits.shape == (5, 2) and logits.dtype == np.float32


# -- batches ---------------------------------------------------------------------------


def test_batches_are_cut_evenly_and_never_hold_one_sample():
    for n, batch_size in ((33, 32), (65, 32), (67, 32), (5, 4), (32, 32), (1, 32), (34, 32),
                          (3, 2)):
        batches = list(EvenBatches(n, batch_size))
        sizes = [len(b) for b in batches]
        assert len(batches) == n_batches(n, batch_size)
        assert sorted(i for b in batches for i in b) == list(range(n))
        assert max(sizes) - min(sizes) <= 1
        assert n == 1 or min(sizes) > 1
        assert n < 2 * batch_size or max(sizes) <= batch_size
    assert [len(b) for b in EvenBatches(67, 32)] == [23, 22, 22]  # not 32, 32, 3
    assert [len(b) for b in EvenBatches(3, 2)] == [3]  # 2 + 1 would leave a batch of one


@pytest.mark.slow
def test_a_few_dozen_labels_fine_tune_without_a_short_last_batch(mnist):
    """67 MNIST digits at batch size 32: cut as 32, 32 and 3, the batch of
    three upset BatchNorm's statistics every epoch and the fine-tune tested
    at 0.49; cut evenly it converges (about 0.8 on other digits)."""
    X, y = mnist
    X, y, X_test, y_test = X[:67], y[:67], X[1000:1500], y[1000:1500]
    clf = PretrainedClassifier(ImageBackbone("mobilenet_v2", image_size=32),
                               weights="IMAGENET1K_V1", random_state=0, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    assert clf.history_[-1]["train_loss"] < 0.6
    assert clf.score(X_test, y_test) > 0.7


@pytest.mark.slow
def test_batchnorm_never_sees_a_training_batch_of_one(mnist):
    """MobileNetV2 at 32 px ends in 1x1 feature maps, so a training batch of
    one image would leave its last BatchNorm one value per channel (an error
    in fit, NaN scores in cross-validation folds): a last batch of one joins
    the batch before, in fit, in the range test and after unfreezing."""
    X, y = mnist
    X, y = X[:65], y[:65] % 2
    params = dict(backbone=ImageBackbone("mobilenet_v2", image_size=32),
                  weights="IMAGENET1K_V1", max_epochs=1, batch_size=32, random_state=0,
                  device="cpu")
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
    reg = TransferRegressor(ImageBackbone("mobilenet_v2", image_size=32),
                            weights="IMAGENET1K_V1", max_epochs=1, batch_size=16,
                            random_state=0, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X[:17], y[:17].astype(float))
    assert np.isfinite(reg.predict(X[:3])).all()


# -- per-stage learning rates ----------------------------------------------------------


def test_stage_lr_factors():
    assert stage_lr_factors(3, 0.5, 1.0) == [0.125, 0.25, 0.5]
    assert stage_lr_factors(2, 1.0, 0.1) == [0.1, 0.1]


def test_layer_decay_and_backbone_multiplier_set_per_stage_rates(digits):
    X, y = digits
    est = PretrainedClassifier(**dict(MLP_PARAMS, layer_decay=0.5, backbone_lr_mult=0.1)).fit(X, y)
    rates = {g["stage"]: g["base_lr"] for g in est.net_.optimizer_.param_groups}
    assert rates == pytest.approx({None: 1e-2, 1: 1e-2 * 0.1 * 0.5, 0: 1e-2 * 0.1 * 0.25})
    head = [g for g in est.net_.optimizer_.param_groups if g["stage"] is None][0]
    assert {id(p) for p in head["params"]} == {id(p) for p in est.net_.module_.head.parameters()}


@pytest.mark.slow
def test_layer_decay_on_an_image_backbone(digits_small):
    X, y, _, _ = digits_small
    est = PretrainedClassifier(**fast_params(freeze_depth=0, layer_decay=0.8, max_epochs=1)).fit(X, y)
    rates = sorted(g["base_lr"] for g in est.net_.optimizer_.param_groups
                   if g["stage"] is not None)
    assert rates == pytest.approx([1e-2 * 0.8 ** k for k in range(5, 0, -1)])


# -- L2-SP -----------------------------------------------------------------------------


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

    plain = PretrainedClassifier(**dict(MLP_PARAMS, backbone=source, max_epochs=5)).fit(X, 9 - y)
    l2sp = PretrainedClassifier(**dict(MLP_PARAMS, backbone=source, max_epochs=5,
                                       regularization=L2SP(strength=10.0))).fit(X, 9 - y)
    assert distance(l2sp) < 0.5 * distance(plain)
    groups = l2sp.net_.optimizer_.param_groups
    assert all(g["weight_decay"] == 0.0 for g in groups if g["stage"] is not None)
    assert [g["weight_decay"] for g in groups if g["stage"] is None] == [1e-4]
    assert not hasattr(l2sp.net_, "regularization_reference_")  # not carried into pickles


# -- precision, clipping, channels_last ------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["bf16", "16"])
def test_reduced_precision_paths_run_on_cpu(digits_small, precision):
    X, y, X_test, y_test = digits_small
    est = PretrainedClassifier(**fast_params(precision=precision, max_epochs=3)).fit(X, y)
    assert est.net_.precision == precision
    assert est.score(X_test[:60], y_test[:60]) > 0.6
    assert np.isfinite(est.predict_proba(X_test[:60])).all()


def test_precision_auto_is_fp32_on_cpu(digits):
    X, y = digits
    assert PretrainedClassifier(**MLP_PARAMS).fit(X, y).net_.precision == "32"


def test_gradient_clipping_bounds_sgd_steps(source, digits):
    X, y = digits
    src = [p.detach().clone() for p in source.net_.module_.parameters()]
    clipped = PretrainedClassifier(**dict(MLP_PARAMS, backbone=source, optimizer="sgd", weight_decay=0.0,
                                          max_grad_norm=1e-6)).fit(X, y)
    trunk_moves = [float((p.detach() - q).abs().max()) for p, q in
                   zip(clipped.net_.module_.trunk.parameters(), src)]
    steps = 3 * 7  # epochs x batches
    assert max(trunk_moves) <= steps * 1e-2 * 1e-6 * 10  # lr * clip * momentum bound


def test_channels_last_inference_matches(digits_small):
    X, y, X_test, _ = digits_small
    est = PretrainedClassifier(**fast_params(max_epochs=1, cache=False)).fit(X, y)
    assert est.net_.channels_last  # images train in channels_last, CPU included
    assert est._fit_result.batching.channels_last  # and predict in it
    expected = est.predict_proba(X_test[:40])
    est._fit_result.batching = dataclasses.replace(est._fit_result.batching,
                                                   channels_last=False)
    est.net_.module_.to(memory_format=torch.contiguous_format)
    np.testing.assert_allclose(est.predict_proba(X_test[:40]), expected, rtol=1e-4, atol=1e-5)


# -- what a fitted net keeps -----------------------------------------------------------


def test_pickles_carry_no_optimizer_state():
    """A fitted estimator's pickle holds the weights, not Adam's moments
    (which are twice the weights' size)."""
    X, y = load_digits(return_X_y=True)
    clf = PretrainedClassifier(MLP(hidden_layer_sizes=(256, 256)), max_epochs=2,
                               random_state=0).fit(X / 16.0, y)
    weights = sum(t.numel() * t.element_size()
                  for t in clf.net_.module_.state_dict().values())
    size = len(pickle.dumps(clf))
    assert not clf.net_.optimizer_.state
    assert size < 1.3 * weights + 200_000
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict(X[:20] / 16.0), clf.predict(X[:20] / 16.0))
