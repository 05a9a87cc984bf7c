"""The command line, run as a user runs it: a real process, real files, a real MLflow store."""
import json
import subprocess
import sys

import pytest


def workbench(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "workbench.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def test_train_json_gives_leaderboard_best_model_test_metrics_and_run(tmp_path):
    from workbench.data import load

    load("demo", n_rows=400, seed=3).to_csv(tmp_path / "test.csv", index=False)
    p = workbench("train", "--data", "demo", "--target", "churn", "--test", tmp_path / "test.csv",
                  "--models", "lightgbm,linear", "--folds", "3", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert {"leaderboard", "best_model", "test_metrics", "run_id"} <= set(out)
    assert [r["model"] for r in out["leaderboard"]] and out["best_model"] == out["leaderboard"][0]["model"]
    assert 0.6 < out["test_metrics"]["roc_auc"] <= 1

    from workbench.registry.tracking import run_artifacts

    art = run_artifacts(out["run_id"])
    assert {"cleaning_report.json", "schema.json", "leaderboard.csv", "oof.parquet"} <= {p.name for p in art.iterdir()}


def test_profile_prints_a_table_with_warnings():
    p = workbench("profile", "--data", "demo", "--target", "churn")
    assert p.returncode == 0, p.stderr
    assert "churn_reason" in p.stdout and "leaks the target" in p.stdout


@pytest.mark.parametrize("make,args,needle", [
    (None, ["--data", "nowhere.csv", "--target", "y"], "no such file"),
    (b"", ["--target", "y"], "empty"),
    (b"a,y\n1,\xe9\n2,b\n", ["--target", "y"], "not UTF-8"),
    (b"a,y\n1,x\n2,y,3,4\n", ["--target", "y"], "ragged rows"),
    (b"a,y\n1,x\n2,y\n", ["--target", "z"], "target column 'z' is not in the table"),
    (b"a,b,y\n1,,x\n2,,x\n3,,x\n", ["--target", "y"], "only one class"),
    (b"a,b,y\n1,,x\n2,,y\n3,,x\n", ["--target", "y", "--models", "forest"], "unknown model 'forest'"),
])
def test_bad_input_gets_one_clear_line(tmp_path, make, args, needle):
    if make is not None:
        (tmp_path / "f.csv").write_bytes(make)
        args = ["--data", tmp_path / "f.csv", *args]
    p = workbench("train", *args)
    assert p.returncode == 2
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert lines[-1].startswith("error: ") and needle in lines[-1], p.stderr
    assert "Traceback" not in p.stderr
