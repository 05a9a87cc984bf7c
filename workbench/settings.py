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
    serve_keys: str = Field("", description="comma-separated API keys for predictions (empty: open service)")
    serve_admin_keys: str = Field("", description="comma-separated API keys for the admin endpoints")
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
