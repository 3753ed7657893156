"""Tests of image input validation (sktransfer._images), of the Dataset that
turns validated images into network inputs (sktransfer._nn.data), and of the
input error paths of PretrainedClassifier."""

import multiprocessing
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from sktransfer import ImageBackbone, PretrainedClassifier
from sktransfer._images import check_images
from sktransfer._nn.backbones import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from sktransfer._nn.data import ImageDataset

MEAN = torch.tensor(IMAGENET_MEAN)[:, None, None]
STD = torch.tensor(IMAGENET_STD)[:, None, None]
PREP = Preprocessing(32, IMAGENET_MEAN, IMAGENET_STD)


def normalised(rgb):
    """The network input of a constant image whose [0, 1] colour is ``rgb``."""
    return (torch.tensor(rgb, dtype=torch.float32)[:, None, None] - MEAN) / STD


def fast_classifier(**params):
    defaults = dict(backbone=ImageBackbone("mobilenet_v2", image_size=32), weights=None,
                    max_epochs=1, batch_size=8, freeze_depth="all", random_state=0)
    return PretrainedClassifier(**{**defaults, **params})


@pytest.fixture
def rgb_uint8():
    return np.random.RandomState(0).randint(0, 256, size=(8, 20, 20, 3), dtype=np.uint8)


@pytest.fixture
def labels():
    return np.array(["cat", "dog"] * 4)


