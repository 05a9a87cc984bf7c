"""The one settings object: every knob the workbench reads from the environment."""
from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Workbench settings, read from ``WORKBENCH_*`` environment variables.

    Examples
    --------
    >>> Settings(seed=7).seed
    7
    """

    model_config = SettingsConfigDict(env_prefix="WORKBENCH_", extra="ignore")

    home: Path = Field(Path(".workbench"), description="MLflow store, artifacts and caches")
    reports: Path = Field(Path("reports"), description="where pipeline runs write their reports")
    dask_address: str = Field("", description="Dask scheduler address; empty = embedded LocalCluster")
    seed: int = 0
    n_threads: int = Field(default_factory=lambda: len(os.sched_getaffinity(0)), ge=1)
    strict: bool = Field(False, description="tests fail instead of skipping for a missing resource")
    dashboard_run: str = Field("", description="the run the dashboard opens first; empty = the newest")
    dashboard_users: dict[str, str] = Field(default_factory=dict, description="who may open the dashboards: name → hashed password (JSON; hashes from `workbench dashboard --hash-password`); the serve keys open them too")
    serve_keys: str = Field("", description="comma-separated API keys for predictions (empty: open service)")
    serve_admin_keys: str = Field("", description="comma-separated API keys for the admin endpoints")
    monitor_store: str = Field("", description="the prediction log: a path or sqlite:/// URL (empty: <home>/monitor.db)")
    monitor_log: bool = Field(True, description="services record their predictions in the log")
    monitor_sample: float = Field(1.0, gt=0, le=1, description="the share of requests whose rows are recorded")
    monitor_queue: int = Field(10_000, ge=1, description="log entries waiting to be written; more are dropped and counted")
    monitor_retention_hours: float = Field(24 * 7, gt=0, description="older rows are compacted into hourly aggregates")
    monitor_check_s: float = Field(60, ge=0, description="a service checks its alerts this often (0: never)")
    monitor_min_rows: int = Field(50, ge=1, description="fewer live rows or outcomes than this are not judged")
    monitor_reference_rows: int = Field(200, ge=1, description="a version's first live rows: the reference its predictions drift from")
    monitor_segment: str = Field("", description="the input column live quality is broken down by (empty: the first category column with 2–20 levels)")
    alert_psi: float = Field(0.2, description="drift alert: a column's population stability index at or over this ...")
    alert_p_value: float = Field(0.01, description="... and its two-sample test's p-value under this")
    alert_metric_drop: float = Field(0.05, description="the live metric worse than validation by this (relative for errors)")
    alert_error_rate: float = Field(0.05, description="share of failed requests over the last 15 minutes")
    alert_latency_ms: float = Field(250, description="95th percentile of request latency over the last 15 minutes")
    max_latency_ms: float = Field(0.1, ge=0, description="auto and the pipeline's ensembles leave out models that score "
                                  "one row slower than this, measured on the scorer that serves them (0: no limit)")
    plain_progress: bool = Field(False, description="plain, rarely updated progress bars (set by the pipeline runner)")

    @property
    def tracking_uri(self) -> str:
        return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{self.home.resolve() / 'mlflow.db'}"

    @property
    def artifacts(self) -> Path:
        return self.home.resolve() / "artifacts"


def get_settings(**overrides) -> Settings:
    """Fresh settings from the environment, with keyword overrides on top."""
    return Settings(**overrides)
