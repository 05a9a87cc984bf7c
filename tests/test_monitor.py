"""Monitoring against a real service: every prediction logged, outcomes fed back, windows, drift on a known shift,
alerts, retention, reports, a full queue and a killed service."""
from __future__ import annotations

import html
import json
import os
import signal
import sqlite3
import threading
import time

import httpx
import orjson
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score

from servers import Server
from workbench.cli import main
from workbench.data import load
from workbench.data.columns import as_text, to_number
from workbench.monitor import FeedbackError, PredictionLog, check_outcomes, status
from workbench.monitor.quality import Thresholds, windows
from workbench.monitor.store import _PACKED, entry, id_time
from workbench.registry.package import package_result
from workbench.runner import NOTEBOOKS, _execute
from workbench.settings import Settings

MODEL = "churn"


@pytest.fixture(scope="module")
def package(trained, tmp_path_factory):
    return package_result(trained, tmp_path_factory.mktemp("monitor") / "churn", name=MODEL)


@pytest.fixture(scope="module")
def fresh():
    """Rows the model never saw, with their true outcomes."""
    df = load("demo", n_rows=900, seed=33)
    return json.loads(df.drop(columns=["churn"]).to_json(orient="records")), df["churn"].tolist()


def shifted(rows: list[dict]) -> list[dict]:
    """The same rows with customers 30 years older: one input column moved, the others not."""
    return [dict(r, age=r["age"] + 30 if isinstance(r["age"], (int, float)) else r["age"]) for r in rows]


@pytest.fixture(scope="module")
def log_path(tmp_path_factory):
    return tmp_path_factory.mktemp("log") / "monitor.db"


@pytest.fixture(scope="module")
def service(package, log_path, monkeypatch_module):
    env = {"WORKBENCH_MONITOR_STORE": str(log_path), "WORKBENCH_MONITOR_CHECK_S": "1",
           "WORKBENCH_MONITOR_REFERENCE_ROWS": "100"}
    for k, v in env.items():  # the CLI and status() below read the same log and settings
        monkeypatch_module.setenv(k, v)
    s = Server("--package", package, env=env)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def predict(service, rows) -> list[str]:
    r = httpx.post(f"{service.url}/v1/models/{MODEL}/predict", json=rows, timeout=30)
    assert r.status_code == 200, r.text
    return [p["request_id"] for p in r.json()["predictions"]]


def test_every_prediction_is_logged_and_outcomes_are_matched_by_request_id(service, fresh, log_path):
    rows, truth = fresh
    first = httpx.post(f"{service.url}/v1/models/{MODEL}/predict", json=rows[:40], timeout=30).json()
    ids = [p["request_id"] for p in first["predictions"]] + [i for r in rows[40:60] for i in predict(service, r)]
    assert len(set(ids)) == 60
    answer = httpx.post(f"{service.url}/v1/models/{MODEL}/feedback", timeout=30,
                        json=[{"request_id": i, "actual": t} for i, t in zip(ids, truth)] +
                             [{"request_id": "not-an-id", "actual": "Yes"}]).json()
    assert answer["stored"] == 60 and answer["unknown"] == ["not-an-id"] and "not predictions" in answer["message"]

    reqs, preds = PredictionLog(log_path).read(MODEL)
    got = preds.set_index("request_id").loc[ids]
    assert got.loc[ids[45], "input"] == rows[45]  # the raw row, as sent
    assert got["actual"].tolist() == truth[:60]
    assert got.loc[ids[0], "score"] == pytest.approx(first["predictions"][0]["probabilities"]["Yes"], abs=1e-15)
    assert (got["latency_ms"] > 0).all()
    assert len(reqs) >= 21 and reqs["rows"].sum() >= 60


