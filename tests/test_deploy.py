"""Gated releases for real: packages uploaded, a fresh deployment environment, services on free ports of
127.0.0.1, validation against the running candidate, promotion, rejection, kills mid-release, rollback."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from mlflow import MlflowClient

from servers import free_port
from test_cli import workbench
from workbench.data import load
from workbench.deploy import deploy, rollback, status, stop_serving
from workbench.deploy.config import read_config
from workbench.registry import repository
from workbench.registry.package import load_package, package_result
from workbench.registry.tracking import mlflow_client

MODEL = "release-churn"


@pytest.fixture(scope="module")
def setup(trained, demo_df, tmp_path_factory):
    """Two packages of the same model (LightGBM, then the session model), a holdout table and a config maker."""
    from workbench import train

    root = tmp_path_factory.mktemp("deploy")
    lgb = train(demo_df, "churn", models=["lightgbm"], folds=3, log=False, progress=False, time_budget=60)
    first = package_result(lgb, root / "first", name=MODEL, archive=True).with_name("first.tar.gz")
    second = package_result(trained, root / "second", name=MODEL, archive=True).with_name("second.tar.gz")
    load("demo", n_rows=300, seed=31).to_csv(root / "holdout.csv", index=False)
    port = free_port()

    def config(package, requirements=(), **validation) -> dict:
        """Without requirements a release serves from the core runtime that the session's pipeline run built too."""
        return {"model": MODEL, "package": str(package), "service": {"port": port}, "deploy_dir": str(root / "deploy"),
                "requirements": list(requirements),
                "validation": {"holdout": str(root / "holdout.csv"), "threshold": 0.55, "margin": 0.5} | validation}

    yield root, first, second, port, config
    stop_serving(read_config(config(first)))


def _serving_version(port: int, package: Path) -> str:
    """The version that the serving port answers with."""
    row = json.loads(load_package(package).reference.head(1).to_json(orient="records"))
    r = httpx.post(f"http://127.0.0.1:{port}/v1/models/{MODEL}/predict", json=row)
    assert r.status_code == 200, r.text
    return r.json()["version"]


def test_a_release_installs_validates_promotes_and_serves(setup):
    root, first, _, port, config = setup
    seen = []
    rel = deploy(config(first), on_step=lambda step, info: seen.append((step, info["status"])))
    assert rel.outcome == "promoted" and [s for s, st in seen if st == "ok"] == list(rel.steps)
    venv_python = Path(rel.facts["python"])
    assert subprocess.run([str(venv_python), "-c", "import workbench"]).returncode == 0
    for extra in ("mlflow", "dask", "papermill", "pyarrow", "plotly"):  # the serving runtime holds the core only
        assert subprocess.run([str(venv_python), "-c", f"import {extra}"], capture_output=True).returncode == 1, extra
    assert rel.steps["validate"]["details"]["max_difference"] == 0.0 and rel.steps["validate"]["details"]["passed"]
    version = rel.facts["version"]
    assert str(repository.resolve(f"{MODEL}@champion").version) == version
    mlflow_client()
    assert MlflowClient().get_model_version(MODEL, version).tags["validation_status"] == "passed"
    run = MlflowClient().get_run(rel.mlflow_run_id)
    assert run.data.tags["step.8.promote"] == "ok" and "step_environment_seconds" in run.data.metrics
    assert _serving_version(port, first) == version
    assert "candidate_pid" not in rel.facts  # the candidate's process is gone


def test_a_release_that_fails_validation_leaves_the_champion_serving(setup):
    root, first, second, port, config = setup
    before = repository.resolve(f"{MODEL}@champion").version
    p = workbench("deploy", "--config", _yaml(root / "strict.yaml", config(second, threshold=0.999)))
    assert p.returncode == 1 and "rejected" in p.stdout and "does not meet the threshold 0.999" in p.stdout, p.stderr
    assert repository.resolve(f"{MODEL}@champion").version == before
    assert _serving_version(port, first) == str(before)
    rejected = repository.versions(MODEL).iloc[-1]
    mlflow_client()
    assert MlflowClient().get_model_version(MODEL, str(rejected["version"])).tags["validation_status"] == "failed"


