"""The registry panel: a model's versions and aliases, promote a version, compare two side by side."""
from __future__ import annotations

import html

import ipywidgets as W

from workbench.errors import WorkbenchError
from workbench.registry import repository


class RegistryPanel(W.VBox):
    """Pick a model to see its versions; promote one to an alias; compare two. ``result`` is the last comparison."""

    def __init__(self, name: str | None = None):
        names = repository.list_models()["name"].tolist()
        self.result = None
        self.model = W.Dropdown(options=names, value=name if name in names else (names[0] if names else None),
                                description="Model")
        self.versions = W.HTML()
        self.version = W.Dropdown(description="Version")
        self.alias = W.Combobox(options=list(repository.ALIASES), value="staging", description="Alias")
        self.promote_button = W.Button(description="Promote", button_style="primary", icon="arrow-up")
        self.other = W.Dropdown(description="against")
        self.compare_button = W.Button(description="Compare", icon="columns")
        self.status = W.HTML()
        self.comparison = W.HTML()
        self.model.observe(lambda ch: self.show(ch["new"]), names="value")
        self.promote_button.on_click(lambda _: self.promote())
        self.compare_button.on_click(lambda _: self.compare())
        super().__init__([self.model, self.versions, W.HBox([self.version, self.alias, self.promote_button]),
                          W.HBox([self.other, self.compare_button]), self.status, self.comparison])
        if self.model.value:
            self.show(self.model.value)
        else:
            self.status.value = "No registered models yet: <code>workbench auto ... --register NAME</code>."

    def show(self, name: str) -> None:
        table = repository.versions(name)
        shown = table[[c for c in ("version", "aliases", "archived", "validation", "model", "size_bytes", "who", "created")
                       + tuple(c for c in table if c.startswith("test_") or c.startswith("cv_"))[:4] if c in table]]
        self.versions.value = shown.to_html(index=False, float_format=lambda v: f"{v:.4f}")
        numbers = [str(v) for v in table["version"]]
        self.version.options, self.other.options = numbers, numbers
        if numbers:
            self.version.value = numbers[-1]
            self.other.value = numbers[-2] if len(numbers) > 1 else numbers[-1]

    def promote(self) -> None:
        try:
            repository.promote(self.model.value, self.version.value, self.alias.value.strip())
        except WorkbenchError as exc:
            self.status.value = f"<span style='color:#b91c1c'>{html.escape(str(exc))}</span>"
            return
        self.status.value = f"{html.escape(self.model.value)}@{html.escape(self.alias.value)} → version {self.version.value}"
        self.show(self.model.value)

    def compare(self) -> None:
        try:
            self.result = repository.compare(self.model.value, self.version.value, self.other.value)
        except WorkbenchError as exc:
            self.status.value = f"<span style='color:#b91c1c'>{html.escape(str(exc))}</span>"
            return
        self.comparison.value = self.result.to_html()