def test_bad_feedback_is_a_clear_422_and_nothing_is_stored(service, fresh, log_path):
    rows, _ = fresh
    ids = predict(service, rows[60:62])
    r = httpx.post(f"{service.url}/v1/models/{MODEL}/feedback", timeout=30,
                   json=[{"request_id": ids[0], "actual": "Yes"}, {"request_id": ids[1], "actual": "Maybe"},
                         {"request_id": ids[1]}, {"request_id": 7, "actual": "No"}])
    assert r.status_code == 422
    body = r.json()
    assert "none was stored" in body["error"] and len(body["errors"]) == 3
    assert "'Maybe' is not one of the classes No, Yes" in body["errors"][0]
    time.sleep(0.5)  # the service writes its log every 0.2 s
    preds = PredictionLog(log_path).read(MODEL)[1].set_index("request_id")
    assert preds.loc[ids, "actual"].isna().all()
    assert httpx.post(f"{service.url}/v1/models/nope/feedback", json=[], timeout=10).status_code == 404
    with pytest.raises(FeedbackError, match="not a finite number"):
        check_outcomes([{"request_id": "a", "actual": "twelve"}], "regression", [])


def test_v2_answers_carry_request_ids_that_take_feedback(service, fresh):
    rows, truth = fresh
    types = {i["name"]: i["datatype"] for i in httpx.get(f"{service.url}/v2/models/{MODEL}", timeout=10).json()["inputs"]}
    df = pd.DataFrame(rows)
    numbers = {c: to_number(as_text(df[c])) for c, t in types.items() if t == "FP64"}
    clean = df.assign(**numbers).dropna(subset=list(numbers)).head(3)  # FP64 tensors carry numbers, not text
    inputs = [{"name": c, "shape": [3], "datatype": t,
               "data": clean[c].tolist() if t == "FP64" else ["" if pd.isna(v) else str(v) for v in clean[c]]}
              for c, t in types.items()]
    out = httpx.post(f"{service.url}/v2/models/{MODEL}/infer", json={"inputs": inputs}, timeout=30).json()
    assert "outputs" in out, out
    ids = next(o for o in out["outputs"] if o["name"] == "request_id")["data"]
    assert len(ids) == 3
    fb = httpx.post(f"{service.url}/v1/models/{MODEL}/feedback", timeout=30,
                    json=[{"request_id": i, "actual": truth[k]} for i, k in zip(ids, clean.index)]).json()
    assert fb["stored"] == 3 and fb["unknown"] == []


def test_feedback_from_a_file_with_the_cli(service, fresh, tmp_path, capsys):
    rows, truth = fresh
    ids = predict(service, rows[65:75])
    f = tmp_path / "outcomes.csv"
    f.write_text("request_id,actual\n" + "".join(f"{i},{t}\n" for i, t in zip(ids, truth[65:75])))
    assert main(["monitor", "feedback", "--model", MODEL, "--data", str(f)]) == 0
    assert "10 outcomes stored" in capsys.readouterr().out
    f.write_text("request_id,actual\nnope-1,Yes\n" + f"{ids[0]},Yes\n")
    assert main(["monitor", "feedback", "--model", MODEL, "--data", str(f)]) == 1
    assert "nope-1" in capsys.readouterr().out
    f.write_text("id,outcome\n1,Yes\n")
    assert main(["monitor", "feedback", "--model", MODEL, "--data", str(f)]) == 2
    assert "needs request_id and actual" in capsys.readouterr().err


