"""Where decomposition pays on this machine: a large model scored whole and in parts.

Models (trained on adult_train.csv): a LightGBM model of 2,000 trees (63 leaves), and a stacked ensemble of five
families (LightGBM, linear, random forest, extra trees, naive Bayes). Each is scored on 1 row and on 200,000 rows
(adult rows drawn with replacement):
  whole        one process loads the package and predicts;
  dask         the decomposed package, 2 parts on the 2 workers of an embedded LocalCluster, combined here;
  served       `workbench serve --package` (whole) against `workbench serve --decomposed` (front + 2 part servers),
               the 200,000 rows sent in batches of 10,000.
Every scenario runs in its own process; "peak MB" is the peak resident memory of the largest process involved
(workers and part servers included). The equality check compares every scenario's probabilities with the whole
model's (max difference).

    .venv/bin/python benchmarks/decomposition.py [--rows 200000] [--trees 2000]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--trees", type=int, default=2000)
    ap.add_argument("--scenario", help=argparse.SUPPRESS)
    ap.add_argument("--package", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.scenario:  # a child process: one scenario, its numbers as JSON on stdout
        print(json.dumps(SCENARIOS[args.scenario](Path(args.package), Path(args.data), Path(args.out))))
        return
    work = Path(tempfile.mkdtemp(prefix="decomposition-bench-"))
    os.environ["WORKBENCH_HOME"] = str(work / "home")
    rows = work / "rows.parquet"
    train = pd.read_csv(DATASETS / "adult_train.csv")
    pool = pd.concat([train, pd.read_csv(DATASETS / "adult_test.csv")]).drop(columns=["income"])
    pool.sample(args.rows, replace=True, random_state=0).reset_index(drop=True).to_parquet(rows)
    results = []
    for label, make in [(f"LightGBM {args.trees} trees", lambda: _lightgbm(train, args.trees)),
                        ("stack of 5 families", lambda: _stack(train))]:
        t0 = time.time()
        model, result = make()
        whole, parts = _packages(result, model, work / label.split()[0])
        print(f"\n## {label} (trained and packaged in {time.time() - t0:.0f} s; package {_mb(whole):.1f} MB, "
              f"parts {', '.join(f'{_mb(p):.1f}' for p in sorted(parts.iterdir()) if p.is_dir())} MB)", flush=True)
        reference = None
        for scenario, package in [("whole", whole), ("dask", parts), ("served_whole", whole), ("served_parts", parts)]:
            out = work / f"{label.split()[0]}-{scenario}.npy"
            r = _child(scenario, package, rows, out)
            pred = np.load(out)
            reference = pred if reference is None else reference
            r |= {"model": label, "scenario": scenario, "max_diff_vs_whole": float(np.abs(pred - reference).max())}
            results.append(r)
            print(pd.DataFrame([r]).to_string(index=False, float_format=lambda v: f"{v:.4g}"), flush=True)
    print("\n## summary")
    print(pd.DataFrame(results)[["model", "scenario", "one_row_ms", "rows_s", "peak_mb", "max_diff_vs_whole"]]
          .to_string(index=False, float_format=lambda v: f"{v:.4g}"))


def _lightgbm(train: pd.DataFrame, trees: int):
    from workbench.models.compare import encode_target
    from workbench.models.train import prepare
    from workbench.models.trained import TrainedModel
    from workbench.models.zoo import get_model

    p = prepare(train, "income")
    codes, classes = encode_target(p.cleaned.y, "binary")
    est = get_model("lightgbm").make("binary", {"n_estimators": trees, "num_leaves": 63}, n_jobs=2).fit(p.cleaned.X, codes)
    return TrainedModel(p.cleaned.cleaner, est, "binary", classes, f"lightgbm {trees} trees"), p


def _stack(train: pd.DataFrame):
    from workbench.ensemble import ensemble
    from workbench import train as fit
    from workbench.models.trained import TrainedModel

    r = fit(train, "income", models=["lightgbm", "linear", "random_forest", "extra_trees", "naive_bayes"], folds=3,
            log=False, progress=False, time_budget=900)
    c = r.cleaned
    e = ensemble("stack", r.leaderboard, c.X, c.y, top=5)
    r.model = TrainedModel(c.cleaner, e.candidate.estimator, c.task, r.leaderboard.classes, "stack")
    return r.model, r


def _packages(result, model, folder: Path):
    from workbench.decompose.core import decompose_package
    from workbench.registry.package import build_package, load_package

    whole = build_package(model, folder / "whole", schema=result.schema, reference=result.reference, name="income")
    n = len(model.estimator.estimators_) if hasattr(model.estimator, "meta_") else 2
    parts, diff = decompose_package(load_package(whole), folder / "parts", n)
    return whole, parts


def _child(scenario: str, package: Path, rows: Path, out: Path) -> dict:
    p = subprocess.run([sys.executable, __file__, "--scenario", scenario, "--package", str(package), "--data", str(rows),
                        "--out", str(out)], capture_output=True, text=True, cwd=ROOT, env=os.environ | {"PYTHONPATH": str(ROOT)})
    if p.returncode != 0:
        raise RuntimeError(f"{scenario} failed: {p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _median_ms(fn, n: int = 30) -> float:
    fn()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e3)


def _whole(package: Path, data: Path, out: Path) -> dict:
    from workbench.registry.package import load_package

    model = load_package(package).model
    X = pd.read_parquet(data)
    one = _median_ms(lambda: model.predict_proba(X.iloc[:1]))
    t = time.perf_counter()
    p = model.predict_proba(X)
    seconds = time.perf_counter() - t
    np.save(out, p)
    return {"one_row_ms": one, "rows_s": len(X) / seconds, "seconds": seconds, "peak_mb": _peak_mb()}


def _dask(package: Path, data: Path, out: Path) -> dict:
    from workbench import compute
    from workbench.decompose import predict_parallel

    X = pd.read_parquet(data)
    client = compute.client()
    one = _median_ms(lambda: predict_parallel(package, X.iloc[:1]), n=10)
    t = time.perf_counter()
    p = predict_parallel(package, X)
    seconds = time.perf_counter() - t
    np.save(out, p)
    workers = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"one_row_ms": one, "rows_s": len(X) / seconds, "seconds": seconds,
            "peak_mb": max([_peak_mb(), *workers.values()]), "client_mb": _peak_mb(), "worker_mb": max(workers.values())}


def _served(package: Path, data: Path, out: Path, decomposed: bool) -> dict:
    import httpx

    from workbench.decompose.serving import free_port

    port = free_port()
    flag = ["--decomposed", str(package)] if decomposed else ["--package", str(package)]
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", *flag, "--port", str(port), "--max-body-mb", "64",
                             "--timeout", "300", "--part-timeout", "300"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        end = time.time() + 180
        while time.time() < end:
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        X = pd.read_parquet(data)
        records = json.loads(X.to_json(orient="records"))
        with httpx.Client(timeout=600) as c:
            one = _median_ms(lambda: c.post(f"{url}/v1/models/income/predict", json=records[:1]).raise_for_status())
            t = time.perf_counter()
            probs = []
            for i in range(0, len(records), 10_000):
                body = c.post(f"{url}/v1/models/income/predict", json=records[i:i + 10_000]).raise_for_status().json()
                probs += [list(p["probabilities"].values()) for p in body["predictions"]]
            seconds = time.perf_counter() - t
        np.save(out, np.array(probs))
        pids = [proc.pid]
        if decomposed:
            parts = next(iter(httpx.get(url + "/readyz").json()["parts"].values()))
            pids += [httpx.get(p["url"] + "/healthz").json()["pid"] for p in parts.values()]
        peaks = {pid: _vmhwm(pid) for pid in pids}
        return {"one_row_ms": one, "rows_s": len(X) / seconds, "seconds": seconds, "peak_mb": max(peaks.values()),
                "front_mb": peaks[proc.pid]}
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def _vmhwm(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


SCENARIOS = {"whole": _whole, "dask": _dask, "served_whole": lambda p, d, o: _served(p, d, o, False),
             "served_parts": lambda p, d, o: _served(p, d, o, True)}

if __name__ == "__main__":
    main()
