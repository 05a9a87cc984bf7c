"""The Voila dashboard, served for real and looked at in a real headless Chromium."""
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import need

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[1] / "reports"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="module")
def dashboard(pipeline_run):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "dashboard", "--run-id", pipeline_run["run_id"],
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(120):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"the dashboard exited: {proc.stdout.read()}")
            time.sleep(0.5)
    yield url
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def browser():
    need(Path(CHROMIUM).exists(), "chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


CHART_TITLES = "els => els.map(e => (e.layout && e.layout.title && e.layout.title.text) || '')"


def test_dashboard_shows_charts_with_data_and_switches_model(dashboard, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(dashboard, timeout=120_000)
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 5 && "
                           "[...document.querySelectorAll('.js-plotly-plot')].every(e => e.data && e.data.length)",
                           timeout=120_000)
    assert page.locator(".jp-InputArea, .jp-Cell-inputWrapper").count() == 0  # no code
    assert page.locator("[data-mime-type='application/vnd.jupyter.stderr'], .jp-OutputArea-error").count() == 0
    assert "There was an error" not in page.inner_text("body")
    before = page.eval_on_selector_all(".js-plotly-plot", CHART_TITLES)
    points = page.eval_on_selector_all(".js-plotly-plot", "els => els.map(e => e.data.reduce((n, t) => n + ((t.x && t.x.length) || (t.z && t.z.length) || 0), 0))")
    assert min(points) > 0

    model_select = page.locator("select").nth(1)
    current = model_select.input_value()
    other = next(o for o in model_select.locator("option").all_inner_texts() if o != current)
    model_select.select_option(other)
    page.wait_for_function(f"[...document.querySelectorAll('.js-plotly-plot')].some(e => e.layout && e.layout.title && "
                           f"e.layout.title.text.includes('{other}'))", timeout=120_000)
    after = page.eval_on_selector_all(".js-plotly-plot", CHART_TITLES)
    assert before != after
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=True)
    assert not errors, errors
