"""The tables of benchmarks/README.md are those benchmarks/results generates.

A figure in the benchmark docs changes only by rerunning its benchmark (which
rewrites ``benchmarks/results/<name>.json``) and then ``python
benchmarks/report.py``, which rewrites the README's marked tables.
"""

import importlib.util
import json
import pathlib
import sys

import pytest

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"
META_FIELDS = ("date", "commit", "machine", "versions", "command")
VERSIONED = ("python", "torch", "torchvision", "scikit-learn", "skorch", "numpy")
# Files whose benchmark writes a shape of its own; a strict xfail, so that the
# file's name leaves this set when its benchmark writes the results format.
NOT_CONVERTED: set = set()


def _load(name):
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


report = _load("report")


def test_readme_tables_are_generated_from_results():
    differ = report.differences(report.README.read_text(), report.generate())
    assert not differ, (f"benchmarks/README.md tables differ from benchmarks/results: {differ}; "
                        "rerun the benchmark, then python benchmarks/report.py")


def test_check_names_an_edited_table():
    tables = report.generate()
    text = report.README.read_text()
    name = "linear_transfer/main"
    edited = text.replace(tables[name], tables[name].replace("0.122", "0.123", 1))
    assert edited != text
    assert report.differences(edited, tables) == [name]
    assert report.rewrite(edited, tables) == text


def test_marked_table_without_results_is_reported():
    text = "<!-- table: nothing/main -->\n| a |\n<!-- end table -->\n"
    assert report.differences(text, {}) == ["nothing/main"]
    with pytest.raises(KeyError, match="nothing/main"):
        report.rewrite(text, {})


@pytest.mark.parametrize("path", sorted((BENCHMARKS / "results").glob("*.json")),
                         ids=lambda path: path.name)
def test_results_file_has_meta(path, request):
    if path.name in NOT_CONVERTED:
        request.applymarker(pytest.mark.xfail(strict=True, reason="not in the results format"))
    stored = json.loads(path.read_text())
    assert isinstance(stored, dict) and set(stored) == {"meta", "records"}
    meta = stored["meta"]
    assert all(field in meta for field in META_FIELDS)
    assert {"cpu", "cores", "gpu"} <= set(meta["machine"])
    assert set(VERSIONED) <= set(meta["versions"])
    assert isinstance(stored["records"], list) and stored["records"]
    for run in meta.get("runs", []):
        assert all(field in run for field in META_FIELDS)


def test_combined_runs_keep_each_run_and_tag_its_records():
    results = _load("_results")
    first = ({"date": "2026-01-01T00:00Z", "command": "python a.py"}, [{"x": 1}, {"x": 2}])
    second = ({"date": "2026-01-02T00:00Z", "command": "python a.py --more"}, [{"x": 3}])
    meta, records = results.combine_runs([first, second], command="python a.py --merge")
    assert [run["command"] for run in meta["runs"]] == ["python a.py", "python a.py --more"]
    assert [r["run"] for r in records] == [0, 0, 1]
    assert meta["date"] == "2026-01-02T00:00Z" and meta["command"] == "python a.py --merge"
    meta, records = results.combine_runs([(meta, records), first])
    assert len(meta["runs"]) == 3 and [r["run"] for r in records] == [0, 0, 1, 2, 2]


def test_a_rerun_replaces_the_stored_records_it_measures_again(tmp_path):
    results = _load("_results")
    path = tmp_path / "x.json"
    run = {"date": "2026-01-01T00:00Z", "command": "python x.py"}
    assert results.with_stored(path, run, [{"k": 1}], lambda r: r["k"]) == (run, [{"k": 1}])
    results.write_results(path, run, [{"k": 1, "v": "old"}, {"k": 2, "v": "old"}])
    rerun = {"date": "2026-01-02T00:00Z", "command": "python x.py --k 2"}
    meta, records = results.with_stored(path, rerun, [{"k": 2, "v": "new"}], lambda r: r["k"])
    assert [(r["k"], r["v"], r["run"]) for r in records] == [(1, "old", 0), (2, "new", 1)]
    assert [m["command"] for m in meta["runs"]] == ["python x.py", "python x.py --k 2"]
    # a stored run whose every record is measured again is dropped
    meta, records = results.with_stored(path, rerun, [{"k": 1}, {"k": 2}], lambda r: r["k"])
    assert [m["command"] for m in meta["runs"]] == ["python x.py --k 2"]


def _strategy_fit(target, strategy, seed, accuracy, *, max_epochs="auto", seconds=1.0,
                  epochs=10, at_budget=False):
    return {"max_epochs": max_epochs, "target": target, "strategy": strategy, "seed": seed,
            "test_accuracy": accuracy, "fit_seconds": seconds, "epochs": epochs,
            "at_budget": at_budget}


