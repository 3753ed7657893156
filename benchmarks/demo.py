"""``make demo``'s comparison, stored: ImageNet MobileNetV2 fine-tuned on 500
real MNIST digits at 64 px for 6 epochs against the same network from
random initialisation, both tested on 1,000 other digits
(``sktransfer.demo.run`` with its defaults; ``--quick``: 100 digits, 100
held out, 32 px, 1 epoch).

One record per model (test accuracy, fit seconds, epochs, the training loss
of each epoch) is written to ``benchmarks/results/demo.json`` in the format
of ``_results`` (``--out`` elsewhere; a ``--quick`` run writes only where
``--out`` says); ``benchmarks/report.py`` (``demo_tables``) makes the
README's table of it.

    .venv/bin/python benchmarks/demo.py                           # ~75 s on one core
    .venv/bin/python benchmarks/demo.py --quick --out /tmp/d.json  # smoke run
"""

from __future__ import annotations

import argparse
import inspect
import os
import tempfile

import torch
from _common import add_results_options, header, run_meta, store
from report import demo_tables

from sktransfer.demo import run

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "demo.json")
QUICK = {"n_train": 100, "n_test": 100, "image_size": 32, "max_epochs": 1}


def main(argv=None):
    parser = argparse.ArgumentParser(description="make demo's comparison, stored")
    parser.add_argument("--quick", action="store_true",
                        help="100 digits, 100 held out, 32 px, 1 epoch")
    add_results_options(parser, RESULTS, "model")
    args = parser.parse_args(argv)
    settings = {name: p.default for name, p in inspect.signature(run).parameters.items()
                if name != "out"}
    settings.update(QUICK if args.quick else {})
    print(header("make demo: pretrained vs random init"))
    with tempfile.TemporaryDirectory() as plots:
        results = run(**settings, out=plots)
    records = [{"model": label, "test_accuracy": float(accuracy), "fit_seconds": seconds,
                "epochs": len(losses), "train_loss": [float(x) for x in losses]}
               for label, (accuracy, seconds, losses) in results.items()]
    meta = run_meta(None if argv is None else [__file__, *argv], quick=args.quick,
                    threads=torch.get_num_threads(), **settings)
    print()
    print("\n\n".join(demo_tables(meta, records).values()))
    store(args, RESULTS, meta, records, lambda r: r["model"])


if __name__ == "__main__":
    main()
