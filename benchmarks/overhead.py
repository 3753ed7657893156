"""Overhead of ``PretrainedClassifier.fit`` over a hand-written PyTorch loop
doing the same work on the CPU.

Both fine-tune ImageNet MobileNetV2 (``IMAGENET1K_V1``, offline) with a new
Linear head, everything trained (``freeze_depth=0``), on the same uint8 MNIST
digits: same image size, epochs, batch size, AdamW learning rate and weight
decay, a constant rate, no augmentation, float32. The hand loop gives the
digits to ``PlainImages`` (the same per-image resize, centre crop and
normalisation, written with torchvision's functional ops) in a DataLoader
with 0 workers, as skorch uses by default. Both timed regions start from the
weights file and the uint8 array and end with a trained model.

    .venv/bin/python benchmarks/overhead.py            # 1,000 digits, 64 px, 2 epochs, 5 repeats (~3 min, 2 CPU cores)
    .venv/bin/python benchmarks/overhead.py --quick --out /tmp/o.json   # smoke run (< 1 min)

The three loops are timed in rotating order (the first of each is a
warm-up, not counted). One record per fit, the warm-ups marked, is written to
``benchmarks/results/overhead.json`` in the format of ``_results`` (``--out``
elsewhere; a ``--quick`` run writes only where ``--out`` says);
``benchmarks/report.py`` makes the README's table of it: the median seconds
per fit and the ratio sktransfer / hand, whose target is <= 1.05.
"""

from __future__ import annotations

import argparse
import os
from functools import partial

import numpy as np
import torch
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
from report import OVERHEAD_TARGET, overhead_tables
from torch import nn
from torch.utils.data import DataLoader

from sktransfer import ImageBackbone, PretrainedClassifier

RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "benchmarks", "results", "overhead.json")
SETTINGS = {"weights": "IMAGENET1K_V1", "freeze_depth": 0, "optimizer": "adamw", "lr": 1e-3,
            "weight_decay": 1e-4, "lr_schedule": "constant", "warmup_epochs": 0.0,
            "augment": None, "precision": "32", "device": "cpu"}


def fit_sktransfer(X, y, args, seed):
    clf = PretrainedClassifier(ImageBackbone("mobilenet_v2", image_size=args.image_size),
                               **SETTINGS, max_epochs=args.epochs, batch_size=args.batch_size,
                               random_state=seed)
    return clf.fit(X, y)


def fit_by_hand(X, y, args, seed, weights_path, channels_last=False):
    """The loop a PyTorch user would write for the same fine-tune
    (``channels_last``: with the memory format sktransfer trains images in)."""
    torch.manual_seed(seed)
    classes, targets = np.unique(y, return_inverse=True)
    model = torchvision_model("mobilenet_v2", len(classes), weights_path)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    model.train()
    loader = DataLoader(PlainImages(X, targets, args.image_size), batch_size=args.batch_size,
                        shuffle=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=SETTINGS["lr"],
                                  weight_decay=SETTINGS["weight_decay"])
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(args.epochs):
        for images, labels in loader:
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(images), labels)
            loss.backward()
            optimizer.step()
    return model


def run(args):
    X, y, data_note = mnist_digits(args.n)
    path = weights_file("mobilenet_v2", SETTINGS["weights"])
    loops = {"sktransfer": lambda seed: fit_sktransfer(X, y, args, seed),
             "hand": lambda seed: fit_by_hand(X, y, args, seed, path),
             "hand_cl": lambda seed: fit_by_hand(X, y, args, seed, path, channels_last=True)}
    records = []
    for repeat in range(args.repeats + 1):  # repeat 0 warms each up
        order = list(loops)[repeat % len(loops):] + list(loops)[:repeat % len(loops)]
        for position, name in enumerate(order):
            seconds, _ = timed(partial(loops[name], repeat))
            records.append({"loop": name, "repeat": repeat, "seed": repeat,
                            "position": position, "warm_up": repeat == 0,
                            "seconds": seconds})
            note = " (warm-up, not counted)" if repeat == 0 else ""
            log(f"repeat {repeat} {name:<10} {seconds:7.2f} s{note}")
    return records, data_note


def main(argv=None):
    parser = argparse.ArgumentParser(description="sktransfer fit vs a hand-written loop")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 256 digits, 32 px, 1 epoch, 3 repeats")
    parser.add_argument("--n", type=int, default=1000, help="training digits")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each")
    parser.add_argument("--out", default=RESULTS,
                        help="the results file (a --quick run writes only where --out says)")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.image_size, args.epochs, args.repeats = 256, 32, 1, 3
    print(header("overhead: PretrainedClassifier.fit vs hand-written PyTorch loop"))
    print(f"torch.get_num_threads() = {torch.get_num_threads()}")
    print(f"{args.n} MNIST digits (uint8 28x28) -> "
          f"{args.image_size} px, MobileNetV2 IMAGENET1K_V1 + new Linear head, "
          f"freeze_depth=0, {args.epochs} epoch(s), batch {args.batch_size}, AdamW lr "
          f"{SETTINGS['lr']:g} weight decay {SETTINGS['weight_decay']:g}, constant rate, "
          "no augmentation, float32, device cpu")
    print("hand loop: torchvision mobilenet_v2 + the same weights file, preprocessing by "
          "PlainImages (torchvision functional resize/crop/normalise per image, the same "
          "ops as sktransfer's ImageDataset), DataLoader(shuffle=True, num_workers=0), "
          "nn.CrossEntropyLoss, one AdamW group; sktransfer trains images in channels_last "
          "memory format, so the target is checked against the hand loop doing the same "
          "(the plain-format hand loop is shown too)")
    meta = run_meta(None if argv is None else [__file__, *argv], quick=args.quick,
                    threads=torch.get_num_threads(), n=args.n, image_size=args.image_size,
                    epochs=args.epochs, batch_size=args.batch_size, repeats=args.repeats,
                    settings=SETTINGS, target=f"sktransfer / hand (channels_last) <= "
                                              f"{OVERHEAD_TARGET} (medians)")
    records, meta["data"] = run(args)
    print(f"data: {meta['data']}")
    tables = overhead_tables(meta, records)
    print(f"\n{args.repeats} timed runs of each, in rotating order, after one warm-up run "
          f"of each\n\n{tables['main']}\n\n{tables['targets']}")
    warning = noise_warning({name: [r["seconds"] for r in records
                                    if r["loop"] == name and not r["warm_up"]]
                             for name in dict.fromkeys(r["loop"] for r in records)})
    if warning:
        print(warning)
    store(args, RESULTS, meta, records)


if __name__ == "__main__":
    main()
