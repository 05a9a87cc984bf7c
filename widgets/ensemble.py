"""The ensemble panel: pick a method and members from a training panel's leaderboard; see the report."""
from __future__ import annotations

import ipywidgets as W
import plotly.graph_objects as go

from workbench.ensemble import METHODS, EnsembleResult, ensemble
from workbench.errors import WorkbenchError


class EnsemblePanel(W.VBox):
    """``source`` is a TrainPanel (or its TrainResult). ``result`` is the EnsembleResult; its candidate joins the leaderboard."""

    def __init__(self, source, method: str = "select"):
        self.source = source
        self.result: EnsembleResult | None = None
        self.method = W.Dropdown(options=METHODS.names(), value=method, description="Method")
        self.members = W.SelectMultiple(description="Members", rows=6)
        self.button = W.Button(description="Build ensemble", button_style="primary", icon="object-group")
        self.status = W.HTML()
        self.chart = W.VBox()
        self.button.on_click(lambda _: self.build())
        super().__init__([W.HBox([W.VBox([self.method, self.button]), self.members]), self.status, self.chart])
        self.refresh()

    @property
    def trained(self):
        return getattr(self.source, "result", self.source)

    def refresh(self) -> None:
        if self.trained is not None and hasattr(self.trained, "leaderboard"):
            ok = [c.name for c in self.trained.leaderboard.candidates if c.status == "ok"]
            self.members.options, self.members.value = ok, tuple(ok[:5])

    def build(self) -> None:
        self.refresh()
        t = self.trained
        if t is None:
            self.status.value = "<span style='color:#b91c1c'>⚠ Train models in the training panel first.</span>"
            return
        try:
            self.result = ensemble(self.method.value, t.leaderboard, t.cleaned.X, t.cleaned.y, members=list(self.members.value) or None)
        except WorkbenchError as exc:
            self.status.value = f"<span style='color:#b91c1c'>⚠ {exc}</span>"
            return
        t.leaderboard.add(self.result.candidate)
        self.status.value = self.result._repr_html_()
        self.chart.children = [go.FigureWidget(self.result.report.figure())]
