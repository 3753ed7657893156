"""PretrainedClassifier on the real ImageNet MobileNetV2 weights and real digits:
fit / predict, fitted attributes, frozen stages, reproducibility, the
scikit-learn machinery (pipelines, searches, clone, pickling), image files
and nn.Module backbones."""

import pickle
import subprocess
import sys

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

import sktransfer
from sktransfer import PretrainedClassifier, TrainingDivergedError
from sktransfer._nn.backbones import stage_parameters
from sktransfer._nn.weights import find_local_file, read_state_dict

from .conftest import (
    ALL_OPTIONS,
    cuda_tagged_pickle,
    fast_params,
    predict_proba_without_cuda,
    QUICK_MLP as MLP_PARAMS,
    tiny,
)


@pytest.mark.slow
def test_fit_predict_beats_chance_with_string_labels(digits_small):
    X, y, X_test, y_test = digits_small
    names = np.array(["zero", "one", "two"])
    clf = PretrainedClassifier(**fast_params(max_epochs=3)).fit(X, names[y])
    assert list(clf.classes_) == ["one", "two", "zero"]
    pred = clf.predict(X_test)
    assert set(pred) <= set(names)
    accuracy = np.mean(pred == names[y_test])
    assert accuracy > 0.75  # chance is 0.33
    proba = clf.predict_proba(X_test)
    assert proba.shape == (len(X_test), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], pred)
    assert clf.score(X_test, names[y_test]) == pytest.approx(accuracy)


@pytest.mark.slow
def test_fitted_attributes(digits_small):
    X, y, _, _ = digits_small
    clf = PretrainedClassifier(**fast_params(max_epochs=2, freeze_depth=4, lr=1e-3)).fit(X, y)
    assert clf.n_stages_ == 5 and clf.n_iter_ == 2 and clf.weights_ == "IMAGENET1K_V1"
    assert clf.image_size_ == 32
    assert clf.device_ == "cpu"
    assert [r["epoch"] for r in clf.history_] == [1, 2]
    assert all(np.isfinite(r["train_loss"]) for r in clf.history_)
    assert clf.history_[1]["train_loss"] < clf.history_[0]["train_loss"]


@pytest.mark.slow
def test_pretrained_beats_random_init(digits_small):
    X, y, X_test, y_test = digits_small
    pretrained = PretrainedClassifier(**fast_params(max_epochs=3)).fit(X, y)
    scratch = PretrainedClassifier(**fast_params(max_epochs=3, weights=None)).fit(X, y)
    assert pretrained.score(X_test, y_test) > scratch.score(X_test, y_test) + 0.15


def _trunk_state(clf):
    return {k: v.clone() for k, v in clf.net_.module_.trunk.state_dict().items()}


@pytest.mark.slow
def test_frozen_stages_do_not_change(digits_small):
    X, y, _, _ = digits_small
    clf = PretrainedClassifier(**fast_params(freeze_depth=2, lr=1e-3, max_epochs=2)).fit(X, y)
    source = read_state_dict(find_local_file("mobilenet_v2-b0353104.pth"))
    module = clf.net_.module_
    frozen_prefixes = ("features.0.", "features.1.", "features.2.", "features.3.")
    after = module.trunk.state_dict()
    frozen_keys = [k for k in after if k.startswith(frozen_prefixes)]
    trained_keys = [k for k in after if k.startswith("features.10.") and "running" not in k]
    assert frozen_keys and trained_keys
    for key in frozen_keys:  # weights and BatchNorm running statistics alike
        torch.testing.assert_close(after[key], source[key], rtol=0, atol=0)
    assert any(not torch.equal(after[k], source[k]) for k in trained_keys)

    frozen = {id(p) for stage in module.stages[:2] for p in stage_parameters(module.trunk, stage)}
    assert all(not p.requires_grad for stage in module.stages[:2]
               for p in stage_parameters(module.trunk, stage))
    in_optimizer = {id(p) for g in clf.net_.optimizer_.param_groups for p in g["params"]}
    assert frozen.isdisjoint(in_optimizer)
    module.train()
    frozen_bn = module.trunk.features[1].conv[0][1]
    trained_bn = module.trunk.features[10].conv[0][1]
    assert isinstance(frozen_bn, torch.nn.BatchNorm2d) and not frozen_bn.training
    assert trained_bn.training


