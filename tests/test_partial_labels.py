"""Partial labels: -1 / NaN mark unlabeled samples, which are
ignored, pseudo-labeled (pseudo-labeling, FixMatch) or used as the target
domain of an alignment (CORAL, MMD, DANN); scoring leaves them out."""

import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score

from sktransfer import Coral, FixMatch, MLP, PretrainedClassifier, PseudoLabel, TransferRegressor
from sktransfer._nn import partial

# the short fixed budgets here are on purpose
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def digits():
    """sklearn's digits (8x8, 64 features) with 80 % of the labels hidden."""
    X, y = load_digits(return_X_y=True)
    X = X[:600] / 16.0
    y = y[:600]
    hidden = np.random.RandomState(0).rand(len(y)) < 0.8
    y_partial = np.where(hidden, -1, y)
    return X, y, y_partial, hidden


def mlp(**overrides):
    params = dict(backbone=MLP(hidden_layer_sizes=(32,)), device="cpu", random_state=0,
                  max_epochs=15, lr=1e-2)
    params.update(overrides)
    return PretrainedClassifier(**params)


def tiny(tiny_backbone, **overrides):
    name, weights = tiny_backbone
    params = dict(backbone=name, weights=weights, batch_size=8, device="cpu",
                  random_state=0, max_epochs=2)
    params.update(overrides)
    return PretrainedClassifier(**params)


# -- the -1 convention ---------------------------------------------------------------------


def test_minus_one_is_a_class_by_default(digits):
    X, y, _, _ = digits
    binary = np.where(y < 5, -1, 1)
    clf = mlp(max_epochs=3).fit(X, binary)
    assert clf.classes_.tolist() == [-1, 1]
    assert set(np.unique(clf.predict(X))) <= {-1, 1}


def test_minus_one_beside_class_numbers_warns_by_default(digits):
    X, _, y_partial, _ = digits
    with pytest.warns(UserWarning, match="unlabeled='ignore'"):
        clf = mlp(max_epochs=2).fit(X, y_partial)
    assert -1 in clf.classes_


def test_float_minus_one_beside_class_numbers_warns_by_default(digits):
    X, _, y_partial, _ = digits
    with pytest.warns(UserWarning, match="unlabeled='ignore'"):
        clf = mlp(max_epochs=2).fit(X, y_partial.astype(float))
    assert -1.0 in clf.classes_


@pytest.mark.parametrize("mark", ["-1", ""])
def test_a_string_mark_is_a_class_and_warns(digits, mark):
    X, y, _, hidden = digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven",
                      "eight", "nine"])[y]
    y_marked = np.where(hidden, mark, names)
    with pytest.warns(UserWarning, match="only the number -1 marks unlabeled"):
        clf = mlp(max_epochs=2, unlabeled="ignore").fit(X, y_marked)
    assert mark in clf.classes_


def test_nan_labels_point_to_minus_one(digits):
    X, y, _, hidden = digits
    y_nan = np.where(hidden, np.nan, y)
    with pytest.raises(ValueError, match="contains NaN.*-1 marks.*unlabeled="):
        mlp(max_epochs=2).fit(X, y_nan)


def test_ignore_equals_fitting_on_the_labeled_samples(digits):
    X, _, y_partial, hidden = digits
    ignored = mlp(unlabeled="ignore").fit(X, y_partial)
    labeled_only = mlp().fit(X[~hidden], y_partial[~hidden])
    assert ignored.classes_.tolist() == list(range(10))
    np.testing.assert_allclose(ignored.predict_proba(X), labeled_only.predict_proba(X),
                               atol=1e-6)


def test_exact_probe_ignores_unlabeled_samples(tiny_backbone, mnist):
    X, y = mnist
    keep = y < 3
    X, y = np.pad(X[keep][:60], ((0, 0), (2, 2), (2, 2))), y[keep][:60].copy()
    y_partial = y.copy()
    y_partial[::3] = -1
    probed = tiny(tiny_backbone, freeze_depth="all", unlabeled="ignore").fit(X, y_partial)
    alone = tiny(tiny_backbone, freeze_depth="all").fit(X[y_partial != -1],
                                                       y_partial[y_partial != -1])
    assert probed.n_iter_ == 0  # solved, not trained
    np.testing.assert_allclose(probed.predict_proba(X), alone.predict_proba(X), atol=1e-5)


def test_score_leaves_unlabeled_samples_out(digits):
    X, y, y_partial, hidden = digits
    clf = mlp(unlabeled="ignore").fit(X, y_partial)
    assert clf.score(X, y_partial) == pytest.approx(clf.score(X[~hidden], y[~hidden]))
    with pytest.raises(ValueError, match="score needs labeled samples"):
        clf.score(X[hidden], y_partial[hidden])


