"""The live monitoring panel: how a served model is doing now, refreshed in place every few seconds (no reload)."""
from __future__ import annotations

import asyncio
import html
import time

import ipywidgets as W
import plotly.graph_objects as go

from widgets.results import chart
from workbench.viz.saved import bundle, plain

CHARTS = ("traffic", "latency", "quality", "segments", "feedback", "drift")


class MonitorPanel(W.VBox):
    """``MonitorPanel("churn", every=5)``: headline numbers, the alert list and six charts from
    ``workbench.monitor.status`` (``segment``: the input column quality is broken down by; None: the settings'
    choice); ``start()`` refreshes them every ``every`` seconds on the kernel's event loop (the figures are updated
    in place, so a Voila page changes without a reload). ``result`` is the last MonitorStatus."""

    def __init__(self, model: str, every: float = 5.0, since_hours: float = 24.0, segment: str | None = None):
        self.model, self.every, self.since_hours, self.segment = model, every, since_hours, segment or None
        self.result = None
        self.refreshes = 0
        self._log = None
        self.header = W.HTML()
        self.alerts = W.HTML()
        first = self._status()
        figures = first.figures() if not isinstance(first, Exception) else {}
        # each chart is an output box whose whole figure is replaced when its picture changed (a FigureWidget's
        # edits travel as deltas, and one lost while the page loaded left a chart stale for good in one CI run)
        self.figures = {k: figures.get(k) or go.Figure(layout={"height": 320}) for k in CHARTS}
        self._drawn = {k: plain(self.figures[k]) for k in CHARTS}
        self.boxes = {k: chart(self._drawn[k], width="50%") for k in CHARTS}
        self._task = None
        super().__init__([self.header, self.alerts,
                          W.HBox([self.boxes["traffic"], self.boxes["latency"]]),
                          W.HBox([self.boxes["quality"], self.boxes["segments"]]),
                          W.HBox([self.boxes["feedback"], self.boxes["drift"]])])
        self._show(first, figures=False)

    def refresh(self) -> None:
        self._show(self._status())

    def start(self):
        """Refresh every ``every`` seconds until the kernel stops (Voila: while the page is open)."""
        async def loop():
            while True:
                await asyncio.sleep(self.every)
                try:
                    self._show(await asyncio.get_running_loop().run_in_executor(None, self._status))
                except Exception as exc:  # noqa: BLE001 - the page must keep refreshing; it says what went wrong
                    self.header.value += f"<p style='color:#b91c1c'>could not refresh: {html.escape(str(exc))}</p>"
        self._task = asyncio.ensure_future(loop())
        return self

    def _status(self):
        from workbench.monitor import PredictionLog, status

        try:  # any failure is shown on the page, never a dead refresh loop
            if self._log is None:  # one log object: it keeps the batches it decoded, a refresh decodes only new ones
                self._log = PredictionLog(create=False)
            return status(self.model, log=self._log, since=time.time() - self.since_hours * 3600, segment=self.segment)
        except Exception as exc:  # noqa: BLE001
            return exc

    def _show(self, st, figures: bool = True) -> None:
        self.refreshes += 1
        stamp = time.strftime("%H:%M:%S", time.gmtime())
        if isinstance(st, Exception):
            self.header.value = (f"<h2>{html.escape(self.model)}</h2><p>{html.escape(str(st))}</p>"
                                 f"<p style='color:#64748b'>checked at {stamp}; this page updates itself</p>")
            return
        self.result = st
        w = st.windows.iloc[0]
        m = st.headline
        live, base = st.windows.iloc[1][m], st.validation_score
        quality = (f"{m.replace('_', ' ').capitalize()} on real outcomes (last hour): <b>{live:.3f}</b> (validation {base:.3f})"
                   if live == live else "no real outcomes fed back yet")
        estimate = st.windows.iloc[1].get(f"estimated_{m}", float("nan"))
        if estimate == estimate:  # NaN: a regression, or no rows in the last hour
            quality += f"; estimated from the model's confidence on every row: <b>{estimate:.3f}</b>"
        self.header.value = (
            f"<h2>{html.escape(st.model)} <small>version {html.escape(st.version)}</small></h2>"
            f"<p>Last 15 minutes: <b>{w['requests']:,}</b> requests, <b>{w['errors']:,}</b> failed"
            + (f", typical answer in <b>{w['latency_p50_ms']:.1f} ms</b>" if w["requests"] else "") + f". {quality}.</p>"
            f"<p style='color:#64748b'>updated at {stamp} UTC; this page updates itself every {self.every:g} s</p>")
        items = "".join(f"<li>{html.escape(a.message)}</li>" for a in st.alerts)
        self.alerts.value = (f"<div style='color:#b91c1c'><b>{len(st.alerts)} alert(s)</b><ul>{items}</ul></div>"
                             if st.alerts else "<div style='color:#16a34a'><b>No alerts</b></div>")
        for key, fig in st.figures().items() if figures else ():
            spec = plain(fig)
            if spec != self._drawn[key]:
                self.figures[key], self._drawn[key] = fig, spec
                self.boxes[key].outputs = (bundle(spec),)
