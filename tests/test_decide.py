"""Probabilities to take at face value and the decision that pays: calibration chosen out of fold, a threshold from
what each outcome is worth, both stored in the package and answered by the service."""
import json
import subprocess
import sys

import httpx
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from servers import Server
from workbench.data import load
from workbench.errors import WorkbenchError
from workbench.monitor import status
from workbench.models.decide import calibrate, decide, expected_calibration_error, parse_values, value_matrix
from workbench.registry.package import load_package


def _overconfident(n: int, seed: int = 0):
    """Labels drawn from true probabilities, and scores pushed towards 0 and 1 (as naive Bayes does)."""
    rng = np.random.default_rng(seed)
    true = rng.uniform(0.05, 0.95, n)
    y = (rng.uniform(size=n) < true).astype(int)
    z = 3 * np.log(true / (1 - true))
    p = 1 / (1 + np.exp(-z))
    return y, np.column_stack([1 - p, p]), true


def test_overconfident_probabilities_are_calibrated_and_honest_ones_left_alone():
    y, oof, true = _overconfident(4000)
    calibration, report = calibrate(y, oof)
    assert calibration is not None and report.ece_after < report.ece_before / 3, report
    assert report.log_loss_after < report.log_loss_before
    fixed = calibration(oof[:, 1])
    assert np.abs(fixed - true).mean() < 0.05 < np.abs(oof[:, 1] - true).mean()
    honest = np.column_stack([1 - true, true])
    none, kept = calibrate(y, honest)
    assert none is None and kept.method == "none" and "none kept" in str(kept)
    assert expected_calibration_error(y, honest) < 0.03



def test_an_isotonic_map_keeps_the_models_ranking():
    """A staircase map would tie rows the model ranks apart and lower ROC AUC: the calibrated scores keep every order."""
    rng = np.random.default_rng(2)
    p = rng.uniform(size=3000)
    y = (rng.uniform(size=len(p)) < np.where(p > 0.5, 0.9, 0.1) * p).astype(int)
    calibration, report = calibrate(y, np.column_stack([1 - p, p]))
    assert report.method == "isotonic", report
    fixed = calibration(p)
    assert len(np.unique(fixed)) == len(np.unique(p))
    assert roc_auc_score(y, fixed) == pytest.approx(roc_auc_score(y, p), abs=1e-12)

def test_more_classes_are_calibrated_by_a_temperature_that_keeps_each_rows_likeliest_class():
    """Probabilities of three classes made too timid (an average of several models is): one temperature, chosen out
    of fold, sharpens them; the rows still sum to one, the likeliest class stays the likeliest. Honest ones stay."""
    rng = np.random.default_rng(3)
    true = rng.dirichlet([0.4, 0.4, 0.4], 3000)
    y = np.array([rng.choice(3, p=p) for p in true])
    timid = np.exp(np.log(true) / 3)
    timid /= timid.sum(axis=1, keepdims=True)
    calibration, report = calibrate(y, timid)
    assert calibration.method == "temperature" and 0.2 < calibration.params["t"] < 0.5, calibration
    assert report.log_loss_after < 0.9 * report.log_loss_before and report.ece_after < report.ece_before / 3
    fixed = calibration.probabilities(timid)
    assert np.allclose(fixed.sum(axis=1), 1) and (fixed.argmax(axis=1) == timid.argmax(axis=1)).all()
    assert np.abs(fixed - true).mean() < np.abs(timid - true).mean() / 3
    assert calibrate(y, true)[0] is None


def test_the_threshold_is_where_the_values_say_for_calibrated_probabilities():
    rng = np.random.default_rng(1)
    p = rng.uniform(size=20_000)
    y = (rng.uniform(size=len(p)) < p).astype(int)
    values = {"tp": 100, "fp": -20, "fn": -100, "tn": 0}
    d = decide(y, np.column_stack([1 - p, p]), values, ["stay", "leave"])
    # positive pays when p·TP + (1-p)·FP > p·FN + (1-p)·TN: p > 20 / 220
    assert abs(d.threshold - 20 / 220) < 0.02 and d.positive == "leave"
    assert d.value_per_row > d.argmax_value_per_row
    curve = d.curve
    assert curve["value_per_row"].max() == pytest.approx(d.value_per_row)
    assert d(np.array([[0.95, 0.05], [0.5, 0.5]])).tolist() == ["stay", "leave"]


def test_any_number_of_classes_decides_by_expected_value():
    proba = np.array([[0.5, 0.3, 0.2], [0.2, 0.2, 0.6]])
    values = {"a": {"a": 1, "b": 0, "c": 0}, "b": {"a": 0, "b": 10, "c": 0}, "c": {"a": 0, "b": 0, "c": 1}}
    d = decide(np.array([0, 2]), proba, values, ["a", "b", "c"])
    assert d.threshold is None and d(proba).tolist() == ["b", "b"]  # b's value outweighs its lower probability


def test_values_are_read_from_text_and_refused_clearly():
    assert parse_values("tp=1, fp=-2,FN=-3,tn=0") == {"tp": 1, "fp": -2, "fn": -3, "tn": 0}
    assert parse_values('{"x": {"x": 1}}') == {"x": {"x": 1}}
    with pytest.raises(WorkbenchError, match="tp=100,fp=-10"):
        parse_values("tp:1")
    with pytest.raises(WorkbenchError, match="need two classes"):
        value_matrix({"tp": 1}, ["a", "b", "c"])
    with pytest.raises(WorkbenchError, match="miss b"):
        value_matrix({"a": {"a": 1, "b": 0}}, ["a", "b"])


