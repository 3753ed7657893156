"""Classification → regression transfer
====================================

Classification -> regression transfer: fine-tune a digit classifier's trunk
as a regressor with few labels, and compare R^2 with the same MLP trained
from scratch.

Data: sklearn's 1,797 real 8x8 handwritten digits (64 features scaled to
[0, 1]), split at random into two disjoint halves.

Source: a ``PretrainedClassifier`` (MLP, hidden layers 128 and 64) trained to
recognise the digits 0-9 on the first half.

Target: a ``TransferRegressor`` given the fitted classifier as ``backbone=``,
trained on 20 or 50 labeled images of the *other* half (images the source
never saw) and scored (R^2) on the rest of that half. Two numeric targets:

* digit value: the digit read as a number 0-9. Squared error punishes
  reading a 7 as a 1 more than as an 8; the source knows what the digits
  are, but not that they are ordered or how far apart they lie.
* slant: how much the handwriting leans, the shear of the ink measured by the
  image moments (mu11 / mu02, the quantity used to deskew MNIST; > 0 leans
  right). A property of the writer's hand, which a digit classifier has no
  reason to encode - a check of what happens when the target is unrelated to
  the source task.

Rows: the same MLP from random initialisation ("scratch"), and the
transferred trunk with freeze_depth 0 (fine-tune everything), 1 (freeze the
first hidden layer) and "all" (train only the new head). Every row uses the
same settings (lr 3e-3, batch size 8, 200 epochs); numbers are the mean +- std
over 5 random draws of the labeled images, and [k/5] counts the draws in
which a row beats scratch on the very same labels. CPU only, fixed seeds.

Run (about a minute on two CPU cores):

    .venv/bin/python examples/regression.py
"""

import time

import numpy as np
from sklearn.datasets import load_digits

from sktransfer import MLP, PretrainedClassifier, TransferRegressor

HIDDEN = MLP(hidden_layer_sizes=(128, 64))
COMMON = dict(device="cpu")
FINE_TUNE = dict(lr=3e-3, batch_size=8, max_epochs=200)
SEEDS = range(5)
LABEL_COUNTS = (20, 50)


def slant(images):
    """Shear of the ink of each image: mu11 / mu02 of its intensity moments,
    the horizontal shift per row down (sign flipped so that > 0 leans right)."""
    rows, cols = np.mgrid[0:images.shape[1], 0:images.shape[2]]
    mass = images.sum(axis=(1, 2))
    r = rows - ((images * rows).sum(axis=(1, 2)) / mass)[:, None, None]
    c = cols - ((images * cols).sum(axis=(1, 2)) / mass)[:, None, None]
    mu11 = (images * r * c).sum(axis=(1, 2)) / mass
    mu02 = (images * r * r).sum(axis=(1, 2)) / mass
    return -mu11 / mu02


def main():
    start = time.perf_counter()
    digits = load_digits()
    X = (digits.data / 16.0).astype(np.float32)
    y = digits.target
    order = np.random.RandomState(0).permutation(len(y))
    source_idx, target_idx = order[: len(y) // 2], order[len(y) // 2:]

    source = PretrainedClassifier(HIDDEN, weights=None, max_epochs=10, random_state=0,
                                  **COMMON).fit(X[source_idx], y[source_idx])
    print(f"source: digit classifier on {len(source_idx)} images, accuracy on the other "
          f"{len(target_idx)} images {source.score(X[target_idx], y[target_idx]):.3f}")

    targets = {
        "digit value": y.astype(np.float64),
        "slant": slant(digits.images.astype(np.float64)),
    }
    rows = {
        "scratch (same MLP, random init)": dict(backbone=HIDDEN, weights=None),
        "transfer, freeze_depth=0": dict(backbone=source, freeze_depth=0),
        "transfer, freeze_depth=1": dict(backbone=source, freeze_depth=1),
        "transfer, freeze_depth='all'": dict(backbone=source, freeze_depth="all"),
    }

    width = max(map(len, rows)) + 2
    for target_name, values in targets.items():
        print(f"\ntarget: {target_name} (R^2 on the target half's unlabeled images)")
        print(f"{'':<{width}}" + "".join(f"{f'{n} labels':>24}" for n in LABEL_COUNTS))
        scores = {(name, n): [] for name in rows for n in LABEL_COUNTS}
        for n in LABEL_COUNTS:
            for seed in SEEDS:
                train = np.random.RandomState(seed).choice(target_idx, n, replace=False)
                test = np.setdiff1d(target_idx, train)
                for name, params in rows.items():
                    model = TransferRegressor(**params, random_state=seed, **COMMON,
                                              **FINE_TUNE)
                    model.fit(X[train], values[train])
                    scores[name, n].append(model.score(X[test], values[test]))
        baseline = next(iter(rows))
        for name in rows:
            cells = []
            for n in LABEL_COUNTS:
                cell = f"{np.mean(scores[name, n]):.3f} +- {np.std(scores[name, n]):.3f}"
                if name != baseline:  # draws (same labels) where this row beats scratch
                    wins = sum(a > b for a, b in zip(scores[name, n], scores[baseline, n]))
                    cell += f" [{wins}/{len(SEEDS)}]"
                cells.append(cell)
            print(f"{name:<{width}}" + "".join(f"{cell:>24}" for cell in cells))
    print(f"\ntotal time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