def test_labeled_samples_need_some_weight(digits):
    X, _, y_partial, hidden = digits
    weights = np.where(hidden, 1.0, 0.0)  # weight only on the unlabeled samples
    with pytest.raises(ValueError, match="sums to zero over the labeled samples"):
        mlp(unlabeled="pseudo_label").fit(X, y_partial, sample_weight=weights)


def test_fit_needs_labeled_samples(digits):
    X, _, _, _ = digits
    clf = mlp(unlabeled="pseudo_label")
    with pytest.raises(ValueError, match="needs labeled samples"):
        clf.fit(X[:50], np.full(50, -1))
    assert not hasattr(clf, "net_")  # a failed fit leaves nothing behind


def test_cross_validation_and_grid_search_score_the_labeled_part(digits):
    X, _, y_partial, _ = digits
    cv = KFold(3, shuffle=True, random_state=0)
    scores = cross_val_score(mlp(unlabeled="ignore", max_epochs=5), X, y_partial, cv=cv)
    assert np.isfinite(scores).all() and scores.min() > 0.3
    search = GridSearchCV(mlp(max_epochs=5), {"unlabeled": ["ignore", "pseudo_label"]},
                          cv=cv, error_score="raise").fit(X, y_partial)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


# -- batches of labeled and unlabeled samples ------------------------------------------------


def test_partial_batches_pair_labeled_with_unlabeled_samples():
    torch.manual_seed(0)
    labeled, unlabeled = np.arange(10), np.arange(10, 15)
    batches = list(partial.PartialBatches(labeled, unlabeled, batch_size=4, ratio=2))
    assert len(batches) == 3
    seen = []
    for batch in batches:
        n = sum(i < 10 for i in batch)
        assert batch[:n] == [i for i in batch if i < 10]  # labeled first
        assert len(batch) - n == 2 * n
        seen += batch[:n]
    assert sorted(seen) == list(range(10))  # one epoch = one pass over the labeled
    drawn = [i for b in batches for i in b if i >= 10]
    # unlabeled samples are drawn in shuffled passes: each of 5 appears 4 times in 20
    assert np.bincount(drawn)[10:].tolist() == [4] * 5


def test_pseudo_label_loss_keeps_only_confident_predictions():
    logits = torch.tensor([[4.0, 0.0], [0.1, 0.0]])  # p = 0.98 and 0.52
    loss = partial.pseudo_label_loss(logits, logits, threshold=0.95)
    expected = torch.nn.functional.cross_entropy(logits[:1], torch.tensor([0])) / 2
    assert loss.item() == pytest.approx(expected.item())
    assert partial.pseudo_label_loss(logits, logits, threshold=0.99).item() == 0.0


def test_alignment_losses_measure_the_shift():
    torch.manual_seed(0)
    source = torch.randn(200, 5)
    same = torch.randn(200, 5)
    shifted = torch.randn(200, 5) * 3 + 2
    for loss in (partial.coral_loss, partial.mmd_loss):
        assert loss(source, shifted) > 10 * loss(source, same)
    assert partial.coral_loss(source, source).item() == pytest.approx(0.0, abs=1e-7)


def test_gradient_reversal_flips_and_scales_the_gradient():
    x = torch.ones(3, requires_grad=True)
    partial.reverse_gradient(x, 0.5).sum().backward()
    assert x.grad.tolist() == [-0.5, -0.5, -0.5]


def test_ramp_goes_from_zero_to_one():
    assert partial.ramp(0.0) == 0.0
    assert 0.7 < partial.ramp(0.2) < 0.8
    assert partial.ramp(1.0) > 0.99


# -- training with unlabeled samples --------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("method, adaptation", [
    (method, adaptation) for method in ("pseudo_label", None)
    for adaptation in ("coral", "mmd", "dann", None) if method or adaptation])
def test_unlabeled_samples_train_and_are_logged(digits, method, adaptation):
    X, y, y_partial, hidden = digits
    clf = mlp(unlabeled=method, domain_adaptation=adaptation).fit(X, y_partial)
    record = clf.history_[-1]
    assert ("unlabeled_loss" in record) == (method is not None)
    assert ("adaptation_loss" in record) == (adaptation is not None)
    # the whole budget runs (the training loss is no convergence signal here)
    assert clf.n_iter_ == 15
    # DANN's domain classifier trains with the head and is dropped when the
    # fit ends: the fitted net holds and optimises the network only
    assert not hasattr(clf.net_, "alignment_module_")
    assert not hasattr(clf.net_.module_, "domain_classifier")
    trained = {id(p) for p in clf.net_.module_.parameters()}
    optimised = {id(p) for group in clf.net_.optimizer_.param_groups for p in group["params"]}
    assert optimised <= trained
    assert clf.score(X[hidden], y[hidden]) > 0.6
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict(X[:20]), clf.predict(X[:20]))


