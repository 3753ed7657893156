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
    .venv/bin/python benchmarks/overhead.py --quick    # smoke run (< 1 min)

The two are timed alternately (the first of each is a warm-up, not counted);
the table gives the median seconds per fit and the ratio sktransfer / hand,
whose target is <= 1.05.
"""

from __future__ import annotations

import argparse
from functools import partial

import numpy as np
import torch
from _common import (
    PlainImages,
    header,
    log,
    markdown_table,
    median,
    met,
    mnist_digits,
    noise_warning,
    timed,
    torchvision_model,
    weights_file,
)
from torch import nn
from torch.utils.data import DataLoader

from sktransfer import ImageBackbone, PretrainedClassifier

TARGET = 1.05  # sktransfer seconds / hand-written seconds
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
    times = {name: [] for name in loops}
    for repeat in range(args.repeats + 1):  # repeat 0 warms both up
        order = list(loops)[repeat % len(loops):] + list(loops)[:repeat % len(loops)]
        for name in order:
            seconds, _ = timed(partial(loops[name], repeat))
            if repeat:
                times[name].append(seconds)
            note = " (warm-up, not counted)" if repeat == 0 else ""
            log(f"repeat {repeat} {name:<10} {seconds:7.2f} s{note}")
    return times, data_note


def main(argv=None):
    parser = argparse.ArgumentParser(description="sktransfer fit vs a hand-written loop")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 256 digits, 32 px, 1 epoch, 3 repeats")
    parser.add_argument("--n", type=int, default=1000, help="training digits")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each")
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
    times, data_note = run(args)
    print(f"data: {data_note}")
    hand = median(times["hand_cl"])
    rows = []
    for name, label in (("sktransfer", "PretrainedClassifier.fit"),
                        ("hand_cl", "hand-written PyTorch loop, channels_last"),
                        ("hand", "hand-written PyTorch loop, default format")):
        t = times[name]
        rows.append((label, f"{median(t):.2f}", f"{min(t):.2f}", f"{max(t):.2f}",
                     f"{args.n * args.epochs / median(t):.0f}", f"{median(t) / hand:.3f}"))
    print()
    print(f"{args.repeats} timed runs of each, in rotating order, after one warm-up run of each")
    print(markdown_table(("loop", "median s/fit", "min s", "max s", "images/s",
                          "ratio to hand (channels_last)"), rows))
    ratio = median(times["sktransfer"]) / hand
    print(f"\nratio sktransfer / hand (channels_last) = {ratio:.3f} (medians); "
          f"target <= {TARGET}: {met(ratio <= TARGET)}")
    print(f"ratio of the fastest runs = "
          f"{min(times['sktransfer']) / min(times['hand_cl']):.3f}")
    warning = noise_warning(times)
    if warning:
        print(warning)


if __name__ == "__main__":
    main()
