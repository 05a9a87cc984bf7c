"""How fast the command line answers: `workbench --help` and each subcommand's `--help` (median of --repeats fresh
processes each), and how soon `workbench serve --package P` serves once its model is loaded.

The service's start is split where `workbench serve` prints "loaded SOURCE: ..." (its imports and the model's load
are done, checked before uvicorn starts): from there to the first 200 on /readyz is the start "after its model is
loaded". The machine is shared: medians, not single runs.

    .venv/bin/python benchmarks/cli_start.py [--repeats 5] [--package PKG]   (without --package: trains a small one)
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from workbench.child import Service

TARGET_HELP_S, TARGET_SERVE_S = 0.5, 2.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--package", help="a package folder to serve (default: a LightGBM model of the demo, trained now)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = {" ".join(["workbench", *cmd, "--help"]): help_seconds(cmd, args.repeats) for cmd in commands()}
    with tempfile.TemporaryDirectory() as tmp:
        package = args.package or small_package(Path(tmp))
        serve = serve_seconds(package, args.repeats, Path(tmp))
    if args.json:
        print(json.dumps({"help_s": rows, "serve": serve}))
        return
    for name, s in rows.items():
        print(f"{s:6.3f} s  {name}{'' if s <= TARGET_HELP_S else '   over ' + str(TARGET_HELP_S) + ' s'}")
    print(f"\nworst --help: {max(rows.values()):.3f} s (target {TARGET_HELP_S} s, median of {args.repeats})")
    print(f"serve: model loaded {serve['loaded_s']:.2f} s after the process started, serving at "
          f"{serve['ready_s']:.2f} s: {serve['after_load_s']:.2f} s after the load (target {TARGET_SERVE_S} s, "
          f"median of {args.repeats})")


def commands() -> list[list[str]]:
    """Every command and sub-action of the parser, as argument lists."""
    from workbench.cli import _parser

    found = [[]]

    def walk(parser, prefix):
        for action in parser._actions:
            if action.__class__.__name__ == "_SubParsersAction":
                for name, sub in action.choices.items():
                    found.append(prefix + [name])
                    walk(sub, prefix + [name])

    walk(_parser(), [])
    return found


def help_seconds(cmd: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "workbench.cli", *cmd, "--help"], check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def serve_seconds(package: str, repeats: int, tmp: Path) -> dict:
    """Medians: process start → "loaded" printed (imports and the model's load) → /readyz answers 200."""
    loaded, ready = [], []
    for k in range(repeats):
        log = tmp / f"serve-{k}.log"
        service = Service("--package", package, "--no-log", log=log)
        t = time.perf_counter()
        service.start()
        seen = _first_line(log, "loaded ")
        service.wait_ready(120)
        ready.append(time.perf_counter() - t)
        loaded.append(seen.result() - t)
        service.stop()
    r, m = statistics.median(ready), statistics.median(loaded)
    return {"ready_s": r, "loaded_s": m, "after_load_s": statistics.median(a - b for a, b in zip(ready, loaded))}


def _first_line(path: Path, start: str):
    """A future of the moment a line starting with ``start`` appears in ``path`` (polled every 10 ms)."""
    from concurrent.futures import ThreadPoolExecutor

    def watch():
        while not (path.exists() and any(line.startswith(start) for line in path.read_text().splitlines())):
            time.sleep(0.01)
        return time.perf_counter()

    return ThreadPoolExecutor(1).submit(watch)


def small_package(tmp: Path) -> str:
    out = tmp / "package"
    subprocess.run([sys.executable, "-m", "workbench.cli", "train", "--data", "demo", "--target", "churn", "--models",
                    "lightgbm", "--folds", "3", "--out", str(out)], check=True, capture_output=True, cwd=tmp)
    return str(out)


if __name__ == "__main__":
    main()
