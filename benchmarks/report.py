"""The tables of ``benchmarks/README.md``, generated from ``benchmarks/results/*.json``.

A generated table sits in the README between two markers::

    <!-- table: linear_transfer/main -->
    ...
    <!-- end table -->

The name before the slash is the results file (``benchmarks/results/<name>.json``),
the one after it a table of ``TABLES[name]``; ``<name>/meta`` is the run's
date, commit, machine, versions and command. Nothing here imports torch.

    python benchmarks/report.py            # rewrite the README's generated tables
    python benchmarks/report.py --check    # exit 1, naming each table that differs
"""

from __future__ import annotations

import argparse
import importlib.util
import pathlib
import re
import statistics
import sys

import numpy as np

# _results by its path, so that the test suite can load this module without
# putting benchmarks/ on sys.path
_spec = importlib.util.spec_from_file_location(
    "_results", pathlib.Path(__file__).resolve().with_name("_results.py"))
_results = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_results)
RESULTS, ROOT, read_results = _results.RESULTS, _results.ROOT, _results.read_results

README = ROOT / "benchmarks" / "README.md"
MARKED = re.compile(r"(<!-- table: (?P<name>[\w./-]+) -->\n)(?P<body>.*?)(<!-- end table -->)",
                    re.DOTALL)


def markdown_table(headers, rows) -> str:
    def line(cells):
        return "|" + "|".join(f" {cell} " if str(cell) else " " for cell in cells) + "|"

    return "\n".join([line(headers), "|" + " --- |" * len(headers), *map(line, rows)])


