"""`tune`: one model, one strategy, parallel cross-validated trials, a budget in trials and seconds."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from workbench import compute
from workbench.deadline import Deadline
from workbench.errors import ModelError
from workbench.extras import extra
from workbench.models.compare import Candidate, cross_validate, encode_target, make_folds, refit
from workbench.models.metrics import DEFAULT_METRIC, TASK_METRICS, loss
from workbench.models.space import Space, check_space
from workbench.models.zoo import get_model
from workbench.registry.tracking import mlflow_client
from workbench.settings import Settings, get_settings
from workbench.tune.strategies import STRATEGIES


@dataclass
class TuningResult:
    """The search's history, its best configuration, and that configuration refit as a leaderboard candidate."""

    model: str
    strategy: str
    metric: str
    history: pd.DataFrame
    candidate: Candidate
    seconds: float
    stopped: str
    run_id: str | None = None
    space: Space = field(default_factory=dict, repr=False)

    @property
    def best_params(self) -> dict:
        return self.candidate.params

    @property
    def best_score(self) -> float:
        return self.candidate.cv[self.metric]

    def to_frame(self) -> pd.DataFrame:
        return self.history.copy()

    def to_dict(self) -> dict:
        ok = self.history[self.history["status"] == "ok"]
        return {"model": self.model, "strategy": self.strategy, "metric": self.metric, "best_score": self.best_score,
                "best_params": self.best_params, "trials": len(self.history), "failed": int((self.history["status"] == "failed").sum()),
                "finished": len(ok), "seconds": round(self.seconds, 2), "stopped": self.stopped, "run_id": self.run_id}

    def figures(self) -> dict:
        from workbench.viz import tuning as vt  # start-up cost: no plotly in the CLI, service or workers

        return {"history": vt.history_line(self.history, self.metric), "importance": vt.parameter_importance_bar(
                parameter_importance(self.history, self.space)), "parallel": vt.parallel_coordinates(self.history, self.space, self.metric)}

    def _repr_html_(self) -> str:
        d = self.to_dict()
        return (f"<p><b>Tuning {self.model}</b> with {self.strategy}: best {self.metric} <b>{d['best_score']:.4f}</b> "
                f"after {d['trials']} trials ({d['failed']} failed) in {d['seconds']:.0f} s; stopped: {self.stopped}</p>"
                f"<p>Best parameters: <code>{self.best_params}</code></p>")


# trials in a row that a probe expected to run over the time left (none started) before the search stops: each probe
# fits a share of a fold, and a forest's proposals on churn-like (15,000 rows, two folds) spent a 4.3 s tuning on
# probes alone, time the next family's tuning could have had
UNSTARTED = 3


