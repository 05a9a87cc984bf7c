"""The tuning panel: model, strategy and budget; the optimization history draws itself as trials finish."""
from __future__ import annotations

import ipywidgets as W
import plotly.graph_objects as go

from workbench.errors import WorkbenchError
from workbench.models import models_for
from workbench.models.train import Prepared
from workbench.tune import STRATEGIES, TuningResult, tune
from workbench.viz.tuning import history_line


class TuningPanel(W.VBox):
    """``source`` is a DataPanel (or its Prepared result). ``result`` is the TuningResult."""

    def __init__(self, source, model: str = "lightgbm", strategy: str = "tpe", max_trials: int = 30, time_budget: int = 120):
        self.source = source
        self.result: TuningResult | None = None
        self.model = W.Dropdown(options=models_for("binary"), value=model, description="Model")
        self.strategy = W.Dropdown(options=STRATEGIES.names(), value=strategy, description="Strategy")
        self.trials = W.IntSlider(value=max_trials, min=1, max=500, description="Trials")
        self.budget = W.IntSlider(value=time_budget, min=5, max=3600, step=5, description="Budget (s)")
        self.button = W.Button(description="Tune", button_style="primary", icon="sliders")
        self.status = W.HTML()
        self.chart = go.FigureWidget(history_line(_empty(), "roc_auc"))
        self.button.on_click(lambda _: self.tune())
        super().__init__([W.HBox([W.VBox([self.model, self.strategy]), W.VBox([self.trials, self.budget, self.button])]),
                          self.status, self.chart])

    @property
    def prepared(self) -> Prepared | None:
        return self.source if isinstance(self.source, Prepared) else getattr(self.source, "result", None)

    def tune(self) -> None:
        if self.prepared is None:
            self.status.value = "<span style='color:#b91c1c'>⚠ Clean a table in the data panel first.</span>"
            return
        c = self.prepared.cleaned
        self.button.disabled = True
        self.status.value = "Tuning…"

        def on_trial(row, history):
            fresh = history_line(history, metric)
            with self.chart.batch_update():
                for trace, new in zip(self.chart.data, fresh.data):
                    trace.x, trace.y = new.x, new.y
                self.chart.layout.yaxis.title.text = fresh.layout.yaxis.title.text
            self.status.value = f"Trial {row['trial'] + 1} of {self.trials.value}: {row['status']}"

        from workbench.models.metrics import DEFAULT_METRIC

        metric = DEFAULT_METRIC[c.task]
        try:
            self.result = tune(self.model.value, c.X, c.y, task=c.task, strategy=self.strategy.value,
                               max_trials=self.trials.value, time_budget=self.budget.value, on_trial=on_trial)
            self.status.value = self.result._repr_html_()
        except WorkbenchError as exc:
            self.status.value = f"<span style='color:#b91c1c'>⚠ {exc}</span>"
        finally:
            self.button.disabled = False


def _empty():
    import pandas as pd

    return pd.DataFrame({"trial": [], "score": [], "status": []})