def test_strategies_tables_group_targets_by_budget_and_rows():
    """A table per epoch budget and group of targets measured on the same
    strategies; the best mean of each target in bold; the solved probe and
    the default recipe equal to a recipe named so."""
    records = []
    for seed, (probe, recipe) in enumerate([(0.70, 0.84), (0.72, 0.88)]):
        for target in ("MNIST 10/class", "textures 10/class"):
            records += [
                _strategy_fit(target, "linear probe", seed, probe, seconds=0.5, epochs=0),
                _strategy_fit(target, "recipe C: cosine + augment", seed, recipe, seconds=4.0,
                              epochs=30 + 2 * seed, at_budget=seed == 1),
                _strategy_fit(target, "default recipe", seed, recipe, seconds=2.0)]
    records += [_strategy_fit("MNIST 50/class", "default recipe", seed, 0.98, seconds=390.0,
                              epochs=63, at_budget=True) for seed in range(2)]
    records += [_strategy_fit("MNIST 10/class", "linear probe", 0, 0.6, max_epochs=6,
                              epochs=0)]
    tables = report.strategies_tables({}, records)
    assert list(tables) == ["auto-mnist10-textures10", "auto-mnist50", "epochs6-mnist10"]
    lines = tables["auto-mnist10-textures10"].splitlines()
    assert lines[0] == ("| strategy | MNIST 10/class | textures 10/class | mean fit time (s) "
                        "| mean epochs (fits ended at the budget) |")
    assert lines[2:] == [
        "| linear probe (exact) | 0.710 ± 0.010 | 0.710 ± 0.010 | 0.5 | 0 (0 of 4) |",
        "| recipe C: cosine + augment | **0.860 ± 0.020** | **0.860 ± 0.020** | 4.0 "
        "| 31 (2 of 4) |",
        "| default recipe (= recipe C) | **0.860 ± 0.020** | **0.860 ± 0.020** | 2.0 "
        "| 10 (0 of 4) |"]
    # one row: nothing in bold
    assert tables["auto-mnist50"].splitlines()[2:] == [
        "| default recipe | 0.980 ± 0.000 | 390.0 | 63 (2 of 2) |"]
    # one seed: no spread
    assert tables["epochs6-mnist10"].splitlines()[2:] == [
        "| linear probe (exact) | 0.600 | 1.0 | 0 (0 of 1) |"]


def _partial_labels_records():
    """Two seeds per fit, test accuracy mean ± 0.01: the mean given here."""
    def seeds(record, mean, seconds=10.0):
        return [{**record, "seed": seed, "test_accuracy": mean + delta,
                 "fit_seconds": seconds + delta * 100} for seed, delta in ((0, -0.01), (1, 0.01))]

    records = []
    da = {"mnist-digits": {"source only": 0.61, "CORAL": 0.64, "MMD": 0.76, "DANN": 0.71,
                           "skada DeepCoral": 0.66, "target labeled (upper bound)": 0.95},
          "digits-mnist": {"source only": 0.48, "CORAL": 0.50, "MMD": 0.51, "DANN": 0.46,
                           "skada DeepCoral": 0.52, "target labeled (upper bound)": 0.94}}
    for pair, rows in da.items():
        for row, mean in rows.items():
            method = {"CORAL": "Coral", "MMD": "MMD", "DANN": "DANN"}.get(row)
            records += seeds({"part": "da", "pair": pair, "row": row, "method": method,
                              "strength": 1.0 if method else None, "epochs": 5}, mean)
    for target, rows in {"MNIST 10/class": {"supervised only": 0.73, "pseudo-label": 0.83,
                                            "FixMatch": 0.86},
                         "textures 5/class": {"supervised only": 0.91, "pseudo-label": 0.78,
                                              "FixMatch": 0.93}}.items():
        for row, mean in rows.items():
            records += seeds({"part": "ssl", "target": target, "row": row}, mean)
    for seed, delta in ((0, -0.01), (1, 0.01)):
        records.append({"part": "mt", "row": "multi-task", "tasks": ["digit", "odd/even"],
                        "seed": seed, "fit_seconds": 10.0,
                        "test_accuracy": {"digit": 0.90 + delta, "odd/even": 0.93 + delta}})
        records += [{"part": "mt", "row": "separate", "tasks": [task], "seed": seed,
                     "fit_seconds": 8.0, "test_accuracy": {task: accuracy + delta}}
                    for task, accuracy in (("digit", 0.89), ("odd/even", 0.95))]
    return records


