"""What the prediction log loses when its service is killed, and what reading it costs.

1. A service with the log on answers single rows from 8 client threads; after a few seconds it is killed with SIGKILL.
   Rows answered (HTTP 200 received) against rows in the log, and whether the log still reads (integrity check).
2. The monitoring status (windows, timeline, drift of every column on the newest 5,000 rows) over logs of growing
   size: the first read (every batch decoded), the status, and a dashboard's next refresh (only new batches decoded).

    .venv/bin/python benchmarks/monitor.py [--kills 3] [--seconds 4]
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=4)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="monitor-bench-"))
    os.environ["WORKBENCH_HOME"] = str(work / "home")
    from workbench.data import load
    from workbench import train
    from workbench.registry.package import package_result

    df = load("demo", n_rows=3000)
    pkg = package_result(train(df, "churn", models=["lightgbm"], folds=3, progress=False, log=False, time_budget=60),
                         work / "pkg", name="churn")
    rows = json.loads(load("demo", n_rows=2000, seed=5).drop(columns=["churn"]).to_json(orient="records"))

    kills = [_kill_once(pkg, rows, work / f"killed-{k}.db", args.seconds) for k in range(args.kills)]
    print("\nSIGKILL in the middle of traffic (8 client threads, single rows):")
    print(pd.DataFrame(kills).to_string(index=False))

    print("\nreading the log (status: windows, timeline, drift on the newest 5,000 rows):")
    print(pd.DataFrame([_status_cost(pkg, rows, work / f"big-{n}.db", n) for n in (10_000, 100_000)]).to_string(index=False))


def _kill_once(pkg: Path, rows: list, db: Path, seconds: float) -> dict:
    from servers import Server

    from workbench.monitor import PredictionLog

    s = Server("--package", pkg, env={"WORKBENCH_MONITOR_STORE": str(db)})
    answered, stop = [], threading.Event()

    def client(k: int) -> None:
        with httpx.Client(timeout=5) as c:
            i = k
            while not stop.is_set():
                try:
                    r = c.post(f"{s.url}/v1/models/churn/predict", json=rows[i % len(rows)])
                except httpx.HTTPError:
                    return
                if r.status_code == 200:
                    answered.append(time.time())
                i += 8
    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    t_kill = time.time()
    os.kill(s.proc.pid, signal.SIGKILL)
    stop.set()
    for t in threads:
        t.join()
    s.proc.wait()
    ok = sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone()[0]
    logged = PredictionLog(db).counts()["rows"]
    rate = len(answered) / seconds
    lost = len(answered) - logged
    return {"answered": len(answered), "in_log": logged, "lost": lost, "lost_ms_of_traffic": round(lost / rate * 1000, 1),
            "answered_in_last_200ms": sum(t > t_kill - 0.2 for t in answered), "integrity": ok}


def _status_cost(pkg: Path, rows: list, db: Path, n: int) -> dict:
    from workbench.monitor import PredictionLog, status
    from workbench.monitor.store import entry
    from workbench.registry.package import load_package
    from workbench.serve.models import Served

    p = load_package(pkg)
    served = Served("churn", "1", str(pkg), p, p.model.plan(p.schema))
    log = PredictionLog(db)
    now = time.time()
    batch, models = [], [("churn", "1", "binary", '["No", "Yes"]', str(pkg), str(pkg), "{}", now - 3600)]
    for k in range(0, n, 100):
        recs = rows[k % 1900:k % 1900 + 100]
        answers, scores, _ = served.predict(recs)
        batch.append(entry(now - 3000 + 3000 * k / n, 200, 5.0, recs, answers[0]["request_id"], scores))
    log.write({("churn", "1"): batch}, models)
    t0 = time.perf_counter()
    log.read("churn")
    t_read = time.perf_counter() - t0
    t0 = time.perf_counter()
    st = status("churn", log=log, record=False)
    t_status = time.perf_counter() - t0
    t0 = time.perf_counter()
    status("churn", log=log, record=False)  # a dashboard's next refresh: the batches are decoded already
    return {"rows_in_log": n, "first_read_s": round(t_read, 2), "status_s": round(t_status, 2),
            "refresh_s": round(time.perf_counter() - t0, 2),
            "db_mb": round(db.stat().st_size / 1e6, 1), "columns_judged": len(st.drift)}


if __name__ == "__main__":
    main()
