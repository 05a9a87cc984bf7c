"""Ensemble estimators that scikit-learn lacks: weighted averaging/voting of fitted members, and stacking
whose meta-learner trains on out-of-fold predictions already computed by the leaderboard."""
from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.model_selection import cross_val_predict
from sklearn.utils.metaestimators import available_if

from workbench import kinds
from workbench.models import contrib
from workbench.models.compare import predict_scores


class _Members(BaseEstimator):
    """What both ensembles share: scoring with their fitted members, and the class codes they predict."""

    def _member_scores(self, X):
        k = 0 if self.task == "regression" else self.n_classes
        return [predict_scores(e, X, self.task, k) for e in self.estimators_]

    def _set_classes(self):
        self.classes_ = np.arange(self.n_classes) if self.task != "regression" else None
        return self


class WeightedEnsemble(_Members):
    """Weighted mean of the members' predictions: averaging (regression), soft or hard voting, or the
    weights found by greedy ensemble selection.

    Parameters
    ----------
    estimators : list of (name, estimator); fitted by ``fit`` (or already fitted, see ``from_fitted``).
    weights : one non-negative weight per member (normalized to sum to one).
    task : binary, multiclass or regression.
    voting : "soft" (mean probabilities) or "hard" (weighted majority of the predicted classes; no predict_proba).
    n_classes : number of classes (classification).

    Attributes
    ----------
    estimators_ : the fitted members.  weights_ : the normalized weights.
    """

    def __init__(self, estimators, weights=None, task: str = "binary", voting: str = "soft", n_classes: int = 2):
        self.estimators = estimators
        self.weights = weights
        self.task = task
        self.voting = voting
        self.n_classes = n_classes

    def fit(self, X, y):
        self.estimators_ = [clone(e).fit(X, y) for _, e in self.estimators]
        return self._finish()

    @classmethod
    def from_fitted(cls, estimators, weights=None, **params) -> "WeightedEnsemble":
        ens = cls(estimators, weights, **params)
        ens.estimators_ = [e for _, e in estimators]
        return ens._finish()

    def _finish(self):
        w = np.ones(len(self.estimators)) if self.weights is None else np.asarray(self.weights, dtype=float)
        self.weights_ = w / w.sum()
        return self._set_classes()

    def _soft(self):
        return self.task != "regression" and self.voting == "soft"

    @available_if(_soft)
    def predict_proba(self, X):
        return sum(w * p for w, p in zip(self.weights_, self._member_scores(X)))

    def predict(self, X):
        scores = self._member_scores(X)
        if self.task == "regression":
            return sum(w * p for w, p in zip(self.weights_, scores))
        if self.voting == "soft":
            return self.predict_proba(X).argmax(axis=1)
        votes = np.zeros((len(X), self.n_classes))
        for w, p in zip(self.weights_, scores):
            votes[np.arange(len(X)), p.argmax(axis=1)] += w
        return votes.argmax(axis=1)


class StackEnsemble(_Members):
    """A meta-learner on the members' out-of-fold predictions (log-odds for classification),
    optionally with the original columns passed through.

    ``fit`` computes the out-of-fold predictions itself; ``from_oof`` reuses the leaderboard's.
    """

    def __init__(self, estimators, meta=None, task: str = "binary", n_classes: int = 2, passthrough: bool = False, cv: int = 5):
        self.estimators = estimators
        self.meta = meta
        self.task = task
        self.n_classes = n_classes
        self.passthrough = passthrough
        self.cv = cv

    def fit(self, X, y):
        method = "predict" if self.task == "regression" else "predict_proba"
        oof = [cross_val_predict(clone(e), X, y, cv=self.cv, method=method) for _, e in self.estimators]
        self.estimators_ = [clone(e).fit(X, y) for _, e in self.estimators]
        self.meta_ = clone(self._meta()).fit(self.features(oof, X), y)
        return self._set_classes()

    @classmethod
    def from_oof(cls, estimators, oof: list[np.ndarray], X, y, **params) -> "StackEnsemble":
        ens = cls(estimators, **params)
        ens.estimators_ = [e for _, e in estimators]
        ens.meta_ = clone(ens._meta()).fit(ens.features(oof, X), y)
        return ens._set_classes()

    @classmethod
    def from_fitted(cls, estimators, meta_, **params) -> "StackEnsemble":
        """An ensemble from fitted members and a fitted meta-learner (what a model file holds)."""
        ens = cls(estimators, **params)
        ens.estimators_ = [e for _, e in estimators]
        ens.meta_ = meta_
        return ens._set_classes()

    def _meta(self):
        if self.meta is not None:
            return self.meta
        if self.passthrough:
            cls = lgb.LGBMRegressor if self.task == "regression" else lgb.LGBMClassifier
            return cls(n_estimators=200, learning_rate=0.05, num_leaves=15, verbose=-1, n_jobs=1)
        return RidgeCV() if self.task == "regression" else LogisticRegression(C=1.0, max_iter=2000)

    def features(self, member_scores: list[np.ndarray], X):
        """The meta-learner's inputs: each member's log-odds (or predictions), plus X when passing through."""
        F = self.member_features(member_scores)
        if not self.passthrough:
            return F
        return pd.concat([pd.DataFrame(F, index=X.index, columns=[f"member_{i}" for i in range(F.shape[1])]), X], axis=1)

    def member_features(self, member_scores: list[np.ndarray]) -> np.ndarray:
        """Each member's log-odds (classification) or predictions (regression), side by side."""
        cols = []
        for p in member_scores:
            p = np.asarray(p, dtype=float)
            if self.task == "regression":
                cols.append(p.reshape(-1, 1))
            else:
                p = np.clip(p, 1e-6, 1 - 1e-6)
                cols.append(np.log(p[:, 1:2] / p[:, :1]) if self.n_classes == 2 else np.log(p))
        return np.hstack(cols)

    def _classifier(self):
        return self.task != "regression"

    @available_if(_classifier)
    def predict_proba(self, X):
        return predict_scores(self.meta_, self.features(self._member_scores(X), X), self.task, self.n_classes)

    def predict(self, X):
        F = self.features(self._member_scores(X), X)
        return self.meta_.predict(F) if self.task == "regression" else self.predict_proba(X).argmax(axis=1)


