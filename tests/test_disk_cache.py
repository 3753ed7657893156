"""The on-disk activation cache (``cache_dir``): chunks verified by a digest,
image files keyed by their bytes, an unusable directory that falls back to
memory with one warning, a byte budget with least-recently-used eviction, and
several processes sharing one directory."""

import multiprocessing
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import threading
import time
import warnings
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

import sktransfer
from sktransfer import PretrainedClassifier
from sktransfer._images import check_images
from sktransfer._nn import activation_store as store

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
MODEL = "model-key"


@pytest.fixture(autouse=True)
def fresh_state(monkeypatch):
    """An empty memory store, the default disk budget, and nothing warned yet."""
    monkeypatch.delenv("SKTRANSFER_DISK_CACHE_BYTES", raising=False)
    monkeypatch.setattr(store, "_disk_budget_override", None, raising=False)
    sktransfer.clear_cache()
    yield
    sktransfer.clear_cache()


def _rows(keys, width=4):
    """Rows that depend on their key only, so any reader can check them."""
    return torch.stack([torch.arange(width, dtype=torch.float32) + zlib.crc32(k.encode()) % 997
                        for k in keys])


def _chunks(cache_dir, key=MODEL):
    directory = cache_dir / "sktransfer-activations" / key
    return sorted(p for p in directory.iterdir() if not p.name.startswith("."))


def _put(cache_dir, keys, key=MODEL):
    store.disk_put(cache_dir, key, keys, _rows(keys))
    return max(_chunks(cache_dir, key), key=lambda p: p.stat().st_mtime_ns)


def _get(cache_dir, keys, key=MODEL):
    return store.disk_get(cache_dir, key, keys, torch.float32)


def _lookup(cache_dir, keys, key=MODEL):
    return store.lookup(key, keys, cache_dir=cache_dir, dtype=torch.float32,
                        compute=lambda positions: _rows([keys[i] for i in positions]))


def tiny(tiny_backbone, **overrides):
    name, weights = tiny_backbone
    params = dict(backbone=name, weights=weights, freeze_depth=2, device="cpu", max_epochs=1,
                  batch_size=16, random_state=0)
    params.update(overrides)
    return params


@pytest.fixture(scope="module")
def digits(mnist):
    """40 real MNIST digits of classes 0 and 1."""
    X, y = mnist
    keep = y < 2
    return X[keep][:40], y[keep][:40]


# -- integrity ----------------------------------------------------------------------------


def test_a_chunk_read_back_intact_gives_its_rows(tmp_path):
    _put(tmp_path, ["a", "b"])
    found = _get(tmp_path, ["b", "x", "a"])
    assert sorted(found) == [0, 2]
    torch.testing.assert_close(torch.stack([found[2], found[0]]), _rows(["a", "b"]))
    assert {p.name for p in _chunks(tmp_path)[0].iterdir()} == {
        "keys.npy", "values.npy", "digest.txt"}


def _overwrite_values(chunk):
    values = np.load(chunk / "values.npy")
    np.save(chunk / "values.npy", values + 1.0)  # finite, same shape and dtype


