"""Fit time against the number of samples and the frozen depth.

ImageNet MobileNetV2 (``IMAGENET1K_V1``, offline) on MNIST digits on the
CPU, with the estimator's defaults except ``augment=None`` (so that
frozen-stage activation caching can apply) and the sizes below.

1. Samples: ``freeze_depth=0`` at n = 1k, 2k, 4k, 8k. The baseline is the
   smallest n: images/s should not drop as n grows (target: at least 0.9 of
   its images/s). MNIST has 5,000 real digits; beyond them the script makes
   new images by shifting real digits by 2 px, and says so.
2. Frozen depth: ``freeze_depth`` 0, 2, 4, "all" (of MobileNetV2's 5
   stages) at a fixed n; the baseline is ``freeze_depth=0``. When the
   estimators have the ``cache`` parameter (frozen-stage activation
   caching), each frozen row is also fitted with ``cache=False`` and the
   table gives the speed-up of the cache (seconds without / with). Every
   fit starts from an empty cache (``sktransfer.clear_cache()``), so the
   figures are for a single fit, without reuse across fits.

    .venv/bin/python benchmarks/scaling.py            # the sizes above, 3 epochs, 64 px (~6 min, 2 CPU cores)
    .venv/bin/python benchmarks/scaling.py --quick --out /tmp/s.json   # smoke run (< 1 min)

One record per fit (its part, n, frozen depth, cache setting, repeat and
seconds; the cache's ``cache_info_``) is written to
``benchmarks/results/scaling.json`` in the format of ``_results`` (``--out``
elsewhere; a ``--quick`` run writes only where ``--out`` says);
``benchmarks/report.py`` makes the README's two tables of it.
"""

from __future__ import annotations

import argparse
import json
import os
from functools import partial

import torch
from _common import (
    N_MNIST,
    header,
    log,
    median,
    mnist_digits,
    run_meta,
    timed,
    store,
)
from report import SCALING_TARGET, scaling_tables

import sktransfer
from sktransfer import ImageBackbone, PretrainedClassifier

RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "benchmarks", "results", "scaling.json")
SETTINGS = {"weights": "IMAGENET1K_V1", "augment": None, "device": "cpu"}


def backbone(args):
    """ImageNet MobileNetV2 at ``--image-size`` px."""
    return ImageBackbone("mobilenet_v2", image_size=args.image_size)


def depth(value: str):
    return value if value == "all" else int(value)


def fit_times(X, y, args, **params):
    """``args.repeats`` fits: a record of each (its seconds; the last one's
    ``cache_info_``), and the median seconds.

    Each fit starts with an empty activation cache, so it measures one fit
    on its own, not one that reuses activations an earlier fit cached (as
    the folds of a grid search do).
    """
    records, clf = [], None
    for repeat in range(args.repeats):
        getattr(sktransfer, "clear_cache", lambda: None)()
        clf = PretrainedClassifier(backbone(args), **SETTINGS, max_epochs=args.epochs,
                                   batch_size=args.batch_size, random_state=0, **params)
        seconds, _ = timed(partial(clf.fit, X, y))
        records.append({"n": len(y), "freeze_depth": params["freeze_depth"],
                        "cache": params.get("cache"), "repeat": repeat, "seed": 0,
                        "seconds": seconds})
    records[-1]["cache_info"] = json.loads(json.dumps(getattr(clf, "cache_info_", None),
                                                      default=str))
    return records, median([r["seconds"] for r in records])


def sample_records(args):
    records = []
    for n in args.sizes:
        X, y, note = mnist_digits(n)
        fits, seconds = fit_times(X, y, args, freeze_depth=0)
        records += [{"part": "samples", **r, "data": note} for r in fits]
        log(f"n={n:<6} freeze_depth=0  {seconds:7.1f} s  {n * args.epochs / seconds:6.0f} "
            "images/s")
    return records


def depth_records(args):
    X, y, note = mnist_digits(args.depth_n)
    records = []
    for d in args.depths:
        for cache in (True, False) if d != 0 else (True,):
            fits, seconds = fit_times(X, y, args, freeze_depth=d, cache=cache)
            records += [{"part": "depth", **r, "data": note} for r in fits]
            log(f"n={args.depth_n:<6} freeze_depth={d!s:<4} {seconds:7.1f} s  "
                f"{args.depth_n * args.epochs / seconds:6.0f} images/s  (cache={cache})")
    return records


def main(argv=None):
    parser = argparse.ArgumentParser(description="fit time vs samples and frozen depth")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: n 128 and 256, depths at n=128, 32 px, 2 epochs")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 4000, 8000])
    parser.add_argument("--depths", type=depth, nargs="+", default=[0, 2, 4, "all"])
    parser.add_argument("--depth-n", type=int, default=2000, help="n of the frozen-depth rows")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=1, help="fits per row (median)")
    parser.add_argument("--out", default=RESULTS,
                        help="the results file (a --quick run writes only where --out says)")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.depth_n, args.image_size, args.epochs = [128, 256], 128, 32, 2
    print(header("scaling: fit time vs samples and frozen depth"))
    print(f"MobileNetV2 IMAGENET1K_V1, {args.image_size} px, {args.epochs} epochs, batch "
          f"{args.batch_size}, augment=None, otherwise the estimator's defaults; device cpu; "
          f"{args.repeats} fit(s) per row (median); images/s = n * epochs / fit seconds")
    PretrainedClassifier(backbone(args), **SETTINGS, max_epochs=1).fit(
        *mnist_digits(32)[:2])  # warm-up, not reported
    meta = run_meta(None if argv is None else [__file__, *argv], quick=args.quick,
                    threads=torch.get_num_threads(), epochs=args.epochs,
                    image_size=args.image_size, batch_size=args.batch_size,
                    repeats=args.repeats, sizes=args.sizes, depths=args.depths,
                    depth_n=args.depth_n, n_real=N_MNIST, settings=SETTINGS,
                    target=f"images/s at each n >= {SCALING_TARGET} of that at the "
                           "smallest n (freeze_depth=0)")
    records = sample_records(args) + depth_records(args)
    tables = scaling_tables(meta, records)
    print(f"\nfit time vs number of samples (freeze_depth=0); baseline: the smallest n\n\n"
          f"{tables['samples']}\n\nfit time vs frozen depth (n={args.depth_n}); baseline: "
          f"freeze_depth=0\n\n{tables['depth']}")
    for r in records:
        if r["part"] == "depth" and r["cache"] and r.get("cache_info"):
            print(f"freeze_depth={r['freeze_depth']}: cache_info_ = {r['cache_info']}")
    store(args, RESULTS, meta, records)


if __name__ == "__main__":
    main()