def test_partial_labels_tables_from_records():
    tables = report.partial_labels_tables({}, _partial_labels_records())
    assert set(tables) == {"da", "da_targets", "ssl", "ssl_seeds", "ssl_targets", "mt",
                           "mt_targets"}
    da = tables["da"].splitlines()
    assert da[0] == "| row | MNIST → digits | digits → MNIST |"
    assert "| MMD | **0.760 ± 0.010** (10.0 s) | 0.510 ± 0.010 (10.0 s) |" in da
    assert ("| skada DeepCoral | 0.660 ± 0.010 (10.0 s) | **0.520 ± 0.010** (10.0 s) |"
            in da)  # the best row but the upper bound is bold
    assert ("| target labeled (upper bound) | 0.950 ± 0.010 (10.0 s) | 0.940 ± 0.010 "
            "(10.0 s) |") in da
    assert tables["da_targets"].splitlines()[2:] == [
        ("| best DA ≥ source only + 0.05 | **met** (MMD 0.760 vs 0.610) | **not met** "
         "(MMD 0.510 vs 0.480: +0.030) |"),
        ("| best DA ≥ skada's best | **met** (0.760 vs DeepCoral 0.660) | **not met** "
         "(0.510 vs DeepCoral 0.520) |")]
    assert tables["ssl"].splitlines()[0] == "| row | MNIST 10/class | textures 5/class |"
    assert ('| supervised only (`unlabeled="ignore"`) | 0.730 ± 0.010 | 0.910 ± 0.010 |'
            in tables["ssl"].splitlines())
    assert "| FixMatch | **0.860 ± 0.010** | **0.930 ± 0.010** |" in tables["ssl"]
    assert "| MNIST 10/class | 1 | 0.740 | 0.840 | 0.870 |" in tables["ssl_seeds"]
    assert len(tables["ssl_seeds"].splitlines()) == 2 + 4
    assert tables["ssl_targets"].splitlines()[2:] == [
        ("| FixMatch ≥ supervised only + 0.05, MNIST 10/class | 0.860 vs 0.730 (+0.130; "
         "above on 2 of 2 seeds) | **met** |"),
        ("| FixMatch ≥ supervised only + 0.05, textures 5/class | 0.930 vs 0.910 (+0.020; "
         "above on 2 of 2 seeds) | **not met** |")]
    assert tables["mt"].splitlines()[2:] == ["| digit | 0.900 ± 0.010 | 0.890 ± 0.010 |",
                                             "| odd / even | 0.930 ± 0.010 | 0.950 ± 0.010 |"]
    assert tables["mt_targets"].splitlines()[2:] == [
        "| multi-task ≥ separate − 0.01, digit | 0.900 vs 0.890 | **met** |",
        "| multi-task ≥ separate − 0.01, odd / even | 0.930 vs 0.950 | **not met** |",
        ("| total fit time: the multi-task model < the separate ones (mean over seeds) | "
         "10.0 s vs 16.0 s | **met** |")]


def test_partial_labels_tables_of_one_part_and_of_a_smoke_run():
    records = [r for r in _partial_labels_records() if r["part"] == "ssl"]
    meta = {"runs": [{"quick": False}, {"quick": True}]}
    tables = report.partial_labels_tables(meta, records)
    assert set(tables) == {"ssl", "ssl_seeds", "ssl_targets"}
    assert "**met**" not in tables["ssl_targets"]
    assert tables["ssl_targets"].count("smoke run (--quick)") == 2


def _convergence_records():
    """Two seeds a cell, accuracies mean ± 0.01; LP-FT skipped, and a row
    with a --set parameter."""
    tabular = "digits 0-4 -> 5-9, 5/class"
    cells = {("MNIST 10/class", "images"): {"default": (0.85, 20.0),
                                            "exact probe": (0.71, 2.0),
                                            "fixed 10 epochs": (0.78, 5.5),
                                            "TransferFeatures + LR": (0.72, 2.5),
                                            "scratch": (0.75, 43.0)},
             (tabular, "tabular"): {"default": (0.81, 0.36), "exact probe": (0.61, 1.4),
                                    "fixed 10 epochs": (0.26, 0.03), "scratch": (0.88, 0.27)}}
    records = []
    for (target, kind), rows in cells.items():
        records.append({"part": "skipped", "target": target, "kind": kind, "row": "LP-FT",
                        "set": "", "seed": None, "reason": "skipped: x"})
        for row, (accuracy, seconds) in rows.items():
            for seed, delta in ((0, -0.01), (1, 0.01)):
                records.append({"part": "fit", "target": target, "kind": kind, "row": row,
                                "set": "", "seed": seed,
                                "test_accuracy": accuracy + delta, "fit_seconds": seconds,
                                "convergence_warnings": int(row == "scratch" and seed == 1),
                                "epochs": 10})
    for seed in (0, 1):
        records.append({"part": "fit", "target": tabular, "kind": "tabular",
                        "row": "default", "set": "lr=0.01", "seed": seed,
                        "test_accuracy": 0.95, "fit_seconds": 0.5,
                        "convergence_warnings": 0, "epochs": 30})
        records.append({"part": "source", "target": tabular, "kind": "tabular", "row": None,
                        "set": "", "seed": seed, "train_accuracy": 0.99})
    return records