# ---- the model kind: members and meta-learner written by their own kinds, scored by their own scorers ------------

def _write(est, folder: Path, stem: str, task: str) -> dict:
    members = [{"name": name, **kinds.write(fitted, folder, f"{stem}.{i}", task)}
               for i, ((name, _), fitted) in enumerate(zip(est.estimators, est.estimators_))]
    spec = {"task": est.task, "n_classes": est.n_classes, "members": members}
    if isinstance(est, WeightedEnsemble):
        # the weights as given: normalizing them again on reading moves an already normalized sum by a rounding
        weights = None if est.weights is None else [float(w) for w in est.weights]
        return spec | {"kind": "weighted", "weights": weights, "voting": est.voting}
    meta = kinds.write(est.meta_, folder, f"{stem}.meta", task)
    return spec | {"kind": "stack", "passthrough": est.passthrough, "cv": est.cv, "meta": meta}


def _read(spec: dict, folder: Path, task: str):
    members = [(m["name"], kinds.read(m, folder, task)) for m in spec["members"]]
    common = {"task": spec["task"], "n_classes": int(spec["n_classes"])}
    if spec["kind"] == "weighted":
        return WeightedEnsemble.from_fitted(members, spec["weights"], voting=spec["voting"], **common)
    if spec["kind"] == "stack":
        return StackEnsemble.from_fitted(members, kinds.read(spec["meta"], folder, task),
                                         passthrough=bool(spec["passthrough"]), cv=spec["cv"], **common)
    raise ValueError(f"unknown ensemble kind '{spec['kind']}' in model.json")


def _scorer(est, columns: kinds.Columns, task: str, n_classes: int) -> kinds.Scorer:
    """Each member's scorer once on the same matrix, combined as the ensemble combines."""
    if isinstance(est, WeightedEnsemble):  # a member with weight 0 changes nothing: it is not scored
        members = [kinds.scorer(e, columns, task, n_classes) for e, w in zip(est.estimators_, est.weights_) if w > 0]
        weights = [float(w) for w in est.weights_ if w > 0]
        if task == "regression" or est.voting == "soft":
            def weighted(X):
                out = weights[0] * members[0](X)
                for w, m in zip(weights[1:], members[1:]):
                    out = out + w * m(X)
                return out
            return weighted
        eye = np.eye(n_classes)

        def vote(X):  # a hard vote: the chosen class gets probability 1
            votes = np.zeros((len(X), n_classes))
            rows = np.arange(len(X))
            for w, m in zip(weights, members):
                votes[rows, m(X).argmax(axis=1)] += w
            return eye[votes.argmax(axis=1)]
        return vote
    members = [kinds.scorer(e, columns, task, n_classes) for e in est.estimators_]
    width = len(members) * (1 if task == "regression" or n_classes == 2 else n_classes)
    meta = kinds.scorer(est.meta_, [(f"member_{i}", None) for i in range(width)] + (columns if est.passthrough else []),
                        task, n_classes)

    def stacked(X):
        F = est.member_features([m(X) for m in members])
        return meta(np.hstack([F, X]) if est.passthrough else F)
    return stacked


def _contributions(est, layout: contrib.Layout, task: str, n_classes: int) -> contrib.Explainer | None:
    """Exact where the ensemble is linear in its members: a weighted mean of probabilities or values is the weighted
    sum of the members' contributions on that scale; a linear meta-learner carries its members' contributions (on
    the clipped log-odds or log-probabilities it reads) through its coefficients. Hard votes and other
    meta-learners: None (the model-agnostic estimate)."""
    natural = "value" if task == "regression" else "probability"
    o = contrib.outputs(task, n_classes)
    if isinstance(est, WeightedEnsemble):
        if task != "regression" and est.voting != "soft":
            return None
        used = [(e, float(w)) for e, w in zip(est.estimators_, est.weights_) if w > 0]
        members = [contrib.on_scale(contrib.explainer(e, layout, task, n_classes), natural, task) for e, _ in used]
        return contrib.weighted(members, [w for _, w in used], natural, o)
    meta = est.meta_
    if est.passthrough or not isinstance(meta, contrib.LINEAR) or len(getattr(meta, "classes_", range(o))) < n_classes:
        return None
    reads = {"regression": "value", "binary": "clipped log-odds", "multiclass": "clipped log-probability"}[task]
    members = [contrib.on_scale(contrib.explainer(e, layout, task, n_classes), reads, task) for e in est.estimators_]
    scale = "value" if task == "regression" else "log-odds" if task == "binary" else "margin"
    methods = "; ".join(sorted({m.method for m in members}))
    return contrib.combined(members, np.atleast_2d(meta.coef_), np.atleast_1d(meta.intercept_), scale,
                            f"the members' contributions through the linear meta-learner ({methods})")


kinds.register(kinds.Kind("ensemble", (WeightedEnsemble, StackEnsemble), _write, _read, _scorer,
                          contributions=_contributions))
