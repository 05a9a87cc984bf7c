"""Cross-validate zoo models on the same folds and rank them on a leaderboard."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold
from threadpoolctl import threadpool_limits

from workbench import compute, kinds
from workbench.data.encode import matrix_of
from workbench.data.task import check_task
from workbench.deadline import Deadline
from workbench.errors import ModelError
from workbench.models.metrics import DEFAULT_METRIC, TASK_METRICS, loss, score
from workbench.models.zoo import EARLY_STOP, get_model, models_for, portfolio as portfolio_of
from workbench.progress import progress_bar
from workbench.settings import Settings, get_settings


@dataclass
class Candidate:
    """One model on the leaderboard, with its cross-validated scores and out-of-fold predictions."""

    name: str
    model: str
    params: dict
    task: str
    status: str = "ok"  # ok | failed | timeout | cancelled | skipped
    cv: dict[str, float] = field(default_factory=dict)
    cv_std: dict[str, float] = field(default_factory=dict)
    fit_time: float = float("nan")
    predict_time: float = float("nan")
    latency_ms: float = float("nan")  # one row through the scorer that would serve it (median)
    latency_100_ms: float = float("nan")  # 100 rows at once
    oof: np.ndarray | None = None
    error: str = ""
    fold_s: float = float("nan")  # stopped for its time: the seconds a fold was expected to take (measured or probed)
    estimator: BaseEstimator | None = None  # fitted on all training rows, once refit

    def row(self) -> dict:
        return {"model": self.name, "status": self.status, **self.cv,
                "fit_time_s": round(self.fit_time, 3), "predict_time_s": round(self.predict_time, 3),
                "latency_ms": round(self.latency_ms, 4), "latency_100_ms": round(self.latency_100_ms, 3), "note": self.error}


@dataclass
class Leaderboard:
    """Candidates ranked by a metric; ``best`` is the top one that finished."""

    candidates: list[Candidate]
    task: str
    metric: str
    classes: list | None = None
    folds: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list, repr=False)

    def __post_init__(self):
        self.sort()

    def sort(self) -> None:
        def rank(c: Candidate) -> tuple:
            return c.status != "ok", np.nan_to_num(loss(self.metric, c.cv.get(self.metric, np.nan)), nan=np.inf)
        self.candidates.sort(key=rank)

    def add(self, candidate: Candidate) -> None:
        self.candidates = [c for c in self.candidates if c.name != candidate.name] + [candidate]
        self.sort()

    @property
    def best(self) -> Candidate:
        for c in self.candidates:
            if c.status == "ok":
                return c
        raise ModelError("no model finished; raise the time budget or check the notes: " +
                         "; ".join(f"{c.name}: {c.status} {c.error}" for c in self.candidates))

    def within_latency(self, max_ms: float | None) -> tuple[list[Candidate], dict[str, str]]:
        """The finished candidates, best first, whose one-row scoring time is at most ``max_ms`` (None or 0: no
        limit; a candidate never measured passes), and why each other one was left out (finished, or stopped after its
        first fold for its latency)."""
        done = [c for c in self.candidates if c.status == "ok"]
        if not max_ms:
            return done, {}
        slow = {c.name: f"scores a row in {c.latency_ms:.2f} ms, over the limit of {max_ms:g} ms"
                        + (" (after its first fold: its other folds not run)" if c.status == "skipped" else "")
                for c in self.candidates if c.status in ("ok", "skipped") and c.latency_ms > max_ms}
        return [c for c in done if c.name not in slow], slow

    def __getitem__(self, name: str) -> Candidate:
        for c in self.candidates:
            if c.name == name:
                return c
        raise KeyError(f"no candidate '{name}' on the leaderboard: {', '.join(c.name for c in self.candidates)}")

    def __len__(self) -> int:
        return len(self.candidates)

    def to_frame(self) -> pd.DataFrame:
        frame = pd.DataFrame([c.row() for c in self.candidates])
        frame.insert(0, "rank", range(1, len(frame) + 1))
        cols = ["rank", "model", "status", *[m for m in TASK_METRICS[self.task] if m in frame], "fit_time_s",
                "predict_time_s", "latency_ms", "latency_100_ms", "note"]
        return frame[cols]

    def __str__(self) -> str:
        f = self.to_frame()
        return f.to_string(index=False, float_format=lambda v: f"{v:.4f}")

    def _repr_html_(self) -> str:
        return f"<p><b>Leaderboard</b> ({self.task}, ranked by {self.metric})</p>" + self.to_frame().to_html(
            index=False, float_format=lambda v: f"{v:.4f}")


# a member's share of an ensemble's own work as it scores a row (its call, its part of the combination): measured
# 0.003 ms a member on 2 cores; ensembles plan with a little more, so that one built within a limit is measured within it
MEMBER_MS = 0.005


def member_cost(c: Candidate) -> float:
    """What a candidate adds to an ensemble's time to score a row, in ms (one never measured: only ``MEMBER_MS``)."""
    return (c.latency_ms if np.isfinite(c.latency_ms) else 0.0) + MEMBER_MS


