"""The prediction log: every request and predicted row a service answered, the outcomes fed back, hourly
aggregates of what retention compacted, and the alerts raised — one sqlite file (WAL) that survives restarts.

The service never writes here on a request's path: it hands a tuple to a :class:`Recorder` (a bounded queue and
one background writer thread); a full queue drops the rows and counts them.
"""
from __future__ import annotations

import math
import queue
import random
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from workbench.errors import WorkbenchError
from workbench.settings import Settings, get_settings

SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    request_id TEXT PRIMARY KEY, ts REAL NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL, input TEXT,
    prediction TEXT, score REAL, probabilities TEXT, latency_ms REAL, actual TEXT, actual_ts REAL);
CREATE INDEX IF NOT EXISTS predictions_model_ts ON predictions (model, ts);
CREATE TABLE IF NOT EXISTS requests (
    ts REAL NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL, status INTEGER NOT NULL, latency_ms REAL NOT NULL,
    rows INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS requests_model_ts ON requests (model, ts);
CREATE TABLE IF NOT EXISTS hourly (
    model TEXT NOT NULL, version TEXT NOT NULL, hour REAL NOT NULL, requests INTEGER, errors INTEGER, rows INTEGER,
    latency_p50 REAL, latency_p95 REAL, latency_max REAL, predictions TEXT, labelled INTEGER, correct INTEGER,
    abs_error REAL, sq_error REAL, PRIMARY KEY (model, version, hour));
CREATE TABLE IF NOT EXISTS models (
    model TEXT NOT NULL, version TEXT NOT NULL, task TEXT, labels TEXT, source TEXT, package TEXT, validation TEXT,
    first_seen REAL, PRIMARY KEY (model, version));
CREATE TABLE IF NOT EXISTS alerts (
    ts REAL NOT NULL, model TEXT NOT NULL, version TEXT, kind TEXT NOT NULL, subject TEXT, value REAL, threshold REAL,
    message TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS alerts_model_ts ON alerts (model, ts);
"""


class MonitorError(WorkbenchError):
    """A monitoring request that cannot be answered: says what to do."""


def store_path(settings: Settings | None = None) -> Path:
    """Where the log lives: ``WORKBENCH_MONITOR_STORE`` (a path or ``sqlite:///path``), else ``<home>/monitor.db``."""
    s = settings or get_settings()
    where = s.monitor_store.strip()
    if not where:
        return s.home.resolve() / "monitor.db"
    if where.startswith("sqlite:///"):
        return Path(where.removeprefix("sqlite:///"))
    if "://" in where:
        raise MonitorError(f"the monitoring store '{where}' is not a path or sqlite:/// URL; only sqlite is supported")
    return Path(where)


class PredictionLog:
    """The store. One connection per thread (sqlite's rule); WAL lets readers (dashboards, reports) read while the
    service writes, and a process killed mid-write leaves the last committed batch."""

    def __init__(self, path: str | Path | None = None, *, create: bool = True):
        self.path = Path(path) if path is not None else store_path()
        if not create and not self.path.exists():
            raise MonitorError(f"no prediction log at {self.path}: serve a model first (the service writes it), "
                               "or point WORKBENCH_MONITOR_STORE at the service's log")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self.connect().executescript(SCHEMA)

    def connect(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            self._local.con = con
        return con

    def query(self, sql: str, params=()) -> pd.DataFrame:
        cur = self.connect().execute(sql, params)
        return pd.DataFrame(cur.fetchall(), columns=[d[0] for d in cur.description])

    def write(self, requests: list, predictions: list, models: list) -> None:
        """One transaction: all of it or none (a crash between batches loses only what was not yet written)."""
        con = self.connect()
        con.execute("BEGIN")
        try:
            if models:
                con.executemany("INSERT OR IGNORE INTO models VALUES (?,?,?,?,?,?,?,?)", models)
            if requests:
                con.executemany("INSERT INTO requests VALUES (?,?,?,?,?,?)", requests)
            if predictions:
                con.executemany("INSERT OR IGNORE INTO predictions (request_id, ts, model, version, input, prediction, "
                                "score, probabilities, latency_ms) VALUES (?,?,?,?,?,?,?,?,?)", predictions)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def model_info(self, model: str) -> pd.DataFrame:
        """The versions of ``model`` this log has seen (task, labels, source, package folder), newest first."""
        info = self.query("SELECT * FROM models WHERE model = ? ORDER BY first_seen DESC", (model,))
        if info.empty:
            seen = self.query("SELECT DISTINCT model FROM models")["model"].tolist()
            raise MonitorError(f"no traffic for model '{model}' in {self.path}; models with traffic: "
                               f"{', '.join(seen) or 'none yet'}")
        return info

    def feedback(self, model: str, outcomes: list[tuple[str, str]], now: float | None = None) -> tuple[int, list[str]]:
        """Store true outcomes by request id; returns how many were stored and the ids this model never answered
        (or whose rows retention has already compacted)."""
        now = time.time() if now is None else now
        con = self.connect()
        ids = [i for i, _ in outcomes]
        known: set[str] = set()
        for k in range(0, len(ids), 500):
            chunk = ids[k:k + 500]
            known |= {r[0] for r in con.execute(f"SELECT request_id FROM predictions WHERE model = ? AND request_id IN "
                                                f"({','.join('?' * len(chunk))})", (model, *chunk))}
        con.execute("BEGIN")
        con.executemany("UPDATE predictions SET actual = ?, actual_ts = ? WHERE request_id = ?",
                        [(a, now, i) for i, a in outcomes if i in known])
        con.execute("COMMIT")
        return sum(i in known for i in ids), [i for i in ids if i not in known]

    def add_alerts(self, rows: list[tuple]) -> None:
        con = self.connect()
        con.execute("BEGIN")
        con.executemany("INSERT INTO alerts VALUES (?,?,?,?,?,?,?,?)", rows)
        con.execute("COMMIT")

    def compact(self, older_than_s: float, now: float | None = None) -> int:
        """Rows older than ``older_than_s`` become per-hour aggregates (requests, errors, latency, what was predicted,
        outcome counts and errors); the rows themselves are deleted. Returns how many rows went."""
        cutoff = (time.time() if now is None else now) - older_than_s
        cutoff -= cutoff % 3600  # whole hours only: an hour is compacted once, when all of it is old
        preds = self.query("SELECT model, version, ts, prediction, score, latency_ms, actual FROM predictions "
                           "WHERE ts < ?", (cutoff,))
        reqs = self.query("SELECT model, version, ts, status, latency_ms, rows FROM requests WHERE ts < ?", (cutoff,))
        if preds.empty and reqs.empty:
            return 0
        rows = _hourly(reqs, preds)
        con = self.connect()
        con.execute("BEGIN")
        try:
            for r in rows:  # an hour compacted in two goes (a late writer) adds up
                old = con.execute("SELECT requests, errors, rows, labelled, correct, abs_error, sq_error, predictions "
                                  "FROM hourly WHERE model=? AND version=? AND hour=?", r[:3]).fetchone()
                if old is not None:
                    r = _merge_hour(r, old)
                con.execute("INSERT OR REPLACE INTO hourly VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", r)
            con.execute("DELETE FROM predictions WHERE ts < ?", (cutoff,))
            con.execute("DELETE FROM requests WHERE ts < ?", (cutoff,))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return len(preds) + len(reqs)

    def counts(self) -> dict:
        con = self.connect()
        return {t: con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                for t in ("requests", "predictions", "hourly", "alerts")}


def _hourly(reqs: pd.DataFrame, preds: pd.DataFrame) -> list[tuple]:
    out = []
    for df in (reqs, preds):
        df["hour"] = df["ts"] - df["ts"] % 3600
    keys = sorted(set(map(tuple, reqs[["model", "version", "hour"]].values.tolist()))
                  | set(map(tuple, preds[["model", "version", "hour"]].values.tolist())))
    rg = dict(list(reqs.groupby(["model", "version", "hour"]))) if not reqs.empty else {}
    pg = dict(list(preds.groupby(["model", "version", "hour"]))) if not preds.empty else {}
    for key in keys:
        r = rg.get(key, reqs.iloc[:0])
        p = pg.get(key, preds.iloc[:0])
        lat = r["latency_ms"].to_numpy(float)
        q50, q95, qmax = (np.percentile(lat, [50, 95, 100]).tolist() if len(lat) else [None] * 3)
        labelled = p[p["actual"].notna()]
        numeric = pd.to_numeric(p["prediction"], errors="coerce")
        if len(p) and numeric.notna().all():  # regression: the values' count, sum and sum of squares
            dist = {"n": len(p), "sum": float(numeric.sum()), "sumsq": float((numeric ** 2).sum())}
            err = pd.to_numeric(labelled["actual"], errors="coerce") - pd.to_numeric(labelled["prediction"], errors="coerce")
            correct, abs_e, sq_e = None, float(err.abs().sum()), float((err ** 2).sum())
        else:
            dist = p["prediction"].value_counts().to_dict()
            correct, abs_e, sq_e = int((labelled["actual"] == labelled["prediction"]).sum()), None, None
        out.append((*key, len(r), int((r["status"] >= 400).sum()), int(r["rows"].sum()), q50, q95, qmax,
                    orjson.dumps(dist).decode(), len(labelled), correct, abs_e, sq_e))
    return out


def _merge_hour(new: tuple, old: tuple) -> tuple:
    req, err, rows, lab, cor, ae, se, dist = old
    d_new, d_old = orjson.loads(new[9]), orjson.loads(dist)
    merged = {k: d_new.get(k, 0) + d_old.get(k, 0) for k in set(d_new) | set(d_old)}

    def add(a, b):
        return None if a is None and b is None else (a or 0) + (b or 0)
    return (*new[:3], new[3] + req, new[4] + err, new[5] + rows, *new[6:9], orjson.dumps(merged).decode(),
            new[10] + lab, add(new[11], cor), add(new[12], ae), add(new[13], se))


class Recorder:
    """Hands a service's answers to the log without making a request wait: ``record`` puts one tuple in a bounded
    queue (~1 µs); one daemon thread serializes and writes them in batches. When the queue is full the rows are
    dropped and counted (``dropped``), never waited for. ``sample`` < 1 keeps that share of the requests' rows (every
    request is still counted)."""

    def __init__(self, log: PredictionLog, *, queue_size: int = 10_000, sample: float = 1.0, batch_s: float = 0.2,
                 on_drop=None):
        self.log, self.sample, self.batch_s, self.on_drop = log, sample, batch_s, on_drop
        self.queue: queue.Queue = queue.Queue(queue_size)
        self.dropped = self.written = 0
        self._seen: set = set()
        self._idle = threading.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._run, name="workbench-prediction-log", daemon=True)
        self._thread.start()

    def record(self, served, status: int, latency_s: float, records=None, answers=None, scores=None) -> None:
        if records is not None and self.sample < 1 and random.random() >= self.sample:
            records = answers = scores = None
        try:
            self.queue.put_nowait((time.time(), served, status, latency_s, records, answers, scores))
        except queue.Full:
            n = len(answers) if answers is not None else 0
            self.dropped += n
            if self.on_drop is not None:
                self.on_drop(served.name, n)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far is written (feedback right after a prediction finds its row)."""
        deadline = time.monotonic() + timeout
        while self.queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.002)
        return not self.queue.unfinished_tasks

    def close(self, timeout: float = 10.0) -> None:
        self.flush(timeout)
        self.queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                self.queue.task_done()
                return
            items = [item]
            deadline = time.monotonic() + self.batch_s
            while len(items) < 5000 and time.monotonic() < deadline:  # gather a batch: one transaction for many
                try:
                    nxt = self.queue.get(timeout=max(deadline - time.monotonic(), 0))
                except queue.Empty:
                    break
                if nxt is None:
                    self.queue.put(None)  # written below, then the loop ends
                    self.queue.task_done()
                    break
                items.append(nxt)
            try:
                self._write(items)
            except Exception as exc:  # noqa: BLE001 - the log must never take the service down; it says why
                import logging

                logging.getLogger("workbench.monitor").error("could not write %d log entries to %s: %s", len(items),
                                                             self.log.path, exc)
            finally:
                for _ in items:
                    self.queue.task_done()

    def _write(self, items: list) -> None:
        requests, predictions, models = [], [], []
        dumps = orjson.dumps
        for ts, served, status, latency, records, answers, scores in items:
            n = len(answers) if answers is not None else 0
            requests.append((ts, served.name, served.version, status, latency * 1000, n))
            key = (served.name, served.version)
            if key not in self._seen:
                self._seen.add(key)
                validation = served.package.manifest.get("metrics") or {}
                models.append((served.name, served.version, served.task, dumps(served.labels).decode(), served.source,
                               str(served.package.path), dumps(validation, option=orjson.OPT_SERIALIZE_NUMPY).decode(), ts))
            if not answers:
                continue
            ms = latency * 1000 / n
            if served.task == "regression":
                for rec, a in zip(records, answers):
                    v = a["prediction"]
                    predictions.append((a["request_id"], ts, served.name, served.version, dumps(rec).decode(), repr(v), v,
                                        None, ms))
            else:
                col = 1 if scores.shape[1] == 2 else None  # binary: the second class's probability; else the confidence
                summary = scores[:, col].tolist() if col is not None else scores.max(axis=1).tolist()
                for rec, a, s in zip(records, answers, summary):
                    predictions.append((a["request_id"], ts, served.name, served.version, dumps(rec).decode(),
                                        a["prediction"], s, dumps(a["probabilities"]).decode(), ms))
        self.log.write(requests, predictions, models)
        self.written += len(predictions)


def finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
