"""`workbench auto --time-budget B --out DIR` on the user's clock: the whole command, start to exit, against the
floor 1.1 × B + 3 s, on tables of ../shared/datasets, beside a busy neighbour (a process spinning on one core).

Each run is a fresh process in a fresh folder (so a fresh MLflow store), split as benchmarks/accuracy.py splits.
Besides the wall time: ``start_s``, the budget spent before auto began (imports), and ``after_s``, what the command
took after auto returned (``--register``, the output, the exit); ``stages`` are auto's own. ``--trees`` runs each table with each source tree
in turn (e.g. a copy of the code before a change, then this one), so that both see the same load.
Timings on a shared machine are noisy: run it more than once and read the medians.

    .venv/bin/python benchmarks/budget.py [--budgets 30,60] [--only titanic,diamonds] [--no-neighbour] [--register]
        [--trees /tmp/before,.]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
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
    ap.add_argument("--register", action="store_true", help="register the package too (auto --register)")
    ap.add_argument("--trees", default="", help="comma-separated source trees to run in turn (default: this one)")
    args = ap.parse_args()
    trees = [str(Path(t).resolve()) for t in args.trees.split(",") if t] or [""]
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
                for tree in trees:
                    rows.append(_run(name, info, budget, tree, args.register))
                    print(pd.DataFrame(rows[-1:]).to_string(index=False), flush=True)
    finally:
        if neighbour:
            neighbour.terminate()
    frame = pd.DataFrame(rows)
    print("\nsummary\n" + frame.to_string(index=False))
    for tree, runs in frame.groupby("tree", sort=False):
        print(f"\n{tree or 'this tree'}: within the floor on {int(runs['within'].sum())} of {len(runs)} runs; "
              f"median wall / budget {(runs['wall_s'] / runs['budget']).median():.2f}")


def _run(name: str, info: dict, budget: float, tree: str = "", register: bool = False) -> dict:
    with tempfile.TemporaryDirectory(prefix="budget-") as tmp:
        tmp = Path(tmp)
        train, test = _split(info)
        train.to_csv(tmp / "train.csv", index=False)
        test.to_csv(tmp / "test.csv", index=False)
        env = os.environ | ({"PYTHONPATH": tree} if tree else {})
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "workbench.cli", "auto", "--data", tmp / "train.csv", "--test",
                            tmp / "test.csv", "--target", info["target"], "--time-budget", str(budget), "--out",
                            tmp / "pkg", "--json", *(["--register", f"budget-{name}"] if register else [])],
                           capture_output=True, text=True, cwd=tmp, env=env)
        wall = time.perf_counter() - t0
        out = json.loads(p.stdout) if p.returncode == 0 else {}
        size = sum(f.stat().st_size for f in (tmp / "pkg").rglob("*") if f.is_file()) if (tmp / "pkg").exists() else 0
    metric = REPORTED[info["task"]]
    stages = out.get("stages") or {}
    outside = wall - out["seconds"] if out else None  # before auto began and after it returned
    start = stages.get("start")  # of those, the part before (a tree older than this benchmark does not say)
    return {"table": name, "tree": tree, "budget": budget, "wall_s": round(wall, 1), "floor_s": 1.1 * budget + 3,
            "within": wall <= 1.1 * budget + 3, "auto_s": out.get("seconds"), "start_s": start,
            "after_s": None if start is None or outside is None else round(outside - start, 1), "stages": stages,
            metric: (out.get("test_metrics") or {}).get(metric), "best": out.get("best_model"),
            "package_mb": round(size / 1e6, 1), "error": p.stderr.strip().splitlines()[-1] if p.returncode else ""}


def _spin() -> None:
    while True:
        sum(i * i for i in range(10_000))


if __name__ == "__main__":
    main()