def fitting_together(candidates: list[Candidate], max_ms: float | None) -> list[Candidate]:
    """The candidates, in order, that together score a row within ``max_ms`` (an ensemble scores every member it
    holds, each costing ``member_cost``); all of them without a limit."""
    chosen, spent = [], 0.0
    for c in candidates:
        cost = member_cost(c)
        if not max_ms or spent + cost <= max_ms:
            chosen.append(c)
            spent += cost
    return chosen


def make_folds(y: pd.Series, task: str, folds: int = 5, *, groups=None, seed: int = 0):
    """The same folds for every model: stratified for classification, grouped when groups are given."""
    n = len(y)
    if groups is not None:
        splitter, args = GroupKFold(n_splits=folds), (np.zeros(n), y, groups)
    elif task == "regression":
        splitter, args = KFold(folds, shuffle=True, random_state=seed), (np.zeros(n),)
    else:
        smallest = int(pd.Series(y).value_counts().min())
        if smallest < 2:
            splitter, args = KFold(folds, shuffle=True, random_state=seed), (np.zeros(n),)
        else:
            splitter, args = StratifiedKFold(min(folds, smallest), shuffle=True, random_state=seed), (np.zeros(n), y)
    return [(np.asarray(a), np.asarray(b)) for a, b in splitter.split(*args)]


def encode_target(y: pd.Series, task: str) -> tuple[np.ndarray, list | None]:
    """Class codes 0..k-1 and the class labels (classification), or the numbers (regression)."""
    if task == "regression":
        return y.to_numpy(dtype="float64"), None
    classes = sorted(pd.unique(y.dropna()), key=lambda v: (str(type(v)), v))
    codes = pd.Categorical(y, categories=classes).codes
    return codes.astype("int64"), list(classes)


