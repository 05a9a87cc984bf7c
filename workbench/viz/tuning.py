"""Figures of a tuning run: how the search progressed, which parameters mattered, where the good trials lie."""
from __future__ import annotations

import numpy as np
import pandas as pd
from workbench.extras import extra

with extra("notebook"):
    import plotly.graph_objects as go

from workbench.models.metrics import loss
from workbench.viz.figures import METRIC_WORDS, _fig


def history_line(history: pd.DataFrame, metric: str) -> go.Figure:
    """Each trial's score, and the best so far."""
    ok = history[history["status"] == "ok"]
    losses = ok["score"].map(lambda v: loss(metric, v))
    best = ok["score"].where(losses == losses.cummin()).ffill()
    fig = _fig("How the search improved, trial by trial", "Trial", METRIC_WORDS.get(metric, metric))
    fig.add_scatter(x=ok["trial"].tolist(), y=ok["score"].tolist(), mode="markers", name="trial")
    fig.add_scatter(x=ok["trial"].tolist(), y=best.tolist(), mode="lines", name="best so far", line=dict(shape="hv"))
    return fig


def parameter_importance_bar(importance: pd.DataFrame) -> go.Figure:
    f = importance.iloc[::-1]
    fig = _fig("Which settings mattered most for the score", "Share of the score's variation explained", "Setting")
    fig.add_bar(x=f["importance"].tolist(), y=f["parameter"].astype(str).tolist(), orientation="h", marker_color="#2563eb")
    return fig


def parallel_coordinates(history: pd.DataFrame, space, metric: str) -> go.Figure:
    """One line per trial across every numeric setting, coloured by score."""
    ok = history[history["status"] == "ok"]
    dims = []
    for name in space:
        col = f"param_{name}"
        if col not in ok:
            continue
        values = ok[col]
        if pd.api.types.is_numeric_dtype(values):
            dims.append(dict(label=name, values=values.astype(float).fillna(np.nan).tolist()))
        else:
            codes, labels = pd.factorize(values.astype(str))
            dims.append(dict(label=name, values=codes.tolist(), tickvals=list(range(len(labels))), ticktext=list(labels)))
    dims.append(dict(label=metric, values=ok["score"].tolist()))
    fig = go.Figure(go.Parcoords(line=dict(color=ok["score"].tolist(), colorscale="Viridis", showscale=True), dimensions=dims),
                    layout=go.Layout(title="Settings of every trial, coloured by score", template="plotly_white", height=420))
    return fig
