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
    fast = [r["model"] for r in out["leaderboard"] if r["status"] == "ok" and r["latency_ms"] <= out["max_latency_ms"]]
    assert out["best_model"] == fast[0] and 0.6 < out["test_metrics"]["roc_auc"] <= 1  # the best that serves fast
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


def test_auto_leaves_out_what_scores_a_row_over_its_limit_and_says_why():
    from workbench.auto import auto

    df = load("demo", n_rows=500, seed=2)
    r = auto(df, "churn", time_budget=20, log=False, progress=False, max_latency_ms=0.05)
    board = r.leaderboard.to_frame().set_index("model")
    assert board["latency_ms"].notna().all() and (board["latency_100_ms"] >= 0).all()
    assert r.too_slow and all(board.loc[name, "latency_ms"] > 0.05 and "over the limit of 0.05 ms" in why
                              for name, why in r.too_slow.items())
    assert r.best.latency_ms <= 0.05 and r.best.name not in r.too_slow
    ok = board[board["status"] == "ok"]
    assert r.best.name == ok[ok["latency_ms"] <= 0.05].index[0]  # the best by CV among the fast ones
    assert r.model.scorer(r.model.cleaner.encoder().frame(df.head(1).drop(columns="churn"))).shape == (1, 2)


def test_predict_refuses_to_overwrite_its_input_and_auto_a_used_folder_before_training(tmp_path):
    import time

    load("demo", n_rows=50, seed=4).to_csv(tmp_path / "rows.csv", index=False)
    before = (tmp_path / "rows.csv").read_bytes()
    p = workbench("predict", "--model", "any", "--data", tmp_path / "rows.csv", "--out", tmp_path / "rows.csv")
    assert p.returncode == 2 and "is the input table itself" in p.stderr
    assert (tmp_path / "rows.csv").read_bytes() == before
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "keep.txt").write_text("keep")
    t0 = time.time()
    p = workbench("auto", "--data", "demo:300", "--target", "churn", "--time-budget", "60", "--out", tmp_path / "used")
    assert p.returncode == 2 and "already exists and is not empty" in p.stderr
    assert time.time() - t0 < 20 and (tmp_path / "used" / "keep.txt").read_text() == "keep"  # refused before training
