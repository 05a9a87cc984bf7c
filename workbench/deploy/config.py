"""The release configuration (``deploy.yaml``), checked before anything happens."""
from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from workbench.errors import WorkbenchError
from workbench.registry.repository import check_name


class Service(BaseModel):
    model_config = ConfigDict(extra="forbid")

    port: int = Field(8000, ge=1, le=65535, description="the serving port: it answers with the champion")
    host: str = "127.0.0.1"
    workers: int = Field(1, ge=1, le=64)
    health_timeout_s: float = Field(60, gt=0, description="how long the candidate may take to become ready")


class Validation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    holdout: str | None = Field(None, description="a labelled table the candidate and the champion are scored on")
    target: str | None = Field(None, description="its target column (default: the package's)")
    metric: str | None = Field(None, description="default: the package task's metric (roc_auc, log_loss, rmse)")
    threshold: float | None = Field(None, description="the candidate's metric on the holdout must reach this")
    margin: float = Field(0.0, ge=0, description="how much worse than the champion the candidate may be")


class DeployConfig(BaseModel):
    """What to release and how. Either ``package`` (a folder or archive to upload as a new version) or a
    registered ``version`` (a number or an alias) of ``model``."""

    model_config = ConfigDict(extra="forbid")

    model: str
    version: str | None = None
    package: str | None = None
    service: Service = Field(default_factory=Service)
    requirements: list[str] = Field(default_factory=list, description="pins beyond the package's own, e.g. x==1.2")
    validation: Validation = Field(default_factory=Validation)
    deploy_dir: str | None = Field(None, description="default: <workbench home>/deploy/<model>")

    @field_validator("requirements")
    @classmethod
    def _pins(cls, v: list[str]) -> list[str]:
        for pin in v:
            if "==" not in pin:
                raise ValueError(f"'{pin}' is not a pin: write name==version")
        return v

    def check(self) -> "DeployConfig":
        if bool(self.package) == bool(self.version):
            raise WorkbenchError("deploy config: give exactly one of 'package' (a new package to upload) or 'version' "
                                 "(a registered version number or alias)")
        if self.package and not Path(self.package).exists():
            raise WorkbenchError(f"deploy config: package {self.package} does not exist")
        if self.package:  # uploaded as a new version of `model`: a name the registry takes, refused now, not at upload
            try:
                check_name(self.model)
            except WorkbenchError as exc:
                raise WorkbenchError(f"deploy config: model: {exc}") from None
        if self.validation.holdout and not Path(self.validation.holdout).exists():
            raise WorkbenchError(f"deploy config: holdout table {self.validation.holdout} does not exist")
        return self


def read_config(source: str | Path | dict) -> DeployConfig:
    """A checked config from a YAML file (or a dict); a clear error naming the field that is wrong."""
    import yaml

    if isinstance(source, dict):
        data = source
    else:
        try:
            data = yaml.safe_load(Path(source).read_text())
        except FileNotFoundError:
            raise WorkbenchError(f"deploy config {source} does not exist") from None
        except yaml.YAMLError as exc:
            raise WorkbenchError(f"deploy config {source} is not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise WorkbenchError("deploy config: expected a mapping (model:, version: or package:, service:, validation:)")
    try:
        return DeployConfig(**data).check()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise WorkbenchError(f"deploy config: {problems}") from None
