"""`workbench auto --time-budget B --out DIR` on the user's clock: the whole command, start to exit, against the
floor 1.1 × B + 3 s, on tables of ../shared/datasets, beside a busy neighbour (a process spinning on one core).

Each run is a fresh process in a fresh folder (so a fresh MLflow store), split as benchmarks/accuracy.py splits.
Timings on a shared machine are noisy: run it more than once and read the medians.

    .venv/bin/python benchmarks/budget.py [--budgets 30,60] [--only titanic,diamonds] [--no-neighbour]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from accuracy import DATASETS, REPORTED, _split


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budgets", default="30,60")
    ap.add_argument("--only", default="")
    ap.add_argument("--no-neighbour", action="store_true")
    args = ap.parse_args()
    manifest = json.loads((DATASETS / "manifest.json").read_text())
    neighbour = None if args.no_neighbour else multiprocessing.Process(target=_spin, daemon=True)
    if neighbour:
        neighbour.start()
    rows = []
    try:
        for budget in map(float, args.budgets.split(",")):
            for name, info in manifest.items():
                if args.only and name not in args.only.split(","):
                    continue
                rows.append(_run(name, info, budget))
                print(pd.DataFrame(rows[-1:]).to_string(index=False), flush=True)
    finally:
        if neighbour:
            neighbour.terminate()
    frame = pd.DataFrame(rows)
    print("\nsummary\n" + frame.to_string(index=False))
    print(f"\nwithin the floor on {int(frame['within'].sum())} of {len(frame)} runs; median wall / budget "
          f"{(frame['wall_s'] / frame['budget']).median():.2f}")


def _run(name: str, info: dict, budget: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="budget-") as tmp:
        tmp = Path(tmp)
        train, test = _split(info)
        train.to_csv(tmp / "train.csv", index=False)
        test.to_csv(tmp / "test.csv", index=False)
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "workbench.cli", "auto", "--data", tmp / "train.csv", "--test",
                            tmp / "test.csv", "--target", info["target"], "--time-budget", str(budget), "--out",
                            tmp / "pkg", "--json"], capture_output=True, text=True, cwd=tmp)
        wall = time.perf_counter() - t0
        out = json.loads(p.stdout) if p.returncode == 0 else {}
        size = sum(f.stat().st_size for f in (tmp / "pkg").rglob("*") if f.is_file()) if (tmp / "pkg").exists() else 0
    metric = REPORTED[info["task"]]
    return {"table": name, "budget": budget, "wall_s": round(wall, 1), "floor_s": 1.1 * budget + 3,
            "within": wall <= 1.1 * budget + 3, "auto_s": out.get("seconds"), "stages": out.get("stages"),
            metric: (out.get("test_metrics") or {}).get(metric), "best": out.get("best_model"),
            "package_mb": round(size / 1e6, 1), "error": p.stderr.strip().splitlines()[-1] if p.returncode else ""}


def _spin() -> None:
    while True:
        sum(i * i for i in range(10_000))


if __name__ == "__main__":
    main()
