"""Shared fixtures: an isolated workbench home, the shared datasets, one trained model per session."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
STRICT = os.environ.get("WORKBENCH_STRICT", "").lower() in {"1", "true", "yes"}


def need(ok: bool, reason: str) -> None:
    """Skip for a missing resource locally; fail under WORKBENCH_STRICT=1 (CI), where it must be there."""
    if not ok:
        if STRICT:
            pytest.fail(f"{reason} (WORKBENCH_STRICT=1 turns this skip into a failure)")
        pytest.skip(reason)


@pytest.fixture(scope="session", autouse=True)
def workbench_home(tmp_path_factory):
    """Every test session gets its own MLflow store and reports folder."""
    home = tmp_path_factory.mktemp("home")
    os.environ["WORKBENCH_HOME"] = str(home / ".workbench")
    os.environ["WORKBENCH_REPORTS"] = str(home / "reports")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    yield home


@pytest.fixture(scope="session")
def datasets() -> Path:
    need((DATASETS / "manifest.json").exists(), f"the shared datasets are not at {DATASETS}")
    return DATASETS


@pytest.fixture(scope="session")
def manifest(datasets) -> dict:
    return json.loads((datasets / "manifest.json").read_text())


@pytest.fixture(scope="session")
def demo_df():
    from workbench.data import load

    return load("demo", n_rows=600)


@pytest.fixture(scope="session")
def trained(demo_df):
    """The session's one trained model: demo churn, two fast families, logged to MLflow."""
    from workbench import train

    return train(demo_df, "churn", test=demo_df.sample(200, random_state=1), models=["lightgbm", "linear"], folds=3,
                 progress=False, time_budget=120)


PIPELINE_PARAMS = {"models": ["lightgbm", "linear", "naive_bayes"], "folds": 3, "max_trials": 6, "time_budget": 60,
                   "values": {"tp": 100, "fp": -20, "fn": -100, "tn": 0}}


@pytest.fixture(scope="session")
def pipeline_run():
    """One real pipeline run (papermill, small demo data) shared by the notebook, widget and dashboard tests."""
    from workbench.runner import run_pipeline

    summary = run_pipeline("demo:500", "churn", params=PIPELINE_PARAMS, run_id="session-run", echo=lambda *_: None)
    assert summary["status"] == "ok", summary
    return summary
