"""`ensemble`: combine leaderboard candidates by a named method, reusing their out-of-fold predictions."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.model_selection import cross_val_predict

from workbench.deadline import Deadline
from workbench.ensemble.estimators import StackEnsemble, WeightedEnsemble
from workbench.errors import ModelError
from workbench.lookup import Registry
from workbench.models.compare import (Candidate, Leaderboard, compare, encode_target, fitting_together, member_cost,
                                      predict_scores, refit, refit_seconds, scoring_latency)
from workbench.models.metrics import loss, roc_auc, score
from workbench.settings import Settings, get_settings

METHODS: Registry = Registry("ensemble method")
# an ensemble built within ``max_latency_ms`` from its members' latencies can measure over it: members measured alone,
# each hot in the cache, score slower side by side (friedman: four members planned at 0.087 ms measured 0.101 ms).
# Such an ensemble is planned again, at most REPLANS times, its members' costs scaled by the excess measured, with a
# margin
REPLANS, REPLAN_MARGIN = 2, 0.95
LIMITED = ("select", "stack")  # the methods that take ``max_latency_ms`` and keep within it themselves


@dataclass
class EnsembleReport:
    """Members and weights, and the ensemble's scores next to its best member's."""

    method: str
    metric: str
    members: list[str]
    weights: list[float]
    cv: float
    best_member: str
    best_member_cv: float
    correlation: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)
    test: float | None = None
    best_member_test: float | None = None

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"member": self.members, "weight": self.weights})

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "correlation"}

    def figure(self):
        from workbench.viz.figures import member_correlation  # start-up cost: no plotly in the CLI, service or workers

        return member_correlation(self.correlation)

    def _repr_html_(self) -> str:
        test = f"; test {self.test:.4f} against {self.best_member_test:.4f}" if self.test is not None else ""
        return (f"<p><b>Ensemble ({self.method})</b>: CV {self.metric} {self.cv:.4f} against its best member "
                f"{self.best_member} {self.best_member_cv:.4f}{test}</p>" + self.to_frame().to_html(index=False))


@dataclass
class EnsembleResult:
    candidate: Candidate
    report: EnsembleReport

    def _repr_html_(self) -> str:
        return self.report._repr_html_()


def ensemble(method: str, board: Leaderboard, X: pd.DataFrame, y: pd.Series, *, members: list[str] | None = None,
             top: int = 5, test: tuple[pd.DataFrame, pd.Series] | None = None, deadline: Deadline | None = None,
             settings: Settings | None = None, **options) -> EnsembleResult:
    """Build an ensemble of leaderboard candidates (default: the ``top`` finished ones) with ``method``.

    ``average``, ``vote``, ``select`` and ``stack`` reuse the members' out-of-fold predictions
    (no refit for the CV score); ``bag``, ``boost`` and ``random_forest`` train a new ensemble
    model over a ``base`` zoo model. The result's candidate joins the leaderboard. With a ``deadline``, an ensemble
    whose members' refits on all rows would not end before it is refused (ModelError) before any is refit.
    ``max_latency_ms`` (``select``, ``stack``): the members it holds score a row together within it, planned from
    their latencies and planned again while the ensemble measures over it (``REPLANS``).

    Examples
    --------
    >>> from workbench.data import load, clean
    >>> from workbench.models import compare
    >>> c = clean(load("demo", n_rows=300), "churn")
    >>> lb = compare(c.X, c.y, task="binary", models=["linear", "naive_bayes"], folds=3, progress=False)
    >>> ensemble("select", lb, c.X, c.y).candidate.name
    'ensemble:select'
    """
    s = settings or get_settings()
    build = METHODS.get(method)
    chosen = _members(board, members, top, X, y) if method not in FROM_SCRATCH else []
    codes, _ = encode_target(y, board.task)
    limit = options.get("max_latency_ms")
    for _ in range(REPLANS + 1):
        try:
            cand, weights = build(chosen, board, X, y, codes, s, Deadline.of(deadline), **options)
        except ModelError as e:
            if options.get("max_latency_ms") == limit:
                raise
            raise ModelError(f"no '{method}' ensemble of these members scores a row within {limit:g} ms: side by "
                             f"side they measured {cand.latency_ms:.3f} ms; raise max_latency_ms or name faster "
                             "members") from e
        cand.name = f"ensemble:{method}"
        if cand.estimator is None:
            refit(cand, X, y, settings=s)
        cand.latency_ms, cand.latency_100_ms = scoring_latency(cand.estimator, X.iloc[:100], board.task, _k(board))
        if not limit or cand.latency_ms <= limit:
            break
        # measured over the limit its members' latencies planned for: planned again, each member's cost taken as
        # the plan's times what side by side measured
        planned = sum(member_cost(c) for c in _kept(chosen, method, weights, options["max_latency_ms"]))
        options["max_latency_ms"] = limit * planned / cand.latency_ms * REPLAN_MARGIN
    metric = board.metric
    held = fitting_together(chosen, options.get("max_latency_ms")) if method == "stack" else chosen
    best = min(held, key=lambda c: loss(metric, c.cv[metric])) if held else board.best
    report = EnsembleReport(method, metric, [c.name for c in held] or [cand.name], list(weights), cand.cv[metric],
                            best.name, best.cv[metric], _correlation(held, board.task))
    if test is not None:
        Xt, yt = test
        k = len(board.classes) if board.classes else 0
        tc, _ = (encode_target(yt, board.task) if board.task == "regression"
                 else (pd.Categorical(yt, categories=board.classes).codes, None))
        report.test = score(board.task, tc, predict_scores(cand.estimator, Xt, board.task, k))[metric]
        if best.estimator is None:
            refit(best, X, y, settings=s)
        report.best_member_test = score(board.task, tc, predict_scores(best.estimator, Xt, board.task, k))[metric]
    return EnsembleResult(cand, report)


def _kept(chosen: list[Candidate], method: str, weights, max_latency_ms: float) -> list[Candidate]:
    """The members an ensemble built with ``max_latency_ms`` holds: a selection's of weight above 0, a stack's that
    fit the limit together."""
    if method == "stack":
        return fitting_together(chosen, max_latency_ms)
    return [c for c, w in zip(chosen, weights) if w > 0]


def _members(board: Leaderboard, names, top, X, y) -> list[Candidate]:
    if names:
        chosen = [board[n] for n in names]
    else:
        # ensembles are not default members: a stack over a selection counts its members twice
        chosen = [c for c in board.candidates if c.status == "ok" and c.model != "ensemble"][:top]
    if len(chosen) < 2:
        raise ModelError(f"an ensemble needs at least two members; got {len(chosen)} ({', '.join(c.name for c in chosen)}). "
                         "Train more models or name them with members=[...]")
    for c in chosen:
        if c.task != board.task:
            raise ModelError(f"member {c.name} was trained for {c.task}, the leaderboard is {board.task}")
        if c.oof is None:
            raise ModelError(f"member {c.name} has no out-of-fold predictions ({c.status}); leave it out or retrain it")
        if len(c.oof) != len(y):
            raise ModelError(f"member {c.name} was trained on {len(c.oof)} rows, these data have {len(y)}: "
                             "members must come from the same training table")
        cols = getattr(c.estimator, "feature_names_in_", None)
        if cols is not None and _names(cols) != _names(X.columns):
            raise ModelError(f"member {c.name} was trained on other columns than these data")
    return chosen


def _names(columns) -> list[str]:
    """Column names as every estimator keeps them (LightGBM turns spaces and punctuation into '_')."""
    return [re.sub(r"[^0-9A-Za-z_]", "_", str(c)) for c in columns]


def _scores(oof: np.ndarray, weights) -> np.ndarray:
    return sum(w * p for w, p in zip(weights, oof))


def _candidate(board, name, params, oof, codes, estimator) -> Candidate:
    folds_scores = pd.DataFrame([score(board.task, codes[te], oof[te]) for _, te in board.folds])
    return Candidate(name, "ensemble", params, board.task, cv=folds_scores.mean().to_dict(),
                     cv_std=folds_scores.std(ddof=0).to_dict(), oof=oof, estimator=estimator, fit_time=0.0, predict_time=0.0)


def _fitted(members, X, y, s, deadline: Deadline):
    """The members fitted on all rows; refused (ModelError) before any refit that would not end by ``deadline``."""
    if not deadline.fits(refit_seconds(members)):
        raise ModelError(f"refitting {len(members)} members would take about {refit_seconds(members):.0f} s, "
                         f"{deadline.left():.0f} s are left; give a larger budget or fewer members")
    for c in members:
        if c.estimator is None:
            refit(c, X, y, settings=s)
    return [(c.name, c.estimator) for c in members]


def _k(board):
    return len(board.classes) if board.classes else 0


def _average(members, board, X, y, codes, s, deadline, weights=None):
    if board.task != "regression":
        raise ModelError("'average' is for regression; use 'vote' (soft) to average class probabilities")
    w = np.ones(len(members)) / len(members) if weights is None else np.asarray(weights, float) / np.sum(weights)
    est = WeightedEnsemble.from_fitted(_fitted(members, X, y, s, deadline), w, task=board.task)
    return _candidate(board, "average", {"weights": list(w)}, _scores([c.oof for c in members], w), codes, est), w


def _vote(members, board, X, y, codes, s, deadline, voting="soft", weights=None):
    if board.task == "regression":
        raise ModelError("'vote' is for classification; use 'average' for regression")
    w = np.ones(len(members)) / len(members) if weights is None else np.asarray(weights, float) / np.sum(weights)
    est = WeightedEnsemble.from_fitted(_fitted(members, X, y, s, deadline), w, task=board.task, voting=voting, n_classes=_k(board))
    if voting == "soft":
        oof = _scores([c.oof for c in members], w)
    else:  # the share of weighted votes per class stands in for a probability when scoring
        oof = _scores([np.eye(_k(board))[c.oof.argmax(axis=1)] for c in members], w)
    return _candidate(board, "vote", {"voting": voting, "weights": list(w)}, oof, codes, est), w


def _select(members, board, X, y, codes, s, deadline, rounds: int = 50, max_latency_ms: float | None = None):
    """Greedy ensemble selection with replacement (Caruana et al., 2004) on out-of-fold predictions. With
    ``max_latency_ms``, a member joins only while the chosen members together still score a row within it (an
    ensemble scores every member it holds: ``member_cost``). Members that end with weight 0 are left
    out of the model."""
    metric = board.metric
    measure = _one_metric(board.task, metric)
    cost = np.array([member_cost(c) for c in members])
    counts = np.zeros(len(members))
    total = None
    best_loss, best_counts = np.inf, None
    for _ in range(rounds):
        spent = cost[counts > 0].sum()
        fits = [counts[j] > 0 or not max_latency_ms or spent + cost[j] <= max_latency_ms for j in range(len(members))]
        trial = [loss(metric, measure(codes, (c.oof if total is None else (total + c.oof)) / (counts.sum() + 1)))
                 if fits[j] else np.inf for j, c in enumerate(members)]
        j = int(np.argmin(trial))
        if trial[j] == np.inf:
            break
        counts[j] += 1
        total = members[j].oof.copy() if total is None else total + members[j].oof
        if trial[j] < best_loss - 1e-12:
            best_loss, best_counts = trial[j], counts.copy()
    if best_counts is None:
        raise ModelError(f"no member scores a row within {max_latency_ms:g} ms; raise max_latency_ms")
    w = best_counts / best_counts.sum()
    kept = [c for c, wi in zip(members, w) if wi > 0]
    est = WeightedEnsemble.from_fitted(_fitted(kept, X, y, s, deadline), w[w > 0], task=board.task, n_classes=_k(board) or 2)
    return _candidate(board, "select", {"weights": list(w), "rounds": rounds}, _scores([c.oof for c in members], w), codes, est), w


def _one_metric(task: str, metric: str):
    """``metric`` alone, as ``score`` computes it: the greedy selection asks it rounds × members times, and every
    metric of the task each time cost seconds a round on a busy machine."""
    alone = {"roc_auc": (lambda y, p: roc_auc(y, p[:, 1])) if task == "binary" else None,
             "log_loss": lambda y, p: skm.log_loss(y, np.clip(p, 1e-15, 1), labels=np.arange(p.shape[1])),
             "rmse": lambda y, p: float(np.sqrt(np.mean((y - p) ** 2))),
             "mae": lambda y, p: float(np.mean(np.abs(y - p)))}.get(metric)
    return alone or (lambda y, p: score(task, y, p)[metric])


def _stack(members, board, X, y, codes, s, deadline, passthrough: bool = False, meta=None,
           max_latency_ms: float | None = None):
    """A meta-learner on the members' out-of-fold predictions. With ``max_latency_ms``, the best members (in the
    order given) whose scoring times together fit it (a stack scores every member: ``fitting_together``)."""
    members = fitting_together(members, max_latency_ms)
    if len(members) < 2:
        raise ModelError(f"fewer than two members score a row together within {max_latency_ms:g} ms; "
                         "raise max_latency_ms or name faster members")
    params = dict(task=board.task, n_classes=_k(board) or 2, passthrough=passthrough, meta=meta)
    proto = StackEnsemble([], **params)
    F = proto.features([c.oof for c in members], X)
    method = "predict" if board.task == "regression" else "predict_proba"
    # the meta-learner's own out-of-fold predictions, on the leaderboard's folds: an honest CV score for the stack
    oof = cross_val_predict(proto._meta(), F, codes, cv=board.folds, method=method)
    est = StackEnsemble.from_oof(_fitted(members, X, y, s, deadline), [c.oof for c in members], X, codes, **params)
    weights = np.ravel(getattr(est.meta_, "coef_", np.full(len(members), np.nan)))[:len(members)]
    return _candidate(board, "stack", {"passthrough": passthrough}, np.asarray(oof, float), codes, est), weights


def _scratch(model):
    def build(members, board, X, y, codes, s, deadline, base: str | None = None, **params):
        p = dict(params, **({"base": base} if base else {}))
        lb = compare(X, y, task=board.task, models=[model], params={model: p}, metric=board.metric,
                     folds=len(board.folds), time_budget=deadline, progress=False, settings=s)
        return lb.best, [1.0]
    return build


FROM_SCRATCH = ("bag", "boost", "random_forest")
METHODS.register("average", _average)
METHODS.register("vote", _vote)
METHODS.register("stack", _stack)
METHODS.register("select", _select)
for _name in FROM_SCRATCH:
    METHODS.register(_name, _scratch(_name))


def _correlation(members: list[Candidate], task: str) -> pd.DataFrame:
    """How alike the members' out-of-fold predictions are: diverse members make better ensembles."""
    if not members:
        return pd.DataFrame()
    cols = {c.name: (c.oof if c.oof.ndim == 1 else (c.oof[:, 1] if c.oof.shape[1] == 2 else c.oof.max(axis=1))) for c in members}
    return pd.DataFrame(cols).corr()
