"""Training end to end: load → profile → clean → compare → refit the best → test → log to MLflow."""
from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from workbench.data import Cleaned, Profile, Schema, clean, load, profile, resolve_target
from workbench.data.load import fingerprint
from workbench.errors import DataError
from workbench.models.compare import Candidate, Leaderboard, compare, encode_target, refit
from workbench.models.metrics import score
from workbench.models.task import check_task
from workbench.models.trained import TrainedModel
from workbench.models.zoo import get_model
from workbench.settings import Settings, get_settings


@dataclass
class TrainResult:
    """Everything one training run produced, and where MLflow stored it."""

    profile: Profile
    cleaned: Cleaned
    schema: Schema
    leaderboard: Leaderboard
    model: TrainedModel
    test_metrics: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None
    artifact_uri: str | None = None
    seconds: float = 0.0
    reference: pd.DataFrame | None = None
    fingerprint: dict = field(default_factory=dict)
    distributed: dict = field(default_factory=dict)  # a training across the Dask workers: partitions, rows, workers

    @property
    def best(self) -> Candidate:
        return self.leaderboard.best

    def to_dict(self) -> dict:
        lb = self.leaderboard.to_frame().replace({np.nan: None})
        return {"task": self.leaderboard.task, "metric": self.leaderboard.metric, "best_model": self.best.name,
                "leaderboard": lb.to_dict(orient="records"), "test_metrics": self.test_metrics,
                "run_id": self.run_id, "artifact_uri": self.artifact_uri, "seconds": round(self.seconds, 2)}

    def _repr_html_(self) -> str:
        test = "".join(f"<li>{k}: {v:.4f}</li>" for k, v in self.test_metrics.items())
        return (self.leaderboard._repr_html_() + (f"<p><b>Test</b></p><ul>{test}</ul>" if test else "")
                + f"<p>MLflow run <code>{self.run_id}</code></p>")


@dataclass
class Prepared:
    """A raw table made ready for training: its profile, the cleaned rows, the schema, and the test rows (raw)."""

    profile: Profile
    cleaned: Cleaned
    schema: Schema
    test: pd.DataFrame | None = None
    reference: pd.DataFrame | None = None  # raw training rows (no target): a package's reference inputs and drift sample
    fingerprint: dict = field(default_factory=dict)  # of the raw training table


def prepare(data, target: str | int, *, test=None, task: str | None = None, settings: Settings | None = None) -> Prepared:
    """Load, profile and clean a training table; load the test table (kept raw: the model's cleaner scores it)."""
    s = settings or get_settings()
    check_task(task)
    df = load(data, seed=s.seed)
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{data} names {df.npartitions} files, read lazily: train on them with `workbench train "
                        "--distributed` (train_distributed), or give one file that fits in memory")
    target = resolve_target(df, target)
    cleaned = clean(df, target, task=task)
    prof = profile(df, target, task=cleaned.task)
    test_df = None
    if test is not None:
        test_df = load(test, seed=s.seed + 1)
        if target not in test_df.columns:
            raise DataError(f"the test table has no target column '{target}'")
    return Prepared(prof, cleaned, Schema.infer(cleaned.cleaner, df), test_df, reference_rows(df, target, s.seed),
                    fingerprint(df))


def reference_rows(df: pd.DataFrame, target: str, seed: int = 0) -> pd.DataFrame:
    """Raw training rows, without the target, drawn at random: a package replays the first few to prove it predicts
    as it did, and keeps all as the reference its monitoring measures drift against."""
    from workbench.registry.package import SAMPLE_ROWS

    return df.drop(columns=[target]).sample(min(SAMPLE_ROWS, len(df)), random_state=seed).reset_index(drop=True)


def fit(prepared: Prepared, *, models: list[str] | None = None, metric: str | None = None, folds: int = 5,
        time_budget: float | None = 300, model_timeout: float | None = None, progress: bool = True,
        settings: Settings | None = None, on_result: Callable[[Candidate, Leaderboard], None] | None = None) -> TrainResult:
    """Compare models on prepared data, refit the best on all rows, and score the test rows."""
    s = settings or get_settings()
    t0 = time.time()
    cleaned = prepared.cleaned
    board = compare(cleaned.X, cleaned.y, task=cleaned.task, models=models, metric=metric, folds=folds,
                    time_budget=time_budget, model_timeout=model_timeout, settings=s, on_result=on_result, progress=progress)
    best = board.best
    estimator = refit(best, cleaned.X, cleaned.y, settings=s)
    model = TrainedModel(cleaned.cleaner, estimator, cleaned.task, board.classes, best.name)
    result = TrainResult(prepared.profile, cleaned, prepared.schema, board, model, reference=prepared.reference,
                         fingerprint=prepared.fingerprint)
    if prepared.test is not None:
        result.test_metrics = evaluate(model, prepared.test, cleaned.target)
    result.seconds = time.time() - t0
    return result