def _met(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


# -- meta ------------------------------------------------------------------------------------


def _when(date: str) -> str:
    return date.replace("T", " ").replace("Z", " UTC")


def meta_block(name: str, meta: dict) -> str:
    """Where the stored numbers come from: commands, dates, commit, machine, versions."""
    runs = meta.get("runs", [meta])
    dates = sorted(run["date"] for run in runs)
    when = _when(dates[0]) if dates[0] == dates[-1] else \
        f"{_when(dates[0]).removesuffix(' UTC')} - {_when(dates[-1])}"
    commits = list(dict.fromkeys(run.get("commit") for run in runs))
    guessed = [i + 1 for i, run in enumerate(runs)
               if "commit" in {**meta.get("reconstructed", {}), **run.get("reconstructed", {})}]
    commit = ", ".join(c[:10] if c else "unknown" for c in commits)
    if guessed:
        which = "" if len(guessed) == len(runs) else \
            f"run{'s' if len(guessed) > 1 else ''} {', '.join(map(str, guessed))}: "
        commit += f" ({which}not recorded by the run: the commit that stored the file)"
    elif any(run.get("dirty") for run in runs):
        commit += " with uncommitted changes"
    machine = meta["machine"]
    gpu = ", ".join(machine["gpu"]) if machine.get("gpu") else "no GPU"
    versions = ", ".join(f"{lib} {v}" for lib, v in meta["versions"].items() if v)
    missing = [lib for lib, v in meta["versions"].items() if not v]
    lines = [f"Stored in `benchmarks/results/{name}.json`: measured {when}, commit {commit}; "
             f"{machine['cpu']}, {machine['cores']} cores, {gpu}; {versions}"
             + (f" ({', '.join(missing)} not recorded)" if missing else "") + ".", "",
             "```bash"]
    for i, run in enumerate(runs):
        note = f"  # run {i + 1}, {_when(run['date'])}" if len(runs) > 1 else ""
        lines.append(run["command"] + note)
    if len(runs) > 1 and meta.get("command"):
        lines.append(meta["command"] + "  # the runs combined")
    lines.append("```")
    return "\n".join(lines)


# -- adaptation ------------------------------------------------------------------------------

PAIRS = {"digits-mnist": "digits → MNIST", "mnist-digits": "MNIST → digits",
         "mnist-mnistm": "MNIST → MNIST-M"}


def _spearman(a, b) -> float:
    from scipy.stats import spearmanr

    return spearmanr(a, b).statistic


def _accuracy_rows(records, column, columns, labels, cell, bold=()) -> list:
    """One row per label (the records' ``"row"``), one cell per value of
    ``column``: ``cell(the label's records there, bold)``, "not run" where
    there are none; ``bold`` is true for the label of ``bold`` with the
    highest mean test accuracy in the column."""
    best = {}
    for value in columns:
        means = _mean_accuracies(records, column, value)
        candidates = [label for label in bold if label in means]
        best[value] = max(candidates, key=means.get) if candidates else None
    rows = []
    for label in labels:
        cells = []
        for value in columns:
            group = [r for r in records if r[column] == value and r["row"] == label]
            cells.append(cell(group, label == best[value]) if group else "not run")
        rows.append([label, *cells])
    return rows


def _mean_accuracies(records, column, value) -> dict:
    """``{row: mean test accuracy}`` of the records whose ``column`` is ``value``."""
    accuracies = {}
    for r in records:
        if r[column] == value:
            accuracies.setdefault(r["row"], []).append(r["test_accuracy"])
    return {label: float(np.mean(acc)) for label, acc in accuracies.items()}


def _adapted_vs(means: dict, adapted, margin: float, verdict=_met, gap=False) -> tuple:
    """The cells of "the best of ``adapted`` >= source only + ``margin``" and
    "the best of ``adapted`` >= skada's best row" (rows named "skada ...")
    from one pair's ``{row: mean test accuracy}``; ``gap`` adds the gain
    over source only to a target not met."""
    best = max((label for label in means if label in adapted), key=means.get, default=None)
    if best is None or "source only" not in means:
        return "not run", "not run"
    base = means["source only"]
    ok = means[best] >= base + margin
    over_source = (f"{verdict(ok)} ({best} {means[best]:.3f} vs {base:.3f}"
                   + (f": {means[best] - base:+.3f}" if gap and not ok else "") + ")")
    rivals = [label for label in means if label.startswith("skada ")]
    rival = max(rivals, key=means.get) if rivals else None
    over_skada = ("not run" if rival is None else
                  f"{verdict(means[best] >= means[rival])} ({means[best]:.3f} vs "
                  f"{rival.removeprefix('skada ')} {means[rival]:.3f})")
    return over_source, over_skada


def adaptation_tables(meta: dict, records: list) -> dict:
    """Accuracy per row and pair, the scorers' rankings, and the targets.
    Rows fitted with parameters set (``--set``: a ``set`` field) appear in
    the accuracy table only: the scorers choose among, and the targets
    judge, the rows at the script's settings."""
    pairs = sorted({r["pair"] for r in records})
    labels = list(dict.fromkeys(r["row"] for r in records))
    table_records, records = records, [r for r in records if not r.get("set")]
    scorers = list(dict.fromkeys(k.removeprefix("score_") for r in records for k in r
                                 if k.startswith("score_")))

    def cell(group, bold):
        acc = [r["test_accuracy"] for r in group]
        return f"{np.mean(acc):.3f} ± {np.std(acc):.3f} (n={len(acc)})"

    rows = _accuracy_rows(table_records, "pair", pairs, labels, cell)
    tables = {"accuracy": markdown_table(["row", *(PAIRS.get(p, p) for p in pairs)], rows)}

    rows, gaps = [], {}
    for pair in pairs:
        seeds = sorted({r["seed"] for r in records if r["pair"] == pair})
        for name in scorers:
            for pool_name, adapted_only in (("adapted settings", True),
                                            ("with source only", False)):
                rhos, chosen, best = [], [], []
                for seed in seeds:
                    pool = [r for r in records if r["pair"] == pair and r["seed"] == seed
                            and f"score_{name}" in r
                            and not (adapted_only and r["row"] == "source only")]
                    if len(pool) < 2:  # a run of skada's rows only
                        continue
                    scores = [r[f"score_{name}"] for r in pool]
                    acc = [r["test_accuracy"] for r in pool]
                    rhos.append(_spearman(scores, acc))
                    chosen.append(acc[int(np.argmax(scores))])
                    best.append(max(acc))
                if not best:
                    continue
                if adapted_only:  # what AutoAdaptation chooses among by default
                    gaps[(pair, name)] = np.mean(best) - np.mean(chosen)
                rows.append([PAIRS.get(pair, pair), name, pool_name, f"{np.nanmean(rhos):.2f}",
                             f"{np.mean(chosen):.3f}", f"{np.mean(best):.3f}"])
    tables["scorers"] = markdown_table(
        ["pair", "scorer", "pool", "Spearman with target accuracy (mean over seeds)",
         "chosen setting's accuracy", "best setting's accuracy (target labels)"], rows)

    defaults = {r["row"] for r in records if r.get("method") and r.get("strength") == 1.0}
    judged = [p for p in pairs if all((p, name) in gaps for name in scorers)]
    over_source, over_skada = zip(*(_adapted_vs(_mean_accuracies(records, "pair", pair),
                                                 defaults, 0.03) for pair in judged)) \
        if judged else ((), ())
    rows = [["best default method ≥ source only + 0.03", *over_source],
            ["best default method ≥ skada's best", *over_skada]]
    for name in scorers:
        cells = []
        for pair in judged:
            gap = gaps[(pair, name)]
            cells.append(f"{_met(gap <= 0.01)} ({gap:.3f}{' below' if gap > 0.01 else ''})")
        rows.append([f"{name}-chosen setting within 0.01 of the best (adapted settings)",
                     *cells])
    if scorers and judged:
        within = {name: sum(gaps[(pair, name)] <= 0.01 for pair in judged)
                  for name in scorers}
        top = max(within, key=within.get)
        rows.append([f"a scorer within 0.01 on at least 2 of {len(judged)} pairs",
                     f"{_met(within[top] >= 2)} ({top}: {within[top]} of {len(judged)})",
                     *([""] * (len(judged) - 1))])
    tables["targets"] = markdown_table(["target", *(PAIRS.get(p, p) for p in judged)], rows)
    return tables


# -- partial_labels --------------------------------------------------------------------------

PARTIAL_DA_MARGIN = 0.05  # the best of CORAL / MMD / DANN over source only, at least
PARTIAL_SSL_MARGIN = 0.05  # FixMatch over supervised only, at least
PARTIAL_MT_TOLERANCE = 0.01  # the multi-task model below the separate ones, per task, at most
UPPER_BOUND = "target labeled (upper bound)"
SSL_LABELS = {"supervised only": 'supervised only (`unlabeled="ignore"`)'}
MT_LABELS = {"odd/even": "odd / even"}


def _smoke_or_met(meta: dict):
    """``_met``, or a smoke run's note where a run of ``meta`` was ``--quick``."""
    if any(run.get("quick") for run in meta.get("runs", [meta])):
        return lambda ok: "smoke run (--quick)"
    return _met


def _bold_mean_std(group, bold) -> str:
    text = _mean_std([r["test_accuracy"] for r in group])
    return f"**{text}**" if bold else text


def _partial_da_tables(records: list, verdict) -> dict:
    pairs = list(dict.fromkeys(r["pair"] for r in records))
    labels = list(dict.fromkeys(r["row"] for r in records))
    ours = {r["row"] for r in records if r.get("method")}
    headers = [PAIRS.get(p, p) for p in pairs]

    def cell(group, bold):
        return f"{_bold_mean_std(group, bold)} ({np.mean([r['fit_seconds'] for r in group]):.1f} s)"

    rows = _accuracy_rows(records, "pair", pairs, labels, cell,
                          bold=[label for label in labels if label != UPPER_BOUND])
    over_source, over_skada = zip(*(_adapted_vs(_mean_accuracies(records, "pair", pair), ours,
                                                PARTIAL_DA_MARGIN, verdict, gap=True)
                                    for pair in pairs))
    return {"da": markdown_table(["row", *headers], rows),
            "da_targets": markdown_table(["target", *headers], [
                [f"best DA ≥ source only + {PARTIAL_DA_MARGIN}", *over_source],
                ["best DA ≥ skada's best", *over_skada]])}


def _partial_ssl_tables(records: list, verdict) -> dict:
    targets = list(dict.fromkeys(r["target"] for r in records))
    labels = list(dict.fromkeys(r["row"] for r in records))
    rows = _accuracy_rows(records, "target", targets, labels, _bold_mean_std, bold=labels)
    tables = {"ssl": markdown_table(["row", *targets],
                                    [[SSL_LABELS.get(row[0], row[0]), *row[1:]]
                                     for row in rows])}
    by_seed = {}  # (target, seed) -> {row: test accuracy}
    for r in records:
        by_seed.setdefault((r["target"], r["seed"]), {})[r["row"]] = r["test_accuracy"]
    tables["ssl_seeds"] = markdown_table(["target", "seed", *labels], [
        [target, seed, *(f"{acc[label]:.3f}" if label in acc else "not run"
                         for label in labels)]
        for (target, seed), acc in sorted(by_seed.items(), key=lambda item: (
            targets.index(item[0][0]), item[0][1]))])
    rows = []
    for target in targets:
        means = _mean_accuracies(records, "target", target)
        if "FixMatch" not in means or "supervised only" not in means:
            continue
        fixmatch, base = means["FixMatch"], means["supervised only"]
        paired = [acc for (t, _), acc in by_seed.items() if t == target
                  and {"FixMatch", "supervised only"} <= set(acc)]
        above = sum(acc["FixMatch"] > acc["supervised only"] for acc in paired)
        measured = (f"{fixmatch:.3f} vs {base:.3f} ({fixmatch - base:+.3f}; above on {above} "
                    f"of {len(paired)} seeds)")
        rows.append([f"FixMatch ≥ supervised only + {PARTIAL_SSL_MARGIN}, {target}", measured,
                     verdict(fixmatch >= base + PARTIAL_SSL_MARGIN)])
    tables["ssl_targets"] = markdown_table(["target", "measured", "met"], rows)
    return tables


def _partial_mt_tables(records: list, verdict) -> dict:
    tasks = list(dict.fromkeys(task for r in records for task in r["tasks"]))

    def accuracy(row, task):
        return [r["test_accuracy"][task] for r in records
                if r["row"] == row and task in r["tasks"]]

    main = markdown_table(["task", "multi-task", "separate models"], [
        [MT_LABELS.get(task, task), _mean_std(accuracy("multi-task", task)),
         _mean_std(accuracy("separate", task))] for task in tasks])
    rows = []
    for task in tasks:
        joint, alone = accuracy("multi-task", task), accuracy("separate", task)
        if joint and alone:
            joint, alone = np.mean(joint), np.mean(alone)
            label = MT_LABELS.get(task, task)
            rows.append([f"multi-task ≥ separate − {PARTIAL_MT_TOLERANCE}, {label}",
                         f"{joint:.3f} vs {alone:.3f}",
                         verdict(joint >= alone - PARTIAL_MT_TOLERANCE)])

    def seconds(row, seed):  # a seed's fits of the row, in total
        return sum(r["fit_seconds"] for r in records if r["row"] == row and r["seed"] == seed)

    seeds = sorted({r["seed"] for r in records if r["row"] == "multi-task"}
                   & {r["seed"] for r in records if r["row"] == "separate"})
    if seeds:
        joint = np.mean([seconds("multi-task", seed) for seed in seeds])
        alone = np.mean([seconds("separate", seed) for seed in seeds])
        rows.append([("total fit time: the multi-task model < the separate ones (mean over "
                      "seeds)"), f"{joint:.1f} s vs {alone:.1f} s", verdict(joint < alone)])
    return {"mt": main, "mt_targets": markdown_table(["target", "measured", "met"], rows)}


def partial_labels_tables(meta: dict, records: list) -> dict:
    """Domain adaptation: each row's target test accuracy and fit seconds per
    direction, the targets; semi-supervised: each row's test accuracy per
    target, per seed, the targets; multi-task: per-task test accuracy of the
    multi-task model and the separate ones, the targets. A part without
    records has no tables."""
    verdict = _smoke_or_met(meta)
    tables = {}
    for part, make in (("da", _partial_da_tables), ("ssl", _partial_ssl_tables),
                       ("mt", _partial_mt_tables)):
        part_records = [r for r in records if r["part"] == part]
        if part_records:
            tables.update(make(part_records, verdict))
    return tables


# -- linear_transfer --------------------------------------------------------------------------

TOLERANCE = 0.005  # Transfer...CV within this of the best other row
LINEAR_ROWS = ("target only", "source only", "pooled", "warm start", "Transfer...CV")
EVIDENCE = "Transfer...CV (evidence)"  # regression only: TransferRidgeCV(criterion="evidence")


def linear_transfer_summary(records: list) -> tuple[str, dict]:
    """Per dataset and size, mean ± std over seeds of each row's score; the targets."""
    methods = list(LINEAR_ROWS)
    others = [m for m in methods if m != "Transfer...CV"]
    rows, verdicts = [], {}
    for dataset in dict.fromkeys(r["dataset"] for r in records):
        ok_best, gains, ratios = True, {}, []
        for n in dict.fromkeys(r["n"] for r in records if r["dataset"] == dataset):
            cells = [r for r in records if r["dataset"] == dataset and r["n"] == n]
            means = {m: statistics.mean(c[m]["score"] for c in cells) for m in methods}
            stds = {m: statistics.pstdev(c[m]["score"] for c in cells) for m in methods}
            margin = means["Transfer...CV"] - max(means[m] for m in others)
            gains[n] = means["Transfer...CV"] - means["target only"]
            ratio = statistics.median(c["Transfer...CV"]["seconds"] / c["target only"]["seconds"]
                                      for c in cells)
            ok_best &= margin >= -TOLERANCE
            ratios.append(ratio)
            rows.append([dataset, n, *(f"{means[m]:.3f} ± {stds[m]:.3f}" for m in methods),
                         f"{margin:+.3f}", f"{gains[n]:+.3f}", f"{ratio:.2f}x"])
        verdicts[dataset] = {"within_0.005_of_best_everywhere": bool(ok_best),
                             "gain_over_target_only_at_smallest": gains[min(gains)],
                             "median_cost_ratio": statistics.median(ratios)}
    table = markdown_table(["dataset", "n", *methods, "Transfer...CV − best other",
                            "− target only", "cost vs target-only CV"], rows)
    return table, verdicts


def linear_transfer_evidence(records: list) -> str:
    """The regression cells: ``TransferRidgeCV`` choosing by leave-one-out
    and by evidence, against the best row that is neither."""
    rows = []
    for dataset in dict.fromkeys(r["dataset"] for r in records if EVIDENCE in r):
        for n in dict.fromkeys(r["n"] for r in records if r["dataset"] == dataset):
            cells = [r for r in records if r["dataset"] == dataset and r["n"] == n]
            means = {m: statistics.mean(c[m]["score"] for c in cells)
                     for m in (*LINEAR_ROWS, EVIDENCE)}
            stds = {m: statistics.pstdev(c[m]["score"] for c in cells)
                    for m in ("Transfer...CV", EVIDENCE)}
            best = max(means[m] for m in LINEAR_ROWS if m != "Transfer...CV")
            rows.append([dataset, n, *(f"{means[m]:.3f} ± {stds[m]:.3f}"
                                       for m in ("Transfer...CV", EVIDENCE)),
                         f"{best:.3f}", f"{means[EVIDENCE] - best:+.3f}",
                         f"{means[EVIDENCE] - means['Transfer...CV']:+.3f}"])
    return markdown_table(["dataset", "n", "leave-one-out (the default)", "evidence",
                           "best other row", "evidence − best other",
                           "evidence − leave-one-out"], rows)


def linear_transfer_tables(meta: dict, records: list) -> dict:
    tables = {"main": linear_transfer_summary(records)[0]}
    if any(EVIDENCE in r for r in records):
        tables["evidence"] = linear_transfer_evidence(records)
    return tables


# -- distillation -----------------------------------------------------------------------------

THREADS = ("1", "2")
RETENTION, LATENCY = 0.97, 1 / 3


def _target(record: dict) -> str:
    if "target_met" not in record:
        return ""
    if record["target_met"]:
        return "**yes**"
    missed = [what for what, ok in (
        ("accuracy", record["retention"] >= RETENTION),
        ("latency", all(r <= LATENCY for r in record["latency_ratio"].values()))) if not ok]
    return f"NO ({', '.join(missed)})"


def distillation_table(records: list) -> str:
    """One row per model: accuracy, retention, agreement, batch-64 latency, the target."""
    several = len({r.get("run", 0) for r in records}) > 1
    rows = []
    for r in records:
        ratio = r.get("latency_ratio")
        rows.append([
            *([r.get("run", 0) + 1] if several else []), r["model"], f"{r['accuracy']:.3f}",
            f"{r['retention']:.1%}".replace("%", " %") if "retention" in r else "",
            f"{r['agreement_with_teacher']:.3f}" if "agreement_with_teacher" in r else "",
            *(f"{r['latency_batch64'][t]['median'] * 1e3:.1f}" for t in THREADS),
            " / ".join(f"{ratio[t]:.2f}" for t in THREADS) if ratio else "",
            _target(r)])
    return markdown_table([*(["run"] if several else []), "model", "accuracy", "of teacher's",
                           "agrees with teacher", "ms @1 thr", "ms @2 thr",
                           "latency ratio (1 / 2 thr)", "target met"], rows)


def distillation_tables(meta: dict, records: list) -> dict:
    parts = dict.fromkeys(r["part"] for r in records)
    return {part: distillation_table([r for r in records if r["part"] == part])
            for part in parts}


# -- inspection -------------------------------------------------------------------------------

GRADCAM, IG, GXI = "gradcam", "integrated_gradients", "gradient_x_input"


def inspection_tables(meta: dict, records: list) -> dict:
    parts = {r["part"]: r for r in records}
    tables = {"images": _image_attribution_table(parts["images"])}
    if "text" in parts:
        tables["text"] = _text_attribution_table(parts["text"])
    tables["table"] = _table_attribution_table(parts["table"])
    return tables


def _peak_row(label: str, *methods) -> list:
    """The row of the methods' peak memory during ``attribute`` (above the
    process's level when the call began), when the run measured it."""
    if not all("peak_mb" in m for m in methods):
        return []
    return [[label, *(f"{m['peak_mb']:.0f}" for m in methods), "—"]]


def _image_attribution_table(images: dict) -> str:
    g, ig = images[GRADCAM], images[IG]
    corr_ok = g["sanity_full"] <= 0.2 and ig["sanity_full"] <= 0.2
    rows = [
        [f"pointing game, {images['n_test']} images", f"{g['pointing']:.3f}",
         f"{ig['pointing']:.3f}",
         f"Grad-CAM ≥ 0.8: {'met' if g['pointing'] >= 0.8 else '**not met**'}"],
        [f"correlation after full randomisation ({images['n_sanity']} images, absolute)",
         f"{g['sanity_full']:.3f}", f"{ig['sanity_full']:.3f}",
         f"≤ 0.2: {'met' if corr_ok else '**not met**'}"],
        ["seconds per image", f"{g['s_per_image']:.2g}", f"{ig['s_per_image']:.2g}", "—"],
        *_peak_row(f"peak memory of attribute() on {images['n_test']} images, MB", g, ig)]
    title = f"figure (test accuracy {images['test_accuracy']:.3f})" \
        if "test_accuracy" in images else "figure"
    return markdown_table([title, "Grad-CAM", f"Integrated Gradients ({ig['n_steps']} steps)",
                           "target"], rows)


def _text_attribution_table(text: dict) -> str:
    methods = (GXI, IG)
    ks = list(text[GXI]["comprehensiveness"])
    rows = []
    for k in ks:
        cells = [f"drop deleting the top {k} token{'s' if k != '1' else ''} "
                 "(random)"]
        for method in methods:
            drop = text[method]["comprehensiveness"][k]
            cells.append(f"{drop['top']:.3f} ({drop['random']:.3f}): "
                         f"{_ratio(drop['ratio'])}")
        ratio = text[GXI]["comprehensiveness"][k]["ratio"]
        cells.append(f"≥ 2×: {'met' if ratio is not None and ratio >= 2 else '**not met**'}")
        rows.append(cells)
    sanity = [text[m]["sanity_full"] for m in methods]
    rows.append([f"correlation after full randomisation ({text['n_sanity']} texts, signed)",
                 *(f"{v:.3f}" for v in sanity),
                 f"≤ 0.2: {'met' if sanity[0] <= 0.2 else '**not met**'}"])
    rows.append(["seconds per text", *(f"{text[m]['s_per_text']:.2g}" for m in methods), "—"])
    rows += _peak_row(f"peak memory of attribute() on {text['n_test']} texts, MB",
                      *(text[m] for m in methods))
    return markdown_table([f"Rotten Tomatoes ({text['n_test']} test texts, test accuracy "
                           f"{text['test_accuracy']:.3f})", "gradient × input",
                           "Integrated Gradients", "target (gradient × input)"], rows)


def _ratio(value) -> str:
    return "—" if value is None else f"{value:.1f}×"


def _table_attribution_table(table: dict) -> str:
    t_ig, t_gxi = table[IG], table[GXI]
    rows = [["Spearman vs permutation importance", f"{t_ig['spearman_vs_permutation']:.3f}",
             f"{t_gxi['spearman_vs_permutation']:.3f}", "—"]]
    for compare in ("signed", "absolute"):
        key = f"sanity_full_{compare}"
        if key not in t_ig:
            continue
        ok = t_ig[key] <= 0.2 and t_gxi[key] <= 0.2
        rows.append([f"correlation after full randomisation ({table['n_sanity']} rows, "
                     f"{compare})", f"{t_ig[key]:.3f}", f"{t_gxi[key]:.3f}",
                     f"≤ 0.2: {'met' if ok else '**not met**'}" if compare == "signed"
                     else "— (magnitudes follow \\|x\\|)"])
    if "sanity_full" in t_ig:
        ok = t_ig["sanity_full"] <= 0.2 and t_gxi["sanity_full"] <= 0.2
        rows.append([f"correlation after full randomisation ({table['n_sanity']} rows)",
                     f"{t_ig['sanity_full']:.3f}", f"{t_gxi['sanity_full']:.3f}",
                     f"≤ 0.2: {'met' if ok else '**not met**'}"])
    if "s_per_row" in t_ig:
        rows.append(["seconds per row", f"{t_ig['s_per_row']:.2g}", f"{t_gxi['s_per_row']:.2g}",
                     "—"])
    rows += _peak_row("peak memory of attribute() on the test rows, MB", t_ig, t_gxi)
    dataset = table["dataset"].replace("_", " ")
    return markdown_table([f"table ({dataset}, test accuracy {table['test_accuracy']:.3f})",
                           "Integrated Gradients", "gradient × input", "target"], rows)


# -- export -----------------------------------------------------------------------------------

WAYS = ("torch (estimator)", "ONNX fp32", "ONNX int8 dynamic", "ONNX int8 static")
TORCH, FP32, DYNAMIC, STATIC = WAYS
IMAGE_MODEL = "MobileNetV2 / MNIST"


def export_targets(models: dict) -> list:
    """``{"target", "value", "met"}`` of each target, from the models' records."""
    rows = []
    worst = max(r["max_abs_proba_diff_vs_estimator"][FP32] for r in models.values())
    same = min(r["same_labels_as_estimator"][FP32] for r in models.values())
    rows.append({"target": "fp32 graph: max abs Δ predict_proba ≤ 1e-4, same labels",
                 "value": f"max {worst:.2g}, labels identical: {same == 1.0}",
                 "met": worst <= 1e-4 and same == 1.0})
    slower = [f"{name}: {cell} ({lat[FP32]:.1f} vs {lat[TORCH]:.1f} ms)"
              for name, r in models.items() for cell, lat in r["latency_ms"].items()
              if lat[FP32] > lat[TORCH]]
    rows.append({"target": "ONNX fp32 latency ≤ the estimator's at every batch size",
                 "value": "everywhere" if not slower else "slower at " + "; ".join(slower),
                 "met": not slower})
    if IMAGE_MODEL in models:
        r = models[IMAGE_MODEL]
        for way in (STATIC, DYNAMIC):
            drop = r["accuracy"][FP32] - r["accuracy"][way]
            speed = {cell: lat[FP32] / lat[way] for cell, lat in r["latency_ms"].items()
                     if cell.endswith("batch 64")}
            rows.append({
                "target": f"image model, {way}: ≤ 1 point accuracy lost, ≥ 1.5x ONNX fp32 at "
                          "batch 64",
                "value": f"{100 * drop:.1f} points lost; " + ", ".join(
                    f"x{s:.2f} ({cell.split(',')[0]})" for cell, s in speed.items()),
                "met": drop <= 0.01 and all(s >= 1.5 for s in speed.values())})
    return rows


def _ms(value: float) -> str:
    return f"{value:.3f}" if value < 1 else f"{value:.2f}" if value < 10 else f"{value:.1f}"


def export_markdown(records: list) -> str:
    """Per model a table of the four ways; install sizes; the targets."""
    models = {r["model"]: r for r in records if "model" in r}
    lines = []
    for name, r in models.items():
        fit = ("fitted earlier, read from --fit-cache" if r["fit_seconds"] is None
               else f"fit {r['fit_seconds']:.0f} s")
        lines += [f"**{name}** ({r['n_test']} test samples; {fit}, export "
                  f"{r['export_seconds']:.1f} s)", ""]
        rows = []
        for way in WAYS:
            diff = "—" if way == TORCH else f"{r['max_abs_proba_diff_vs_estimator'][way]:.1g}"
            rows.append([way, f"{r['file_mb'][way]:.1f}", f"{r['accuracy'][way]:.3f}", diff,
                         *(_ms(lat[way]) for lat in r["latency_ms"].values())])
        lines += [markdown_table(["", "file (MB)", "accuracy", "max \\|Δp\\| vs estimator",
                                  *r["latency_ms"]], rows), ""]
    rows = [[r["install"], f"{r['mb']:.0f}", r.get("distributions", 1)]
            for r in records if "install" in r]
    lines += [markdown_table(["what predicting needs installed", "MB", "distributions"], rows),
              ""]
    rows = [[t["target"], t["value"], "yes" if t["met"] else "no"]
            for t in export_targets(models)]
    lines.append(markdown_table(["target", "measured", "met"], rows))
    return "\n".join(lines)


def export_tables(meta: dict, records: list) -> dict:
    return {"main": export_markdown(records)}


# -- the README -------------------------------------------------------------------------------

# -- auto -------------------------------------------------------------------------------------

AUTO, DEFAULT, PROBE = "auto", "default", "exact probe"
GRID, HALVING, FLAML = "GridSearchCV", "HalvingGridSearchCV", "FLAML"
SEARCHES = (GRID, HALVING, FLAML)
AUTO_MARGIN = 0.01  # auto >= best rival - this; auto within this of the grid's best
GRID_SHARE = 0.20  # auto's wall time <= this share of GridSearchCV's
# the auto search given GRID_SHARE of the same (target, seed)'s GridSearchCV seconds as budget
AUTO_AT_SHARE = f"auto at {GRID_SHARE:.2f} x the grid's time"
BUDGET_RATIO = 1.10  # auto's wall time <= this many budgets


def _scores(records, target, model, key="test_score") -> list:
    return [r[key] for r in records if r["target"] == target and r["model"] == model
            and r.get("error") is None and r.get(key) is not None]


def _mean_std(values, digits=3) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}"


