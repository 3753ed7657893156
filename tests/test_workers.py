"""One device per worker, and torch threads per worker: the assignment logic with simulated device lists and worker identities."""

import multiprocessing
import types

import pytest
import torch
from joblib import Parallel, delayed

from sktransfer._nn import runtime, workers


@pytest.mark.parametrize("n_visible, index, expected", [
    (4, None, "cuda"),      # the main process: torch's current device
    (1, 3, "cuda"),         # one visible GPU (e.g. Ray assigned it): that one
    (4, 0, "cuda:0"), (4, 1, "cuda:1"), (4, 5, "cuda:1"), (2, 3, "cuda:1"),
])
def test_auto_device_is_the_workers_round_robin_share(n_visible, index, expected):
    assert workers.auto_cuda_device(n_visible, index) == expected


def test_n_workers_on_n_gpus_use_them_all():
    assert {workers.auto_cuda_device(4, i) for i in range(4)} == {f"cuda:{i}" for i in range(4)}


@pytest.mark.parametrize("value, rotated", [
    (None, False), ("", False), ("0", False), ("0,1,2,3", False), ("2,3", False),
    ("1,2,3,0", True), ("3,0,1,2", True),  # dask-cuda's workers 1 and 3
    ("GPU-8a1b,GPU-77c2", False),  # UUIDs have no order
])
def test_rotated_visible_devices(value, rotated, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    if value is not None:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
    assert workers.rotated_visible_devices() is rotated


def test_dask_cuda_workers_each_take_their_own_gpu(monkeypatch):
    """dask-cuda's LocalCUDACluster on 4 GPUs: worker i sees i, i+1, ..., so
    its own GPU is torch's device 0, never cuda:i of the rotated list."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    physical = set()
    for i in range(4):
        order = [(i + k) % 4 for k in range(4)]
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", ",".join(map(str, order)))
        monkeypatch.setattr(runtime, "worker_index", lambda i=i: i)
        device = torch.device(runtime.resolve_device("auto"))
        physical.add(order[device.index or 0])
    assert physical == {0, 1, 2, 3}


def test_worker_index_from_the_process_name(monkeypatch):
    assert workers.worker_index() is None  # the test runs in the main process
    for name, index in (("LokyProcess-1", 0), ("LokyProcess-3", 2), ("ForkPoolWorker-2", 1)):
        monkeypatch.setattr(multiprocessing, "current_process",
                            lambda name=name: types.SimpleNamespace(name=name))
        assert workers.worker_index() == index


def _probe():
    import multiprocessing

    from sktransfer._nn.workers import worker_index

    return multiprocessing.current_process().name, worker_index()


@pytest.mark.slow
def test_loky_workers_get_distinct_stable_indices():
    results = Parallel(n_jobs=2)(delayed(_probe)() for _ in range(6))
    for name, index in results:
        assert index == int(name.rsplit("-", 1)[1]) - 1


def test_resolve_device_uses_the_share_when_gpus_are_visible(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(runtime, "worker_index", lambda: 3)
    assert runtime.resolve_device("auto") == "cuda:1"
    monkeypatch.setattr(runtime, "worker_index", lambda: None)
    assert runtime.resolve_device("auto") == "cuda"


def test_dask_workers_cap_torch_threads(monkeypatch):
    worker = types.SimpleNamespace(name=1, address="tcp://127.0.0.1:1",
                                   state=types.SimpleNamespace(nthreads=2))
    monkeypatch.setattr(workers, "_dask_worker", lambda: worker)
    assert workers.worker_index() == 1
    assert workers.worker_threads(cores=8) == 4
    monkeypatch.setattr(runtime, "worker_threads", lambda: 1)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        runtime.cap_worker_threads()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    monkeypatch.setattr(workers, "_dask_worker", lambda: None)
    assert workers.worker_threads() is None  # no cap outside Dask