def tune(model: str, X: pd.DataFrame, y: pd.Series, *, task: str, strategy: str = "tpe", metric: str | None = None,
         cv: int = 5, max_trials: int = 50, time_budget: float | Deadline | None = None, early_stop: int | None = None,
         seed: int | None = None, space: Space | None = None, log: bool = True, parent_run_id: str | None = None,
         on_trial: Callable[[dict, pd.DataFrame], None] | None = None, refit_best: bool = True,
         parallel: bool | None = None, settings: Settings | None = None) -> TuningResult:
    """Search ``model``'s hyperparameters with ``strategy`` on cleaned data; return the best, refit.

    Every trial is a cross-validation on the same folds (run in parallel on the cluster
    via ``workbench.compute``); a trial that raises is recorded as failed and the search
    goes on. The search stops at ``max_trials``, at ``time_budget`` seconds or a ``Deadline`` (trials
    still running stop before their next fold), or after ``early_stop`` trials without progress.
    The same seed and the same number of workers give the same trials. ``refit_best=False`` leaves the best
    configuration unfitted on all rows (``auto`` refits only what it keeps); ``parallel=False`` runs the trials one
    by one in this process, each with every core (None: on the cluster when it pays).

    Examples
    --------
    >>> from workbench.data import load, clean
    >>> c = clean(load("demo", n_rows=300), "churn")
    >>> r = tune("linear", c.X, c.y, task="binary", strategy="random", max_trials=3, cv=3, log=False)
    >>> len(r.history)
    3
    """
    s = settings or get_settings()
    seed = s.seed if seed is None else seed
    spec = get_model(model, task)
    make_strategy = STRATEGIES.get(strategy)
    metric = metric or DEFAULT_METRIC[task]
    if metric not in TASK_METRICS[task]:
        raise ModelError(f"metric '{metric}' does not apply to {task}. Valid metrics: {', '.join(TASK_METRICS[task])}")
    space = spec.space if space is None else space
    check_space(space)
    if max_trials < 1:
        raise ModelError("max_trials must be at least 1")
    if time_budget is not None and not isinstance(time_budget, Deadline) and time_budget <= 0:
        raise ModelError("the time budget must be a positive number of seconds")

    codes, classes = encode_target(y, task)
    split = make_folds(pd.Series(codes), task, cv, seed=seed)
    parallel = compute.uses_cluster(max_trials, s) if parallel is None else parallel
    workers = compute.workers(s) if parallel else 1
    n_jobs = compute.threads_per_task(workers, s)
    search = make_strategy(space, seed=seed, max_trials=max_trials, batch=workers)
    pool = compute.Jobs(cross_validate, shared=(X, codes), parallel=workers > 1, settings=s)
    deadline = Deadline.of(time_budget)  # a number of seconds counts from here, once the workers are up
    start = time.time()
    rows, results, in_flight = [], {}, {}
    asked, stopped = 0, "max_trials"
    state = {"told": 0, "best": np.inf, "since_best": 0, "cand": None, "unstarted": 0}

    def tell_upto(limit: float) -> None:
        """Tell buffered results in trial order, up to trial ``limit``: what a proposal may know is fixed by its number."""
        while state["told"] <= limit and state["told"] in results:
            proposal, cand, status, error = results.pop(state["told"])
            score = cand.cv.get(metric, np.nan) if cand is not None else np.nan
            search.tell(proposal, None if status != "ok" or np.isnan(score) else loss(metric, score))
            rows.append({"trial": proposal.id, **{f"param_{k}": v for k, v in proposal.params.items()},
                         "score": score, "status": status, "seconds": cand.fit_time * len(split) if cand else np.nan,
                         "error": error, "finished_at": round(time.time() - start, 2)})
            if status == "ok" and loss(metric, score) < state["best"]:
                state.update(best=loss(metric, score), since_best=0, cand=cand)
            else:
                state["since_best"] += 1
            # not started: its probe expected it over the time left (no fold ran)
            unstarted = cand is not None and status == "stopped" and not np.isfinite(cand.fit_time)
            state["unstarted"] = state["unstarted"] + 1 if unstarted else 0
            state["told"] += 1
            if on_trial:
                on_trial(rows[-1], pd.DataFrame(rows))

    try:
        while True:
            if early_stop and state["since_best"] >= early_stop and stopped == "max_trials":
                stopped = f"early stop: no progress in {early_stop} trials"
            over = deadline.expired()
            if over and stopped == "max_trials":
                stopped = "time budget"
            if state["unstarted"] >= UNSTARTED and stopped == "max_trials":
                stopped = f"time budget: {UNSTARTED} trials in a row expected to run over the time left"
            while stopped == "max_trials" and asked < max_trials and not search.exhausted and len(in_flight) < workers:
                # trial k is proposed knowing exactly trials 0..k-workers: the same seed gives the same trials
                tell_upto(asked - workers)
                if state["told"] < asked - workers + 1:
                    break
                proposal = search.ask()
                if proposal is None:  # it needs results it has not been told yet (a generation to finish)
                    tell_upto(np.inf)
                    proposal = search.ask()
                    if proposal is None:
                        break
                in_flight[proposal.id] = proposal
                # probed on a large table: a trial expected to run past the deadline is not started (one that
                # did, a forest on diamonds at 60 s, ran its first fold past the tuning's end: no time was left
                # for auto's ensembles)
                pool.submit(proposal.id, model, proposal.params, task, split, n_jobs, seed, None, deadline, probe=True)
                asked += 1
            if search.exhausted and asked < max_trials and not in_flight and stopped == "max_trials":
                stopped = "grid exhausted"
            if not in_flight:
                told_before = state["told"]
                tell_upto(np.inf)
                can_go_on = stopped == "max_trials" and asked < max_trials and not search.exhausted
                if not can_go_on or state["told"] == told_before:  # done, or a strategy with nothing to propose
                    break
                continue
            for out in pool.collect(deadline):
                proposal = in_flight.pop(out.key)
                cand = out.value if out.status == "ok" else None
                status = cand.status if cand is not None else out.status
                results[out.key] = (proposal, cand, status if status == "ok" else ("failed" if status == "failed" else "stopped"),
                                    (cand.error if cand is not None else out.error))
            if stopped != "max_trials" or asked >= max_trials:
                tell_upto(np.inf)
    finally:
        pool.close()
    history = pd.DataFrame(rows)
    best_cand = state["cand"]
    if best_cand is None:
        raise ModelError(f"no trial of {model} finished ({stopped}); errors: " +
                         "; ".join(sorted(set(history["error"].dropna().astype(str)))[:3]))
    best_cand.name = f"{model}:{strategy}"
    if refit_best:
        refit(best_cand, X, y, settings=s)
    result = TuningResult(model, strategy, metric, history, best_cand, time.time() - start, stopped, space=space)
    if log:
        result.run_id = log_tuning(result, parent_run_id, s)
    return result


