"""TransferFeatures: frozen ImageNet embeddings + any scikit-learn model."""

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from sktransfer import MLP, ImageBackbone, PretrainedClassifier, TransferFeatures

from .conftest import fast_params

FEATURES = dict(backbone=ImageBackbone("mobilenet_v2", image_size=32), weights="IMAGENET1K_V1",
                device="cpu")


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


@pytest.fixture(scope="module")
def tabular_source():
    """A two-hidden-layer MLP classifier fitted on digits (a tabular source)."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    source = PretrainedClassifier(MLP(hidden_layer_sizes=(16, 8)), max_epochs=2, device="cpu",
                                  random_state=0).fit(X, y)
    return source, X, y


@pytest.mark.parametrize("stage, width", [(1, 16), (2, 8), (None, 8)])
def test_tabular_source_stages_are_its_hidden_layers(tabular_source, stage, width):
    source, X, _ = tabular_source
    features = TransferFeatures(source, stage=stage, device="cpu").fit(X[:50])
    assert features.n_stages_ == 2 and features.n_features_in_ == 64
    out = features.transform(X[:5])
    trunk = source._fit_result.net.module_.trunk
    with torch.no_grad():
        dtype = next(trunk.parameters()).dtype
        expected = trunk[:stage or 2](torch.tensor(X[:5], dtype=dtype)).double()
    assert out.shape == (5, width)
    np.testing.assert_allclose(out, expected.numpy(), atol=1e-6)
    assert features.__sklearn_tags__().input_tags.two_d_array


def test_tabular_source_errors(tabular_source):
    source, X, _ = tabular_source
    with pytest.raises(ValueError, match="X has 16 features, but the PretrainedClassifier"):
        TransferFeatures(source, device="cpu").fit(X[:, :16])
    with pytest.raises(ValueError, match="stage=3 but the backbone has 2 stages"):
        TransferFeatures(source, stage=3, device="cpu").fit(X[:10])
    with pytest.raises(ValueError, match="untrained tabular network"):
        TransferFeatures("mlp").fit(X[:10])


def test_tabular_source_features_feed_any_model(tabular_source):
    source, X, y = tabular_source
    pipe = make_pipeline(TransferFeatures(source, stage=1, device="cpu"),
                         LogisticRegression(max_iter=500)).fit(X[:300], y[:300])
    assert pipe.score(X[300:600], y[300:600]) > 0.5  # chance is 0.1
