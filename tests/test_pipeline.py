"""`workbench run`: real notebooks executed by papermill, stages handing over through the run folder and MLflow."""
import json
from pathlib import Path

import mlflow
import nbformat
import pandas as pd
import pytest

from test_cli import workbench
from workbench.pipeline import load_results
from workbench.registry.tracking import mlflow_client
from workbench.runner import NOTEBOOKS, PIPELINE, _execute


def test_run_writes_executed_notebooks_html_and_summary(pipeline_run):
    root = Path(pipeline_run["report_dir"])
    for nb in PIPELINE:
        assert (root / nb).exists() and (root / nb).with_suffix(".html").stat().st_size > 10_000
    summary = json.loads((root / "summary.json").read_text())
    assert [e["status"] for e in summary["notebooks"]] == ["ok"] * len(PIPELINE)
    assert summary["metrics"]["best_model"].split(":")[0] in {"lightgbm", "linear", "naive_bayes", "ensemble"}
    assert 0.5 < summary["metrics"]["test_roc_auc"] <= 1 and all(e["seconds"] > 0 for e in summary["notebooks"])
    record = json.loads((root / "artifacts" / "result.json").read_text())  # the params file's decision values
    assert 0 < record["decision"]["threshold"] < 0.5 and record["calibration"]["method"] in {"sigmoid", "isotonic", "none"}


def test_stages_share_one_mlflow_run(pipeline_run):
    mlflow_client()
    run = mlflow.get_run(pipeline_run["mlflow_run_id"])
    assert run.data.params["target"] == "churn" and run.data.params["best_model"]
    names = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {"cleaning_report.json", "schema.json", "leaderboard.csv", "oof.parquet"} <= names
    assert mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model").metadata.run_id == run.info.run_id


def test_the_run_ends_with_its_model_packaged_and_registered_as_staging(pipeline_run):
    from workbench.registry import repository
    from workbench.registry.package import load_package

    meta = json.loads((Path(pipeline_run["report_dir"]) / "artifacts" / "result.json").read_text())
    info = meta["package"]
    pkg = load_package(info["archive"])
    assert pkg.manifest["model"] == meta["best_model"] == info["model"] and pkg.manifest["name"] == "churn"
    assert pkg.manifest["metrics"]["test_roc_auc"] == meta["test_metrics"]["roc_auc"]
    staged = repository.fetch("churn@staging")
    assert staged.manifest["files"] == pkg.manifest["files"]


def test_the_stages_hand_on_one_train_result_whose_model_the_package_stage_packed(pipeline_run):
    from workbench.pipeline import load_result
    from workbench.registry.package import load_package

    root = Path(pipeline_run["report_dir"])
    result = load_result(root)
    packed = load_package(root / "package")
    assert result.best.name == result.model.name == packed.manifest["model"]
    assert result.best.oof is not None  # what compression distills from
    assert packed.manifest["metrics"] == ({f"cv_{k}": v for k, v in result.best.cv.items()}
                                          | {f"test_{k}": v for k, v in result.test_metrics.items()})


def test_the_run_compresses_its_model_and_packages_the_chosen_variant(pipeline_run):
    import pandas as pd

    from workbench.registry.package import load_package

    root = Path(pipeline_run["report_dir"])
    comp = pipeline_run["compression"]
    frame = pd.read_parquet(root / "artifacts" / "compression.parquet")
    assert frame["variant"].iloc[0] == "original" and len(frame) >= 2 and (frame["size_bytes"] > 0).all()
    if comp["chosen"] is None:
        assert "no variant" in comp["verdict"] and not (root / "compressed").exists()
    else:
        assert comp["bytes"] <= comp["original_bytes"] and "smaller" in comp["verdict"]
        assert load_package(root / "compressed").manifest["params"]["compression"] == comp["chosen"]
    html = (root / "05_compress.html").read_text()
    assert "Pareto front" in html  # the size–metric chart was drawn


def test_the_run_releases_its_model_validated_on_127_0_0_1_and_stops_it(pipeline_run):
    dep = pipeline_run["deploy"]
    assert dep["outcome"] in {"promoted", "rejected"} and all(v == "ok" for v in dep["steps"].values())
    assert dep["validation"]["max_difference"] == 0.0 and dep["validation"]["metric"] == "roc_auc"
    assert dep["serving"]["url"].startswith("http://127.0.0.1:") and dep["stopped"] is True
    import httpx

    with pytest.raises(httpx.HTTPError):  # stopped again at the end
        httpx.get(dep["serving"]["url"] + "/healthz", timeout=2)