def test_drift_flags_the_shifted_column_alone_and_raises_an_alert(service, fresh, log_path):
    rows, truth = fresh
    ids = predict(service, rows[100:250])  # with the rows above: past the 100-row reference period
    ids += predict(service, shifted(rows[250:650]))
    httpx.post(f"{service.url}/v1/models/{MODEL}/feedback", timeout=30,
               json=[{"request_id": i, "actual": t} for i, t in zip(ids, truth[100:650])])
    st = status(MODEL)
    d = st.drift.set_index("column")
    assert d.loc["age", "drifted"] and d.loc["age", "psi"] >= 0.2 and d.loc["age", "test"] == "Kolmogorov-Smirnov"
    inputs = d.drop(index=["age", "(prediction)"])
    assert not inputs["drifted"].any(), inputs
    assert set(inputs.loc[["region", "contract"], "test"]) == {"chi-square"}
    assert "(prediction)" in d.index  # against the version's first live rows
    assert any(a.kind == "drift" and a.subject == "age" for a in st.alerts)

    deadline = time.time() + 30  # the service's own check (every second here) raises it too: a gauge and a log row
    while time.time() < deadline:
        metrics = httpx.get(f"{service.url}/metrics", timeout=10).text
        if 'workbench_alert{kind="drift",model="churn",subject="age"} 1.0' in metrics:
            break
        time.sleep(0.5)
    else:
        pytest.fail("the service never raised the drift alert as a gauge")
    alerts = PredictionLog(log_path).query("SELECT kind, subject FROM alerts WHERE model = ?", (MODEL,))
    assert ("drift", "age") in set(map(tuple, alerts.values.tolist()))


def test_windows_count_requests_and_score_the_outcomes(service, log_path):
    reqs, preds = PredictionLog(log_path).read(MODEL)
    w = windows(reqs, preds, "binary", ["No", "Yes"]).set_index("window")
    assert w.loc["last day", "requests"] == len(reqs) and w.loc["last day", "errors"] == (reqs["status"] >= 400).sum()
    done = preds[preds["actual"].notna()]
    assert w.loc["last day", "outcomes"] == len(done) >= 500
    assert w.loc["last day", "accuracy"] == pytest.approx(accuracy_score(done["actual"], done["prediction"]))
    assert 0.5 < w.loc["last day", "roc_auc"] <= 1 and w.loc["last day", "latency_p99_ms"] > 0
    assert w.loc["last day", "share_No"] + w.loc["last day", "share_Yes"] == pytest.approx(1)


def test_a_killed_alert_checker_is_started_again(service, fresh, log_path):
    from workbench.monitor.quality import Checker

    predict(service, fresh[0][:120])
    deadline = time.time() + 10  # written by the service's log thread within a fraction of a second
    while PredictionLog(log_path).counts()["rows"] < 120 and time.time() < deadline:
        time.sleep(0.2)
    checker = Checker(log_path, 2000)
    try:
        version, alerts = checker.check([MODEL])[MODEL]
        assert isinstance(alerts, list)
        first = checker.process.pid
        os.kill(first, signal.SIGKILL)
        checker.process.join(10)
        assert checker.check([MODEL])[MODEL][0] == version  # answered by a new process
        assert checker.process.pid != first and checker.process.is_alive()
    finally:
        checker.close()
    assert not checker.process.is_alive()


def test_report_and_its_notebook_write_html_and_no_traffic_is_a_clear_error(service, tmp_path, capsys):
    out = tmp_path / "report.html"
    assert main(["monitor", "report", "--model", MODEL, "--since", "2h", "--out", str(out)]) == 0
    page = out.read_text()
    assert "How churn is doing" in page and "plotly" in page and "age" in page and "Alerts" in page
    assert main(["monitor", "report", "--model", "no_such_model"]) == 2
    assert "no traffic for model 'no_such_model'" in capsys.readouterr().err
    assert main(["monitor", "status", "--model", MODEL, "--since", "2026-01-01"]) == 0
    assert "ALERT drift" in capsys.readouterr().out

    entry = _execute(NOTEBOOKS / "monitor_report.ipynb", tmp_path / "monitor_report.ipynb", {"model": MODEL, "since": "1d"})
    assert entry["status"] == "ok", entry
    assert "report written to" in (tmp_path / "monitor_report.ipynb").read_text()


