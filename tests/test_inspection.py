"""sktransfer.inspection on tiny real models: attributions that point at
what a model learnt, Integrated Gradients' completeness, the
model-randomisation test, the worst predictions, and the displays."""

import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.metrics import confusion_matrix

from sktransfer import PretrainedClassifier, TransferFeatures, TransferRegressor
from sktransfer.inspection import (
    AttributionDisplay,
    TopLossesDisplay,
    attribute,
    most_confused,
    sanity_check,
    top_losses,
)

from .conftest import (
    HELD_OUT,
    LABELS,
    QUICK_MLP,
    TEXTS,
    cuda_tagged_pickle,
    quiet_fit,
    text_params,
    tiny,
)

SIDE = 6  # the bright square's side, in pixels


def squares(n, seed, size=32):
    """Dark noise images; class 1 holds a bright square at a random place.
    Returns the images, the labels and each square's centre (row, col)."""
    rng = np.random.RandomState(seed)
    X = rng.randint(0, 60, size=(n, size, size, 3)).astype(np.uint8)
    y = rng.randint(0, 2, n)
    centres = []
    for i in range(n):
        r, c = rng.randint(0, size - SIDE, 2)
        centres.append((r + SIDE // 2, c + SIDE // 2))
        if y[i]:
            X[i, r:r + SIDE, c:c + SIDE] = 255
    return X, y, np.array(centres)


@pytest.fixture(scope="module")
def square_model(tiny_backbone):
    """The tiny CNN trained to tell images with a bright square (accuracy 1
    on held-out images) and held-out images with a square."""
    X, y, _ = squares(64, 0)
    clf = quiet_fit(PretrainedClassifier(**tiny(tiny_backbone, max_epochs=4, lr=3e-2)), X, y)
    X_test, y_test, centres = squares(24, 1)
    assert clf.score(X_test, y_test) >= 0.9
    return clf, X_test[y_test == 1], centres[y_test == 1]


@pytest.fixture(scope="module")
def digits_mlp(digits):
    X, y = digits
    return quiet_fit(PretrainedClassifier(**QUICK_MLP), X, y), X, y


def _peaks(maps):
    return np.array([np.unravel_index(np.argmax(m), m.shape) for m in maps])


def _logits(clf, X):
    from sktransfer.inspection._attribution import _network_inputs
    from sktransfer._nn.attribution import outputs_of

    return outputs_of(clf.net_.module_, _network_inputs(clf, X), 32).double().numpy()


# -- images ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["gradcam", "integrated_gradients"])
def test_image_attributions_peak_at_the_square(square_model, method):
    clf, X, centres = square_model
    result = attribute(clf, X[:8], method=method, target=1, n_steps=16)
    assert result.attributions.shape == (8, 32, 32)
    assert result.method == method
    distance = np.abs(_peaks(result.attributions) - centres[:8]).max(1)
    assert (distance <= SIDE).mean() >= 0.8, distance


def test_gradcam_defaults_to_the_predicted_class(square_model):
    clf, X, _ = square_model
    result = attribute(clf, X[:4])
    assert result.method == "gradcam"
    np.testing.assert_array_equal(result.targets, clf.predict(X[:4]))


def test_integrated_gradients_sum_to_the_logit_difference(square_model):
    clf, X, _ = square_model
    result = attribute(clf, X[:3], method="integrated_gradients", target=1, n_steps=64)
    gap = _logits(clf, X[:3])[:, 1] - _logits(clf, np.zeros_like(X[:3]))[:, 1]
    np.testing.assert_allclose(result.attributions.sum((1, 2)), gap, rtol=0.05, atol=0.05)


def test_maps_come_back_at_each_images_resolution(square_model):
    clf, _, _ = square_model
    X, _, _ = squares(3, 2, size=48)
    wide = np.concatenate([X, X[:, :, :16]], axis=2)  # 48 x 64: the network read the centre
    result = attribute(clf, wide, method="gradcam")
    assert result.attributions.shape == (3, 48, 64)
    assert np.all(result.attributions[:, :, :8] == 0)  # outside the centre square


def _state(clf):
    module = clf.net_.module_
    return ({k: v.clone() for k, v in module.state_dict().items()},
            [p.requires_grad for p in module.parameters()],
            [m.training for m in module.modules()],
            [None if p.grad is None else p.grad.clone() for p in module.parameters()])


@pytest.mark.parametrize("method", ["gradcam", "integrated_gradients", "gradient_x_input"])
def test_the_fitted_estimator_is_left_unchanged(square_model, method):
    clf, X, _ = square_model
    module = clf.net_.module_
    module.trunk.features[0].requires_grad_(False)  # a mix of frozen and trainable
    module.train()  # and a mode that is not eval
    try:
        before, proba = _state(clf), clf.predict_proba(X[:4])
        attribute(clf, X[:4], method=method, n_steps=4)
        sanity_check(clf, X[:4], method=method, n_steps=4)
        after = _state(clf)
        for name, value in before[0].items():
            assert torch.equal(value, after[0][name]), name
        assert before[1:3] == after[1:3]
        for grad, kept in zip(before[3], after[3]):  # no gradient written to a parameter
            assert (grad is None and kept is None) or torch.equal(grad, kept)
        np.testing.assert_array_equal(clf.predict_proba(X[:4]), proba)
    finally:
        module.trunk.features[0].requires_grad_(True)
        module.eval()


def test_a_pickled_estimator_gives_the_same_attributions(square_model):
    clf, X, _ = square_model
    loaded = pickle.loads(pickle.dumps(clf))
    for method in ("gradcam", "integrated_gradients"):
        np.testing.assert_allclose(attribute(loaded, X[:3], method, n_steps=8).attributions,
                                   attribute(clf, X[:3], method, n_steps=8).attributions)


@pytest.mark.slow
def test_a_model_fitted_on_cuda_explains_on_a_cpu_only_machine(square_model, tmp_path):
    clf, X, _ = square_model
    expected = attribute(clf, X[:3], "gradcam").attributions
    payload = cuda_tagged_pickle(pickle.loads(pickle.dumps(clf)))  # tensors tagged cuda:0
    (tmp_path / "X.pkl").write_bytes(pickle.dumps(X[:3]))
    code = (
        "import pickle, sys, warnings, numpy as np\n"
        "import torch\n"
        "from sktransfer.inspection import attribute\n"
        "assert not torch.cuda.is_available()\n"
        "with warnings.catch_warnings(record=True):\n"
        "    warnings.simplefilter('always')\n"
        "    clf = pickle.loads(sys.stdin.buffer.read())\n"
        f"X = pickle.loads(open({str(tmp_path / 'X.pkl')!r}, 'rb').read())\n"
        f"np.save({str(tmp_path / 'maps.npy')!r}, attribute(clf, X, 'gradcam').attributions)\n"
    )
    env = {"CUDA_VISIBLE_DEVICES": "", "PATH": "", "SKTRANSFER_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", code], input=payload, capture_output=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stderr.decode()
    np.testing.assert_allclose(np.load(tmp_path / "maps.npy"), expected, rtol=1e-5, atol=1e-7)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_attributions_on_cuda_point_at_the_square_and_survive_pickling(tiny_backbone):
    X, y, _ = squares(64, 0)
    clf = quiet_fit(PretrainedClassifier(**tiny(tiny_backbone, max_epochs=4, lr=3e-2,
                                                device="cuda")), X, y)
    assert clf.device_ == "cuda"
    X_test, y_test, centres = squares(24, 1)
    X_test, centres = X_test[y_test == 1], centres[y_test == 1]
    loaded = pickle.loads(pickle.dumps(clf))
    for method in ("gradcam", "integrated_gradients"):
        maps = attribute(clf, X_test[:8], method=method, target=1, n_steps=16).attributions
        assert isinstance(maps, np.ndarray) and maps.shape == (8, 32, 32)
        assert (np.abs(_peaks(maps) - centres[:8]).max(1) <= SIDE).mean() >= 0.8
        np.testing.assert_allclose(
            attribute(loaded, X_test[:8], method=method, target=1, n_steps=16).attributions,
            maps, rtol=1e-4, atol=1e-6)
    assert sanity_check(clf, X_test[:4], "gradcam").full_randomisation <= 0.2


def test_sanity_check_gradcam_loses_its_correlation(square_model):
    clf, X, _ = square_model
    check = sanity_check(clf, X[:8], "gradcam")
    assert check.steps == ["head", "stage 2", "stage 1", "stage 0"]
    assert check.per_sample.shape == (4, 8)
    assert check.correlations[0] > 0.5  # the head alone random: the maps still agree
    assert check.full_randomisation <= 0.2 and not check.flagged


def test_sanity_check_flags_a_method_that_ignores_the_model(square_model):
    clf, X, _ = square_model
    # with threshold -1 every method is flagged: the flag reads the full step
    check = sanity_check(clf, X[:4], "gradcam", threshold=-1.0)
    assert check.flagged and check.full_randomisation == check.correlations[-1]


# -- tables ------------------------------------------------------------------------------


def test_tabular_sanity_compares_signed_attributions(digits_mlp):
    clf, X, _ = digits_mlp
    # digits' pixels are >= 0, so x * gradient's magnitudes follow the input
    # whatever the model: compared in absolute value it stays correlated
    # after randomisation, compared with its sign (how tables are drawn) not
    signed = sanity_check(clf, X[:20], "gradient_x_input", n_steps=8)
    absolute = sanity_check(clf, X[:20], "gradient_x_input", compare="absolute", n_steps=8)
    assert signed.compare == "signed" and absolute.compare == "absolute"
    assert absolute.full_randomisation > signed.full_randomisation + 0.2
    assert not signed.flagged


def test_an_unknown_comparison_is_refused(digits_mlp):
    clf, X, _ = digits_mlp
    with pytest.raises(ValueError, match="compare must be one of"):
        sanity_check(clf, X[:4], compare="rank")


def test_tabular_integrated_gradients_are_complete(digits_mlp):
    clf, X, _ = digits_mlp
    result = attribute(clf, X[:5], n_steps=128)
    assert result.method == "integrated_gradients" and result.attributions.shape == (5, 64)
    index = np.searchsorted(clf.classes_, result.targets)
    gap = (_logits(clf, X[:5])[np.arange(5), index]
           - _logits(clf, np.zeros((1, 64)))[0, index])
    np.testing.assert_allclose(result.attributions.sum(1), gap, rtol=1e-2, atol=1e-3)


def test_tabular_gradient_x_input_for_a_chosen_class(digits_mlp):
    clf, X, _ = digits_mlp
    result = attribute(clf, X[:3], method="gradient_x_input", target=7)
    np.testing.assert_array_equal(result.targets, [7, 7, 7])
    assert result.attributions.shape == (3, 64)
    assert np.all(result.attributions[X[:3] == 0] == 0)  # x - 0 is 0 there


def test_regressor_attributions_are_in_the_units_of_y(digits):
    X, y = digits
    target = 1000.0 * X[:, 20] + 5.0
    reg = quiet_fit(TransferRegressor(**QUICK_MLP), X, target)
    result = attribute(reg, X[:4], n_steps=128)
    gap = reg.predict(X[:4]) - reg.predict(np.zeros((1, 64)))
    np.testing.assert_allclose(result.attributions.sum(1), gap, rtol=1e-2, atol=1e-1)
    with pytest.raises(ValueError, match="index of an output column"):
        attribute(reg, X[:2], target=3)


# -- errors --------------------------------------------------------------------------------


def test_an_unfitted_estimator_is_refused(digits):
    with pytest.raises(NotFittedError, match="not fitted yet"):
        attribute(PretrainedClassifier(**QUICK_MLP), digits[0][:2])


def test_a_method_of_another_input_kind_names_the_ones_that_apply(digits_mlp):
    clf, X, _ = digits_mlp
    with pytest.raises(ValueError, match="'integrated_gradients', 'gradient_x_input'"):
        attribute(clf, X[:2], method="gradcam")


def test_a_target_that_is_no_class_is_refused(digits_mlp):
    clf, X, _ = digits_mlp
    with pytest.raises(ValueError, match="not a class of the fitted classifier"):
        attribute(clf, X[:2], target="seven")


def test_transfer_features_are_refused(digits):
    with pytest.raises(TypeError, match="PretrainedClassifier or TransferRegressor"):
        attribute(TransferFeatures(), digits[0][:2])


def test_non_positive_steps_are_refused(digits_mlp):
    clf, X, _ = digits_mlp
    with pytest.raises(ValueError, match="n_steps must be a positive int"):
        attribute(clf, X[:2], n_steps=0)


# -- text (MiniLM) ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def text_model(minilm_path):
    return quiet_fit(PretrainedClassifier(**text_params(freeze_depth="all", max_epochs=1)),
                     TEXTS, LABELS)


@pytest.mark.slow
def test_token_attributions_come_with_the_tokens(text_model):
    result = attribute(text_model, HELD_OUT)
    assert result.method == "gradient_x_input"
    assert result.tokens[1] == ["[CLS]", "boring", ",", "slow", "and", "awful", "[SEP]"]
    assert [len(v) for v in result.attributions] == [len(t) for t in result.tokens]


@pytest.mark.slow
def test_text_integrated_gradients_are_complete(text_model):
    # the path from zero embeddings bends sharply near the start: many steps
    result = attribute(text_model, HELD_OUT, method="integrated_gradients", n_steps=256,
                       batch_size=128)
    index = np.searchsorted(text_model.classes_, result.targets)
    from sktransfer._nn.attribution import _EmbeddingsSwap, text_inputs
    from sktransfer._text import check_texts

    inputs = text_inputs(check_texts(HELD_OUT), text_model._fit_result.preprocessing)
    swap = _EmbeddingsSwap(text_model.net_.module_, inputs.tensor)
    from sktransfer._nn.inference import evaluating

    with torch.no_grad(), evaluating(text_model.net_.module_):
        hidden = swap.embeddings()
        gap = swap(hidden) - swap(torch.zeros_like(hidden))
    expected = gap[np.arange(2), index].numpy()
    np.testing.assert_allclose([v.sum() for v in result.attributions], expected, rtol=0.02)


# -- the worst predictions -----------------------------------------------------------------


def test_top_losses_are_the_samples_with_least_probability_on_their_class(digits_mlp):
    clf, X, y = digits_mlp
    worst = top_losses(clf, X, y, k=5)
    proba = clf.predict_proba(X)
    expected = -np.log(proba[np.arange(len(y)), np.searchsorted(clf.classes_, y)])
    np.testing.assert_allclose(worst.losses, np.sort(expected)[::-1][:5])
    np.testing.assert_array_equal(worst.true, y[worst.indices])
    np.testing.assert_array_equal(worst.predicted, clf.predict(X[worst.indices]))
    np.testing.assert_allclose(worst.probabilities, proba[worst.indices].max(1))


def test_top_losses_of_a_regressor_are_squared_errors(digits):
    X, y = digits
    reg = quiet_fit(TransferRegressor(**QUICK_MLP), X, y.astype(float))
    worst = top_losses(reg, X, y, k=3)
    errors = (reg.predict(X) - y) ** 2
    np.testing.assert_allclose(worst.losses, np.sort(errors)[::-1][:3])
    with pytest.raises(TypeError, match="needs a classifier"):
        most_confused(reg, X, y)


def test_most_confused_counts_the_confusion_matrix(digits_mlp):
    clf, X, y = digits_mlp
    pairs = most_confused(clf, X[:200], y[:200], k=3)
    matrix = confusion_matrix(y[:200], clf.predict(X[:200]), labels=clf.classes_)
    np.fill_diagonal(matrix, 0)
    assert [count for _, _, count in pairs] == sorted(matrix.ravel())[::-1][:3]
    true, predicted, count = pairs[0]
    assert matrix[true, predicted] == count


def test_labels_the_classifier_never_saw_are_refused(digits_mlp):
    clf, X, y = digits_mlp
    with pytest.raises(ValueError, match="not a class of the fitted classifier"):
        top_losses(clf, X[:3], ["a", "b", "c"])
    with pytest.raises(ValueError, match="k must be a positive int"):
        most_confused(clf, X[:3], y[:3], k=0)


# -- displays ------------------------------------------------------------------------------


@pytest.fixture
def pyplot():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield plt
    plt.close("all")


def test_image_display_overlays_each_map_on_its_image(square_model, pyplot):
    clf, X, _ = square_model
    display = AttributionDisplay.from_estimator(clf, X[:3])
    assert display.ax_.shape == (3,) and display.figure_ is display.ax_[0].figure
    layers = display.ax_[0].get_images()
    assert len(layers) == 2  # the image, then the map over it
    np.testing.assert_allclose(layers[0].get_array(), X[0] / 255.0)
    np.testing.assert_allclose(layers[1].get_array(), display.attributions[0])
    assert display.ax_[0].get_title() == "1"


def test_image_display_draws_on_given_axes(square_model, pyplot):
    clf, X, _ = square_model
    figure, axes = pyplot.subplots(1, 2)
    display = AttributionDisplay.from_estimator(clf, X[:2], ax=axes)
    assert display.figure_ is figure and list(display.ax_) == list(axes)
    with pytest.raises(ValueError, match="one axes per panel"):
        AttributionDisplay.from_estimator(clf, X[:3], ax=axes)


def test_table_display_has_a_bar_per_feature(digits_mlp, pyplot):
    clf, X, _ = digits_mlp
    display = AttributionDisplay.from_estimator(clf, X[:4], method="gradient_x_input")
    bars = display.ax_[0].patches
    assert len(bars) == 20
    widths = sorted(abs(b.get_width()) for b in bars)
    assert widths[-1] > 0


def test_top_losses_display_titles_predicted_and_true(square_model, pyplot):
    clf, X, _ = square_model
    y = np.zeros(len(X), dtype=int)  # every square image labelled 0: all are wrong
    display = TopLossesDisplay.from_estimator(clf, X, y, k=3)
    assert display.ax_.shape == (3,)
    assert display.ax_[0].get_title().startswith("1/0")


def test_top_losses_display_of_a_table_has_a_bar_per_sample(digits_mlp, pyplot):
    clf, X, y = digits_mlp
    display = TopLossesDisplay.from_estimator(clf, X, y, k=4)
    assert len(display.ax_[0].patches) == 4


@pytest.mark.slow
def test_text_display_colours_every_token(text_model, pyplot):
    display = AttributionDisplay.from_estimator(text_model, HELD_OUT)
    drawn = [t.get_text() for t in display.ax_[0].texts]
    assert drawn == [token for tokens in display.tokens for token in tokens]