def test_convergence_tables_from_records():
    tables = report.convergence_tables({}, _convergence_records())
    assert set(tables) == {"accuracy", "targets"}
    accuracy = tables["accuracy"].splitlines()
    assert accuracy[0] == "| config | MNIST 10/class | digits 0-4 → 5-9, 5/class |"
    assert accuracy[2:] == [
        "| default | **0.850 ± 0.010** (20.0 s) | 0.810 ± 0.010 (0.36 s) |",
        # a --set row is not a candidate for the bold best
        "| default (lr=0.01) | not run | 0.950 ± 0.000 (0.50 s) |",
        "| exact probe | 0.710 ± 0.010 (2.0 s) | 0.610 ± 0.010 (1.4 s) |",
        "| LP-FT | skipped | skipped |",
        "| fixed 10 epochs | 0.780 ± 0.010 (5.5 s) | 0.260 ± 0.010 (0.03 s) |",
        "| TransferFeatures + LR | 0.720 ± 0.010 (2.5 s) | n/a |",
        ("| scratch | 0.750 ± 0.010 (43.0 s; 1 of 2 fits warned) | **0.880 ± 0.010** "
         "(0.27 s; 1 of 2 fits warned) |")]
    assert tables["targets"].splitlines()[2:] == [
        ("| default + std ≥ best of {exact probe, features + LR, fixed 10 epochs} | "
         "**met** (0.850 + 0.010 vs fixed 10 epochs 0.780) | **met** (0.810 + "
         "0.010 vs exact probe 0.610) |"),
        ("| default ≥ scratch (tabular transfer) | n/a | **not met** (0.810 ± 0.010 vs "
         "0.880 ± 0.010) |"),
        "| exact probe ≥ features + LR − 0.01 | **met** (0.710 vs 0.720) | n/a |"]


def test_convergence_tables_of_a_partial_smoke_run():
    records = [{**r, "set": "max_epochs=2"} for r in _convergence_records()
               if r["part"] == "fit" and r["set"] == ""
               and r["target"] == "MNIST 10/class" and r["row"] != "scratch"]
    tables = report.convergence_tables({"quick": True}, records)
    assert tables["accuracy"].splitlines()[2] == (
        "| default (max_epochs=2) | **0.850 ± 0.010** (20.0 s) |")
    assert tables["targets"].splitlines()[2:] == [
        ("| default + std ≥ best of {exact probe, features + LR, fixed 10 epochs} | "
         "smoke run (--quick) (0.850 + 0.010 vs fixed 10 epochs 0.780) |"),
        "| default ≥ scratch (tabular transfer) | n/a |",
        "| exact probe ≥ features + LR − 0.01 | smoke run (--quick) (0.710 vs 0.720) |"]


def _text_fit(setting, target, row, seed, accuracy, seconds=1.0, epochs=None, warned=False,
              part="fit"):
    dataset, k = target.rsplit(" ", 1)
    return {"part": part, "setting": setting, "dataset": dataset,
            "k": int(k.split("/")[0]), "target": target, "row": row, "seed": seed,
            "test_accuracy": accuracy, "fit_seconds": seconds, "epochs": epochs,
            "warned": warned}


def _text_records():
    records = []
    for seed, delta in ((0, -0.01), (1, 0.01)):
        for target, ft, tfidf in (("BBC 10/class", 0.94, 0.92), ("RT 10/class", 0.62, 0.51),
                                  ("RT 50/class", 0.70, 0.65)):
            records += [
                _text_fit("default", target, "TF-IDF + LR", seed, tfidf + delta, 0.02),
                _text_fit("default", target, "MiniLM probe", seed, 0.60 + delta, 0.5, 0),
                _text_fit("default", target, "MiniLM fine-tune (default)", seed, ft + delta,
                          25.0, 50 if seed else 40, warned=seed == 1)]
        records.append(_text_fit("default", "RT unseen movies 10/class",
                                 "RT source, no target labels", seed, 0.76 + delta, 0.0,
                                 part="transfer"))
        records.append(_text_fit("default", "RT unseen movies 10/class",
                                 "RT source -> probe", seed, 0.75 + delta, 1.4, 0,
                                 part="transfer"))
        records.append({"part": "source", "setting": "default", "dataset": "RT source",
                        "seed": seed, "n_train": 400, "fit_seconds": 870.0 + seed,
                        "epochs": 30, "warned": False})
        records.append(_text_fit("n_test_rt=500 lr=0.001", "RT 10/class",
                                 "MiniLM fine-tune (default)", seed, 0.58, 20.0, 33))
        for loop, seconds in (("sktransfer", 27.0), ("hand", 28.0)):
            records.append({"part": "overhead", "setting": "n_train=256 epochs=3",
                            "loop": loop, "seed": seed + 1, "n_train": 256, "epochs": 3,
                            "fit_seconds": seconds + seed, "epoch_seconds": seconds - 2})
    records += [_text_fit("quick", "RT 10/class", row, 0, accuracy, 1.0, 3 if "tune" in row
                          else None) for row, accuracy in (("MiniLM fine-tune (default)", 0.43),
                                                           ("TF-IDF + LR", 0.61))]
    return records


