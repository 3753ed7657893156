"""Fine-tuning throughput of ``PretrainedClassifier`` against a hand-tuned
PyTorch loop on the same device.

ResNet-50 and MobileNetV2, everything trained (``freeze_depth=0``), AdamW,
constant rate, no augmentation, on MNIST digits held in memory as RGB uint8
images already at the network's input size. sktransfer runs with its
defaults for the device: ``precision="auto"`` (bf16 autocast on CUDA) and
channels_last on CUDA. The hand-tuned loop uses bf16 autocast (on CUDA),
channels_last (on CUDA), ``cudnn.benchmark``, whole uint8 batches in pinned
memory copied with ``non_blocking=True`` and normalised on the device. A
third row, for diagnosis, is the same tuned loop fed by sktransfer's
per-image CPU preprocessing (``PlainImages``), which shows how much of a gap
is the input pipeline rather than the training step.

Each loop makes two passes over ``steps * batch_size`` images; the first is
the warm-up, the second is timed (sktransfer: the ``dur`` skorch records for
the epoch; hand loops: wall clock with CUDA synchronised). Throughput is
images/s of the timed pass, the median over the repeats.

    .venv/bin/python benchmarks/gpu_throughput.py                 # CUDA, 224 px, batch 64, 100 steps (~4 min on one GPU)
    .venv/bin/python benchmarks/gpu_throughput.py --quick         # smoke run on the CPU (< 1 min)
    .venv/bin/python benchmarks/gpu_throughput.py --device cpu --image-size 64 --steps 5

Target: sktransfer / hand-tuned >= 0.9. ResNet-50 uses random weights
(``weights=None``; no ImageNet file for it offline, and throughput does not
depend on the values of the weights); MobileNetV2 uses ``IMAGENET1K_V1``.
"""

from __future__ import annotations

import argparse
from functools import partial

import numpy as np
import torch
from _common import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PlainImages,
    header,
    log,
    markdown_table,
    median,
    met,
    mnist_digits,
    noise_warning,
    resized_rgb,
    resolve_device,
    timed,
    torchvision_model,
    weights_file,
)
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, TensorDataset

from sktransfer import ImageBackbone, PretrainedClassifier

TARGET = 0.9  # sktransfer images/s over hand-tuned images/s
WEIGHTS = {"resnet50": None, "mobilenet_v2": "IMAGENET1K_V1"}
SETTINGS = {"freeze_depth": 0, "optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4,
            "lr_schedule": "constant", "warmup_epochs": 0.0, "augment": None,
            "precision": "auto",
            # every repeat trains: an equal fit with an int random_state would be restored
            "cache": False}
PASSES = 2  # warm-up pass + timed pass


def sktransfer_pass(name, X, y, args):
    """Images/s of the timed (second) epoch of a fit, and what the net ran with."""
    clf = PretrainedClassifier(ImageBackbone(name, image_size=args.image_size),
                               weights=WEIGHTS[name], max_epochs=PASSES, batch_size=args.batch_size,
                               device=args.device, random_state=0, **SETTINGS).fit(X, y)
    net = clf.net_
    return len(X) / clf.history_[-1]["dur"], f"{net.precision}, channels_last={net.channels_last}"


def _autocast_dtype(device):
    if torch.device(device).type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None  # float32, as sktransfer's precision="auto" on the CPU


def _uint8_batches(X, y, batch_size, pin):
    """Whole shuffled batches by one index per batch, pinned by the loader."""
    dataset = TensorDataset(torch.from_numpy(X).permute(0, 3, 1, 2), torch.from_numpy(y))
    sampler = BatchSampler(RandomSampler(dataset), batch_size, drop_last=False)
    return DataLoader(dataset, batch_size=None, sampler=sampler, pin_memory=pin)


def hand_pass(name, X, y, args, inputs):
    """Images/s of the timed pass of a hand-tuned loop.

    ``inputs="uint8"``: uint8 batches normalised on the device;
    ``inputs="per-image"``: sktransfer's per-image CPU preprocessing.
    """
    device = args.device
    cuda = torch.device(device).type == "cuda"
    dtype = _autocast_dtype(device)
    benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True  # the hand-tuned loop only
    try:
        torch.manual_seed(0)
        path = None if WEIGHTS[name] is None else weights_file(name, WEIGHTS[name])
        model = torchvision_model(name, len(np.unique(y)), path).to(device).train()
        if cuda:
            model = model.to(memory_format=torch.channels_last)
        if inputs == "uint8":
            loader = _uint8_batches(X, y, args.batch_size, cuda)
        else:
            loader = DataLoader(PlainImages(X, y, args.image_size), batch_size=args.batch_size,
                                shuffle=True, pin_memory=cuda)
        mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1) * 255
        std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1) * 255
        optimizer = torch.optim.AdamW(model.parameters(), lr=SETTINGS["lr"],
                                      weight_decay=SETTINGS["weight_decay"])
        loss_fn = nn.CrossEntropyLoss()

        def one_pass():
            for images, labels in loader:
                images = images.to(device, non_blocking=True)
                labels = labels.to(device, non_blocking=True)
                if inputs == "uint8":
                    images = (images.float() - mean) / std
                if cuda:
                    images = images.contiguous(memory_format=torch.channels_last)
                optimizer.zero_grad(set_to_none=True)
                with torch.autocast(torch.device(device).type, dtype=dtype,
                                    enabled=dtype is not None):
                    loss = loss_fn(model(images), labels)
                loss.backward()
                optimizer.step()

        for _ in range(PASSES - 1):
            one_pass()
        seconds, _ = timed(one_pass, device)
    finally:
        torch.backends.cudnn.benchmark = benchmark
    precision = "bf16" if dtype is not None else "32"
    return len(X) / seconds, f"{precision}, channels_last={cuda}"


