"""One call from a raw table to a model logged to MLflow.

``train``: profile → clean → compare → refit the best → test → log.
``auto``: profile → clean → compare → ensemble → tune the most promising → ensemble again → pick by CV → log, in a
budget.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from workbench.data import load
from workbench.data.encode import screen
from workbench.deadline import Deadline
from workbench.decompose.core import DecomposedModel, combiner_model, predict_parallel
from workbench.ensemble import EnsembleReport, ensemble
from workbench.errors import ModelError, WorkbenchError
from workbench.models.compare import (REFIT_ROWS, Candidate, Leaderboard, compare, encode_target, refit,
                                      refit_seconds)
from workbench.models.decide import CalibrationReport, trust, value_matrix
from workbench.models.metrics import loss
from workbench.models.train import TrainResult, evaluate, fit, prepare
from workbench.models.trained import TrainedModel
from workbench.models.zoo import get_model, models_for
from workbench.registry.package import check_free, load_package, package_result
from workbench.registry.repository import fetch
from workbench.registry.tracking import log_training, mlflow_client
from workbench.settings import Settings, get_settings
from workbench.tune import tune

COMPARE = 0.5  # the comparison's share of the search time; tuning the leaders gets what it leaves
# the comparison's last round (the models its first put off for their time, cheapest first) may run into tuning's
# time up to this share of the search: a family not tried yet is worth more than tuning one that was (titanic at
# 30 s: CatBoost, the best family alone, was put off and never ran, while TPE spent 11 s finding nothing better)
LAST_ROUND = 0.75
LEADERS = 2  # how many of the best families are tuned, in turn, each with an equal share of the time left
# a family after the best shares the tuning time only when its best loss (``metrics.loss``) is within this ratio of
# the best family's: one far behind would not be weighed by an ensemble however it is tuned (diamonds at 60 s: 17 s
# tuning an MLP at twice LightGBM's RMSE). It is tuned with what the leaders leave (a search out of trials)
CLOSE = 1.25
MIN_TUNE_S = 3.0  # a tuning run shorter than this finds nothing a portfolio configuration had not: not started
MEMBERS = 10  # the best finished candidates the greedy selection draws from (it refits only those it keeps)
STACKED = 5  # the best finished candidates a stack holds (it refits and scores every one)
# kept back from the search for what follows it: the test, logging, the package and the exit (refits are planned
# from their measured fit times); a fixed part, a share of the budget, and a share of the start-up this process
# took before auto began (MLflow's import and store cost about what the library's did: a busy machine slows both).
# The exit itself costs nothing since the CLI ends the process once its files are closed (it took 2-6 s before).
# Measured after the search, quiet: 0.5-1.1 s (test, package, MLflow run); on a busy machine 2-3 s, which the
# promise (1.1 x budget + 3 s) covers: 2 s + 5 % had left a fifth of a 30 s budget unused
FINISH_S, FINISH_SHARE, START_SHARE = 1.0, 0.03, 0.5
# registering the package as a model version after auto (the CLI's --register: it loads and checks the package and
# logs it to the MLflow store that auto's logging opened; ~1 s on a busy machine): kept back from auto's deadline
REGISTER_S = 2.0
ENSEMBLE_S = 0.5  # an ensemble's own work beyond its members' refits (the meta-model, its scoring time: 0.1-0.3 s)
# below this budget the search runs in this process: starting the embedded cluster's workers (each importing the
# library) costs several seconds of both cores, more than its parallel folds win back on a short budget
CLUSTER_S = 300
# folds of the comparison: fewer on a table large for the budget, where five folds of each family would crowd out
# the rest (each fold of a large table costs seconds). Two, not three: each model then holds out thousands of rows,
# and fits half the rows it fitted in three folds (diamonds, through the CLI: RMSE 555.6 -> 542.5 at 30 s,
# 542.2 -> 538.9 at 60 s; adult unchanged, 0.9275-0.9284)
FOLDS, FEW_FOLDS, LARGE_ROWS = 5, 2, 10_000


def train(data, target: str | int, *, test=None, task: str | None = None, models: list[str] | None = None,
          metric: str | None = None, folds: int = 5, time_budget: float | Deadline | None = 300, model_timeout: float | None = None,
          log: bool = True, progress: bool = True, settings: Settings | None = None,
          on_result: Callable[[Candidate, Leaderboard], None] | None = None) -> TrainResult:
    """Train and compare models on a raw table; refit the best on all rows; score ``test`` if given; log the run to
    MLflow (``log``).

    ``data`` and ``test`` are anything ``load`` takes (a path, ``"demo"``, a DataFrame).

    Examples
    --------
    >>> r = train("demo", "churn", models=["linear"], folds=3, log=False, progress=False)
    >>> r.best.name
    'linear'
    """
    s = settings or get_settings()
    t0 = time.time()
    for name in models or []:
        get_model(name)  # an unknown name fails before any work is done
    prepared = prepare(data, target, test=test, task=task, settings=s)
    result = fit(prepared, models=models, metric=metric, folds=folds, time_budget=time_budget,
                 model_timeout=model_timeout, progress=progress, settings=s, on_result=on_result)
    result.seconds = time.time() - t0
    if log:
        result.run_id, result.artifact_uri = log_training(result, data=data, settings=s)
    return result


@dataclass
class AutoResult(TrainResult):
    ensembles: list[EnsembleReport] = field(default_factory=list)
    stages: dict[str, float] = field(default_factory=dict)
    max_latency_ms: float | None = None
    too_slow: dict[str, str] = field(default_factory=dict)  # candidates left out for their scoring time, and why
    calibration: CalibrationReport | None = None  # what calibrating the final model's probabilities did
    chosen: str = ""

    @property
    def best(self) -> Candidate:
        return self.leaderboard[self.chosen] if self.chosen else self.leaderboard.best

    def to_dict(self) -> dict:
        decision = self.model.decision
        return super().to_dict() | {"max_latency_ms": self.max_latency_ms, "too_slow": self.too_slow,
                                    "calibration": self.calibration.to_dict() if self.calibration else None,
                                    "decision": decision.to_dict() if decision is not None else None}


def auto(data, target: str | int, *, time_budget: float | Deadline = 60, test=None, task: str | None = None,
         log: bool = True, out: str | Path | None = None, max_latency_ms: float | None = None, progress: bool = True,
         values: dict | None = None, settings: Settings | None = None) -> AutoResult:
    """The whole search in ``time_budget`` seconds (or a ``Deadline``: the CLI's counts from the process start); the
    best candidate by cross-validation, refit on all rows, logged (``log``) and saved (``out``) within it.

    The comparison, the tuning of the leaders and the ensembles share one deadline; the refits and the writing are
    planned inside it, and what a step leaves unused goes to the next (more tuning trials).
    ``max_latency_ms`` leaves out every candidate (and ensemble member) whose one-row scoring time, measured on the
    scorer that will serve it, is over the limit (AutoGluon's ``infer_limit``, on by default: None takes the
    ``WORKBENCH_MAX_LATENCY_MS`` setting, 0.1 ms; 0 means no limit); if none is under it, the fastest is taken.
    ``out`` saves the final model with its cleaner and schema (``workbench predict --model out``).
    The probabilities are calibrated when that helps out of fold; ``values`` (what each outcome is worth,
    ``workbench.models.decide``) adds the decision rule that earns the most.
    """
    s = settings or get_settings()
    deadline = Deadline.of(time_budget)
    if deadline.seconds <= 0:
        raise WorkbenchError("the time budget must be a positive number of seconds")
    if out is not None:
        check_free(out)  # before the budget is spent, not after
    t0 = time.time()
    tracking = _beside(mlflow_client, s) if log else None  # MLflow's import and store, while the search runs
    max_latency_ms = (s.max_latency_ms if max_latency_ms is None else max_latency_ms) or None
    stages = {"start": max(0.0, t0 - deadline.start)}  # the budget spent before auto began (the CLI's start-up)
    prepared = prepare(data, target, test=test, task=task, settings=s)
    c = prepared.cleaned
    if values:  # refused now, not after the search
        if c.task == "regression":
            raise WorkbenchError(f"decision values need classes; '{c.target}' is a number (regression)")
        value_matrix(values, encode_target(c.y, c.task)[1])
    stages["prepare"] = deadline.elapsed() - sum(stages.values())
    search = deadline.before(FINISH_S + FINISH_SHARE * deadline.seconds + START_SHARE * stages["start"])
    parallel = bool(s.dask_address) or deadline.seconds >= CLUSTER_S
    folds = FEW_FOLDS if len(c.X) > LARGE_ROWS and deadline.seconds < CLUSTER_S else FOLDS
    # every family's defaults, then the portfolio of proven configurations, cheap first, before any search
    board = compare(c.X, c.y, task=c.task, folds=folds, time_budget=search.share(COMPARE), progress=progress,
                    parallel=parallel, portfolio=True, settings=s, max_latency_ms=max_latency_ms,
                    last_round=search.share(LAST_ROUND))
    if not board.within_latency(None)[0]:
        # no model finished: the budget went first (a slow start on a busy machine), or every one scored a row over the
        # limit on its first fold. The fastest of those, else the zoo's first family (LightGBM), runs to the end
        # anyway (on few folds), since a model a little late, or a little slow, beats no model
        slow = [x for x in board.candidates if x.status == "skipped"]  # each with its measured latency
        pick = min(slow, key=lambda x: x.latency_ms) if slow else None
        first, params = ([pick.model], {pick.model: pick.params}) if pick else (models_for(c.task, len(c.X))[:1], None)
        for cand in compare(c.X, c.y, task=c.task, models=first, params=params, folds=min(folds, FEW_FOLDS),
                            parallel=parallel, progress=progress, settings=s).candidates:
            board.add(cand)
    stages["compare"] = deadline.elapsed() - sum(stages.values())
    # the ensembles first: one is the usual winner, and a tuning trial that runs long must not leave none (churn-like,
    # 20,000 rows, at 30 s: a forest's trial ran 5 s past the tuning's end and no ensemble was built)
    reports = _ensembles(board, c.X, c.y, search, max_latency_ms, s, {})
    stages["ensemble"] = deadline.elapsed() - sum(stages.values())
    if _tune(board, c.X, c.y, search, max_latency_ms, parallel, s):
        # again with the tuned models: the other members are refit already, and an ensemble not rebuilt stays
        reports = _ensembles(board, c.X, c.y, search, max_latency_ms, s, reports)
    stages["tune"] = deadline.elapsed() - sum(stages.values())
    reports = list(reports.values())
    allowed, too_slow = board.within_latency(max_latency_ms)
    best = allowed[0] if allowed else min(board.within_latency(None)[0] or [board.best], key=lambda x: x.latency_ms)
    if best.estimator is None:
        refit(best, c.X, c.y, settings=s)
    estimator, calibration, decision = trust(best.estimator, best.oof, c.y, c.task, board.classes, values)
    model = TrainedModel(c.cleaner, estimator, c.task, board.classes, best.name, decision)
    result = AutoResult(prepared.profile, c, prepared.schema, board, model, reference=prepared.reference,
                        fingerprint=prepared.fingerprint, ensembles=reports, max_latency_ms=max_latency_ms,
                        too_slow=too_slow, chosen=best.name, calibration=calibration)
    if prepared.test is not None:
        result.test_metrics = evaluate(model, prepared.test, c.target)
    stages["refit"] = deadline.elapsed() - sum(stages.values())
    saved = save_final(result, out) if out is not None else None  # written once: the MLflow run logs the same folder
    if tracking is not None:
        tracking.join()
        result.run_id, result.artifact_uri = log_training(result, data=data if isinstance(data, (str, Path)) else None,
                                                          settings=s, package=saved)
    stages["save"] = deadline.elapsed() - sum(stages.values())
    result.seconds = time.time() - t0
    result.stages = {k: round(v, 1) for k, v in stages.items()}
    return result


def _tune(board: Leaderboard, X: pd.DataFrame, y: pd.Series, search: Deadline, max_latency_ms: float | None,
          parallel: bool, s: Settings) -> int:
    """Tune the leading families in turn (TPE) until ``search`` less what the ensembles' second pass needs; each tuned
    candidate joins the board. Returns how many did."""
    leaders, others = _leaders(board, max_latency_ms)
    added = 0
    for i, leader in enumerate(leaders + others):
        # kept back: the refits of the ensembles' members not refit yet, and of the tuned model itself (planned from
        # its family's best fit: a tuned model that costs more is left out of the ensembles, not late)
        members = _members(board, max_latency_ms)[:STACKED]
        own = next((x.fit_time for x in board.candidates if x.model == leader and np.isfinite(x.fit_time)), 0.0)
        planned = refit_seconds(members) + REFIT_ROWS * own + 2 * ENSEMBLE_S
        left = search.before(planned)
        # the leaders share the time; a family further behind has what they leave (a search that ran out of trials)
        tuning = left.share(1 / (len(leaders) - i)) if i < len(leaders) else left
        if tuning.left() < MIN_TUNE_S:
            tuning = left  # too little to share: the best family left takes all of it
        if tuning.left() < MIN_TUNE_S:
            break
        try:
            r = tune(leader, X, y, task=board.task, strategy="tpe", metric=board.metric, cv=len(board.folds),
                     max_trials=200, time_budget=tuning, early_stop=None, log=False, refit_best=False,
                     parallel=parallel, settings=s)
        except ModelError:
            continue  # no trial finished in its share of the budget: the untuned model stays on the board
        if r.candidate.oof is not None:
            board.add(r.candidate)
            added += 1
    return added


def _ensembles(board: Leaderboard, X: pd.DataFrame, y: pd.Series, search: Deadline, max_latency_ms: float | None,
               s: Settings, reports: dict[str, EnsembleReport]) -> dict[str, EnsembleReport]:
    """The greedy selection and the stack of the best members, each joining the board, by ``search``; ``reports``
    (by method) with those built replaced."""
    reports = dict(reports)
    for method in ("select", "stack"):
        # members whose refits fit the time left (a tuned model may cost more than planned; selection's are refit)
        fast = _affordable(_members(board, max_latency_ms), search)
        # both keep within the limit themselves (a stack holds the best of these whose latencies fit together)
        members = fast if method == "select" else fast[:STACKED]
        if len(members) < 2:
            continue  # fewer than two finished members, or time to refit fewer: no ensemble to build
        try:
            e = ensemble(method, board, X, y, members=[x.name for x in members], deadline=search, settings=s,
                         max_latency_ms=max_latency_ms)
        except WorkbenchError:
            continue  # fewer than two finished members, or no time to refit them: no ensemble to build
        board.add(e.candidate)
        reports[method] = e.report
    return reports


def _leaders(board: Leaderboard, max_latency_ms: float | None) -> tuple[list[str], list[str]]:
    """The families within the latency limit, each once, best first: the leaders (the best, and those ``CLOSE`` to
    it, at most ``LEADERS``), and the others."""
    best = {}
    for x in board.within_latency(max_latency_ms)[0]:
        if x.model != "ensemble":
            best.setdefault(x.model, loss(board.metric, x.cv[board.metric]))
    first = min(best.values(), default=0.0)
    leaders = [m for m, v in best.items() if v <= CLOSE * first][:LEADERS]
    return leaders, [m for m in best if m not in leaders]


def _members(board: Leaderboard, max_latency_ms: float | None) -> list[Candidate]:
    """The best finished single models within the latency limit: what an ensemble is built from."""
    return [x for x in board.within_latency(max_latency_ms)[0] if x.model != "ensemble"][:MEMBERS]


def _affordable(members: list[Candidate], deadline: Deadline) -> list[Candidate]:
    """The members, best first, whose refits on all rows, with an ensemble's own work, end before ``deadline``."""
    chosen, cost = [], ENSEMBLE_S
    for m in members:
        if deadline.fits(cost + refit_seconds([m])):
            chosen.append(m)
            cost += refit_seconds([m])
    return chosen


def _beside(fn, *args) -> threading.Thread:
    """``fn(*args)`` on a thread of its own, started now; a failure there is left for the real call to raise."""
    def run():
        try:
            fn(*args)
        except Exception:  # noqa: BLE001 - the same call is made again, in the open, when its result is needed
            pass
    thread = threading.Thread(target=run, daemon=True, name=f"workbench-{fn.__name__}")
    thread.start()
    return thread


def save_final(result: TrainResult, out: str | Path) -> Path:
    """The final model as a package folder (and ``.tar.gz``), ready for ``workbench predict --model``."""
    return package_result(result, out, archive=True)


def open_package(package: str | Path):
    """A package folder or archive, or ``NAME[@alias|/version]`` from the repository; a decomposed package with only
    its cleaner and combiner loaded (its parts score on the Dask workers)."""
    if Path(package).exists():
        try:
            return load_package(package, check=False, model_loader=combiner_model)
        except WorkbenchError:
            return load_package(package)
    return fetch(str(package))


def predict_file(package: str | Path, data, out: str | Path, *, on_bad_rows: str = "fail") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score a raw table with a package (folder or archive, or ``NAME[@alias|/version]`` in the registry); write a
    CSV with ``prediction`` and one probability column per class. Values the service would refuse are handled as
    ``on_bad_rows`` says (``workbench.data.encode.screen``; with ``skip`` a ``row`` column gives each prediction's
    input row) and listed in ``<out>.refused.csv``. Returns the predictions and the refused values."""
    if isinstance(data, (str, Path)) and Path(data).exists() and Path(out).resolve() == Path(data).resolve():
        raise WorkbenchError(f"--out {out} is the input table itself; write the predictions to another file")
    df = load(data)
    pkg = open_package(package)
    model = pkg.model
    kept, refused = screen(model.cleaner.encoder(pkg.schema), df, on_bad_rows)
    if isinstance(model.estimator, DecomposedModel):
        pred = model.frame_of(predict_parallel(pkg.path, kept), kept.index)
    else:
        pred = model.predict_frame(kept)
    if on_bad_rows == "skip":
        pred.insert(0, "row", np.setdiff1d(np.arange(len(df)), refused["row"].to_numpy()))
    out = Path(out)
    write_csv(pred, out)
    refused_file = out.with_name(f"{out.stem}.refused.csv")
    if len(refused):
        write_csv(refused, refused_file)
    else:
        refused_file.unlink(missing_ok=True)  # an earlier run's list would speak of other rows
    return pred, refused


def write_csv(df: pd.DataFrame, path: Path) -> None:
    """``df`` as a CSV at ``path``, written beside and renamed: a crash or Ctrl-C leaves no half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    df.to_csv(partial, index=False)
    partial.replace(path)
