"""The command line, run as a user runs it: a real process, real files, a real MLflow store."""
import json
import os
import subprocess
import sys

import pytest
from servers import free_port


def workbench(*args, timeout=600, env=None, cwd=None):
    return subprocess.run([sys.executable, "-m", "workbench.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=os.environ | (env or {}), cwd=cwd)


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
    (b"PAR1\x00\x15\x1c", ["--target", "y"], "binary data, not text"),
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


COMMANDS = {
    "train": ["train", "--data", "demo", "--target", "churn", "--models", "linear", "--folds", "3"],
    "auto": ["auto", "--data", "demo", "--target", "churn", "--time-budget", "30"],
    "tune": ["tune", "--data", "demo", "--target", "churn", "--model", "linear", "--trials", "3", "--cv", "3"],
    "compress": ["compress", "--package", "no-such-package", "--data", "demo"],
    "deploy": ["deploy", "--config", "deploy.yaml"],
}


def _bad(kind: str, tmp_path):
    """Arguments (appended: the last of a repeated option wins), environment and the words the refusal must say."""
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "keep.txt").write_text("keep")
    (tmp_path / "file").write_text("keep")
    (tmp_path / "pkg.tar.gz").write_text("keep")
    return {
        "out-used": (["--out", tmp_path / "used"], {}, f"--out {tmp_path / 'used'} already exists and is not empty"),
        "out-file": (["--out", tmp_path / "file"], {}, "is a file"),
        "out-archive": (["--out", tmp_path / "pkg"], {}, "pkg.tar.gz already exists and would be replaced"),
        "register": (["--register", "churn model"], {}, "--register: model name 'churn model' is not valid"),
        "deploy-name": ([], {}, "deploy config: model: model name 'churn model' is not valid"),
        "models": (["--models", "linear,forest"], {}, "unknown model 'forest'. Did you mean 'random_forest'?"),
        "model": (["--model", "forest"], {}, "unknown model 'forest'"),
        "strategy": (["--strategy", "tp"], {}, "unknown strategy 'tp'. Did you mean 'tpe'?"),
        "methods": (["--methods", "prune,squash"], {}, "unknown compression method 'squash'. Valid names: prune"),
        "metric": (["--metric", "auc"], {}, "unknown metric 'auc'. Valid names: "),
        "target": (["--target", "churned"], {}, "target column 'churned' is not in the table. Did you mean 'churn'?"),
        "store-down": ([], {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}"}, "cannot be reached"),
        "store-unwritable": ([], {"WORKBENCH_HOME": str(tmp_path / "file" / "home")},
                             "is a file, not a folder; set WORKBENCH_HOME"),
        "store-read-only": ([], {"WORKBENCH_HOME": "/sys/workbench-home"}, "cannot be written"),  # even for root
    }[kind]


@pytest.mark.parametrize("command,kind", [
    *[("train", k) for k in ("out-used", "out-file", "out-archive", "register", "models", "metric", "target",
                             "store-down", "store-unwritable", "store-read-only")],
    *[("auto", k) for k in ("out-used", "out-archive", "register", "target", "store-down", "store-unwritable")],
    *[("tune", k) for k in ("model", "strategy", "target", "store-down")],
    ("compress", "out-used"), ("compress", "methods"), ("compress", "store-down"),
    ("deploy", "deploy-name"), ("deploy", "store-down"),
])
def test_what_would_fail_after_the_work_is_refused_before_it(tmp_path, command, kind):
    """One line naming the argument, exit code 2, and nothing done: no store, no MLflow run, no output touched."""
    args, env, needle = _bad(kind, tmp_path)
    name = "churn model" if kind == "deploy-name" else "churn"
    (tmp_path / "package").mkdir()
    (tmp_path / "deploy.yaml").write_text(f"model: {name}\npackage: {tmp_path / 'package'}\n")
    if command == "compress" and kind == "store-down":
        args = [*args, "--register"]
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    p = workbench(*COMMANDS[command], *args, timeout=120, cwd=tmp_path, env={"WORKBENCH_HOME": str(tmp_path / "home")} | env)
    assert p.returncode == 2, p.stderr[-2000:]
    assert p.stderr.strip().startswith("error: ") and len(p.stderr.strip().splitlines()) == 1, p.stderr[-2000:]
    assert needle in p.stderr, p.stderr
    if kind in ("models", "model", "strategy", "methods", "metric"):
        assert p.stderr.strip().endswith(f"(from --{kind})"), p.stderr
    assert not (tmp_path / "home").exists()  # the store was never opened: no MLflow run, nothing trained and logged
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