def test_freeze_all_trains_only_the_head(digits_small):
    X, y, _, _ = digits_small
    clf = PretrainedClassifier(**fast_params(freeze_depth="all")).fit(X, y)
    source = read_state_dict(find_local_file("mobilenet_v2-b0353104.pth"))
    for key, value in clf.net_.module_.trunk.state_dict().items():
        torch.testing.assert_close(value, source[key], rtol=0, atol=0)
    # the head is solved in closed form: the net holds the module, nothing steps
    assert not hasattr(clf.net_, "optimizer_") and not clf.net_.history
    assert clf.score(X, y) > 0.9


def test_hidden_head_layers(digits_small):
    X, y, _, _ = digits_small
    clf = PretrainedClassifier(**fast_params(head=(64, 16), max_epochs=1)).fit(X, y)
    linears = [m for m in clf.net_.module_.head if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(1280, 64), (64, 16), (16, 3)]


@pytest.mark.slow
def test_random_state_makes_fits_reproducible(digits_small):
    X, y, X_test, _ = digits_small
    a = PretrainedClassifier(**fast_params(freeze_depth=3, max_epochs=1)).fit(X, y)
    sktransfer.clear_cache()  # trained again, not restored (tests/test_trained_fits.py)
    b = PretrainedClassifier(**fast_params(freeze_depth=3, max_epochs=1)).fit(X, y)
    assert not b.cache_info_["restored"]
    np.testing.assert_allclose(a.predict_proba(X_test), b.predict_proba(X_test), rtol=1e-5, atol=1e-6)
    c = PretrainedClassifier(**fast_params(freeze_depth=3, max_epochs=1, random_state=1)).fit(X, y)
    assert not np.allclose(a.predict_proba(X_test), c.predict_proba(X_test))


@pytest.mark.slow
def test_fit_does_not_touch_global_torch_rng(digits_small):
    X, y, _, _ = digits_small
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    PretrainedClassifier(**fast_params(max_epochs=1)).fit(X, y)
    torch.testing.assert_close(torch.rand(3), expected)


@pytest.mark.slow
def test_in_a_pipeline_with_flattened_digits(digits_small):
    X, y, X_test, y_test = digits_small
    to_images = FunctionTransformer(lambda flat: flat.reshape(-1, 28, 28))
    pipe = make_pipeline(to_images, PretrainedClassifier(**fast_params(max_epochs=3)))
    pipe.fit(X.reshape(len(X), -1), y)
    assert pipe.score(X_test.reshape(len(X_test), -1), y_test) > 0.75


@pytest.mark.slow
def test_grid_search_over_freeze_depth_and_lr(digits_small):
    X, y, X_test, y_test = digits_small
    grid = {"freeze_depth": ["all", 3], "lr": [1e-3, 1e-2]}
    search = GridSearchCV(PretrainedClassifier(**fast_params(max_epochs=2)), grid, cv=3,
                          error_score="raise")
    search.fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert len(scores) == 4 and np.all(np.isfinite(scores))
    assert search.best_params_["freeze_depth"] in ("all", 3)
    assert search.best_estimator_.freeze_depth == search.best_params_["freeze_depth"]
    assert search.score(X_test, y_test) > 0.6


@pytest.mark.slow
def test_cross_val_score(digits_small):
    X, y, _, _ = digits_small
    scores = cross_val_score(PretrainedClassifier(**fast_params(max_epochs=2)), X, y, cv=3)
    assert scores.shape == (3,)
    assert scores.mean() > 0.6


def test_clone_of_fitted_is_unfitted(digits_small):
    X, y, X_test, _ = digits_small
    clf = PretrainedClassifier(**fast_params(max_epochs=1)).fit(X, y)
    copy = clone(clf)
    assert repr(copy.get_params()) == repr(clf.get_params())
    assert copy.backbone is not clf.backbone  # the backbone object is cloned too
    assert not hasattr(copy, "net_") and not hasattr(copy, "classes_")
    with pytest.raises(NotFittedError):
        copy.predict(X_test)