def test_pseudo_labels_change_the_fit_only_when_confident(digits):
    X, _, y_partial, _ = digits
    never = mlp(unlabeled=PseudoLabel(threshold=1.0)).fit(X, y_partial)
    confident = mlp(unlabeled=PseudoLabel(threshold=0.5)).fit(X, y_partial)
    assert max(r["unlabeled_loss"] for r in never.history_) == 0.0
    assert max(r["unlabeled_loss"] for r in confident.history_) > 0.0


def _coral_distance(clf, X_source, X_target):
    from sktransfer._nn.partial import coral_loss

    trunk = clf.net_.module_.trunk.eval()
    with torch.no_grad():
        source = trunk(torch.as_tensor(X_source))
        target = trunk(torch.as_tensor(X_target))
    return coral_loss(source, target).item()


@pytest.mark.slow
def test_domain_adaptation_aligns_the_domains_features(digits):
    X, y, _, _ = digits
    # the target domain: the same digits with inverted, brightened pixels
    X_target = np.clip(1.0 - X + 0.3, 0, 1)
    X_both = np.vstack([X[:300], X_target[300:]])
    y_both = np.concatenate([y[:300], np.full(300, -1)])
    plain = mlp(unlabeled="ignore").fit(X_both, y_both)
    coral = mlp(domain_adaptation=Coral(strength=50.0)).fit(X_both, y_both)
    assert (_coral_distance(coral, X[:300], X_target[300:])
            < 0.5 * _coral_distance(plain, X[:300], X_target[300:]))


def test_early_stopping_validates_on_labeled_samples(digits):
    X, _, y_partial, _ = digits
    clf = mlp(unlabeled="pseudo_label", early_stopping=True, max_epochs=40,
              n_iter_no_change=3).fit(X, y_partial)
    assert clf.n_iter_ < 40 and "valid_score" in clf.history_[-1]


def test_fixmatch_trains_on_two_views_of_images(tiny_backbone, mnist):
    X, y = mnist
    keep = y < 3
    X, y = np.pad(X[keep][:48], ((0, 0), (2, 2), (2, 2))), y[keep][:48].copy()
    y[12:] = -1
    clf = tiny(tiny_backbone, unlabeled=FixMatch(threshold=0.01, ratio=2)).fit(X, y)
    assert clf.history_[-1]["unlabeled_loss"] > 0  # every prediction is confident enough
    assert clf.cache_info_["used"] is False  # augmented views are never cached
    assert clf.predict(X).shape == (48,)


def test_strong_view_differs_from_the_weak_one():
    from sktransfer._nn.data import strong_augmentation

    torch.manual_seed(0)
    image = torch.rand(3, 32, 32)
    assert strong_augmentation(32)(image).shape == (3, 32, 32)
    assert not torch.allclose(strong_augmentation(32)(image), image)


# -- regression: NaN marks a missing target -----------------------------------------------------


def test_regressor_uses_nan_rows_as_unlabeled_and_scores_the_rest(digits):
    X, y, _, hidden = digits
    target = y.astype(float)
    target[hidden] = np.nan
    reg = TransferRegressor(MLP(hidden_layer_sizes=(32,)), device="cpu", random_state=0,
                            max_epochs=15, lr=1e-2, domain_adaptation="mmd").fit(X, target)
    assert "adaptation_loss" in reg.history_[-1]
    assert reg.score(X, target) == pytest.approx(reg.score(X[~hidden], target[~hidden]))


def test_regressor_multi_target_with_missing_entries(digits):
    X, y, _, _ = digits
    rng = np.random.RandomState(1)
    Y = np.c_[y, y % 2].astype(float)
    Y[rng.rand(len(y)) < 0.3, 0] = np.nan
    Y[rng.rand(len(y)) < 0.3, 1] = np.nan
    # some rows miss both targets: unlabeled samples, left out
    reg = TransferRegressor(MLP(hidden_layer_sizes=(32,)), device="cpu", random_state=0,
                            max_epochs=20, lr=1e-2, unlabeled="ignore").fit(X, Y)
    assert np.isfinite(reg._y_mean).all()
    assert reg.score(X, Y) > 0.5
    full = np.c_[y, y % 2].astype(float)
    assert reg.score(X, Y) == pytest.approx(reg.score(X, full), abs=0.1)


