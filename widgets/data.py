"""The data panel: load a table, profile it, clean it, preview each change."""
from __future__ import annotations

import ipywidgets as W
from IPython.display import HTML, display

from workbench.data import load, preview_changes
from workbench.errors import WorkbenchError
from workbench.models.train import Prepared, prepare


class DataPanel(W.VBox):
    """Load → profile → clean. ``result`` is the Prepared data (profile, cleaned rows, schema)."""

    def __init__(self, data: str = "demo", target: str = "churn", test: str | None = None):
        self.result: Prepared | None = None
        self.raw = None
        self.test = test
        self.source = W.Text(value=str(data), description="Table", layout=W.Layout(width="480px"),
                             placeholder="a CSV/Parquet/Excel path, sklearn:<name> or demo")
        self.target = W.Dropdown(options=[target], value=target, description="Target")
        self.load_button = W.Button(description="Load & profile", button_style="primary", icon="table")
        self.clean_button = W.Button(description="Clean", icon="magic", disabled=True)
        self.status = W.HTML()
        self.profile_out, self.clean_out = W.Output(), W.Output()
        self.tabs = W.Tab(children=[self.profile_out, self.clean_out], titles=("Profile", "Cleaning"))
        self.load_button.on_click(lambda _: self.load())
        self.clean_button.on_click(lambda _: self.clean())
        super().__init__([W.HBox([self.source, self.load_button]), W.HBox([self.target, self.clean_button]),
                          self.status, self.tabs])

    def load(self) -> None:
        from workbench.data import profile

        try:
            self.raw = load(self.source.value)
            target = self.target.value if self.target.value in self.raw.columns else self.raw.columns[-1]
            self.target.options, self.target.value = list(self.raw.columns), target
            prof = profile(self.raw, target)
        except WorkbenchError as exc:
            return self._error(exc)
        self.profile_out.clear_output()
        with self.profile_out:
            display(prof)
        self.clean_button.disabled = False
        self.tabs.selected_index = 0
        self.status.value = f"Loaded <b>{len(self.raw)}</b> rows × <b>{self.raw.shape[1]}</b> columns."

    def clean(self) -> None:
        try:
            self.result = prepare(self.raw, self.target.value, test=self.test)
        except WorkbenchError as exc:
            return self._error(exc)
        self.clean_out.clear_output()
        with self.clean_out:
            display(self.result.cleaned.report)
            display(HTML("<p><b>Examples of changed values</b></p>"))
            display(preview_changes(self.raw, self.result.cleaned.cleaner))
        self.tabs.selected_index = 1
        self.status.value = f"Cleaned: <b>{len(self.result.cleaned.X)}</b> rows, <b>{self.result.cleaned.X.shape[1]}</b> features, task <b>{self.result.cleaned.task}</b>."

    def _error(self, exc: Exception) -> None:
        self.status.value = f"<span style='color:#b91c1c'>⚠ {exc}</span>"