def _auto_targets(records) -> list:
    return list(dict.fromkeys(r["target"] for r in records))


def _best_baseline(records, target):
    """(name, scores) of the baseline with the best mean test score."""
    names = dict.fromkeys(r["model"] for r in records if r["target"] == target
                          and r["model"].startswith("baseline: "))
    scored = [(name.removeprefix("baseline: "), _scores(records, target, name))
              for name in names]
    scored = [(name, values) for name, values in scored if values]
    return max(scored, key=lambda pair: np.mean(pair[1]), default=(None, []))


def auto_summary_table(records) -> str:
    rows = []
    for target in _auto_targets(records):
        auto = _scores(records, target, AUTO)
        seconds = _scores(records, target, AUTO, "seconds")
        budget = next(r["budget"] for r in records if r["target"] == target)
        default, probe = _scores(records, target, DEFAULT), _scores(records, target, PROBE)
        baseline, base_scores = _best_baseline(records, target)
        rivals = [v for v in (default, probe, base_scores) if v]
        if not auto or not rivals:
            verdict = "not run"
        else:
            best = max(np.mean(v) for v in rivals)
            gap = np.mean(auto) - best
            verdict = _met(gap >= -AUTO_MARGIN) + (f" ({gap:+.3f})" if gap < 0 else "")
        rows.append([target, len(auto), f"{budget:.0f}",
                     f"{_mean_std(auto)} ({np.mean(seconds):.0f} s)" if auto else "-",
                     _mean_std(default), _mean_std(probe),
                     f"{_mean_std(base_scores)} ({baseline})" if baseline else "-", verdict])
    return markdown_table(["target", "seeds", "budget s", "auto (fit s)", "default fine-tune",
                           "exact probe", "best baseline", f"auto ≥ best − {AUTO_MARGIN}"],
                          rows)


def _iterations(records, target) -> str:
    runs = {" → ".join(f"{n} ({c})" for n, c in zip(r["samples_per_iteration"],
                                                   r["candidates_per_iteration"]))
            for r in records if r["target"] == target and r["model"] == HALVING
            and r.get("samples_per_iteration")}
    return "; ".join(sorted(runs)) or "-"


def auto_search_table(records) -> str:
    rows = []
    for target in _auto_targets(records):
        models = {r["model"] for r in records if r["target"] == target}
        if not models & set(SEARCHES):
            continue
        auto = _scores(records, target, AUTO)
        auto_s = np.mean(_scores(records, target, AUTO, "seconds"))
        row = [target, _mean_std(auto)]
        grid = _scores(records, target, GRID)
        if grid:
            grid_s = np.mean(_scores(records, target, GRID, "seconds"))
            gap = np.mean(auto) - np.mean(grid)
            row += [f"{_mean_std(grid)} ({grid_s:.0f} s)",
                    f"{gap:+.3f}: {_met(gap >= -AUTO_MARGIN)}",
                    f"{auto_s / grid_s:.2f}: {_met(auto_s <= GRID_SHARE * grid_s)}"]
        else:
            row += ["not run"] * 3
        row.append(_at_share(records, target, grid))
        halving = _scores(records, target, HALVING)
        row.append(f"{_mean_std(halving)} ({np.mean(_scores(records, target, HALVING, 'seconds')):.0f}"
                   f" s; samples (candidates) {_iterations(records, target)})"
                   if halving else _errors_of(records, target, HALVING) or "not run")
        flaml = _scores(records, target, FLAML)
        row.append(f"{_mean_std(flaml)} ({np.mean(_scores(records, target, FLAML, 'seconds')):.0f} s)"
                   if flaml else "")
        rows.append(row)
    return markdown_table(["target", "auto", "GridSearchCV (s)", "auto − grid, within "
                           f"{AUTO_MARGIN}", f"auto s / grid s, ≤ {GRID_SHARE:.2f}",
                           f"auto at {GRID_SHARE:.2f} × grid s (budget s): − grid, within "
                           f"{AUTO_MARGIN}", "HalvingGridSearchCV", "FLAML (same budget)"], rows)


