"""The budgeted search: validation folds, one candidate's evaluation,
successive halving over the networks trained by epochs, and the refit of
the winner, all inside one wall-clock deadline.

Every fit runs under ``sktransfer._deadline.deadline``: a network stops
after the batch during which the deadline passes. Fits of candidates stop
early enough to leave the best candidate's estimated refit time; a better
candidate whose own refit would not fit in the time left is passed over;
the refit itself ends at the budget's end as a finished fit. Work that
cannot be cut short (a feature pass, a probe, a scikit-learn baseline) is
started only when its estimated time fits in what is left.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import clone
from sklearn.model_selection import (
    KFold,
    ShuffleSplit,
    StratifiedKFold,
    StratifiedShuffleSplit,
    check_cv,
)
from threadpoolctl import threadpool_limits

from .._compat import _safe_indexing
from .._deadline import BudgetExhausted, deadline
from .._recipe import auto_epochs
from .space import BASELINE, Candidate

SMALL_DATA = 2000  # up to this many samples: k-fold; above: one held-out split
N_FOLDS, HOLDOUT = 3, 0.2
ETA, N_RUNGS = 3, 3  # successive halving: keep 1/ETA per rung, over N_RUNGS rungs
REFIT_MARGIN = 1.25  # a refit is estimated at this many times its folds' mean fit
ONE_SHOT_SHARE = 0.6  # of the budget, at most, for the candidates without epochs
# a default recipe and a network from scratch are trained to their whole epoch
# budget right after their first rung, each within this share of the time left
PROMOTE_SHARE = 0.5
# kept free for what follows a stopped fit (unwinding it, the refit's set-up)
SAFETY_SHARE, SAFETY_SECONDS = 0.03, 0.25


# -- folds --------------------------------------------------------------------------------


def make_folds(y, cv, classification: bool, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The validation splits: ``cv`` as scikit-learn takes it, or for None
    3-fold (stratified for classes that allow it) up to ``SMALL_DATA``
    samples and one stratified 20 % holdout above."""
    n = len(y)
    if cv is None:
        counts = np.unique(y, return_counts=True)[1] if classification else None
        stratify = classification and counts.min() >= 2
        if n <= SMALL_DATA:
            k = min(N_FOLDS, int(counts.min())) if stratify else N_FOLDS
            splitter = (StratifiedKFold(max(k, 2), shuffle=True, random_state=seed)
                        if stratify and k >= 2 else KFold(N_FOLDS, shuffle=True, random_state=seed))
        else:
            splitter = (StratifiedShuffleSplit(1, test_size=HOLDOUT, random_state=seed)
                        if stratify else ShuffleSplit(1, test_size=HOLDOUT, random_state=seed))
    else:
        splitter = check_cv(cv, y, classifier=classification)
    return [(np.asarray(train), np.asarray(test))
            for train, test in splitter.split(np.zeros((n, 1)), y)]


@dataclass(frozen=True)
class SearchData:
    """What every evaluation reads: the data, the folds, the scorer."""

    X: object
    y: np.ndarray
    folds: list
    scorer: object

    @property
    def n_train(self) -> int:
        """Training samples of a fold (the smallest)."""
        return min(len(train) for train, _ in self.folds)


# -- the clock ----------------------------------------------------------------------------


class Budget:
    """The wall-clock budget and the log of every decision taken under it."""

    def __init__(self, seconds: float, verbose: int = 0):
        self.seconds = float(seconds)
        self.start = time.time()
        self.end = self.start + self.seconds
        self.verbose = verbose
        self.log: list[str] = []

    def left(self) -> float:
        return self.end - time.time()

    def elapsed(self) -> float:
        return time.time() - self.start

    def note(self, message: str) -> None:
        line = f"[{self.elapsed():7.1f} s] {message}"
        self.log.append(line)
        if self.verbose:
            print(line, flush=True)


# -- one candidate ------------------------------------------------------------------------


