"""Figures of an explanation: what drives the predictions, and how the prediction moves with one column."""
from __future__ import annotations

import pandas as pd

from workbench.extras import extra
from workbench.viz.figures import _fig

with extra("notebook"):
    import plotly.graph_objects as go


def drivers_bar(importance: pd.DataFrame, scale: str, top: int = 15) -> go.Figure:
    """One bar per raw column, the largest first: the mean size of its contribution to a row's output."""
    f = importance.head(top).iloc[::-1]
    fig = _fig("What drives the predictions", f"Mean size of the column's push on the output ({scale})", "Column",
               height=max(300, 28 * len(f) + 120))
    fig.add_bar(x=f["importance"].tolist(), y=f["column"].astype(str).tolist(), orientation="h", marker_color="#2563eb")
    return fig


def dependence_lines(dependence: pd.DataFrame, column: str, output: str) -> go.Figure:
    """How the output moves when only ``column`` changes: each explained row (ICE, thin) and their mean (PDP)."""
    d = dependence[dependence["column"] == column]
    fig = _fig(f"How the prediction moves with {column}", column, output)
    for _, line in d[d["row"] >= 0].groupby("row"):
        fig.add_scatter(x=line["value"].astype(str).tolist() if line["categorical"].iloc[0] else line["value"].tolist(),
                        y=line["output"].tolist(), mode="lines", line=dict(color="#93c5fd", width=1), showlegend=False,
                        hoverinfo="skip")
    mean = d[d["row"] < 0]
    fig.add_scatter(x=mean["value"].astype(str).tolist() if len(mean) and mean["categorical"].iloc[0] else mean["value"].tolist(),
                    y=mean["output"].tolist(), mode="lines+markers", name="average", line=dict(color="#f59e0b", width=3))
    return fig


def reasons_bar(reasons: list[dict], scale: str, title: str = "Why this prediction") -> go.Figure:
    """One row's reasons (``workbench.explanation.reasons``): a bar per column, labelled with the row's value, pushing
    the output up (orange) or down (blue) on ``scale``; the largest at the top."""
    rows = reasons[::-1]
    labels = [f"{r['column']} = {r['value']}" if r["value"] is not None else f"{r['column']} (missing)" for r in rows]
    fig = _fig(title, f"Push on the output ({scale})", "Column = this row's value", height=max(300, 28 * len(rows) + 120))
    fig.add_bar(x=[r["contribution"] for r in rows], y=labels, orientation="h",
                marker_color=["#f59e0b" if r["direction"] == "up" else "#2563eb" for r in rows])
    return fig