def _at_share(records, target, grid) -> str:
    """The auto search given ``GRID_SHARE`` of the grid's seconds: its score,
    budget and gap to the grid."""
    scores = _scores(records, target, AUTO_AT_SHARE)
    if not scores or not grid:
        return "not run"
    budget = np.mean(_scores(records, target, AUTO_AT_SHARE, "budget"))
    gap = np.mean(scores) - np.mean(grid)
    return f"{_mean_std(scores)} ({budget:.0f} s): {gap:+.3f}: {_met(gap >= -AUTO_MARGIN)}"


def _errors_of(records, target, model) -> str:
    errors = sorted({r["error"] for r in records if r["target"] == target
                     and r["model"] == model and r.get("error")})
    return "; ".join(errors)


def auto_budget_table(records) -> str:
    rows, worst = [], 0.0
    for target in _auto_targets(records):
        for model, label in [(AUTO, target), (AUTO_AT_SHARE, f"{target}, {AUTO_AT_SHARE}")]:
            autos = [r for r in records if r["target"] == target and r["model"] == model
                     and r.get("error") is None]
            if not autos:
                continue
            ratios = [r["seconds"] / r["budget"] for r in autos]
            worst = max([worst, *ratios])
            budgets = sorted({round(r["budget"]) for r in autos})
            rows.append([label, "-".join(map(str, budgets[::max(len(budgets) - 1, 1)])),
                         f"{max(ratios):.3f}", _met(max(ratios) <= BUDGET_RATIO)])
    rows.append(["every fit", "", f"{worst:.3f}", _met(worst <= BUDGET_RATIO)])
    return markdown_table(["target", "budget s", "max wall / budget",
                           f"≤ {BUDGET_RATIO}"], rows)


def auto_winners_table(records) -> str:
    rows = []
    for target in _auto_targets(records):
        for r in records:
            if r["target"] != target or r["model"] != AUTO:
                continue
            rows.append([target, r["seed"], r.get("chosen") or "-",
                         "-" if r.get("validation_score") is None
                         else f"{r['validation_score']:.3f}",
                         "-" if r.get("test_score") is None else f"{r['test_score']:.3f}",
                         "-" if r.get("transfer_gain") is None
                         else f"{r['transfer_gain']:+.3f}"])
    return markdown_table(["target", "seed", "chosen", "validation", "test",
                           "transfer gain (validation)"], rows)


def auto_tables(meta: dict, records: list) -> dict:
    return {"summary": auto_summary_table(records), "searches": auto_search_table(records),
            "budget": auto_budget_table(records), "winners": auto_winners_table(records)}


# -- privacy ----------------------------------------------------------------------------------

PRIVATE_PROBE_GAP, ATTACK_AUC = 0.03, 0.55


def _privacy_rows(records: list) -> list:
    """``(method, epsilon, records)`` per row: the epsilons in increasing
    order, the non-private row last."""
    keys = dict.fromkeys((r["method"], r["epsilon"]) for r in records)
    ordered = sorted(keys, key=lambda k: (k[0] != "probe", k[1] is None, k[1] or 0))
    return [(m, e, [r for r in records if (r["method"], r["epsilon"]) == (m, e)])
            for m, e in ordered]


def privacy_table(records: list) -> str:
    """Per method and epsilon: accuracies, the attack's AUC and the accountant's spend."""
    rows = []
    for method, epsilon, group in _privacy_rows(records):
        private = epsilon is not None
        rows.append([
            method.replace("_", "-"), f"{epsilon:g}" if private else "non-private", len(group),
            _mean_std([r["test_accuracy"] for r in group]),
            _mean_std([r["train_accuracy"] for r in group]),
            _mean_std([r["mia_auc"] for r in group]),
            f"{max(r['epsilon_spent'] for r in group):.3f}" if private else "",
            f"{group[0]['noise_multiplier']:.3f}" if private else "",
            f"{np.mean([r['fit_seconds'] for r in group]):.0f}"])
    return markdown_table(["method", "epsilon", "seeds", "test accuracy", "train accuracy",
                           "attack AUC", "epsilon spent (max)", "noise multiplier",
                           "fit s"], rows)


def privacy_targets(meta: dict, records: list) -> str:
    """The three targets, met or not (a smoke run measures none): the probe's
    on the images, the others on every part."""
    def mean(method, epsilon):
        scores = [r["test_accuracy"] for r in records if r["part"] == "mnist"
                  and r["method"] == method and r["epsilon"] == epsilon]
        return float(np.mean(scores)) if scores else None

    private, plain = mean("probe", 8.0), mean("probe", None)
    aucs = [r["mia_auc"] for r in records if r["epsilon"] is not None]
    spent = [r for r in records if r["epsilon"] is not None]
    checks = [
        (f"private probe at epsilon 8 within {PRIVATE_PROBE_GAP * 100:g} points of the "
         "non-private probe",
         "-" if private is None or plain is None else f"{plain - private:+.3f}",
         private is not None and plain is not None and plain - private <= PRIVATE_PROBE_GAP),
        (f"attack AUC <= {ATTACK_AUC} on every private model",
         f"max {max(aucs):.3f}" if aucs else "-", bool(aucs) and max(aucs) <= ATTACK_AUC),
        ("the accountant's epsilon reported for every private fit",
         f"{sum('epsilon_spent' in r for r in spent)} of {len(spent)}",
         all("epsilon_spent" in r for r in spent)),
    ]
    verdict = _smoke_or_met(meta)
    return markdown_table(["target", "value", "met"],
                          [[what, value, verdict(ok)] for what, value, ok in checks])


def privacy_tables(meta: dict, records: list) -> dict:
    """One table per part (images, texts), and the targets."""
    parts = dict.fromkeys(r["part"] for r in records)
    return {**{part: privacy_table([r for r in records if r["part"] == part])
               for part in parts},
            "targets": privacy_targets(meta, records)}


# -- memory ----------------------------------------------------------------------------------

MEMORY_RSS_MB = 1.5 * 1024  # peak RSS of the predicting process, PSS with its workers: below
MEMORY_THROUGHPUT = 1 / 1.2  # sktransfer's images/s over the plain loop's, at least
MEMORY_LOOPS = {"sktransfer": "`PretrainedClassifier.predict_proba`",
                "plain": "plain PyTorch DataLoader loop"}


def memory_tables(meta: dict, records: list) -> dict:
    """Images/s and memory peaks of each loop (the largest of its repeats);
    the targets."""
    def runs(loop):
        return [r for r in records if r["loop"] == loop]

    def peak(loop, key):
        values = [r[key] for r in runs(loop)]
        return None if None in values else max(values)

    def mb(value):
        return "n/a" if value is None else f"{value:.0f}"

    speed = {loop: statistics.median([meta["n"] / r["seconds"] for r in runs(loop)])
             for loop in MEMORY_LOOPS}
    rows = [[label, f"{speed[loop]:.1f}", f"{speed[loop] / speed['plain']:.3f}",
             *(mb(peak(loop, key)) for key in ("before_mb", "self_mb", "children_mb",
                                              "tree_rss_mb", "tree_pss_mb"))]
            for loop, label in MEMORY_LOOPS.items()]
    main = markdown_table(["loop", "images/s (median)", "ratio to plain",
                           "RSS before predict (MB)", "peak RSS self (MB)",
                           "peak RSS largest worker (MB)", "peak RSS self + workers (MB)",
                           "peak PSS self + workers (MB)"], rows)
    own = peak("sktransfer", "self_mb")
    shared, how = peak("sktransfer", "tree_pss_mb"), "PSS of the process and its workers"
    if shared is None:
        shared = own + peak("sktransfer", "children_mb")
        how = "RSS of the process + its largest worker"
    ratio = speed["sktransfer"] / speed["plain"]
    seconds = {loop: [r["seconds"] for r in runs(loop)] for loop in MEMORY_LOOPS}
    fastest = (f" (fastest runs: {min(seconds['plain']) / min(seconds['sktransfer']):.3f})"
               if all(len(v) > 1 for v in seconds.values()) else "")
    verdict = _smoke_or_met(meta)
    targets = markdown_table(["target", "measured", "met"], [
        [f"peak RSS of the predicting process < 1.5 GB ({MEMORY_RSS_MB:.0f} MB)", f"{own:.0f} MB",
         verdict(own < MEMORY_RSS_MB)],
        [f"peak {how} < 1.5 GB", f"{shared:.0f} MB",
         verdict(shared < MEMORY_RSS_MB)],
        [f"throughput sktransfer / plain >= {MEMORY_THROUGHPUT:.3f} (1/1.2)",
         f"{ratio:.3f}{fastest}", verdict(ratio >= MEMORY_THROUGHPUT)]])
    return {"main": main, "targets": targets}


# -- cache_keys ------------------------------------------------------------------------------

CACHE_KEY_WAYS = {"stat": "path+size+mtime key (s)", "content": "content hash key (s)",
                  "decode": "PIL decode to RGB (s)"}


def cache_keys_tables(meta: dict, records: list) -> dict:
    """Median seconds of a pass over each set of files per way of keying
    (or decoding) them; the content key against the stat key and the decode."""
    def median(files, way):
        return statistics.median(next(r["seconds"] for r in records
                                      if (r["files"], r["way"]) == (files, way)))

    rows = []
    for files in dict.fromkeys(r["files"] for r in records):
        first = next(r for r in records if r["files"] == files)
        times = {way: median(files, way) for way in CACHE_KEY_WAYS}
        rows.append([f"{files} ({first['n_files']} files, {first['mean_bytes'] / 1024:.1f} "
                     "KiB each)", *(f"{times[way]:.4f}" for way in CACHE_KEY_WAYS),
                     f"{times['content'] / times['stat']:.1f}",
                     f"{times['content'] / times['decode']:.2f}"])
    return {"main": markdown_table(["files", *CACHE_KEY_WAYS.values(), "hash / stat key",
                                    "hash / decode"], rows)}


# -- overhead --------------------------------------------------------------------------------

OVERHEAD_TARGET = 1.05  # sktransfer's median seconds / the channels_last hand loop's
OVERHEAD_LOOPS = {"sktransfer": "`PretrainedClassifier.fit`",
                  "hand_cl": "hand-written loop, channels_last",
                  "hand": "hand-written loop, default format"}


def _timed_seconds(records, loop) -> list:
    return [r["seconds"] for r in records if r["loop"] == loop and not r["warm_up"]]


def overhead_tables(meta: dict, records: list) -> dict:
    """Median, min and max seconds per fit of each loop, its images/s and its
    ratio to the channels_last hand loop; the target."""
    hand = statistics.median(_timed_seconds(records, "hand_cl"))
    images = meta["n"] * meta["epochs"]
    rows = []
    for loop, label in OVERHEAD_LOOPS.items():
        t = _timed_seconds(records, loop)
        rows.append([label, f"{statistics.median(t):.2f}", f"{min(t):.2f}", f"{max(t):.2f}",
                     f"{images / statistics.median(t):.0f}",
                     f"{statistics.median(t) / hand:.3f}"])
    main = markdown_table(["loop", "median s/fit", "min s", "max s", "images/s",
                           "ratio to hand (channels_last)"], rows)
    ours = _timed_seconds(records, "sktransfer")
    ratio = statistics.median(ours) / hand
    fastest = min(ours) / min(_timed_seconds(records, "hand_cl"))
    spread = max(max(t) / min(t) for t in (_timed_seconds(records, loop)
                                           for loop in OVERHEAD_LOOPS))
    verdict = _smoke_or_met(meta)
    targets = markdown_table(["target", "measured", "met"], [
        [f"sktransfer / hand-written loop (channels_last) <= {OVERHEAD_TARGET}, medians",
         f"{ratio:.3f} (fastest runs: {fastest:.3f}; repeats of one loop differ by up to "
         f"x{spread:.2f})", verdict(ratio <= OVERHEAD_TARGET)]])
    return {"main": main, "targets": targets}


# -- probe_solver ----------------------------------------------------------------------------

PROBE_EXCESS = 1e-4  # sktransfer's relative objective excess at the fixed penalty, at most


