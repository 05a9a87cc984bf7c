"""The workbench installed like a library: the wheel, built and installed into a fresh virtual environment where
``[all]`` resolves, runs the pipeline in an empty folder; the core installs and imports without the extras, and a missing
extra is one line that names it."""
import ast
import json
import os
import subprocess
import sys
import sysconfig
from importlib.metadata import packages_distributions, requires
from pathlib import Path

import pytest

from workbench.deploy.runtime import SOURCE, _key, build_wheel, installed_by, runtime
from workbench.registry.package import package_result

OPTIONAL = ("mlflow", "dask", "distributed", "papermill", "jupyterlab", "voila", "treelite", "onnxruntime", "pyarrow",
            "plotly", "ipywidgets", "hyperopt")


def _clean_env(**extra) -> dict:
    """This environment without the test session's workbench settings or anything that points into the checkout."""
    drop = ("WORKBENCH_", "PYTHONPATH", "VIRTUAL_ENV", "MLFLOW_")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)} | extra


@pytest.mark.timeout(900)
def test_the_wheel_installed_with_all_runs_the_pipeline_in_an_empty_folder(tmp_path):
    wheel = build_wheel(tmp_path / "dist")
    names = subprocess.run([sys.executable, "-m", "zipfile", "-l", str(wheel)], capture_output=True, text=True).stdout
    assert "workbench/notebooks/02_train.ipynb" in names and "widgets/" in names and "tests/" not in names
    venv = _venv_seeing_this_environment(tmp_path / "venv")
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
           "--disable-pip-version-check"]
    # [all] resolves: every requirement it brings is met by the versions installed here, the wheel alone is new
    p = subprocess.run([*pip, "--dry-run", "--report", "-", f"{wheel}[all]"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    assert [i["metadata"]["name"] for i in json.loads(p.stdout)["install"]] == ["aims-workbench"], p.stdout[-2000:]
    p = subprocess.run([*pip, "--no-deps", str(wheel)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    empty = tmp_path / "work"
    empty.mkdir()
    (empty / "params.yaml").write_text("models: [lightgbm, linear]\nfolds: 3\n")
    env = _clean_env()
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import workbench; print(workbench.__file__)"],
                           cwd=empty, env=env, capture_output=True, text=True)
    assert where.stdout.startswith(str(venv)), where.stdout + where.stderr  # the installed copy, not the checkout
    p = subprocess.run([str(venv / "bin" / "workbench"), "run", "--data", "demo:600", "--target", "churn", "--params",
                        "params.yaml", "--until", "02_train", "--run-id", "from-wheel"], cwd=empty, env=env,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    run = empty / "reports" / "from-wheel"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "ok" and [n["notebook"] for n in summary["notebooks"]] == ["01_data.ipynb",
                                                                                          "02_train.ipynb"]
    assert summary["metrics"]["test_roc_auc"] > 0.6, summary["metrics"]
    for stage in ("01_data", "02_train"):
        assert (run / f"{stage}.ipynb").stat().st_size > 0 and (run / f"{stage}.html").stat().st_size > 0
    assert (empty / ".workbench" / "mlflow.db").exists()  # the run's MLflow store, in the folder it ran in


def _venv_seeing_this_environment(venv: Path) -> Path:
    """A fresh venv whose site-packages also sees this environment's (a plain path in a .pth: the checkout's editable
    finder is not run) and whose share/jupyter is this one's (nbconvert's templates). Installing [all]'s hundreds of
    megabytes again took minutes; the dry run shows that the versions here satisfy it."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    ours = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (Path(site) / "_this_environment.pth").write_text("".join(f"{d}\n" for d in sorted(ours)))
    (venv / "share").mkdir(exist_ok=True)
    (venv / "share" / "jupyter").symlink_to(Path(sys.prefix) / "share" / "jupyter")
    return venv


def test_the_core_serves_without_any_extra_and_a_missing_extra_names_itself(trained, tmp_path):
    pkg = package_result(trained, tmp_path / "pkg", name="core-only")
    env = runtime(pkg)  # a release's serving runtime: the core wheel, no extras
    python = env["python"]
    assert env["extras"] == []
    code = ("import sys, workbench, workbench.serve.app\nfrom workbench.registry.package import load_package\n"
            f"p = load_package({str(pkg)!r})\np.model.predict_frame(p.reference)\n"
            f"print(sorted(m for m in {OPTIONAL!r} if m in sys.modules))")
    p = subprocess.run([python, "-c", code], cwd=tmp_path, env=_clean_env(), capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.strip() == "[]", p.stdout + p.stderr  # none loaded, and none needed
    p = subprocess.run([python, "-m", "workbench.cli", "models", "list"], cwd=tmp_path, env=_clean_env(),
                       capture_output=True, text=True)
    assert p.returncode != 0 and "pip install 'aims-workbench[tracking]'" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_every_module_level_import_of_the_library_is_a_core_dependency():
    """What ``import workbench.<anything>`` needs at once is in the core; the extras are imported where they are used,
    inside ``with extra(...)`` (the MLflow flavour is loaded by MLflow itself)."""
    core = _closure(installed_by([])) | {"aims-workbench"}
    dists = packages_distributions()
    outside = []
    for f in sorted((SOURCE / "workbench").rglob("*.py")):
        if f.name == "pyfunc_model.py":
            continue
        for node in ast.parse(f.read_text()).body:
            if isinstance(node, (ast.Import, ast.ImportFrom)) and not (isinstance(node, ast.ImportFrom) and node.level):
                for module in [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]:
                    top = module.split(".")[0]
                    if top in sys.stdlib_module_names or top in ("workbench", "__future__"):
                        continue
                    if not {_key(d) for d in dists.get(top, [top])} & core:
                        outside.append(f"{f.relative_to(SOURCE)}: {module}")
    assert not outside, outside


def _closure(names: set[str]) -> set[str]:
    """These distributions and everything they require (their extras' requirements left out)."""
    seen, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            reqs = requires(name) or []
        except Exception:  # noqa: BLE001 - a name that is not installed here has no requirements to follow
            reqs = []
        for req in reqs:
            if "extra ==" not in req:
                todo.append(_key(req.split(";")[0].split("[")[0].split("<")[0].split(">")[0].split("=")[0]
                                 .split("!")[0].split("~")[0].strip()))
    return seen
