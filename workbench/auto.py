"""One call from a raw table to a model logged to MLflow.

``train``: profile → clean → compare → refit the best → test → log.
``auto``: profile → clean → compare → tune the most promising → ensemble → pick by CV → refit → log, in a budget.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from workbench.data import load
from workbench.data.encode import screen
from workbench.decompose.core import DecomposedModel, combiner_model, predict_parallel
from workbench.ensemble import EnsembleReport, ensemble
from workbench.errors import ModelError, WorkbenchError
from workbench.models.compare import Candidate, Leaderboard, compare, fitting_together, refit
from workbench.models.train import TrainResult, evaluate, fit, prepare
from workbench.models.trained import TrainedModel
from workbench.models.zoo import get_model
from workbench.registry.package import check_free, load_package, package_result
from workbench.registry.repository import fetch
from workbench.registry.tracking import log_training
from workbench.settings import Settings, get_settings
from workbench.tune import tune

# shares of the budget: comparing the zoo, tuning the leaders, then ensembles and the final refit
COMPARE, TUNE = 0.40, 0.30


def train(data, target: str | int, *, test=None, task: str | None = None, models: list[str] | None = None,
          metric: str | None = None, folds: int = 5, time_budget: float | None = 300, model_timeout: float | None = None,
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
    chosen: str = ""

    @property
    def best(self) -> Candidate:
        return self.leaderboard[self.chosen] if self.chosen else self.leaderboard.best

    def to_dict(self) -> dict:
        return super().to_dict() | {"max_latency_ms": self.max_latency_ms, "too_slow": self.too_slow}


def auto(data, target: str | int, *, time_budget: float = 60, test=None, task: str | None = None, log: bool = True,
         out: str | Path | None = None, max_latency_ms: float | None = None, progress: bool = True,
         settings: Settings | None = None) -> AutoResult:
    """The whole search in ``time_budget`` seconds; the best candidate by cross-validation, refit on all rows.

    ``max_latency_ms`` leaves out every candidate (and ensemble member) whose one-row scoring time, measured on the
    scorer that will serve it, is over the limit (AutoGluon's ``infer_limit``, on by default: None takes the
    ``WORKBENCH_MAX_LATENCY_MS`` setting, 0.1 ms; 0 means no limit); if none is under it, the fastest is taken.
    ``out`` saves the final model with its cleaner and schema (``workbench predict --model out``).
    """
    s = settings or get_settings()
    if time_budget <= 0:
        raise WorkbenchError("the time budget must be a positive number of seconds")
    if out is not None:
        check_free(out)  # before the budget is spent, not after
    t0 = time.time()
    end = t0 + time_budget
    max_latency_ms = (s.max_latency_ms if max_latency_ms is None else max_latency_ms) or None
    stages = {}
    prepared = prepare(data, target, test=test, task=task, settings=s)
    c = prepared.cleaned
    stages["prepare"] = time.time() - t0
    board = compare(c.X, c.y, task=c.task, time_budget=max(5.0, COMPARE * (end - time.time())), progress=progress, settings=s)
    stages["compare"] = time.time() - t0 - sum(stages.values())
    leaders = board.within_latency(max_latency_ms)[0][:2]
    tune_end = time.time() + TUNE / (1 - COMPARE) * (end - time.time())
    for i, leader in enumerate(leaders):
        left = (tune_end - time.time()) / (len(leaders) - i)
        if left < 3:
            break
        try:
            r = tune(leader.model, c.X, c.y, task=c.task, strategy="tpe", metric=board.metric, cv=len(board.folds),
                     max_trials=200, time_budget=left, early_stop=None, log=False, settings=s)
        except ModelError:
            continue  # no trial finished in its share of the budget: the untuned model stays on the board
        if r.candidate.oof is not None:
            board.add(r.candidate)
    stages["tune"] = time.time() - t0 - sum(stages.values())
    reports = []
    fast = [x for x in board.within_latency(max_latency_ms)[0] if x.model != "ensemble"][:5]
    for method in ("select", "stack"):
        if time.time() > end - 0.1 * time_budget:
            break
        # selection keeps within the limit itself; a stack scores every member: the best ones whose sum fits
        members = fast if method == "select" else fitting_together(fast, max_latency_ms)
        options = {"max_latency_ms": max_latency_ms} if method == "select" else {}
        try:
            e = ensemble(method, board, c.X, c.y, members=[x.name for x in members], settings=s, **options)
        except WorkbenchError:
            continue  # fewer than two finished members: no ensemble to build
        board.add(e.candidate)
        reports.append(e.report)
    stages["ensemble"] = time.time() - t0 - sum(stages.values())
    allowed, too_slow = board.within_latency(max_latency_ms)
    best = allowed[0] if allowed else min(board.within_latency(None)[0], key=lambda x: x.latency_ms)
    if best.estimator is None:
        refit(best, c.X, c.y, settings=s)
    model = TrainedModel(c.cleaner, best.estimator, c.task, board.classes, best.name)
    result = AutoResult(prepared.profile, c, prepared.schema, board, model, reference=prepared.reference,
                        fingerprint=prepared.fingerprint, ensembles=reports, max_latency_ms=max_latency_ms,
                        too_slow=too_slow, chosen=best.name)
    if prepared.test is not None:
        result.test_metrics = evaluate(model, prepared.test, c.target)
    stages["refit"] = time.time() - t0 - sum(stages.values())
    result.seconds = time.time() - t0
    result.stages = {k: round(v, 1) for k, v in stages.items()}
    if log:
        result.run_id, result.artifact_uri = log_training(result, data=data if isinstance(data, (str, Path)) else None, settings=s)
    if out is not None:
        save_final(result, out)
    return result


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