def probe_solver_tables(meta: dict, records: list) -> dict:
    """Best-of-repeats seconds of both sides per size and penalty, the
    objective excess or the chosen penalty, the test accuracy; the target."""
    def cell(n, penalty, side):
        return next(r for r in records if (r["n"], r["penalty"], r["side"]) == (n, penalty, side))

    rows, slowest, worst = [], 0.0, 0.0
    for n in meta["sizes"]:
        for penalty in ("fixed", "auto"):
            ours, theirs = cell(n, penalty, "sktransfer"), cell(n, penalty, "scikit-learn")
            ratio = min(ours["seconds"]) / min(theirs["seconds"])
            slowest = max(slowest, ratio)
            if penalty == "fixed":
                worst = max(worst, ours["objective_excess"])
                what = f"{ours['objective_excess']:.1e} / {theirs['objective_excess']:.1e}"
                accuracy = "-"
            else:
                what = f"alpha {ours['alpha']:g} / {theirs['alpha']:g}"
                accuracy = f"{ours['test_accuracy']:.3f} / {theirs['test_accuracy']:.3f}"
            rows.append([n, "probe_alpha=1" if penalty == "fixed" else '"auto"',
                         f"{min(ours['seconds']):.2f} s", f"{min(theirs['seconds']):.2f} s",
                         f"{ratio:.2f}", what, accuracy])
    main = markdown_table(["n", "penalty", "sktransfer", "scikit-learn", "ratio",
                           "objective excess (ours / sklearn) or chosen alpha",
                           "test accuracy (ours / sklearn)"], rows)
    verdict = _smoke_or_met(meta)
    targets = markdown_table(["target", "measured", "met"], [
        ["sktransfer faster than scikit-learn in every row (ratio < 1)",
         f"largest ratio {slowest:.2f}", verdict(slowest < 1)],
        [f"sktransfer's objective excess <= {PROBE_EXCESS:g} (probe_alpha=1)",
         f"largest {worst:.1e}", verdict(worst <= PROBE_EXCESS)]])
    return {"main": main, "targets": targets}


# -- probe_penalty_search --------------------------------------------------------------------


def probe_penalty_search_tables(meta: dict, records: list) -> dict:
    """Per problem the penalty each setting of the search's iterations chose
    and the best-of-runs seconds of ``probe.solve``; per task how often the
    settings agree with the first (the reference) and the range of seconds."""
    settings = meta["iterations"]
    reference, others = settings[0], settings[1:]

    def cell(task, seed, iterations):
        return next(r for r in records if (r["task"], r["seed"], r["cv_max_iter"])
                    == (task, seed, iterations))

    problems = list(dict.fromkeys((r["task"], r["seed"]) for r in records))
    rows = [[task, seed, *(value for iterations in settings
                           for value in (f"{cell(task, seed, iterations)['alpha']:g}",
                                         f"{min(cell(task, seed, iterations)['seconds']):.3f}"))]
            for task, seed in problems]
    main = markdown_table(["task", "seed", *(f"{head} ({n} its)" for n in settings
                                             for head in ("alpha", "solve s"))], rows)

    def best(problem, iterations):
        return min(cell(*problem, iterations)["seconds"])

    def summary_row(label, chosen):
        same = [f"{sum(cell(*p, n)['alpha'] == cell(*p, reference)['alpha'] for p in chosen)}"
                f" of {len(chosen)}" for n in others]
        spans = []
        for n in settings:
            seconds = [best(p, n) for p in chosen]
            spans.append(f"{min(seconds):.2f}" if min(seconds) == max(seconds) else
                         f"{min(seconds):.2f}-{max(seconds):.2f}")
        ratios = [f"{statistics.median(best(p, n) / best(p, reference) for p in chosen):.2f}"
                  for n in others]
        return [label, *same, *spans, *ratios]

    tasks = list(dict.fromkeys(task for task, _ in problems))
    rows = [summary_row(task, [p for p in problems if p[0] == task]) for task in tasks]
    if len(tasks) > 1:
        rows.append(summary_row("all", problems))
    summary = markdown_table(
        ["task", *(f"same penalty, {n} vs {reference} its" for n in others),
         *(f"solve s, {n} its" for n in settings),
         *(f"time {n} / {reference} its (median)" for n in others)], rows)
    return {"main": main, "summary": summary}


# -- scaling ---------------------------------------------------------------------------------

SCALING_TARGET = 0.9  # images/s at each n over that at the smallest n, at least


def _scaling_seconds(records, part, **match) -> float | None:
    """Median seconds of the fits of ``part`` matching ``match``."""
    seconds = [r["seconds"] for r in records if r["part"] == part
               and all(r[k] == v for k, v in match.items())]
    return statistics.median(seconds) if seconds else None


def demo_tables(meta: dict, records: list) -> dict:
    """``main``: each model's test accuracy, fit seconds and epochs, and the
    transfer gain (the pretrained model's accuracy minus the other's)."""
    rows = [[r["model"], f"{r['test_accuracy']:.3f}", f"{r['fit_seconds']:.1f}", r["epochs"]]
            for r in records]
    accuracy = {r["model"]: r["test_accuracy"] for r in records}
    table = markdown_table(["model", "test accuracy", "fit s", "epochs"], rows)
    if {"ImageNet pretrained", "random init"} <= set(accuracy):
        gain = accuracy["ImageNet pretrained"] - accuracy["random init"]
        table += f"\n\nTransfer gain: {gain:+.3f} accuracy over random initialisation."
    return {"main": table}


def scaling_tables(meta: dict, records: list) -> dict:
    """Fit time and images/s against n (freeze_depth=0), and against the
    frozen depth with the cache on and off."""
    epochs, verdict = meta["epochs"], _smoke_or_met(meta)
    rows, base, notes = [], None, []
    for n in meta["sizes"]:
        seconds = _scaling_seconds(records, "samples", n=n)
        speed = n * epochs / seconds
        base = base or speed
        rows.append([n, f"{seconds:.1f}", f"{speed:.0f}", f"{speed / base:.3f}",
                     verdict(speed / base >= SCALING_TARGET)])
        if n > meta["n_real"]:
            notes.append(next(r["data"] for r in records if r["part"] == "samples"
                              and r["n"] == n))
    samples = markdown_table(["n", "fit s", "images/s", f"images/s ratio to n = "
                              f"{meta['sizes'][0]:,}", f"target >= {SCALING_TARGET}"], rows)
    if notes:
        samples += "\n\n" + "\n".join(f"({note}.)" for note in notes)
    rows, base, n = [], None, meta["depth_n"]
    for depth in meta["depths"]:
        on = _scaling_seconds(records, "depth", freeze_depth=depth, cache=True)
        base = base or on
        row = [depth, f"{on:.1f}", f"{n * epochs / on:.0f}", f"{base / on:.2f}"]
        off = _scaling_seconds(records, "depth", freeze_depth=depth, cache=False)
        row += (["-", "-", "-"] if off is None
                else [f"{off:.1f}", f"{n * epochs / off:.0f}", f"{off / on:.2f}"])
        rows.append(row)
    depth = markdown_table(["freeze_depth", "fit s (cache=True)", "images/s",
                            f"speed-up vs {meta['depths'][0]}", "fit s (cache=False)",
                            "images/s", "cache speed-up"], rows)
    return {"samples": samples, "depth": depth}


# -- transferability -------------------------------------------------------------------------

TRANSFER_METRICS = {"logme": "LogME", "h_score": "H-score", "leep": "LEEP", "nce": "NCE"}
LOGME_LEEP = "logme, LEEP's candidates"  # LogME over only the candidates LEEP scores
TAU_TARGET = 0.6  # LogME's Kendall tau with fine-tuned accuracy, mean over targets, at least
SCORING_SHARE = 0.05  # scoring every candidate / fine-tuning every candidate (wall), at most


def _score(record: dict, metric: str) -> float:
    """A stored score; None (a score the candidate has not) is NaN."""
    value = record[metric]
    return np.nan if value is None else float(value)


def _nan_mean_std(values, digits=3) -> str:
    values = np.asarray(values, float)
    if np.isnan(values).all():
        return "n/a (no source head)"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.nanmean(values):.{digits}f} ± {np.nanstd(values):.{digits}f}"


def _kendall_tau(scores, accuracies) -> float:
    """Kendall's tau-b over the candidates whose score is defined (NaN below 3)."""
    from scipy.stats import kendalltau

    scores, accuracies = np.asarray(scores, float), np.asarray(accuracies, float)
    finite = np.isfinite(scores)
    if finite.sum() < 3:
        return np.nan
    return float(kendalltau(scores[finite], accuracies[finite]).statistic)


def _regret(scores, accuracies) -> float:
    """Best accuracy minus that of the candidate the score ranks first (the
    first listed on a tie)."""
    scores, accuracies = np.asarray(scores, float), np.asarray(accuracies, float)
    if not np.isfinite(scores).any():
        return np.nan
    return float(accuracies.max() - accuracies[np.nanargmax(scores)])


def _per_run(fits: list, statistic) -> dict:
    """``{score: {target: [statistic per seed]}}`` over each (target, seed)'s candidates."""
    out = {}
    for target, seed in dict.fromkeys((r["target"], r["seed"]) for r in fits):
        run = [r for r in fits if (r["target"], r["seed"]) == (target, seed)]
        accuracies = [r["test_accuracy"] for r in run]
        scores = {m: np.array([_score(r, m) for r in run]) for m in TRANSFER_METRICS}
        scores[LOGME_LEEP] = np.where(np.isfinite(scores["leep"]), scores["logme"], np.nan)
        for name, values in scores.items():
            out.setdefault(name, {}).setdefault(target, []).append(
                statistic(values, accuracies))
    return out


def _mean_over_targets(per_target: dict) -> float:
    means = [np.nanmean(v) for v in per_target.values() if np.isfinite(v).any()]
    return float(np.mean(means)) if means else np.nan


def _score_statistic_table(values: dict, targets: list, digits: int) -> str:
    rows = [[name, *(_nan_mean_std(per_target[t], digits) if t in per_target else "-"
                     for t in targets), f"{_mean_over_targets(per_target):.{digits}f}"]
            for name, per_target in values.items()]
    return markdown_table(["score", *targets, "mean"], rows)


def _target_key(target: str) -> str:
    """``"MNIST 20/class"`` -> ``"mnist"``: the table's name in the README markers."""
    return target.split()[0].lower()


def transferability_tables(meta: dict, records: list) -> dict:
    """Per target each candidate's accuracy, fit time and scores; Kendall's
    tau of each score with the accuracy; the accuracy lost by its top pick;
    the time of scoring against fine-tuning every candidate; the targets."""
    fits = [r for r in records if r["part"] == "fit"]
    rankings = [r for r in records if r["part"] == "ranking"]
    targets = list(dict.fromkeys(r["target"] for r in fits))
    candidates = list(dict.fromkeys(r["candidate"] for r in fits))
    tables = {}
    for target in targets:
        rows = []
        for candidate in candidates:
            runs = [r for r in fits if (r["target"], r["candidate"]) == (target, candidate)]
            rows.append([candidate, _nan_mean_std([r["test_accuracy"] for r in runs]),
                         f"{np.mean([r['fit_seconds'] for r in runs]):.1f}",
                         f"{np.mean([r['epochs'] for r in runs]):.0f}",
                         *(_nan_mean_std([_score(r, m) for r in runs])
                           for m in TRANSFER_METRICS),
                         f"{np.mean([r['score_seconds'] for r in runs]):.2f}"])
        tables[_target_key(target)] = markdown_table(
            ["candidate", "test accuracy", "fit (s)", "epochs", *TRANSFER_METRICS.values(),
             "scoring (s)"], rows)
    taus = _per_run(fits, _kendall_tau)
    tables["tau"] = _score_statistic_table(taus, targets, 2)
    tables["regret"] = _score_statistic_table(_per_run(fits, _regret), targets, 3)

    def total(records, key):
        return sum(r[key] for r in records)

    wall = total(rankings, "seconds") / total(fits, "fit_seconds")
    cpu = total(rankings, "cpu_seconds") / total(fits, "fit_cpu_seconds")
    tables["time"] = markdown_table(
        ["clock", f"scoring (rank_backbones, {len(TRANSFER_METRICS)} scores)", "fine-tuning",
         "ratio"],
        [["wall", f"{total(rankings, 'seconds'):,.1f} s", f"{total(fits, 'fit_seconds'):,.1f} s",
          f"{100 * wall:.1f} %"],
         ["process CPU", f"{total(rankings, 'cpu_seconds'):,.1f} s",
          f"{total(fits, 'fit_cpu_seconds'):,.1f} s", f"{100 * cpu:.1f} %"]])
    logme = _mean_over_targets(taus["logme"])
    verdict = _smoke_or_met(meta)
    tables["targets"] = markdown_table(["target", "measured", "met"], [
        [f"LogME mean Kendall tau >= {TAU_TARGET}", f"{logme:.2f}", verdict(logme >= TAU_TARGET)],
        [f"scoring time <= {100 * SCORING_SHARE:.0f} % of fine-tuning every candidate (wall)",
         f"{100 * wall:.1f} %", verdict(wall <= SCORING_SHARE)]])
    return tables


