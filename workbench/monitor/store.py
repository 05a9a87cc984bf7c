"""The prediction log: every request and predicted row a service answered, the outcomes fed back, hourly
aggregates of what retention compacted, and the alerts raised — one sqlite file (WAL) that survives restarts.

The service never writes here on a request's path: it appends to a :class:`Recorder`'s bounded buffer; one thread
writes what gathered every 0.2 s as one *batch* row per model version (the requests, their raw rows and answers as
one JSON document, zstd-compressed: see ``_pack``). Rows are found again by time (batches are indexed by their time range) and, for feedback, by
request id: ids begin with the nanosecond they were made, so an id names the batches that can hold it.

Why batches and not a row per prediction: measured on the demo service at 16 connections, a row per prediction
(three B-trees, and the rows built in Python under the interpreter lock) cost ~10 µs of the writer per row and 12–17 %
of the service's throughput; a batch costs ~1.5 µs a row, most of it outside the lock.
"""
from __future__ import annotations

import logging
import random
import sqlite3
import threading
import time
from collections import OrderedDict, deque
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

try:
    from compression import zstd  # Python 3.14's own
except ImportError:
    from backports import zstd

from workbench.errors import WorkbenchError
from workbench.settings import Settings, get_settings

SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT, model TEXT NOT NULL, version TEXT NOT NULL, ts_first REAL NOT NULL, ts_last REAL NOT NULL,
    id_first INTEGER, id_last INTEGER, requests INTEGER NOT NULL, rows INTEGER NOT NULL, data BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS batches_time ON batches (model, ts_last);
CREATE INDEX IF NOT EXISTS batches_ids ON batches (model, id_first);
CREATE TABLE IF NOT EXISTS outcomes (
    request_id TEXT PRIMARY KEY, model TEXT NOT NULL, actual TEXT NOT NULL, ts REAL NOT NULL);
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
_PACKED = b"Z"  # a batch's data: "Z", its JSON's length (8 bytes, little-endian), the JSON by zstd; or the JSON itself
REQUEST_COLUMNS = ["ts", "version", "status", "latency_ms", "rows"]
PREDICTION_COLUMNS = ["request_id", "ts", "version", "input", "prediction", "score", "probabilities", "latency_ms", "actual"]


def entry(ts: float, status: int, latency_ms: float, rows=None, first_id: str | None = None,
          scores: np.ndarray | None = None) -> tuple:
    """One request as the log keeps it: ``(ts, rows kept, first request id, JSON pieces)`` — the pieces joined are
    the request's JSON. ``rows`` are the request's raw rows as sent — the request body's own JSON bytes (a list of
    objects, or one object) or the records — and ``scores`` the model's (probabilities rows × classes, or values):
    every row's answer follows from them, its request id from ``first_id``. Without ``rows`` or ``first_id`` only
    the request is counted.

    Made by the writer's thread, not the request's, and cheap there: the body is kept as it came (neither encoded nor
    copied: the batch's one join copies it, without the interpreter lock) and the answers are one numeric array.
    (Encoding records and answer objects cost the writer ~60 µs a 100-row request under the interpreter lock, and the
    service a quarter of its batch throughput.)"""
    n = len(scores) if scores is not None else 0
    if rows is None or first_id is None or scores is None:
        return ts, 0, None, (orjson.dumps([ts, status, latency_ms, n, None, None]),)
    try:
        # a few rows as a list (cheaper than numpy's serializer set up for each of them), many as the array
        numbers = scores.tolist() if n <= 16 else np.ascontiguousarray(scores, dtype=np.float64)
        answers = orjson.dumps([first_id, numbers], option=orjson.OPT_SERIALIZE_NUMPY)
        if type(rows) is bytes:  # valid JSON: the service parsed it
            return ts, n, first_id, (orjson.dumps([ts, status, latency_ms, n])[:-1] + b",", rows, b"," + answers + b"]")
        return ts, n, first_id, (orjson.dumps([ts, status, latency_ms, n, rows, orjson.Fragment(answers)]),)
    except TypeError:  # a value JSON cannot hold: the request is still counted
        return ts, 0, None, (orjson.dumps([ts, status, latency_ms, n, None, None]),)


