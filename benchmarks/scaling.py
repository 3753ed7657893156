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
    .venv/bin/python benchmarks/scaling.py --quick    # smoke run (< 1 min)
"""

from __future__ import annotations

import argparse
from functools import partial

from _common import (
    N_MNIST,
    header,
    log,
    markdown_table,
    median,
    met,
    mnist_digits,
    timed,
)

import sktransfer
from sktransfer import ImageBackbone, PretrainedClassifier

LINEAR_TARGET = 0.9  # images/s at n over images/s at the smallest n
SETTINGS = {"weights": "IMAGENET1K_V1", "augment": None, "device": "cpu"}


def backbone(args):
    """ImageNet MobileNetV2 at ``--image-size`` px."""
    return ImageBackbone("mobilenet_v2", image_size=args.image_size)


def depth(value: str):
    return value if value == "all" else int(value)


def fit_time(X, y, args, **params):
    """Median seconds of ``args.repeats`` fits, and the last fitted estimator.

    Each fit starts with an empty activation cache, so it measures one fit
    on its own, not one that reuses activations an earlier fit cached (as
    the folds of a grid search do).
    """
    times, clf = [], None
    for _ in range(args.repeats):
        getattr(sktransfer, "clear_cache", lambda: None)()
        clf = PretrainedClassifier(backbone(args), **SETTINGS, max_epochs=args.epochs,
                                   batch_size=args.batch_size, random_state=0, **params)
        seconds, _ = timed(partial(clf.fit, X, y))
        times.append(seconds)
    return median(times), clf


def sample_rows(args):
    rows, notes, base = [], [], None
    for n in args.sizes:
        X, y, note = mnist_digits(n)
        seconds, _ = fit_time(X, y, args, freeze_depth=0)
        speed = n * args.epochs / seconds
        base = base or speed
        ratio = speed / base
        rows.append((n, f"{seconds:.1f}", f"{speed:.0f}", f"{ratio:.3f}",
                     met(ratio >= LINEAR_TARGET)))
        if n > N_MNIST:
            notes.append(note)
        log(f"n={n:<6} freeze_depth=0  {seconds:7.1f} s  {speed:6.0f} images/s")
    return rows, notes


def depth_rows(args):
    X, y, note = mnist_digits(args.depth_n)
    rows, infos, base = [], [], None
    for d in args.depths:
        seconds, clf = fit_time(X, y, args, freeze_depth=d, cache=True)
        speed = args.depth_n * args.epochs / seconds
        base = base or seconds
        row = [d, f"{seconds:.1f}", f"{speed:.0f}", f"{base / seconds:.2f}"]
        log(f"n={args.depth_n:<6} freeze_depth={d!s:<4} {seconds:7.1f} s  {speed:6.0f} images/s")
        if d != 0:
            off, _ = fit_time(X, y, args, freeze_depth=d, cache=False)
            row += [f"{off:.1f}", f"{args.depth_n * args.epochs / off:.0f}",
                    f"{off / seconds:.2f}"]
            infos.append(f"freeze_depth={d}: cache_info_ = {clf.cache_info_}")
            log(f"n={args.depth_n:<6} freeze_depth={d!s:<4} {off:7.1f} s  (cache=False)")
        else:
            row += ["-", "-", "-"]
        rows.append(row)
    return rows, note, infos


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
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.depth_n, args.image_size, args.epochs = [128, 256], 128, 32, 2
    print(header("scaling: fit time vs samples and frozen depth"))
    print(f"MobileNetV2 IMAGENET1K_V1, {args.image_size} px, {args.epochs} epochs, batch "
          f"{args.batch_size}, augment=None, otherwise the estimator's defaults; device cpu; "
          f"{args.repeats} fit(s) per row (median); images/s = n * epochs / fit seconds")
    PretrainedClassifier(backbone(args), **SETTINGS, max_epochs=1).fit(
        *mnist_digits(32)[:2])  # warm-up, not reported
    samples, notes = sample_rows(args)
    depths, depth_note, infos = depth_rows(args)
    print()
    print("fit time vs number of samples (freeze_depth=0); baseline: the smallest n")
    print(markdown_table(("n", "fit s", "images/s", "images/s ratio to smallest n",
                          f"target >= {LINEAR_TARGET}"), samples))
    for note in notes:
        print(f"data: {note}")
    print()
    print(f"fit time vs frozen depth (n={args.depth_n}; {depth_note}); baseline: "
          "freeze_depth=0")
    columns = ["freeze_depth", "fit s (cache=True)", "images/s (cache=True)",
               "speed-up vs freeze_depth=0", "fit s (cache=False)", "images/s (cache=False)",
               "cache speed-up (False s / True s)"]
    print(markdown_table(columns, depths))
    for info in infos:
        print(info)


if __name__ == "__main__":
    main()
