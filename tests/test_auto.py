"""`workbench auto` and `workbench predict`, as a user runs them."""
import json

import pandas as pd

from test_cli import workbench
from workbench.data import load


def test_auto_keeps_its_budget_and_saves_a_model_that_predicts_raw_rows(tmp_path):
    load("demo", n_rows=300, seed=5).to_csv(tmp_path / "test.csv", index=False)
    p = workbench("auto", "--data", "demo:600", "--target", "churn", "--time-budget", "30", "--test", tmp_path / "test.csv",
                  "--out", tmp_path / "model", "--register", "auto-churn", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["seconds"] <= 30 * 1.1, out["stages"]
    names = [r["model"] for r in out["leaderboard"]]
    assert any(n.startswith("ensemble:") for n in names) and any(n.endswith(":tpe") for n in names)
    assert out["best_model"] == names[0] and 0.6 < out["test_metrics"]["roc_auc"] <= 1
    manifest = json.loads((tmp_path / "model" / "manifest.json").read_text())
    assert manifest["name"] == out["best_model"] and manifest["classes"] == ["No", "Yes"] and "schema.json" in manifest["files"]
    assert (tmp_path / "model.tar.gz").exists() and int(out["registered_version"]) == 1

    raw = load("demo", n_rows=300, seed=5).drop(columns=["churn"])
    raw.to_csv(tmp_path / "new.csv", index=False)
    # the archive and the registered version predict the same as the folder
    for source, dest in [(tmp_path / "model.tar.gz", "pred.csv"), ("auto-churn/1", "pred_registered.csv")]:
        p = workbench("predict", "--model", source, "--data", tmp_path / "new.csv", "--out", tmp_path / dest)
        assert p.returncode == 0, p.stderr
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert pred.equals(pd.read_csv(tmp_path / "pred_registered.csv"))
    assert list(pred.columns) == ["prediction", "No", "Yes"] and len(pred) == len(raw)
    assert set(pred["prediction"]) <= {"No", "Yes"} and ((pred["No"] + pred["Yes"] - 1).abs() < 1e-6).all()


def test_predict_with_a_folder_that_is_not_a_package_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    p = workbench("predict", "--model", tmp_path / "empty", "--data", "demo", "--out", tmp_path / "p.csv")
    assert p.returncode == 2 and "is not a package: manifest.json is missing" in p.stderr
    p = workbench("predict", "--model", "no-such-model@champion", "--data", "demo", "--out", tmp_path / "p.csv")
    assert p.returncode == 2 and "no registered model 'no-such-model'" in p.stderr
