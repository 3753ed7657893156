"""Tabular inputs: feature vectors through the "mlp" backbone or an
nn.Module, pandas feature names, integer features and sample_weight."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from sktransfer import PretrainedClassifier

from .conftest import LONGER_MLP as MLP_PARAMS



@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


def test_sample_weight_changes_the_fit(digits):
    X, y = digits
    X, y = X[y < 2][:100], y[y < 2][:100]
    w = np.where(y == 0, 10.0, 0.1)
    plain = PretrainedClassifier(**MLP_PARAMS).fit(X, y)
    weighted = PretrainedClassifier(**MLP_PARAMS).fit(X, y, sample_weight=w)
    assert weighted.predict_proba(X)[:, 0].mean() > plain.predict_proba(X)[:, 0].mean()
    with pytest.raises(ValueError, match="non-zero"):
        PretrainedClassifier(**MLP_PARAMS).fit(X, y, sample_weight=np.zeros(len(y)))


def test_pandas_dataframe_sets_feature_names(digits):
    pd = pytest.importorskip("pandas")
    X, y = digits
    frame = pd.DataFrame(X[:200], columns=[f"px{i}" for i in range(64)])
    clf = PretrainedClassifier(**dict(MLP_PARAMS, max_epochs=2)).fit(frame, y[:200])
    assert list(clf.feature_names_in_) == list(frame.columns)
    assert clf.n_features_in_ == 64
    with pytest.raises(ValueError, match="feature names should match"):
        clf.predict(frame.iloc[:5, :10])
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        plain = clf.predict(X[:5])
    np.testing.assert_array_equal(clf.predict(frame[:5]), plain)


def test_integer_tabular_input_is_accepted(digits):
    X, y = load_digits(return_X_y=True)  # int64 pixel counts
    clf = PretrainedClassifier(**dict(MLP_PARAMS, max_epochs=3)).fit(X.astype(np.int64), y)
    assert clf.score(X, y) > 0.8


def test_nn_module_backbone_on_tabular_data(digits):
    X, y = digits  # float64 features
    backbone = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(),
                                   torch.nn.Linear(32, 16), torch.nn.ReLU())
    clf = PretrainedClassifier(backbone, max_epochs=10, lr=1e-2, device="cpu",
                               random_state=0).fit(X, y)
    assert clf.input_kind_ == "tabular" and clf.n_features_in_ == 64
    assert clf.n_stages_ == 2 and clf.net_.module_.head[-1].in_features == 16
    assert next(clf.net_.module_.parameters()).dtype == torch.float64
    assert clf.score(X, y) > 0.8