# -- frozen_grid -----------------------------------------------------------------------------

GRID_SPEEDUP = 10  # skorch's total seconds / sktransfer's over the whole grid, at least
GRID_AGREEMENT = 0.01  # |mean CV accuracy difference| per candidate, at most
GRID_SIDES = {"sktransfer": "sktransfer", "skorch": "skorch + Freezer"}


def _depth(depth) -> str:
    return f'"{depth}"' if isinstance(depth, str) else str(depth)


def frozen_grid_tables(meta: dict, records: list) -> dict:
    """Each candidate's mean CV accuracy on both sides; each search's seconds
    and the speed-up; the targets."""
    candidates = [r for r in records if r["part"] == "candidate"]
    searches = {(r["side"], r["freeze_depth"]): r["seconds"]
                for r in records if r["part"] == "search"}
    depths = list(dict.fromkeys(r["freeze_depth"] for r in candidates))
    accuracy = {(r["side"], r["freeze_depth"], r["lr"]): r["mean_test_score"]
                for r in candidates}
    rows, diffs = [], []
    for depth in depths:
        for lr in dict.fromkeys(r["lr"] for r in candidates if r["freeze_depth"] == depth):
            ours, theirs = accuracy[("sktransfer", depth, lr)], accuracy[("skorch", depth, lr)]
            diffs.append(abs(ours - theirs))
            rows.append([_depth(depth), f"{lr:.0e}".replace("e-0", "e-"), f"{ours:.4f}", f"{theirs:.4f}",
                         f"{diffs[-1]:.4f}"])
    main = markdown_table(["freeze_depth", "lr", "sktransfer CV acc", "skorch CV acc",
                           "abs. diff"], rows)
    rows = []
    for label, keys in [*((f"freeze_depth={_depth(d)}", [d]) for d in depths),
                        ("whole grid", depths)]:
        seconds = {side: sum(searches[(side, d)] for d in keys) for side in GRID_SIDES}
        rows.append([label, *(f"{seconds[side]:.1f}" for side in GRID_SIDES),
                     f"{seconds['skorch'] / seconds['sktransfer']:.1f}x"])
    times = markdown_table(["search", *(f"{side} (s)" for side in GRID_SIDES.values()),
                            "speed-up"], rows)
    speedup = (sum(searches[("skorch", d)] for d in depths)
               / sum(searches[("sktransfer", d)] for d in depths))
    within = sum(diff <= GRID_AGREEMENT for diff in diffs)
    verdict = _smoke_or_met(meta)
    targets = markdown_table(["target", "measured", "met"], [
        [f"skorch / sktransfer seconds over the whole grid >= {GRID_SPEEDUP}",
         f"{speedup:.1f}x", verdict(speedup >= GRID_SPEEDUP)],
        [f"mean CV accuracies within {GRID_AGREEMENT} for every candidate",
         f"{within} of {len(diffs)} (largest difference {max(diffs):.4f})",
         verdict(within == len(diffs))]])
    return {"main": main, "times": times, "targets": targets}


# -- strategies ------------------------------------------------------------------------------

STRATEGY_DEFAULT = "default recipe"  # PretrainedClassifier's defaults for every strategy


def _budget_key(max_epochs) -> str:
    """``"auto"`` or ``"epochs6"``: the epoch budget's part of a table's name."""
    return "auto" if max_epochs == "auto" else f"epochs{max_epochs}"


def _setting_key(target: str) -> str:
    """``"MNIST 10/class"`` -> ``"mnist10"``: the target's part of a table's name."""
    name, *rest = target.split()
    return name.lower() + "".join(part.split("/")[0] for part in rest)


def _strategy_label(strategy: str, fits: list, others: dict) -> str:
    """The row's name; "(exact)" where no fit trained an epoch (the head was
    solved), "(= recipe X)" for the default recipe where a recipe row scored
    the same on every target and seed."""
    if all(r["epochs"] == 0 for r in fits):
        return f"{strategy} (exact)"
    if strategy == STRATEGY_DEFAULT:
        scores = {(r["target"], r["seed"]): r["test_accuracy"] for r in fits}
        for name, rival in others.items():
            if name.startswith("recipe ") and scores == {
                    (r["target"], r["seed"]): r["test_accuracy"] for r in rival}:
                return f"{strategy} (= {name.split(':')[0]})"
    return strategy


def _strategies_table(fits: list, targets: list) -> str:
    """One row per strategy: the test accuracy on each target (mean ± std over
    seeds, the best mean of a column in bold), the mean fit seconds, the mean
    epochs trained and how many fits their epoch budget ended."""
    strategies = list(dict.fromkeys(r["strategy"] for r in fits))
    by_strategy = {s: [r for r in fits if r["strategy"] == s] for s in strategies}
    means = {(s, t): round(float(np.mean([r["test_accuracy"] for r in by_strategy[s]
                                          if r["target"] == t])), 3)
             for s in strategies for t in targets}
    best = {t: max(means[(s, t)] for s in strategies) for t in targets}
    rows = []
    for strategy in strategies:
        runs = by_strategy[strategy]
        cells = []
        for target in targets:
            cell = _mean_std([r["test_accuracy"] for r in runs if r["target"] == target])
            bold = len(strategies) > 1 and means[(strategy, target)] == best[target]
            cells.append(f"**{cell}**" if bold else cell)
        ended = sum(r["at_budget"] for r in runs)
        rows.append([_strategy_label(strategy, runs, by_strategy), *cells,
                     f"{np.mean([r['fit_seconds'] for r in runs]):.1f}",
                     f"{np.mean([r['epochs'] for r in runs]):.0f} ({ended} of {len(runs)})"])
    return markdown_table(["strategy", *targets, "mean fit time (s)",
                           "mean epochs (fits ended at the budget)"], rows)


def strategies_tables(meta: dict, records: list) -> dict:
    """Per epoch budget, one table per group of targets measured on the same
    strategies: ``"<budget>-<target>-..."``, e.g. ``"auto-mnist10-textures10"``."""
    tables = {}
    for budget in dict.fromkeys(r["max_epochs"] for r in records):
        fits = [r for r in records if r["max_epochs"] == budget]
        targets = list(dict.fromkeys(r["target"] for r in fits))
        groups = {}  # the strategies measured -> the targets measured on them
        for target in targets:
            measured = frozenset(r["strategy"] for r in fits if r["target"] == target)
            groups.setdefault(measured, []).append(target)
        for group in groups.values():
            key = "-".join([_budget_key(budget), *map(_setting_key, group)])
            tables[key] = _strategies_table([r for r in fits if r["target"] in group], group)
    return tables


# -- convergence -----------------------------------------------------------------------------

CONV_NEW, CONV_PROBE, CONV_LPFT, CONV_OLD = ("default", "exact probe", "LP-FT",
                                             "fixed 10 epochs")
CONV_FEATURES, CONV_SCRATCH = "TransferFeatures + LR", "scratch"
CONVERGENCE_ROWS = (CONV_NEW, CONV_PROBE, CONV_LPFT, CONV_OLD, CONV_FEATURES, CONV_SCRATCH)
CONVERGENCE_TARGETS = ("MNIST 10/class", "MNIST 50/class", "textures 10/class",
                       "faces 10/class", "digits 0-4 -> 5-9, 5/class")
PROBE_MARGIN = 0.01  # the exact probe's mean below features + LR's, at most


def _fit_time(seconds: float) -> str:
    """Seconds to about three significant figures: 0.36 s, 20.8 s, 216 s."""
    return f"{seconds:.2f} s" if seconds < 1 else \
        f"{seconds:.1f} s" if seconds < 100 else f"{seconds:.0f} s"


def _convergence_label(record: dict) -> str:
    """The table row of a fit: its row's name, then in brackets the
    parameters ``--set`` on it."""
    return record["row"] + (f" ({record['set']})" if record.get("set") else "")


def _position(names, name) -> int:
    return names.index(name) if name in names else len(names)


def _convergence_stats(fits: list, target: str, row: str):
    """``(mean accuracy, std, mean fit seconds)`` of a row's fits on a target, or None."""
    group = [r for r in fits if (r["target"], r["row"]) == (target, row)]
    if not group:
        return None
    acc = [r["test_accuracy"] for r in group]
    return float(np.mean(acc)), float(np.std(acc)), float(np.mean([r["fit_seconds"]
                                                                     for r in group]))


def _convergence_checks(fits: list, targets: list, kinds: dict, verdict) -> list:
    """The rows of the targets table: one cell per target."""
    def stats(rows, target):
        found = {row: _convergence_stats(fits, target, row) for row in rows}
        gone = [row for row, s in found.items() if s is None]
        return found, (f"not run ({', '.join(gone)})" if gone else None)

    best_row, scratch, probe = [], [], []
    for target in targets:
        images = kinds[target] == "images"
        rivals = [CONV_PROBE, CONV_FEATURES, CONV_OLD] if images else [CONV_PROBE, CONV_OLD]
        found, missing = stats([CONV_NEW, *rivals], target)
        if missing:
            best_row.append(missing)
        else:
            mean, std, _ = found[CONV_NEW]
            best = max(rivals, key=lambda row: found[row][0])
            best_row.append(f"{verdict(mean + std >= found[best][0])} ({mean:.3f} + {std:.3f} "
                            f"vs {best} {found[best][0]:.3f})")
        if images:
            scratch.append("n/a")
        else:
            found, missing = stats([CONV_NEW, CONV_SCRATCH], target)
            new, old = found[CONV_NEW], found[CONV_SCRATCH]
            scratch.append(missing or f"{verdict(new[0] >= old[0])} ({new[0]:.3f} ± "
                                      f"{new[1]:.3f} vs {old[0]:.3f} ± {old[1]:.3f})")
        if not images:
            probe.append("n/a")
            continue
        found, missing = stats([CONV_PROBE, CONV_FEATURES], target)
        ours, theirs = found[CONV_PROBE], found[CONV_FEATURES]
        probe.append(missing or f"{verdict(ours[0] >= theirs[0] - PROBE_MARGIN)} "
                                f"({ours[0]:.3f} vs {theirs[0]:.3f})")
    return [["default + std ≥ best of {exact probe, features + LR, fixed 10 epochs}",
             *best_row],
            ["default ≥ scratch (tabular transfer)", *scratch],
            [f"exact probe ≥ features + LR − {PROBE_MARGIN}", *probe]]