def test_a_full_queue_drops_rows_counts_them_and_requests_go_on(package, fresh, tmp_path):
    rows, _ = fresh
    path = tmp_path / "busy.db"
    s = Server("--package", package, env={"WORKBENCH_MONITOR_STORE": str(path), "WORKBENCH_MONITOR_QUEUE": "5"})
    try:
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # the disk is busy: the writer waits, the buffer fills
        answers = [httpx.post(f"{s.url}/v1/models/{MODEL}/predict", json=rows[i], timeout=10).status_code
                   for i in range(40)]
        assert answers == [200] * 40
        dropped = [line for line in httpx.get(f"{s.url}/metrics").text.splitlines()
                   if line.startswith('workbench_log_dropped_rows_total{model="churn"}')]
        n_dropped = float(dropped[0].split()[-1]) if dropped else 0
        assert n_dropped >= 20  # 40 rows, a buffer of 5 and a batch in the writer's hands
        blocker.execute("ROLLBACK")
        deadline = time.time() + 30
        while time.time() < deadline and PredictionLog(path).counts()["rows"] + n_dropped < 40:
            time.sleep(0.2)
        kept = PredictionLog(path).counts()["rows"]
        assert 1 <= kept <= 20 and kept + n_dropped == 40
    finally:
        s.stop()


def test_without_a_log_feedback_says_why(package):
    s = Server("--package", package, "--no-log")
    try:
        r = httpx.post(f"{s.url}/v1/models/{MODEL}/feedback", json=[{"request_id": "x", "actual": "Yes"}], timeout=10)
    finally:
        s.stop()
    assert r.status_code == 409 and "--no-log" in r.json()["error"]


def test_retention_compacts_old_rows_into_hourly_aggregates(tmp_path):
    log = PredictionLog(tmp_path / "old.db")
    now = time.time()
    old = now - 3 * 86400
    old -= old % 3600
    def request(k, status=200):  # a single-row request at minute k of the two old hours
        ts = old + k * 60 + (status != 200)
        if status != 200:
            return [ts, status, 3.0, 0, None, None]
        answer = {"request_id": f"{int(ts * 1e9):016x}{k:08x}", "prediction": "Yes" if k % 2 else "No",
                  "probabilities": {"No": 0.3, "Yes": 0.7}, "confidence": 0.7}
        return [ts, 200, 2.0 + k % 3, 1, [{"x": k}], [answer]]
    items = [request(k) for k in range(120)] + [request(k, 500) for k in range(0, 120, 10)]
    items.sort(key=lambda it: it[0])
    # the old hours as the first logs stored them (an answer object per row, plain JSON): such a log still reads
    ids = [it[5][0]["request_id"] for it in items if it[5]]
    con = log.connect()
    con.execute("INSERT INTO models VALUES (?,?,?,?,?,?,?,?)", ("m", "1", "binary", '["No", "Yes"]', "", "", "{}", old))
    con.execute("INSERT INTO batches (model, version, ts_first, ts_last, id_first, id_last, requests, rows, data) "
                "VALUES (?,?,?,?,?,?,?,?,?)", ("m", "1", items[0][0], items[-1][0], id_time(min(ids)), id_time(max(ids)),
                                               len(items), len(ids), orjson.dumps(items)))
    log.write({("m", "1"): [entry(now - 60, 200, 1.0, b'{"x": -1}', f"{int((now - 60) * 1e9):016x}0",
                                  np.array([[0.8, 0.2]]))]})
    blobs = [d for (d,) in log.connect().execute("SELECT data FROM batches ORDER BY id")]
    assert blobs[0][:1] == b"[" and blobs[1][:1] == _PACKED and len(blobs[1]) < 200  # the writer compresses
    recent = log.read("m", since=now - 120)[1]
    assert recent[["input", "prediction", "score", "probabilities"]].values.tolist() == [
        [{"x": -1}, "No", 0.2, {"No": 0.8, "Yes": 0.2}]]
    first_ids = [it[5][0]["request_id"] for it in items if it[5]][:3]
    assert log.feedback("m", [(first_ids[1], "Yes"), (first_ids[2], "Yes")], now=now) == (2, [])
    assert log.compact(24 * 3600, now=now) == 120
    assert log.counts() == {"requests": 1, "rows": 1, "batches": 1, "outcomes": 0, "hourly": 2, "alerts": 0}
    hours = log.query("SELECT * FROM hourly ORDER BY hour")
    assert hours["requests"].tolist() == [66, 66] and hours["errors"].sum() == 12 and hours["rows"].sum() == 120
    assert hours["labelled"].sum() == 2 and hours["correct"].sum() == 1
    assert json.loads(hours["predictions"][0]) == {"Yes": 30, "No": 30}
    assert hours["latency_p50"][0] == 3.0
    assert log.compact(24 * 3600, now=now) == 0  # nothing old is left
    assert log.feedback("m", [(first_ids[1], "No")])[1] == [first_ids[1]]  # compacted rows take no outcomes any more


