"""Transferability scores, ranking of candidate backbones, and the scorer."""

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from sktransfer import ImageBackbone, PretrainedClassifier, TransferFeatures, TransferRegressor
from sktransfer import SourceLabelsUnavailableError, WeightsNotFoundError
from sktransfer.selection import (
    BackboneRanking,
    h_score,
    leep,
    logme,
    make_transferability_scorer,
    nce,
    rank_backbones,
)

from .conftest import LABELS, TEXTS, fast_params


def entropy(labels):
    p = np.unique(labels, return_counts=True)[1] / len(labels)
    return -np.sum(p * np.log(p))


def one_hot(labels, n_classes=None):
    return np.eye(n_classes or labels.max() + 1)[labels]


def informative_and_noise(n=200, d=6, n_classes=3, seed=0):
    rng = np.random.RandomState(seed)
    y = rng.randint(0, n_classes, size=n)
    informative = one_hot(y, n_classes) @ rng.randn(n_classes, d) + 0.5 * rng.randn(n, d)
    return informative, rng.randn(n, d), y


# -- LogME -----------------------------------------------------------------------


def direct_max_log_evidence(F, y):
    """max over (alpha, beta) of log N(y; 0, I / beta + F F' / alpha) / n, by L-BFGS-B."""
    n = len(y)

    def negative(log_params):
        log_alpha, log_beta = log_params
        cov = np.eye(n) * np.exp(-log_beta) + F @ F.T * np.exp(-log_alpha)
        _, logdet = np.linalg.slogdet(cov)
        return 0.5 * (y @ np.linalg.solve(cov, y) + logdet + n * np.log(2 * np.pi)) / n

    starts = [(a, b) for a in (-3.0, 3.0) for b in (-3.0, 3.0)]
    return -min(minimize(negative, s, method="L-BFGS-B", bounds=[(-25, 25)] * 2).fun
                for s in starts)


@pytest.mark.parametrize("n, d", [(40, 5), (12, 40), (40, 40)])
def test_logme_reaches_the_maximum_evidence(n, d):
    rng = np.random.RandomState(n + d)
    F = rng.randn(n, d)
    y = F[:, 0] + 0.5 * rng.randn(n)
    assert logme(F, y) == pytest.approx(direct_max_log_evidence(F, y), abs=1e-7)
    # with fewer samples than features, some columns fit best without noise
    # (beta -> inf), which the bounded direct search approaches to ~1e-7
    labels = np.argmax(F[:, :3] + 0.5 * rng.randn(n, 3), axis=1)
    direct = np.mean([direct_max_log_evidence(F, (labels == k).astype(float))
                      for k in range(3)])
    assert logme(F, labels) == pytest.approx(direct, abs=1e-6)


def test_logme_at_a_limit_is_the_supremum():
    # Noise features: the evidence is highest without signal (alpha -> inf),
    # which a bounded direct search approaches from below.
    rng = np.random.RandomState(0)
    F, y = rng.randn(60, 3), rng.randint(0, 2, 60)
    direct = np.mean([direct_max_log_evidence(F, (y == k).astype(float)) for k in (0, 1)])
    assert direct - 1e-9 <= logme(F, y) <= direct + 1e-4


def test_logme_scores_informative_features_higher():
    informative, noise, y = informative_and_noise()
    assert logme(informative, y) > logme(noise, y) + 0.1
    target = informative[:, 0] + 0.1 * np.random.RandomState(1).randn(len(y))
    assert logme(informative, target) > logme(noise, target) + 0.1


def test_logme_invariances():
    informative, _, y = informative_and_noise(n=60, d=80)  # fewer samples than features
    score = logme(informative, y)
    relabeled = np.array([7, 3, 5])[y]  # a permutation (and renaming) of the classes
    assert logme(informative, relabeled) == pytest.approx(score, abs=1e-9)
    rotation = np.linalg.qr(np.random.RandomState(2).randn(80, 80))[0]
    assert logme(informative @ rotation, y) == pytest.approx(score, abs=1e-9)
    assert logme(1e-6 * informative, y) == pytest.approx(score, abs=1e-9)
    # rank-deficient copies: zero or duplicated columns change nothing
    assert logme(np.c_[informative, np.zeros((60, 50))], y) == pytest.approx(score, abs=1e-9)
    assert logme(np.c_[informative, informative], y) == pytest.approx(score, abs=1e-9)
    # classification is the regression of the one-hot columns
    assert logme(informative, one_hot(y), task="regression") == pytest.approx(score, abs=1e-12)