def _joined(entries: list) -> bytes:
    """A batch's entries as one JSON list, in one join (which lets go of the interpreter lock for big batches)."""
    pieces = [b"["]
    for e in entries:
        pieces += e[3]
        pieces.append(b",")
    pieces[-1] = b"]"
    return b"".join(pieces)


def _answered(n: int, records, answers, labels: list[str]):
    """A logged request's rows: (request id, raw row, prediction, score, probabilities) each. Reads the first format
    too (one answer object per row)."""
    if isinstance(records, dict):
        records = [records]
    if answers and isinstance(answers[0], dict):
        positive = labels[1] if len(labels) == 2 else None
        for r, a in zip(records, answers):
            probs = a.get("probabilities")
            score = a["prediction"] if probs is None else probs[positive] if positive is not None else a["confidence"]
            yield a["request_id"], r, a["prediction"], score, probs
        return
    ids, scores = _request_ids(n, answers), answers[1]
    if not labels:  # a regression: the value is the prediction
        for i, r, v in zip(ids, records, scores):
            yield i, r, v, v, None
        return
    binary = len(labels) == 2
    for i, r, p in zip(ids, records, scores):
        top = max(p)
        yield i, r, labels[p.index(top)], p[1] if binary else top, dict(zip(labels, p))


def _request_ids(n: int, answers) -> list[str]:
    """A logged request's row ids: its first id alone, or a batch's prefix with "-0", "-1", ... (``Served.answer``)."""
    if answers and isinstance(answers[0], dict):
        return [a["request_id"] for a in answers]
    return [answers[0]] if n == 1 else [f"{answers[0][:-2]}-{i}" for i in range(n)]


