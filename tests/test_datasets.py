"""Every shared table loads, cleans and trains through `workbench train` with no hand preprocessing."""
import json

import pytest

from test_cli import workbench

FAST = ["lightgbm", "linear"]


@pytest.mark.parametrize("name", ["titanic", "penguins", "diamonds", "winequality_red"])
def test_each_table_trains_through_the_cli(manifest, datasets, name):
    info = manifest[name]
    p = workbench("train", "--data", datasets / info["file"], "--target", info["target"], "--models", ",".join(FAST),
                  "--folds", "3", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["task"] == info["task"]
    best = out["leaderboard"][0]
    floor = {"binary": ("roc_auc", 0.8), "multiclass": ("accuracy", 0.9), "regression": ("r2", 0.3)}[info["task"]]
    assert best[floor[0]] > floor[1]


def test_adult_default_train_reaches_the_auc_floor(manifest, datasets):
    info = manifest["adult"]
    p = workbench("train", "--data", datasets / info["file"], "--target", "income", "--test", datasets / info["test_file"],
                  "--json", timeout=900)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["test_metrics"]["roc_auc"] >= 0.925
    assert len(out["leaderboard"]) >= 6 and all(r["status"] == "ok" for r in out["leaderboard"][:3])