def test_logme_regression_targets_are_not_scale_invariant():
    rng = np.random.RandomState(0)
    F = rng.randn(50, 4)
    Y = np.c_[F[:, 0], F[:, 1] - F[:, 2]] + 0.3 * rng.randn(50, 2)
    # p(c y) = p(y) / |c|^n, so the score per sample drops by log|c|
    assert logme(F, 10 * Y) == pytest.approx(logme(F, Y) - np.log(10), abs=1e-9)
    assert logme(F, Y) == pytest.approx((logme(F, Y[:, 0]) + logme(F, Y[:, 1])) / 2)


def test_logme_task_auto_and_explicit():
    informative, _, y = informative_and_noise(n=60)
    integer_valued = y * 10  # multiclass to type_of_target
    assert logme(informative, integer_valued) == pytest.approx(logme(informative, y))
    assert logme(informative, integer_valued, task="regression") != pytest.approx(
        logme(informative, y))
    indicator = one_hot(y)[:, :2]  # multilabel-indicator: its columns are the targets
    assert logme(informative, indicator) == pytest.approx(
        logme(informative, indicator, task="regression"))


# -- H-score ---------------------------------------------------------------------


def dense_shrinkage_h_score(F, y):
    from sklearn.covariance import ledoit_wolf

    centered = F - F.mean(axis=0)
    inverse = np.linalg.pinv(ledoit_wolf(centered, assume_centered=True)[0], hermitian=True)
    return sum(np.mean(y == k) * centered[y == k].mean(0) @ inverse @ centered[y == k].mean(0)
               for k in np.unique(y))


@pytest.mark.parametrize("n, d", [(200, 6), (300, 60)])
def test_h_score_scores_informative_features_higher(n, d):
    informative, noise, y = informative_and_noise(n=n, d=d)
    assert h_score(informative, y) > h_score(noise, y) + 0.5
    assert h_score(informative, y) == pytest.approx(dense_shrinkage_h_score(informative, y))


def test_h_score_with_fewer_samples_than_features():
    # Shrinkage keeps the score finite and equal to its dense definition, but
    # noise features get about n_classes * n_features / n_samples (documented).
    _informative, noise, y = informative_and_noise(n=40, d=100)
    assert h_score(noise, y) == pytest.approx(dense_shrinkage_h_score(noise, y))
    assert 0.5 * 3 * 100 / 40 < h_score(noise, y) < 1.5 * 3 * 100 / 40


def test_h_score_bounds_and_invariances():
    informative, noise, y = informative_and_noise(n=2000, d=4)
    score = h_score(informative, y)
    assert 0 <= h_score(noise, y) < 0.05 < score <= 2  # n_classes - 1 for large n
    assert h_score(1e3 * informative, y) == pytest.approx(score)
    assert h_score(informative, np.array(["b", "c", "a"])[y]) == pytest.approx(score)
    constant = np.c_[informative, np.ones(len(y))]  # a constant column adds nothing
    assert h_score(constant, y) == pytest.approx(score, rel=1e-3)


# -- LEEP and NCE ------------------------------------------------------------------


def test_leep_and_nce_of_a_source_that_determines_the_target():
    rng = np.random.RandomState(0)
    source = rng.randint(0, 6, size=300)
    y = source % 3  # each source class belongs to one target class
    assert leep(one_hot(source), y) == pytest.approx(0.0, abs=1e-12)
    assert nce(source, y) == pytest.approx(0.0, abs=1e-12)
    unrelated = rng.randint(0, 6, size=300)
    assert leep(one_hot(unrelated), y) < -0.5
    assert nce(unrelated, y) < -0.5


def test_leep_is_at_most_zero_and_prefers_informative_probabilities():
    rng = np.random.RandomState(0)
    y = rng.randint(0, 3, size=300)
    logits = rng.randn(300, 10)
    logits[:, :3] += 3 * one_hot(y, 3)
    informative = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    random = rng.dirichlet(np.ones(10), size=300)
    assert leep(random, y) < leep(informative, y) <= 0
    # uniform probabilities say nothing: P(y | z) = P(y), LEEP = -H(Y)
    assert leep(np.full((300, 10), 0.1), y) == pytest.approx(-entropy(y))


def test_leep_of_hard_predictions_is_nce():
    rng = np.random.RandomState(1)
    source, y = rng.randint(0, 5, size=200), rng.randint(0, 3, size=200)
    assert leep(one_hot(source), y) == pytest.approx(nce(source, y))


