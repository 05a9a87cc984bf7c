"""Scoring a table larger than comfortable memory by streaming its partitions, with 1 and 2 Dask workers.

The demo generator at scale (``--rows``, default 10 million) is written as Parquet partitions of ``--partition-rows``
(once, cached under the work folder). Measured, each in its own process tree:
  - the baseline: the peak resident memory of one process that loads the whole table (pandas, all partitions);
  - ``workbench predict --data 'parts/*.parquet' --out preds/ --distributed`` on an embedded LocalCluster of 1 and of
    2 workers: wall time, rows/s, and the peak resident memory of every process (client and workers, polled every
    0.2 s with psutil) — the largest one and the largest sum at one moment — against the baseline.

    .venv/bin/python benchmarks/scale.py [--rows 10000000] [--partition-rows 500000] [--work /tmp/scale-bench]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--partition-rows", type=int, default=500_000)
    ap.add_argument("--work", default="/tmp/scale-bench")
    args = ap.parse_args()
    work = Path(args.work)
    parts = work / f"parts-{args.rows}-{args.partition_rows}"
    env = os.environ | {"WORKBENCH_HOME": str(work / "home"), "PYTHONPATH": str(ROOT)}
    if not (parts / "_done").exists():
        t0 = time.time()
        _run([PY, "-c", _GENERATE.format(parts=str(parts), rows=args.rows, part=args.partition_rows)], env)
        print(f"generated {args.rows:,} rows in {len(list(parts.glob('*.parquet')))} partitions in {time.time() - t0:.0f} s")
    package = work / "package"
    if not package.exists():
        _run([PY, "-c", _TRAIN.format(out=str(package))], env)

    whole = _measure([PY, "-c", _LOAD_ALL.format(parts=str(parts))], env)
    print(f"\nloading the whole table in one process: peak {whole['peak_mb']:,.0f} MB, {whole['seconds']:.0f} s")
    rows = []
    for n in (1, 2):
        out = work / f"preds-{n}"
        shutil.rmtree(out, ignore_errors=True)
        m = _measure([PY, "-m", "workbench.cli", "predict", "--model", str(package), "--data", str(parts / "*.parquet"),
                      "--out", str(out), "--distributed"], env | {"WORKBENCH_N_THREADS": str(n)})
        done = json.loads((out / "_SUCCESS").read_text())
        rows.append({"workers": n, "rows": done["rows"], "seconds": round(m["seconds"], 1),
                     "rows_per_s": round(done["rows"] / m["seconds"]), "largest_process_mb": round(m["peak_mb"]),
                     "all_processes_mb": round(m["peak_sum_mb"]), "processes": m["processes"],
                     "largest / whole load": round(m["peak_mb"] / whole["peak_mb"], 3),
                     "all / whole load": round(m["peak_sum_mb"] / whole["peak_mb"], 3)})
        print(pd.DataFrame(rows[-1:]).to_string(index=False), flush=True)
    print("\n" + pd.DataFrame(rows).to_string(index=False))
    print(f"\n2 workers / 1 worker, rows/s: {rows[1]['rows_per_s'] / rows[0]['rows_per_s']:.2f}")


def _run(cmd: list[str], env: dict) -> None:
    subprocess.run(cmd, env=env, cwd=ROOT, check=True)


def _measure(cmd: list[str], env: dict) -> dict:
    """Run ``cmd``; poll the resident memory of it and all its descendants; peaks per process and of the sum."""
    t0 = time.time()
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    root = psutil.Process(proc.pid)
    peak, peak_sum, seen = 0, 0, set()
    while proc.poll() is None:
        try:
            tree = [root] + root.children(recursive=True)
            rss = []
            for p in tree:
                try:
                    rss.append(p.memory_info().rss)
                    seen.add(p.pid)
                except psutil.Error:
                    pass
            peak, peak_sum = max(peak, max(rss, default=0)), max(peak_sum, sum(rss))
        except psutil.Error:
            pass
        time.sleep(0.2)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:4]} failed ({proc.returncode})")
    return {"seconds": time.time() - t0, "peak_mb": peak / 1e6, "peak_sum_mb": peak_sum / 1e6, "processes": len(seen)}


_GENERATE = """
from pathlib import Path
from workbench.data import load
parts = Path({parts!r}); parts.mkdir(parents=True, exist_ok=True)
for k in range(({rows} + {part} - 1) // {part}):
    df = load("demo", n_rows={part}, seed=1000 + k).drop(columns=["churn"])
    df = df.astype({{c: "string" for c in df.columns if df[c].dtype == object}})
    df.to_parquet(parts / f"part-{{k:04d}}.parquet", index=False)
(parts / "_done").write_text("ok")
"""
_TRAIN = """
from workbench.data import load
from workbench.models import train
from workbench.registry.package import package_result
r = train(load("demo", n_rows=20000), "churn", models=["lightgbm"], folds=3, progress=False, log=False, time_budget=120)
package_result(r, {out!r}, name="churn")
"""
_LOAD_ALL = """
from pathlib import Path
import pandas as pd
df = pd.concat([pd.read_parquet(f) for f in sorted(Path({parts!r}).glob("*.parquet"))], ignore_index=True)
print(len(df))
"""

if __name__ == "__main__":
    main()