LOOPS = {
    "PretrainedClassifier.fit": sktransfer_pass,
    "hand-tuned (uint8 batches, normalised on device)": partial(hand_pass, inputs="uint8"),
    "hand-tuned, per-image CPU preprocessing (diagnostic)":
        partial(hand_pass, inputs="per-image"),
}
BASELINE = "hand-tuned (uint8 batches, normalised on device)"


def run(args, X, y):
    rows, verdicts = [], []
    for name in args.models:
        speeds = {loop: [] for loop in LOOPS}
        setups = {}
        for repeat in range(args.repeats):
            order = list(LOOPS) if repeat % 2 == 0 else list(LOOPS)[::-1]
            for loop in order:
                speed, setups[loop] = LOOPS[loop](name, X, y, args)
                speeds[loop].append(speed)
                log(f"{name:<13} repeat {repeat} {loop:<52} {speed:8.1f} images/s")
        base = median(speeds[BASELINE])
        for loop in LOOPS:
            ratio = median(speeds[loop]) / base
            rows.append((name, loop, setups[loop], f"{median(speeds[loop]):.1f}",
                         f"{ratio:.3f}"))
        ratio = median(speeds["PretrainedClassifier.fit"]) / base
        best = max(speeds["PretrainedClassifier.fit"]) / max(speeds[BASELINE])
        verdicts.append(f"{name}: sktransfer / hand-tuned = {ratio:.3f} (medians; fastest "
                        f"runs {best:.3f}); target >= {TARGET}: {met(ratio >= TARGET)}")
        warning = noise_warning(speeds)
        if warning:
            verdicts.append(f"{name}: {warning}")
    return rows, verdicts


def main(argv=None):
    parser = argparse.ArgumentParser(description="fine-tuning throughput vs a hand-tuned loop")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: CPU, 64 px, batch 4, 3 steps, 1 repeat")
    parser.add_argument("--device", default="auto", help="'auto' (CUDA if any), 'cpu', 'cuda:N'")
    parser.add_argument("--models", nargs="+", default=list(WEIGHTS), choices=list(WEIGHTS))
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=100, help="optimizer steps per pass")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.quick:
        args.device, args.image_size, args.batch_size, args.steps, args.repeats = (
            "cpu", 64, 4, 3, 1)
    if args.device == "auto" and resolve_device("auto") == "cpu":
        parser.error("no CUDA device here, and the default sizes are for a GPU (hours on a "
                     "CPU); use --quick, or --device cpu with small sizes such as "
                     "--image-size 64 --steps 5")
    args.device = resolve_device(args.device)
    print(header("GPU throughput: PretrainedClassifier vs hand-tuned PyTorch loop",
                 args.device))
    n = args.steps * args.batch_size
    digits, labels, data_note = mnist_digits(n, extend="cycle")
    y = np.unique(labels, return_inverse=True)[1]  # 0..k-1 for the hand loops' heads
    X = resized_rgb(digits, args.image_size)
    print(f"data: {data_note}, as RGB uint8 {args.image_size}x{args.image_size} in memory; "
          f"batch {args.batch_size}, {args.steps} steps per pass, one warm-up pass then one "
          f"timed pass, {args.repeats} repeat(s) alternated; device {args.device}")
    print("weights: resnet50 weights=None (random; no offline ImageNet file for it, and "
          "throughput does not depend on the weights), mobilenet_v2 IMAGENET1K_V1; "
          "freeze_depth=0, AdamW lr 1e-3 wd 1e-4, constant rate, no augmentation; "
          "cudnn.benchmark is set for the hand-tuned loops only")
    rows, verdicts = run(args, X, y)
    print()
    print(markdown_table(("model", "loop", "precision / layout", "images/s",
                          "ratio to hand-tuned"), rows))
    print()
    print("\n".join(verdicts))


if __name__ == "__main__":
    main()
