"""The drift-and-quality report: one self-contained HTML file under reports/monitor/, for people and for schedules."""
from __future__ import annotations

import html
import re
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from workbench.monitor.quality import status
from workbench.monitor.store import MonitorError, PredictionLog
from workbench.settings import Settings, get_settings

_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mhd])\s*$")


def parse_since(since: str | float | None, now: float | None = None) -> float | None:
    """``"30m"``, ``"6h"``, ``"7d"``, an ISO date or time (UTC unless it says), or epoch seconds → epoch seconds."""
    if since is None or since == "":
        return None
    if isinstance(since, (int, float)):
        return float(since)
    now = time.time() if now is None else now
    m = _SPAN.match(since)
    if m:
        return now - float(m.group(1)) * {"m": 60, "h": 3600, "d": 86400}[m.group(2)]
    try:
        ts = pd.Timestamp(since)
    except ValueError:
        raise MonitorError(f"--since {since!r} is not a time: give 30m, 6h, 7d or a date like 2026-11-23T08:00") from None
    return (ts.tz_localize("UTC") if ts.tzinfo is None else ts).timestamp()


def write_report(model: str, *, since: str | float | None = None, out: str | Path | None = None,
                 log: PredictionLog | None = None, settings: Settings | None = None, segment: str | None = None) -> Path:
    """Compute the model's status (alerts are recorded; quality by the ``segment`` column) and write it with its
    charts as one HTML file; returns it."""
    s = settings or get_settings()
    st = status(model, log=log, since=parse_since(since), settings=s, segment=segment)
    now = datetime.now(timezone.utc)
    out = Path(out) if out else s.reports / "monitor" / f"{model}-{now:%Y%m%d-%H%M%S}.html"
    figs = st.figures()
    charts = "".join(f.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, f in enumerate(figs.values()))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(model)}: monitoring report</title>"
            "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse}"
            "td,th{padding:4px 8px;border-bottom:1px solid #e2e8f0;text-align:right}</style></head><body>"
            f"<h1>How {html.escape(model)} is doing</h1><p>Written {now:%Y-%m-%d %H:%M} UTC.</p>"
            f"{st._repr_html_()}{charts}</body></html>")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(page)
    tmp.replace(out)  # a scheduled run never leaves half a report behind
    return out
