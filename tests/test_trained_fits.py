"""Equal fits are trained once: a gradient-trained fit with an int
random_state whose settings, starting network and data equal an earlier
one's is restored (in memory, and under cache_dir) instead of trained again."""

import os
import time

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV

import sktransfer
from sktransfer import PretrainedClassifier, TransferRegressor
from sktransfer._nn import engine
from sktransfer._deadline import deadline
from sktransfer._nn.activation_store import TRAINED_FITS

from .conftest import QUICK_MLP, tiny


def _fit(X, y, **params):
    return PretrainedClassifier(**dict(QUICK_MLP, **params)).fit(X, y)


def test_an_equal_fit_is_restored_with_its_fitted_attributes(digits):
    X, y = digits
    first = _fit(X, y)
    assert not first.cache_info_["restored"]
    second = _fit(X, y)
    assert second.cache_info_["restored"]
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))
    assert second.n_iter_ == first.n_iter_ == len(second.net_.history)
    assert second.history_ == first.history_ and second.lr_ == first.lr_
    assert second.net_.module_ is not first.net_.module_  # its own copy of the weights


def test_restoring_runs_no_data_pass(digits, monkeypatch):
    X, y = digits
    first = _fit(X, y)
    monkeypatch.setattr(engine, "_prepare", lambda *a, **k: pytest.fail("trained again"))
    np.testing.assert_array_equal(_fit(X, y).predict(X), first.predict(X))


@pytest.mark.parametrize("change", [
    dict(lr=3e-2), dict(random_state=1), dict(max_epochs=4), dict(batch_size=32),
])
def test_a_setting_the_fit_reads_trains_again(digits, change):
    X, y = digits
    _fit(X, y)
    assert not _fit(X, y, **change).cache_info_["restored"]


def test_other_data_targets_or_weights_train_again(digits):
    X, y = digits
    _fit(X, y)
    assert not _fit(X[:-1], y[:-1]).cache_info_["restored"]
    X2 = X.copy()
    X2[0, 0] += 1e-3
    assert not _fit(X2, y).cache_info_["restored"]
    y2 = y.copy()
    y2[:2] = y2[:2][::-1] if y2[0] != y2[1] else (y2[:2] + 1) % 10
    assert not _fit(X, y2).cache_info_["restored"]
    clf = PretrainedClassifier(**QUICK_MLP).fit(X, y, sample_weight=np.linspace(1, 2, len(y)))
    assert not clf.cache_info_["restored"]


def test_settings_the_fit_does_not_read_restore(digits, tmp_path):
    X, y = digits
    _fit(X, y)
    for unread in (dict(verbose=1, probe_alpha=10.0), dict(validation_fraction=0.3),
                   dict(cache_dir=tmp_path)):
        assert _fit(X, y, **unread).cache_info_["restored"], unread


def test_starting_weights_are_part_of_the_key(digits):
    X, y = digits
    source = _fit(X, y)
    a = TransferRegressor(**dict(QUICK_MLP, backbone=source)).fit(X, y.astype(float))
    b = TransferRegressor(**dict(QUICK_MLP, backbone=source)).fit(X, y.astype(float))
    assert b.cache_info_["restored"] and not a.cache_info_["restored"]
    source.net_.module_.trunk[0][0].weight.data += 0.1  # another source network
    c = TransferRegressor(**dict(QUICK_MLP, backbone=source)).fit(X, y.astype(float))
    assert not c.cache_info_["restored"]


def test_nothing_is_kept_without_an_int_seed_or_with_cache_off(digits):
    X, y = digits
    for params in (dict(random_state=None), dict(cache=False),
                   dict(random_state=np.random.RandomState(0))):
        _fit(X, y, **params)
        assert not _fit(X, y, **params).cache_info_["restored"], params
    assert not TRAINED_FITS


def test_a_fit_under_a_deadline_is_neither_kept_nor_restored(digits):
    X, y = digits
    with deadline(time.time() + 600, finish=True):
        _fit(X, y)
    assert not TRAINED_FITS
    _fit(X, y)
    with deadline(time.time() + 600, finish=True):
        assert not _fit(X, y).cache_info_["restored"]


def test_fits_under_cache_dir_serve_another_process(digits, tmp_path):
    X, y = digits
    first = _fit(X, y, cache_dir=tmp_path)
    folder = tmp_path / "sktransfer-fits"
    assert sorted(p.suffix for p in folder.iterdir()) == [".json", ".safetensors"]
    TRAINED_FITS.clear()  # as a new process would find it
    second = _fit(X, y, cache_dir=tmp_path)
    assert second.cache_info_["restored"]
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))
    sktransfer.clear_cache(tmp_path)
    assert not folder.exists() and not TRAINED_FITS


def test_a_damaged_file_is_trained_again_and_rewritten(digits, tmp_path):
    X, y = digits
    _fit(X, y, cache_dir=tmp_path)
    state = next((tmp_path / "sktransfer-fits").glob("*.safetensors"))
    state.write_bytes(b"not safetensors")
    TRAINED_FITS.clear()
    again = _fit(X, y, cache_dir=tmp_path)
    assert not again.cache_info_["restored"]
    TRAINED_FITS.clear()
    assert _fit(X, y, cache_dir=tmp_path).cache_info_["restored"]
    assert os.path.getsize(state) > 100


def test_a_grid_over_an_unread_parameter_trains_each_fold_once(digits):
    X, y = digits
    search = GridSearchCV(PretrainedClassifier(**QUICK_MLP), {"probe_alpha": [0.1, 1.0, 10.0]},
                          cv=2).fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert np.ptp(scores) == 0.0
    # 2 folds trained, 4 restored, and the refit on all of X trained
    assert len(TRAINED_FITS) == 3


def test_an_image_fit_is_restored(tiny_backbone, digits32):
    X, y = digits32
    params = tiny(tiny_backbone, freeze_depth=1)
    first = PretrainedClassifier(**params).fit(X, y)
    second = PretrainedClassifier(**params).fit(X, y)
    assert second.cache_info_["restored"] and not first.cache_info_["restored"]
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))


def test_settings_are_described_by_value():
    from sktransfer._canonical import canonical

    labels = np.array(["cat", "dog"], dtype=object)
    assert canonical(labels) == canonical(np.array(["cat", "dog"], dtype=object).copy())
    assert canonical(labels) != canonical(np.array(["cat", "cow"], dtype=object))
    assert canonical(PretrainedClassifier(lr=0.1)) != canonical(PretrainedClassifier(lr=0.2))
    with pytest.raises(TypeError, match="no stable description"):
        canonical(lambda x: x)


def test_string_labels_restore_with_their_classes(digits):
    X, y = digits
    labels = np.array([f"digit {v}" for v in y], dtype=object)
    first = _fit(X, labels)
    second = _fit(X, labels)
    assert second.cache_info_["restored"]
    np.testing.assert_array_equal(second.predict(X[:20]), first.predict(X[:20]))
