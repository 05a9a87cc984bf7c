"""What a model relies on (permutation importance) and how it learns with more data (learning curve)."""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance
from sklearn.model_selection import learning_curve as sk_learning_curve
from threadpoolctl import threadpool_limits

from workbench.models.compare import Candidate, encode_target
from workbench.models.zoo import get_model
from workbench.settings import Settings, get_settings

SCORER = {"binary": "roc_auc", "multiclass": "neg_log_loss", "regression": "neg_root_mean_squared_error"}


def feature_importance(candidate: Candidate, X: pd.DataFrame, y: pd.Series, *, max_rows: int = 2000, repeats: int = 3,
                       settings: Settings | None = None) -> pd.DataFrame:
    """How much the model's score drops when each column is shuffled (on up to ``max_rows`` training rows).

    Needs a refit candidate (``candidate.estimator``); works for every zoo model alike.
    """
    s = settings or get_settings()
    codes, _ = encode_target(y, candidate.task)
    rows = np.random.default_rng(s.seed).permutation(len(X))[:max_rows]
    with threadpool_limits(s.n_threads):
        r = permutation_importance(candidate.estimator, X.iloc[rows], codes[rows], scoring=SCORER[candidate.task],
                                   n_repeats=repeats, random_state=s.seed, n_jobs=1)
    frame = pd.DataFrame({"model": candidate.name, "feature": X.columns, "importance": r.importances_mean,
                          "std": r.importances_std})
    return frame.sort_values("importance", ascending=False, ignore_index=True)


def learning_curve(candidate: Candidate, X: pd.DataFrame, y: pd.Series, *, folds: int = 3,
                   settings: Settings | None = None) -> pd.DataFrame:
    """Training and validation score of the candidate's model at growing shares of the training rows."""
    s = settings or get_settings()
    codes, _ = encode_target(y, candidate.task)
    est = get_model(candidate.model).make(candidate.task, candidate.params, n_jobs=s.n_threads, seed=s.seed)
    with threadpool_limits(s.n_threads):
        sizes, train, valid = sk_learning_curve(est, X, codes, train_sizes=[0.1, 0.25, 0.5, 0.75, 1.0], cv=folds,
                                                scoring=SCORER[candidate.task], shuffle=True, random_state=s.seed)
    sign = -1 if SCORER[candidate.task].startswith("neg_") else 1
    return pd.DataFrame({"model": candidate.name, "rows": sizes, "train_score": sign * train.mean(axis=1),
                         "validation_score": sign * valid.mean(axis=1), "metric": SCORER[candidate.task].removeprefix("neg_")})