def test_nce_of_independent_labels_is_minus_the_target_entropy():
    # every (source, target) pair equally often: exactly independent
    source, y = np.repeat(np.arange(4), 3), np.tile([0, 1, 2], 4)
    assert nce(source, y) == pytest.approx(-np.log(3))
    rng = np.random.RandomState(0)
    source, y = rng.randint(0, 3, size=5000), rng.randint(0, 4, size=5000)
    assert -entropy(y) <= nce(source, y) == pytest.approx(-entropy(y), abs=0.01)


def test_nce_takes_probabilities_as_their_argmax():
    rng = np.random.RandomState(0)
    probs, y = rng.dirichlet(np.ones(5), size=100), rng.randint(0, 2, size=100)
    assert nce(probs, y) == nce(probs.argmax(1), y)
    assert nce(np.array(["cat", "dog"])[probs.argmax(1) % 2], y) == nce(probs.argmax(1) % 2, y)


# -- input validation ---------------------------------------------------------------

F_OK, Y_OK = np.random.RandomState(0).randn(10, 3), np.arange(10) % 2
P_OK = np.full((10, 4), 0.25)


@pytest.mark.parametrize("call, match", [
    (lambda: logme(F_OK[:, 0], Y_OK), "Expected 2D array"),
    (lambda: logme(np.where(F_OK > 1, np.nan, F_OK), Y_OK), "features contains NaN"),
    (lambda: logme(F_OK[:1], Y_OK[:1]), "minimum of 2 is required"),
    (lambda: logme(F_OK, Y_OK[:9]), r"inconsistent numbers of samples: \[10, 9\]"),
    (lambda: logme(F_OK, Y_OK, task="ranking"), "task must be one of"),
    (lambda: logme(F_OK, np.c_[Y_OK, Y_OK * 2]), "cannot tell the task"),
    (lambda: logme(F_OK, np.r_[Y_OK[:9], np.inf], task="regression"), "y contains infinity"),
    (lambda: logme(F_OK, np.zeros(10, int)), "single class"),
    (lambda: logme(F_OK, np.c_[F_OK[:, 0], np.zeros(10)]), "column 1 is all zeros"),
    (lambda: h_score(F_OK, np.linspace(0, 1, 10)), "needs class labels"),
    (lambda: h_score(F_OK, Y_OK[:, None] * [1, 1]), r"y should be a 1d array.*shape \(10, 2\)"),
    (lambda: leep(P_OK * 2, Y_OK), "must sum to 1.*softmax"),
    (lambda: leep(P_OK - 0.5, Y_OK), "negative entries"),
    (lambda: leep(P_OK[:5], Y_OK), r"inconsistent numbers of samples: \[5, 10\]"),
    (lambda: nce(np.r_[np.nan, np.ones(9)], Y_OK), "source_labels contains NaN"),
    (lambda: nce(np.ones(10), np.linspace(0, 1, 10)), "needs class labels"),
])
def test_score_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# -- the ranking table (no network) --------------------------------------------------


def test_ranking_sorts_best_first_with_nan_last():
    rows = [{"name": name, "logme": value, "leep": 0.0, "n_features": 4, "seconds": 0.1,
             "notes": note}
            for name, value, note in [("a", -1.0, ""), ("b", np.nan, "logme: why"),
                                      ("c", 2.0, ""), ("d", -1.0, "")]]
    ranking = BackboneRanking(rows, ("logme", "leep"))
    assert [row["name"] for row in ranking.rows] == ["c", "a", "d", "b"]
    assert ranking.best == "c"
    lines = str(ranking).splitlines()
    assert lines[0].split() == ["name", "logme", "leep", "n_features", "seconds", "notes"]
    assert lines[1].split() == ["c", "2.0000", "0.0000", "4", "0.10"]
    assert lines[4].split() == ["b", "nan", "0.0000", "4", "0.10", "logme:", "why"]
    assert repr(ranking) == str(ranking)


# -- ranking real backbones -------------------------------------------------------------


class SmallNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        return self.pool(torch.relu(self.conv(x))).flatten(1)


IMAGENET, RANDOM, STAGE2 = ("mobilenet_v2 (IMAGENET1K_V1)", "mobilenet_v2 (random init)",
                            "mobilenet_v2 (IMAGENET1K_V1) stage=2")


@pytest.fixture(scope="module")
def classifier(digits_small):
    """A classifier fitted on other digits than those ranked."""
    _, _, X_source, y_source = digits_small
    return PretrainedClassifier(**fast_params()).fit(X_source[:100], y_source[:100])


