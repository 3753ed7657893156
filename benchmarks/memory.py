"""Peak memory and throughput of ``predict_proba`` over image files, against
a plain PyTorch DataLoader loop over the same files.

N MNIST digits (the 5,000 real ones, cycled) are written as PNG files into a
temporary directory (not timed). A ``PretrainedClassifier`` (MobileNetV2
``IMAGENET1K_V1``, ``freeze_depth="all"``) is fitted briefly on a few hundred
of the files and saved with joblib. Then each measurement runs in a fresh
Python process, so that its peak RSS is its own:

- sktransfer: ``joblib.load`` the classifier, ``predict_proba(paths)``;
- plain PyTorch: torchvision MobileNetV2 with the same weights file and a new
  Linear head, in eval mode under ``torch.inference_mode``, fed by a
  DataLoader over ``PlainImages`` (PIL decode -> the same resize and
  normalisation as sktransfer), with the same batch size and worker count;
  softmax of the outputs.

Memory, per measured process (after one warm-up batch):
- its own peak RSS (``VmHWM``; ``ru_maxrss`` would not do, see
  ``_self_peak_mb``), and the peak RSS of its largest finished DataLoader
  worker (``getrusage(RUSAGE_CHILDREN).ru_maxrss``);
- the peaks of the summed RSS and of the summed PSS of the process and its
  workers, sampled every 50 ms from /proc (Linux). Summed RSS counts the
  pages forked workers share with the parent (torch's libraries) once per
  process, so it overstates what is used; PSS splits shared pages instead.
  The target is checked on the predicting process's own peak RSS and on the
  summed PSS of it and its workers (self + largest worker where /proc is
  missing); the summed RSS is printed beside them.
"before" is the process's peak RSS just before the timed call (Python,
torch, the model). Throughput is images/s of the timed call alone.

    .venv/bin/python benchmarks/memory.py            # 20,000 PNG files, 64 px, batch 64, 2 repeats (~4 min, 2 CPU cores)
    .venv/bin/python benchmarks/memory.py --quick --out /tmp/m.json   # smoke run (< 1 min)

Targets: peak RSS of the predicting process, and peak PSS of it and its
workers together, < 1.5 GB;
throughput sktransfer / plain >= 1/1.2.

One record per measurement (its loop, repeat, seconds and memory peaks) is
written to ``benchmarks/results/memory.json`` in the format of ``_results``
(``--out`` elsewhere; a ``--quick`` run writes only where ``--out`` says);
``benchmarks/report.py`` makes the README's table and targets of it.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
from functools import partial

from _common import (
    PlainImages,
    header,
    log,
    mnist_digits,
    noise_warning,
    run_meta,
    timed,
    torchvision_model,
    weights_file,
    store,
)
from report import MEMORY_RSS_MB, MEMORY_THROUGHPUT, memory_tables

RESULT = "RESULT "
RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "benchmarks", "results", "memory.json")


# -- the measured processes ---------------------------------------------------------

def _status_mb(field: str):
    """A ``VmHWM``/``VmRSS`` line of /proc/self/status in MB (None off Linux)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _self_peak_mb() -> float:
    """Peak RSS of this process since it started.

    ``VmHWM``, not ``getrusage(RUSAGE_SELF).ru_maxrss``: on Linux a process
    started by another inherits the RSS high-water mark of its parent through
    fork and exec, so ru_maxrss would report the driver's memory.
    """
    peak = _status_mb("VmHWM")
    if peak is not None:
        return peak
    kilobytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kilobytes / (1024 * 1024 if sys.platform == "darwin" else 1024)


def _children_peak_mb() -> float:
    """Peak RSS of the largest finished child (a DataLoader worker)."""
    kilobytes = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return kilobytes / (1024 * 1024 if sys.platform == "darwin" else 1024)


