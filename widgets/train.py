"""The training panel: choose models, metric, folds and budget; a leaderboard that fills in live."""
from __future__ import annotations

import ipywidgets as W

from workbench.errors import WorkbenchError
from workbench.models import models_for
from workbench.models.metrics import DEFAULT_METRIC, TASK_METRICS
from workbench.models.train import Prepared, TrainResult, fit
from workbench.registry.tracking import log_training


class TrainPanel(W.VBox):
    """``source`` is a DataPanel (or its Prepared result). ``result`` is the TrainResult."""

    def __init__(self, source, time_budget: int = 120, folds: int = 5):
        self.source = source
        self.result: TrainResult | None = None
        self.models = W.SelectMultiple(description="Models", rows=9)
        self.metric = W.Dropdown(description="Metric")
        self.folds = W.IntSlider(value=folds, min=2, max=10, description="Folds")
        self.budget = W.IntSlider(value=time_budget, min=10, max=1800, step=10, description="Budget (s)")
        self.button = W.Button(description="Train", button_style="primary", icon="play")
        self.progress = W.IntProgress(value=0, min=0, max=1, description="Models")
        self.board = W.HTML()
        self.status = W.HTML()
        self.button.on_click(lambda _: self.train())
        self._task = None
        super().__init__([W.HBox([self.models, W.VBox([self.metric, self.folds, self.budget, self.button])]),
                          self.progress, self.status, self.board])
        self.refresh()

    @property
    def prepared(self) -> Prepared | None:
        return self.source if isinstance(self.source, Prepared) else getattr(self.source, "result", None)

    def refresh(self) -> None:
        """Offer the models and metrics of the prepared data's task."""
        task = self.prepared.cleaned.task if self.prepared else "binary"
        if task != self._task:
            self._task = task
            self.models.options = models_for(task)
            self.models.value = tuple(models_for(task, len(self.prepared.cleaned.X)) if self.prepared else models_for(task))
            self.metric.options, self.metric.value = TASK_METRICS[task], DEFAULT_METRIC[task]

    def train(self) -> None:
        self.refresh()
        if self.prepared is None:
            self.status.value = "<span style='color:#b91c1c'>⚠ Clean a table in the data panel first.</span>"
            return
        self.progress.max, self.progress.value = len(self.models.value), 0
        self.button.disabled = True
        self.status.value = "Training…"

        def on_result(candidate, board):
            self.progress.value += 1
            self.board.value = board._repr_html_()

        try:
            self.result = fit(self.prepared, models=list(self.models.value), metric=self.metric.value,
                              folds=self.folds.value, time_budget=self.budget.value, on_result=on_result, progress=False)
            # kept in MLflow as `workbench train` keeps its runs (unlogged, the board said "MLflow run None")
            self.result.run_id, self.result.artifact_uri = log_training(self.result)
            self.board.value = self.result._repr_html_()
            self.status.value = f"Best: <b>{self.result.best.name}</b> in {self.result.seconds:.0f} s."
        except WorkbenchError as exc:
            self.status.value = f"<span style='color:#b91c1c'>⚠ {exc}</span>"
        finally:
            self.button.disabled = False
