"""The compression panel and the decomposition panel: try methods on a package, see what each variant costs;
split a package into parts and see the equality check."""
from __future__ import annotations

import html
from pathlib import Path

import ipywidgets as W

from workbench.errors import WorkbenchError


def _error(exc: Exception) -> str:
    return f"<span style='color:#b91c1c'>{html.escape(str(exc))}</span>"


class CompressionPanel(W.VBox):
    """A package and labelled validation rows in; pick methods and the allowed loss; ``compress`` measures every
    variant, shows the table and the size–metric chart, and ``save`` packages the chosen one. ``result`` is the
    CompressionReport."""

    def __init__(self, package: str = "", valid: str = "", train: str = ""):
        from workbench.compress import METHODS

        self.result = None
        self.package = W.Text(value=str(package), description="Package", placeholder="folder or .tar.gz")
        self.valid = W.Text(value=str(valid), description="Validation", placeholder="labelled rows the model never saw")
        self.train = W.Text(value=str(train), description="Training", placeholder="optional: for distill / feature pruning")
        self.methods = W.SelectMultiple(options=list(METHODS), value=tuple(METHODS), description="Methods")
        self.loss = W.FloatText(value=0.002, description="Max loss", step=0.001)
        self.run_button = W.Button(description="Compress", button_style="primary", icon="compress")
        self.out = W.Text(description="Save to", placeholder="a folder for the chosen variant's package")
        self.save_button = W.Button(description="Save chosen", icon="save", disabled=True)
        self.status = W.HTML()
        self.table = W.HTML()
        self.chart = W.Output()
        self.run_button.on_click(lambda _: self.compress())
        self.save_button.on_click(lambda _: self.save())
        super().__init__([self.package, self.valid, self.train, W.HBox([self.methods, W.VBox([self.loss, self.run_button])]),
                          self.status, self.table, self.chart, W.HBox([self.out, self.save_button])])

    def compress(self) -> None:
        from workbench.compress import compress
        from workbench.data import load
        from workbench.registry.package import load_package

        self.status.value = "measuring every variant…"
        try:
            self._source = load_package(self.package.value.strip())
            train = load(self.train.value.strip()) if self.train.value.strip() else None
            self.result = compress(self._source.model, load(self.valid.value.strip()), train=train,
                                   methods=list(self.methods.value), max_metric_loss=self.loss.value)
        except (WorkbenchError, OSError, ValueError) as exc:
            self.status.value = _error(exc)
            return
        self.status.value = f"<b>{html.escape(self.result.verdict)}</b>" + "".join(
            f"<br>skipped {html.escape(k)}: {html.escape(v)}" for k, v in self.result.skipped.items())
        self.table.value = self.result.to_frame().to_html(float_format=lambda v: f"{v:.4g}")
        self.chart.clear_output()
        with self.chart:
            self.result.figure().show()
        self.save_button.disabled = self.result.chosen is None

    def save(self) -> None:
        from workbench.compress import save_variant

        try:
            path = save_variant(self.result, self._source, Path(self.out.value.strip()))
        except (WorkbenchError, OSError) as exc:
            self.status.value = _error(exc)
            return
        self.status.value = f"{html.escape(self.result.chosen.name)} packaged in <code>{html.escape(str(path))}</code>"


class DecompositionPanel(W.VBox):
    """A package in; how many parts and by what; ``decompose`` writes the decomposed package and shows its parts and
    the largest difference from the whole model on the reference rows. ``result`` is (folder, difference)."""

    def __init__(self, package: str = "", out: str = ""):
        self.result = None
        self.package = W.Text(value=str(package), description="Package")
        self.parts = W.BoundedIntText(value=2, min=2, max=10_000, description="Parts")
        self.by = W.Dropdown(options=[("what the model is", None), ("trees", "trees"), ("members", "members"),
                                      ("levels", "levels")], description="By")
        self.optional = W.Checkbox(value=False, description="members may be missing")
        self.out = W.Text(value=str(out), description="Save to")
        self.run_button = W.Button(description="Decompose", button_style="primary", icon="sitemap")
        self.status = W.HTML()
        self.table = W.HTML()
        self.run_button.on_click(lambda _: self.decompose())
        super().__init__([self.package, W.HBox([self.parts, self.by, self.optional]), W.HBox([self.out, self.run_button]),
                          self.status, self.table])

    def decompose(self) -> None:
        import pandas as pd

        from workbench.decompose.core import decompose_package
        from workbench.registry.package import load_package

        try:
            source = load_package(self.package.value.strip())
            folder, diff = decompose_package(source, Path(self.out.value.strip()), self.parts.value, self.by.value,
                                             optional_members=self.optional.value)
            parts = load_package(folder).model.estimator.parts
        except (WorkbenchError, OSError) as exc:
            self.status.value = _error(exc)
            return
        self.result = (folder, diff)
        ok = "equal" if diff <= 1e-9 else "DIFFERENT"
        self.status.value = (f"{len(parts)} parts in <code>{html.escape(str(folder))}</code>; answers {ok} to the whole "
                             f"model's on the reference rows (largest difference {diff:.1e})")
        self.table.value = pd.DataFrame([{"part": p.name, "required": p.required, "weight": p.weight,
                                          "kind": type(p.estimator).__name__} for p in parts]).to_html(index=False)