class TreeMemory:
    """Samples the memory of this process and its children (the workers).

    Two sums, each sampled every ``interval`` seconds: RSS, which counts the
    pages forked workers share with this process (torch's libraries) once
    per process, so it is an upper bound, as summing ``ps`` figures is; and
    PSS, which splits shared pages between the processes mapping them (also
    processes outside this tree, so it can fall below this process's own
    RSS). Linux only; both peaks are None elsewhere.
    """

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.available = os.path.exists("/proc/self/smaps_rollup")
        self._peak_kb = {"Rss": 0, "Pss": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def peak_mb(self, field: str):
        return self._peak_kb[field] / 1024 if self.available else None

    @staticmethod
    def _pids() -> list[int]:
        pids = [os.getpid()]
        for path in glob.glob(f"/proc/{os.getpid()}/task/*/children"):
            try:
                with open(path) as children:
                    pids += [int(pid) for pid in children.read().split()]
            except OSError:
                pass
        return pids

    @staticmethod
    def _rollup_kb(pid: int) -> dict:
        sizes = {"Rss": 0, "Pss": 0}
        try:
            with open(f"/proc/{pid}/smaps_rollup") as rollup:
                for line in rollup:
                    field = line.split(":", 1)[0]
                    if field in sizes:
                        sizes[field] = int(line.split()[1])
        except OSError:  # the worker has just exited
            pass
        return sizes

    def sample(self) -> None:
        rollups = [self._rollup_kb(pid) for pid in self._pids()]
        for field in self._peak_kb:
            total = sum(r[field] for r in rollups)
            self._peak_kb[field] = max(self._peak_kb[field], total)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self):
        if self.available:
            self.sample()
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.available:
            self._stop.set()
            self._thread.join()
            self.sample()


def _predict_sktransfer(args):
    import joblib

    clf = joblib.load(args.model)
    if args.workers is not None:  # n_jobs=1 is scikit-learn's "no parallelism": 0 workers
        clf.set_params(n_jobs=args.workers or 1)
    return clf.predict_proba


def _predict_plain(args):
    import torch
    from torch.utils.data import DataLoader

    model = torchvision_model("mobilenet_v2", 10, args.weights_file).eval()

    def predict_proba(paths):
        loader = DataLoader(PlainImages(paths, None, args.image_size),
                            batch_size=args.batch_size, num_workers=args.workers or 0)
        outputs = []
        with torch.inference_mode():
            for images, _ in loader:
                outputs.append(torch.softmax(model(images), dim=1))
        return torch.cat(outputs).numpy()

    return predict_proba


def measure(args):
    """Runs in the fresh process: one warm-up batch, then one timed call over
    all the files; prints the figures as JSON."""
    paths = sorted(os.path.join(args.files, f) for f in os.listdir(args.files))[:args.n]
    prepare = _predict_sktransfer if args.measure == "sktransfer" else _predict_plain
    predict_proba = prepare(args)
    predict_proba(paths[:args.batch_size])  # first-call costs (lazy imports, kernels)
    before = _self_peak_mb()
    with TreeMemory() as tree:
        seconds, proba = timed(partial(predict_proba, paths))
    if len(proba) != len(paths):
        raise RuntimeError(f"expected {len(paths)} rows of probabilities, got {len(proba)}")
    print(RESULT + json.dumps({
        "seconds": seconds, "before_mb": before, "self_mb": _self_peak_mb(),
        "children_mb": _children_peak_mb(), "tree_rss_mb": tree.peak_mb("Rss"),
        "tree_pss_mb": tree.peak_mb("Pss")}), flush=True)


