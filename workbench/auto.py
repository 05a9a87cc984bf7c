"""`auto`: profile → clean → compare → tune the most promising → ensemble → pick by CV → refit → log, in a budget."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from workbench.ensemble import EnsembleReport, ensemble
from workbench.errors import ModelError, WorkbenchError
from workbench.models.compare import compare, refit
from workbench.models.train import TrainResult, evaluate, log_training, prepare
from workbench.models.trained import TrainedModel
from workbench.settings import Settings, get_settings
from workbench.tune import tune

# shares of the budget: comparing the zoo, tuning the leaders, then ensembles and the final refit
COMPARE, TUNE = 0.40, 0.30


@dataclass
class AutoResult(TrainResult):
    ensembles: list[EnsembleReport] = field(default_factory=list)
    stages: dict[str, float] = field(default_factory=dict)


def auto(data, target: str | int, *, time_budget: float = 60, test=None, task: str | None = None, log: bool = True,
         out: str | Path | None = None, progress: bool = True, settings: Settings | None = None) -> AutoResult:
    """The whole search in ``time_budget`` seconds; the best candidate by cross-validation, refit on all rows.

    ``out`` saves the final model with its cleaner and schema (``workbench predict --model out``).
    """
    s = settings or get_settings()
    if time_budget <= 0:
        raise WorkbenchError("the time budget must be a positive number of seconds")
    t0 = time.time()
    end = t0 + time_budget
    stages = {}
    prepared = prepare(data, target, test=test, task=task, settings=s)
    c = prepared.cleaned
    stages["prepare"] = time.time() - t0
    board = compare(c.X, c.y, task=c.task, time_budget=max(5.0, COMPARE * (end - time.time())), progress=progress, settings=s)
    stages["compare"] = time.time() - t0 - sum(stages.values())
    leaders = [x for x in board.candidates if x.status == "ok"][:2]
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
    for method in ("select", "stack"):
        if time.time() > end - 0.1 * time_budget:
            break
        try:
            e = ensemble(method, board, c.X, c.y, settings=s)
        except WorkbenchError:
            continue  # fewer than two finished members: no ensemble to build
        board.add(e.candidate)
        reports.append(e.report)
    stages["ensemble"] = time.time() - t0 - sum(stages.values())
    best = board.best
    if best.estimator is None:
        refit(best, c.X, c.y, settings=s)
    model = TrainedModel(c.cleaner, best.estimator, c.task, board.classes, best.name)
    result = AutoResult(prepared.profile, c, prepared.schema, board, model, reference=prepared.reference,
                        fingerprint=prepared.fingerprint, ensembles=reports)
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
    from workbench.registry.package import package_result

    return package_result(result, out, archive=True)


def open_package(package: str | Path):
    """A package folder or archive, or ``NAME[@alias|/version]`` from the repository; a decomposed package with only
    its cleaner and combiner loaded (its parts score on the Dask workers)."""
    from workbench.decompose.core import combiner_model
    from workbench.registry.package import load_package

    if Path(package).exists():
        try:
            return load_package(package, check=False, model_loader=combiner_model)
        except WorkbenchError:
            return load_package(package)
    from workbench.registry.repository import fetch

    return fetch(str(package))


def predict_file(package: str | Path, data, out: str | Path) -> pd.DataFrame:
    """Score a raw table with a package (folder or archive, or ``NAME[@alias|/version]`` in the registry);
    write a CSV with ``prediction`` and one probability column per class."""
    from workbench.data import load
    from workbench.decompose.core import DecomposedModel, predict_parallel

    df = load(data)
    pkg = open_package(package)
    model = pkg.model
    if isinstance(model.estimator, DecomposedModel):
        pred = model.frame_of(predict_parallel(pkg.path, df), df.index)
    else:
        pred = model.predict_frame(df)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    pred.to_csv(out, index=False)
    return pred
