"""Frozen-stage activation caching: exact, reused across fits, off when it
cannot be exact; and the cache shared with TransferFeatures."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from torch import nn

import sktransfer
from sktransfer import ImageBackbone, PretrainedClassifier, TransferFeatures, TransferRegressor
from sktransfer._nn import activation_store, frozen_cut

from .conftest import fast_params, tiny


@pytest.fixture(autouse=True)
def empty_cache():
    sktransfer.clear_cache()
    yield
    sktransfer.clear_cache()


def _fit_pair(estimator_class, X, y, **params):
    """The same fit with and without the cache."""
    with_cache = estimator_class(**fast_params(cache=True, **params)).fit(X, y)
    without = estimator_class(**fast_params(cache=False, **params)).fit(X, y)
    return with_cache, without


@pytest.mark.slow
@pytest.mark.parametrize("freeze_depth", ["all", 2, 4])
def test_cached_fit_predicts_like_uncached_fit(digits_small, freeze_depth):
    X, y, X_test, _ = digits_small
    cached, plain = _fit_pair(PretrainedClassifier, X, y, freeze_depth=freeze_depth)
    assert cached.cache_info_["used"], cached.cache_info_
    assert cached.cache_info_["computed"] == len(X)
    assert not plain.cache_info_["used"] and plain.cache_info_["reason"] == "cache=False"
    np.testing.assert_allclose(cached.predict_proba(X_test), plain.predict_proba(X_test),
                               rtol=1e-5, atol=1e-6)
    assert [r["train_loss"] for r in cached.history_] == pytest.approx(
        [r["train_loss"] for r in plain.history_], rel=1e-5)


@pytest.mark.slow
def test_cache_is_exact_with_early_stopping_weights_and_a_hidden_head(digits_small):
    X, y, X_test, _ = digits_small
    weights = np.random.RandomState(0).uniform(0.2, 2.0, len(y))
    params = dict(fast_params(freeze_depth=3, head=(16,), head_dropout=0.3,
                              early_stopping=True, n_iter_no_change=1, max_epochs=3))
    cached = PretrainedClassifier(**params).fit(X, y, sample_weight=weights)
    plain = PretrainedClassifier(**params, cache=False).fit(X, y, sample_weight=weights)
    assert cached.cache_info_["used"]
    assert cached.best_epoch_ == plain.best_epoch_
    np.testing.assert_allclose(cached.predict_proba(X_test), plain.predict_proba(X_test),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_cache_is_exact_for_a_regressor_and_a_resnet(digits_small):
    X, y, X_test, _ = digits_small
    params = dict(backbone="resnet18", weights=None, freeze_depth=1, lr=1e-3)
    cached, plain = _fit_pair(TransferRegressor, X, y.astype(float), **params)
    # the stem (conv1, bn1, relu, maxpool) is the first stage
    assert cached.cache_info_["cut"] == "maxpool"
    np.testing.assert_allclose(cached.predict(X_test), plain.predict(X_test), rtol=1e-5,
                               atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("freeze_depth, cut", [("all", "features.8"), (2, "features.2")])
def test_cache_reaches_past_held_stochastic_depth(digits_small, freeze_depth, cut):
    """EfficientNet's blocks drop their residual branch at random in training
    mode, but frozen stages are held in eval mode: the cut reaches the top of
    the frozen stages and the fit stays exact."""
    X, y, X_test, _ = digits_small
    cached, plain = _fit_pair(PretrainedClassifier, X[:60], y[:60], backbone="efficientnet_b0",
                              weights=None, max_epochs=1, freeze_depth=freeze_depth)
    assert cached.cache_info_["cut"] == cut
    # a randomly initialised EfficientNet trained at lr 1e-2 magnifies the
    # float noise of convolutions computed in batches of other sizes (the
    # cache's pass against the training batches) to about 1e-4 relative
    np.testing.assert_allclose(cached.predict_proba(X_test[:50]),
                               plain.predict_proba(X_test[:50]), rtol=1e-3, atol=1e-6)


@pytest.mark.slow
def test_training_really_reads_the_cached_activations(digits_small):
    """Corrupting the stored activations changes the next fit: the cache is
    what the network trains on, not a decoration."""
    X, y, X_test, _ = digits_small
    first = PretrainedClassifier(**fast_params()).fit(X, y)
    for entry in activation_store.STORE._entries.values():
        for row in entry.values():
            row.zero_()
    second = PretrainedClassifier(**fast_params()).fit(X, y)
    assert second.cache_info_["from_memory"] == len(X)
    assert not np.allclose(first.predict_proba(X_test), second.predict_proba(X_test))


@pytest.mark.slow
def test_grid_search_computes_each_image_once(digits_small):
    X, y, _, _ = digits_small
    search = GridSearchCV(PretrainedClassifier(**fast_params(max_epochs=1)),
                          {"lr": [1e-3, 1e-2], "freeze_depth": ["all", 4]}, cv=3)
    search.fit(X, y)
    info = sktransfer.cache_info()
    # two cuts (freeze_depth "all" and 4) x every image, each computed once
    # over 4 candidates x 3 folds + the refit
    assert info["entries"] == 2
    assert info["rows"] == 2 * len(X)
    assert info["misses"] == 2 * len(X)
    assert search.best_estimator_.cache_info_["from_memory"] == len(X)


@pytest.mark.slow
def test_cache_dir_shares_activations_between_processes(digits_small, tmp_path):
    X, y, X_test, _ = digits_small
    first = PretrainedClassifier(**fast_params(cache_dir=tmp_path)).fit(X, y)
    sktransfer.clear_cache()  # as in a fresh worker process
    second = PretrainedClassifier(**fast_params(cache_dir=tmp_path)).fit(X, y)
    assert first.cache_info_["computed"] == len(X)
    assert second.cache_info_["from_disk"] == len(X)
    assert second.cache_info_["computed"] == 0
    np.testing.assert_array_equal(first.predict_proba(X_test), second.predict_proba(X_test))
    files = sorted(p.name for p in (tmp_path / "sktransfer-activations").rglob("*")
                   if p.is_file())
    assert files and set(files) == {"keys.npy", "values.npy", "digest.txt"}
    # and the exact probe's solution, as numpy arrays too
    assert [p.suffix for p in (tmp_path / "sktransfer-probes").iterdir()] == [".npz"]
    assert {p.name for p in tmp_path.iterdir()} == {"sktransfer-activations",
                                                    "sktransfer-probes"}


@pytest.mark.parametrize("params, reason", [
    ({"augment": "light"}, "augment='light'"),
    ({"freeze_depth": 0}, "freeze_depth=0"),
    ({"unfreeze_at": 1}, "unfreeze_at"),
])
def test_cache_switches_off_when_it_cannot_be_exact(digits_small, params, reason):
    X, y, _, _ = digits_small
    clf = PretrainedClassifier(**fast_params(max_epochs=1, **params)).fit(X[:40], y[:40])
    assert not clf.cache_info_["used"]
    assert reason in clf.cache_info_["reason"]
    assert sktransfer.cache_info()["rows"] == 0


@pytest.mark.slow
def test_augment_auto_is_off_when_stages_stay_frozen(digits_small):
    X, y, _, _ = digits_small
    frozen = PretrainedClassifier(**fast_params(max_epochs=1)).fit(X[:40], y[:40])
    assert frozen.cache_info_["used"]
    full = PretrainedClassifier(**fast_params(max_epochs=1, freeze_depth=0)).fit(X[:40], y[:40])
    assert "freeze_depth=0" in full.cache_info_["reason"]


class _DropoutBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return self.drop(torch.relu(self.conv(x)))


class _SkipNet(nn.Module):
    """The last layer reads the first layer's output: a cut after the second
    layer is not clean, a cut after the first is."""

    def __init__(self, dropout_in_first=False):
        super().__init__()
        self.first = _DropoutBlock() if dropout_in_first else nn.Conv2d(3, 8, 3, padding=1)
        if dropout_in_first:
            self.first.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.second = nn.Conv2d(8, 8, 3, padding=1)
        self.third = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        a = self.first(x)
        b = torch.relu(self.second(a))
        return (self.third(b) + a.mean(dim=1, keepdim=True)).mean(dim=(2, 3))


def _module_params(module, **overrides):
    return fast_params(backbone=module, weights="DEFAULT", lr=1e-2, **overrides)


def test_cache_finds_the_deepest_clean_cut_and_stays_exact(digits_small):
    X, y, X_test, _ = digits_small
    torch.manual_seed(0)
    module = _SkipNet()
    cached, plain = _fit_pair(PretrainedClassifier, X, y, backbone=module,
                              weights="DEFAULT", freeze_depth=2)
    assert cached.cache_info_["cut"] == "first"
    np.testing.assert_allclose(cached.predict_proba(X_test), plain.predict_proba(X_test),
                               rtol=1e-5, atol=1e-6)


def test_frozen_dropout_runs_in_eval_mode_so_the_cache_stays_exact(digits_small):
    """A frozen stage is held in eval mode: its dropout drops nothing, so its
    activations can be cached, and the cached fit equals the uncached one."""
    X, y, X_test, _ = digits_small
    torch.manual_seed(0)
    module = _SkipNet(dropout_in_first=True)
    cached, plain = _fit_pair(PretrainedClassifier, X[:40], y[:40], backbone=module,
                              weights="DEFAULT", freeze_depth=1, max_epochs=1)
    assert cached.cache_info_["used"] and cached.cache_info_["cut"] == "first"
    np.testing.assert_allclose(cached.predict_proba(X_test), plain.predict_proba(X_test),
                               rtol=1e-5, atol=1e-6)
    trunk = plain.net_.module_.train().trunk
    assert not trunk.first.drop.training and trunk.second.training


@pytest.mark.slow
def test_cache_respects_its_byte_budget(digits_small):
    X, y, _, _ = digits_small
    budget = sktransfer.cache_info()["budget"]
    try:
        sktransfer.set_cache_budget(1000)
        clf = PretrainedClassifier(**fast_params(max_epochs=1)).fit(X[:40], y[:40])
        assert not clf.cache_info_["used"]
        assert "over the cache budget" in clf.cache_info_["reason"]
        assert sktransfer.cache_info()["nbytes"] <= 1000
    finally:
        sktransfer.set_cache_budget(budget)


def test_memory_store_evicts_least_recently_used_entries():
    store = activation_store.MemoryStore(budget=3 * 40)
    rows = torch.zeros(1, 10)  # 40 bytes per row
    for key in ("a", "b", "c"):
        store.put(key, [key], rows)
    store.get("a", ["a"])  # "a" is now the most recently used
    store.put("d", ["d"], rows)
    assert store.get("b", ["b"]) == {}
    assert set(store.get("a", ["a"])) == {0}
    assert store.nbytes <= 120


@pytest.mark.parametrize("bad", [-1, 1.5, "1GB", True])
def test_set_cache_budget_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="non-negative int"):
        sktransfer.set_cache_budget(bad)


def test_transfer_features_share_the_cache(digits_small):
    X, y, _, _ = digits_small
    features = TransferFeatures(ImageBackbone("mobilenet_v2", image_size=32), weights="IMAGENET1K_V1",
                                device="cpu").fit(X)
    first = features.transform(X)
    assert sktransfer.cache_info()["misses"] == len(X)
    second = features.transform(X[:50])
    assert sktransfer.cache_info()["hits"] == 50
    plain = TransferFeatures(ImageBackbone("mobilenet_v2", image_size=32), weights="IMAGENET1K_V1",
                             device="cpu", cache=False).fit(X).transform(X[:50])
    np.testing.assert_array_equal(second, first[:50])
    np.testing.assert_allclose(plain, first[:50], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_pipeline_grid_search_embeds_each_image_once(digits_small):
    X, y, _, _ = digits_small
    pipe = make_pipeline(TransferFeatures(ImageBackbone("mobilenet_v2", image_size=32),
                                          weights="IMAGENET1K_V1", device="cpu"),
                         LogisticRegression(max_iter=200))
    search = GridSearchCV(pipe, {"logisticregression__C": [0.1, 1.0, 10.0]}, cv=3).fit(X, y)
    assert search.best_score_ > 0.8
    info = sktransfer.cache_info()
    assert info["rows"] == len(X) and info["misses"] == len(X)


@pytest.mark.slow
def test_different_weights_do_not_share_cached_activations(digits_small):
    X, y, _, _ = digits_small
    pretrained = TransferFeatures(ImageBackbone("mobilenet_v2", image_size=32), weights="IMAGENET1K_V1",
                                  device="cpu").fit(X).transform(X[:20])
    random = TransferFeatures(ImageBackbone("mobilenet_v2", image_size=32), weights=None,
                              device="cpu").fit(X).transform(X[:20])
    assert sktransfer.cache_info()["entries"] == 2
    assert not np.allclose(pretrained, random)


@pytest.mark.slow
def test_image_files_predict_the_same_with_worker_processes(digits_small, tmp_path):
    from PIL import Image

    X, y, X_test, _ = digits_small

    def write(images, prefix):
        paths = [str(tmp_path / f"{prefix}{i}.png") for i in range(len(images))]
        for image, path in zip(images, paths):
            Image.fromarray(image).save(path)
        return paths

    train, test = write(X[:40], "train"), write(X_test[:24], "test")
    clf = PretrainedClassifier(**fast_params(max_epochs=1, n_jobs=2)).fit(train, y[:40])
    assert clf.cache_info_["used"]
    in_process = clf.set_params(n_jobs=1).predict_proba(test)
    workers = clf.set_params(n_jobs=2).predict_proba(test)
    np.testing.assert_array_equal(in_process, workers)


@pytest.mark.slow
def test_a_cached_fit_pickles_and_leaves_no_skipped_modules(digits_small, tmp_path):
    import joblib

    X, y, X_test, _ = digits_small
    clf = PretrainedClassifier(**fast_params(freeze_depth=2)).fit(X, y)
    assert clf.cache_info_["used"]
    trunk = clf.net_.module_.trunk
    assert not any("forward" in vars(m) for m in trunk.modules())
    joblib.dump(clf, tmp_path / "clf.joblib")
    loaded = joblib.load(tmp_path / "clf.joblib")
    np.testing.assert_array_equal(loaded.predict_proba(X_test), clf.predict_proba(X_test))


@pytest.mark.slow
def test_predict_reads_cached_activations_and_adds_none(digits_small):
    """A grid search's test folds were other folds' training images: predict
    runs only the layers above the cut for images it finds cached."""
    X, y, X_test, _ = digits_small
    clf = PretrainedClassifier(**fast_params(freeze_depth=3)).fit(X, y)
    mixed = np.concatenate([X[:30], X_test[:30]])  # cached, then not
    rows = sktransfer.cache_info()["rows"]
    with_cache = clf.predict_proba(mixed)
    assert sktransfer.cache_info()["rows"] == rows
    sktransfer.clear_cache()
    np.testing.assert_allclose(with_cache, clf.predict_proba(mixed), rtol=1e-5, atol=1e-6)
    # the cached path is really taken: corrupted activations change the output
    PretrainedClassifier(**fast_params(freeze_depth=3)).fit(X, y)
    for entry in activation_store.STORE._entries.values():
        for row in entry.values():
            row.zero_()
    corrupted = clf.predict_proba(mixed)
    assert not np.allclose(corrupted[:30], with_cache[:30])
    np.testing.assert_allclose(corrupted[30:], with_cache[30:], rtol=1e-5, atol=1e-6)
    assert not np.allclose(clf.set_params(cache=False).predict_proba(mixed)[:30],
                           corrupted[:30])


@pytest.mark.slow
def test_a_refit_without_the_cache_forgets_the_cached_path(digits_small):
    """Refitted with the backbone trained, predict must run the new trunk,
    not the activations the previous (frozen) fit cached."""
    X, y, X_test, _ = digits_small
    clf = PretrainedClassifier(**fast_params(freeze_depth=3)).fit(X, y)
    clf.set_params(freeze_depth=0, augment=None, lr=1e-2).fit(X, y)
    assert not clf.cache_info_["used"]
    with_store = clf.predict_proba(X[:20])
    sktransfer.clear_cache()
    np.testing.assert_allclose(with_store, clf.predict_proba(X[:20]), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_grid_search_workers_share_activations_through_cache_dir(digits_small, tmp_path):
    """GridSearchCV(n_jobs=2) runs fits in worker processes: each writes what
    it computes under cache_dir, and every image's activations end up there."""
    X, y, _, _ = digits_small
    estimator = PretrainedClassifier(**fast_params(max_epochs=1, cache_dir=str(tmp_path)))
    GridSearchCV(estimator, {"lr": [1e-3, 1e-2]}, cv=2, n_jobs=2, refit=False).fit(X, y)
    assert sktransfer.cache_info()["rows"] == 0  # nothing was computed in this process
    chunks = list(tmp_path.rglob("keys.npy"))
    assert chunks
    clf = PretrainedClassifier(**fast_params(max_epochs=1, cache_dir=str(tmp_path))).fit(X, y)
    assert clf.cache_info_["from_disk"] == len(X)
    assert clf.cache_info_["computed"] == 0


