"""ONNX export (``to_onnx``), inference without torch (``OnnxModel``) and int8
(``quantize_onnx``, ``compare_quantized``).

Parity: the estimator and its fp32 graph agree within 1e-4 on every
probability (or target, or feature, relative to their scale) and on every
label, on real data: MNIST digits (the tiny backbone of conftest for the
quick tests, MobileNetV2 for the slow one), scikit-learn's digits as a
table (MLP), short reviews (all-MiniLM-L6-v2, slow).
"""

import os
import pathlib
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes, load_digits
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import sktransfer
from sktransfer import (
    MLP,
    ImageBackbone,
    OnnxExportError,
    OnnxModel,
    PretrainedClassifier,
    TransferFeatures,
    TransferLogisticRegression,
    TransferLogisticRegressionCV,
    TransferRegressor,
    TransferRidgeCV,
    compare_quantized,
    quantize_onnx,
    to_onnx,
)

from .conftest import HELD_OUT, LABELS, TEXTS, fast_params, text_params, tiny

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")

TOLERANCE = 1e-4  # the largest |difference| of a probability the export may make


def quiet(estimator, X, y=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X, y) if y is not None else estimator.fit(X)


def assert_parity(estimator, model: OnnxModel, X):
    """Same labels, probabilities within ``TOLERANCE``."""
    expected = estimator.predict_proba(X)
    got = model.predict_proba(X)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= TOLERANCE
    np.testing.assert_array_equal(model.predict(X), estimator.predict(X))


@pytest.fixture(scope="module")
def table():
    X, y = load_digits(return_X_y=True)
    return X[:300], y[:300], X[300:600], y[300:600]


@pytest.fixture(scope="module")
def mlp(table):
    X, y, _, _ = table
    return quiet(PretrainedClassifier(MLP(hidden_layer_sizes=(32, 16)), max_epochs=5,
                                      device="cpu", random_state=0), X, y)


@pytest.fixture(scope="module")
def mnist_split(mnist):
    X, y = mnist
    return X[:120], y[:120], X[1000:1300], y[1000:1300]


@pytest.fixture(scope="module")
def tiny_clf(tiny_backbone, mnist_split):
    X, y, _, _ = mnist_split
    return quiet(PretrainedClassifier(**tiny(tiny_backbone, max_epochs=2)), X, y)


# -- tables -----------------------------------------------------------------------------------


def test_mlp_classifier_parity(mlp, table, tmp_path):
    X, _, X_test, _ = table
    graph = to_onnx(mlp, X[:10], tmp_path / "mlp.onnx")
    assert [o.name for o in graph.graph.output] == ["label", "probabilities"]
    model = OnnxModel(tmp_path / "mlp.onnx")
    assert_parity(mlp, model, X_test)
    np.testing.assert_array_equal(model.classes_, mlp.classes_)
    assert model.task == "classifier" and model.input_kind == "tabular"
    # float32 rows are cast to the network's float64, as predict does
    assert_parity(mlp, model, X_test.astype(np.float32))


def test_string_labels_come_back_as_strings(table):
    X, y, X_test, _ = table
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven",
                      "eight", "nine"])
    clf = quiet(PretrainedClassifier(MLP(hidden_layer_sizes=(16,)), max_epochs=3,
                                     device="cpu", random_state=0),
                X.astype(np.float32), names[y])
    model = OnnxModel(to_onnx(clf, X[:5].astype(np.float32)).SerializeToString())
    assert model.classes_.dtype == clf.classes_.dtype
    assert_parity(clf, model, X_test.astype(np.float32))
    assert model.predict(X_test[:3]).dtype.kind == "U"


def test_bool_labels(table):
    X, y, X_test, _ = table
    clf = quiet(PretrainedClassifier(MLP(hidden_layer_sizes=(16,)), max_epochs=2,
                                     device="cpu", random_state=0), X, y > 4)
    model = OnnxModel(to_onnx(clf, X[:5]).SerializeToString())
    assert model.predict(X_test).dtype == bool
    assert_parity(clf, model, X_test)


