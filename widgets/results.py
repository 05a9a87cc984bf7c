"""The results panel: a saved run's cleaning, leaderboard and charts, with a run and a model picker."""
from __future__ import annotations

import ipywidgets as W

from workbench import viz
from workbench.pipeline import RunResults, list_runs, load_results, run_folder
from workbench.settings import get_settings
from workbench.viz.figures import SECTIONS, section_of
from workbench.viz.saved import bundle, saved_figures


class ResultsPanel(W.VBox):
    """Reads what a run saved (no retraining). ``result`` is the RunResults on show."""

    def __init__(self, run_id: str | None = None):
        runs = list_runs()
        run_id = run_id or get_settings().dashboard_run or (runs[0] if runs else None)
        self.result: RunResults | None = None
        self.run = W.Dropdown(options=runs or [run_id], value=run_id, description="Run")
        self.model = W.Dropdown(description="Model")
        self.summary, self.cleaning = W.HTML(), W.HTML()
        self.figures: dict = {}  # the model on show's charts, by key; a tab draws its share when first opened
        self.charts = W.Tab(children=[W.VBox() for _ in SECTIONS], titles=SECTIONS)
        self.charts.observe(lambda ch: self._draw(ch["new"]), names="selected_index")
        self.run.observe(lambda ch: self.show_run(ch["new"]), names="value")
        self._switching = False
        self.model.observe(lambda ch: self._switching or self.show_model(ch["new"]), names="value")
        super().__init__([W.HBox([self.run, self.model]), self.summary,
                          W.Accordion(children=[self.cleaning], titles=("What cleaning changed",)), self.charts])
        if run_id:
            self.show_run(run_id)
        else:
            self.summary.value = "No runs yet: run <code>workbench run</code> first."

    def show_run(self, run_id: str) -> None:
        self.result = load_results(run_id)
        r = self.result
        test = ", ".join(f"{k} {v:.3f}" for k, v in list(r.meta["test_metrics"].items())[:4])
        self.summary.value = (f"<h3>Predicting <i>{r.meta['target']}</i> ({r.task})</h3>"
                              f"<p>Best model: <b>{r.meta['best_model']}</b>. On held-out test rows: {test}.</p>")
        self.cleaning.value = r.cleaning._repr_html_()
        self._switching = True  # one redraw for the new run, not one per option change
        self.model.options = r.models
        self.model.value = r.meta["best_model"] if r.meta["best_model"] in r.models else r.models[0]
        self._switching = False
        self.show_model(self.model.value)

    def show_model(self, model: str | None) -> None:
        if not model or self.result is None:
            return
        self.figures = saved_figures(run_folder(self.result.run_id), model) or viz.figures_for(self.result, model)
        for tab in self.charts.children:
            tab.children = ()
        self._draw(self.charts.selected_index or 0)

    def _draw(self, index: int | None) -> None:
        """Draw a tab's charts once it is opened: the page draws three charts on arrival, not ten (plotly draws each
        in the browser's one thread, and nothing shows before all the arrival's charts are drawn)."""
        tab = self.charts.children[index or 0]
        if not tab.children:
            tab.children = [chart(f) for key, f in self.figures.items()
                            if section_of(key, self.figures) == (index or 0)] or [
                W.HTML("<i>No charts of this kind for this model.</i>")]


def chart(figure, width: str | None = None) -> W.Output:
    """A chart drawn by the page's plotly renderer: its outputs are set, never captured with display() (which can hang
    under Voila and nbclient), and no FigureWidget ships its own 5 MB copy of plotly.js over the kernel's websocket."""
    out = W.Output(layout={"width": width} if width else {})
    out.outputs = (bundle(figure),)
    return out