def compare(X: pd.DataFrame, y: pd.Series, *, task: str, models: list[str] | None = None, metric: str | None = None,
            folds: int = 5, groups=None, time_budget: float | Deadline | None = None, model_timeout: float | None = None,
            params: dict[str, dict] | None = None, settings: Settings | None = None,
            on_result: Callable[[Candidate, Leaderboard], None] | None = None, progress: bool = True,
            parallel: bool | None = None, portfolio: bool = False, max_latency_ms: float | None = None,
            last_round: Deadline | None = None) -> Leaderboard:
    """Cross-validate every model on the same folds; return the leaderboard with out-of-fold predictions.

    ``time_budget`` (seconds, or a ``Deadline``) bounds the whole comparison, the cluster's start included: models
    not started by then are cancelled, a model still running stops before a fold that would run over.
    ``last_round`` (a later ``Deadline``; default: the same) bounds the last round, where the models the first put off
    for their time run: a family not yet tried is worth more to what follows than tuning one that was.
    ``model_timeout`` bounds one model (default: twice its fair share of the time left when it starts; none for the
    first on each core, so a model asked for alone, and the first of the zoo, run while the budget lasts; none in the
    last round, where what was put off runs cheapest first). Models run
    in parallel across the cores (see ``workbench.compute``; ``parallel=False``: one by one in this process, each with
    every core); ``on_result`` is called as each one finishes. ``portfolio`` adds each model's proven configurations after the
    defaults (``lightgbm:p1``, ...: ``workbench.models.zoo.portfolio``), in rounds across the families.
    ``max_latency_ms``: a model whose first fold already scores a row slower than this (with ``LATENCY_SLACK``) stops
    there, skipped: its other folds would buy a candidate that cannot be chosen.

    Examples
    --------
    >>> from workbench.data import load, clean
    >>> c = clean(load("demo", n_rows=300), "churn")
    >>> lb = compare(c.X, c.y, task="binary", models=["linear", "naive_bayes"], folds=3, progress=False)
    >>> lb.best.status
    'ok'
    """
    s = settings or get_settings()
    check_task(task)
    metric = metric or DEFAULT_METRIC[task]
    if metric not in TASK_METRICS[task]:
        raise ModelError(f"metric '{metric}' does not apply to {task}. Valid metrics: {', '.join(TASK_METRICS[task])}")
    names = list(models) if models else models_for(task, len(X))
    for name in names:
        get_model(name, task)  # refused now, with the models that do the task
    codes, classes = encode_target(y, task)
    if classes is not None and len(classes) < 2:
        raise ModelError("the target has one class only; a classifier needs at least two")
    split = make_folds(pd.Series(codes), task, folds, groups=groups, seed=s.seed)
    configs = [(name, name, (params or {}).get(name, {})) for name in names]
    configs += portfolio_of(task, names, len(X)) if portfolio else []
    parallel = compute.uses_cluster(len(configs), s) if parallel is None else parallel
    n_jobs = compute.threads_per_task(len(configs), s) if parallel else s.n_threads
    if parallel:
        compute.start(len(configs), s)
    deadline = Deadline.of(time_budget)  # a number of seconds counts from here, once the workers are up
    last_round = last_round or deadline
    workers = compute.workers(s) if parallel else 1
    board = Leaderboard([], task, metric, classes, split)
    with _progress(len(configs), progress) as bar:  # closed on Ctrl-C too: no bar redrawn after "interrupted"
        rounds = _Rounds(configs, board, bar, on_result, fold=(split, n_jobs, s.seed, model_timeout),
                         deadlines=(deadline, last_round), latency=max_latency_ms, workers=workers,
                         shared=(X, codes), parallel=parallel, settings=s)
        rounds.first(list(range(len(names))))  # every family's defaults
        rounds.first(rounds.followers(list(range(len(names), len(configs))), last=False))  # then its proven ones
        rounds.last()
    return board