def parameter_importance(history: pd.DataFrame, space: Space) -> pd.DataFrame:
    """How much each parameter explains the score across trials (a random forest's impurity importance)."""
    from sklearn.ensemble import RandomForestRegressor

    ok = history[history["status"] == "ok"]
    cols = [f"param_{k}" for k in space if f"param_{k}" in ok]
    if len(ok) < 4 or not cols:
        return pd.DataFrame({"parameter": [c[6:] for c in cols], "importance": np.nan})
    X = pd.DataFrame({c: pd.factorize(ok[c].astype(str))[0] if ok[c].dtype == object else ok[c].astype(float).fillna(-1)
                      for c in cols})
    rf = RandomForestRegressor(n_estimators=200, random_state=0).fit(X, ok["score"])
    return pd.DataFrame({"parameter": [c[6:] for c in cols], "importance": rf.feature_importances_}).sort_values(
        "importance", ascending=False, ignore_index=True)


def log_tuning(result: TuningResult, parent_run_id: str | None, settings: Settings) -> str:
    """A run for the search (nested under ``parent_run_id`` if given) and one child run per trial."""
    with extra("tracking"):
        from mlflow.entities import Metric, Param

    mlflow = mlflow_client(settings)
    client = mlflow.MlflowClient()
    exp = mlflow.get_experiment_by_name("workbench").experiment_id
    tags = {"workbench.kind": "tune", "workbench.model": result.model, "workbench.strategy": result.strategy}
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    run = client.create_run(exp, run_name=f"tune {result.model} {result.strategy}", tags=tags)
    now = int(time.time() * 1000)
    client.log_batch(run.info.run_id, params=[Param(k, str(v)[:500]) for k, v in result.best_params.items()] +
                     [Param("strategy", result.strategy), Param("trials", str(len(result.history)))],
                     metrics=[Metric(f"best_{result.metric}", float(result.best_score), now, 0)])
    for _, row in result.history.iterrows():
        child = client.create_run(exp, run_name=f"trial {row['trial']}", tags={"mlflow.parentRunId": run.info.run_id,
                                                                               "workbench.status": row["status"]})
        params = [Param(k[6:], str(v)) for k, v in row.items() if k.startswith("param_") and pd.notna(v)]
        metrics = [Metric(result.metric, float(row["score"]), now, 0)] if pd.notna(row["score"]) else []
        client.log_batch(child.info.run_id, params=params, metrics=metrics)
        client.set_terminated(child.info.run_id, "FINISHED" if row["status"] == "ok" else "FAILED")
    client.log_text(run.info.run_id, result.history.to_csv(index=False), "history.csv")
    client.set_terminated(run.info.run_id)
    return run.info.run_id