def test_text_tables_from_records():
    tables = report.text_tables({}, _text_records())
    assert set(tables) == {"main", "seeds", "checks", "transfer", "source",
                           "n_test_rt500-lr0.001-main", "n_test_rt500-lr0.001-seeds",
                           "n_test_rt500-lr0.001-checks", "quick-main", "quick-seeds",
                           "quick-checks", "overhead", "overhead_targets"}
    main = tables["main"].splitlines()
    assert main[0] == ("| config | RT 10/class | RT 50/class | BBC 10/class | "
                       "fits with a ConvergenceWarning |")
    assert main[2] == ("| MiniLM fine-tune (default) | **0.620 ± 0.010** (25.0 s, 45 epochs) "
                       "| **0.700 ± 0.010** (25.0 s, 45 epochs) | **0.940 ± 0.010** (25.0 s, "
                       "45 epochs) | 3 of 6 |")
    assert main[3] == ("| MiniLM probe | 0.600 ± 0.010 (0.5 s) | 0.600 ± 0.010 (0.5 s) | "
                       "0.600 ± 0.010 (0.5 s) | 0 of 6 |")
    assert main[4].startswith("| TF-IDF + LR | 0.510 ± 0.010 (0.02 s) |")
    assert len(main) == 5  # no TransferFeatures + LR row was run
    assert "| RT 50/class | 1 | 0.710 | 0.610 | 0.660 |" in tables["seeds"]
    assert tables["checks"].splitlines()[2:] == [
        "| fine-tuned MiniLM ≥ TF-IDF + LR + 0.10, RT 10/class | 0.620 vs 0.510 + 0.10 | "
        "**met** |",
        "| fine-tuned MiniLM ≥ TF-IDF + LR + 0.10, RT 50/class | 0.700 vs 0.650 + 0.10 | "
        "**not met** |",
        "| fine-tuned MiniLM ≥ TF-IDF + LR + 0.10, BBC 10/class | 0.940 vs 0.920 + 0.10 | "
        "**not met** |",
        "| fine-tuned MiniLM ≥ TF-IDF + LR + 0.10, BBC 50/class | | not run (MiniLM "
        "fine-tune (default), TF-IDF + LR) |"]
    assert tables["transfer"].splitlines()[2:] == [
        "| RT source -> probe | 0.750 ± 0.010 (1.4 s) | 0 of 2 |",
        "| RT source, no target labels | **0.760 ± 0.010** | - |"]
    assert tables["source"].splitlines()[2:] == ["| 0 | 400 | 870 | 30 | no |",
                                                 "| 1 | 400 | 871 | 30 | no |"]
    assert tables["n_test_rt500-lr0.001-main"].splitlines()[2] == (
        "| MiniLM fine-tune (default) | 0.580 ± 0.000 (20.0 s, 33 epochs) | 0 of 2 |")
    quick = tables["quick-main"].splitlines()
    assert quick[2] == ("| MiniLM fine-tune (3 epochs, not the default budget) | 0.430 (1.0 s, "
                        "3 epochs) | 0 of 1 |")
    assert "smoke run (--quick)" in tables["quick-checks"]
    assert tables["overhead"].splitlines()[2:] == [
        "| `PretrainedClassifier.fit` | 27.00 | 27.50 | 25.00 | 28.4 |",
        "| hand-written loop | 28.00 | 28.50 | 26.00 | 27.4 |"]
    assert tables["overhead_targets"].splitlines()[2] == (
        "| sktransfer / hand-written loop <= 1.05, fastest runs | 0.964 (medians 0.965; epochs "
        "alone 0.962; repeats of one loop differ by up to x1.04) | **met** |")