@pytest.fixture(scope="module")
def ranking(digits_small, classifier):
    X, y = digits_small[:2]
    torch.manual_seed(0)
    candidates = [("mobilenet_v2", "IMAGENET1K_V1"), ("mobilenet_v2", None),
                  TransferFeatures("mobilenet_v2", weights="IMAGENET1K_V1", stage=2),
                  SmallNet(), classifier]
    return rank_backbones(candidates, X, y, image_size=32, device="cpu")


def by_name(ranking):
    return {row["name"]: row for row in ranking.rows}


@pytest.mark.slow
def test_rank_backbones_scores_every_candidate(ranking):
    rows = by_name(ranking)
    assert set(rows) == {IMAGENET, RANDOM, STAGE2, "SmallNet", "fitted PretrainedClassifier"}
    assert {name: row["n_features"] for name, row in rows.items()} == {
        IMAGENET: 1280, RANDOM: 1280, STAGE2: 24, "SmallNet": 8,
        "fitted PretrainedClassifier": 1280}
    for row in ranking.rows:
        assert np.isfinite(row["logme"]) and np.isfinite(row["h_score"]) and row["seconds"] >= 0


@pytest.mark.slow
def test_rank_backbones_label_metrics_need_a_source_head(ranking):
    rows = by_name(ranking)
    for name in (IMAGENET, RANDOM, STAGE2, "fitted PretrainedClassifier"):
        assert rows[name]["leep"] <= 0 and rows[name]["nce"] <= 0, name
        assert rows[name]["notes"] == ""
    # the stage-2 cut does not change the source's own predictions
    assert rows[STAGE2]["leep"] == pytest.approx(rows[IMAGENET]["leep"], rel=1e-6)
    # a source trained on these very classes predicts them best
    assert rows["fitted PretrainedClassifier"]["leep"] > rows[IMAGENET]["leep"]
    assert rows["fitted PretrainedClassifier"]["nce"] > rows[IMAGENET]["nce"]
    assert math.isnan(rows["SmallNet"]["leep"]) and math.isnan(rows["SmallNet"]["nce"])
    assert rows["SmallNet"]["notes"] == (
        "leep, nce: SmallNet is not a torchvision classification model, so it has no known head")


@pytest.mark.slow
def test_rank_backbones_orders_by_logme(ranking):
    values = [row["logme"] for row in ranking.rows]
    assert values == sorted(values, reverse=True)
    assert ranking.best == ranking.rows[0]["name"]
    rows = by_name(ranking)
    # ImageNet features transfer to digits better than a random network's (true
    # for every seed tried at 120 digits; at 60 some random draws come close)
    assert rows[IMAGENET]["logme"] > rows[RANDOM]["logme"] + 0.03


@pytest.mark.slow
def test_ranking_table_and_frame(ranking):
    text = str(ranking)
    lines = text.splitlines()
    assert len(lines) == 1 + len(ranking.rows)
    assert lines[0].split() == ranking.columns
    for line, row in zip(lines[1:], ranking.rows):
        assert line.startswith(row["name"])
    # numeric columns are right-aligned: every line ends its n_features cell at the same place
    end = lines[0].index("n_features") + len("n_features")
    assert all(line[:end].rstrip() == line[:end] for line in lines)
    frame = ranking.to_frame()
    assert list(frame.columns) == ["name", "logme", "h_score", "leep", "nce", "n_features",
                                   "seconds", "notes"]
    assert frame["name"].tolist() == [row["name"] for row in ranking.rows]


@pytest.mark.slow
def test_rank_backbones_repeats_with_a_random_state(mnist):
    from sktransfer import rank_backbones

    X, y = mnist
    candidates = {"random init": ("mobilenet_v2", None)}
    first, second, third = (rank_backbones(candidates, X[:40], y[:40], metrics=("logme",),
                                           image_size=32, device="cpu", cache=False,
                                           random_state=state) for state in (0, 0, 1))
    assert first.rows[0]["logme"] == second.rows[0]["logme"]
    assert first.rows[0]["logme"] != third.rows[0]["logme"]


def test_rank_backbones_with_names_metrics_and_regression_targets(digits_small):
    X, y = digits_small[0][:30], digits_small[1][:30]
    target = y + np.random.RandomState(0).rand(30)  # continuous
    ranking = rank_backbones({"imagenet": ("mobilenet_v2", "IMAGENET1K_V1")}, X, target,
                             metrics=("logme", "nce"), image_size=32, device="cpu")
    (row,) = ranking.rows
    assert row["name"] == "imagenet" and set(row) == {"name", "logme", "nce", "n_features",
                                                      "seconds", "notes"}
    assert np.isfinite(row["logme"]) and math.isnan(row["nce"])
    assert row["notes"] == "nce: y is 'continuous', not class labels"


