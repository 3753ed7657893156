"""TransferFeatures: frozen ImageNet embeddings + any scikit-learn model."""

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from sktransfer import MLP, PretrainedClassifier, TransferFeatures

from .conftest import fast_params

FEATURES = dict(backbone="mobilenet_v2", weights="IMAGENET1K_V1", image_size=32, device="cpu")


@pytest.mark.slow
def test_feature_transfer_pipeline_on_digits(digits_small):
    X, y, X_test, y_test = digits_small
    pipe = make_pipeline(TransferFeatures(**FEATURES), LogisticRegression(max_iter=2000))
    pipe.fit(X, y)
    assert pipe.score(X_test, y_test) > 0.8  # chance is 0.33
    features = pipe[0].transform(X_test[:10])
    assert features.shape == (10, 1280) and features.dtype == np.float64
    names = pipe[0].get_feature_names_out()
    assert len(names) == 1280 and names[0] == "transferfeatures0"


def test_embedding_is_the_pooled_trunk_output(digits_small):
    X, _, _, _ = digits_small
    feats = TransferFeatures(**FEATURES).fit(X[:4])
    from sktransfer._images import check_images
    from sktransfer._nn.data import ImageDataset

    batch = torch.stack([ImageDataset(check_images(X[:4]), feats.preprocessing_, 32)[i][0]
                         for i in range(4)])
    with torch.no_grad():
        expected = feats.trunk_.features(batch).mean(dim=(2, 3))
    np.testing.assert_allclose(feats.transform(X[:4]), expected.numpy(), rtol=1e-4, atol=1e-5)


def test_stage_cut_and_its_errors(digits_small):
    X, _, _, _ = digits_small
    assert TransferFeatures(**FEATURES, stage=2).fit_transform(X[:6]).shape == (6, 24)
    assert TransferFeatures(**FEATURES, stage=5).fit(X[:2]).get_feature_names_out().shape == (1280,)
    with pytest.raises(ValueError, match="stage=6 but the backbone has 5 stages"):
        TransferFeatures(**FEATURES, stage=6).fit(X[:2])


@pytest.mark.slow
def test_grid_search_over_the_cut(digits_small):
    X, y, _, _ = digits_small
    pipe = make_pipeline(TransferFeatures(**FEATURES), LogisticRegression(max_iter=2000))
    search = GridSearchCV(pipe, {"transferfeatures__stage": [3, None]}, cv=2,
                          error_score="raise").fit(X, y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_errors_before_fit_and_on_another_layout(digits_small):
    X, _, _, _ = digits_small
    with pytest.raises(NotFittedError):
        TransferFeatures(**FEATURES).transform(X[:2])
    feats = TransferFeatures(**FEATURES).fit(X[:2])
    with pytest.raises(ValueError, match="layout"):
        feats.transform(np.repeat(X[:2, ..., None], 3, axis=-1))


@pytest.mark.slow
def test_fitted_estimator_backbone_gives_its_fine_tuned_trunk(digits_small):
    X, y, _, _ = digits_small
    source = PretrainedClassifier(**fast_params(freeze_depth=3, max_epochs=1)).fit(X, y)
    feats = TransferFeatures(source, device="cpu")
    assert clone(feats).backbone is source
    out = feats.fit_transform(X[:5])
    assert out.shape == (5, 1280) and feats.image_size_ == 32
    for a, b in zip(feats.trunk_.parameters(), source.net_.module_.trunk.parameters()):
        assert torch.equal(a, b) and a is not b


@pytest.mark.slow
def test_tabular_source_is_rejected():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    source = PretrainedClassifier(MLP(hidden_layer_sizes=(8,)), max_epochs=1,
                                  device="cpu").fit(X, y)
    with pytest.raises(ValueError, match="image and text backbones"):
        TransferFeatures(source).fit(X[:, :16].reshape(-1, 4, 4))
