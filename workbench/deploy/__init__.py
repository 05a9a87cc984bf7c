"""Releases: a model version carried through package → upload → environment → start → health → validate →
promote, each step logged and re-runnable, with rollback."""
from workbench.deploy.config import DeployConfig, read_config
from workbench.deploy.release import STEPS, ReleaseFailed, deploy, releases, rollback, status, stop_serving, switch

__all__ = ["DeployConfig", "read_config", "deploy", "rollback", "status", "stop_serving", "switch", "releases",
           "ReleaseFailed", "STEPS"]