def convergence_tables(meta: dict, records: list) -> dict:
    """``accuracy``: each row's test accuracy per target (mean ± std over
    seeds, the checked rows' best mean of a column in bold), its mean fit
    seconds and how many fits ended with a ConvergenceWarning; ``targets``:
    the convergence checks per target. A fit with parameters ``--set`` is a
    row of its own; the checks take the fits without (or, where every fit had
    a ``--set``, as in a ``--quick`` run, those of the first one's)."""
    fits = [r for r in records if r["part"] == "fit"]
    skipped = {(r["target"], _convergence_label(r)) for r in records if r["part"] == "skipped"}
    kinds = {r["target"]: r["kind"] for r in records if "kind" in r}
    targets = sorted(kinds, key=lambda t: (_position(CONVERGENCE_TARGETS, t),
                                           list(kinds).index(t)))
    ordered = sorted(
        [r for r in records if r["part"] in ("fit", "skipped")],
        key=lambda r: (_position(CONVERGENCE_ROWS, r["row"]), r.get("set", "")))
    labels = list(dict.fromkeys(map(_convergence_label, ordered)))
    sets = list(dict.fromkeys(r.get("set", "") for r in fits))
    checked_set = "" if "" in sets or not sets else sets[0]
    checked = [r for r in fits if r.get("set", "") == checked_set]
    n_fits = {}
    for r in fits:
        key = (r["target"], _convergence_label(r))
        n_fits[key] = n_fits.get(key, 0) + 1
    uneven = len(set(n_fits.values())) > 1  # then each cell says its number of fits

    def cell(group, bold):
        warned = sum(r["convergence_warnings"] > 0 for r in group)
        notes = [f"{warned} of {len(group)} fits warned"] * bool(warned) + \
            [f"n={len(group)}"] * uneven
        seconds = _fit_time(float(np.mean([r["fit_seconds"] for r in group])))
        return f"{_bold_mean_std(group, bold)} ({'; '.join([seconds, *notes])})"

    labelled = [{**r, "row": _convergence_label(r)} for r in fits]
    rows = _accuracy_rows(labelled, "target", targets, labels, cell,
                          bold=list(dict.fromkeys(map(_convergence_label, checked))))
    for row in rows:
        for i, target in enumerate(targets, start=1):
            if row[i] == "not run" and (target, row[0]) in skipped:
                row[i] = "skipped"
            elif row[i] == "not run" and kinds[target] == "tabular" and \
                    row[0].startswith(CONV_FEATURES):
                row[i] = "n/a"
    headers = [t.replace("->", "→") for t in targets]
    return {"accuracy": markdown_table(["config", *headers], rows),
            "targets": markdown_table(
                ["target", *headers],
                _convergence_checks(checked, targets, kinds, _smoke_or_met(meta)))}


# -- text ------------------------------------------------------------------------------------

TEXT_FT, TEXT_PROBE = "MiniLM fine-tune (default)", "MiniLM probe"
TEXT_TFIDF = "TF-IDF + LR"
TEXT_ROWS = (TEXT_FT, TEXT_PROBE, "TransferFeatures + LR", TEXT_TFIDF)
TEXT_TRANSFER_ROWS = ("RT source -> fine-tune", "RT source -> probe",
                      "RT source, no target labels", TEXT_FT, TEXT_PROBE)
TEXT_DATASETS = ("RT", "BBC")
TEXT_MARGIN = 0.10  # the fine-tuned MiniLM's mean over TF-IDF + LR's, at least
TEXT_CHECKED_K = (10, 50)
TEXT_OVERHEAD_TARGET = 1.05  # fit's fastest seconds / the hand-written loop's, at most
TEXT_OVERHEAD_DEFAULT = (256, 3)  # the overhead run's texts and epochs by default
TEXT_QUICK_FT = "MiniLM fine-tune (3 epochs, not the default budget)"


def _text_slug(setting: str) -> str:
    """``"n_test_rt=500 lr=0.001"`` -> ``"n_test_rt500-lr0.001"``: a setting's
    part of a table's name."""
    return re.sub(r"[^\w.-]", "", setting.replace(" ", "-"))


def text_key(setting: str, table: str) -> str:
    """The table's name: ``table`` for the default setting, else prefixed with it."""
    return table if setting == "default" else f"{_text_slug(setting)}-{table}"


def _seconds(value: float) -> str:
    return f"{value:.2f}" if value < 0.1 else f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def _text_order(records: list, rows: tuple) -> tuple[list, list]:
    """The targets (by dataset, then labels per class) and rows (in ``rows``'
    order, then any other) of ``records``."""
    targets = sorted(dict.fromkeys((r["dataset"], r["k"], r["target"]) for r in records),
                     key=lambda t: (TEXT_DATASETS.index(t[0]) if t[0] in TEXT_DATASETS
                                    else len(TEXT_DATASETS), t[0], t[1]))
    found = list(dict.fromkeys(r["row"] for r in records))
    return ([t[2] for t in targets],
            [row for row in rows if row in found] + [row for row in found if row not in rows])


def _text_accuracy_table(records: list, rows: tuple, label=lambda row: row) -> str:
    """One row per config: its test accuracy per target, mean ± std over seeds
    (each column's best mean in bold), with the mean fit seconds and the mean
    epochs of the fits trained by gradient steps; the fits that ended with a
    ConvergenceWarning."""
    targets, labels = _text_order(records, rows)
    cells = {(r, t): [x for x in records if (x["row"], x["target"]) == (r, t)]
             for r in labels for t in targets}
    seeds = max(len(group) for group in cells.values())
    means = {key: round(float(np.mean([x["test_accuracy"] for x in group])), 3)
             for key, group in cells.items() if group}
    best = {t: max(means[(r, t)] for r in labels if (r, t) in means) for t in targets}
    table = []
    for row in labels:
        line = [label(row)]
        for target in targets:
            group = cells[(row, target)]
            if not group:
                line.append("not run")
                continue
            text = _mean_std([x["test_accuracy"] for x in group])
            if len(labels) > 1 and means[(row, target)] == best[target]:
                text = f"**{text}**"
            notes = []
            seconds = [x["fit_seconds"] for x in group]
            if any(seconds):
                notes.append(f"{_seconds(np.mean(seconds))} s")
            epochs = [x["epochs"] for x in group if x.get("epochs")]
            if epochs:
                notes.append(f"{np.mean(epochs):.0f} epochs")
            if len(group) != seeds:
                notes.append(f"{len(group)} seeds")
            line.append(f"{text} ({', '.join(notes)})" if notes else text)
        fitted = [x for target in targets for x in cells[(row, target)] if x["fit_seconds"]]
        line.append(f"{sum(x['warned'] for x in fitted)} of {len(fitted)}" if fitted else "-")
        table.append(line)
    return markdown_table(["config", *targets, "fits with a ConvergenceWarning"], table)


def _text_seeds_table(records: list, rows: tuple) -> str:
    """Each target and seed: every config's test accuracy."""
    targets, labels = _text_order(records, rows)
    accuracy = {(r["target"], r["seed"], r["row"]): r["test_accuracy"] for r in records}
    return markdown_table(["target", "seed", *labels], [
        [target, seed, *(f"{accuracy[(target, seed, row)]:.3f}"
                         if (target, seed, row) in accuracy else "not run" for row in labels)]
        for target in targets
        for seed in sorted({r["seed"] for r in records if r["target"] == target})])


def _text_checks_table(records: list, verdict) -> str:
    """The fine-tuned MiniLM against TF-IDF + LR + ``TEXT_MARGIN`` on each
    dataset at 10 and 50 labels per class."""
    lines = []
    for dataset in TEXT_DATASETS:
        for k in TEXT_CHECKED_K:
            target = f"{dataset} {k}/class"
            found = {row: [r["test_accuracy"] for r in records
                           if (r["target"], r["row"]) == (target, row)]
                     for row in (TEXT_FT, TEXT_TFIDF)}
            name = f"fine-tuned MiniLM ≥ TF-IDF + LR + {TEXT_MARGIN:.2f}, {target}"
            gone = [row for row, acc in found.items() if not acc]
            if gone:
                lines.append([name, "", f"not run ({', '.join(gone)})"])
                continue
            ft, tfidf = np.mean(found[TEXT_FT]), np.mean(found[TEXT_TFIDF])
            lines.append([name, f"{ft:.3f} vs {tfidf:.3f} + {TEXT_MARGIN:.2f}",
                          verdict(ft >= tfidf + TEXT_MARGIN)])
    return markdown_table(["target", "measured (means)", "met"], lines)


def _text_source_table(sources: list) -> str:
    """Each seed's source: its RT snippets, fit seconds and epochs."""
    return markdown_table(["seed", "source snippets", "fit (s)", "epochs",
                           "ConvergenceWarning"], [
        [r["seed"], r["n_train"], _seconds(r["fit_seconds"]), r["epochs"],
         "yes" if r["warned"] else "no"] for r in sorted(sources, key=lambda r: r["seed"])])


def _text_overhead_tables(records: list, verdict) -> tuple[str, str]:
    """Best and median seconds per fit of both loops, the best seconds in the
    epochs, texts per second; the ratio against ``TEXT_OVERHEAD_TARGET``."""
    texts = records[0]["n_train"] * records[0]["epochs"]
    seconds = {loop: [r["fit_seconds"] for r in records if r["loop"] == loop]
               for loop in ("sktransfer", "hand")}
    in_epochs = {loop: [r["epoch_seconds"] for r in records if r["loop"] == loop]
                 for loop in seconds}
    main = markdown_table(
        ["loop", "best s/fit", "median s/fit", "best s in epochs", "texts/s (best)"],
        [[label, f"{min(seconds[loop]):.2f}", f"{statistics.median(seconds[loop]):.2f}",
          f"{min(in_epochs[loop]):.2f}", f"{texts / min(seconds[loop]):.1f}"]
         for loop, label in (("sktransfer", "`PretrainedClassifier.fit`"),
                             ("hand", "hand-written loop"))])
    ratio = min(seconds["sktransfer"]) / min(seconds["hand"])
    medians = statistics.median(seconds["sktransfer"]) / statistics.median(seconds["hand"])
    epochs = min(in_epochs["sktransfer"]) / min(in_epochs["hand"])
    spread = max(max(t) / min(t) for t in seconds.values())
    targets = markdown_table(["target", "measured", "met"], [
        [f"sktransfer / hand-written loop <= {TEXT_OVERHEAD_TARGET}, fastest runs",
         f"{ratio:.3f} (medians {medians:.3f}; epochs alone {epochs:.3f}; repeats of one "
         f"loop differ by up to x{spread:.2f})", verdict(ratio <= TEXT_OVERHEAD_TARGET)]])
    return main, targets


def text_tables(meta: dict, records: list) -> dict:
    """Per setting (the options a run's numbers depend on, recorded as
    ``"setting"``: ``"default"``, ``"quick"``, ``"n_test_rt=500 lr=0.001"``,
    ...; the default setting's tables unprefixed, the others'
    ``"<setting>-<table>"``): ``main``, each config's accuracy per target with
    fit seconds and epochs; ``seeds``, every fit's accuracy; ``checks``, the
    fine-tune against TF-IDF; ``transfer`` and ``source``, the RT source ->
    sentiment target rows and the sources. Per overhead run (texts, epochs):
    ``overhead`` and ``overhead_targets`` (``overhead-<n>texts-<e>epochs...``
    for other sizes than the default)."""
    tables = {}
    for setting in dict.fromkeys(r["setting"] for r in records if r["part"] != "overhead"):
        quick = setting.split()[0] == "quick"
        verdict = _smoke_or_met({"quick": quick})
        label = (lambda row: TEXT_QUICK_FT if row == TEXT_FT else row) if quick else \
            (lambda row: row)
        fits = [r for r in records if r["part"] == "fit" and r["setting"] == setting]
        if fits:
            tables[text_key(setting, "main")] = _text_accuracy_table(fits, TEXT_ROWS, label)
            tables[text_key(setting, "seeds")] = _text_seeds_table(fits, TEXT_ROWS)
            tables[text_key(setting, "checks")] = _text_checks_table(fits, verdict)
        transfer = [r for r in records if r["part"] == "transfer" and r["setting"] == setting]
        if transfer:
            tables[text_key(setting, "transfer")] = _text_accuracy_table(
                transfer, TEXT_TRANSFER_ROWS, label)
            tables[text_key(setting, "source")] = _text_source_table(
                [r for r in records if r["part"] == "source" and r["setting"] == setting])
    overheads = [r for r in records if r["part"] == "overhead"]
    for size in dict.fromkeys((r["n_train"], r["epochs"]) for r in overheads):
        runs = [r for r in overheads if (r["n_train"], r["epochs"]) == size]
        verdict = _smoke_or_met(meta)
        key = "overhead" if size == TEXT_OVERHEAD_DEFAULT else \
            f"overhead-{size[0]}texts-{size[1]}epochs"
        tables[key], tables[f"{key}_targets"] = _text_overhead_tables(runs, verdict)
    return tables


