"""Scoring a table larger than comfortable memory by streaming its partitions, with 1 and 2 Dask workers; and
distributed LightGBM training against single-process LightGBM on the same rows.

The demo generator at scale (``--rows``, default 10 million) is written as Parquet partitions of ``--partition-rows``
(once, cached under the work folder). Measured, each in its own process tree:
  - the baseline: the peak resident memory of one process that loads the whole table (pandas, all partitions);
  - ``workbench predict --data 'parts/*.parquet' --out preds/ --distributed`` on an embedded LocalCluster of 1 and of
    2 workers: wall time, rows/s, and the peak resident memory of every process (client and workers, polled every
    0.2 s with psutil) — the largest one and the largest sum at one moment — against the baseline.

Training (``--train-rows``, default 2 million, with the target, partitions of ``--train-partition-rows``):
  - ``workbench train --data 'parts/*.parquet' --target churn --distributed`` on an embedded LocalCluster of 2 workers
    (one thread each): lazy load, cleaner fitted on a 200,000-row uniform sample, LightGBM (100 trees) by
    ``lightgbm.dask``, tested on the held-out partitions, logged to MLflow;
  - single-process LightGBM (the same 100 trees, 2 threads) on the same training partitions loaded whole into pandas,
    cleaned whole, tested on the same held-out partitions.
  Wall time, fit time, test ROC AUC and peak memory of each.

    .venv/bin/python benchmarks/scale.py [--only score|train] [--rows 10000000] [--partition-rows 500000]
                                         [--train-rows 2000000] [--train-partition-rows 200000] [--work /tmp/scale-bench]
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
    ap.add_argument("--train-rows", type=int, default=2_000_000)
    ap.add_argument("--train-partition-rows", type=int, default=200_000)
    ap.add_argument("--only", choices=["score", "train"])
    ap.add_argument("--work", default="/tmp/scale-bench")
    args = ap.parse_args()
    work = Path(args.work)
    if args.only != "train":
        score(args, work)
    if args.only != "score":
        train(args, work)


def score(args, work: Path) -> None:
    parts = work / f"parts-{args.rows}-{args.partition_rows}"
    env = os.environ | {"WORKBENCH_HOME": str(work / "home"), "PYTHONPATH": str(ROOT)}
    if not (parts / "_done").exists():
        t0 = time.time()
        _run([PY, "-c", _GENERATE.format(parts=str(parts), rows=args.rows, part=args.partition_rows,
                                         keep_target=False)], env)
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


def train(args, work: Path) -> None:
    parts = work / f"train-{args.train_rows}-{args.train_partition_rows}"
    env = os.environ | {"WORKBENCH_HOME": str(work / "home"), "PYTHONPATH": str(ROOT), "WORKBENCH_N_THREADS": "2"}
    if not (parts / "_done").exists():
        t0 = time.time()
        _run([PY, "-c", _GENERATE.format(parts=str(parts), rows=args.train_rows, part=args.train_partition_rows,
                                         keep_target=True)], env)
        print(f"generated {args.train_rows:,} training rows in {len(list(parts.glob('*.parquet')))} partitions "
              f"in {time.time() - t0:.0f} s")
    dist = _measure([PY, "-m", "workbench.cli", "train", "--data", str(parts / "*.parquet"), "--target", "churn",
                     "--distributed", "--json"], env, output=True)
    d = json.loads(dist["output"].strip().splitlines()[-1])
    single = _measure([PY, "-c", _SINGLE.format(parts=str(parts))], env, output=True)
    sg = json.loads(single["output"].strip().splitlines()[-1])
    rows = [{"training": "distributed (lightgbm.dask, 2 workers × 1 thread)", "train rows": d["distributed"]["train_rows"],
             "test rows": d["distributed"]["test_rows"], "wall s": round(dist["seconds"], 1),
             "fit s": d["leaderboard"][0]["fit_time_s"], "test roc_auc": round(d["test_metrics"]["roc_auc"], 4),
             "largest process MB": round(dist["peak_mb"]), "all processes MB": round(dist["peak_sum_mb"])},
            {"training": "single process (LightGBM, 2 threads)", "train rows": sg["train_rows"],
             "test rows": sg["test_rows"], "wall s": round(single["seconds"], 1), "fit s": sg["fit_s"],
             "test roc_auc": round(sg["roc_auc"], 4), "largest process MB": round(single["peak_mb"]),
             "all processes MB": round(single["peak_sum_mb"])}]
    print("\n" + pd.DataFrame(rows).to_string(index=False))
    print(f"\ndistributed / single: wall {rows[0]['wall s'] / rows[1]['wall s']:.2f}, fit {rows[0]['fit s'] / rows[1]['fit s']:.2f}"
          f", largest process {rows[0]['largest process MB'] / rows[1]['largest process MB']:.2f}; "
          f"test roc_auc {rows[0]['test roc_auc'] - rows[1]['test roc_auc']:+.4f}")


def _run(cmd: list[str], env: dict) -> None:
    subprocess.run(cmd, env=env, cwd=ROOT, check=True)


def _measure(cmd: list[str], env: dict, output: bool = False) -> dict:
    """Run ``cmd``; poll the resident memory of it and all its descendants; peaks per process and of the sum."""
    import tempfile

    t0 = time.time()
    out = tempfile.TemporaryFile("w+") if output else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out)
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
    text = ""
    if output:
        out.seek(0)
        text = out.read()
    return {"seconds": time.time() - t0, "peak_mb": peak / 1e6, "peak_sum_mb": peak_sum / 1e6, "processes": len(seen),
            "output": text}


_GENERATE = """
from pathlib import Path
from workbench.data import load
parts = Path({parts!r}); parts.mkdir(parents=True, exist_ok=True)
for k in range(({rows} + {part} - 1) // {part}):
    df = load("demo", n_rows={part}, seed=1000 + k)
    df = df if {keep_target} else df.drop(columns=["churn"])
    df = df.astype({{c: "string" for c in df.columns if df[c].dtype == object}})
    df.to_parquet(parts / f"part-{{k:04d}}.parquet", index=False)
(parts / "_done").write_text("ok")
"""
_TRAIN = """
from workbench.data import load
from workbench import train
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
_SINGLE = """
import json, time
from pathlib import Path
import lightgbm as lgb
import pandas as pd
from workbench.data import clean
from workbench.models.distributed import held_out
from workbench.models.trained import TrainedModel
from workbench.models.train import evaluate
t0 = time.time()
files = sorted(Path({parts!r}).glob("*.parquet"))
test_idx = held_out(len(files), 0.2)
df = pd.concat([pd.read_parquet(f) for i, f in enumerate(files) if i not in test_idx], ignore_index=True)
c = clean(df, "churn")
del df
t1 = time.time()
est = lgb.LGBMClassifier(n_estimators=100, n_jobs=2, random_state=0, verbose=-1).fit(
    c.X, pd.Categorical(c.y, categories=c.cleaner.target_["classes"]).codes)
fit_s = time.time() - t1
model = TrainedModel(c.cleaner, est, c.task, c.cleaner.target_["classes"], "lightgbm")
test = pd.concat([pd.read_parquet(files[i]) for i in test_idx], ignore_index=True)
m = evaluate(model, test, "churn")
print(json.dumps({{"train_rows": len(c.X), "test_rows": len(test), "fit_s": round(fit_s, 2), "roc_auc": m["roc_auc"]}}))
"""

if __name__ == "__main__":
    main()