class _Rounds:
    """The comparison's two rounds over ``configs`` (name, model, params). The first: every family's defaults, then
    its proven configurations, each with its share of the time left (``fair_share``, by its place in the round);
    what is expected over its share is put off. The last: what was put off, once the cheaper ones are done, cheapest
    first, each with up to all the time left (a share would turn away one by one models the time left holds)."""

    def __init__(self, configs: list[tuple[str, str, dict]], board: Leaderboard, bar, on_result, *, fold: tuple,
                 deadlines: tuple[Deadline, Deadline], latency: float | None, workers: int, shared: tuple,
                 parallel: bool, settings: Settings):
        """``fold``: what every model's ``cross_validate`` shares (split, n_jobs, seed, timeout); ``deadlines``:
        the first round's and the last round's."""
        self.configs, self.board, self.bar, self.on_result = configs, board, bar, on_result
        self.task, self.fold, self.timeout = board.task, fold, fold[3]
        self.deadline, self.last_deadline = deadlines
        self.latency, self.workers, self.shared = latency, workers, shared
        self.parallel, self.settings = parallel, settings
        self.placed = 0  # the first round's configurations started so far: the next one's place
        self.later: list[tuple[int, Candidate]] = []  # put off for their time (a fold's expected seconds in fold_s)
        self.waiting: list[tuple[int, Candidate]] = []  # put off with their family's defaults, not started

    def record(self, cand: Candidate) -> None:
        self.board.add(cand)
        self.bar.update(1)
        self.bar.set_postfix_str(f"{cand.name}: {cand.cv.get(self.board.metric, float('nan')):.4f}"
                                 if cand.status == "ok" else f"{cand.name}: {cand.status}")
        if self.on_result:
            self.on_result(cand, self.board)

    def first(self, order: list[int]) -> None:
        """The configurations ``order`` names (places in ``configs``), each with its share by its place in the
        round; those stopped for their expected time are put off."""
        places = range(self.placed, self.placed + len(order))
        self.placed += len(order)
        shares = [None if self.timeout else fair_share(j, len(self.configs), self.workers) for j in places]
        for i, cand in self._run(order, shares, [j >= self.workers for j in places], {}, self.deadline):
            if cand.status == "timeout":
                self.later.append((i, cand))
            else:
                self.record(cand)

    def last(self) -> None:
        """What the first round put off, cheapest first, each with all the time left, then the proven configurations
        that waited for their family's defaults; with no time left, each is recorded as it stands."""
        put_off, self.later = sorted(self.later, key=lambda e: np.nan_to_num(e[1].fold_s)), []
        waiting, self.waiting = self.waiting, []
        if self.last_deadline.expired():
            for _, cand in put_off + waiting:
                self.record(cand)
            return
        order = [i for i, _ in put_off]
        for _, cand in self._run(order, [None] * len(order), [True] * len(order), {i: c.fold_s for i, c in put_off},
                                 self.last_deadline):
            self.record(cand)
        now = self.followers([i for i, _ in waiting], last=True)
        for _, cand in self._run(now, [None] * len(now), [True] * len(now), {}, self.last_deadline):
            self.record(cand)

    def followers(self, order: list[int], last: bool) -> list[int]:
        """Of the proven configurations ``order``, those to run now; those that wait for their family's defaults
        (put off: the configurations are larger, more trees or more neighbours' weights) go to ``waiting``. Recorded
        as not tried: those of a family whose defaults score a row over the latency limit (the configurations differ
        in size, not in how they score), and, in the ``last`` round, of one whose defaults did not finish."""
        done = {c.name: c for c in self.board.candidates}
        now = []
        for i in order:
            name, model, p = self.configs[i]
            own = done.get(model)
            if own is not None and own.status == "skipped" and np.isfinite(own.latency_ms):
                self.record(Candidate(name, model, p, self.task, status="skipped", latency_ms=own.latency_ms,
                                      error=f"not tried: {model}'s defaults score a row over the limit of "
                                            f"{self.latency:g} ms"))
            elif last and (own is None or own.status != "ok"):
                self.record(Candidate(name, model, p, self.task, status="timeout",
                                      error=f"not tried: {model}'s defaults did not finish in their time"))
            elif own is None:
                why = f"put off with {model}'s defaults, over their time: not started"
                self.waiting.append((i, Candidate(name, model, p, self.task, status="timeout", error=why)))
            else:
                now.append(i)
        return now

    def _run(self, order: list[int], shares: list[float | None], probes: list[bool], known: dict[int, float],
             deadline: Deadline) -> Iterator[tuple[int, Candidate]]:
        """The configurations ``order`` names, cross-validated by ``deadline``, each with its share and probe, as each
        finishes; ``known``: a fold's expected seconds, by place, where the first round told."""
        jobs = [(self.configs[i][1], self.configs[i][2], self.task, *self.fold, deadline, self.configs[i][0], share,
                 self.latency, probe, known.get(i, np.nan))
                for i, share, probe in zip(order, shares, probes)]
        for o in compute.run(cross_validate, jobs, shared=self.shared, deadline=deadline, parallel=self.parallel,
                             settings=self.settings) if jobs else ():
            name, model, p = self.configs[order[o.key]]
            yield order[o.key], (o.value if o.status == "ok" else
                                 Candidate(name, model, p, self.task, status=o.status, error=o.error))

LATENCY_SLACK = 1.25  # a first fold's latency is measured quickly, on fewer rows than the refit sees: only clear cases stop
# a model on a large table is first fitted on a PROBE share of a fold's training rows (at least PROBE_ROWS of them):
# from that fit's time its folds' time is expected (``expected_fold``), and one expected to run over its time is not
# started. Without it each slow family's first fold ran to the end and was thrown away (diamonds at 30 s: MLP and
# both forests, ~6 s of a 13 s comparison). A fit's time grows a little faster than its rows (deeper trees):
# PROBE_SLACK. On diamonds and adult the estimate was 1.0-2.6x a fold's real time for MLP and the forests. With 1,000
# rows at least, a table of 15,000 in two folds had no probe: a tuning trial of a forest ran a 5 s fold past a 3 s
# tuning (7 s in all), and auto had no time left for its ensembles; with 500 it is not started (3.7 s)
PROBE, PROBE_ROWS, PROBE_SLACK = 0.125, 500, 1.25
MIN_SHARE = 0.25  # a model may always take this share of the time left as it starts: one stopped early is wasted


def fair_share(i: int, n_models: int, workers: int) -> float | None:
    """The share of the time left when it starts that the ``i``-th of ``n_models`` may take: twice its fair share
    (at least MIN_SHARE), so a slow family cannot starve the rest; no limit but the deadline for the first on each
    worker."""
    return None if i < workers else min(1.0, max(MIN_SHARE, 2 * workers / (n_models - i)))


