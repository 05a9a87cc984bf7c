"""`workbench auto` and `workbench predict`, as a user runs them."""
import json

import pandas as pd
import pytest

from test_cli import workbench
from workbench.data import load


def test_auto_keeps_its_budget_and_saves_a_model_that_predicts_raw_rows(tmp_path):
    load("demo", n_rows=300, seed=5).to_csv(tmp_path / "test.csv", index=False)
    p = workbench("auto", "--data", "demo:600", "--target", "churn", "--time-budget", "45", "--test", tmp_path / "test.csv",
                  "--out", tmp_path / "model", "--register", "auto-churn", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    # the budget counts from the process start, so auto's own part (the command's wall clock is benchmarks/budget.py's)
    assert out["seconds"] <= 45 * 1.1, out["stages"]
    finished = [r["model"] for r in out["leaderboard"] if r["status"] == "ok"]
    assert any(n.startswith("ensemble:") for n in finished)
    assert any(n.endswith(":tpe") or ":p" in n for n in finished)  # beyond the defaults: the portfolio or the search
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
    done = board[board["status"] == "ok"]
    assert done["latency_ms"].notna().all() and (done["latency_100_ms"] >= 0).all()
    # the candidates' own times: the leaderboard's frame rounds them to 4 decimals (0.05004 ms shows as 0.05)
    assert r.too_slow and all(r.leaderboard[name].latency_ms > 0.05 and "over the limit of 0.05 ms" in why
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


def test_a_deadline_counts_from_the_process_start_and_its_shares_never_outlast_it():
    import subprocess
    import sys
    import time

    from workbench.deadline import Deadline

    # a second spent before the deadline is made is already spent: the user's clock starts with the process
    code = "import time; time.sleep(1); from workbench.deadline import Deadline; print(Deadline.since_process_start(10).left())"
    left = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert 0 < left <= 9.0
    d = Deadline.after(20)
    assert d.share(0.5).at <= d.at and d.share(2.0).at == d.at and d.before(5).at == pytest.approx(d.at - 5)
    assert d.before(50).left() == 0 and d.within(3).left() <= 3 and not d.expired()
    spent = Deadline.after(1, start=time.time() - 2)
    assert spent.expired() and spent.left() == 0 and not spent.fits(0.1)
    assert Deadline.of(None).left() == float("inf") and Deadline.of(d) is d


def test_auto_ends_by_a_deadline_already_partly_spent():
    import time

    from workbench.auto import auto
    from workbench.deadline import Deadline

    d = Deadline.after(20, start=time.time() - 5)  # as the CLI's: its start-up has used five seconds
    r = auto(load("demo", n_rows=800, seed=3), "churn", time_budget=d, log=False, progress=False)
    assert time.time() <= d.at + 2 and r.best.status == "ok"
    assert any(":p" in c.name for c in r.leaderboard.candidates)  # the portfolio was tried


def test_work_past_the_deadline_is_stopped_only_once_its_grace_has_passed_too():
    import time

    from workbench import compute
    from workbench.deadline import Deadline

    passed = Deadline.after(20, start=time.time() - 21)  # grace: 5 % of 20 s, so 1 s, passed by now
    in_grace = Deadline.after(200, start=time.time() - 200.5)  # grace: 10 s, not passed yet
    assert passed.expired() and passed.overrun()
    assert in_grace.expired() and not in_grace.overrun() and 0 < in_grace.poll() <= 10
    assert not Deadline.of(None).overrun() and Deadline.of(None).poll() is None
    assert Deadline.after(60).poll() <= 60
    # jobs not started by the deadline come back cancelled; the one that started runs to its end (in its grace)
    out = list(compute.run(time.sleep, [(2.5,)] * 8, deadline=Deadline.after(2), parallel=False))
    assert sorted(o.key for o in out) == list(range(8))
    assert out[0].status == "ok" and {o.status for o in out[1:]} == {"cancelled"}


def test_only_families_close_to_the_best_are_tuned():
    """A family far behind the best gets no share of the tuning time (an ensemble would not weigh it however it were
    tuned), only what the leaders leave."""
    from workbench.auto import _leaders
    from workbench.models.compare import Candidate, Leaderboard

    def board(task, metric, scores):
        return Leaderboard([Candidate(n, n.split(":")[0], {}, task, cv={metric: v}) for n, v in scores.items()],
                           task, metric)

    assert _leaders(board("regression", "rmse", {"lightgbm": 100, "lightgbm:p1": 98, "mlp": 200, "linear": 120}),
                    None) == (["lightgbm", "linear"], ["mlp"])
    assert _leaders(board("regression", "rmse", {"lightgbm": 100, "mlp": 200, "linear": 130}),
                    None) == (["lightgbm"], ["linear", "mlp"])
    # a score is read as its distance to 1: an AUC of 0.915 is close to 0.93 (losses 0.085 and 0.07)
    assert _leaders(board("binary", "roc_auc", {"random_forest": 0.915, "lightgbm": 0.93, "linear": 0.85}),
                    None) == (["lightgbm", "random_forest"], ["linear"])