def test_a_bounded_read_counts_rows_as_well_as_requests(tmp_path):
    log = PredictionLog(tmp_path / "bounded.db")
    now = time.time()
    for k in range(3):  # three batches of one 100-row request each
        ts = now - 30 + k
        log.write({("m", "1"): [entry(ts, 200, 1.0, [{"x": i} for i in range(100)], f"{int(ts * 1e9):016x}-0",
                                      np.full(100, 0.5))]}, [("m", "1", "regression", "[]", "", "", "{}", now)] if k == 0 else None)
    requests, rows = log.read("m", newest=150)  # 101 a batch: the newest two hold at least 150
    assert len(requests) == 2 and len(rows) == 200 and rows["input"].iloc[0] == {"x": 0}
    assert len(log.read("m")[1]) == 300


def test_flush_waits_for_what_was_recorded_not_for_an_empty_buffer(tmp_path):
    from types import SimpleNamespace

    from workbench.monitor.store import Recorder

    served = SimpleNamespace(name="m", version="1", task="regression", labels=[], source="", package=SimpleNamespace(
        path=tmp_path, manifest={}))
    rec = Recorder(PredictionLog(tmp_path / "flush.db"), queue_size=10**6)
    stop = threading.Event()

    def traffic():  # steady requests: the buffer is never empty for long
        while not stop.is_set():
            rec.record(served, 200, 0.001, b'{"x": 1}', f"{time.time_ns():016x}0000", np.array([0.5]))
            time.sleep(0.0002)
    t = threading.Thread(target=traffic)
    t.start()
    try:
        time.sleep(0.3)
        rec.record(served, 200, 0.001, b'{"x": 2}', f"{time.time_ns():016x}ffff", np.array([2.5]))
        start = time.monotonic()
        assert rec.flush(5) and time.monotonic() - start < 2
        rows = PredictionLog(tmp_path / "flush.db").read("m")[1]
        assert {"x": 2} in rows["input"].tolist()
    finally:
        stop.set()
        t.join()
        rec.close()


def test_a_killed_service_loses_at_most_its_queue_and_the_log_stays_readable(package, fresh, tmp_path):
    rows, _ = fresh
    path = tmp_path / "killed.db"
    s = Server("--package", package, env={"WORKBENCH_MONITOR_STORE": str(path)})
    answered, t_kill = [], None
    with httpx.Client(timeout=10) as client:
        t_end = time.time() + 3
        while time.time() < t_end:
            r = client.post(f"{s.url}/v1/models/{MODEL}/predict", json=rows[len(answered) % 500])
            answered.append(time.time())
        t_kill = time.time()
        os.kill(s.proc.pid, signal.SIGKILL)
    s.proc.wait()
    s.stop()  # already dead: this only removes its output file
    assert r.status_code == 200
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    written = PredictionLog(path).counts()["rows"]
    lost = len(answered) - written
    in_flight = sum(t > t_kill - 1.0 for t in answered)  # the writer batches every 0.2 s: at most the last moments
    assert 0 <= lost <= in_flight, (lost, in_flight, len(answered))


def test_thresholds_come_from_the_settings():
    from workbench.settings import get_settings

    th = Thresholds.of(get_settings(alert_psi=0.3, monitor_min_rows=7))
    assert th.psi == 0.3 and th.min_rows == 7 and np.isfinite(th.latency_ms)


