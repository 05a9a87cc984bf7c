"""How long a business user waits for the first chart of each dashboard.

Headless Chromium opens the page in a fresh browser context (no cache) while the server is already running and idle;
the clock runs from the request to the first plotly chart drawn with data. Median of ``--repeats`` rounds; a round
loads, in turn, a trivial Voila notebook with one small chart (Voila's own floor on this machine, with its defaults),
the results dashboard and the monitoring dashboard. The machine is shared, so the ratio to the trivial notebook within
a round is the number to compare across runs.

    .venv/bin/python benchmarks/dashboards.py --home /path/with/.workbench/and/reports [--repeats 3] [--report-run DIR]

``--home`` is a folder holding ``.workbench`` and ``reports`` from ``workbench run --data demo --target churn`` (which
also leaves the model ``churn`` in the prediction log); without it the demo pipeline is run first in a temporary folder.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from workbench.child import free_port, wait_listening
from workbench.errors import WorkbenchError

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic"]
FIRST_CHART = "[...document.querySelectorAll('.js-plotly-plot')].some(e => e.data && e.data.length)"
TRIVIAL = {"cells": [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "id": "a1",
                      "source": "import plotly.graph_objects as go\ngo.Figure(go.Bar(x=['a', 'b'], y=[1, 2]))"}],
           "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
           "nbformat": 4, "nbformat_minor": 5}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", help="a folder with .workbench and reports of a demo run (default: run one)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--report-run", help="also time the trust report of this run folder (e.g. a run on adult)")
    args = ap.parse_args()
    if args.report_run:
        _report(Path(args.report_run), args.repeats)
    home = Path(args.home) if args.home else _demo_home()
    env = os.environ | {"WORKBENCH_HOME": str(home / ".workbench"), "WORKBENCH_REPORTS": str(home / "reports")}
    trivial = Path(tempfile.mkdtemp(prefix="voila-trivial-")) / "trivial.ipynb"
    trivial.write_text(json.dumps(TRIVIAL))
    pages = {
        "trivial Voila notebook": [sys.executable, "-m", "voila", str(trivial), "--no-browser", "--Voila.ip=127.0.0.1"],
        "results dashboard": [sys.executable, "-m", "workbench.cli", "dashboard"],
        "monitoring dashboard": [sys.executable, "-m", "workbench.cli", "monitor", "dashboard", "--model", "churn"],
    }
    from playwright.sync_api import sync_playwright

    servers = {name: _Server(cmd, env) for name, cmd in pages.items()}  # all up at once, then loaded in turns
    times = {name: [] for name in pages}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            for _ in range(args.repeats):  # a round loads each page once: the machine's load hits all alike
                for name, server in servers.items():
                    times[name].append(server.first_chart(browser))
                    print(f"{name:24s} {times[name][-1]:5.1f} s", flush=True)
            browser.close()
    finally:
        for server in servers.values():
            server.stop()
    print()
    for name in pages:
        print(f"{name:24s} first chart: median {statistics.median(times[name]):5.1f} s "
              f"({', '.join(f'{t:.1f}' for t in times[name])})")
    for name in list(pages)[1:]:
        ratios = [t / f for t, f in zip(times[name], times["trivial Voila notebook"])]
        print(f"{name}: {statistics.median(ratios):.2f}× the trivial notebook (median of the rounds' ratios)")


class _Server:
    """A dashboard command on a free port, its output collected; ``first_chart`` times one cold page load."""

    def __init__(self, cmd: list[str], env: dict, cwd: Path = ROOT):
        self.port = free_port()
        self.proc = subprocess.Popen([*cmd, f"--port={self.port}"], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, cwd=cwd)
        self.said: list[str] = []
        threading.Thread(target=lambda: self.said.extend(iter(self.proc.stdout.readline, "")), daemon=True).start()
        try:
            wait_listening(self.port, 120, pid=self.proc.pid)
        except WorkbenchError as exc:
            sys.exit(f"{exc}: {''.join(self.said)[-3000:]}")

    def first_chart(self, browser) -> float:
        _wait_idle(self.said, self.proc.pid)
        context = browser.new_context(viewport={"width": 1280, "height": 1000})  # a cold cache every time
        page = context.new_page()
        t0 = time.perf_counter()
        page.goto(f"http://127.0.0.1:{self.port}/", wait_until="commit", timeout=180_000)
        page.wait_for_function(FIRST_CHART, timeout=180_000, polling=50)
        seconds = time.perf_counter() - t0
        context.close()
        return seconds

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def _report(run: Path, repeats: int) -> None:
    """The trust report's generation time (median, PDF included) and size: targets 20 s and 5 MB on adult."""
    from workbench.report import trust_report

    seconds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        paths = trust_report(run, pdf=True)
        seconds.append(time.perf_counter() - t0)
    print(f"trust report of {run.name}: median {statistics.median(seconds):.1f} s ({', '.join(f'{t:.1f}' for t in seconds)}); "
          f"HTML {paths['html'].stat().st_size / 1e6:.2f} MB, PDF {paths['pdf'].stat().st_size / 1e6:.2f} MB", flush=True)


def _wait_idle(said: list[str], pid: int, timeout: float = 300) -> None:
    """A preheating Voila has its kernel pool full again (it logs each fill); then a couple of idle seconds."""
    preheat = "preheat_kernel=True" in Path(f"/proc/{pid}/cmdline").read_text()  # the CLI has exec'd Voila by now
    deadline = time.time() + timeout
    while preheat and time.time() < deadline:
        filled = sum("is filled with" in line for line in said)
        if filled > sum("Using pre-heated kernel" in line for line in said):
            break
        time.sleep(0.2)
    time.sleep(2)


def _demo_home() -> Path:
    home = Path(tempfile.mkdtemp(prefix="dashboards-bench-"))
    env = os.environ | {"WORKBENCH_HOME": str(home / ".workbench"), "WORKBENCH_REPORTS": str(home / "reports")}
    print(f"running the demo pipeline in {home} (a few minutes) ...", flush=True)
    subprocess.run([sys.executable, "-m", "workbench.cli", "run", "--data", "demo", "--target", "churn"], env=env,
                   check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return home


if __name__ == "__main__":
    main()
