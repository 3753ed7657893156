"""Data augmentation (``augment``): applied to training batches only, its
"auto" default (images only), refused for tabular data."""

import numpy as np
import pytest
import torch

from sktransfer import PretrainedClassifier
from sktransfer._recipe import Recipe

from .conftest import fast_params, QUICK_MLP as MLP_PARAMS


@pytest.mark.slow
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
        PretrainedClassifier(**dict(MLP_PARAMS, augment="light")).fit(X, y)


def test_default_recipe_augments_images_only(digits):
    X, y = digits
    clf = PretrainedClassifier()
    assert (clf.lr_schedule, clf.warmup_epochs, clf.augment) == ("cosine", 1.0, "auto")
    assert Recipe.from_estimator(clf, input_kind="images").methods.augment == "light"
    assert Recipe.from_estimator(clf, input_kind="tabular").methods.augment is None
    PretrainedClassifier(**MLP_PARAMS).fit(X, y)  # "auto" never rejects tabular data