def cross_validate(X: pd.DataFrame, y: np.ndarray, name: str, params: dict, task: str, split, n_jobs: int,
                   seed: int, timeout: float | None = None, deadline: Deadline | None = None,
                   label: str | None = None, share: float | None = None,
                   max_latency_ms: float | None = None, probe: bool = False, fold_s: float = np.nan) -> Candidate:
    """One model on every fold (runs on a worker); stops between folds once over its time. ``label`` names the
    candidate (default: the model's name); ``share`` bounds it to that share of the time left as it starts. What the
    folds' fits learned (early stopping's number of trees, averaged) goes into the candidate's parameters, so that
    its refit repeats it. ``max_latency_ms``: after the first fold, a model that scores a row slower than this (times
    ``LATENCY_SLACK``) stops, skipped. Before each fold, all the folds left must be expected to end within its time,
    else it stops there (a model that cannot finish every fold is thrown away: better after one fold than after
    four); the first fold is expected to take ``fold_s`` when that is known (a first round measured it), or, with
    ``probe`` on a large table, what ``expected_fold`` says (a timeout with no fold run: not started)."""
    spec = get_model(name)
    stop = Deadline.of(deadline).within(timeout)
    stop = stop.share(share) if share else stop
    k = int(y.max()) + 1 if task != "regression" else 0
    oof = np.full((len(y), k), np.nan) if k else np.full(len(y), np.nan)
    fit_time = predict_time = 0.0
    scores, learned = [], []
    cand = Candidate(label or name, name, dict(params), task)
    with threadpool_limits(n_jobs):
        if np.isnan(fold_s):
            fold_s = expected_fold(spec, params, task, X, y, split[0][0], n_jobs, seed) if probe and stop.limited else 0.0
            source = f"from a fit on {PROBE:.1%} of a fold's rows"
        else:
            source = "as measured before"
        for train_idx, test_idx in split:
            # the folds' own work: the first fold's wall time may hold a library's import or a cold cache
            per_fold = (fit_time + predict_time) / len(scores) if scores else fold_s
            if not stop.fits(per_fold * (len(split) - len(scores))) or stop.expired():  # stop before, not after
                cand.status, cand.error = "timeout", _over_time(len(scores), len(split), per_fold, source, stop)
                cand.fold_s = per_fold or np.nan
                break
            est, fold_learned, seconds = _fit(spec, params, task, X, y, train_idx, n_jobs, seed)
            learned.append(fold_learned)
            t1 = time.time()
            pred = predict_scores(est, X.iloc[test_idx], task, k)
            predict_time += time.time() - t1
            fit_time += seconds
            oof[test_idx] = pred
            scores.append(score(task, y[test_idx], pred))
            if max_latency_ms and len(scores) == 1 and len(split) > 1:
                latency = scoring_latency(est, X.iloc[test_idx[:100]], task, k, budget_s=0.1)[0]
                if latency > LATENCY_SLACK * max_latency_ms:
                    cand.status = "skipped"
                    cand.latency_ms = latency
                    cand.error = (f"scores a row in {latency:.2f} ms after its first fold, over the limit of "
                                  f"{max_latency_ms:g} ms: its other folds not run")
                    break
    if cand.status == "ok":
        frame = pd.DataFrame(scores)
        cand.cv, cand.cv_std = frame.mean().to_dict(), frame.std(ddof=0).to_dict()
        cand.oof = oof
        if learned[0]:
            cand.params = {k: v for k, v in params.items() if k not in learned[0] and k != EARLY_STOP} | {
                k: int(round(np.mean([f[k] for f in learned]))) for k in learned[0]}
        cand.latency_ms, cand.latency_100_ms = scoring_latency(est, X.iloc[test_idx[:100]], task, k)
    if scores:
        cand.fit_time, cand.predict_time = fit_time / len(scores), predict_time / len(scores)
    return cand


def _over_time(done: int, folds: int, per_fold: float, source: str, stop: Deadline) -> str:
    """Why a model stopped for its time after ``done`` of its ``folds``."""
    left = f"over its time of {stop.left():.0f} s"
    if done:
        return (f"stopped after {done} of {folds} folds: the other {folds - done} expected to take "
                f"{per_fold * (folds - done):.0f} s, {left}")
    if per_fold:
        return f"expected to take {per_fold * folds:.0f} s for {folds} folds ({source}), {left}: not started"
    return "its time was used up before its first fold: not started"


