"""Training in two steps: ``prepare`` (load → profile → clean) and ``fit`` (compare → refit the best → test).

``workbench.auto.train`` runs both and logs the result to MLflow (``workbench.registry.tracking.log_training``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from workbench.data import Cleaned, Profile, Schema, clean, load, profile, resolve_target
from workbench.data.load import fingerprint
from workbench.data.task import check_task
from workbench.errors import DataError
from workbench.models.compare import Candidate, Leaderboard, compare, encode_target, refit
from workbench.models.metrics import score
from workbench.models.trained import TrainedModel
from workbench.settings import Settings, get_settings

SAMPLE_ROWS = 2000  # raw training rows a package keeps: its replay check and its monitoring's drift reference


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