def test_the_monitor_panel_shows_the_log_and_refreshes_in_place(service, fresh):
    from widgets import MonitorPanel

    panel = MonitorPanel(MODEL, every=1)
    traffic = panel.figures["traffic"]
    before = sum(traffic.data[0].y)
    shown = lambda: panel.boxes["traffic"].outputs[0]["data"]["application/vnd.plotly.v1+json"]["data"][0]["y"]
    assert sum(shown()) == before  # drawn by the page's plotly renderer from the figure's JSON
    alerts = panel.result.alerts  # "alert" alone is in "No alerts" too: the count and each message must show
    assert "requests" in panel.header.value
    assert (f"{len(alerts)} alert(s)" in panel.alerts.value and all(html.escape(a.message) in panel.alerts.value for a in alerts)
            if alerts else "No alerts" in panel.alerts.value)
    assert "age" in list(panel.figures["drift"].data[0].x)
    predict(service, fresh[0][700:720])
    time.sleep(0.5)  # written by the service's log thread
    panel.refresh()
    # a changed chart is drawn again from the whole figure, in the same place on the page
    assert panel.refreshes == 2 and panel.figures["traffic"] is not traffic
    assert sum(panel.figures["traffic"].data[0].y) == sum(shown()) == before + 1


def test_a_regression_model_is_monitored_with_its_errors(tmp_path):
    from workbench import train

    df = load("sklearn:diabetes")
    r = train(df.iloc[:300], "target", models=["lightgbm"], folds=2, progress=False, log=False, time_budget=60)
    pkg = package_result(r, tmp_path / "diabetes", name="diabetes")
    s = Server("--package", pkg, env={"WORKBENCH_MONITOR_STORE": str(tmp_path / "reg.db")})
    try:
        rest = df.iloc[300:]
        rows = json.loads(rest.drop(columns=["target"]).to_json(orient="records"))
        answer = httpx.post(f"{s.url}/v1/models/diabetes/predict", json=rows, timeout=30).json()["predictions"]
        fed = httpx.post(f"{s.url}/v1/models/diabetes/feedback", timeout=30,
                         json=[{"request_id": a["request_id"], "actual": t} for a, t in zip(answer, rest["target"])]
                         + [{"request_id": answer[0]["request_id"], "actual": "high"}])
        assert fed.status_code == 422 and "is not a finite number" in fed.json()["errors"][0]
        fed = httpx.post(f"{s.url}/v1/models/diabetes/feedback", timeout=30,
                         json=[{"request_id": a["request_id"], "actual": t} for a, t in zip(answer, rest["target"])])
        assert fed.json()["stored"] == len(rows)
    finally:
        s.stop()
    st = status("diabetes", log=PredictionLog(tmp_path / "reg.db"))
    day = st.windows.set_index("window").loc["last day"]
    pred = np.array([a["prediction"] for a in answer])
    assert day["rmse"] == pytest.approx(float(np.sqrt(np.mean((pred - rest["target"].to_numpy()) ** 2))))
    assert day["mae"] == pytest.approx(float(np.mean(np.abs(pred - rest["target"].to_numpy()))))
    assert day["prediction_mean"] == pytest.approx(pred.mean())
    assert st.headline == "mae" and len(st.feedback) == len(rows) and st.feedback["actual"].dtype == float
    figs = st.figures()
    assert len(figs["feedback"].data[0].x) == len(rows) and figs["quality"].data[0].name == "realized (real outcomes)"