# -- bad input ---------------------------------------------------------------------------------


def test_bad_partial_label_settings_are_refused(digits, tiny_backbone):
    X, _, y_partial, _ = digits
    with pytest.raises(ValueError, match=r"FixMatch\(\) needs images"):
        mlp(unlabeled="fixmatch").fit(X, y_partial)
    with pytest.raises(ValueError, match="regressor does not have"):
        TransferRegressor("mlp", unlabeled="pseudo_label").fit(X, np.ones(len(X)))
    with pytest.raises(ValueError, match="freezes every stage"):
        mlp(domain_adaptation="coral", freeze_depth="all").fit(X, y_partial)
    Y = np.c_[np.ones(len(X)), np.full(len(X), np.nan)]
    with pytest.raises(ValueError, match=r"column\(s\) \[1\]"):
        TransferRegressor("mlp").fit(X, Y)
    with pytest.raises(ValueError, match="infinity|inf"):
        TransferRegressor("mlp").fit(X, np.full(len(X), np.inf))
    with pytest.raises(Exception, match="unlabeled"):
        mlp(unlabeled="self_training").fit(X, y_partial)
    with pytest.raises(ValueError, match="dim"):
        mlp().fit(X, np.zeros((len(X), 2, 2), dtype=int))
    with pytest.warns(UserWarning, match="NaN, not -1"):
        TransferRegressor("mlp", domain_adaptation="coral", max_epochs=1).fit(
            X, np.where(y_partial == -1, -1.0, 1.0))


def test_without_unlabeled_samples_nothing_changes(digits):
    X, y, _, _ = digits
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)  # the short budget is on purpose
        plain = mlp(max_epochs=5).fit(X[:200], y[:200])
        semi = mlp(max_epochs=5, unlabeled="pseudo_label").fit(X[:200], y[:200])
    with pytest.warns(UserWarning, match="no unlabeled samples"):
        adapted = mlp(max_epochs=5, unlabeled="pseudo_label",
                      domain_adaptation="coral").fit(X[:200], y[:200])
    for other in (semi, adapted):
        np.testing.assert_allclose(plain.predict_proba(X[:50]), other.predict_proba(X[:50]),
                                   atol=1e-6)


def test_domain_adaptation_without_unlabeled_samples_warns(digits):
    X, y, _, _ = digits
    message = (r"domain_adaptation='coral' is set but y has no unlabeled samples "
               r"\({}\); the fit is supervised only")
    with pytest.warns(UserWarning, match=message.format("label -1")):
        mlp(max_epochs=2, domain_adaptation="coral").fit(X[:200], y[:200])
    with pytest.warns(UserWarning, match=message.format("all targets NaN")):
        TransferRegressor(MLP(hidden_layer_sizes=(16,)), max_epochs=2, device="cpu",
                          domain_adaptation="coral").fit(X[:200], y[:200].astype(float))


# -- multi-task classification -------------------------------------------------------------------


@pytest.fixture(scope="module")
def tasks(digits):
    """Two tasks on the digits: the digit, and odd / even; 30 % of each
    task's labels missing (-1)."""
    X, y, _, _ = digits
    Y = np.c_[y, y % 2]
    rng = np.random.RandomState(2)
    Y_missing = Y.copy()
    Y_missing[rng.rand(len(y)) < 0.3, 0] = -1
    Y_missing[rng.rand(len(y)) < 0.3, 1] = -1
    return X, Y, Y_missing


def test_multi_task_classifier_follows_scikit_learn_multi_output(tasks):
    X, Y, Y_missing = tasks
    clf = mlp().fit(X[:400], Y_missing[:400])
    assert [c.tolist() for c in clf.classes_] == [list(range(10)), [0, 1]]
    assert clf.predict(X[400:]).shape == (200, 2)
    proba = clf.predict_proba(X[400:])
    assert [p.shape for p in proba] == [(200, 10), (200, 2)]
    np.testing.assert_allclose(proba[1].sum(axis=1), 1.0)
    per_task = [np.mean(clf.predict(X[400:])[:, t] == Y[400:, t]) for t in range(2)]
    assert clf.score(X[400:], Y[400:]) == pytest.approx(np.mean(per_task))
    assert min(per_task) > 0.7
    # -1 entries are left out of the score
    kept = Y_missing[400:, 0] != -1
    assert clf.score(X[400:], Y_missing[400:]) == pytest.approx(np.mean([
        np.mean(clf.predict(X[400:][kept])[:, 0] == Y[400:][kept, 0]),
        np.mean(clf.predict(X[400:])[Y_missing[400:, 1] != -1, 1]
                == Y[400:][Y_missing[400:, 1] != -1, 1])]))


