"""Free-text columns as numbers: words and word pairs weighted by TF-IDF and read by a linear model fitted on the
training labels. The model's out-of-fold score is the column's feature for training (a stacked feature: no row's
score comes from a model that saw its label) and its score from the full fit for every later row, beside the text's
length in words.

The fitted state is plain JSON (vocabulary, IDF weights, coefficients), and scoring a text is this module's own
tokenizer and a dot product — the same code for a table, a request and a stream, tested equal to scikit-learn's.
"""
from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict

from workbench.data.columns import read_text

_TOKEN = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default: words of two or more letters or digits
_URL = re.compile(r"https?://\S+|www\.\S+")
_DIGITS = re.compile(r"\d+")
MAX_TERMS = 50_000  # the vocabulary's size at most (words and word pairs seen in two texts or more)
FOLDS = 5
WORDS = "words"


def normalize(t: str) -> str:
    """Lower case; a web address is the word "url" and every number the digit 0, so neither splits the vocabulary."""
    return _DIGITS.sub("0", _URL.sub(" url ", t.lower()))


def words_of(t: str | None) -> list[str]:
    """A text's words (scikit-learn's tokens of the normalized text)."""
    return _TOKEN.findall(normalize(t)) if t else []


def terms(words: list[str]) -> list[str]:
    """Words and adjacent word pairs, as the vocabulary holds them (scikit-learn's 1–2 grams)."""
    return words + [f"{a} {b}" for a, b in zip(words, words[1:])]


def fit_text(texts: pd.Series, y: pd.Series, task: str, seed: int = 0) -> tuple[dict, np.ndarray] | None:
    """A text column's plan and its training features (out-of-fold scores, then the length in words): TF-IDF of words
    and word pairs (sublinear counts, IDF smoothed, rows of unit length) and a logistic regression (C=10) for
    classes or a ridge regression for a number. None when no word or pair is in two texts (nothing to learn from).

    Rows without a known target are scored by the full fit (cleaning drops them); so are the rows of a class seen
    once or twice too few for folds, where no fold could hold it out."""
    docs = [read_text(v) or "" for v in texts]
    vec = TfidfVectorizer(preprocessor=normalize, ngram_range=(1, 2), min_df=2, sublinear_tf=True,
                          max_features=MAX_TERMS, dtype=np.float64)
    try:
        Z = vec.fit_transform(docs)
    except ValueError:  # "empty vocabulary": numbers only, or no word in two texts
        return None
    target = pd.Series(np.asarray(y, dtype=object))
    known = target.notna().to_numpy()
    if task == "regression":
        model, method = Ridge(alpha=1.0), "predict"
    else:
        model, method = LogisticRegression(C=10, max_iter=2000), "decision_function"
    if known.sum() < 2 or (task != "regression" and target[known].nunique() < 2):
        return None
    y_fit = target[known].astype(float) if task == "regression" else target[known].astype(str)
    model.fit(Z[known], y_fit)
    scores = np.asarray(getattr(model, method)(Z), dtype=np.float64).reshape(len(docs), -1)
    counts = y_fit.map(y_fit.value_counts()).to_numpy()
    rows = np.flatnonzero(known)[counts >= 2] if task != "regression" else np.flatnonzero(known)
    held = y_fit[counts >= 2] if task != "regression" else y_fit
    n_splits = min(FOLDS, len(rows) if task == "regression" else int(held.value_counts().min()))
    if n_splits >= 2 and held.nunique() >= (1 if task == "regression" else 2):
        folds = (KFold(n_splits, shuffle=True, random_state=seed) if task == "regression"
                 else StratifiedKFold(n_splits, shuffle=True, random_state=seed))
        oof = np.asarray(cross_val_predict(clone(model), Z[rows], held, cv=folds, method=method)).reshape(len(rows), -1)
        if oof.shape[1] == scores.shape[1]:
            scores[rows] = oof
        else:  # a class too rare for folds is missing from theirs: its column keeps the full fit's score
            columns = [list(model.classes_).index(c) for c in sorted(held.unique())]
            scores[np.ix_(rows, columns)] = oof
    coef = np.atleast_2d(model.coef_)
    # one score for a number or two classes (the second class's log-odds), else one per class
    outputs = ["score"] if coef.shape[0] == 1 else [f"score_{c}" for c in model.classes_]
    vocab = sorted(vec.vocabulary_, key=vec.vocabulary_.get)
    plan = {"kind": "text", "terms": vocab, "idf": vec.idf_.tolist(), "coef": coef.tolist(),
            "intercept": np.atleast_1d(model.intercept_).tolist(), "outputs": outputs + [WORDS]}
    return plan, np.column_stack([scores, [len(words_of(d)) for d in docs]])


class TextEncoder:
    """A fitted text plan as a function: one raw text → its features (the full fit's scores, the length in words)."""

    def __init__(self, plan: dict):
        self.index = {t: i for i, t in enumerate(plan["terms"])}
        self.idf = np.asarray(plan["idf"], dtype=np.float64)
        self.coef = np.asarray(plan["coef"], dtype=np.float64).T  # terms × outputs
        self.intercept = np.asarray(plan["intercept"], dtype=np.float64)
        self.width = len(plan["outputs"])

    def __call__(self, t: str | None) -> tuple[float, ...]:
        words = words_of(t)
        counts = Counter(self.index[g] for g in terms(words) if g in self.index)
        if not counts:
            return (*self.intercept.tolist(), float(len(words)))
        at = np.fromiter(counts, dtype=np.intp, count=len(counts))
        weights = np.fromiter((1.0 + math.log(n) for n in counts.values()), dtype=np.float64, count=len(counts))
        weights *= self.idf[at]
        weights /= math.sqrt(float(weights @ weights))
        return (*(weights @ self.coef[at] + self.intercept).tolist(), float(len(words)))