def run_measurement(kind, args, files, model_path, weights_path, workers):
    command = [sys.executable, os.path.abspath(__file__), "--measure", kind, "--files", files,
               "--model", model_path, "--weights-file", str(weights_path),
               "--n", str(args.n), "--image-size", str(args.image_size),
               "--batch-size", str(args.batch_size)]
    command += ["--workers", str(workers)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{kind} measurement failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(lines[-1][len(RESULT):])


# -- the driver ---------------------------------------------------------------------

def write_pngs(n, directory):
    from PIL import Image

    X, y, note = mnist_digits(n, extend="cycle")
    width = len(str(n))
    for i, image in enumerate(X):
        Image.fromarray(image).save(os.path.join(directory, f"{i:0{width}d}.png"))
    return y, note


def fit_classifier(args, directory, y, path):
    import joblib

    from sktransfer import ImageBackbone, PretrainedClassifier

    files = sorted(os.path.join(directory, f) for f in os.listdir(directory))[:args.fit_n]
    clf = PretrainedClassifier(ImageBackbone("mobilenet_v2", image_size=args.image_size),
                               weights="IMAGENET1K_V1", freeze_depth="all",
                               batch_size=args.batch_size,
                               max_epochs=1, augment=None, device="cpu", random_state=0)
    clf.fit(files, y[:args.fit_n])
    joblib.dump(clf, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description="predict_proba memory and throughput on files")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 512 files, 32 px, fit on 64, 1 repeat")
    parser.add_argument("--n", type=int, default=20000, help="PNG files to predict")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None,
                        help="DataLoader worker processes for both (default 2; sktransfer "
                             "gets n_jobs=workers, or n_jobs=1 for 0)")
    parser.add_argument("--fit-n", type=int, default=300, help="files the classifier is fit on")
    parser.add_argument("--repeats", type=int, default=2, help="measurements of each")
    parser.add_argument("--out", default=RESULTS,
                        help="the results file (a --quick run writes only where --out says)")
    # set by the driver for the measured processes
    parser.add_argument("--measure", choices=("sktransfer", "plain"), help=argparse.SUPPRESS)
    parser.add_argument("--files", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--weights-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        return measure(args)
    if args.workers == 1:
        parser.error("--workers 1 has no n_jobs equivalent (n_jobs=1 means no worker "
                     "processes); use 0 or 2 and more")
    if args.quick:
        args.n, args.image_size, args.fit_n, args.repeats = 512, 32, 64, 1
    print(header("memory: predict_proba over PNG files vs a plain DataLoader loop"))
    workers = 2 if args.workers is None else args.workers
    meta = run_meta(None if argv is None else [__file__, *argv], quick=args.quick, n=args.n,
                    image_size=args.image_size, batch_size=args.batch_size, workers=workers,
                    fit_n=args.fit_n, repeats=args.repeats,
                    target=f"peak RSS of the predicting process and peak PSS of it and its "
                           f"workers < {MEMORY_RSS_MB:.0f} MB; throughput sktransfer / plain "
                           f">= {MEMORY_THROUGHPUT:.3f} (1/1.2)")
    records = []
    with tempfile.TemporaryDirectory(prefix="sktransfer-memory-") as tmp:
        files = os.path.join(tmp, "png")
        os.mkdir(files)
        log(f"writing {args.n} PNG files to {files} (not timed)")
        y, meta["data"] = write_pngs(args.n, files)
        model_path = os.path.join(tmp, "classifier.joblib")
        log(f"fitting the classifier on {args.fit_n} files (not timed)")
        fit_classifier(args, files, y, model_path)
        weights_path = weights_file("mobilenet_v2", "IMAGENET1K_V1")
        print(f"data: {meta['data']}, as {args.n} 28x28 grayscale PNG files -> "
              f"{args.image_size} px; batch {args.batch_size}, {workers} DataLoader "
              f"worker(s), device cpu; classifier: MobileNetV2 IMAGENET1K_V1, "
              f"freeze_depth='all', fit 1 epoch on {args.fit_n} files; each measurement in "
              f"a fresh process, {args.repeats} repeat(s) alternated")
        for repeat in range(args.repeats):
            order = ["sktransfer", "plain"][::1 if repeat % 2 == 0 else -1]
            for kind in order:
                result = run_measurement(kind, args, files, model_path, weights_path, workers)
                records.append({"loop": kind, "repeat": repeat, "seed": 0, **result})
                log(f"repeat {repeat} {kind:<10} {args.n / result['seconds']:7.1f} images/s, "
                    f"peak RSS {result['self_mb']:.0f} MB (with workers "
                    f"{result['tree_rss_mb']} MB)")
    tables = memory_tables(meta, records)
    print(f"\n{tables['main']}\n\n{tables['targets']}")
    warning = noise_warning({kind: [r["seconds"] for r in records if r["loop"] == kind]
                             for kind in ("sktransfer", "plain")})
    if warning:
        print(warning)
    store(args, RESULTS, meta, records)


if __name__ == "__main__":
    main()