def test_source_head_is_the_network_head_after_the_trunk(digits_small):
    from torchvision.models import mobilenet_v2

    from sktransfer._images import check_images
    from sktransfer._nn.data import ImageDataset
    from sktransfer._nn.source_head import source_head
    from sktransfer._nn.weights import (
        fetch_torchvision_file,
        load_into,
        read_state_dict,
        torchvision_weights,
    )

    X = digits_small[0][:8]
    features = TransferFeatures(ImageBackbone("mobilenet_v2", image_size=32), weights="IMAGENET1K_V1",
                                cache=False, device="cpu").fit(X)
    head, reason = source_head("mobilenet_v2", "IMAGENET1K_V1")
    assert reason is None and head.weight.shape == (1000, 1280)
    model = mobilenet_v2()
    path = fetch_torchvision_file("mobilenet_v2",
                                  torchvision_weights("mobilenet_v2", "IMAGENET1K_V1"))
    load_into(model, read_state_dict(path), "test")
    dataset = ImageDataset(check_images(X), features.preprocessing_, features.image_size_)
    with torch.no_grad():
        logits = model.eval()(torch.stack([dataset[i][0] for i in range(len(X))]))
    expected = torch.softmax(logits.double(), dim=1).numpy()
    np.testing.assert_allclose(head.probabilities(features.transform(X)), expected,
                               rtol=1e-4, atol=1e-7)
    # a torchvision module brings its own head; None re-initialises it with the trunk
    module_head, _ = source_head(model, "DEFAULT")
    np.testing.assert_array_equal(module_head.weight, head.weight)
    assert not np.allclose(source_head(model, None)[0].weight, head.weight)


@pytest.mark.parametrize("backbone, weights, why", [
    ("mobilenet_v2", "/no/such/file.pth", "whose source head sktransfer does not read"),
    (SmallNet(), "DEFAULT", "SmallNet is not a torchvision classification model"),
    (nn.Sequential(), "DEFAULT", "Sequential is not a torchvision classification model"),
])
def test_source_head_unknown(backbone, weights, why):
    from sktransfer._nn.source_head import source_head

    head, reason = source_head(backbone, weights)
    assert head is None and why in reason


# -- the source model's probabilities: TransferFeatures.source_proba -----------------------


def test_source_proba_of_a_fitted_classifier_is_its_predict_proba(classifier, digits_small):
    X = digits_small[0][:8]
    features = TransferFeatures(classifier, device="cpu").fit(X)
    np.testing.assert_array_equal(features.source_proba(X), classifier.predict_proba(X))


