"""The deploy panel: run a release and watch its steps, see what serves, roll back."""
from __future__ import annotations

import html

import ipywidgets as W

from workbench.deploy import STEPS, deploy, read_config, rollback, status
from workbench.errors import WorkbenchError

_MARK = {"ok": "✅", "failed": "❌", "running": "⏳"}


class DeployPanel(W.VBox):
    """A release of ``config`` (a deploy.yaml path or a dict) step by step; ``result`` is the last Release."""

    def __init__(self, config):
        self.config = read_config(config)
        self.result = None
        self.release_button = W.Button(description="Release", button_style="primary", icon="rocket")
        self.rollback_button = W.Button(description="Roll back", icon="undo")
        self.steps = W.HTML(self._table({}))
        self.status = W.HTML()
        self.release_button.on_click(lambda _: self.release())
        self.rollback_button.on_click(lambda _: self.roll_back())
        super().__init__([W.HTML(f"<b>Release of {html.escape(self.config.model)}</b>"),
                          W.HBox([self.release_button, self.rollback_button]), self.steps, self.status])
        self.show_status()

    def release(self) -> None:
        seen: dict = {}

        def on_step(step, info):
            seen[step] = dict(info)
            self.steps.value = self._table(seen)

        self.release_button.disabled = True
        try:
            self.result = deploy(self.config, on_step=on_step)
            why = self.result.steps["promote"]["details"].get("why", "")
            self.status.value = f"Release {self.result.id}: <b>{self.result.outcome}</b> {html.escape(why)}"
        except WorkbenchError as exc:
            self.status.value = f"<span style='color:#b91c1c'>{html.escape(str(exc))}</span>"
        finally:
            self.release_button.disabled = False
        self.show_status(keep_message=True)

    def roll_back(self) -> None:
        try:
            out = rollback(self.config.model, config=self.config.model_dump())
            self.status.value = f"Rolled back: champion is version {out['champion']} again"
        except WorkbenchError as exc:
            self.status.value = f"<span style='color:#b91c1c'>{html.escape(str(exc))}</span>"

    def show_status(self, keep_message: bool = False) -> None:
        info = status(self.config.model, config=self.config.model_dump())
        serving = info["serving"]
        line = (f"Serving version {serving['version']} on {serving['url']}" if serving and serving.get("alive")
                else "Nothing serving on the serving port.")
        self.status.value = (self.status.value + "<br>" if keep_message else "") + line

    @staticmethod
    def _table(seen: dict) -> str:
        rows = []
        for step in STEPS:
            info = seen.get(step, {})
            detail = info.get("details", {})
            detail = detail.get("error") or ", ".join(f"{k}: {v}" for k, v in list(detail.items())[:3])
            rows.append(f"<tr><td>{_MARK.get(info.get('status'), '·')}</td><td>{step}</td>"
                        f"<td>{info.get('seconds', '')}</td><td>{html.escape(str(detail))[:160]}</td></tr>")
        return "<table><tr><th></th><th>step</th><th>s</th><th>details</th></tr>" + "".join(rows) + "</table>"