def test_saved_results_feed_the_charts_without_retraining(pipeline_run):
    r = load_results(pipeline_run["run_id"])
    assert r.models[0] == r.meta["best_model"] and {m.split(":")[0] for m in r.models} <= {"lightgbm", "linear", "naive_bayes", "ensemble"}
    assert any(m.endswith(":tpe") for m in r.models) and any(m.startswith("ensemble:") for m in r.models)
    y, proba = r.scores(r.models[0])
    assert proba.shape == (len(y), 2) and len(r.importance) and len(r.learning_curve) == 5


def test_executed_notebooks_keep_no_kernel_state_between_stages(pipeline_run):
    nb = nbformat.read(Path(pipeline_run["report_dir"]) / "02_train.ipynb", as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "pipeline.train_stage(run_dir" in code and "prepared" not in code


def test_every_notebook_executes_including_dashboard_and_explore(pipeline_run, tmp_path):
    for name, params in [("dashboard.ipynb", {"run_id": pipeline_run["run_id"]}), ("explore.ipynb", {"data": "demo:300"})]:
        entry = _execute(NOTEBOOKS / name, tmp_path / name, params)
        assert entry["status"] == "ok", entry
        assert (tmp_path / name).with_suffix(".html").exists()


def test_a_failing_stage_names_notebook_and_cell_and_keeps_partial_output(tmp_path):
    p = workbench("run", "--data", "demo:300", "--target", "no_such_column", "--run-id", "broken")
    assert p.returncode == 1
    assert "01_data.ipynb failed at cell" in p.stderr and "no_such_column" in p.stderr
    from workbench.settings import get_settings

    root = get_settings().reports / "broken"
    summary = json.loads((root / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["notebooks"][0]["status"] == "failed"
    assert (root / "01_data.ipynb").exists() and (root / "01_data.html").exists()
    assert len(summary["notebooks"]) == 1  # the training stage never ran


def test_unknown_pipeline_parameter_is_a_clear_error(tmp_path):
    (tmp_path / "p.yaml").write_text("time_budgett: 10\n")
    p = workbench("run", "--params", tmp_path / "p.yaml")
    assert p.returncode == 2 and "unknown pipeline parameter(s) time_budgett" in p.stderr and "time_budget" in p.stderr


def test_the_run_ends_with_its_released_model_monitored(pipeline_run):
    from workbench.monitor import PredictionLog

    mon = pipeline_run["monitor"]
    test_rows = len(pd.read_parquet(Path(pipeline_run["report_dir"]) / "artifacts" / "test_raw.parquet"))
    assert mon["rows"] == mon["outcomes"] == test_rows
    assert 0.5 < mon["live"] <= 1 and abs(mon["live"] - mon["validation"]) < 0.02  # the test rows are the validation's
    assert "How churn is doing" in Path(mon["report"]).read_text()
    _, preds = PredictionLog().read(mon["name"])
    assert preds["actual"].notna().sum() >= test_rows


def test_the_same_notebooks_run_unchanged_against_a_real_scheduler(pipeline_run, monkeypatch):
    """The data, training and tuning notebooks, run with WORKBENCH_DASK_ADDRESS naming a real `dask scheduler` (two
    `dask worker` processes): their jobs run on it, and the leaderboard equals the embedded cluster's."""
    from conftest import PIPELINE_PARAMS
    from servers import DaskCluster

    from workbench.runner import run_pipeline

    cluster = DaskCluster(2)
    try:
        monkeypatch.setenv("WORKBENCH_DASK_ADDRESS", cluster.address)
        summary = run_pipeline("demo:500", "churn", params=PIPELINE_PARAMS, run_id="real-scheduler",
                               echo=lambda *_: None, until="03_tune")
        assert [e["status"] for e in summary["notebooks"]] == ["ok"] * 3, summary
        ran = cluster.client.run_on_scheduler(lambda dask_scheduler: sorted(dask_scheduler.task_prefixes))
        assert "cross_validate" in ran, ran  # the comparison's folds and the tuning's trials ran on its workers
    finally:
        cluster.stop()
    board = pd.read_csv(Path(summary["report_dir"]) / "artifacts" / "leaderboard.csv").set_index("model")
    embedded = pd.read_csv(Path(pipeline_run["report_dir"]) / "artifacts" / "leaderboard.csv").set_index("model")
    for name in PIPELINE_PARAMS["models"]:
        assert board.loc[name, "roc_auc"] == pytest.approx(embedded.loc[name, "roc_auc"], abs=1e-9), name
