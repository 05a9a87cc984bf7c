"""Metrics for each task, and the data behind ROC, PR, calibration and residual curves."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn import metrics as skm

# the metric each task is ranked by by default, and whether larger is better
DEFAULT_METRIC = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}
GREATER_IS_BETTER = {
    "accuracy": True, "balanced_accuracy": True, "precision": True, "recall": True, "f1": True,
    "roc_auc": True, "pr_auc": True, "log_loss": False, "rmse": False, "mae": False, "r2": True, "mape": False,
}
TASK_METRICS = {
    "binary": ["roc_auc", "accuracy", "balanced_accuracy", "precision", "recall", "f1", "pr_auc", "log_loss"],
    "multiclass": ["log_loss", "accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc"],
    "regression": ["rmse", "mae", "r2", "mape"],
}


def score(task: str, y_true, pred) -> dict[str, float]:
    """All metrics of a task. ``y_true`` holds class codes 0..k-1 (classification) or numbers;
    ``pred`` holds class probabilities (n × k) or predicted numbers.

    Examples
    --------
    >>> score("regression", [1.0, 2.0], [1.0, 2.0])["rmse"]
    0.0
    >>> "mape" in score("regression", [0.0, 2.0], [1.0, 2.0])  # no percentage of a zero
    False
    """
    y = np.asarray(y_true)
    p = np.asarray(pred, dtype="float64")
    if task == "regression":
        out = {"rmse": float(np.sqrt(skm.mean_squared_error(y, p))), "mae": float(skm.mean_absolute_error(y, p)),
               "r2": float(skm.r2_score(y, p))}
        if (y != 0).all():  # a percentage of zero is no number (scikit-learn divides by 2e-16 and says 4e14)
            out["mape"] = float(skm.mean_absolute_percentage_error(y, p))
        return out
    k = p.shape[1]
    labels = np.arange(k)
    hard = p.argmax(axis=1)
    avg = "binary" if task == "binary" else "macro"
    with warnings.catch_warnings():  # a few rows of one class (a fold, a live segment): "classes not in y_true"
        warnings.simplefilter("ignore", UserWarning)
        balanced = skm.balanced_accuracy_score(y, hard)
    out = {
        "accuracy": skm.accuracy_score(y, hard), "balanced_accuracy": balanced,
        "precision": skm.precision_score(y, hard, average=avg, zero_division=0, labels=None if avg == "binary" else labels),
        "recall": skm.recall_score(y, hard, average=avg, zero_division=0, labels=None if avg == "binary" else labels),
        "f1": skm.f1_score(y, hard, average=avg, zero_division=0, labels=None if avg == "binary" else labels),
        "log_loss": skm.log_loss(y, np.clip(p, 1e-15, 1), labels=labels),
    }
    present = np.unique(y)
    if len(present) < 2:
        out["roc_auc"] = out["pr_auc"] = float("nan")
    elif task == "binary":
        out["roc_auc"] = roc_auc(y, p[:, 1])
        out["pr_auc"] = skm.average_precision_score(y, p[:, 1])
    else:
        onehot = (y[:, None] == labels[None, :]).astype(int)
        cols = [c for c in labels if 0 < onehot[:, c].sum() < len(y)]
        out["roc_auc"] = skm.roc_auc_score(onehot[:, cols], p[:, cols], average="macro")
        out["pr_auc"] = skm.average_precision_score(onehot[:, cols], p[:, cols], average="macro")
    return {m: float(out[m]) for m in TASK_METRICS[task]}


def roc_auc(y, p) -> float:
    """Two classes' ROC AUC (class code 1 positive) as the Mann-Whitney statistic of the scores' ranks, ties counting
    half: the value ``roc_auc_score`` gives, 4x faster on 20,000 rows (it builds the whole curve), which the greedy
    ensemble selection asks for hundreds of times. Both classes must be present."""
    r = rankdata(p)
    pos = np.asarray(y) == 1
    n1 = int(pos.sum())
    return float((r[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * (len(r) - n1)))


def is_better(metric: str, a: float, b: float) -> bool:
    """Whether score ``a`` beats ``b`` on ``metric``; NaN never wins."""
    if np.isnan(a):
        return False
    return np.isnan(b) or loss(metric, a) < loss(metric, b)


def loss(metric: str, value: float) -> float:
    """A score as a loss, 0 at best: a lower-is-better metric as it is, a greater-is-better one (each ends at 1) as
    its distance to 1. Ratios of losses compare models across metrics (twice the error, whatever the metric)."""
    return 1.0 - value if GREATER_IS_BETTER[metric] else value


def roc_data(y_true, proba, classes) -> pd.DataFrame:
    """False and true positive rates per class (one-vs-rest), for ROC curves."""
    return _per_class_curve(y_true, proba, classes, skm.roc_curve, ("false_positive_rate", "true_positive_rate"))


def pr_data(y_true, proba, classes) -> pd.DataFrame:
    """Precision and recall per class (one-vs-rest), for precision–recall curves."""
    def curve(y, s):
        precision, recall, thr = skm.precision_recall_curve(y, s)
        return recall, precision, thr
    return _per_class_curve(y_true, proba, classes, curve, ("recall", "precision"))


def calibration_data(y_true, proba, classes, n_bins: int = 10) -> pd.DataFrame:
    """Mean predicted probability against observed frequency, per class, in quantile bins."""
    from sklearn.calibration import calibration_curve

    rows = []
    for k in _curve_classes(classes):
        y = (np.asarray(y_true) == k).astype(int)
        observed, predicted = calibration_curve(y, np.asarray(proba)[:, k], n_bins=n_bins, strategy="quantile")
        rows.append(pd.DataFrame({"class": str(classes[k]), "predicted": predicted, "observed": observed}))
    return pd.concat(rows, ignore_index=True)


def residual_data(y_true, pred) -> pd.DataFrame:
    y, p = np.asarray(y_true, dtype="float64"), np.asarray(pred, dtype="float64")
    return pd.DataFrame({"actual": y, "predicted": p, "residual": y - p})


def _curve_classes(classes) -> list[int]:
    return [1] if len(classes) == 2 else list(range(len(classes)))


def _per_class_curve(y_true, proba, classes, fn, names) -> pd.DataFrame:
    rows = []
    for k in _curve_classes(classes):
        y = (np.asarray(y_true) == k).astype(int)
        if 0 < y.sum() < len(y):
            x, yv, _ = fn(y, np.asarray(proba)[:, k])
            rows.append(pd.DataFrame({"class": str(classes[k]), names[0]: x, names[1]: yv}))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["class", *names])