def id_time(request_id: str) -> int | None:
    """The nanosecond a request id was made (its first 16 hex digits), or None for a string that is no such id."""
    try:
        return int(request_id[:16], 16) if len(request_id) >= 16 else None
    except ValueError:
        return None


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

    def __init__(self, path: str | Path | None = None, *, create: bool = True, cache_rows: int = 500_000):
        self.path = Path(path) if path is not None else store_path()
        if not create and not self.path.exists():
            raise MonitorError(f"no prediction log at {self.path}: serve a model first (the service writes it), "
                               "or point WORKBENCH_MONITOR_STORE at the service's log")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._decoded: OrderedDict = OrderedDict()  # batch id → decoded rows (batches never change)
        self._decoded_rows, self.cache_rows = 0, cache_rows  # ~1 KB a decoded row
        self.connect().executescript(SCHEMA)

    def connect(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            con.execute("PRAGMA page_size=16384")  # a new log only (see _pack)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            self._local.con = con
        return con

    def query(self, sql: str, params=()) -> pd.DataFrame:
        cur = self.connect().execute(sql, params)
        return pd.DataFrame(cur.fetchall(), columns=[d[0] for d in cur.description])

    def write(self, batches: dict, models: list | None = None) -> None:
        """``batches``: ``{(model, version): [entry(...), ...]}``, one entry per request. One transaction."""
        rows = []
        for (model, version), entries in batches.items():
            ids = [e[2] for e in entries if e[2]]  # fixed-width time prefixes: the text order is the time order
            rows.append((model, version, entries[0][0], entries[-1][0], id_time(min(ids)) if ids else None,
                         id_time(max(ids)) if ids else None, len(entries), sum(e[1] for e in entries),
                         _pack(_joined(entries))))
        con = self.connect()
        con.execute("BEGIN")
        try:
            if models:
                con.executemany("INSERT OR IGNORE INTO models VALUES (?,?,?,?,?,?,?,?)", models)
            con.executemany("INSERT INTO batches (model, version, ts_first, ts_last, id_first, id_last, requests, rows, "
                            "data) VALUES (?,?,?,?,?,?,?,?,?)", rows)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def read(self, model: str, since: float = 0.0, until: float = float("inf"), *,
             newest: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The requests (ts, version, status, latency_ms, rows) and predicted rows (request_id, ts, version, input,
        prediction, score, probabilities, latency_ms, actual) of ``model`` between ``since`` and ``until`` — or, with
        ``newest``, of the newest batches holding at least that many requests and predicted rows together (a bounded
        sample for frequent checks: 100-row requests bring a hundred times the rows of single ones, and rows are what
        decoding and judging cost). Batches are decoded once per PredictionLog (they never change): a dashboard's
        refresh decodes only new ones."""
        rows = self.connect().execute("SELECT id, requests, rows FROM batches WHERE model = ? AND ts_last >= ? AND "
                                      "ts_first <= ? ORDER BY id DESC", (model, since, min(until, 1e300)))
        ids, got = [], 0
        for i, n, kept in rows:
            if newest is not None and got >= newest:
                break
            ids.append(i)
            got += n + kept
        return self._frames(model, ids[::-1], lambda ts: since <= ts <= until)

    def first_rows(self, model: str, version: str, n: int) -> pd.DataFrame:
        """The first ``n`` predicted rows of one version: its reference period."""
        ids, got = [], 0
        for i, rows in self.connect().execute("SELECT id, rows FROM batches WHERE model = ? AND version = ? ORDER BY id",
                                              (model, version)):
            ids.append(i)
            got += rows
            if got >= n:
                break
        return self._frames(model, ids)[1].head(n)

    def _frames(self, model: str, ids: list[int], keep=None) -> tuple[pd.DataFrame, pd.DataFrame]:
        con = self.connect()
        missing = [i for i in ids if i not in self._decoded]
        if missing:
            labels = {v: orjson.loads(lab) for v, lab in con.execute("SELECT version, labels FROM models WHERE model = ?",
                                                                       (model,))}
            for k in range(0, len(missing), 500):
                chunk = missing[k:k + 500]
                for i, version, data in con.execute(f"SELECT id, version, data FROM batches WHERE id IN "
                                                    f"({','.join('?' * len(chunk))})", chunk):
                    self._remember(i, _decode(version, data, labels.get(version) or []))
        reqs, preds = [], []
        for i in ids:
            r, p = self._decoded[i]
            if keep is None:
                reqs += r
                preds += p
            else:
                reqs += [x for x in r if keep(x[0])]
                preds += [x for x in p if keep(x[1])]
        requests = pd.DataFrame(reqs, columns=REQUEST_COLUMNS)
        predictions = pd.DataFrame(preds, columns=PREDICTION_COLUMNS)
        if len(predictions):
            lowest = predictions["request_id"].min()
            actual = dict(con.execute("SELECT request_id, actual FROM outcomes WHERE model = ? AND request_id >= ?",
                                      (model, lowest)).fetchall())
            predictions["actual"] = predictions["request_id"].map(actual)
            predictions["score"] = predictions["score"].astype(float)
        return requests, predictions

    def _remember(self, batch_id: int, decoded: tuple) -> None:
        self._decoded[batch_id] = decoded
        self._decoded_rows += len(decoded[1]) + len(decoded[0])
        while self._decoded_rows > self.cache_rows and len(self._decoded) > 1:
            _, (r, p) = self._decoded.popitem(last=False)
            self._decoded_rows -= len(r) + len(p)

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
        (or whose rows retention has already compacted). An id's time names the batches that can hold it."""
        now = time.time() if now is None else now
        con = self.connect()
        times = {i: id_time(i) for i, _ in outcomes}
        wanted = [t for t in times.values() if t is not None]
        known: set[str] = set()
        if wanted:
            for (data,) in con.execute("SELECT data FROM batches WHERE model = ? AND id_first <= ? AND id_last >= ?",
                                       (model, max(wanted), min(wanted))):
                known |= {i for _, _, _, n, _, answers in _unpack(data) if answers
                          for i in _request_ids(n, answers)} & times.keys()
        con.execute("BEGIN")
        con.executemany("INSERT OR REPLACE INTO outcomes VALUES (?,?,?,?)",
                        [(i, model, a, now) for i, a in outcomes if i in known])
        con.execute("COMMIT")
        ids = [i for i, _ in outcomes]
        return sum(i in known for i in ids), [i for i in ids if i not in known]

    def add_alerts(self, rows: list[tuple]) -> None:
        con = self.connect()
        con.execute("BEGIN")
        con.executemany("INSERT INTO alerts VALUES (?,?,?,?,?,?,?,?)", rows)
        con.execute("COMMIT")

    def compact(self, older_than_s: float, now: float | None = None) -> int:
        """Batches older than ``older_than_s`` become per-hour aggregates (requests, errors, latency, what was
        predicted, outcome counts and errors); the batches and their outcomes are deleted. Returns the predicted rows
        compacted."""
        cutoff = (time.time() if now is None else now) - older_than_s
        cutoff -= cutoff % 3600  # whole hours only: an hour is compacted once, when all of it is old
        con = self.connect()
        old = con.execute("SELECT DISTINCT model FROM batches WHERE ts_last < ?", (cutoff,)).fetchall()
        if not old:
            return 0
        hours, gone = [], 0
        for (model,) in old:
            old_ids = [i for (i,) in con.execute("SELECT id FROM batches WHERE model = ? AND ts_last < ?", (model, cutoff))]
            reqs, preds = self._frames(model, old_ids)
            for i in old_ids:  # AUTOINCREMENT never gives their ids again; nothing will ask for them
                self._decoded_rows -= sum(map(len, self._decoded.pop(i, ((), ()))))
            reqs["model"], preds["model"] = model, model
            hours += _hourly(reqs, preds)
            gone += len(preds)
        con.execute("BEGIN")
        try:
            for r in hours:  # an hour compacted in two goes (a late writer) adds up
                before = con.execute("SELECT requests, errors, rows, labelled, correct, abs_error, sq_error, predictions "
                                     "FROM hourly WHERE model=? AND version=? AND hour=?", r[:3]).fetchone()
                if before is not None:
                    r = _merge_hour(r, before)
                con.execute("INSERT OR REPLACE INTO hourly VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", r)
            con.execute("DELETE FROM batches WHERE ts_last < ?", (cutoff,))
            con.execute("DELETE FROM outcomes WHERE request_id < ?", (f"{int(cutoff * 1e9):016x}",))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return gone

    def counts(self) -> dict:
        con = self.connect()
        requests, rows = con.execute("SELECT COALESCE(SUM(requests), 0), COALESCE(SUM(rows), 0) FROM batches").fetchone()
        return {"requests": requests, "rows": rows} | {
            t: con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("batches", "outcomes", "hourly", "alerts")}


def _pack(data: bytes) -> bytes:
    """A batch's JSON as the log stores it: compressed (zstd, level 1). Measured on 320 unique 100-row requests
    (10 MB of JSON): 9 ms of CPU to a tenth of the size, where sqlite spent ~30 ms writing the JSON itself — the
    writer's cost and the log's size both fall. Compressed, a batch is small (~15 KB a tick of single-row requests at
    10k/s, ~1 MB of 100-row ones), so pages are 16 KB: with 64 KB pages every commit rewrote several 64 KB B-tree
    pages into the WAL, 3.7 µs of the writer's CPU a request where 16 KB pages take 0.15."""
    return b"".join((_PACKED, len(data).to_bytes(8, "little"), zstd.compress(data, 1)))


def _unpack(blob: bytes) -> list:
    """A stored batch → its entries (the first logs stored plain JSON)."""
    if blob[:1] != _PACKED:
        return orjson.loads(blob)
    return orjson.loads(zstd.decompress(memoryview(blob)[9:]))  # a standard zstd frame (the first logs': pyarrow's Codec)


def _decode(version: str, data: bytes, labels: list[str]) -> tuple[list, list]:
    """One batch → its request tuples and predicted-row tuples (REQUEST_COLUMNS, PREDICTION_COLUMNS)."""
    reqs, preds = [], []
    for ts, status, ms, n, records, answers in _unpack(data):
        reqs.append((ts, version, status, ms, n))
        if answers:
            preds += [(i, ts, version, r, pred, score, probs, ms, None)
                      for i, r, pred, score, probs in _answered(n, records, answers, labels)]
    return reqs, preds


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
    """Hands a service's answers to the log without making a request wait: ``record`` appends one tuple to a bounded
    buffer (a deque append, no lock, no thread woken); one daemon thread wakes every ``batch_s``, takes what is there
    and writes it as one batch per model version in one transaction. When the buffer is full the rows are dropped and
    counted (``dropped``), never waited for. ``sample`` < 1 keeps that share of the requests' rows (every request is
    still counted).

    Measured: a writer that waited on a ``queue.Queue`` woke on every request and cost the service 29 % of its
    throughput at 16 connections; waking on a timer, and writing batches, costs a few per cent."""

    def __init__(self, log: PredictionLog, *, queue_size: int = 10_000, sample: float = 1.0, batch_s: float = 0.2,
                 on_drop=None):
        self.log, self.size, self.sample, self.batch_s, self.on_drop = log, queue_size, sample, batch_s, on_drop
        self.buffer: deque = deque()
        self.dropped = self.written = 0
        self._recorded = self._taken = 0  # requests appended to the buffer / taken from it and written (or failed)
        self.cpu_s = 0.0  # the writer thread's own CPU time (reported in /metrics)
        self._keys: dict = {}  # id(served) → (served, (name, version))
        self._models: list = []  # versions seen and not yet written
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="workbench-prediction-log", daemon=True)
        self._thread.start()

    def record(self, served, status: int, latency_s: float, rows=None, first_id: str | None = None,
               scores: np.ndarray | None = None) -> None:
        """A request answered with ``status``; when it was scored, its raw rows (the body's JSON bytes or the
        records), its first request id and the model's scores (see ``entry``)."""
        if len(self.buffer) >= self.size:
            n = len(scores) if scores is not None else 0
            self.dropped += n
            if self.on_drop is not None:
                self.on_drop(served.name, n)
            return
        if rows is not None and self.sample < 1 and random.random() >= self.sample:
            rows = None  # counted as a request of len(scores) rows, the rows not kept
        key = self._keys.get(id(served))
        if key is None or key[0] is not served:
            key = self._keys[id(served)] = (served, (served.name, served.version))
            self._models.append(self._model_row(served, time.time()))
        self.buffer.append((key[1], time.time(), status, latency_s * 1000, rows, first_id, scores))
        self._recorded += 1

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything recorded so far is written (feedback right after a prediction finds its row) —
        not until the buffer is empty, which under steady traffic it never is."""
        target, deadline = self._recorded, time.monotonic() + timeout
        while self._taken < target and time.monotonic() < deadline:
            time.sleep(0.005)
        return self._taken >= target

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.batch_s):
            self._drain()
        self._drain()  # what is left when the service stops

    def _drain(self) -> None:
        buf = self.buffer
        t0 = time.thread_time()
        left = len(buf)  # what came while writing waits for the next tick: a commit per tick, not a string of small ones
        while left:
            items = [buf.popleft() for _ in range(min(left, 5000))]
            left -= len(items)
            try:
                self._write(items)
            except Exception as exc:  # noqa: BLE001 - the log must never take the service down; it says why
                logging.getLogger("workbench.monitor").error("could not write %d log entries to %s: %s", len(items),
                                                             self.log.path, exc)
            finally:
                self._taken += len(items)
        self.cpu_s += time.thread_time() - t0

    def _write(self, items: list) -> None:
        batches: dict = {}
        for start in range(0, len(items), 256):
            if start:
                time.sleep(0)  # hand the interpreter to the event loop between slices: shorter stalls, lower p99
            for key, ts, status, ms, rows, first_id, scores in items[start:start + 256]:
                batch = batches.get(key)
                if batch is None:
                    batch = batches[key] = []
                batch.append(entry(ts, status, ms, rows, first_id, scores))
        models, self._models = self._models, []
        self.log.write(batches, models)
        self.written += sum(e[1] for b in batches.values() for e in b)

    @staticmethod
    def _model_row(served, ts: float) -> tuple:
        """What the log keeps of a served version, once: task, classes, where its package is, its validation metrics."""
        validation = served.package.manifest.get("metrics") or {}
        return (served.name, served.version, served.task, orjson.dumps(served.labels).decode(), served.source,
                str(served.package.path), orjson.dumps(validation, option=orjson.OPT_SERIALIZE_NUMPY).decode(), ts)