def _truncate_values(chunk):
    data = (chunk / "values.npy").read_bytes()
    (chunk / "values.npy").write_bytes(data[:len(data) // 2])


def _drop_digest(chunk):  # as written by sktransfer before chunks had digests
    (chunk / "digest.txt").unlink()


@pytest.mark.parametrize("damage", [_overwrite_values, _truncate_values, _drop_digest])
def test_a_damaged_chunk_is_removed_recomputed_and_reported_once(tmp_path, damage):
    chunk = _put(tmp_path, ["a", "b"])
    damage(chunk)
    with pytest.warns(UserWarning, match="failed their integrity check") as record:
        rows, counts = _lookup(tmp_path, ["a", "b"])
    assert len([w for w in record if "integrity" in str(w.message)]) == 1
    assert chunk.name in str(record[0].message)
    assert counts["computed"] == 2 and counts["from_disk"] == 0
    torch.testing.assert_close(rows, _rows(["a", "b"]))
    assert not chunk.exists()  # removed, and the rows written again as a new chunk
    store.clear_cache()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sorted(_get(tmp_path, ["a", "b"])) == [0, 1]


def test_a_chunk_that_vanishes_while_listed_is_a_silent_miss(tmp_path, monkeypatch):
    """Another process may evict a chunk between listdir and load."""
    _put(tmp_path, ["a"])
    listdir = os.listdir
    monkeypatch.setattr(os, "listdir", lambda path: listdir(path) + ["0" * 32])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert sorted(_get(tmp_path, ["a", "b"])) == [0]


def test_activations_overwritten_on_disk_are_recomputed_in_a_fit(tiny_backbone, digits, tmp_path):
    X, y = digits
    first = PretrainedClassifier(**tiny(tiny_backbone, cache_dir=tmp_path)).fit(X, y)
    assert first.cache_info_["used"] and first.cache_info_["computed"] == len(X)
    for values in tmp_path.rglob("values.npy"):
        np.save(values, np.load(values) * 0.0 + 3.0)
    sktransfer.clear_cache()  # as in a fresh process: the disk is all there is
    shutil.rmtree(tmp_path / "sktransfer-fits")  # so that the fit trains, not restored
    with pytest.warns(UserWarning, match="failed their integrity check"):
        second = PretrainedClassifier(**tiny(tiny_backbone, cache_dir=tmp_path)).fit(X, y)
    assert second.cache_info_["computed"] == len(X)
    np.testing.assert_allclose(first.predict_proba(X), second.predict_proba(X), rtol=1e-5,
                               atol=1e-6)


# -- image files keyed by content ------------------------------------------------------------


def _rewrite_keeping_size_and_mtime(path, image):
    stat = os.stat(path)
    Image.fromarray(image).save(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert os.stat(path).st_size == stat.st_size


def test_a_file_rewritten_with_the_same_size_and_mtime_gets_a_new_key(digits, tmp_path):
    X, _ = digits
    path = str(tmp_path / "digit.bmp")  # uncompressed: same size for any pixels
    Image.fromarray(X[0]).save(path)
    before = store.sample_keys(check_images([path]))
    _rewrite_keeping_size_and_mtime(path, X[1])
    assert store.sample_keys(check_images([path])) != before
    copy = str(tmp_path / "copy.bmp")
    Image.fromarray(X[1]).save(copy)  # the same bytes under another name
    assert store.sample_keys(check_images([copy])) == store.sample_keys(check_images([path]))


def test_rewritten_files_are_not_served_stale_activations(tiny_backbone, digits, tmp_path):
    X, y = digits
    paths = [str(tmp_path / f"{i}.bmp") for i in range(len(X))]
    for image, path in zip(X, paths):
        Image.fromarray(image).save(path)
    cache_dir = tmp_path / "cache"
    clf = PretrainedClassifier(**tiny(tiny_backbone, cache_dir=cache_dir)).fit(paths, y)
    assert clf.cache_info_["used"]
    for path, image in zip(paths[:10], X[10:20]):
        _rewrite_keeping_size_and_mtime(path, image)
    expected = clf.set_params(cache=False).predict_proba(paths)
    clf.set_params(cache=True)
    np.testing.assert_allclose(clf.predict_proba(paths), expected, rtol=1e-5, atol=1e-6)
    sktransfer.clear_cache()  # now only the files under cache_dir could be stale
    np.testing.assert_allclose(clf.predict_proba(paths), expected, rtol=1e-5, atol=1e-6)


# -- an unusable cache_dir -----------------------------------------------------------------


def test_a_cache_dir_that_is_a_file_warns_once_and_uses_memory(tiny_backbone, digits,
                                                                tmp_path):
    X, y = digits
    path = tmp_path / "not-a-directory"
    path.write_text("the user's file")
    with pytest.warns(UserWarning, match="in-memory cache") as record:
        first = PretrainedClassifier(**tiny(tiny_backbone, cache_dir=path)).fit(X, y)
        # another seed: a fit that trains (an equal one would be restored)
        second = PretrainedClassifier(**tiny(tiny_backbone, cache_dir=path,
                                             random_state=1)).fit(X, y)
        second.predict_proba(X)
    unusable = [w for w in record if str(path) in str(w.message)]
    assert len(unusable) == 1 and unusable[0].category is UserWarning
    assert first.cache_info_["computed"] == len(X)
    assert second.cache_info_["from_memory"] == len(X)
    assert path.read_text() == "the user's file"


def _refuse_mkdir_under(monkeypatch, root):
    """``os.mkdir`` (and so ``os.makedirs``) raises PermissionError under
    ``root``, as in a directory the user may not write to, even as root."""
    mkdir = os.mkdir

    def refuse(path, *args, **kwargs):
        if os.path.abspath(os.fspath(path)).startswith(str(root)):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", refuse)


def test_a_cache_dir_that_cannot_be_created_warns_once(tmp_path, monkeypatch):
    cache_dir = tmp_path / "cache"
    _refuse_mkdir_under(monkeypatch, cache_dir)
    with pytest.warns(UserWarning, match="in-memory cache") as record:
        rows, counts = _lookup(cache_dir, ["a", "b"])
        again, counts_again = _lookup(cache_dir, ["a", "b", "c"])
    assert len(record) == 1 and str(cache_dir) in str(record[0].message)
    assert counts["computed"] == 2 and counts_again["from_memory"] == 2
    torch.testing.assert_close(again, _rows(["a", "b", "c"]))


def test_a_read_only_populated_cache_is_read_and_warns_on_its_first_new_chunk(
        tmp_path, monkeypatch):
    _put(tmp_path, ["a", "b"])
    _refuse_mkdir_under(monkeypatch, tmp_path)
    with pytest.warns(UserWarning, match="in-memory cache") as record:
        rows, counts = _lookup(tmp_path, ["a", "b", "c"])
        _lookup(tmp_path, ["d"])
    assert len(record) == 1
    assert counts == {"from_memory": 0, "from_disk": 2, "computed": 1}
    torch.testing.assert_close(rows, _rows(["a", "b", "c"]))


def _skip_unless_permissions_hold(tmp_path):
    """Root (with its usual capabilities) writes into read-only directories."""
    probe = tmp_path / "probe"
    probe.mkdir(mode=0o500)
    try:
        (probe / "written").mkdir()
    except PermissionError:
        return
    finally:
        probe.chmod(0o700)
    pytest.skip("this user ignores file permissions (root)")


def test_a_read_only_cache_dir_does_not_stop_a_fit(tiny_backbone, digits, tmp_path):
    _skip_unless_permissions_hold(tmp_path)
    tmp_path = tmp_path / "cache"
    X, y = digits
    PretrainedClassifier(**tiny(tiny_backbone, cache_dir=tmp_path)).fit(X[:20], y[:20])
    sktransfer.clear_cache()
    for directory in [tmp_path, *[p for p in tmp_path.rglob("*") if p.is_dir()]]:
        directory.chmod(0o500)
    try:
        with pytest.warns(UserWarning, match="in-memory cache") as record:
            clf = PretrainedClassifier(**tiny(tiny_backbone, cache_dir=tmp_path)).fit(X, y)
        assert len([w for w in record if "in-memory" in str(w.message)]) == 1
        assert clf.cache_info_["from_disk"] == 20 and clf.cache_info_["computed"] == 20
    finally:
        for directory in [tmp_path, *[p for p in tmp_path.rglob("*") if p.is_dir()]]:
            directory.chmod(0o700)


# -- the byte budget -------------------------------------------------------------------------


def _chunk_nbytes(chunk):
    return sum(p.stat().st_size for p in chunk.iterdir())


def test_the_disk_budget_evicts_the_least_recently_used_chunks(tmp_path):
    now = time.time()
    chunks = {}
    for age, name in zip((30, 20, 10), "abc"):
        chunks[name] = _put(tmp_path, [name])
        os.utime(chunks[name], (now - age, now - age))
    size = _chunk_nbytes(chunks["a"])
    assert sktransfer.cache_info(tmp_path)["disk_nbytes"] == 3 * size
    assert sorted(_get(tmp_path, ["a"])) == [0]  # a read counts as a use
    sktransfer.set_cache_budget(disk_nbytes=3 * size)
    _put(tmp_path, ["d"])
    assert not chunks["b"].exists()
    assert all(chunks[name].exists() for name in "ac")
    info = sktransfer.cache_info(tmp_path)
    assert info["disk_chunks"] == 3 and info["disk_nbytes"] <= info["disk_budget"] == 3 * size


def test_the_disk_budget_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SKTRANSFER_DISK_CACHE_BYTES", "0")
    assert sktransfer.cache_info()["disk_budget"] == 0
    _lookup(tmp_path, ["a"])
    assert sktransfer.cache_info(tmp_path)["disk_chunks"] == 0
    sktransfer.set_cache_budget(disk_nbytes=10**6)  # the keyword wins
    _lookup(tmp_path, ["b"])
    assert sktransfer.cache_info(tmp_path)["disk_chunks"] == 1
    monkeypatch.setenv("SKTRANSFER_DISK_CACHE_BYTES", "lots")
    monkeypatch.setattr(store, "_disk_budget_override", None)
    with pytest.raises(ValueError, match="SKTRANSFER_DISK_CACHE_BYTES='lots'"):
        sktransfer.cache_info()


def test_a_fit_keeps_cache_dir_within_its_budget(tiny_backbone, digits, tmp_path):
    X, y = digits
    PretrainedClassifier(**tiny(tiny_backbone, cache_dir=tmp_path)).fit(X[:10], y[:10])
    chunk_size = sktransfer.cache_info(tmp_path)["disk_nbytes"]
    sktransfer.set_cache_budget(disk_nbytes=int(2.5 * chunk_size))
    for start in (10, 20, 30):
        sktransfer.clear_cache()
        PretrainedClassifier(**tiny(tiny_backbone, cache_dir=tmp_path)).fit(
            X[start:start + 10], y[start:start + 10])
    info = sktransfer.cache_info(tmp_path)
    assert info["disk_chunks"] == 2 and info["disk_nbytes"] <= 2.5 * chunk_size


@pytest.mark.parametrize("bad", [-1, 1.5, "1GB", True])
def test_set_cache_budget_rejects_bad_disk_budgets(bad):
    with pytest.raises(ValueError, match="disk_nbytes must be a non-negative int"):
        sktransfer.set_cache_budget(disk_nbytes=bad)


def test_set_cache_budget_needs_a_budget():
    with pytest.raises(ValueError, match="nbytes or disk_nbytes"):
        sktransfer.set_cache_budget()


def test_set_cache_budget_sets_each_budget_alone():
    memory = sktransfer.cache_info()["budget"]
    sktransfer.set_cache_budget(disk_nbytes=12345)
    assert sktransfer.cache_info()["budget"] == memory
    try:
        sktransfer.set_cache_budget(memory + 1)
        assert sktransfer.cache_info()["disk_budget"] == 12345
    finally:
        sktransfer.set_cache_budget(memory)


def test_clear_cache_deletes_only_the_activations_under_cache_dir(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "sktransfer-other").mkdir()
    _lookup(tmp_path, ["a", "b"])
    assert sktransfer.cache_info(tmp_path)["disk_chunks"] == 1
    sktransfer.clear_cache(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "sktransfer-other"]
    info = sktransfer.cache_info(tmp_path)
    assert info["disk_nbytes"] == 0 and info["disk_chunks"] == 0
    assert sktransfer.cache_info()["rows"] == 0
    sktransfer.clear_cache(tmp_path)  # nothing left to delete: no error
    sktransfer.clear_cache(tmp_path / "never-made")


# -- several processes -------------------------------------------------------------------


def _worker(cache_dir, seed, rounds):
    """Write, read and evict in one cache_dir that other processes use too;
    returns the problems seen (wrong rows, warnings, exceptions)."""
    store.set_cache_budget(disk_nbytes=6 * 1024)  # a few chunks: eviction all the time
    rng = np.random.RandomState(seed)
    problems = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            for _ in range(rounds):
                keys = [f"k{i}" for i in rng.choice(40, size=5, replace=False)]
                store.STORE.clear()
                rows, _ = store.lookup(MODEL, keys, cache_dir=cache_dir, dtype=torch.float32,
                                       compute=lambda pos, keys=keys: _rows(
                                           [keys[i] for i in pos]))
                if not torch.equal(rows, _rows(keys)):
                    problems.append(f"wrong rows for {keys}")
        except Exception as error:  # reported to the parent, which fails the test
            problems.append(repr(error))
    return problems + [str(w.message) for w in caught]


def _clearer(cache_dir, rounds):
    """clear_cache(cache_dir) again and again, as another session might."""
    for _ in range(rounds):
        time.sleep(0.005)
        store.clear_cache(cache_dir)


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(),
                    reason="forks worker processes")
def test_processes_sharing_a_cache_dir_see_no_errors_and_no_warnings(tmp_path):
    context = multiprocessing.get_context("fork")
    with context.Pool(5) as pool:
        clearing = pool.apply_async(_clearer, (str(tmp_path), 20))
        results = pool.starmap(_worker, [(str(tmp_path), seed, 40) for seed in range(4)])
        clearing.get()
    assert results == [[]] * 4
    assert sktransfer.cache_info(tmp_path)["disk_nbytes"] <= 6 * 1024


def _slow_lookup(cache_dir, n):
    """Look up n activations no process has: computing them takes a while
    (as a backbone's forward pass does). Returns how many this one computed."""
    keys = [f"k{i}" for i in range(n)]

    def compute(positions):
        time.sleep(0.5)
        return _rows([keys[i] for i in positions])

    store.STORE.clear()
    rows, counts = store.lookup(MODEL, keys, cache_dir=cache_dir, dtype=torch.float32,
                                compute=compute)
    assert torch.equal(rows, _rows(keys))
    return counts["computed"]


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(),
                    reason="forks worker processes")
def test_processes_missing_the_same_activations_compute_them_once_in_total(tmp_path):
    context = multiprocessing.get_context("fork")
    with context.Pool(3) as pool:
        computed = pool.starmap(_slow_lookup, [(str(tmp_path), 12)] * 3)
    assert sorted(computed) == [0, 0, 12]  # one computed, the others waited and read
    assert not list(tmp_path.rglob(".computing"))  # the lease is released


def test_a_lease_whose_holder_died_is_broken(tmp_path, monkeypatch):
    lease = pathlib.Path(store._disk_dir(tmp_path, MODEL)) / ".computing"
    lease.parent.mkdir(parents=True)
    lease.write_text("elsewhere 1 0\n")
    old = time.time() - store._LEASE_STALE_SECONDS - 5  # no longer refreshed
    os.utime(lease, (old, old))
    assert _slow_lookup(str(tmp_path), 3) == 3
    assert not lease.exists()


def _lease_of(cache_dir, host, pid):
    """A lease file as a holder on ``host`` with process id ``pid`` leaves it."""
    lease = pathlib.Path(store._disk_dir(cache_dir, MODEL)) / ".computing"
    lease.parent.mkdir(parents=True, exist_ok=True)
    lease.write_text(f"{host} {pid} {time.time():.0f}\n")
    return lease


class _Waited(Exception):
    """Raised by a patched time.sleep: the lookup waited for the lease."""


def _refuse_to_wait(seconds):
    raise _Waited


def _dead_pid():
    """The process id of a process of this host that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_lease_left_by_a_dead_process_of_this_host_is_broken_at_once(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "_LEASE_STALE_SECONDS", 3600.0)  # not by its age
    lease = _lease_of(tmp_path, platform.node(), _dead_pid())
    monkeypatch.setattr(time, "sleep", _refuse_to_wait)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to report: no wait
        assert _lookup(str(tmp_path), ["a", "b"])[1]["computed"] == 2
    assert not lease.exists()


def test_a_lease_of_another_host_is_waited_for_whatever_its_pid(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "_LEASE_STALE_SECONDS", 3600.0)
    lease = _lease_of(tmp_path, "another-host", _dead_pid())  # a pid of another machine
    monkeypatch.setattr(time, "sleep", _refuse_to_wait)
    with pytest.raises(_Waited):
        _lookup(str(tmp_path), ["a", "b"])
    assert lease.exists()


def test_an_interrupted_computation_releases_its_lease(tmp_path, monkeypatch):
    def interrupted(positions):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.lookup(MODEL, ["a", "b"], cache_dir=str(tmp_path), dtype=torch.float32,
                     compute=interrupted)
    assert not list(tmp_path.rglob(".computing"))
    monkeypatch.setattr(time, "sleep", _refuse_to_wait)  # the next lookup does not wait
    assert _lookup(str(tmp_path), ["a", "b"])[1]["computed"] == 2


def test_a_lease_held_by_a_live_process_is_waited_for_and_the_wait_reported(
        tmp_path, monkeypatch):
    monkeypatch.setattr(store, "_LEASE_STALE_SECONDS", 3600.0)
    monkeypatch.setattr(store, "_LEASE_REPORT_SECONDS", 0.0, raising=False)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    keys = ["a", "b", "c"]
    try:
        lease = _lease_of(tmp_path, platform.node(), holder.pid)

        def finish():  # what the holder does: write the rows, then release
            time.sleep(0.5)
            store.disk_put(str(tmp_path), MODEL, keys, _rows(keys))
            lease.unlink()

        finishing = threading.Thread(target=finish)
        finishing.start()
        with pytest.warns(UserWarning, match="waiting for") as record:
            rows, counts = _lookup(str(tmp_path), keys)
        finishing.join()
    finally:
        holder.kill()
        holder.wait()
    assert counts == {"from_memory": 0, "from_disk": 3, "computed": 0}
    assert torch.equal(rows, _rows(keys))
    message = str(record[0].message)
    assert str(lease) in message and f"{platform.node()}" in message
    assert f"pid {holder.pid}" in message and "delete" in message


def test_a_cache_dir_that_is_a_file_needs_no_lease(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # disk_put's warning is tested above
        assert _slow_lookup(str(blocker), 3) == 3


# -- where cache_dir is ----------------------------------------------------------------------


def test_a_cache_dir_under_the_home_directory_is_expanded(tiny_backbone, digits, tmp_path,
                                                          monkeypatch):
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    X, y = digits
    clf = PretrainedClassifier(**tiny(tiny_backbone, cache_dir="~/x")).fit(X, y)
    PretrainedClassifier(**tiny(tiny_backbone, cache_dir="~/x", freeze_depth="all")).fit(X, y)
    assert clf.cache_info_["computed"] == len(X)
    assert sorted(p.name for p in (home / "x").iterdir()) == [
        "sktransfer-activations", "sktransfer-fits", "sktransfer-probes"]
    assert list(cwd.iterdir()) == []  # no directory named "~"
    assert sktransfer.cache_info("~/x")["disk_chunks"] >= 1
    sktransfer.clear_cache("~/x")
    assert list((home / "x").iterdir()) == []
