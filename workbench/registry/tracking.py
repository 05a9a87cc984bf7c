"""MLflow tracking in the embedded store (sqlite under the workbench home) or the server in MLFLOW_TRACKING_URI."""
from __future__ import annotations

import io
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path

import pandas as pd

from workbench.extras import extra
from workbench.models.train import TrainResult, oof_frame
from workbench.registry.backup import settle
from workbench.registry.package import package_result
from workbench.settings import Settings, get_settings

EXPERIMENT = "workbench"


def mlflow_client(settings: Settings | None = None):
    """Point MLflow at the workbench store and make sure the experiment exists with its own artifact folder."""
    s = settings or get_settings()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no network here, and no reason to phone home
    with extra("tracking"):
        import mlflow

    # after the import: mlflow sets up its own loggers when imported
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("mlflow").setLevel(logging.ERROR)

    settle(s.home)  # a restore interrupted between its two renames is finished (or undone) first
    s.home.mkdir(parents=True, exist_ok=True)
    user_uri = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(s.tracking_uri)
    if user_uri is None:  # MLflow exports the URI to the environment; our settings must keep deciding it
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        # an explicit location: the Default experiment would write <cwd>/mlruns
        mlflow.create_experiment(EXPERIMENT, artifact_location=s.artifacts.as_uri())
    mlflow.set_experiment(EXPERIMENT)
    return mlflow


def log_run(*, params: dict, metrics: dict, artifacts: dict[str, str | bytes], model_dir: Path | None = None,
            tags: dict | None = None, run_name: str | None = None, settings: Settings | None = None,
            run_id: str | None = None) -> str:
    """Log parameters, metrics, artifacts and (optionally) a saved model to a new run, or to ``run_id``; returns the run id."""
    mlflow = mlflow_client(settings)
    with mlflow.start_run(run_id=run_id, run_name=None if run_id else run_name) as run:
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v == v})
        if tags:
            mlflow.set_tags(tags)
        with tempfile.TemporaryDirectory() as tmp:
            for name, content in artifacts.items():
                path = Path(tmp) / name
                path.write_bytes(content if isinstance(content, bytes) else content.encode())
                mlflow.log_artifact(str(path))
        if model_dir is not None:
            log_model(mlflow, model_dir)
        return run.info.run_id


def log_training(result: TrainResult, *, data=None, settings: Settings | None = None,
                 run_id: str | None = None, package: Path | None = None) -> tuple[str, str]:
    """One MLflow run of a training (``train``, ``train_distributed``, ``auto`` or a pipeline's): parameters, CV and
    test metrics, cleaning report, schema, leaderboard, OOF and the best model's package (``package``, when the
    caller has written it already); (run id, artifact URI)."""
    board, best = result.leaderboard, result.best
    metrics = {f"cv_{k}": v for k, v in best.cv.items()} | {f"test_{k}": v for k, v in result.test_metrics.items()}
    params = {"data": data if isinstance(data, (str, Path)) else "DataFrame"} if data is not None else {}
    params |= {"target": result.cleaned.target,
              "task": board.task, "metric": board.metric, "folds": len(board.folds), "rows": len(result.cleaned.X),
              "features": result.cleaned.X.shape[1], "models": ",".join(c.name for c in board.candidates),
              "best_model": best.name, **{f"best.{k}": v for k, v in best.params.items()}}
    if result.distributed:  # the cleaned rows are the cleaner's sample: the model saw every training row
        params |= {"rows": result.distributed["train_rows"],
                   **{f"distributed.{k}": v for k, v in result.distributed.items()}}
    artifacts = {
        "cleaning_report.json": json.dumps(result.cleaned.report.to_dict(), indent=1),
        "profile.json": json.dumps(result.profile.to_dict(), indent=1, default=str),
        "schema.json": result.schema.to_json(),
        "leaderboard.csv": board.to_frame().to_csv(index=False),
        "result.json": json.dumps(result.to_dict() | {"run_id": None}, indent=1, default=str),
        "oof.parquet": _parquet_bytes(oof_frame(board, result.cleaned.y)),
    }
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = package or package_result(result, Path(tmp) / "package")
        run_id = log_run(params=params, metrics=metrics, artifacts=artifacts, model_dir=model_dir,
                         tags={"workbench.kind": "train", "workbench.best_model": best.name}, settings=settings,
                         run_id=run_id)
    return run_id, mlflow_client(settings).get_run(run_id).info.artifact_uri


def log_model(mlflow, model_dir: Path):
    """Log saved model files as an MLflow pyfunc model, defined by code so that nothing is pickled."""
    from importlib.metadata import version

    reqs = [f"{p}=={version(p)}" for p in ("pandas", "scikit-learn", "lightgbm", "skops", "numpy")]
    with warnings.catch_warnings():  # mlflow nags about type hints it does not need here
        warnings.simplefilter("ignore")
        return mlflow.pyfunc.log_model(name="model", python_model=str(Path(__file__).with_name("pyfunc_model.py")),
                                       artifacts={"model": str(model_dir)}, pip_requirements=reqs)


def start_run(name: str, settings: Settings | None = None) -> str:
    """Create an MLflow run that later steps log into (a pipeline run's stages share one)."""
    mlflow = mlflow_client(settings)
    with mlflow.start_run(run_name=name) as run:
        return run.info.run_id


def run_artifacts(run_id: str, settings: Settings | None = None) -> Path:
    """The local folder holding a run's artifacts."""
    mlflow = mlflow_client(settings)
    uri = mlflow.get_run(run_id).info.artifact_uri
    return Path(uri.removeprefix("file://"))


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()