@dataclass
class Trial:
    """A candidate evaluated on every fold at one number of epochs."""

    epochs: int | None
    scores: list = field(default_factory=list)
    fit_seconds: list = field(default_factory=list)
    epochs_run: list = field(default_factory=list)  # each fold's (None: not by epochs)
    capped: list = field(default_factory=list)  # each fold's fit ended by its time allowance
    seconds: float = 0.0
    error: str | None = None
    stopped: bool = False

    @property
    def complete(self) -> bool:
        return self.error is None and not self.stopped and bool(self.scores)

    @property
    def score(self) -> float:
        return float(np.mean(self.scores)) if self.complete else math.nan

    @property
    def score_std(self) -> float:
        return float(np.std(self.scores)) if self.complete else math.nan

    def per_epoch(self) -> float | None:
        """Seconds of one epoch on all folds together."""
        if not self.complete or not self.epochs:
            return None
        return sum(self.fit_seconds) / max(self.epochs_reached, 1)

    @property
    def epochs_reached(self) -> int | None:
        """The most epochs a fold's fit ran (``epochs`` when not known)."""
        run = [n for n in self.epochs_run if n is not None]
        return max(run) if run else self.epochs

    @property
    def refit_epochs(self) -> int | None:
        """The epochs a refit of this trial's candidate trains for: those
        the trial was given, or, when its time allowance ended a fold's fit,
        the most a fold reached."""
        return self.epochs_reached if any(self.capped) else self.epochs

    @property
    def converged(self) -> bool:
        """Every fold's fit stopped by its convergence rule, before its
        epochs: training longer would not change it."""
        return (self.complete and bool(self.epochs) and len(self.epochs_run) > 0
                and not any(self.capped)
                and all(n is not None and n < self.epochs for n in self.epochs_run))


@dataclass(frozen=True)
class _Limits:
    """How one trial's fold fits run: for ``epochs`` (None: the model's own
    fit), stopped at ``stop_at``; with an ``allowance`` (seconds per fold),
    a network's fit ends as a finished fit when it runs out;
    ``single_thread`` for scikit-learn models on small data."""

    epochs: int | None
    stop_at: float
    allowance: float | None = None
    single_thread: bool = False


def _fit_fold(estimator, data: SearchData, fold: int, limits: _Limits):
    """Fit a clone on fold ``fold``'s training part and score it on its
    test part. Returns (score, fit seconds, epochs run, whether the
    allowance ended the fit)."""
    train, test = data.folds[fold]
    model = clone(estimator)
    if limits.epochs is not None:
        model.set_params(max_epochs=int(limits.epochs))
    threads = threadpool_limits(1) if limits.single_thread else contextlib.nullcontext()
    capped = limits.allowance is not None
    end = min(limits.stop_at, time.time() + limits.allowance) if capped else limits.stop_at
    with warnings.catch_warnings(), deadline(end, finish=capped), threads:
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        model.fit(_safe_indexing(data.X, train), data.y[train])
        seconds = time.perf_counter() - start
        capped = capped and time.time() >= end
        epochs_run = getattr(model, "n_iter_", None) if limits.epochs is not None else None
        score = data.scorer(model, _safe_indexing(data.X, test), data.y[test])
        return float(score), seconds, epochs_run, capped


def evaluate(candidate: Candidate, data: SearchData, epochs, stop_at: float, n_jobs,
             allowance: float | None = None) -> Trial:
    """``candidate`` fitted and scored on every fold; a fit that reaches
    ``stop_at`` marks the trial stopped, an error marks it failed. With an
    ``allowance`` (seconds for all folds), each fold's fit ends as a
    finished fit after its share of it."""
    trial, start = Trial(epochs), time.perf_counter()
    # scikit-learn's OpenMP models (gradient boosting) gain nothing from
    # threads on small data and crawl when the cores are busy
    limits = _Limits(epochs, stop_at,
                     None if allowance is None else allowance / len(data.folds),
                     single_thread=candidate.recipe == BASELINE and len(data.y) <= SMALL_DATA)
    try:
        results = Parallel(n_jobs=n_jobs)(
            delayed(_fit_fold)(candidate.estimator, data, fold, limits)
            for fold in range(len(data.folds)))
    except BudgetExhausted:
        trial.stopped = True
    except Exception as exc:  # a failed candidate is recorded, not fatal
        trial.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    else:
        trial.scores, trial.fit_seconds, trial.epochs_run, trial.capped = (
            list(column) for column in zip(*results))
    trial.seconds = time.perf_counter() - start
    return trial


# -- the search ---------------------------------------------------------------------------