def _gpu_throughput_records(device="NVIDIA H100 80GB HBM3", cuda="12.8", speeds=None):
    """Two repeats of each loop on each model: images/s as given, per repeat."""
    speeds = speeds or {("resnet50", "sktransfer"): (950.0, 1000.0),
                        ("resnet50", "hand_uint8"): (1000.0, 1050.0),
                        ("resnet50", "hand_per_image"): (400.0, 420.0),
                        ("mobilenet_v2", "sktransfer"): (2000.0, 2100.0),
                        ("mobilenet_v2", "hand_uint8"): (2500.0, 2600.0),
                        ("mobilenet_v2", "hand_per_image"): (900.0, 950.0)}
    return [{"model": model, "loop": loop, "repeat": repeat, "seed": 0, "device_name": device,
             "cuda": cuda, "cudnn": 91000 if cuda else None, "image_size": 224,
             "batch_size": 64, "steps": 100, "images": 6400, "seconds": 6400 / speed,
             "images_per_second": speed, "precision": "bf16" if cuda else "32",
             "channels_last": bool(cuda)}
            for (model, loop), pair in speeds.items() for repeat, speed in enumerate(pair)]


def test_gpu_throughput_tables_from_records():
    tables = report.gpu_throughput_tables({"quick": False}, _gpu_throughput_records())
    assert set(tables) == {"main", "targets"}
    main = tables["main"].splitlines()
    assert main[0] == ("| device | model | loop | precision / layout | images/s (median) | "
                       "ratio to hand-tuned |")
    assert len(main) == 2 + 6
    assert main[2] == ("| NVIDIA H100 80GB HBM3 | resnet50 | `PretrainedClassifier.fit` | bf16, "
                       "channels_last=True | 975.0 | 0.951 |")
    assert ("| NVIDIA H100 80GB HBM3 | mobilenet_v2 | hand-tuned, per-image CPU preprocessing "
            "(diagnostic) | bf16, channels_last=True | 925.0 | 0.363 |") in main
    assert tables["targets"].splitlines()[2:] == [
        ("| resnet50 on NVIDIA H100 80GB HBM3: sktransfer / hand-tuned >= 0.9, medians | 0.951 "
         "(fastest runs: 0.952; repeats of one loop differ by up to x1.05) | **met** |"),
        ("| mobilenet_v2 on NVIDIA H100 80GB HBM3: sktransfer / hand-tuned >= 0.9, medians | "
         "0.804 (fastest runs: 0.808; repeats of one loop differ by up to x1.06) | "
         "**not met** |")]


def test_gpu_throughput_tables_of_a_cpu_run_and_a_smoke_run():
    records = _gpu_throughput_records() + _gpu_throughput_records(device="CPU (AMD EPYC, 1 thread)",
                                                                  cuda=None)
    tables = report.gpu_throughput_tables({}, records)
    targets = tables["targets"].splitlines()[2:]
    assert len(targets) == 4
    assert targets[0].endswith("| **met** |")
    assert targets[2].startswith("| resnet50 on CPU (AMD EPYC, 1 thread): ")
    assert targets[2].endswith("| CPU run: the target is for a GPU |")
    assert "| CPU (AMD EPYC, 1 thread) | resnet50 | `PretrainedClassifier.fit` | 32, " \
        "channels_last=False | 975.0 | 0.951 |" in tables["main"]
    # a setting that differs names the settings of each device's rows
    mixed = records + [{**r, "device_name": "NVIDIA H100 80GB HBM3", "image_size": 64}
                       for r in _gpu_throughput_records()]
    assert "| NVIDIA H100 80GB HBM3 (64 px, batch 64, 100 steps) | resnet50 |" in \
        report.gpu_throughput_tables({}, mixed)["main"]
    smoke = report.gpu_throughput_tables({"runs": [{"quick": True}]}, records)["targets"]
    assert smoke.count("smoke run (--quick)") == 4


def _scale_out_records():
    """Serial, loky, Dask and two Ray searches of 2 candidates x 2 folds (Dask's
    second candidate scored apart), and the data-parallel fits."""
    params = [{"backbone__image_size": 32, "probe_alpha": 0.1},
              {"backbone__image_size": 48, "probe_alpha": 0.1}]
    searches = {("serial", None): (20.0, None, 0), ("loky", None): (10.0, 2.0, 0),
                ("dask", None): (12.0, 3.0, 0), ("ray", 15): (50.0, 1.5, 0),
                ("ray", 0): (11.0, 1.4, 1)}
    records = []
    for (backend, niceness), (seconds, startup, run) in searches.items():
        which = {"backend": backend, "ray_niceness": niceness, "seed": 0, "run": run}
        records.append({"part": "search", **which, "seconds": seconds,
                        "startup_seconds": startup, "fits": 4, "threads": "1",
                        "computed": 200 if backend != "loky" else 230,
                        "repeats": 1 if backend != "loky" else 2, "lookups": 400})
        for i, (param, scores) in enumerate(zip(params, ([0.8, 0.9], [0.9, 0.95]))):
            if backend == "dask" and i == 1:
                scores = [0.9, 0.9500001]
            records.append({"part": "candidate", **which, "candidate": i, "params": param,
                            "fold_scores": scores, "mean_test_score": sum(scores) / len(scores),
                            "rank": 2 - i})
    for task, max_epochs, epochs in (("mlp", "auto", 16), ("mobilenet", 5, 5)):
        for processes, threads, wall, accuracy in ((1, 2, 10.0, 0.91), (2, 1, 6.0, 0.90)):
            records.append({"part": "ddp", "task": task, "processes": processes,
                            "threads": threads, "wall": wall, "accuracy": accuracy,
                            "epochs": epochs, "max_epochs": max_epochs, "n_train": 2000,
                            "n_test": 1000, "seed": 0, "cpus": 2, "run": 0})
    return records