@pytest.mark.parametrize("kill_after", ["upload", "start"])
def test_a_release_killed_between_steps_keeps_the_champion_and_continues(setup, kill_after):
    root, first, second, port, config = setup
    cfg_file = _yaml(root / f"kill-{kill_after}.yaml", config(second, margin=0.9))
    champion = repository.resolve(f"{MODEL}@champion").version
    releases = root / "deploy" / "releases"
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "deploy", "--config", str(cfg_file)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ)
    releases = root / "deploy" / "releases"
    earlier = set(releases.glob("*.json"))
    deadline = time.time() + 240
    state = None
    while time.time() < deadline and proc.poll() is None:
        newest = next(iter(set(releases.glob("*.json")) - earlier), None)
        if newest is not None:
            try:
                state = json.loads(newest.read_text())
            except json.JSONDecodeError:
                state = None
            if state and state["steps"].get(kill_after, {}).get("status") == "ok":
                proc.send_signal(signal.SIGKILL)
                break
        time.sleep(0.05)
    proc.wait(timeout=30)
    assert state and state["steps"][kill_after]["status"] == "ok" and state["outcome"] == "running"
    assert repository.resolve(f"{MODEL}@champion").version == champion and _serving_version(port, first) == str(champion)
    done = {k: v["at"] for k, v in state["steps"].items() if v["status"] == "ok"}
    rel = deploy(read_config(cfg_file))  # the same config continues the same release
    assert rel.id == state["id"] and rel.outcome == "promoted"
    assert all(rel.steps[k]["at"] == at for k, at in done.items())  # finished steps were not run again
    assert _serving_version(port, first) == rel.facts["version"]
    candidate = root / "deploy" / "candidate.pid"
    assert not candidate.exists()  # no candidate left running, even one started by the killed attempt


def test_rollback_swaps_the_previous_champion_back_with_no_failed_request(setup):
    root, first, second, port, config = setup
    current = repository.resolve(f"{MODEL}@champion").version
    answers, stop = [], threading.Event()
    row = json.loads(load_package(first).reference.head(1).to_json(orient="records"))

    def fire():
        with httpx.Client(timeout=30) as c:
            while not stop.is_set():
                r = c.post(f"http://127.0.0.1:{port}/v1/models/{MODEL}/predict", json=row)
                answers.append((r.status_code, r.json().get("version")))

    t = threading.Thread(target=fire)
    t.start()
    try:
        time.sleep(0.5)
        out = rollback(MODEL, config=config(first))
        time.sleep(0.5)
    finally:
        stop.set()
        t.join()
    assert out["champion"] != str(current) and str(repository.resolve(f"{MODEL}@champion").version) == out["champion"]
    assert all(code == 200 for code, _ in answers) and answers[-1][1] == out["champion"]
    info = status(MODEL, config=config(first))
    assert info["serving"]["alive"] and info["serving"]["version"] == out["champion"]
    assert info["releases"][-1]["outcome"] == "rolled back"
    p = workbench("deploy", "status", MODEL, "--config", _yaml(root / "status.yaml", config(first)))
    assert p.returncode == 0 and json.loads(p.stdout)["serving"]["version"] == out["champion"]


def test_deploy_panel_shows_each_step_of_a_release(setup):
    from widgets import DeployPanel

    root, first, _, port, config = setup
    panel = DeployPanel(config(first, margin=0.9))
    assert "Serving version" in panel.status.value
    panel.release()
    assert panel.result.outcome == "promoted" and panel.steps.value.count("✅") == 8
    assert f"Serving version {panel.result.facts['version']}" in panel.status.value


def test_bad_deploy_configs_are_clear_errors(setup, tmp_path):
    root, first, _, _, config = setup
    p = workbench("deploy", "--config", _yaml(tmp_path / "a.yaml", {"model": MODEL, "package": str(first), "version": "3"}))
    assert p.returncode == 2 and "exactly one of 'package'" in p.stderr
    p = workbench("deploy", "--config", _yaml(tmp_path / "b.yaml", config(first) | {"servce": {}}))
    assert p.returncode == 2 and "servce" in p.stderr and "Traceback" not in p.stderr
    p = workbench("deploy", "--config", _yaml(tmp_path / "c.yaml", config(first) | {"requirements": ["numpy"]}))
    assert p.returncode == 2 and "'numpy' is not a pin" in p.stderr


def _yaml(path: Path, data: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(data))
    return path


def test_a_decomposed_package_is_released_as_a_front_with_part_servers_and_rolled_back(setup):
    from workbench.decompose.core import decompose_package

    root, first, _, port, config = setup
    before = str(repository.resolve(f"{MODEL}@champion").version)
    parts, _ = decompose_package(load_package(first), root / "parts", 2, archive=True)
    rel = deploy(config(parts.with_name("parts.tar.gz"), requirements=["inflection==0.5.1"]))
    assert rel.outcome == "promoted" and rel.facts["decomposed"], rel.facts
    assert rel.steps["environment"]["details"]["requirements"] == ["inflection==0.5.1"]  # from the index, into its venv
    assert subprocess.run([rel.facts["python"], "-c", "import inflection, workbench"]).returncode == 0
    assert rel.steps["validate"]["details"]["max_difference"] <= 1e-9
    ready = httpx.get(f"http://127.0.0.1:{port}/readyz").json()
    assert all(p["healthy"] and p["required"] for ps in ready["parts"].values() for p in ps.values())
    assert _serving_version(port, first) == rel.facts["version"]
    out = rollback(MODEL, config=config(first))  # back to a whole model: the front and its parts make way
    assert out["champion"] == before and _serving_version(port, first) == before
    assert "parts" not in httpx.get(f"http://127.0.0.1:{port}/readyz").json()