def test_auto_stores_calibration_and_decision_and_the_service_answers_both(tmp_path, monkeypatch):
    p = subprocess.run([sys.executable, "-m", "workbench.cli", "auto", "--data", "demo", "--target", "churn",
                        "--time-budget", "25", "--out", tmp_path / "churn", "--values", "tp=100,fp=-20,fn=-100,tn=0",
                        "--json"], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    result = json.loads(p.stdout.strip().splitlines()[-1])
    assert result["calibration"]["method"] in {"sigmoid", "isotonic", "none"}
    assert 0 < result["decision"]["threshold"] < 0.5  # losing a customer costs more than a wasted offer
    pkg = load_package(tmp_path / "churn")
    assert (pkg.model.kind == "calibrated") == (result["calibration"]["method"] != "none")
    rows = load("demo", n_rows=40, seed=7).drop(columns="churn")
    expected = pkg.model.predict_frame(rows)
    assert set(expected["decision"]) <= {"Yes", "No"}
    monkeypatch.setenv("WORKBENCH_MONITOR_STORE", str(tmp_path / "monitor.db"))
    server = Server("--package", tmp_path / "churn", env={"WORKBENCH_MONITOR_STORE": str(tmp_path / "monitor.db")})
    try:
        r = httpx.post(f"{server.url}/v1/models/{pkg.name}/predict", json=json.loads(rows.to_json(orient="records")),
                       timeout=30)
        assert r.status_code == 200, r.text
        answers = r.json()["predictions"]
        assert [a["decision"] for a in answers] == expected["decision"].tolist()
        assert np.allclose([a["probabilities"]["Yes"] for a in answers], expected["Yes"], atol=1e-12)
        v2 = httpx.post(f"{server.url}/v2/models/{pkg.name}/infer", timeout=30, json={"inputs": [
            {"name": c, "datatype": "BYTES", "shape": [len(rows)],  # every value as its text, as a CSV holds it
             "data": [None if v is None else str(v) for v in json.loads(rows[c].to_json(orient="values"))]}
            for c in rows.columns]})
        assert v2.status_code == 200, v2.text
        outputs = {o["name"]: o["data"] for o in v2.json()["outputs"]}
        assert outputs["decision"] == expected["decision"].tolist()
        truth = load("demo", n_rows=40, seed=7)["churn"].tolist()
        fed = httpx.post(f"{server.url}/v1/models/{pkg.name}/feedback", timeout=30,
                         json=[{"request_id": a["request_id"], "actual": t} for a, t in zip(answers, truth)])
        assert fed.json()["stored"] == len(rows), fed.text
    finally:
        server.stop()
    value = status(pkg.name, record=False).value
    earned = {("Yes", "Yes"): 100, ("No", "Yes"): -20, ("Yes", "No"): -100, ("No", "No"): 0}
    assert value["outcomes"] == len(rows) and value["expected_per_row"] == result["decision"]["value_per_row"]
    assert value["realized_per_row"] == pytest.approx(np.mean([earned[t, d] for t, d in
                                                               zip(truth, expected["decision"])]))


def test_a_calibrated_models_contributions_still_sum_to_its_output():
    from workbench import train
    from workbench.models import contrib
    from workbench.models.decide import Calibrated, _fit

    r = train(load("demo", n_rows=600), "churn", models=["lightgbm"], folds=3, log=False, progress=False)
    codes = np.asarray(r.cleaned.y == r.leaderboard.classes[1], dtype=int)
    oof = r.leaderboard.best.oof
    enc = r.model.cleaner.encoder()
    X = enc.frame(load("demo", n_rows=60, seed=4).drop(columns="churn"))
    for method, scale in [("sigmoid", "log-odds"), ("isotonic", "probability")]:
        est = Calibrated(r.model.estimator, _fit(method, codes, oof))
        ex = contrib.explainer(est, contrib.Layout.of(enc), "binary", 2)
        assert ex.scale == scale and "calibration" in ex.method
        phi = ex(X)
        assert contrib.gap(phi, est.predict_proba(X), scale, "binary") < 1e-6, method
        assert np.abs(phi[:, :-1, 0]).sum(axis=1).mean() > 0.01  # the columns carry the answer, not the bias alone


@pytest.mark.parametrize("family, scale", [("lightgbm", "margin"), ("random_forest", "probability")])
def test_a_temperature_calibrated_models_contributions_still_sum_to_its_output(family, scale):
    """More classes: on margins a temperature divides every contribution (exact); on probabilities the move is
    shared in proportion (the sum exact)."""
    from workbench import kinds, train
    from workbench.models import contrib
    from workbench.models.decide import Calibrated, Calibration

    r = train(load("demo", n_rows=600), "contract", models=[family], folds=3, log=False, progress=False)
    enc = r.model.cleaner.encoder()
    X = enc.frame(load("demo", n_rows=60, seed=4).drop(columns="contract"))
    est = Calibrated(r.model.estimator, Calibration("temperature", {"t": 0.5}))
    k = len(r.leaderboard.classes)
    ex = contrib.explainer(est, contrib.Layout.of(enc, enc.frame(load("demo", n_rows=200).drop(columns="contract"))),
                           "multiclass", k)
    assert ex.scale == scale and "temperature calibration" in ex.method, ex.method
    scores = kinds.scorer(est, enc.columns, "multiclass", k)(X)
    assert contrib.gap(ex(X), scores, scale, "multiclass") < 1e-6
    raw = kinds.scorer(r.model.estimator, enc.columns, "multiclass", k)(X)
    assert (scores.argmax(axis=1) == raw.argmax(axis=1)).all() and np.abs(scores - raw).max() > 0.01