@pytest.mark.parametrize("two_targets", [False, True])
def test_mlp_regressor_parity(two_targets):
    X, y = load_diabetes(return_X_y=True)
    Y = np.column_stack([y, -2 * y]) if two_targets else y
    reg = quiet(make_pipeline(StandardScaler(), TransferRegressor(
        MLP(hidden_layer_sizes=(16,)), max_epochs=5, device="cpu", random_state=0)),
        X[:300], Y[:300])
    graph = to_onnx(reg, X[:5])
    assert [o.name for o in graph.graph.output] == ["variable"]
    model = OnnxModel(graph.SerializeToString())
    expected, got = reg.predict(X[300:]), model.predict(X[300:])
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= TOLERANCE * np.abs(expected).max()
    assert model.score(X[300:], Y[300:]) == pytest.approx(reg.score(X[300:], Y[300:]),
                                                          abs=1e-6)


def test_tabular_features_of_a_fitted_mlp(mlp, table):
    X, _, X_test, _ = table
    features = TransferFeatures(mlp, stage=1).fit(X)
    graph = to_onnx(features, X[:5])
    assert [o.name for o in graph.graph.output] == ["features"]
    model = OnnxModel(graph.SerializeToString())
    assert model.task == "transformer"
    np.testing.assert_allclose(model.transform(X_test), features.transform(X_test),
                               atol=TOLERANCE)


def test_column_transformer_with_a_tabular_source(table):
    # a source MLP's hidden layer on some columns, scaled raw columns beside
    X, y, X_test, _ = (part.astype(np.float32) if part.dtype.kind == "f" else part
                       for part in table)
    source = quiet(PretrainedClassifier(MLP(hidden_layer_sizes=(16,)), max_epochs=3,
                                        device="cpu", random_state=0), X[:, :48], y)
    columns = ColumnTransformer([("source", TransferFeatures(source, stage=1), list(range(48))),
                                 ("rest", StandardScaler(), list(range(48, 64)))])
    pipe = quiet(make_pipeline(columns, LogisticRegression(max_iter=500)), X, y)
    assert_parity(pipe, OnnxModel(to_onnx(pipe, X[:5]).SerializeToString()), X_test)


# -- images -----------------------------------------------------------------------------------


def test_image_classifier_parity_on_mnist(tiny_clf, mnist_split, tmp_path):
    X, _, X_test, _ = mnist_split
    to_onnx(tiny_clf, X[:8], tmp_path / "tiny.onnx")
    model = OnnxModel(tmp_path / "tiny.onnx")
    assert model.input_kind == "images"
    # uint8 (N, 28, 28) in, resized to the network's 32 px inside the graph
    assert_parity(tiny_clf, model, X_test)
    assert_parity(tiny_clf, OnnxModel(tmp_path / "tiny.onnx", batch_size=7), X_test[:30])


@pytest.mark.slow
def test_image_preprocessing_is_the_datasets(tiny_backbone, mnist_split):
    """RGB (N, H, W, C) non-square images (resize + centre crop), and float
    (N, C, H, W) images in [0, 1]."""
    X, y, X_test, _ = mnist_split
    rgb = np.repeat(np.pad(X, ((0, 0), (0, 0), (4, 9)))[..., None], 3, axis=-1)
    rgb[..., 1] //= 2  # the channels differ
    clf = quiet(PretrainedClassifier(**tiny(tiny_backbone, max_epochs=1)), rgb, y)
    model = OnnxModel(to_onnx(clf, rgb[:4]).SerializeToString())
    test_rgb = np.repeat(np.pad(X_test, ((0, 0), (0, 0), (4, 9)))[..., None], 3, axis=-1)
    assert_parity(clf, model, test_rgb)

    floats = (rgb.transpose(0, 3, 1, 2) / 255.0).astype(np.float32)
    clf = quiet(PretrainedClassifier(**tiny(tiny_backbone, max_epochs=1)), floats, y)
    model = OnnxModel(to_onnx(clf, floats[:4]).SerializeToString())
    assert_parity(clf, model, (test_rgb.transpose(0, 3, 1, 2) / 255.0).astype(np.float32))