def test_scale_out_tables_from_records():
    tables = report.scale_out_tables({}, _scale_out_records())
    assert set(tables) == {"main", "ddp"}
    main = tables["main"].splitlines()
    assert main[0] == ("| backend | start-up (s) | search (s) | s/fit | overhead/fit vs loky (s) "
                       "| torch threads/fit | best CV acc | best params | scores = serial | "
                       "activations computed | cache hits |")
    assert main[2:] == [
        ("| serial (run 1) | | 20.0 | 5.00 | | 1 | 0.9250 | backbone__image_size=48, "
         "probe_alpha=0.1 | (reference) | 200 | 200 |"),
        ("| loky (`n_jobs=2`) (run 1) | 2.0 | 10.0 | 2.50 | | 1 | 0.9250 | "
         "backbone__image_size=48, probe_alpha=0.1 | yes, bit for bit | 230 (an image at most "
         "2x) | 170 |"),
        ("| Dask (2 workers) (run 1) | 3.0 | 12.0 | 3.00 | +0.500 | 1 | 0.9250 | "
         "backbone__image_size=48, probe_alpha=0.1 | NO (max diff 5.00e-08) | 200 | 200 |"),
        ("| Ray (2 CPUs), Ray's default niceness 15 (run 1) | 1.5 | 50.0 | 12.50 | +10.000 | 1 "
         "| 0.9250 | backbone__image_size=48, probe_alpha=0.1 | yes, bit for bit | 200 | 200 |"),
        ("| Ray (2 CPUs), `--ray-niceness 0` (run 2) | 1.4 | 11.0 | 2.75 | +0.250 | 1 | 0.9250 "
         "| backbone__image_size=48, probe_alpha=0.1 | yes, bit for bit | 200 | 200 |")]
    assert tables["ddp"].splitlines()[2:] == [
        "| MLP on MNIST pixels, defaults | 1 x 2 | 10.0 | 16 | 0.910 |",
        "| MLP on MNIST pixels, defaults | 2 x 1 (torchrun, DDP) | 6.0 | 16 | 0.900 |",
        "| MLP on MNIST pixels, defaults | 2 vs 1 | 0.60x | | -0.010 |",
        "| MobileNetV2 ImageNet, 32 px, whole network, 5 epochs | 1 x 2 | 10.0 | 5 | 0.910 |",
        ("| MobileNetV2 ImageNet, 32 px, whole network, 5 epochs | 2 x 1 (torchrun, DDP) | 6.0 "
         "| 5 | 0.900 |"),
        "| MobileNetV2 ImageNet, 32 px, whole network, 5 epochs | 2 vs 1 | 0.60x | | -0.010 |"]


def test_scale_out_tables_of_one_run_without_the_data_parallel_fits():
    records = [{k: v for k, v in r.items() if k != "run"} for r in _scale_out_records()
               if r["part"] != "ddp" and r.get("ray_niceness") != 0]
    tables = report.scale_out_tables({}, records)
    assert set(tables) == {"main"}
    assert "(run " not in tables["main"]
    assert "| serial | | 20.0 | 5.00 |" in tables["main"]
    # a serial search stored after the others (an appended run) is still the first row
    rerun = [r for r in records if r["backend"] != "serial"] + [
        {**r, "seconds": 30.0} for r in records if r["backend"] == "serial"]
    assert report.scale_out_tables({}, rerun)["main"].splitlines()[2].startswith(
        "| serial | | 30.0 | 7.50 |")
    without_serial = [r for r in records if r["backend"] != "serial"]
    assert "| no serial search |" in report.scale_out_tables({}, without_serial)["main"]


