"""Data-parallel fits: tests/ddp_script.py, a plain training script, run in
one process and under ``torchrun --nproc_per_node=2`` on CPUs (gloo)."""

import json
import os
import pathlib
import subprocess
import sys

import joblib
import numpy as np
import pytest

SCRIPT = pathlib.Path(__file__).with_name("ddp_script.py")
FITS = ("tabular", "images", "pseudo_label")


def _run(command, out):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    done = subprocess.run(command + [str(SCRIPT), str(out)], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The script's reports: one process, and each rank of two."""
    single, double = tmp_path_factory.mktemp("one"), tmp_path_factory.mktemp("two")
    _run([sys.executable], single)
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone",
          "--nproc_per_node=2"], double)

    def report(out, world, rank):
        return json.loads((out / f"report-{world}-{rank}.json").read_text())

    return dict(single=report(single, 1, 0), ranks=[report(double, 2, r) for r in (0, 1)],
                out=double)


@pytest.mark.slow
def test_every_rank_ends_with_the_same_fitted_network(runs):
    first, second = runs["ranks"]
    for name in FITS:
        assert first[name] == second[name], name  # digest, accuracy, epochs


@pytest.mark.slow
def test_two_processes_reach_the_single_process_accuracy(runs):
    single, parallel = runs["single"], runs["ranks"][0]
    # the same global batches and averaged gradients: the MLP's fit is the
    # same training up to float rounding
    assert abs(parallel["tabular"]["accuracy"] - single["tabular"]["accuracy"]) <= 0.02
    assert parallel["tabular"]["accuracy"] > 0.8
    # with unlabeled samples: close (the MLP has no BatchNorm, but each
    # process's share of a batch is not the same mix of labeled samples)
    assert abs(parallel["pseudo_label"]["accuracy"]
               - single["pseudo_label"]["accuracy"]) <= 0.1
    # the image fit has random_state=None: only its ranks are compared (above)


@pytest.mark.slow
def test_the_main_process_alone_saves_and_the_model_loads_anywhere(runs):
    out = runs["out"]
    assert sorted(p.name for p in out.glob("*.joblib")) == [
        f"{name}-2.joblib" for name in sorted(FITS)]
    from tests.ddp_script import digits

    clf = joblib.load(out / "tabular-2.joblib")
    assert getattr(clf.net_, "data_parallel_", None) is None
    _, _, X_test, y_test = digits(600, 400)
    accuracy = clf.score(X_test.reshape(len(X_test), -1) / 255.0, y_test)
    assert accuracy == pytest.approx(runs["ranks"][0]["tabular"]["accuracy"])


@pytest.mark.slow
def test_ranks_draw_rank_zeros_seed(runs):
    first, second = runs["ranks"]
    assert first["seed"] == second["seed"]


@pytest.mark.slow
def test_a_launch_refuses_sharded_data_and_batches_it_cannot_split(runs):
    assert runs["single"]["errors"] == {}
    for rank, report in enumerate(runs["ranks"]):
        sharded, small = report["errors"]["sharded"], report["errors"]["small"]
        assert "every process must call fit with the same X and y" in sharded
        assert f"rank {rank}" in sharded
        assert "batch_size=3 is too small" in small and "batch_size >= 4" in small


@pytest.mark.slow
def test_a_launch_refuses_x_whose_rows_differ_between_ranks(runs):
    # rank 1 passed X's rows in another order with the same y: every rank refuses
    for rank, report in enumerate(runs["ranks"]):
        permuted = report["errors"]["permuted"]
        assert "X differs between the ranks" in permuted
        assert f"rank {rank}" in permuted
        assert "the same X, in the same order" in permuted


def _kinds_of_x(tmp_path):
    """Validated X of each kind, each with its rows in another order."""
    from PIL import Image

    from sktransfer._images import check_images
    from sktransfer._text import check_texts

    rng = np.random.RandomState(0)
    table = rng.rand(6, 3)
    pixels = rng.randint(0, 255, size=(6, 8, 8, 3), dtype=np.uint8)
    paths = []
    for i, image in enumerate(pixels):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(image).save(paths[-1])
    pils = [Image.fromarray(image) for image in pixels]
    texts = [f"text number {i}" for i in range(6)]
    order = [1, 0, 2, 3, 4, 5]
    return {
        "table": (table, table[order]),
        "array": (check_images(pixels), check_images(pixels[order])),
        "paths": (check_images(paths), check_images([paths[i] for i in order])),
        "pil": (check_images(pils), check_images([pils[i] for i in order])),
        "text": (check_texts(texts), check_texts([texts[i] for i in order])),
    }


def test_the_data_digest_follows_each_rows_content_and_position(tmp_path):
    from sktransfer._images import check_images
    from sktransfer._nn.digests import data_digest

    kinds = _kinds_of_x(tmp_path)
    for name, (data, permuted) in kinds.items():
        assert data_digest(data) == data_digest(data), name  # deterministic
        assert data_digest(data) != data_digest(permuted), name
        assert 0 <= data_digest(data) < 2**53 and float(data_digest(data)) == data_digest(data)
    table = kinds["table"][0]
    assert data_digest(table) == data_digest(table.copy(order="F"))  # by value, not layout
    changed = table.copy()
    changed[3, 1] += 1e-12
    assert data_digest(changed) != data_digest(table)
    assert data_digest(table[:5]) != data_digest(table)
    # a file rewritten with another size is other data; its pixels are not read
    paths = kinds["paths"][0]
    before = data_digest(paths)
    with open(paths.data[2], "ab") as file:
        file.write(b"\0")
    assert data_digest(check_images(list(paths.data))) != before


def test_outside_a_launch_fits_are_not_data_parallel(monkeypatch):
    from sktransfer._nn import distributed

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("MASTER_ADDR", "localhost")
    assert distributed.active() and not distributed.is_main_process()
    monkeypatch.setenv("SKTRANSFER_DDP", "0")  # the opt-out
    assert not distributed.active() and distributed.is_main_process()
    monkeypatch.delenv("SKTRANSFER_DDP")
    monkeypatch.delenv("MASTER_ADDR")  # not a launcher's environment
    assert not distributed.active()