@pytest.mark.slow
def test_multi_task_probe_is_each_tasks_own_probe(tasks):
    X, _, Y_missing = tasks
    both = mlp(freeze_depth="all").fit(X, Y_missing)
    assert both.probe_alpha_.shape == (2,)
    for task in range(2):
        rows = Y_missing[:, task] != -1
        alone = mlp(freeze_depth="all").fit(X[rows], Y_missing[rows, task])
        np.testing.assert_allclose(both.predict_proba(X[:50])[task], alone.predict_proba(X[:50]),
                                   atol=1e-5)


def test_multi_task_source_transfers_and_saves(tasks, tmp_path):
    X, Y, Y_missing = tasks
    source = mlp().fit(X[:400], Y_missing[:400])
    target = mlp(backbone=source, max_epochs=5).fit(X[400:500], Y[400:500, 0])
    assert target.predict(X[:5]).shape == (5,)
    path = source.save_weights(tmp_path / "tasks.safetensors")
    again = mlp(weights=path, freeze_depth="all").fit(X[:400], Y_missing[:400])
    assert again.score(X[400:], Y[400:]) > 0.5


def test_multi_task_bad_input(tasks):
    X, Y, _ = tasks
    no_labels = Y.copy()
    no_labels[:, 1] = -1
    with pytest.raises(ValueError, match="Task 1 .* has no label"):
        mlp().fit(X, no_labels)
    with pytest.raises(ValueError, match="needs a 1-D y"):
        mlp(unlabeled="pseudo_label").fit(X, Y)
    clf = mlp(max_epochs=2).fit(X, Y)
    with pytest.raises(ValueError, match="3 columns"):
        clf.score(X, np.c_[Y, Y[:, :1]])
    from sklearn.exceptions import DataConversionWarning
    with pytest.warns(DataConversionWarning, match="column-vector"):
        single = mlp(max_epochs=2).fit(X, Y[:, :1])
    assert single.predict(X[:3]).shape == (3,)


def test_multi_task_early_stopping_with_many_label_combinations(tasks):
    X, Y, Y_missing = tasks
    third = np.random.RandomState(3).randint(0, 3, len(Y))  # 60 label combinations
    for y in (np.c_[Y, third], np.c_[Y_missing, third]):
        clf = mlp(max_epochs=3, early_stopping=True).fit(X[:200], y[:200])
        assert "valid_score" in clf.history_[-1]


def test_multi_task_mixes_string_and_integer_tasks(tasks):
    pd = pytest.importorskip("pandas")
    X, Y, _ = tasks
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven",
                      "eight", "nine"])
    frame = pd.DataFrame({"digit": names[Y[:, 0]], "odd": Y[:, 1]})
    clf = mlp(max_epochs=5).fit(X[:400], frame[:400])
    assert sorted(clf.classes_[0].tolist()) == sorted(names.tolist())
    assert clf.classes_[1].tolist() == [0, 1]
    predicted = clf.predict(X[400:])
    assert predicted.shape == (200, 2)
    assert isinstance(predicted[0, 0], str) and predicted[:, 1].tolist() == [
        int(v) for v in predicted[:, 1]]
    assert clf.score(X[400:], frame[400:]) > 0.5
    mixed = frame.astype(object)
    mixed.iloc[::7, 1] = "odd"  # strings and numbers in one task
    with pytest.raises(ValueError, match="Task 1 .*column 1.* strings and numbers"):
        mlp(max_epochs=2).fit(X, mixed)


def test_multi_task_score_needs_one_column_per_task(tasks):
    X, Y, _ = tasks
    clf = mlp(max_epochs=2).fit(X[:200], Y[:200])
    with pytest.raises(ValueError, match=r"one column per task \(2 tasks\)"):
        clf.score(X[:50], Y[:50, 0])


def test_frozen_stages_are_cached_with_unlabeled_samples(tiny_backbone, mnist):
    X, y = mnist
    keep = y < 3
    X, y = np.pad(X[keep][:48], ((0, 0), (2, 2), (2, 2))), y[keep][:48].copy()
    y[16:] = -1
    for params in (dict(unlabeled="pseudo_label"), dict(domain_adaptation="coral")):
        cached = tiny(tiny_backbone, freeze_depth=2, **params).fit(X, y)
        plain = tiny(tiny_backbone, freeze_depth=2, cache=False, **params).fit(X, y)
        assert cached.cache_info_["used"] is True
        np.testing.assert_allclose(cached.predict_proba(X), plain.predict_proba(X), atol=1e-5)