@pytest.fixture
def png_paths(tmp_path):
    rng = np.random.RandomState(0)
    paths = []
    for i in range(4):
        path = tmp_path / f"image_{i}.png"
        Image.fromarray(rng.randint(0, 256, size=(10, 12, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def fitted_on_rgb_arrays():
    X = np.random.RandomState(1).randint(0, 256, size=(8, 20, 20, 3), dtype=np.uint8)
    return fast_classifier().fit(X, np.array([0, 1] * 4))


# -- accepted inputs ---------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3])
def test_uint8_nhwc_is_transposed_to_nchw_without_copy(channels):
    X = np.random.RandomState(0).randint(0, 256, size=(5, 7, 9, channels), dtype=np.uint8)
    checked = check_images(X)
    assert checked.storage == "array"
    assert checked.layout == "NHWC"
    assert checked.channels == channels
    assert checked.data.shape == (5, channels, 7, 9)
    assert np.shares_memory(checked.data, X)
    np.testing.assert_array_equal(checked.data, X.transpose(0, 3, 1, 2))
    assert checked.scale == pytest.approx(1 / 255)
    assert len(checked) == 5


def test_grayscale_nhw_gets_a_channel_axis():
    X = np.zeros((4, 6, 8), dtype=np.uint8)
    checked = check_images(X)
    assert (checked.layout, checked.channels) == ("NHW", 1)
    assert checked.data.shape == (4, 1, 6, 8)


def test_float_nchw_in_unit_interval():
    X = np.random.RandomState(0).uniform(0, 1, size=(3, 3, 10, 10)).astype(np.float32)
    X[0, 0, 0, 0], X[0, 0, 0, 1] = 0.0, 1.0  # both bounds are allowed
    checked = check_images(X)
    assert (checked.layout, checked.channels, checked.scale) == ("NCHW", 3, 1.0)
    assert checked.data is X


def test_uint8_nchw_is_recognised_when_last_axis_is_not_a_channel():
    checked = check_images(np.zeros((2, 3, 16, 16), dtype=np.uint8))
    assert (checked.layout, checked.channels) == ("NCHW", 3)


def test_list_of_paths(png_paths):
    for items in (png_paths, [str(p) for p in png_paths]):
        checked = check_images(items)
        assert (checked.storage, checked.layout, checked.channels) == ("files", "files", None)
        assert checked.data == list(items)


def test_list_of_pil_images():
    images = [Image.new("RGB", (5, 4)), Image.new("L", (6, 6)), Image.new("RGBA", (3, 3))]
    checked = check_images(images)
    assert checked.storage == "files"
    assert checked.data == images


def test_numpy_array_of_paths(png_paths):
    X = np.array([str(p) for p in png_paths])
    assert X.dtype.kind == "U"
    checked = check_images(X)
    assert checked.storage == "files"
    assert checked.data == [str(p) for p in png_paths]


def test_pandas_series_of_paths(png_paths):
    X = pd.Series([str(p) for p in png_paths], index=[10, 20, 30, 40])
    checked = check_images(X)
    assert checked.storage == "files"
    assert checked.data == [str(p) for p in png_paths]


# -- rejected inputs ---------------------------------------------------------


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_non_finite_values(bad_value):
    X = np.full((2, 3, 4, 4), 0.5)
    X[1, 2, 3, 3] = bad_value
    with pytest.raises(ValueError, match="NaN or infinity"):
        check_images(X)


@pytest.mark.parametrize("bad_value", [-0.1, 1.5, 255.0])
def test_float_values_outside_unit_interval(bad_value):
    X = np.full((2, 3, 4, 4), 0.5, dtype=np.float32)
    X[0, 0, 0, 0] = bad_value
    with pytest.raises(ValueError, match=r"float images must hold values in \[0, 1\]"):
        check_images(X)


@pytest.mark.parametrize("bad_value", [-1, 256, 1000])
def test_integer_values_outside_0_255(bad_value):
    X = np.zeros((2, 4, 4, 3), dtype=np.int32)
    X[1, 1, 1, 1] = bad_value
    with pytest.raises(ValueError, match=r"integer images must hold values in \[0, 255\]"):
        check_images(X)


@pytest.mark.parametrize("X", [np.zeros((0, 4, 4, 3), dtype=np.uint8), [], np.array([])],
                         ids=["empty-array", "empty-list", "empty-1d"])
def test_empty_input(X):
    with pytest.raises(ValueError, match="0 sample"):
        check_images(X)


def test_two_dimensional_array_suggests_reshaping():
    with pytest.raises(ValueError, match=r"shape \(6, 64\).*Reshape flattened images"):
        check_images(np.zeros((6, 64), dtype=np.uint8))


def test_five_dimensional_array():
    with pytest.raises(ValueError, match=r"got an array with shape \(2, 3, 4, 4, 3\)"):
        check_images(np.zeros((2, 3, 4, 4, 3), dtype=np.uint8))


@pytest.mark.parametrize("shape", [(2, 5, 5, 5), (2, 4, 8, 8)], ids=["5-channels", "RGBA-first"])
def test_no_channel_axis(shape):
    with pytest.raises(ValueError, match="cannot find the channel axis"):
        check_images(np.zeros(shape, dtype=np.uint8))


def test_rgba_images_are_refused_with_a_hint():
    with pytest.raises(ValueError, match=r"alpha channel.*X\[\.\.\., :3\]"):
        check_images(np.zeros((2, 8, 8, 4), dtype=np.uint8))


def test_missing_file(png_paths, tmp_path):
    missing = tmp_path / "no_such_image.png"
    with pytest.raises(ValueError, match="image files not found: .*no_such_image.png"):
        check_images(png_paths + [missing])


def test_paths_in_a_two_dimensional_array(png_paths):
    with pytest.raises(ValueError, match="must be 1-D"):
        check_images(np.array([[str(p) for p in png_paths]]))


def test_list_mixing_paths_and_arrays(png_paths):
    with pytest.raises(TypeError, match="item 0 is a file path but item 1 is a numpy array"):
        check_images([png_paths[0], np.zeros((4, 4, 3), dtype=np.uint8)])
    with pytest.raises(TypeError, match="item 0 is a numpy array but item 2 is a file path"):
        check_images([np.zeros((4, 4, 3), dtype=np.uint8)] * 2 + [png_paths[0]])
    with pytest.raises(TypeError, match="file paths .* or PIL images; found int"):
        check_images([str(png_paths[0]), 3])


MIXED_MESSAGE = (r"X mixes kinds of images: item {} is a {} but item {} is a {}\. Pass one "
                 r"kind: file paths or PIL images \(arrays convert with PIL\.Image\.fromarray\)"
                 r".*or one numpy array of equally sized images")


@pytest.mark.parametrize("order", ["pil-first", "array-first", "pil-last"])
def test_list_mixing_pil_images_and_arrays_is_refused_in_any_order(order):
    array = np.zeros((4, 4, 3), dtype=np.uint8)
    pil = Image.fromarray(array)
    X, expected = {
        "pil-first": ([pil, array], (0, "PIL image", 1, "numpy array")),
        "array-first": ([array, pil], (0, "numpy array", 1, "PIL image")),
        "pil-last": ([array, array, array, pil], (0, "numpy array", 3, "PIL image")),
    }[order]
    with pytest.raises(TypeError, match=MIXED_MESSAGE.format(*expected)):
        check_images(X)
    with pytest.raises(TypeError, match="X mixes kinds of images"):
        check_images(np.array(X + [None], dtype=object)[:-1])  # the same, as an object array


def test_fit_on_a_list_mixing_arrays_and_pil_images_is_refused():
    array = np.zeros((4, 4, 3), dtype=np.uint8)
    clf = fast_classifier()
    with pytest.raises(TypeError, match="item 0 is a numpy array but item 1 is a PIL image"):
        clf.fit([array, Image.fromarray(array)], [0, 1])
    assert not hasattr(clf, "net_")


def test_list_of_pil_images_and_paths_is_accepted(png_paths):
    # Both are resized image by image: mixing them is not ambiguous.
    checked = check_images([png_paths[0], Image.open(png_paths[1])])
    assert checked.storage == "files"


def test_list_of_arrays_of_different_sizes():
    X = [np.zeros((4, 4, 3)), np.zeros((4, 4, 3)), np.zeros((5, 6, 3)), np.zeros((7, 7, 3))]
    with pytest.raises(ValueError, match=r"the images in X differ in size: item 0 has shape "
                                         r"\(4, 4, 3\) but item 2 has shape \(5, 6, 3\)\. "
                                         r"Resize them to one size first, or pass them as PIL "
                                         r"images \(PIL\.Image\.fromarray\) or file paths, "
                                         r"which are resized image by image") as excinfo:
        check_images(X)
    assert "inhomogeneous" not in str(excinfo.value)


def test_list_of_equally_sized_arrays_is_one_array():
    X = [np.full((4, 5, 3), i, dtype=np.uint8) for i in range(3)]
    checked = check_images(X)
    assert (checked.storage, checked.layout, checked.data.shape) == ("array", "NHWC", (3, 3, 4, 5))


@pytest.mark.parametrize("dtype", [bool, np.complex64])
def test_non_numeric_image_dtypes(dtype):
    with pytest.raises(TypeError, match=f"got dtype {np.dtype(dtype)}"):
        check_images(np.zeros((2, 4, 4, 3), dtype=dtype))


def test_none():
    with pytest.raises(ValueError, match="X is None"):
        check_images(None)


# -- the Dataset: resizing and normalisation ----------------------------------


def test_white_rgb_image_is_resized_and_normalised():
    X = np.full((1, 28, 28, 3), 255, dtype=np.uint8)
    image, target = ImageDataset(check_images(X), PREP, 32)[0]
    assert image.shape == (3, 32, 32)
    assert image.dtype == torch.float32
    assert target == 0
    expected = normalised([1.0, 1.0, 1.0]).expand(3, 32, 32)
    torch.testing.assert_close(image, expected, atol=1e-5, rtol=0)


def test_black_image_gives_minus_mean_over_std():
    X = np.zeros((1, 32, 32, 3), dtype=np.uint8)  # already at size: no resize
    image, _ = ImageDataset(check_images(X), PREP, 32)[0]
    torch.testing.assert_close(image, normalised([0.0, 0.0, 0.0]).expand(3, 32, 32))


def test_grayscale_image_is_replicated_to_three_channels():
    X = np.full((2, 28, 28), 255, dtype=np.uint8)
    X[1] = 0
    dataset = ImageDataset(check_images(X), PREP, 32)
    white, black = dataset.image(0), dataset.image(1)
    assert white.shape == black.shape == (3, 32, 32)
    torch.testing.assert_close(white, normalised([1.0] * 3).expand(3, 32, 32), atol=1e-5, rtol=0)
    torch.testing.assert_close(black, normalised([0.0] * 3).expand(3, 32, 32), atol=1e-5, rtol=0)


def test_float_channel_values_reach_their_own_channel():
    X = np.zeros((1, 3, 32, 32), dtype=np.float32)
    X[0, 0], X[0, 1], X[0, 2] = 0.25, 0.5, 1.0
    image, _ = ImageDataset(check_images(X), PREP, 32)[0]
    torch.testing.assert_close(image, normalised([0.25, 0.5, 1.0]).expand(3, 32, 32))


def test_dataset_leaves_the_callers_array_unchanged():
    X = np.random.RandomState(0).uniform(size=(2, 3, 32, 32)).astype(np.float32)
    before = X.copy()
    ImageDataset(check_images(X), PREP, 32)[0]
    np.testing.assert_array_equal(X, before)


def test_targets_are_returned_with_images():
    X = np.zeros((3, 8, 8), dtype=np.uint8)
    dataset = ImageDataset(check_images(X), PREP, 8, targets=np.array([2, 0, 1]))
    assert len(dataset) == 3
    assert [dataset[i][1] for i in range(3)] == [(2, 1.0), (0, 1.0), (1, 1.0)]
    weighted = ImageDataset(check_images(X), PREP, 8, targets=np.array([2, 0, 1]),
                            sample_weight=np.array([0.5, 1.0, 2.0]))
    assert [weighted[i][1] for i in range(3)] == [(2, 0.5), (0, 1.0), (1, 2.0)]


@pytest.mark.parametrize("transpose", [False, True], ids=["wide", "tall"])
def test_non_square_file_is_resized_on_shorter_side_then_centre_cropped(tmp_path, transpose):
    # 32 x 96 image: red | blue | green bands across the long side. Resizing the
    # shorter side to 16 gives 16 x 48, whose centre 16 x 16 crop is all blue.
    pixels = np.zeros((32, 96, 3), dtype=np.uint8)
    pixels[:, :24, 0] = 255
    pixels[:, 24:72, 2] = 255
    pixels[:, 72:, 1] = 255
    if transpose:
        pixels = pixels.transpose(1, 0, 2).copy()
    path = tmp_path / "bands.png"
    Image.fromarray(pixels).save(path)
    image = ImageDataset(check_images([path]), PREP, 16).image(0)
    assert image.shape == (3, 16, 16)
    torch.testing.assert_close(image, normalised([0.0, 0.0, 1.0]).expand(3, 16, 16),
                               atol=1e-3, rtol=0)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P"])
def test_files_and_pil_images_of_other_modes_become_rgb(tmp_path, mode):
    white = Image.new("RGB", (20, 20), (255, 255, 255)).convert(mode)
    path = tmp_path / "white.png"
    white.save(path)
    for item in (white, path):
        image = ImageDataset(check_images([item]), PREP, 32).image(0)
        assert image.shape == (3, 32, 32)
        torch.testing.assert_close(image, normalised([1.0] * 3).expand(3, 32, 32),
                                   atol=1e-5, rtol=0)


# -- estimator-level error paths ----------------------------------------------


def test_fit_with_inconsistent_lengths(rgb_uint8, labels):
    with pytest.raises(ValueError, match=r"inconsistent numbers of samples: \[8, 7\]"):
        fast_classifier().fit(rgb_uint8, labels[:7])


def test_fit_with_one_class(rgb_uint8):
    with pytest.raises(ValueError, match="number of classes has to be greater than one"):
        fast_classifier().fit(rgb_uint8, np.zeros(8, dtype=int))


def test_fit_without_y(rgb_uint8):
    with pytest.raises(ValueError, match="requires y to be passed"):
        fast_classifier().fit(rgb_uint8, None)


def test_fit_with_invalid_images(labels):
    with pytest.raises(ValueError, match="NaN or infinity"):
        fast_classifier().fit(np.full((8, 3, 8, 8), np.nan), labels)


def test_predict_before_fit(rgb_uint8):
    clf = fast_classifier()
    with pytest.raises(NotFittedError):
        clf.predict(rgb_uint8)
    with pytest.raises(NotFittedError):
        clf.predict_proba(rgb_uint8)


def test_predict_with_another_layout_than_fit(fitted_on_rgb_arrays):
    gray = np.zeros((3, 20, 20), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"NHW arrays with 1 channel.*fitted on NHWC arrays "
                                         r"with 3 channel.*same layout"):
        fitted_on_rgb_arrays.predict(gray)
    with pytest.raises(ValueError, match="layout"):
        fitted_on_rgb_arrays.predict_proba(np.zeros((3, 3, 20, 20), dtype=np.float32))


def test_predict_with_the_fit_layout_at_another_size(fitted_on_rgb_arrays):
    X = np.random.RandomState(2).randint(0, 256, size=(3, 40, 50, 3), dtype=np.uint8)
    proba = fitted_on_rgb_arrays.predict_proba(X)
    assert proba.shape == (3, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert set(fitted_on_rgb_arrays.predict(X)) <= {0, 1}


@pytest.mark.slow
def test_fit_on_paths_then_predict_on_pil_images(png_paths):
    clf = fast_classifier().fit(png_paths, ["a", "b", "a", "b"])
    images = [Image.open(p) for p in png_paths[:2]]
    assert set(clf.predict(images)) <= {"a", "b"}
    with pytest.raises(ValueError, match="fitted on image files / PIL images"):
        clf.predict(np.zeros((2, 10, 12, 3), dtype=np.uint8))


def test_unreadable_image_file_fails_fit_naming_the_file(png_paths, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"these bytes are not a PNG")
    check_images(png_paths + [broken])  # existence is all that is checked up front
    clf = fast_classifier(batch_size=2)
    with pytest.raises(ValueError, match="cannot read image file") as excinfo:
        clf.fit(png_paths + [broken], [0, 1, 0, 1, 0])
    assert str(broken) in str(excinfo.value)
    assert not hasattr(clf, "classes_")  # a failed fit leaves nothing fitted
    assert not hasattr(clf, "net_")


def test_single_path_string_asks_for_a_list():
    from sktransfer._images import check_images

    with pytest.raises(TypeError, match="single image"):
        check_images("digit.png")


@pytest.fixture
def broken_png(tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"these bytes are not a PNG")
    return broken


def tiny_from_scratch(tiny_backbone, n_jobs):
    return PretrainedClassifier(ImageBackbone(tiny_backbone[0], image_size=16), weights=None,
                                max_epochs=1, n_jobs=n_jobs, device="cpu", random_state=0)


def test_unreadable_image_file_in_a_worker_gives_the_plain_error(png_paths, broken_png,
                                                                  tiny_backbone):
    # The file is decoded in a DataLoader worker process (n_jobs=2); the
    # error must read as it does without workers, not as torch's wrapper.
    broken = broken_png
    clf = tiny_from_scratch(tiny_backbone, n_jobs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # one epoch is enough here
        clf.fit(png_paths, [0, 1, 0, 1])
    clf.set_params(n_jobs=2)
    assert clf.predict(png_paths).shape == (4,)  # workers work on readable files
    workers_before = set(multiprocessing.active_children())
    with pytest.raises(ValueError, match=r"^cannot read image file ") as excinfo:
        clf.predict(png_paths + [broken])
    message = str(excinfo.value)
    assert str(broken) in message
    assert "DataLoader worker" not in message and "Traceback" not in message
    assert excinfo.value.__cause__ is None and excinfo.value.__context__ is None
    # the workers stop now, not at some later garbage collection
    assert set(multiprocessing.active_children()) <= workers_before


def test_unreadable_image_file_in_a_training_worker_gives_the_plain_error(png_paths, broken_png,
                                                                           tiny_backbone):
    """The same during fit: the training loop's workers decode the files."""
    clf = tiny_from_scratch(tiny_backbone, n_jobs=2)
    with pytest.raises(ValueError, match=r"^cannot read image file ") as excinfo:
        clf.fit(png_paths + [broken_png], [0, 1, 0, 1, 0])
    assert "DataLoader worker" not in str(excinfo.value)
    assert excinfo.value.__context__ is None
    assert not hasattr(clf, "net_")  # the failed fit left nothing behind
