"""A gated release: package → upload & tag → environment → start → health → validate → promote (or keep the
champion). Each step is recorded (status, seconds, details) in the release's state file and in its MLflow run,
so a release stopped anywhere — by a failure or a kill — continues from the step that did not finish.

The champion keeps serving on the serving port throughout: the candidate starts on a port of its own, and only a
validated candidate that is not worse than the champion (by more than the margin) moves the ``champion`` alias;
the serving service then swaps to it in place (no failed request) and the candidate's process stops.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import httpx

from workbench.child import Service, alive, free_port, terminate, wait_ready
from workbench.data import load
from workbench.decompose.core import is_decomposed
from workbench.deploy.config import DeployConfig, read_config
from workbench.deploy.runtime import runtime
from workbench.errors import WorkbenchError
from workbench.models.metrics import DEFAULT_METRIC, loss, score
from workbench.models.train import evaluate
from workbench.registry import repository
from workbench.registry.package import compare_predictions, load_package, make_archive
from workbench.registry.tracking import mlflow_client
from workbench.settings import Settings, get_settings

STEPS = ["config", "package", "upload", "environment", "start", "health", "validate", "promote"]


class ReleaseFailed(WorkbenchError):
    """A step failed: the champion still serves; re-running the release continues from this step."""


@dataclass
class Release:
    """A release's state, saved after every step (the file is replaced whole)."""

    id: str
    config: dict
    steps: dict = field(default_factory=dict)  # step → {status, seconds, details, at}
    facts: dict = field(default_factory=dict)  # what steps hand on: version, archive, ports, pids, ...
    outcome: str = "running"  # running | promoted | rejected | failed
    mlflow_run_id: str | None = None

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{self.id}.json.tmp"
        tmp.write_text(json.dumps(self.__dict__, indent=1, default=str))
        os.replace(tmp, folder / f"{self.id}.json")

    @classmethod
    def load(cls, path: Path) -> "Release":
        return cls(**json.loads(path.read_text()))