def test_resize_matrices_match_torchvision():
    from torchvision.transforms.v2 import functional as TF

    from sktransfer._nn.onnx_export import resize_matrices

    image = torch.rand(1, 37, 23)
    for size in (16, 64):
        rows, cols = resize_matrices(37, 23, size)
        expected = TF.center_crop(TF.resize(image, size, antialias=True), [size, size])[0]
        torch.testing.assert_close(rows @ image[0] @ cols, expected, atol=1e-6, rtol=0)


def test_image_regressor_and_features(tiny_backbone, mnist_split):
    X, y, X_test, _ = mnist_split
    reg = quiet(TransferRegressor(**tiny(tiny_backbone, max_epochs=1)), X, y.astype(float))
    model = OnnxModel(to_onnx(reg, X[:4]).SerializeToString())
    np.testing.assert_allclose(model.predict(X_test), reg.predict(X_test), atol=TOLERANCE)

    name, weights = tiny_backbone
    features = TransferFeatures(name, weights=weights, stage=2, device="cpu").fit(X)
    model = OnnxModel(to_onnx(features, X[:4]).SerializeToString())
    np.testing.assert_allclose(model.transform(X_test), features.transform(X_test),
                               atol=TOLERANCE)


def test_pipeline_features_scaler_logistic_regression(tiny_backbone, mnist_split, tmp_path):
    X, y, X_test, _ = mnist_split
    name, weights = tiny_backbone
    pipe = make_pipeline(TransferFeatures(name, weights=weights, device="cpu"),
                         StandardScaler(), LogisticRegression(max_iter=300))
    quiet(pipe, X, y)
    to_onnx(pipe, X[:4], tmp_path / "pipe.onnx")
    model = OnnxModel(tmp_path / "pipe.onnx")
    assert model.metadata["sktransfer.estimator"] == \
        "Pipeline(TransferFeatures, StandardScaler, LogisticRegression)"
    assert_parity(pipe, model, X_test)


@pytest.mark.slow
def test_pipeline_probe_then_linear_transfer(tiny_backbone, mnist_split):
    """TransferFeatures(fitted probe) + TransferLogisticRegressionCV(source=probe)."""
    X, y, X_test, _ = mnist_split
    probe = quiet(PretrainedClassifier(**tiny(tiny_backbone, freeze_depth="all")), X[:100],
                  y[:100])
    pipe = make_pipeline(TransferFeatures(probe), TransferLogisticRegressionCV(source=probe))
    quiet(pipe, X[100:], y[100:])
    assert_parity(pipe, OnnxModel(to_onnx(pipe, X[:4]).SerializeToString()), X_test)


@pytest.mark.slow
def test_mobilenet_v2_fine_tuned_on_mnist(mnist_split, tmp_path):
    X, y, X_test, _ = mnist_split
    clf = quiet(PretrainedClassifier(**fast_params(freeze_depth=0, max_epochs=2, lr=1e-3)),
                X, y)
    to_onnx(clf, X[:8], tmp_path / "mnv2.onnx")
    assert_parity(clf, OnnxModel(tmp_path / "mnv2.onnx"), X_test)


# -- linear transfer estimators ------------------------------------------------------------------