def expected_fold(spec, params: dict, task: str, X: pd.DataFrame, y: np.ndarray, train_idx: np.ndarray, n_jobs: int,
                  seed: int) -> float:
    """Seconds one fold's fit is expected to take, from a fit on a ``PROBE`` share of its training rows, in proportion
    to the rows (0: no estimate). It errs high where a fit has a fixed part (a boosting's rounds on few rows): such a
    model is cheap, so it fits its time anyway; a model that errs low stops between folds, as without a probe. A fold
    too small for a probe to tell more than it costs, or a model that stops early (it learns another number of trees
    on fewer rows), gets no estimate."""
    n = int(len(train_idx) * PROBE)
    if n < PROBE_ROWS or params.get(EARLY_STOP):
        return 0.0
    rows = np.random.default_rng(seed).choice(train_idx, n, replace=False)
    return _fit(spec, params, task, X, y, rows, n_jobs, seed)[2] * PROBE_SLACK * len(train_idx) / n


def _fit(spec, params: dict, task: str, X: pd.DataFrame, y: np.ndarray, rows: np.ndarray, n_jobs: int,
         seed: int) -> tuple[BaseEstimator, dict, float]:
    """A new model fitted on ``rows``: the estimator, what its fit learned (``ModelSpec.fit``), and the seconds."""
    est = spec.make(task, params, n_jobs=n_jobs, seed=seed)
    t0 = time.time()
    learned = spec.fit(est, params, X.iloc[rows], y[rows], seed=seed)
    return est, learned, time.time() - t0


def predict_scores(est: BaseEstimator, X: pd.DataFrame, task: str, k: int) -> np.ndarray:
    """Probabilities for every class code 0..k-1 (a class the fold did not see gets 0), or numbers."""
    if task == "regression":
        return np.asarray(est.predict(X), dtype="float64")
    proba = np.asarray(est.predict_proba(X), dtype="float64")
    seen = np.asarray(est.classes_, dtype="int64")
    if len(seen) == k:
        return proba
    full = np.zeros((len(X), k))
    full[:, seen] = proba
    return full


def scoring_latency(est, X: pd.DataFrame, task: str, k: int, budget_s: float = 0.5) -> tuple[float, float]:
    """Median milliseconds to score one row and 100 rows of cleaned ``X`` through ``est``'s scorer — the one that
    would serve it (``workbench.kinds``) — within about ``budget_s`` of measuring."""
    M, columns = matrix_of(X)
    score_matrix = kinds.scorer(est, columns, task, k)
    batch = np.ascontiguousarray(np.resize(M, (100, M.shape[1])))
    out = []
    for rows in (M[:1], batch):
        score_matrix(rows)  # warm-up: caches, lazy compilation
        times, end = [], time.perf_counter() + budget_s / 2
        while len(times) < 50 and (len(times) < 3 or time.perf_counter() < end):
            t0 = time.perf_counter()
            score_matrix(rows)
            times.append(time.perf_counter() - t0)
        out.append(1000 * float(np.median(times)))
    return out[0], out[1]


REFIT_ROWS = 2.0  # a refit on all rows against one fold's fit: k/(k-1) more rows (2 with two folds), with slack


def refit_seconds(candidates: list[Candidate]) -> float:
    """The expected time to refit on all rows those of ``candidates`` that are not fitted yet (from their CV fits)."""
    return REFIT_ROWS * sum(c.fit_time for c in candidates if c.estimator is None and np.isfinite(c.fit_time))


def refit(candidate: Candidate, X: pd.DataFrame, y: pd.Series, *, settings: Settings | None = None) -> BaseEstimator:
    """Fit the candidate's model on all training rows, with every core."""
    s = settings or get_settings()
    codes, _ = encode_target(y, candidate.task)
    est = get_model(candidate.model).make(candidate.task, candidate.params, n_jobs=s.n_threads, seed=s.seed)
    with threadpool_limits(s.n_threads):
        candidate.estimator = clone(est).fit(X, codes)
    return candidate.estimator


def _progress(total: int, enabled: bool):
    return progress_bar(total=total, desc="models", disable=not enabled)