@pytest.mark.slow
def test_joblib_round_trip_gives_identical_probabilities(digits_small, tmp_path):
    X, y, X_test, _ = digits_small
    clf = PretrainedClassifier(**fast_params(max_epochs=1, freeze_depth=2)).fit(X, y)
    path = tmp_path / "clf.joblib"
    joblib.dump(clf, path)
    loaded = joblib.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(X_test), clf.predict_proba(X_test))
    np.testing.assert_array_equal(loaded.classes_, clf.classes_)


@pytest.mark.slow
def test_failed_fit_leaves_the_estimator_unchanged(digits_small):
    X, y, X_test, _ = digits_small
    clf = PretrainedClassifier(**fast_params(max_epochs=1, freeze_depth=4)).fit(X, y)
    before = clf.predict_proba(X_test)
    net_before, history_before = clf.net_, clf.history_
    clf.set_params(lr=1e20, optimizer="sgd", max_epochs=3)
    with pytest.raises(TrainingDivergedError, match="diverged.*Lower `lr`"):
        clf.fit(X, y)
    assert clf.net_ is net_before and clf.history_ is history_before
    np.testing.assert_array_equal(clf.predict_proba(X_test), before)

    fresh = PretrainedClassifier(**fast_params(lr=1e20, optimizer="sgd", max_epochs=3,
                                               freeze_depth=4))
    with pytest.raises(TrainingDivergedError):
        fresh.fit(X, y)
    assert not hasattr(fresh, "net_") and not hasattr(fresh, "classes_")
    with pytest.raises(NotFittedError):
        fresh.predict(X_test)


def _fitted_names(estimator):
    return {name for name in vars(estimator) if name.endswith("_")}


def test_refit_starts_from_a_clean_slate(tiny_backbone, digits32, digits):
    X_images, y_images = digits32
    X_table, y_table = digits
    clf = PretrainedClassifier(**tiny(tiny_backbone, freeze_depth="all")).fit(X_images, y_images)
    image_only = {"image_size_", "preprocessing_", "input_signature_", "input_description_"}
    assert image_only | {"probe_alpha_"} <= _fitted_names(clf)
    clf.set_params(**dict(MLP_PARAMS, weights="DEFAULT", freeze_depth=0, early_stopping=True))
    clf.fit(X_table, y_table)  # fine-tuned, on a table
    fitted = _fitted_names(clf)
    assert not (image_only | {"probe_alpha_"}) & fitted
    assert {"n_features_in_", "best_epoch_"} <= fitted
    before = dict(vars(clf))
    with pytest.raises(ValueError):  # a failed refit keeps the previous fit
        clf.fit(X_table, np.full(len(X_table), np.nan))
    assert vars(clf) == before
    clf.set_params(**tiny(tiny_backbone, freeze_depth="all"), early_stopping=False)
    clf.fit(X_images, y_images)
    assert not {"n_features_in_", "best_epoch_"} & _fitted_names(clf)
    assert clf.predict(X_images[:2]).shape == (2,)


