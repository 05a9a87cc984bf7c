"""`workbench run`: the pipeline notebooks executed by papermill, with a report folder per run."""
from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.extras import extra
from workbench.pipeline import run_folder
from workbench.registry.tracking import start_run
from workbench.settings import Settings, get_settings

NOTEBOOKS = Path(str(resources.files("workbench.notebooks")))
PIPELINE = ["01_data.ipynb", "02_train.ipynb", "03_tune.ipynb", "04_ensemble.ipynb", "05_compress.ipynb", "06_package.ipynb",
            "07_deploy.ipynb", "08_monitor.ipynb"]
FROM_RUNNER = {"data", "target", "run_dir", "mlflow_run_id"}  # parameters the runner fills in itself


def run_pipeline(data: str = "demo", target: str = "churn", params: dict | None = None, run_id: str | None = None,
                 settings: Settings | None = None, echo=print, until: str | None = None) -> dict:
    """Execute the pipeline notebooks in order (``until`` names the last one: ``"03_tune"``); return (and save) the
    run summary.

    Stages hand results on through ``reports/<run-id>/artifacts`` and one MLflow run, never
    through kernel state. A failing notebook stops the run; its partial output is kept and
    the summary names the notebook and the cell.
    """
    with extra("notebook"):
        import papermill as pm

    s = settings or get_settings()
    params = dict(params or {})
    stages = PIPELINE
    if until is not None:
        names = [nb.removesuffix(".ipynb") for nb in PIPELINE]
        if until.removesuffix(".ipynb") not in names:
            raise WorkbenchError(f"unknown stage '{until}'. Stages: {', '.join(names)}")
        stages = PIPELINE[:names.index(until.removesuffix(".ipynb")) + 1]
    declared = {nb: set(pm.inspect_notebook(str(NOTEBOOKS / nb))) for nb in PIPELINE}
    unknown = set(params) - set().union(*declared.values()) | (set(params) & FROM_RUNNER)
    if unknown:
        valid = sorted(set().union(*declared.values()) - FROM_RUNNER)
        raise WorkbenchError(f"unknown pipeline parameter(s) {', '.join(sorted(unknown))}. Valid: {', '.join(valid)}")
    run_id = run_id or datetime.now().strftime("%Y%m%d-%H%M%S")
    root = run_folder(run_id, s).resolve()
    if (root / "summary.json").exists():
        raise WorkbenchError(f"run '{run_id}' exists already at {root}; choose another --run-id")
    root.mkdir(parents=True, exist_ok=True)
    if Path(str(data)).exists():
        data = str(Path(data).resolve())
    summary = {"run_id": run_id, "status": "running", "data": str(data), "target": target, "params": params,
               "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "report_dir": str(root),
               "mlflow_run_id": start_run(run_id, s), "tracking_uri": s.tracking_uri, "notebooks": []}
    env = {"WORKBENCH_PLAIN_PROGRESS": "1", "WORKBENCH_HOME": str(s.home.resolve()), "WORKBENCH_REPORTS": str(s.reports.resolve())}
    saved_env = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernels inherit them
    t_run = time.time()
    try:
        for nb in stages:
            given = {"data": str(data), "target": target, "run_dir": str(root), "mlflow_run_id": summary["mlflow_run_id"]}
            nb_params = {k: v for k, v in (given | params).items() if k in declared[nb]}
            echo(f"running {nb} ...")
            entry = _execute(NOTEBOOKS / nb, root / nb, nb_params)
            summary["notebooks"].append(entry)
            _write(root, summary)
            echo(f"  {nb}: {entry['status']} in {entry['seconds']:.1f} s" + (f" — {entry['error']}" if entry.get("error") else ""))
            if entry["status"] != "ok":
                break
    finally:
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    failed = any(e["status"] != "ok" for e in summary["notebooks"])
    summary["status"] = "failed" if failed else "ok"
    summary["seconds"] = round(time.time() - t_run, 1)
    result_file = root / "artifacts" / "result.json"
    if result_file.exists():
        result = json.loads(result_file.read_text())
        summary["metrics"] = {"best_model": result["best_model"], "metric": result["metric"],
                              **{f"cv_{k}": v for k, v in result["cv"].items()},
                              **{f"test_{k}": v for k, v in result["test_metrics"].items()}}
        for key in ("compression", "package", "deploy", "monitor"):
            if key in result:
                summary[key] = result[key]
    _write(root, summary)
    if failed:
        from mlflow.tracking import MlflowClient

        MlflowClient(s.tracking_uri).set_terminated(summary["mlflow_run_id"], "FAILED")
    return summary


def _execute(src: Path, out: Path, params: dict) -> dict:
    import papermill as pm

    t0 = time.time()
    entry = {"notebook": src.name, "output": str(out), "html": str(out.with_suffix(".html"))}
    try:
        pm.execute_notebook(str(src), str(out), parameters=params, kernel_name="python3", progress_bar=False,
                            # the user's folder: relative paths mean what they typed, and the kernel writes nothing
                            # into the installed package
                            cwd=os.getcwd(), kernel_manager_class=_venv_kernel_manager())
        entry["status"] = "ok"
    except pm.PapermillExecutionError as exc:
        entry |= {"status": "failed", "cell": exc.cell_index, "error": f"cell {exc.cell_index}: {exc.ename}: {exc.evalue}"}
    except Exception as exc:  # the kernel died or the notebook could not be read: still a recorded failure
        entry |= {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    entry["seconds"] = round(time.time() - t0, 2)
    if out.exists():
        _to_html(out)
    return entry


def _venv_kernel_manager():
    """A kernel manager that only knows this environment's own kernel, never one registered with --user by another venv."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    class VenvKernelManager(AsyncKernelManager):
        @default("transport")
        def _default_transport(self):
            return "ipc"  # local sockets: no open ports, no plain-TCP warning

        @default("kernel_spec_manager")
        def _default_kernel_spec_manager(self):
            return KernelSpecManager(kernel_dirs=[str(Path(sys.prefix) / "share" / "jupyter" / "kernels")])

        async def _async_interrupt_kernel(self):
            # jupyter_client sends SIGINT before every shutdown; papermill shuts down only after the last cell, and a
            # kernel caught between two messages then logs "ERROR | KeyboardInterrupt caught in kernel" on a good run
            if not self.shutting_down:
                await super()._async_interrupt_kernel()

    return VenvKernelManager


def _to_html(path: Path) -> None:
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True).from_notebook_node(
        nbformat.read(path, as_version=4))
    path.with_suffix(".html").write_text(body)


def _write(root: Path, summary: dict) -> None:
    tmp = root / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1, default=str))
    tmp.replace(root / "summary.json")  # never a half-written summary
