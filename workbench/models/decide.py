"""Probabilities to take at face value, and the decision that pays.

**Calibration.** A model's out-of-fold probabilities (each row scored by a model that never saw it) are mapped to
frequencies: two classes by a sigmoid (Platt: a logistic regression on the log-odds) or an isotonic step function,
whichever has the lower log loss on folds of those probabilities; more classes by a temperature (every class's log
probability divided by one number, then softmax: the probabilities still sum to one and the likeliest class stays the
likeliest — a per-class map would break the sum, and renormalizing undoes it). A map is kept only when it beats the
raw probabilities there. The calibrated model is a model kind of its own (``calibrated``: the inner model's files
and the map as JSON), so packages, the service and batch prediction score it like any other.

**Decisions.** Given what each outcome is worth (``{"tp": 100, "fp": -10, "fn": -100, "tn": 0}`` for two classes, or
``{actual: {decided: value}}`` for any number), the threshold on the positive class's probability that earns the
most per row on the out-of-fold predictions (two classes), or the class with the highest expected value under the
probabilities (more). The expected value of the usual rule (the likeliest class) is reported beside it.

Examples
--------
>>> import numpy as np
>>> y = np.array([0, 0, 1, 1]); p = np.array([[0.9, 0.1], [0.6, 0.4], [0.35, 0.65], [0.2, 0.8]])
>>> round(expected_calibration_error(y, p), 3)
0.262
>>> d = decide(y, p, {"tp": 10, "fp": -1, "fn": 0, "tn": 0}, ["no", "yes"])
>>> d.threshold <= 0.65, d.value_per_row
(True, 5.0)
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.special import softmax
from sklearn.base import BaseEstimator
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from workbench import kinds
from workbench.errors import WorkbenchError
from workbench.models import contrib

BINS = 10  # equal-width probability bins of the expected calibration error
EPS = 1e-6
MIN_GAIN = 0.002  # a calibration map is kept when it lowers the out-of-fold log loss by at least this (relative)
KEEP_ORDER = 1e-6  # the raw probability's weight in an isotonic map's output: no two rows the model ranks apart tie
OUTCOMES = ("tp", "fp", "fn", "tn")


def expected_calibration_error(y: np.ndarray, proba: np.ndarray) -> float:
    """The mean gap between the predicted probability and the observed frequency, over ``BINS`` equal-width bins of
    the top class's probability, weighted by the rows in each (0: the probabilities mean what they say)."""
    proba = np.asarray(proba, dtype=np.float64)
    top = proba.max(axis=1)
    hit = (proba.argmax(axis=1) == np.asarray(y)).astype(float)
    bins = np.minimum((top * BINS).astype(int), BINS - 1)
    gap = np.abs(np.bincount(bins, weights=top - hit, minlength=BINS))
    return float(gap.sum() / len(y))