@pytest.mark.slow
def test_cached_fit_on_the_tiny_backbone_matches_the_uncached_fit(tiny_backbone, digits32):
    X, y = digits32
    cached = PretrainedClassifier(**tiny(tiny_backbone, freeze_depth=2)).fit(X, y)
    plain = PretrainedClassifier(**tiny(tiny_backbone, freeze_depth=2, cache=False)).fit(X, y)
    assert cached.cache_info_["used"] and cached.cache_info_["cut"] == "features.1"
    assert not plain.cache_info_["used"] and plain.cache_info_["reason"] == "cache=False"
    np.testing.assert_allclose(cached.predict_proba(X), plain.predict_proba(X),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_the_cut_memo_is_bounded(tiny_backbone):
    name, weights = tiny_backbone
    from sktransfer._nn.freezing import freeze
    from sktransfer._nn.model import NewHead, attach_head, load_trunk

    trunk = load_trunk(name, weights)
    module = attach_head(trunk, NewHead((), 0.0, 2), sample=torch.zeros(3, 32, 32))
    freeze(module, [0, 1])
    frozen_cut._CUTS.clear()
    for size in range(8, 8 + frozen_cut._MAX_MEMO + 6):
        assert frozen_cut.find_cut(module, [0, 1], torch.rand(2, 3, size, size)) is not None
    assert len(frozen_cut._CUTS) == frozen_cut._MAX_MEMO