def test_transfer_ridge_through_its_source_pipeline():
    X, y = load_diabetes(return_X_y=True)
    source = make_pipeline(StandardScaler(), RidgeCV()).fit(X[:200], y[:200])
    model = TransferRidgeCV(source=source).fit(X[200:260], y[200:260])
    onnx_model = OnnxModel(to_onnx(model, X[:5]).SerializeToString())
    np.testing.assert_allclose(onnx_model.predict(X[260:]), model.predict(X[260:]),
                               rtol=1e-9)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_transfer_logistic_regression(table, n_classes):
    X, y, X_test, _ = table
    labels = np.array(["low", "mid", "high"])[np.minimum(y // 4, n_classes - 1)]
    model = quiet(TransferLogisticRegression(alpha=1.0), X, labels)
    for dtype in (np.float64, np.float32):
        onnx_model = OnnxModel(to_onnx(model, X[:5].astype(dtype)).SerializeToString())
        assert_parity(model, onnx_model, X_test)


# -- texts --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def text_clf(minilm_path):
    return quiet(PretrainedClassifier(**text_params(max_epochs=1)), TEXTS, LABELS)


@pytest.fixture(scope="module")
def text_file(text_clf, tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "reviews.onnx"
    to_onnx(text_clf, TEXTS[:4], path)
    return path


@pytest.mark.slow
def test_text_classifier_parity(text_clf, text_file):
    assert (text_file.parent / "reviews.tokenizer.json").is_file()
    model = OnnxModel(text_file)
    assert model.input_kind == "text"
    assert_parity(text_clf, model, TEXTS + HELD_OUT)
    # texts run in batches of similar lengths, then put back in their order
    assert_parity(text_clf, OnnxModel(text_file, batch_size=3), TEXTS + HELD_OUT)


@pytest.mark.slow
def test_tokenisation_without_transformers_matches(text_clf, text_file):
    texts = HELD_OUT + ["word " * 40, "Élan vital — naïve café, 10/10!!", "a"]
    expected = text_clf._fit_result.preprocessing.tokenizer(
        texts, padding=True, truncation=True, max_length=16, return_tensors="np")
    got = OnnxModel(text_file).tokenize(texts)
    np.testing.assert_array_equal(got["input_ids"], expected["input_ids"])
    np.testing.assert_array_equal(got["attention_mask"], expected["attention_mask"])
    assert got["input_ids"].shape[1] == 16  # truncated at max_length


@pytest.mark.slow
def test_text_pipeline_and_tokeniser_in_the_metadata(minilm_path):
    pipe = make_pipeline(TransferFeatures(text_params()["backbone"], device="cpu"),
                         LogisticRegression())
    quiet(pipe, TEXTS, LABELS)
    graph = to_onnx(pipe, TEXTS[:3])  # no path: the tokeniser goes into the metadata
    assert [i.name for i in graph.graph.input] == ["input_ids", "attention_mask"]
    assert_parity(pipe, OnnxModel(graph.SerializeToString()), TEXTS + HELD_OUT)


# -- without torch --------------------------------------------------------------------------------

_BLOCK = """
import importlib.abc, sys
class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError(f"{{name}} is not installed here")
        return None
sys.meta_path.insert(0, Blocked())
"""


def _run_without(blocked, body: str, tmp_path):
    root = pathlib.Path(sktransfer.__file__).parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(root), os.environ.get("PYTHONPATH", "")]))
    code = _BLOCK.format(blocked=set(blocked)) + body
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_onnx_model_predicts_without_torch(tiny_clf, mlp, mnist_split, table, tmp_path):
    X, _, X_test, _ = mnist_split
    to_onnx(tiny_clf, X[:4], tmp_path / "images.onnx")
    to_onnx(mlp, table[0][:4], tmp_path / "table.onnx")
    np.save(tmp_path / "images.npy", X_test[:50])
    np.save(tmp_path / "table.npy", table[2][:50])
    body = """
import numpy as np
from sktransfer import OnnxModel
for name in ("images", "table"):
    model = OnnxModel(name + ".onnx")
    np.save(name + "_proba.npy", model.predict_proba(np.load(name + ".npy")))
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "skorch", "torchvision")
               or m.startswith(("sktransfer._nn", "sktransfer._onnx.", "skl2onnx")))
print(heavy)
"""
    out = _run_without({"torch", "torchvision", "skorch", "transformers"}, body, tmp_path)
    assert out.strip() == "[]"
    np.testing.assert_allclose(np.load(tmp_path / "images_proba.npy"),
                               tiny_clf.predict_proba(X_test[:50]), atol=TOLERANCE)
    np.testing.assert_allclose(np.load(tmp_path / "table_proba.npy"),
                               mlp.predict_proba(table[2][:50]), atol=TOLERANCE)