# -- gpu_throughput --------------------------------------------------------------------------

GPU_THROUGHPUT_TARGET = 0.9  # sktransfer's images/s over the hand-tuned loop's, medians, at least
GPU_LOOPS = {"sktransfer": "`PretrainedClassifier.fit`",
             "hand_uint8": "hand-tuned (uint8 batches, normalised on device)",
             "hand_per_image": "hand-tuned, per-image CPU preprocessing (diagnostic)"}
GPU_BASELINE = "hand_uint8"


def _gpu_setups(records: list) -> dict:
    """``{(device name, image size, batch size, steps): label}`` of the
    records' setups, labelled by the device and, where the records mix
    settings, the settings."""
    setups = list(dict.fromkeys((r["device_name"], r["image_size"], r["batch_size"], r["steps"])
                                for r in records))
    mixed = len({setup[1:] for setup in setups}) > 1
    return {setup: setup[0] + (f" ({setup[1]} px, batch {setup[2]}, {setup[3]} steps)"
                               if mixed else "") for setup in setups}


def gpu_throughput_tables(meta: dict, records: list) -> dict:
    """Images/s of each loop per device and model (median over repeats) and
    its ratio to the hand-tuned loop; the target per device and model (a
    smoke run's or a CPU run's not judged)."""
    smoke = _smoke_or_met(meta)
    rows, targets = [], []
    for setup, device in _gpu_setups(records).items():
        mine = [r for r in records
                if (r["device_name"], r["image_size"], r["batch_size"], r["steps"]) == setup]
        cpu = all(r["cuda"] is None for r in mine)

        def verdict(ok):
            return "CPU run: the target is for a GPU" if cpu and smoke is _met else smoke(ok)

        for model in dict.fromkeys(r["model"] for r in mine):
            speeds = {loop: [r["images_per_second"] for r in mine
                             if (r["model"], r["loop"]) == (model, loop)] for loop in GPU_LOOPS}
            base = statistics.median(speeds[GPU_BASELINE])
            for loop, label in GPU_LOOPS.items():
                runs = [r for r in mine if (r["model"], r["loop"]) == (model, loop)]
                if not runs:
                    continue
                layout = ", ".join(dict.fromkeys(
                    f"{r['precision']}, channels_last={r['channels_last']}" for r in runs))
                rows.append([device, model, label, layout,
                             f"{statistics.median(speeds[loop]):.1f}",
                             f"{statistics.median(speeds[loop]) / base:.3f}"])
            ours = speeds["sktransfer"]
            ratio = statistics.median(ours) / base
            notes = [f"fastest runs: {max(ours) / max(speeds[GPU_BASELINE]):.3f}"]
            if min(len(v) for v in speeds.values() if v) > 1:
                spread = max(max(v) / min(v) for v in speeds.values() if v)
                notes.append(f"repeats of one loop differ by up to x{spread:.2f}")
            targets.append([f"{model} on {device}: sktransfer / hand-tuned >= "
                            f"{GPU_THROUGHPUT_TARGET}, medians",
                            f"{ratio:.3f} ({'; '.join(notes)})",
                            verdict(ratio >= GPU_THROUGHPUT_TARGET)])
    return {"main": markdown_table(["device", "model", "loop", "precision / layout",
                                    "images/s (median)", "ratio to hand-tuned"], rows),
            "targets": markdown_table(["target", "measured", "met"], targets)}


# -- scale_out -------------------------------------------------------------------------------

SCALE_OUT_BACKENDS = {"serial": "serial", "loky": "loky (`n_jobs=2`)",
                      "dask": "Dask (2 workers)", "ray": "Ray (2 CPUs)"}
RAY_DEFAULT_NICENESS = 15
DDP_PROCESSES = {1: "1 x {threads}", 2: "2 x {threads} (torchrun, DDP)"}


def _backend_label(search: dict, runs: int) -> str:
    """The backend's name; Ray's with its workers' niceness; the run's number
    where the searches come from more than one run."""
    label = SCALE_OUT_BACKENDS.get(search["backend"], search["backend"])
    if search["backend"] == "ray":
        niceness = search["ray_niceness"]
        label += (f", Ray's default niceness {niceness}" if niceness == RAY_DEFAULT_NICENESS
                  else f", `--ray-niceness {niceness}`")
    return label + (f" (run {search.get('run', 0) + 1})" if runs > 1 else "")


def _scores_as_serial(mine: list, serial: list) -> str:
    """Whether a search's candidates scored as the serial search's, bit for bit."""
    if not serial:
        return "no serial search"
    if [r["params"] for r in mine] != [r["params"] for r in serial]:
        return "NO (other candidates)"
    same = all(a["fold_scores"] == b["fold_scores"] and a["mean_test_score"]
               == b["mean_test_score"] for a, b in zip(mine, serial))
    if same:
        return "yes, bit for bit"
    diff = max(abs(a["mean_test_score"] - b["mean_test_score"]) for a, b in zip(mine, serial))
    return f"NO (max diff {diff:.2e})"


def _ddp_title(record: dict) -> str:
    if record["task"] == "mlp":
        epochs = "defaults" if record["max_epochs"] == "auto" else \
            f"{record['max_epochs']} epochs"
        return f"MLP on MNIST pixels, {epochs}"
    return f"MobileNetV2 ImageNet, 32 px, whole network, {record['max_epochs']} epochs"


def scale_out_tables(meta: dict, records: list) -> dict:
    """Each backend's search, serial first, then loky, Dask and Ray, each by
    run (start-up, seconds, per fit, overhead per fit against loky, best
    candidate, scores against the serial search's, activations computed and
    cache hits); the data-parallel fits against one process, with their
    ratio."""
    order = list(SCALE_OUT_BACKENDS)
    searches = sorted((r for r in records if r["part"] == "search"), key=lambda r: (
        order.index(r["backend"]) if r["backend"] in order else len(order), r.get("run", 0)))
    runs = len({r.get("run", 0) for r in searches})

    def candidates(search):
        return sorted((r for r in records if r["part"] == "candidate"
                       and (r["backend"], r["ray_niceness"])
                       == (search["backend"], search["ray_niceness"])),
                      key=lambda r: r["candidate"])

    serial = next((candidates(s) for s in searches if s["backend"] == "serial"), [])
    loky = next((s for s in searches if s["backend"] == "loky"), None)
    rows = []
    for search in searches:
        mine, fits = candidates(search), search["fits"]
        best = min(mine, key=lambda r: (r["rank"], r["candidate"]))
        overhead = ("" if loky is None or search["backend"] in ("serial", "loky")
                    else f"{(search['seconds'] - loky['seconds']) / fits:+.3f}")
        startup = search["startup_seconds"]
        computed = str(search["computed"]) + (f" (an image at most {search['repeats']}x)"
                                               if search["repeats"] > 1 else "")
        rows.append([_backend_label(search, runs), "" if startup is None else f"{startup:.1f}",
                     f"{search['seconds']:.1f}", f"{search['seconds'] / fits:.2f}", overhead,
                     search["threads"], f"{best['mean_test_score']:.4f}",
                     ", ".join(f"{k}={v}" for k, v in sorted(best["params"].items())),
                     "(reference)" if search["backend"] == "serial"
                     else _scores_as_serial(mine, serial),
                     computed, search["lookups"] - search["computed"]])
    tables = {"main": markdown_table(
        ["backend", "start-up (s)", "search (s)", "s/fit", "overhead/fit vs loky (s)",
         "torch threads/fit", "best CV acc", "best params", "scores = serial",
         "activations computed", "cache hits"], rows)}
    fits = [r for r in records if r["part"] == "ddp"]
    if fits:
        rows = []
        for task in dict.fromkeys(r["task"] for r in fits):
            mine = sorted((r for r in fits if r["task"] == task), key=lambda r: r["processes"])
            for r in mine:
                rows.append([_ddp_title(r), DDP_PROCESSES.get(
                    r["processes"], f"{r['processes']} x {{threads}}").format(
                        threads=r["threads"]), f"{r['wall']:.1f}", r["epochs"],
                    f"{r['accuracy']:.3f}"])
            if len(mine) > 1:
                one, many = mine[0], mine[-1]
                rows.append([_ddp_title(one), f"{many['processes']} vs {one['processes']}",
                             f"{many['wall'] / one['wall']:.2f}x", "",
                             f"{many['accuracy'] - one['accuracy']:+.3f}"])
        tables["ddp"] = markdown_table(["fit", "processes x torch threads", "fit (s)",
                                        "epochs", "test accuracy"], rows)
    return tables


TABLES = {"adaptation": adaptation_tables, "auto": auto_tables, "cache_keys": cache_keys_tables,
          "convergence": convergence_tables, "demo": demo_tables,
          "distillation": distillation_tables,
          "export": export_tables,
          "frozen_grid": frozen_grid_tables,
          "inspection": inspection_tables, "linear_transfer": linear_transfer_tables,
          "memory": memory_tables, "overhead": overhead_tables,
          "partial_labels": partial_labels_tables, "privacy": privacy_tables,
          "probe_penalty_search": probe_penalty_search_tables,
          "probe_solver": probe_solver_tables, "scale_out": scale_out_tables,
          "scaling": scaling_tables, "strategies": strategies_tables,
          "transferability": transferability_tables}


def generate(names=None) -> dict:
    """``{"<name>/<table>": markdown}`` of every results file ``TABLES`` knows."""
    tables = {}
    for name in names or TABLES:
        meta, records = read_results(RESULTS / f"{name}.json")
        tables[f"{name}/meta"] = meta_block(name, meta)
        tables.update({f"{name}/{key}": text
                       for key, text in TABLES[name](meta, records).items()})
    return tables


def marked(text: str) -> dict:
    """``{name: body}`` of the marked tables in ``text``."""
    return {m["name"]: m["body"] for m in MARKED.finditer(text)}


def rewrite(text: str, tables: dict) -> str:
    """``text`` with the body of each marked table replaced by ``tables[name]``."""
    def body(match):
        if match["name"] not in tables:
            raise KeyError(f"{match['name']!r} is marked in the README but nothing generates it;"
                           f" known: {sorted(tables)}")
        return f"{match[1]}{tables[match['name']]}\n{match[4]}"

    return MARKED.sub(body, text)


def differences(text: str, tables: dict) -> list:
    """Names of the tables whose README copy differs from the generated one,
    is missing from the README, or is marked there but not generated."""
    shown = marked(text)
    found = [name for name, body in shown.items()
             if name not in tables or body != tables[name] + "\n"]
    return found + [f"{name} (not in the README)" for name in tables if name not in shown]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if a README table differs from its results")
    args = parser.parse_args(argv)
    text = README.read_text()
    tables = generate()
    if args.check:
        differ = differences(text, tables)
        for name in differ:
            print(f"{README.relative_to(ROOT)}: table {name} differs from "
                  "benchmarks/results; run python benchmarks/report.py", file=sys.stderr)
        return 1 if differ else 0
    new = rewrite(text, tables)
    if new != text:
        README.write_text(new)
    missing = [name for name in tables if name not in marked(new)]
    for name in missing:
        print(f"not in the README (add its markers): {name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
