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
    .venv/bin/python benchmarks/gpu_throughput.py --models resnet50 --append   # one model again
    .venv/bin/python benchmarks/gpu_throughput.py --quick --out /tmp/g.json    # smoke run on the CPU (< 1 min)
    .venv/bin/python benchmarks/gpu_throughput.py --device cpu --image-size 64 --steps 5 --out /tmp/g.json

One record per timed pass (model, loop, repeat, seed: images, seconds,
images/s, the precision and memory layout it ran with, and the device's
name, its CUDA and cuDNN versions, the image size, batch size and steps) is
written to ``benchmarks/results/gpu_throughput.json`` in the format of
``_results``; the meta record holds the device (name, compute capability,
memory, bf16 support), the CUDA and cuDNN versions and every setting
(``--out`` elsewhere; a ``--quick`` run writes only where ``--out`` says;
``--append`` adds the run to the file, its passes replacing the stored ones
of the same device, settings, model, loop, seed and repeat).
``benchmarks/report.py`` makes the README's tables of it: images/s per
device, model and loop with the ratio to the hand-tuned loop, and the target.

Target: sktransfer / hand-tuned >= 0.9. ResNet-50 uses random weights
(``weights=None``; no ImageNet file for it offline, and throughput does not
depend on the values of the weights); MobileNetV2 uses ``IMAGENET1K_V1``.
"""

from __future__ import annotations

import argparse
import os
from functools import partial

import numpy as np
import torch
from _common import (
    add_results_options,
    IMAGENET_MEAN,
    IMAGENET_STD,
    PlainImages,
    header,
    log,
    mnist_digits,
    noise_warning,
    resized_rgb,
    resolve_device,
    run_meta,
    store,
    timed,
    torchvision_model,
    weights_file,
)
from _results import cpu_model
from report import gpu_throughput_tables
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, TensorDataset

from sktransfer import ImageBackbone, PretrainedClassifier

RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "benchmarks", "results", "gpu_throughput.json")
WEIGHTS = {"resnet50": None, "mobilenet_v2": "IMAGENET1K_V1"}
SETTINGS = {"freeze_depth": 0, "optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4,
            "lr_schedule": "constant", "warmup_epochs": 0.0, "augment": None,
            "precision": "auto",
            # every repeat trains: an equal fit with an int random_state would be restored
            "cache": False}
PASSES = 2  # warm-up pass + timed pass


def sktransfer_pass(name, X, y, args):
    """Seconds of the timed (second) epoch of a fit, and what the net ran with."""
    clf = PretrainedClassifier(ImageBackbone(name, image_size=args.image_size),
                               weights=WEIGHTS[name], max_epochs=PASSES, batch_size=args.batch_size,
                               device=args.device, random_state=args.seed, **SETTINGS).fit(X, y)
    net = clf.net_
    return {"seconds": float(clf.history_[-1]["dur"]), "precision": str(net.precision),
            "channels_last": bool(net.channels_last)}


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
    """Seconds of the timed pass of a hand-tuned loop, and what it ran with.

    ``inputs="uint8"``: uint8 batches normalised on the device;
    ``inputs="per-image"``: sktransfer's per-image CPU preprocessing.
    """
    device = args.device
    cuda = torch.device(device).type == "cuda"
    dtype = _autocast_dtype(device)
    benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True  # the hand-tuned loop only
    try:
        torch.manual_seed(args.seed)
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
    return {"seconds": seconds, "precision": precision, "channels_last": cuda}


# the loops by the name their records carry (report.GPU_LOOPS labels them)
LOOPS = {
    "sktransfer": sktransfer_pass,
    "hand_uint8": partial(hand_pass, inputs="uint8"),
    "hand_per_image": partial(hand_pass, inputs="per-image"),
}


def device_info(device: str) -> dict:
    """The device's name and what bounds its throughput: CUDA and cuDNN
    versions, compute capability, memory, bf16 support (None on the CPU)."""
    cuda = torch.device(device).type == "cuda"
    info = {"device": device, "device_name": device_name(device),
            "cuda": torch.version.cuda if cuda else None,
            "cudnn": torch.backends.cudnn.version() if cuda else None}
    if cuda:
        properties = torch.cuda.get_device_properties(torch.device(device))
        info.update(capability=f"{properties.major}.{properties.minor}",
                    memory_gib=round(properties.total_memory / 1024**3, 1),
                    bf16=torch.cuda.is_bf16_supported())
    return info


def device_name(device: str) -> str:
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(torch.device(device))
    threads = torch.get_num_threads()
    return f"CPU ({cpu_model()}, {threads} thread{'' if threads == 1 else 's'})"


def run(args, X, y, device: dict) -> list[dict]:
    """One record per timed pass: every model x repeat x loop, the loops'
    order reversed on odd repeats."""
    records = []
    setting = {"device_name": device["device_name"], "cuda": device["cuda"],
               "cudnn": device["cudnn"], "image_size": args.image_size,
               "batch_size": args.batch_size, "steps": args.steps}
    for name in args.models:
        for repeat in range(args.repeats):
            order = list(LOOPS) if repeat % 2 == 0 else list(LOOPS)[::-1]
            for loop in order:
                measured = LOOPS[loop](name, X, y, args)
                records.append({"model": name, "loop": loop, "repeat": repeat,
                                "seed": args.seed, **setting, "images": len(X), **measured,
                                "images_per_second": len(X) / measured["seconds"]})
                log(f"{name:<13} repeat {repeat} {loop:<15} "
                    f"{records[-1]['images_per_second']:8.1f} images/s")
    return records


def _key(record) -> tuple:
    return (record["device_name"], record["image_size"], record["batch_size"], record["steps"],
            record["model"], record["loop"], record["seed"], record["repeat"])


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
    parser.add_argument("--seed", type=int, default=0,
                        help="the models' initialisation and the batch order")
    add_results_options(parser, RESULTS, "device, settings, model, loop, seed and repeat")
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
    device = device_info(args.device)
    meta = run_meta(None if argv is None else [__file__, *argv], quick=args.quick, **device,
                    threads=torch.get_num_threads(), models=args.models,
                    weights={name: WEIGHTS[name] for name in args.models},
                    image_size=args.image_size, batch_size=args.batch_size, steps=args.steps,
                    passes=PASSES, repeats=args.repeats, seed=args.seed, data=data_note,
                    settings=SETTINGS, cudnn_benchmark="hand-tuned loops only")
    records = run(args, X, y, device)
    tables = gpu_throughput_tables(meta, records)
    print(f"\n{tables['main']}\n\n{tables['targets']}")
    for name in args.models:
        warning = noise_warning({loop: [r["images_per_second"] for r in records
                                        if (r["model"], r["loop"]) == (name, loop)]
                                 for loop in LOOPS})
        if warning:
            print(f"{name}: {warning}")
    store(args, RESULTS, meta, records, _key)


if __name__ == "__main__":
    main()