@dataclass
class Calibration:
    """A fitted map from raw probabilities to calibrated ones (JSON-able): of the positive class (two classes), or of
    every class (``temperature``)."""

    method: str  # "sigmoid" or "isotonic" (two classes), "temperature" (more)
    params: dict

    def __call__(self, p: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of raw ones: the positive class's (two classes), else rows of every class's."""
        if self.method == "temperature":
            return softmax(np.log(np.clip(p, EPS, 1.0)) / self.params["t"], axis=1)
        if self.method == "sigmoid":
            z = self.params["a"] * _logit(p) + self.params["b"]
            return 1.0 / (1.0 + np.exp(-z))
        # an isotonic map is a staircase: rows the model ranks apart would tie and cost ROC AUC; a millionth of the
        # raw probability keeps their order (the calibration moves by at most 1e-6). Maps saved without it replay as
        # they were fitted
        keep = self.params.get("keep_order", 0.0)
        return (1 - keep) * np.interp(p, self.params["x"], self.params["y"]) + keep * p

    def probabilities(self, P: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (n × classes) of raw ones."""
        P = np.asarray(P, dtype=np.float64)
        if self.method == "temperature":
            return self(P)
        q = self(P[:, 1])
        return np.column_stack([1 - q, q])


@dataclass
class CalibrationReport:
    """What calibration did, measured on out-of-fold probabilities (the map itself fitted on other folds)."""

    method: str  # "none" when no map beat the raw probabilities
    log_loss_before: float
    log_loss_after: float
    ece_before: float
    ece_after: float
    candidates: dict = field(default_factory=dict)  # method → out-of-fold log loss

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        if self.method == "none":
            return (f"calibration: none kept (raw log loss {self.log_loss_before:.4f}; "
                    + ", ".join(f"{m} {v:.4f}" for m, v in self.candidates.items()) + ")")
        return (f"calibration: {self.method}, expected calibration error {self.ece_before:.4f} → {self.ece_after:.4f}, "
                f"log loss {self.log_loss_before:.4f} → {self.log_loss_after:.4f} (out of fold)")


def calibrate(y: np.ndarray, oof: np.ndarray, seed: int = 0) -> tuple[Calibration | None, CalibrationReport]:
    """The calibration map for out-of-fold probabilities ``oof`` (n × classes) of class codes ``y``, chosen by log
    loss on 5 folds of them; None when no map beats the raw probabilities by ``MIN_GAIN`` (or a class has fewer than
    two rows to fold)."""
    y = np.asarray(y).astype(int)
    P = np.clip(np.asarray(oof, dtype=np.float64), EPS, 1 - EPS)
    before, ece = _log_loss(y, P), expected_calibration_error(y, P)
    counts = np.bincount(y)
    n_folds = min(5, int(counts[counts > 0].min()))
    if n_folds < 2:
        return None, CalibrationReport("none", before, before, ece, ece)
    folds = StratifiedKFold(n_folds, shuffle=True, random_state=seed)
    held = {}
    for method in ("sigmoid", "isotonic") if P.shape[1] == 2 else ("temperature",):
        Q = np.empty_like(P)
        for fit, test in folds.split(P, y):
            Q[test] = _fit(method, y[fit], P[fit]).probabilities(P[test])
        held[method] = Q
    losses = {m: _log_loss(y, Q) for m, Q in held.items()}
    best = min(losses, key=losses.get)
    if losses[best] > before * (1 - MIN_GAIN):
        return None, CalibrationReport("none", before, before, ece, ece, losses)
    report = CalibrationReport(best, before, losses[best], ece, expected_calibration_error(y, held[best]), losses)
    return _fit(best, y, P), report


def _fit(method: str, y: np.ndarray, P: np.ndarray) -> Calibration:
    """The map ``method`` fitted to probabilities ``P`` (n × classes) of class codes ``y``."""
    if method == "temperature":  # one number, on the log scale: the log loss is smooth and has one minimum there
        def loss(log_t):
            return _log_loss(y, Calibration("temperature", {"t": np.exp(log_t)})(P))
        log_t = minimize_scalar(loss, bounds=(-3.0, 3.0), method="bounded").x
        return Calibration("temperature", {"t": float(np.exp(log_t))})
    p = P[:, 1]
    if method == "sigmoid":
        lr = LogisticRegression(C=1e6).fit(_logit(p).reshape(-1, 1), y)
        return Calibration("sigmoid", {"a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])})
    iso = IsotonicRegression(y_min=EPS, y_max=1 - EPS, out_of_bounds="clip").fit(p, y)
    return Calibration("isotonic", {"x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist(),
                                    "keep_order": KEEP_ORDER})


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p / (1 - p))


def _log_loss(y: np.ndarray, P: np.ndarray) -> float:
    """The mean negative log probability of each row's class (``P``: n × classes)."""
    return float(-np.mean(np.log(np.clip(P[np.arange(len(y)), y], EPS, 1.0))))


class Calibrated(BaseEstimator):
    """A fitted classifier whose probabilities go through a ``Calibration``."""

    def __init__(self, estimator, calibration: Calibration):
        self.estimator = estimator
        self.calibration = calibration

    @property
    def classes_(self) -> np.ndarray:
        return self.estimator.classes_

    def predict_proba(self, X) -> np.ndarray:
        return self.calibration.probabilities(self.estimator.predict_proba(X))

    def predict(self, X) -> np.ndarray:
        return np.asarray(self.classes_)[self.predict_proba(X).argmax(axis=1)]


def _write(est: Calibrated, folder: Path, stem: str, task: str) -> dict:
    return {"calibration": asdict(est.calibration), "inner": kinds.write(est.estimator, folder, f"{stem}.inner", task)}


def _read(spec: dict, folder: Path, task: str) -> Calibrated:
    return Calibrated(kinds.read(spec["inner"], folder, task), Calibration(**spec["calibration"]))


def _scorer(est: Calibrated, columns: kinds.Columns, task: str, n_classes: int) -> kinds.Scorer:
    inner, calibration = kinds.scorer(est.estimator, columns, task, n_classes), est.calibration

    return lambda X: calibration.probabilities(inner(X))


def _contributions(est: Calibrated, layout: contrib.Layout, task: str, n_classes: int) -> contrib.Explainer:
    """The inner model's contributions carried through the map: a sigmoid map is linear on the log-odds, a
    temperature on the margins (exact: each contribution times the slope); otherwise the map moves the probability,
    shared among the contributions in proportion (the sum exact)."""
    inner = contrib.explainer(est.estimator, layout, task, n_classes)
    c = est.calibration
    if c.method == "sigmoid":
        odds = contrib.on_scale(inner, "log-odds", task)
        return contrib.combined([odds], np.array([[c.params["a"]]]), np.array([c.params["b"]]), "log-odds",
                                f"{odds.method}, through the sigmoid calibration")
    if c.method == "temperature" and inner.scale == "margin":
        return contrib.combined([inner], np.eye(n_classes) / c.params["t"], np.zeros(n_classes), "margin",
                                f"{inner.method}, through the temperature calibration")
    prob = contrib.on_scale(inner, "probability", task)
    return contrib.Explainer(lambda X: contrib.rescaled(prob(X), c), "probability",
                             f"{prob.method}, through the {c.method} calibration (shared in proportion)", prob.exact)


kinds.register(kinds.Kind("calibrated", (Calibrated,), _write, _read, _scorer, contributions=_contributions))


@dataclass
class Decision:
    """The decision rule that earns the most, and what it earns per row on out-of-fold predictions.

    values : {actual class: {decided class: value}}.  threshold : two classes: decide ``positive`` when its
    probability is at least this (None: the class of highest expected value).  curve : two classes: the value per
    row at each threshold (the profit curve).
    """

    classes: list
    values: dict
    threshold: float | None
    positive: str | None
    value_per_row: float
    argmax_value_per_row: float
    curve: pd.DataFrame | None = None

    def to_dict(self) -> dict:
        return {"classes": self.classes, "values": self.values, "threshold": self.threshold,
                "positive": self.positive, "value_per_row": self.value_per_row,
                "argmax_value_per_row": self.argmax_value_per_row}

    @classmethod
    def from_dict(cls, d: dict) -> "Decision":
        return cls(d["classes"], d["values"], d["threshold"], d["positive"], d["value_per_row"],
                   d["argmax_value_per_row"])

    def __call__(self, proba: np.ndarray) -> np.ndarray:
        """The decided class of each row of probabilities (n × classes)."""
        classes = np.asarray(self.classes, dtype=object)
        if self.threshold is not None:
            return np.where(proba[:, 1] >= self.threshold, classes[1], classes[0])
        return classes[(proba @ self._matrix()).argmax(axis=1)]

    def _matrix(self) -> np.ndarray:
        """values[actual][decided] as a matrix in class order."""
        return np.array([[float(self.values[str(a)][str(d)]) for d in self.classes] for a in self.classes])

    def __str__(self) -> str:
        rule = (f"decide '{self.positive}' from probability {self.threshold:.3f}" if self.threshold is not None
                else "decide the class of highest expected value")
        return (f"{rule}: {self.value_per_row:,.4g} per row out of fold, against {self.argmax_value_per_row:,.4g} "
                "for the likeliest class")


def value_matrix(values: dict, classes: list) -> dict:
    """``values`` as {actual: {decided: value}} over ``classes``: TP/FP/FN/TN (two classes, the second positive) or
    already by class; a clear error names what is missing."""
    names = [str(c) for c in classes]
    if set(values) <= set(OUTCOMES):
        if len(names) != 2:
            raise WorkbenchError(f"TP/FP/FN/TN values need two classes; this model has {len(names)}: give values as "
                                 "{actual: {decided: value}}")
        v = {k: float(values.get(k, 0.0)) for k in OUTCOMES}
        neg, pos = names
        return {pos: {pos: v["tp"], neg: v["fn"]}, neg: {pos: v["fp"], neg: v["tn"]}}
    missing = [a for a in names if a not in values] + [f"{a}→{d}" for a in names if a in values for d in names
                                                        if d not in values[a]]
    if missing:
        raise WorkbenchError(f"decision values miss {', '.join(missing[:5])}; give tp/fp/fn/tn (two classes) or a value "
                             f"for every actual and decided class among {', '.join(names)}")
    return {a: {d: float(values[a][d]) for d in names} for a in names}


def parse_values(text: str) -> dict:
    """``"tp=100,fp=-10,fn=-100,tn=0"`` or a JSON object, as ``value_matrix`` takes it."""
    text = text.strip()
    if text.startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise WorkbenchError(f"cannot read decision values as JSON ({exc}): write an object "
                                 '{"actual": {"decided": value}}') from None
    try:
        return {k.strip().lower(): float(v) for k, v in (part.split("=") for part in text.split(","))}
    except ValueError:
        raise WorkbenchError(f"cannot read decision values '{text}': write tp=100,fp=-10,fn=-100,tn=0 or a JSON "
                             "object {actual: {decided: value}}") from None


def decide(y: np.ndarray, proba: np.ndarray, values: dict, classes: list) -> Decision:
    """The rule that earns the most on out-of-fold probabilities ``proba`` of class codes ``y``."""
    y = np.asarray(y).astype(int)
    matrix = value_matrix(values, classes)
    names = [str(c) for c in classes]
    V = np.array([[matrix[a][d] for d in names] for a in names])
    argmax = float(V[y, proba.argmax(axis=1)].mean())
    if len(names) != 2:
        value = float(V[y, (proba @ V).argmax(axis=1)].mean())
        return Decision(names, matrix, None, None, value, argmax)
    # every distinct probability is a candidate threshold; the value at each is a cumulative sum over sorted rows
    p = proba[:, 1]
    order = np.argsort(-p, kind="stable")
    gain = V[y[order], 1] - V[y[order], 0]  # deciding positive instead of negative, row by row
    base = V[y, 0].sum()
    totals = base + np.concatenate([[0.0], np.cumsum(gain)])
    cuts = np.concatenate([[1.0 + EPS], p[order]])
    distinct = np.concatenate([p[order][1:] != p[order][:-1], [True]])
    keep = np.concatenate([[True], distinct])
    best = int(np.argmax(np.where(keep, totals, -np.inf)))
    curve = pd.DataFrame({"threshold": cuts[keep], "value_per_row": totals[keep] / len(y)})
    # deciding positive never (the first cut) is a threshold above every probability: 1 + EPS, never reached
    return Decision(names, matrix, float(cuts[best]), names[1], float(totals[best] / len(y)), argmax, curve)


def trust(estimator, oof: np.ndarray | None, y, task: str, classes: list | None,
          values: dict | None = None) -> tuple[object, CalibrationReport | None, Decision | None]:
    """The final model's estimator made trustworthy from its out-of-fold probabilities ``oof`` and labels ``y``:
    calibrated when a map helps, and the decision rule for ``values`` (any classes). Returns
    (estimator, what calibration did or None, decision or None)."""
    if task == "regression" or oof is None or np.isnan(oof).any():
        if values:
            raise WorkbenchError("decision values need a classifier with out-of-fold probabilities")
        return estimator, None, None
    codes = pd.Categorical(np.asarray(y), categories=classes).codes
    report = None
    if hasattr(estimator, "predict_proba"):
        calibration, report = calibrate(codes, oof)
        if calibration is not None:
            estimator = Calibrated(estimator, calibration)
            oof = calibration.probabilities(oof)
    return estimator, report, decide(codes, oof, values, classes) if values else None