def train(data, target: str | int, *, test=None, task: str | None = None, models: list[str] | None = None,
          metric: str | None = None, folds: int = 5, time_budget: float | None = 300, model_timeout: float | None = None,
          log: bool = True, progress: bool = True, settings: Settings | None = None,
          on_result: Callable[[Candidate, Leaderboard], None] | None = None) -> TrainResult:
    """Train and compare models on a raw table; refit the best on all rows; score ``test`` if given.

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


def evaluate(model: TrainedModel, df: pd.DataFrame, target: str) -> dict[str, float]:
    """The task's metrics of a trained model on a raw labelled table (rows without a label are left out)."""
    if target not in df.columns:
        raise DataError(f"the test table has no target column '{target}'")
    y = model.cleaner.transform_target(df[target])
    if model.task != "regression":
        raw = df[target][y.isna() & df[target].notna()]
        if len(raw):
            raise DataError(f"the test table has labels never seen in training: {', '.join(map(str, raw.unique()[:5]))}")
    keep = y.notna().to_numpy()
    df, y = df[keep], y[keep]
    if model.task == "regression":
        return score("regression", y.to_numpy(dtype="float64"), model.predict(df))
    codes = pd.Categorical(y, categories=model.classes).codes
    return score(model.task, codes, model.predict_proba(df))


def log_training(result: TrainResult, *, data=None, settings: Settings, run_id: str | None = None,
                 extra_params: dict | None = None) -> tuple[str, str]:
    """One MLflow run: parameters, CV and test metrics, cleaning report, schema, leaderboard, OOF and the best model."""
    from workbench.registry.package import package_result
    from workbench.registry.tracking import log_run, mlflow_client

    board, best = result.leaderboard, result.best
    metrics = {f"cv_{k}": v for k, v in best.cv.items()} | {f"test_{k}": v for k, v in result.test_metrics.items()}
    params = {"data": data if isinstance(data, (str, Path)) else "DataFrame"} if data is not None else {}
    params |= {"target": result.cleaned.target,
              "task": board.task, "metric": board.metric, "folds": len(board.folds), "rows": len(result.cleaned.X),
              "features": result.cleaned.X.shape[1], "models": ",".join(c.name for c in board.candidates),
              "best_model": best.name, **{f"best.{k}": v for k, v in best.params.items()}} | (extra_params or {})
    oof = oof_frame(board, result.cleaned.y)
    artifacts = {
        "cleaning_report.json": json.dumps(result.cleaned.report.to_dict(), indent=1),
        "profile.json": json.dumps(result.profile.to_dict(), indent=1, default=str),
        "schema.json": result.schema.to_json(),
        "leaderboard.csv": board.to_frame().to_csv(index=False),
        "result.json": json.dumps(result.to_dict() | {"run_id": None}, indent=1, default=str),
        "oof.parquet": parquet_bytes(oof),
    }
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = package_result(result, Path(tmp) / "package")
        run_id = log_run(params=params, metrics=metrics, artifacts=artifacts, model_dir=model_dir,
                         tags={"workbench.kind": "train", "workbench.best_model": best.name}, settings=settings,
                         run_id=run_id)
    return run_id, mlflow_client(settings).get_run(run_id).info.artifact_uri


def oof_frame(board: Leaderboard, y: pd.Series) -> pd.DataFrame:
    """Out-of-fold predictions of every finished candidate, one column per model (and class)."""
    codes, _ = encode_target(y, board.task)
    cols = {"actual": codes}
    for c in board.candidates:
        if c.oof is None:
            continue
        if c.oof.ndim == 1:
            cols[c.name] = c.oof
        else:
            for k, label in enumerate(board.classes):
                cols[f"{c.name}:{label}"] = c.oof[:, k]
    return pd.DataFrame(cols)


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    import io

    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