def test_store_appends_with_the_key_and_keeps_smoke_runs_out_of_the_default_file(
        tmp_path, monkeypatch):
    """The scripts' ``--out`` / ``--append`` and their one ``store`` call:
    an appended run replaces the stored records of its key; a ``--quick``
    run left at the default path writes nothing."""
    import argparse

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    common = _load("_common")
    default = tmp_path / "default.json"
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    common.add_results_options(parser, str(default), "k")
    assert "same k" in parser.format_help()
    key = lambda r: r["k"]  # noqa: E731
    run = {"date": "2026-01-01T00:00Z", "command": "python x.py"}

    common.store(parser.parse_args(["--quick"]), str(default), run, [{"k": 1}], key)
    assert not default.exists()
    common.store(parser.parse_args([]), str(default), run,
                 [{"k": 1, "v": "old"}, {"k": 2, "v": "old"}], key)
    rerun = {"date": "2026-01-02T00:00Z", "command": "python x.py --k 2"}
    args = parser.parse_args(["--append"])
    assert [r["v"] for r in common.combined(args, rerun, [{"k": 2, "v": "new"}], key)[1]] \
        == ["old", "new"]
    common.store(args, str(default), rerun, [{"k": 2, "v": "new"}], key,
                 order=lambda records: sorted(records, key=lambda r: -r["k"]))
    meta, records = json.loads(default.read_text()).values()
    assert [(r["k"], r["v"]) for r in records] == [(2, "new"), (1, "old")]
    assert len(meta["runs"]) == 2
    # without --append the file holds this run alone
    common.store(parser.parse_args([]), str(default), rerun, [{"k": 3, "v": "new"}], key)
    assert [r["k"] for r in json.loads(default.read_text())["records"]] == [3]


def test_demo_table_gives_each_model_and_the_transfer_gain():
    records = [{"model": "ImageNet pretrained", "test_accuracy": 0.97, "fit_seconds": 8.81,
                "epochs": 6},
               {"model": "random init", "test_accuracy": 0.5, "fit_seconds": 7.2, "epochs": 6}]
    table = report.demo_tables({}, records)["main"]
    assert table.splitlines()[2:4] == ["| ImageNet pretrained | 0.970 | 8.8 | 6 |",
                                       "| random init | 0.500 | 7.2 | 6 |"]
    assert table.endswith("Transfer gain: +0.470 accuracy over random initialisation.")
    assert "gain" not in report.demo_tables({}, records[:1])["main"]


def test_adaptation_rows_fitted_with_parameters_set_stay_out_of_the_scorers_and_targets():
    def row(label, seed, acc, score, method="MMD", **extra):
        return {"pair": "digits-mnist", "seed": seed, "row": label, "method": method,
                "strength": 1.0, "test_accuracy": acc, "score_IWV": score, **extra}

    records = []
    for seed in (0, 1):
        records += [row("source only", seed, 0.60, 0.5, method=None),
                    row("MMD", seed, 0.70, 0.6), row("CORAL", seed, 0.65, 0.7),
                    row("MMD (lr_schedule='constant')", seed, 0.90, 0.9,
                        set={"lr_schedule": "constant"})]
    tables = report.adaptation_tables({}, records)
    accuracy = tables["accuracy"]
    assert "| MMD (lr_schedule='constant') | 0.900 ± 0.000 (n=2) |" in accuracy
    # the scorer chooses CORAL among the two rows at the script's settings,
    # not the set row it scores highest
    assert "| digits → MNIST | IWV | adapted settings | -1.00 | 0.650 | 0.700 |" \
        in tables["scorers"]
    assert "MMD 0.700 vs 0.600" in tables["targets"]


@pytest.mark.slow
def test_auto_benchmark_appends_per_target_seed_and_model(tmp_path, monkeypatch):
    """benchmarks/auto.py --append: a run of some comparisons (the grid
    alone, say) replaces the stored rows of those models for its (target,
    seed) and keeps the others', so a long search can be added later."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    auto = _load("auto")
    path = tmp_path / "auto.json"

    def row(model, score, seed=0):
        return {"target": "MNIST 10/class", "seed": seed, "model": model,
                "test_score": score, "seconds": 1.0, "budget": 60.0, "error": None}

    first = {"date": "2026-01-01T00:00Z", "command": "python auto.py"}
    auto.store(path, first, [row(auto.AUTO, 0.8), row(auto.GRID, 0.7), row(auto.AUTO, 0.9, 1)],
               append=False)
    later = {"date": "2026-01-02T00:00Z", "command": "python auto.py --skip auto --append"}
    auto.store(path, later, [row(auto.GRID, 0.85)], append=True)
    meta, records = json.loads(path.read_text()).values()
    assert sorted((r["seed"], r["model"], r["test_score"], r["run"]) for r in records) == sorted(
        [(0, auto.AUTO, 0.8, 0), (0, auto.GRID, 0.85, 1), (1, auto.AUTO, 0.9, 0)])
    assert [run["command"] for run in meta["runs"]] == [first["command"], later["command"]]