def hand_made_log(path, task: str, labels: list[str], records: list[dict], scores: np.ndarray, actual: list | None = None,
                  now: float | None = None, validation: dict | None = None) -> PredictionLog:
    """A log written as a service writes it, without a service: one request a row over the last minutes, one model
    version with no package (drift is left out), outcomes for the rows ``actual`` gives (None: no outcome)."""
    log = PredictionLog(path)
    now = time.time() if now is None else now
    ids, entries = [], []
    for k, (r, s) in enumerate(zip(records, scores)):
        ts = now - 300 + k * 240 / len(records)
        ids.append(f"{int(ts * 1e9):016x}{k:08x}")
        entries.append(entry(ts, 200, 1.0, r, ids[-1], np.atleast_2d(s) if labels else np.atleast_1d(s)))
    model = ("m", "1", task, orjson.dumps(labels).decode(), "", "", orjson.dumps(validation or {}).decode(), now - 300)
    log.write({("m", "1"): entries}, [model])
    if actual is not None:
        assert log.feedback("m", [(i, a) for i, a in zip(ids, actual) if a is not None], now=now)[1] == []
    return log


def test_estimated_quality_matches_the_realized_on_calibrated_probabilities():
    from workbench.monitor.quality import estimated_quality, live_metrics

    rng = np.random.default_rng(5)
    p = 1 / (1 + np.exp(-rng.normal(-0.5, 1.8, 5000)))  # calibrated: each outcome drawn from its probability
    y = np.where(rng.uniform(size=5000) < p, "Yes", "No")
    preds = pd.DataFrame({"score": p, "prediction": np.where(p >= 0.5, "Yes", "No"), "actual": y})
    estimated, realized = estimated_quality(preds, "binary", ["No", "Yes"]), live_metrics(preds, "binary", ["No", "Yes"])
    assert estimated["estimated_accuracy"] == pytest.approx(realized["accuracy"], abs=0.02)
    assert estimated["estimated_roc_auc"] == pytest.approx(realized["roc_auc"], abs=0.02)
    assert estimated_quality(preds.assign(actual=None), "binary", ["No", "Yes"]) == estimated  # no outcome needed

    proba = rng.dirichlet([0.6, 0.6, 0.6], 5000)
    labels = ["a", "b", "c"]
    drawn = [labels[rng.choice(3, p=q)] for q in proba]
    multi = pd.DataFrame({"probabilities": [dict(zip(labels, q)) for q in proba], "actual": drawn, "score": proba.max(1)})
    estimated, realized = estimated_quality(multi, "multiclass", labels), live_metrics(multi, "multiclass", labels)
    assert estimated["estimated_accuracy"] == pytest.approx(realized["accuracy"], abs=0.02)
    assert estimated["estimated_roc_auc"] == pytest.approx(realized["roc_auc"], abs=0.02)


def test_an_unsure_model_raises_an_estimated_drop_before_any_outcome(tmp_path):
    # a model sure of its first 200 rows (its reference) that now hesitates on every row; its validation says nothing
    # of its confidence (an over- or under-confident model is so in both periods): estimate against estimate
    rng = np.random.default_rng(0)
    yes = np.concatenate([rng.choice([0.03, 0.97], 200), rng.uniform(0.4, 0.6, 100)])
    log = hand_made_log(tmp_path / "unsure.db", "binary", ["No", "Yes"], [{"x": k} for k in range(300)],
                        np.column_stack([1 - yes, yes]), validation={"test_accuracy": 0.5})
    first = Settings(monitor_reference_rows=200)  # this module's service sets 100 in the environment
    st = status("m", log=log, record=False, settings=first)
    assert [a.kind for a in st.alerts] == ["estimated drop"] and st.windows["outcomes"].sum() == 0
    assert st.alerts[0].value == pytest.approx(np.maximum(yes, 1 - yes)[200:].mean())
    assert st.alerts[0].threshold == pytest.approx(0.97) and "before outcomes" in st.alerts[0].message
    steady = hand_made_log(tmp_path / "steady.db", "binary", ["No", "Yes"], [{"x": k} for k in range(300)],
                           np.tile([0.7, 0.3], (300, 1)), validation={"test_accuracy": 0.9})
    assert status("m", log=steady, record=False, settings=first).alerts == []  # unsure from the start: no fall, whatever validation said