def test_the_runtime_module_works_copied_alone(tiny_clf, mnist_split, tmp_path):
    """The one file beside the model, loaded where neither sktransfer nor
    scikit-learn, scipy or torch can be imported."""
    import shutil

    from sktransfer import _onnx_runtime

    X, _, X_test, _ = mnist_split
    to_onnx(tiny_clf, X[:4], tmp_path / "digits.onnx")
    shutil.copy(_onnx_runtime.__file__, tmp_path / "onnx_runtime.py")
    np.save(tmp_path / "X.npy", X_test[:20])
    body = """
import importlib.util, numpy as np
spec = importlib.util.spec_from_file_location("onnx_runtime", "onnx_runtime.py")
runtime = importlib.util.module_from_spec(spec)
spec.loader.exec_module(runtime)
print(list(runtime.OnnxModel("digits.onnx").predict(np.load("X.npy"))))
"""
    out = _run_without({"torch", "sktransfer", "sklearn", "scipy", "skorch"}, body, tmp_path)
    assert out.strip() == str(list(tiny_clf.predict(X_test[:20])))


@pytest.mark.slow
def test_text_model_predicts_without_torch_or_transformers(text_clf, text_file, tmp_path):
    body = f"""
from sktransfer import OnnxModel
print(list(OnnxModel({str(text_file)!r}).predict({HELD_OUT!r})))
"""
    out = _run_without({"torch", "transformers", "skorch"}, body, tmp_path)
    assert out.strip() == str(list(text_clf.predict(HELD_OUT)))


# -- what is refused, and why ---------------------------------------------------------------------


class FourierNet(torch.nn.Module):
    """A custom backbone with an operator ONNX has no export for."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3)

    def forward(self, x):
        return torch.fft.rfft2(self.conv(x)).abs().mean((2, 3))


class BranchingNet(torch.nn.Module):
    """A custom backbone whose forward branches on its data."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3)

    def forward(self, x):
        h = self.conv(x)
        if h.mean() > 0:
            h = h * 2
        return h.mean((2, 3))


@pytest.mark.parametrize("network, reason", [
    (FourierNet, "operator 'aten::fft_rfft2' has no ONNX export"),
    (BranchingNet, "branches on the values of a tensor"),
])
def test_custom_backbone_that_cannot_be_exported(network, reason, digits32):
    X, y = digits32
    clf = quiet(PretrainedClassifier(ImageBackbone(network(), image_size=32),
                                     freeze_depth="all", device="cpu", random_state=0), X, y)
    with pytest.raises(OnnxExportError, match=reason):
        to_onnx(clf, X[:4])


def test_refusals_name_the_reason(tiny_backbone, mnist_split, table, tmp_path):
    X, y, _, _ = mnist_split
    with pytest.raises(NotFittedError):
        to_onnx(PretrainedClassifier(), X[:4])
    multi = quiet(PretrainedClassifier(MLP(hidden_layer_sizes=(8,)), max_epochs=1,
                                       device="cpu"),
                  table[0], np.column_stack([table[1], table[1] % 2]))
    with pytest.raises(OnnxExportError, match="multi-task"):
        to_onnx(multi, table[0][:4])
    clf = quiet(PretrainedClassifier(**tiny(tiny_backbone, max_epochs=1)), X, y)
    with pytest.raises(OnnxExportError, match="fitted on NHW"):
        to_onnx(clf, np.repeat(X[:4, ..., None], 3, axis=-1))
    from PIL import Image

    paths = []
    for i, image in enumerate(X[:20]):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(image).save(paths[-1])
    on_files = quiet(PretrainedClassifier(**tiny(tiny_backbone, max_epochs=1)), paths, y[:20])
    with pytest.raises(OnnxExportError, match="image files"):
        to_onnx(on_files, X[:4])


def test_missing_packages_say_what_to_install(mlp, table, monkeypatch):
    monkeypatch.setitem(sys.modules, "skl2onnx", None)
    with pytest.raises(ImportError, match=r"pip install 'sktransfer\[onnx\]'"):
        to_onnx(mlp, table[0][:4])
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match=r"pip install 'sktransfer\[onnx\]'"):
        OnnxModel("model.onnx")