def deploy(config: str | Path | dict | DeployConfig, *, restart: bool = False, settings: Settings | None = None,
           on_step: Callable[[str, dict], None] | None = None) -> Release:
    """Carry a model version through the release steps; continues an unfinished release of the same config."""
    s = settings or get_settings()
    cfg = config if isinstance(config, DeployConfig) else read_config(config)
    folder = deploy_dir(cfg, s)
    releases = folder / "releases"
    key = hashlib.sha256(cfg.model_dump_json().encode()).hexdigest()[:12]
    rel = None if restart else _unfinished(releases, key)
    if rel is None:
        rel = Release(f"{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S')}-{key}", cfg.model_dump())
    rel.facts["config_key"] = key
    say = on_step or (lambda step, info: None)
    for step in STEPS:
        if rel.steps.get(step, {}).get("status") == "ok":
            continue
        t0 = time.time()
        rel.steps[step] = {"status": "running", "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        rel.save(releases)
        say(step, rel.steps[step])
        try:
            details = STEP_FUNCTIONS[step](cfg, rel, s) or {}
            status = "ok"
        except WorkbenchError as exc:
            details, status = {"error": str(exc)}, "failed"
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: no candidate server left behind; a rerun continues here
            rel.steps[step] |= {"status": "interrupted", "seconds": round(time.time() - t0, 2)}
            _cleanup_candidate(rel)
            rel.save(releases)
            raise
        rel.steps[step] |= {"status": status, "seconds": round(time.time() - t0, 2), "details": details}
        if step == "promote" and status == "ok":
            rel.outcome = details["outcome"]
        if status == "failed":
            rel.outcome = "failed"
            _cleanup_candidate(rel)
        rel.save(releases)
        _log_step(rel, step, s)
        say(step, rel.steps[step])
        if status == "failed":
            raise ReleaseFailed(f"release {rel.id} failed at '{step}': {details['error']}. The champion still serves; "
                                f"fix the cause and run `workbench deploy --config ...` again to continue from '{step}'")
    return rel


def deploy_dir(cfg: DeployConfig, s: Settings) -> Path:
    return Path(cfg.deploy_dir) if cfg.deploy_dir else s.home.resolve() / "deploy" / cfg.model


# ---------------------------------------------------------------------------------------------- the steps


def _config(cfg: DeployConfig, rel: Release, s: Settings) -> dict:
    if cfg.version:
        mv = repository.resolve(f"{cfg.model}@{cfg.version}" if not cfg.version.isdigit() else f"{cfg.model}/{cfg.version}", s)
        rel.facts["version"] = str(mv.version)
    return {"model": cfg.model, "release_of": cfg.version or cfg.package}


def _package(cfg: DeployConfig, rel: Release, s: Settings) -> dict:
    folder = deploy_dir(cfg, s) / "packages"
    folder.mkdir(parents=True, exist_ok=True)
    if cfg.package:
        pkg = load_package(cfg.package)
        archive = Path(cfg.package) if Path(cfg.package).is_file() else make_archive(pkg.path, folder / f"{rel.id}.tar.gz")
    else:
        archive = repository.export(f"{cfg.model}/{rel.facts['version']}", folder / f"{rel.id}.tar.gz", s)
        pkg = load_package(archive)
    rel.facts["archive"] = str(archive)
    return {"archive": str(archive), "files": len(pkg.manifest["files"]), "model": pkg.manifest["model"]}


def _upload(cfg: DeployConfig, rel: Release, s: Settings) -> dict:
    if cfg.package and "version" not in rel.facts:
        mv = repository.register(rel.facts["archive"], cfg.model, description=f"release {rel.id}", settings=s)
        rel.facts["version"] = str(mv.version)
    mlflow_client(s)
    from mlflow import MlflowClient

    MlflowClient().set_model_version_tag(cfg.model, rel.facts["version"], "validation_status", "pending")
    return {"version": rel.facts["version"], "validation_status": "pending"}


def _environment(cfg: DeployConfig, rel: Release, s: Settings) -> dict:
    """The deployment's serving runtime (``workbench.deploy.runtime``): the workbench's core, the extras the package's
    kinds need, its pinned versions and the config's pins, in a virtual environment of its own."""
    env = runtime(load_package(rel.facts["archive"], check=False).path, cfg.requirements, s)
    still = _missing(Path(env["python"]), env["pins"])
    if still:
        raise WorkbenchError(f"{env['venv']} lacks {', '.join(still)} after installing")
    rel.facts["python"] = env["python"]
    return {"venv": env["venv"], "extras": env["extras"], "pins": len(env["pins"]), "requirements": cfg.requirements,
            "built": env["built"]}


def _missing(python: Path, pins: list[str]) -> list[str]:
    """The pins that the environment of ``python`` does not satisfy exactly."""
    code = ("import json, sys\nfrom importlib.metadata import version, PackageNotFoundError\nout = []\n"
            "for pin in json.loads(sys.argv[1]):\n    name, want = pin.split('==')\n"
            "    try:\n        ok = version(name) == want\n    except PackageNotFoundError:\n        ok = False\n"
            "    out.append(pin) if not ok else None\nprint(json.dumps(out))")
    p = subprocess.run([str(python), "-c", code, json.dumps(pins)], capture_output=True, text=True, check=True)
    return json.loads(p.stdout)


def _start(cfg: DeployConfig, rel: Release, s: Settings) -> dict:
    pidfile = deploy_dir(cfg, s) / "candidate.pid"
    if pidfile.exists():  # a candidate left by an attempt that was killed before it could record it
        terminate(int(pidfile.read_text() or 0))
    _cleanup_candidate(rel)
    port = free_port()
    log = deploy_dir(cfg, s) / "logs" / f"{rel.id}-candidate.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    rel.facts["decomposed"] = is_decomposed(rel.facts["archive"])  # then: a front and one part server per part
    flag = "--decomposed" if rel.facts["decomposed"] else "--model"
    source = repository.pinned(f"{cfg.model}/{rel.facts['version']}", s)  # downloaded here: served without MLflow
    proc = Service(f"{flag}={source}", python=rel.facts["python"], host=cfg.service.host, port=port, log=log,
                   home=s.home).start()
    pidfile.write_text(str(proc.pid))
    rel.facts |= {"candidate_pid": proc.pid, "candidate_port": port, "candidate_pidfile": str(pidfile)}
    return {"pid": proc.pid, "port": port, "log": str(log)}


def _health(cfg: DeployConfig, rel: Release, s: Settings) -> dict:
    url = f"http://{cfg.service.host}:{rel.facts['candidate_port']}"
    tries = wait_ready(url, cfg.service.health_timeout_s, pid=rel.facts.get("candidate_pid"))
    return {"url": url, "tries": tries}


def _validate(cfg: DeployConfig, rel: Release, s: Settings) -> dict:
    """The running candidate answers the reference rows as stored, and meets the threshold on the holdout."""
    pkg = load_package(rel.facts["archive"], check=False)
    url = f"http://{cfg.service.host}:{rel.facts['candidate_port']}"
    got = _predict_frame(url, cfg.model, pkg.reference, pkg.model, s)
    diff = compare_predictions(got, pkg.expected, where="the running candidate")
    details = {"reference_rows": len(pkg.reference), "max_difference": diff}
    if cfg.validation.holdout:
        metric, score, champion = _holdout_scores(cfg, pkg, url, s)
        details |= {"metric": metric, "candidate": score, "champion": champion}
        if cfg.validation.threshold is not None and not _meets(metric, score, cfg.validation.threshold):
            rel.facts["rejected"] = f"{metric} {score:.4f} does not meet the threshold {cfg.validation.threshold}"
        elif champion is not None and _worse_by(metric, score, champion) > cfg.validation.margin:
            rel.facts["rejected"] = (f"{metric} {score:.4f} is worse than the champion's {champion:.4f} by more than "
                                     f"the margin {cfg.validation.margin}")
    return details | {"passed": "rejected" not in rel.facts}


def _promote(cfg: DeployConfig, rel: Release, s: Settings) -> dict:
    from mlflow import MlflowClient

    mlflow_client(s)
    client = MlflowClient()
    version = rel.facts["version"]
    if rel.facts.get("rejected"):
        client.set_model_version_tag(cfg.model, version, "validation_status", "failed")
        _cleanup_candidate(rel)
        return {"outcome": "rejected", "why": rel.facts["rejected"], "serving": _serving_version(cfg, s)}
    aliases = client.get_registered_model(cfg.model).aliases
    previous = rel.facts.setdefault("previous_champion", aliases.get("champion"))
    client.set_model_version_tag(cfg.model, version, "validation_status", "passed")
    repository.promote(cfg.model, version, "champion", settings=s)
    switched = switch(cfg, version, s, python=rel.facts["python"])
    _cleanup_candidate(rel)
    return {"outcome": "promoted", "champion": version, "previous_champion": previous, "serving": switched}


STEP_FUNCTIONS = {"config": _config, "package": _package, "upload": _upload, "environment": _environment,
                  "start": _start, "health": _health, "validate": _validate, "promote": _promote}


# ---------------------------------------------------------------------------------------------- the serving port


def switch(cfg: DeployConfig, version: str, s: Settings, *, python: str | None = None) -> dict:
    """Make the serving port answer with ``version``: swap in place if our service runs there, else start one (in
    ``python``, default the serving runtime of that version's package)."""
    state = serving_state(cfg, s)
    url = f"http://{cfg.service.host}:{cfg.service.port}"
    source = repository.pinned(f"{cfg.model}/{version}", s)  # downloaded here: served without MLflow
    decomposed = is_decomposed(repository.unpin(source)[2])
    if state and alive(state.get("pid")) and (decomposed or state.get("decomposed")):
        # a front and its part servers are not swapped in place: the service restarts with the new version's parts
        terminate(state["pid"])
        state = None
    if state and alive(state.get("pid")):
        url = state["url"]  # where it really serves (a rollback may come without the release's config)
        try:
            r = httpx.post(url + "/admin/reload", json={"source": source}, headers=_admin_headers(),
                           timeout=120)
        except httpx.HTTPError as exc:
            raise WorkbenchError(f"cannot reach the service on {url} to swap it to version {version} ({exc})") from None
        if r.status_code != 200:
            raise WorkbenchError(f"the service on {url} refused to swap to version {version}: {r.text[:300]}")
    else:
        log = deploy_dir(cfg, s) / "logs" / "serving.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        flag = "--decomposed" if decomposed else "--model"
        python = python or runtime(repository.unpin(source)[2], cfg.requirements, s)["python"]
        proc = Service(f"{flag}={source}", f"--workers={cfg.service.workers}", python=python, host=cfg.service.host,
                       port=cfg.service.port, log=log, home=s.home).start()
        proc.wait_ready(cfg.service.health_timeout_s)
        state = {"pid": proc.pid, "port": cfg.service.port, "url": url, "python": python}
    state["decomposed"] = decomposed
    state |= {"version": version, "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    _write_serving(cfg, s, state)
    return {"url": url, "version": version, "pid": state["pid"]}


def rollback(model: str, *, config: str | Path | dict | None = None, settings: Settings | None = None) -> dict:
    """Move ``champion`` back to the version it named before the last promotion, and swap the service back."""
    s = settings or get_settings()
    cfg = read_config(config) if config is not None else DeployConfig(model=model, version="champion")
    promoted = [r for r in releases(cfg, s) if r.outcome == "promoted"]
    if not promoted:
        raise WorkbenchError(f"no promoted release of '{model}' to roll back")
    last = promoted[-1]
    previous = last.steps["promote"]["details"].get("previous_champion")
    if previous is None:
        raise WorkbenchError(f"release {last.id} had no champion before it: nothing to roll back to")
    repository.promote(model, previous, "champion", settings=s)
    served = switch(cfg, str(previous), s)
    last.outcome = "rolled back"
    last.save(deploy_dir(cfg, s) / "releases")
    return {"champion": str(previous), "rolled_back": last.facts["version"], "serving": served}


def status(model: str, *, config: str | Path | dict | None = None, settings: Settings | None = None) -> dict:
    """What serves where, and the last releases with their steps."""
    s = settings or get_settings()
    cfg = read_config(config) if config is not None else DeployConfig(model=model, version="champion")
    state = serving_state(cfg, s)
    if state:
        state["alive"] = alive(state.get("pid"))
    return {"serving": state, "releases": [{"id": r.id, "outcome": r.outcome, "version": r.facts.get("version"),
                                            "steps": {k: v.get("status") for k, v in r.steps.items()}}
                                           for r in releases(cfg, s)[-5:]]}


def stop_serving(cfg: DeployConfig, s: Settings | None = None) -> bool:
    """Stop the service on the serving port (gracefully: in-flight requests finish)."""
    s = s or get_settings()
    state = serving_state(cfg, s)
    if not state or not alive(state.get("pid")):
        return False
    terminate(state["pid"])
    (deploy_dir(cfg, s) / "serving.json").unlink(missing_ok=True)
    return True


def releases(cfg: DeployConfig, s: Settings) -> list[Release]:
    folder = deploy_dir(cfg, s) / "releases"
    return [Release.load(p) for p in sorted(folder.glob("*.json"))] if folder.exists() else []


def serving_state(cfg: DeployConfig, s: Settings) -> dict | None:
    path = deploy_dir(cfg, s) / "serving.json"
    return json.loads(path.read_text()) if path.exists() else None


# ---------------------------------------------------------------------------------------------- helpers


def _write_serving(cfg: DeployConfig, s: Settings, state: dict) -> None:
    path = deploy_dir(cfg, s) / "serving.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1))
    os.replace(tmp, path)


def _unfinished(folder: Path, key: str) -> Release | None:
    if not folder.exists():
        return None
    for path in sorted(folder.glob(f"*-{key}.json"), reverse=True):
        rel = Release.load(path)
        return rel if rel.outcome in ("running", "failed") else None
    return None


def _cleanup_candidate(rel: Release) -> None:
    pid = rel.facts.pop("candidate_pid", None)
    if pid:
        terminate(pid)
    pidfile = rel.facts.pop("candidate_pidfile", None)
    if pidfile:
        Path(pidfile).unlink(missing_ok=True)


def _admin_headers() -> dict:
    return _key_header(get_settings().serve_admin_keys)


def _key_header(keys: str) -> dict:
    """The first of a comma-separated key list as the header the service reads (none when no keys)."""
    first = next((k.strip() for k in keys.split(",") if k.strip()), None)
    return {"X-API-Key": first} if first else {}


def _predict_frame(url: str, name: str, df, model, s: Settings):
    """Predictions of a running service as the package's predict_frame columns (prediction, one column per class)."""
    import math

    import pandas as pd

    records = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
               for r in df.to_dict(orient="records")]
    headers = _admin_headers() or _key_header(get_settings().serve_keys)
    try:
        r = httpx.post(f"{url}/v1/models/{name}/predict", json=records, headers=headers, timeout=120)
    except httpx.HTTPError as exc:
        raise WorkbenchError(f"cannot reach {url} ({exc})") from None
    if r.status_code != 200:
        raise WorkbenchError(f"{url} answered {r.status_code}: {r.text[:300]}")
    rows = r.json()["predictions"]
    out = pd.DataFrame({"prediction": [p["prediction"] for p in rows]})
    if rows and "decision" in rows[0]:  # the package's decision rule, in predict_frame's place
        out["decision"] = [p["decision"] for p in rows]
    if model.task != "regression" and rows and "probabilities" in rows[0]:
        for label in model.classes:
            out[str(label)] = [p["probabilities"][str(label)] for p in rows]
    return out


def _holdout_scores(cfg: DeployConfig, pkg, url: str, s: Settings):
    """The candidate's metric on the holdout (through its service) and the champion's on the same rows."""
    df = load(cfg.validation.holdout)
    target = cfg.validation.target or pkg.manifest["target"]
    if target not in df.columns:
        raise WorkbenchError(f"the holdout table has no target column '{target}'")
    metric = cfg.validation.metric or DEFAULT_METRIC[pkg.model.task]
    X = df.drop(columns=[target])
    got = _predict_frame(url, cfg.model, X, pkg.model, s)
    actual = pkg.model.cleaner.transform_target(df[target])
    keep = actual.notna().to_numpy()
    if pkg.model.task == "regression":
        scores = got["prediction"].to_numpy(float)
        y = actual.to_numpy(float)
    else:
        scores = got[[str(c) for c in pkg.model.classes]].to_numpy(float)
        y = actual.map({c: i for i, c in enumerate(pkg.model.classes)}).to_numpy()
    candidate = score(pkg.model.task, y[keep].astype(float) if pkg.model.task == "regression" else y[keep].astype(int),
                      scores[keep])[metric]
    champion = None
    try:
        current = repository.resolve(f"{cfg.model}@champion", s)
    except WorkbenchError:
        current = None
    if current is not None:
        champ = repository.fetch(f"{cfg.model}/{current.version}", s)
        champion = evaluate(champ.model, df, target)[metric]
    return metric, float(candidate), champion


def _meets(metric: str, value: float, threshold: float) -> bool:
    return loss(metric, value) <= loss(metric, threshold)


def _worse_by(metric: str, candidate: float, champion: float) -> float:
    return loss(metric, candidate) - loss(metric, champion)


def _serving_version(cfg: DeployConfig, s: Settings):
    state = serving_state(cfg, s)
    return state.get("version") if state else None


def _log_step(rel: Release, step: str, s: Settings) -> None:
    """The step in the release's MLflow run: a tag with its status, its seconds as a metric, details as JSON."""
    mlflow = mlflow_client(s)
    info = rel.steps[step]
    with mlflow.start_run(run_id=rel.mlflow_run_id, run_name=None if rel.mlflow_run_id else f"release {rel.id}") as run:
        if rel.mlflow_run_id is None:
            rel.mlflow_run_id = run.info.run_id
            mlflow.set_tags({"workbench.kind": "release", "workbench.model": rel.config["model"]})
        mlflow.set_tags({f"step.{STEPS.index(step) + 1}.{step}": info["status"], "outcome": rel.outcome})
        mlflow.log_metric(f"step_{step}_seconds", info.get("seconds", 0.0))
        mlflow.log_dict({"step": step, **info}, f"steps/{STEPS.index(step) + 1}-{step}.json")
    rel.save(deploy_dir(DeployConfig(**rel.config), s) / "releases")