def test_quality_by_segment_counts_and_scores_each_value_and_the_cli_prints_it(tmp_path, monkeypatch, capsys):
    from workbench.monitor import MonitorError
    from workbench.monitor.quality import segment_values, segments

    # 12 rows: North 6 (4 right), South 4 (all right), East 2 (outcome for one, wrong); a number column beside
    region = ["North"] * 6 + ["South"] * 4 + ["East"] * 2
    yes = np.array([0.9, 0.8, 0.3, 0.2, 0.7, 0.1, 0.6, 0.4, 0.2, 0.9, 0.8, 0.3])
    actual = ["Yes", "Yes", "No", "No", "No", "Yes", "Yes", "No", "No", "Yes", "No", None]
    records = [{"region": r, "age": 30 + k} for k, r in enumerate(region)]
    log = hand_made_log(tmp_path / "seg.db", "binary", ["No", "Yes"], records, np.column_stack([1 - yes, yes]), actual)
    st = status("m", log=log, record=False)
    assert st.segment == "region"  # the text column with 2-20 values, not the numbers
    g = st.segments.set_index("segment")
    assert g["rows"].to_dict() == {"North": 6, "South": 4, "East": 2} and g["outcomes"].tolist() == [6, 4, 1]
    assert g["accuracy"].tolist() == pytest.approx([4 / 6, 1.0, 0.0])
    assert g.loc["North", "predicted_positive_rate"] == pytest.approx(3 / 6)
    assert g.loc["North", "positive_rate"] == pytest.approx(3 / 6) and g.loc["East", "positive_rate"] == 0
    assert g.loc["South", "estimated_accuracy"] == pytest.approx(np.mean([0.6, 0.6, 0.8, 0.9]))
    assert "estimated_accuracy" in st.windows.columns and "estimated_roc_auc" in st.timeline.columns

    _, preds = log.read("m")
    tail = segments(preds, "binary", ["No", "Yes"], segment_values(preds, "region"), top=1)
    assert tail[["segment", "rows"]].values.tolist() == [["North", 6], ["(other)", 6]]  # long tails: top N + other
    with pytest.raises(MonitorError, match="no input column 'town'.*region, age"):
        status("m", log=log, record=False, segment="town")
    # the setting holds for every model: one that does not read its column keeps its status and alerts
    other = status("m", log=log, record=False, settings=Settings(monitor_segment="town"))
    assert other.segment == "region" and any("'town'" in n for n in other.notes)

    figs = st.figures()
    assert figs["segments"].layout.title.text == "Accuracy by region"
    assert list(figs["segments"].data[0].x) == ["North", "South", "East"]
    assert [t.name for t in figs["quality"].data] == ["realized (real outcomes)", "estimated (before outcomes)"]

    monkeypatch.setenv("WORKBENCH_MONITOR_STORE", str(tmp_path / "seg.db"))
    assert main(["monitor", "status", "--model", "m", "--segment", "region"]) == 0
    out = capsys.readouterr().out
    assert "by region:" in out and "predicted_positive_rate" in out and "estimated_accuracy" in out
    assert main(["monitor", "status", "--model", "m", "--segment", "town"]) == 2


def test_a_regression_has_no_estimate_and_says_so(tmp_path):
    values = np.linspace(10, 20, 30)
    records = [{"kind": "ab"[k % 2], "x": float(k)} for k in range(30)]
    log = hand_made_log(tmp_path / "reg.db", "regression", [], records, values, list(values + 1))
    st = status("m", log=log, record=False)
    assert not st.estimated and any("cannot be estimated before outcomes" in n for n in st.notes)
    assert not [c for c in [*st.windows.columns, *st.timeline.columns, *st.segments.columns] if c.startswith("estimated")]
    assert st.segments.set_index("segment")["mae"].tolist() == pytest.approx([1.0, 1.0])
    quality = st.figures()["quality"]
    assert "no estimate" in quality.layout.title.text and [t.name for t in quality.data] == ["realized (real outcomes)"]