def test_source_proba_of_imagenet_weights(digits_small):
    X = digits_small[0][:8]
    params = dict(backbone=ImageBackbone("mobilenet_v2", image_size=32),
                  weights="IMAGENET1K_V1", device="cpu")
    features = TransferFeatures(**params).fit(X)
    proba = features.source_proba(X)
    assert proba.shape == (8, 1000)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # given transform's output, the source head takes it instead of embedding X again
    np.testing.assert_array_equal(features.source_proba(X, features=features.transform(X)),
                                  proba)
    # a cut does not change the source's predictions: they follow the whole backbone
    cut = TransferFeatures(stage=2, cache=False, **params).fit(X)
    # (float32: the cached features may come from batches of another size)
    np.testing.assert_allclose(cut.source_proba(X, features=cut.transform(X)), proba,
                               rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_source_proba_errors(classifier, digits_small):
    X, y = digits_small[0][:8], digits_small[1][:8]
    with pytest.raises(NotFittedError):
        TransferFeatures("mobilenet_v2", device="cpu").source_proba(X)
    features = TransferFeatures(ImageBackbone("mobilenet_v2", image_size=32), weights="IMAGENET1K_V1",
                                device="cpu").fit(X)
    with pytest.raises(ValueError, match=r"features has shape \(3, 1280\) but transform\(X\) "
                                         r"gives \(8, 1280\)"):
        features.source_proba(X, features=np.zeros((3, 1280)))

    regressor = TransferRegressor(**fast_params(max_epochs=1)).fit(X, y.astype(float))
    with pytest.raises(SourceLabelsUnavailableError,
                       match="unknown because the source TransferRegressor predicts no class "
                             "labels") as error:
        TransferFeatures(regressor, device="cpu").fit(X).source_proba(X)
    assert error.value.reason == "the source TransferRegressor predicts no class labels"
    with pytest.raises(SourceLabelsUnavailableError,
                       match="weights=None replace the fitted PretrainedClassifier's parameters"):
        TransferFeatures(classifier, weights=None, device="cpu").fit(X).source_proba(X)
    with pytest.raises(SourceLabelsUnavailableError,
                       match="SmallNet is not a torchvision classification model"):
        TransferFeatures(ImageBackbone(SmallNet(), image_size=32), device="cpu").fit(X).source_proba(X)


def test_source_labels_unavailable_error_pickles():
    import pickle

    error = pickle.loads(pickle.dumps(SourceLabelsUnavailableError("a reason")))
    assert error.reason == "a reason"
    assert str(error) == "the source model's class probabilities are unknown because a reason."


@pytest.mark.parametrize("kwargs, error, match", [
    ({"metrics": ("logme", "accuracy")}, ValueError, "unknown metric.*'accuracy'.*'h_score'"),
    ({"metrics": ()}, ValueError, "unknown metric"),
    ({"candidates": []}, ValueError, "candidates is empty"),
    ({"candidates": "mobilenet_v2"}, TypeError, "wrap a single candidate in a list"),
    ({"candidates": [("mobilenet_v2", "IMAGENET1K_V1", 3)]}, ValueError, "got 3 items"),
    ({"candidates": [3.5]}, TypeError, "a candidate must be.*got float"),
    ({"y": np.arange(5)}, ValueError, "inconsistent numbers of samples"),
])
def test_rank_backbones_errors(kwargs, error, match):
    X = np.zeros((6, 32, 32), dtype=np.uint8)
    args = {"candidates": [("mobilenet_v2", "IMAGENET1K_V1")], "X": X, "y": np.arange(6) % 2}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        rank_backbones(args.pop("candidates"), args.pop("X"), args.pop("y"), device="cpu",
                       **args)



def test_rank_backbones_names_the_candidate_whose_input_check_fails():
    with pytest.raises(ValueError, match=r"^candidate 'photos': image files not found"):
        rank_backbones({"minilm": "all-MiniLM-L6-v2", "photos": "mobilenet_v2"},
                       TEXTS, LABELS, device="cpu")


def test_rank_backbones_names_the_failing_candidate_and_keeps_the_error_type(tmp_path):
    X = np.zeros((6, 32, 32), dtype=np.uint8)
    missing = tmp_path / "missing.pth"
    with pytest.raises(WeightsNotFoundError,
                       match=r"^candidate 'from file': weights file .* does not exist"):
        rank_backbones({"random": ("mobilenet_v2", None), "from file": ("mobilenet_v2", missing)},
                       X, np.arange(6) % 2, metrics=("logme",), device="cpu")

# -- the scorer ---------------------------------------------------------------------------


def test_scorer_in_grid_search(digits_small):
    X, y = digits_small[0][:60], digits_small[1][:60]
    search = GridSearchCV(
        TransferFeatures(ImageBackbone("mobilenet_v2", image_size=32), weights="IMAGENET1K_V1", device="cpu"),
        {"stage": [2, None]}, scoring=make_transferability_scorer("logme"), cv=2,
        error_score="raise",
    ).fit(X, y)
    assert search.best_params_["stage"] in (2, None)
    scores = search.cv_results_["mean_test_score"]
    assert np.isfinite(scores).all() and search.best_score_ == scores.max()


def test_scorer_on_pipelines_and_its_errors():
    informative, _noise, y = informative_and_noise()
    scorer = make_transferability_scorer("h_score")
    pipe = make_pipeline(StandardScaler(), PCA(n_components=3))
    assert scorer(pipe.fit(informative), informative, y) == pytest.approx(
        h_score(pipe.transform(informative), y))
    assert repr(scorer) == "make_transferability_scorer(metric='h_score')"
    with pytest.raises(TypeError, match="needs an estimator with transform.*LogisticRegression"):
        scorer(LogisticRegression().fit(informative, y), informative, y)
    for metric in ("leep", "nce"):
        with pytest.raises(ValueError, match="source model's own label predictions"):
            make_transferability_scorer(metric)
    with pytest.raises(ValueError, match="unknown metric 'r2'.*'logme', 'h_score'"):
        make_transferability_scorer("r2")