@pytest.mark.slow
def test_fit_predict_on_image_files_and_pil_images(digits_small, tmp_path):
    from PIL import Image

    X, y, X_test, y_test = digits_small
    paths = []
    for i, image in enumerate(X):
        path = tmp_path / f"digit_{i}.png"
        Image.fromarray(image).save(path)
        paths.append(str(path))
    clf = PretrainedClassifier(**fast_params(max_epochs=3)).fit(paths, y)
    pil_images = [Image.fromarray(image) for image in X_test]
    assert clf.score(pil_images, y_test) > 0.75
    # decoded files and the arrays they came from give the same predictions
    clf_arrays = PretrainedClassifier(**fast_params(max_epochs=3)).fit(X, y)
    np.testing.assert_allclose(clf.predict_proba(pil_images), clf_arrays.predict_proba(X_test),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_clone_pickle_and_grid_search_with_every_option(digits):
    X, y = digits
    est = PretrainedClassifier(**dict(MLP_PARAMS, **ALL_OPTIONS)).fit(X, y)
    copy = clone(est)
    assert repr(copy.get_params()) == repr(est.get_params()) and not hasattr(copy, "net_")
    loaded = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))
    grid = {"lr_schedule": ["cosine", "onecycle"], "layer_decay": [0.5, 1.0],
            "regularization": [None, "l2sp"], "lr": [1e-2, "auto"]}
    search = GridSearchCV(
        PretrainedClassifier(**dict(MLP_PARAMS, freeze_depth="all", unfreeze_at=1)),
        grid, cv=2, error_score="raise").fit(X, y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


class TinyCNN(torch.nn.Sequential):
    def __init__(self):
        super().__init__(
            torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
            torch.nn.Conv2d(8, 16, 3, stride=2, padding=1), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
        )


def test_nn_module_backbone_keeps_its_parameters_and_is_not_modified(digits_small):
    X, y, _, _ = digits_small
    backbone = TinyCNN()
    original = {k: v.clone() for k, v in backbone.state_dict().items()}
    clf = PretrainedClassifier(**fast_params(backbone=backbone, weights="DEFAULT",
                                             freeze_depth=1, max_epochs=1))
    clf.fit(X, y)
    assert clf.n_stages_ == 3  # conv, bn, conv: the children with parameters
    for key, value in backbone.state_dict().items():  # the user's module is untouched
        torch.testing.assert_close(value, original[key], rtol=0, atol=0)
    trunk = clf.net_.module_.trunk
    torch.testing.assert_close(trunk[0].weight, original["0.weight"], rtol=0, atol=0)
    assert not torch.equal(trunk[3].weight, original["3.weight"])
    assert clf.net_.module_.head[-1].in_features == 16


@pytest.mark.slow
def test_torchvision_instance_backbone_uses_the_registry_adapter(digits_small):
    import torchvision

    X, y, _, _ = digits_small
    clf = PretrainedClassifier(**fast_params(
        backbone=torchvision.models.resnet18(num_classes=7), weights=None, max_epochs=1))
    clf.fit(X, y)
    assert clf.n_stages_ == 5
    assert clf.net_.module_.head[-1].in_features == 512


@pytest.mark.slow
def test_cuda_pickle_loads_on_a_cpu_only_machine(digits_small, tmp_path):
    """A pickle whose tensors are tagged as CUDA storages loads and predicts
    on a machine without CUDA. The tags are written by a serialisation hook so
    that this runs on CPU-only CI; the real GPU round trip is the gpu test below."""
    X, y, X_test, _ = digits_small
    clf = PretrainedClassifier(**fast_params(max_epochs=1)).fit(X, y)
    expected = clf.predict_proba(X_test)
    device, proba = predict_proba_without_cuda(cuda_tagged_pickle(clf), X_test, tmp_path)
    assert device == "cpu"
    # the subprocess may use another number of threads: float32 sums in another order
    np.testing.assert_allclose(proba, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fit_on_cuda_then_predict_on_cpu_only(digits_small, tmp_path):
    X, y, X_test, _ = digits_small
    clf = PretrainedClassifier(**fast_params(device="cuda", max_epochs=1)).fit(X, y)
    assert clf.device_ == "cuda"
    assert next(clf.net_.module_.parameters()).is_cuda
    expected = clf.predict_proba(X_test)
    joblib.dump(clf, tmp_path / "clf.joblib")
    np.save(tmp_path / "X.npy", X_test)
    code = (
        "import joblib, numpy as np, torch\n"
        "assert not torch.cuda.is_available()\n"
        f"clf = joblib.load({str(tmp_path / 'clf.joblib')!r})\n"
        f"np.save({str(tmp_path / 'p.npy')!r}, clf.predict_proba(np.load({str(tmp_path / 'X.npy')!r})))\n"
    )
    env = {"CUDA_VISIBLE_DEVICES": "", "PATH": ""}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr.decode()
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), expected, rtol=1e-3, atol=1e-4)