def test_the_graph_is_checked_against_the_estimator(mlp, table, monkeypatch):
    from sktransfer import _onnx

    monkeypatch.setattr(_onnx, "_reference", lambda model, X: {
        "label": mlp.predict(X), "probabilities": mlp.predict_proba(X)[:, ::-1]})
    with pytest.raises(OnnxExportError, match="does not reproduce"):
        to_onnx(mlp, table[0][:20])
    to_onnx(mlp, table[0][:20], check=False)


def test_onnx_model_checks_its_input(tiny_clf, mnist_split):
    X, _, _, _ = mnist_split
    model = OnnxModel(to_onnx(tiny_clf, X[:4]).SerializeToString())
    with pytest.raises(ValueError, match=r"\(N, 28, 28\)"):
        model.predict(X[:, :20])
    with pytest.raises(TypeError, match="uint8"):
        model.predict(X / 255.0)
    with pytest.raises(AttributeError, match="transform"):
        model.transform(X[:2])
    np.testing.assert_array_equal(model.predict(X[:5].astype(np.int64)),
                                  tiny_clf.predict(X[:5]))


# -- int8 ---------------------------------------------------------------------------------------


def test_dynamic_int8_mlp(mlp, table, tmp_path):
    X, _, X_test, y_test = table
    to_onnx(mlp, X[:4], tmp_path / "fp32.onnx")
    path = quantize_onnx(tmp_path / "fp32.onnx", tmp_path / "int8.onnx")
    model = OnnxModel(path)
    assert model.metadata["sktransfer.quantized"] == "dynamic"
    assert (model.predict(X_test) == mlp.predict(X_test)).mean() > 0.9
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # int8 may not be faster on this CPU
        report = compare_quantized(tmp_path / "fp32.onnx", path, X_test, y_test,
                                   repeats=3, warmup=1)
    assert report.agreement > 0.9
    assert report.accuracy_fp32 == pytest.approx(mlp.score(X_test, y_test))
    assert set(report.latency_ms) == {1, 64}
    assert "fp32" in str(report)


def test_static_int8_images(tiny_clf, mnist_split, tmp_path):
    X, _, X_test, y_test = mnist_split
    to_onnx(tiny_clf, X[:4], tmp_path / "fp32.onnx")
    with pytest.raises(ValueError, match="calibration"):
        quantize_onnx(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", mode="static")
    path = quantize_onnx(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", mode="static",
                         calibration=X)
    int8 = OnnxModel(path)
    assert int8.metadata["sktransfer.quantized"] == "static"
    assert (int8.predict(X_test) == tiny_clf.predict(X_test)).mean() > 0.9
    # the image handling stayed in float: no quantize node reads the raw input
    import onnx

    nodes = onnx.load_model(str(path)).graph.node
    assert not any(n.op_type == "QuantizeLinear" and n.input[0] == "X" for n in nodes)


def test_a_slower_int8_is_said_plainly(mlp, table, tmp_path, monkeypatch):
    from sktransfer import _onnx_quantize

    X, _, X_test, _ = table
    to_onnx(mlp, X[:4], tmp_path / "fp32.onnx")
    path = quantize_onnx(tmp_path / "fp32.onnx", tmp_path / "int8.onnx")
    # fp32 1 ms, int8 2 ms at every batch size
    monkeypatch.setattr(_onnx_quantize, "_latencies", lambda *args: [1.0, 2.0])
    with pytest.warns(UserWarning, match="NOT faster"):
        report = compare_quantized(tmp_path / "fp32.onnx", path, X_test)
    assert not report.int8_faster and report.latency_ms[64]["speedup"] == 0.5


@pytest.mark.slow
def test_dynamic_int8_text(text_clf, text_file, tmp_path):
    path = quantize_onnx(text_file, tmp_path / "reviews.int8.onnx")
    assert (tmp_path / "reviews.int8.tokenizer.json").is_file()
    model = OnnxModel(path)
    # a one-epoch fit sits near its decision boundary: compare probabilities
    difference = np.abs(model.predict_proba(TEXTS) - text_clf.predict_proba(TEXTS)).max()
    assert difference < 0.1