@dataclass
class Entry:
    """A candidate and what happened to it."""

    candidate: Candidate
    logme: float = math.nan
    trials: list = field(default_factory=list)
    fate: str = ""

    @property
    def last(self) -> Trial | None:
        """The last trial that finished on every fold."""
        complete = [trial for trial in self.trials if trial.complete]
        return complete[-1] if complete else None

    @property
    def score(self) -> float:
        return self.last.score if self.last is not None else math.nan

    def refit_seconds(self, n_samples: int, n_train: int) -> float | None:
        """Estimated time of a fit on all ``n_samples``."""
        if self.last is None:
            return None
        mean_fit = float(np.mean(self.last.fit_seconds))
        return REFIT_MARGIN * mean_fit * n_samples / max(n_train, 1)

    def row(self) -> dict:
        last, c = self.last, self.candidate
        return {"name": c.name, "recipe": c.recipe, "backbone": c.backbone, "cut": c.cut,
                "lr": c.lr, "epochs": None if last is None else last.epochs_reached,
                "score": self.score,
                "score_std": last.score_std if last is not None else math.nan,
                "logme": self.logme, "seconds": round(sum(t.seconds for t in self.trials), 2),
                "fate": self.fate}


class Search:
    """Evaluate candidates under a budget: one-shot models first, then
    successive halving over the networks trained by epochs."""

    def __init__(self, data: SearchData, budget: Budget, n_jobs=None):
        self.data, self.budget, self.n_jobs = data, budget, n_jobs
        self.entries: list[Entry] = []
        self.refit_cut = ""  # set by ``refit`` when the deadline cut it short

    # -- what is left --------------------------------------------------------------

    def _margin(self) -> float:
        return max(SAFETY_SHARE * self.budget.seconds, SAFETY_SECONDS)

    def _stop_at(self, entry: Entry, until: float | None = None) -> float:
        """When a trial of ``entry`` must stop: early enough for the refit of
        the best entry so far (a trial that leaves too little time for its
        own refit is passed over by ``refit``)."""
        best = self.best()
        other = (best.refit_seconds(len(self.data.y), self.data.n_train)
                 if best is not None and best is not entry else None)
        stop_at = self.budget.end - self._margin() - (other or 0.0)
        return stop_at if until is None else min(stop_at, until)

    def _run(self, entry: Entry, epochs, predicted: float | None,
             until: float | None = None, allowance: float | None = None) -> Trial | None:
        """One trial of ``entry`` unless its predicted time does not fit
        before the refit's reserve (or ``until``); ``allowance``: see
        ``evaluate``."""
        stop_at = self._stop_at(entry, until)
        left = stop_at - time.time()
        if left <= 0 or (predicted is not None and predicted > left):
            entry.fate = entry.fate or "skipped for budget"
            what = f"{predicted:.1f} s predicted" if predicted is not None else "no time"
            self.budget.note(f"skip {entry.candidate.name}"
                             f"{f' at {epochs} epochs' if epochs else ''}: {what}, "
                             f"{max(left, 0):.1f} s left for it")
            return None
        trial = evaluate(entry.candidate, self.data, epochs, stop_at, self.n_jobs, allowance)
        entry.trials.append(trial)
        if trial.error is not None:
            entry.fate = f"failed: {trial.error}"
        elif trial.stopped:
            entry.fate = "stopped for budget"
        self.budget.note(f"{entry.candidate.name}{f' ({epochs} epochs)' if epochs else ''}: "
                         f"{_outcome(trial)} in {trial.seconds:.1f} s")
        return trial

    # -- phases --------------------------------------------------------------------

    def add(self, candidate: Candidate, logme: float = math.nan, fate: str = "") -> Entry:
        entry = Entry(candidate, logme, fate=fate)
        self.entries.append(entry)
        return entry

    def one_shot(self, entries: list[Entry], share: float = 1.0) -> None:
        """Fit the candidates without epochs, in order, within ``share`` of
        the budget (the rest is for successive halving)."""
        until = self.budget.start + share * self.budget.seconds
        for entry in entries:
            self._run(entry, None, None, until)

    def halving(self, entries: list[Entry]) -> None:
        """Successive halving with epochs as the resource: every candidate
        at a ninth of its epoch budget, the best third at a third, the best
        at the whole budget (``auto_epochs`` of a fold's training set). A
        candidate of a later rung that has no time for the rung's epochs
        trains for as many as fit, when that is more than it had; one whose
        fits converged, or that trained as far already, is not trained
        again. A default recipe and a network from scratch go on to their
        whole budget right after their first rung, each within half the time
        left (``_promote``): the search then compares the alternatives with
        the recipe a user would otherwise have fitted and with no transfer,
        both trained as that user would have."""
        alive = list(entries)
        for rung in range(N_RUNGS):
            if not alive:
                return
            self.budget.note(f"rung {rung}: {len(alive)} candidate(s) on "
                             f"{len(self.data.folds)} fold(s)")
            finished = []
            for entry in alive:
                epochs = self._rung_epochs(entry, rung)
                if self._trained_enough(entry, epochs):
                    finished.append(entry)
                    continue
                if rung > 0:
                    epochs = self._affordable(entry, epochs)
                trial = self._run(entry, epochs, self._predicted(entry, epochs))
                if trial is not None and trial.complete:
                    finished.append(entry)
                    if rung == 0 and entry.candidate.full_budget:
                        self._promote(entry)
            finished.sort(key=lambda e: -e.score)
            keep = finished[:max(1, math.ceil(len(finished) / ETA))] \
                if rung < N_RUNGS - 1 else finished
            for entry in finished:
                if entry not in keep:
                    entry.fate = f"dropped at rung {rung}"
            alive = keep

    @staticmethod
    def _trained_enough(entry: Entry, epochs: int) -> bool:
        last = entry.last
        return last is not None and (last.converged or last.epochs >= epochs)

    def _promote(self, entry: Entry) -> None:
        """Train ``entry`` for its whole epoch budget now, within
        ``PROMOTE_SHARE`` of the time left (its convergence rule usually
        ends it well before its epochs; a fold that runs out of its share
        ends as a finished fit at the epochs it reached)."""
        epochs = self._rung_epochs(entry, N_RUNGS - 1)
        if self._trained_enough(entry, epochs):
            return
        allowance = PROMOTE_SHARE * (self._stop_at(entry) - time.time())
        per_epoch = self._predicted(entry, 1)
        if per_epoch is not None and allowance < per_epoch * (entry.last.epochs_reached + 1):
            # it would end at fewer epochs than it has already trained
            self.budget.note(f"{entry.candidate.name}: no time to train it past its "
                             f"{entry.last.epochs_reached} epochs ({max(allowance, 0):.1f} s)")
            return
        self.budget.note(f"{entry.candidate.name}: trained to its whole budget ({epochs} "
                         f"epochs) within {max(allowance, 0):.1f} s")
        if allowance > 0:
            self._run(entry, epochs, None, allowance=allowance)

    def _affordable(self, entry: Entry, epochs: int) -> int:
        """``epochs``, or fewer when only they fit before the budget's end
        with this candidate's refit at that many epochs (and the best's
        refit, if another is best) — but more than its last trial had."""
        per_epoch = self._predicted(entry, 1)
        if per_epoch is None or entry.last is None:
            return epochs
        n, n_train, k = len(self.data.y), self.data.n_train, len(self.data.folds)
        refit_per_epoch = REFIT_MARGIN * per_epoch / k * n / max(n_train, 1)
        best = self.best()
        other = best.refit_seconds(n, n_train) if best is not None and best is not entry else 0
        left = self.budget.end - self._margin() - (other or 0.0) - time.time()
        fits = int(left / (per_epoch + refit_per_epoch))
        if fits >= epochs or fits <= entry.last.epochs:
            return epochs
        self.budget.note(f"{entry.candidate.name}: {fits} epochs fit in the time left "
                         f"(the rung has {epochs})")
        return fits

    def _rung_epochs(self, entry: Entry, rung: int) -> int:
        full = auto_epochs(self.data.n_train, entry.candidate.estimator.batch_size)
        return max(1, math.ceil(full / ETA ** (N_RUNGS - 1 - rung)))

    def _predicted(self, entry: Entry, epochs: int) -> float | None:
        """Seconds a trial at ``epochs`` should take, from this candidate's
        earlier trial or from another of the same backbone; failing those,
        at least what a trial of the backbone stopped at the deadline ran
        without finishing."""
        own = [t.per_epoch() for t in entry.trials if t.per_epoch() is not None]
        if own:
            return own[-1] * epochs
        same = [t for e in self.entries if e.candidate.backbone == entry.candidate.backbone
                and e.candidate.epochs for t in e.trials]
        similar = [t.per_epoch() for t in same if t.per_epoch() is not None]
        if similar:
            return max(similar) * epochs
        stopped = [t.seconds / t.epochs for t in same if t.stopped and t.epochs]
        return min(stopped) * epochs if stopped else None

    # -- the outcome ---------------------------------------------------------------

    def ranked(self, exclude=()) -> list[Entry]:
        """The scored entries, best score first; a tie goes to the candidate
        entered first (the cheaper kind: baselines and probes come before
        networks trained by epochs)."""
        scored = [e for e in self.entries if e.last is not None and e not in exclude]
        return sorted(scored, key=lambda e: -e.score)  # sorted is stable

    def best(self, exclude=()) -> Entry | None:
        ranked = self.ranked(exclude)
        return ranked[0] if ranked else None

    def best_of(self, transfer: bool) -> float:
        scores = [e.score for e in self.entries
                  if e.last is not None and e.candidate.transfer == transfer]
        return max(scores) if scores else math.nan

    def refit(self, X, y):
        """The best candidate fitted on all of ``X, y`` before the budget's
        end (a network stops there as a finished fit); a refit that fails
        hands over to the next best. Returns (entry, fitted estimator)."""
        tried = []
        while True:
            entry = self._refittable(exclude=tried)
            if entry is None:
                return None, None
            model = clone(entry.candidate.estimator)
            if entry.candidate.epochs:
                model.set_params(max_epochs=entry.last.refit_epochs)
            self.budget.note(f"refit {entry.candidate.name} on all {len(y)} samples")
            try:
                with warnings.catch_warnings(), deadline(self.budget.end, finish=True):
                    warnings.simplefilter("ignore")
                    model.fit(X, y)
            except Exception as exc:
                entry.fate = f"failed at refit: {type(exc).__name__}: {exc}".splitlines()[0]
                self.budget.note(entry.fate)
                tried.append(entry)
                continue
            entry.fate = "best"
            self.refit_cut = self._refit_cut(entry, model)
            if self.refit_cut:
                self.budget.note(self.refit_cut)
            for other in self.entries:
                if other.fate == "" and other.last is not None:
                    other.fate = "kept"
            return entry, model

    def _refittable(self, exclude=()) -> Entry | None:
        """The best entry whose estimated refit fits in the time left; the
        better ones are passed over (with a note). When none fits, the best."""
        n, n_train, left = len(self.data.y), self.data.n_train, self.budget.left()
        ranked = self.ranked(exclude)
        fits = [e for e in ranked if e.refit_seconds(n, n_train) <= left]
        if not fits:
            return ranked[0] if ranked else None
        for entry in ranked[:ranked.index(fits[0])]:
            entry.fate = entry.fate or "passed over: no time left for its refit"
            self.budget.note(f"pass over {entry.candidate.name}: its refit needs about "
                             f"{entry.refit_seconds(n, n_train):.1f} s, {max(left, 0):.1f} s "
                             "left")
        return fits[0]

    def _refit_cut(self, entry: Entry, model) -> str:
        """What to tell the user when the budget's end stopped the refit of
        a network short of the epochs its validation trained ("" when it
        ran them, or its convergence rule ended it)."""
        planned = entry.last.refit_epochs if entry.candidate.epochs else None
        reached = getattr(model, "n_iter_", None)
        if not planned or reached is None or reached >= planned or time.time() < self.budget.end:
            return ""
        return (f"the refit of {entry.candidate.name} stopped at the budget's end after "
                f"{reached} of the {planned} epochs it was validated at")


def _outcome(trial: Trial) -> str:
    if trial.error is not None:
        return f"failed ({trial.error})"
    if trial.stopped:
        return "stopped at the deadline"
    ended = (f", its time ended the fits at {trial.epochs_reached} epochs"
             if any(trial.capped) and trial.epochs_reached < trial.epochs else "")
    return f"score {trial.score:.4f} ± {trial.score_std:.4f}{ended}"
