"""The monitoring pictures: traffic, response time and live quality over time (estimated from the model's confidence
beside the realized), quality by segment, drift by column, predicted against actual. Pure functions of a
:class:`workbench.monitor.MonitorStatus`; the dashboard and the report both use them."""
from __future__ import annotations

import numpy as np
import pandas as pd
from workbench.extras import extra

with extra("notebook"):
    import plotly.graph_objects as go

from workbench.viz.figures import METRIC_WORDS, SHARES, _fig

ALERT, CALM = "#dc2626", "#2563eb"
REALIZED, ESTIMATE = "#2563eb", "#f59e0b"


def monitor_figures(st) -> dict[str, go.Figure]:
    return {"traffic": traffic(st), "latency": latency(st), "quality": quality(st), "drift": drift_bar(st),
            "feedback": predicted_vs_actual(st), "segments": segments_bar(st)}


def traffic(st) -> go.Figure:
    t = st.timeline
    fig = _over_time(st, f"Requests to {st.model} per minute", "Requests")
    fig.add_scatter(x=t["time"], y=t["requests"], mode="lines+markers", name="requests", line={"color": CALM})
    fig.add_scatter(x=t["time"], y=t["errors"], mode="lines+markers", name="failed", line={"color": ALERT})
    return fig


def latency(st) -> go.Figure:
    t = st.timeline
    fig = _over_time(st, "How long answers take (milliseconds)", "Milliseconds")
    fig.add_scatter(x=t["time"], y=t["latency_p50_ms"], mode="lines+markers", name="typical (median)")
    fig.add_scatter(x=t["time"], y=t["latency_p95_ms"], mode="lines+markers", name="slowest 5%")
    if len(t) and t["latency_p95_ms"].max() > st.thresholds.latency_ms / 2:  # else it would flatten the lines
        fig.add_hline(y=st.thresholds.latency_ms, line={"dash": "dot", "color": ALERT},
                      annotation_text=f"alert above {st.thresholds.latency_ms:g} ms")
    return fig


def quality(st) -> go.Figure:
    """The headline metric per minute: estimated from the model's confidence on every row (classification), and
    realized on the rows whose outcomes came back (only there), against validation."""
    m, t = st.headline, st.timeline
    words = METRIC_WORDS.get(m, m)
    short = words.split(" (")[0]
    title = (f"{short}: estimated from the model's confidence, and on real outcomes" if st.estimated else
             f"{short} on real outcomes, against validation (no estimate before outcomes for a regression)")
    fig = _over_time(st, title, words)
    y = t[m] if m in t.columns else []
    fig.add_scatter(x=t["time"], y=y, mode="lines+markers", name="realized (real outcomes)", connectgaps=True,
                    line={"color": REALIZED})
    if st.estimated:
        e = t[f"estimated_{m}"] if f"estimated_{m}" in t.columns else []
        fig.add_scatter(x=t["time"], y=e, mode="lines+markers", name="estimated (before outcomes)", connectgaps=True,
                        line={"color": ESTIMATE, "dash": "dash"})
    if m in SHARES:  # plotly pads a lone point or a flat line by ±0.5: an accuracy axis ran to 1.5
        fig.update_yaxes(autorangeoptions={"minallowed": 0, "maxallowed": 1})
    base = st.validation_score
    if np.isfinite(base):
        fig.add_hline(y=base, line={"dash": "dash", "color": "#16a34a"}, annotation_text=f"at validation: {base:.3f}")
    return fig


def _over_time(st, title: str, y: str) -> go.Figure:
    fig = _fig(title, "Time (UTC)", y, height=320)
    t = st.timeline["time"]
    if len(t) == 1:  # a lone minute: plotly spread one millisecond over the axis (ticks 19:59:59.999 … 20:00:00.001)
        fig.update_xaxes(range=[(t.iloc[0] - pd.Timedelta(minutes=5)).isoformat(),
                                (t.iloc[0] + pd.Timedelta(minutes=5)).isoformat()])
    return fig


def drift_bar(st) -> go.Figure:
    d = st.drift
    fig = _fig("How far each input has moved from the training data", "Input",
               "Stability index (PSI; higher = more change)", height=360)
    colors = [ALERT if x else CALM for x in d["drifted"].astype(bool)] if len(d) else []
    fig.add_bar(x=d["column"], y=d["psi"], marker={"color": colors}, name="drift",
                customdata=np.stack([d["test"], d["p_value"]], axis=1) if len(d) else None,
                hovertemplate="%{x}: PSI %{y:.3f}<br>%{customdata[0]} p = %{customdata[1]:.2g}<extra></extra>")
    fig.add_hline(y=st.thresholds.psi, line={"dash": "dot", "color": ALERT}, annotation_text="alert level")
    return fig


def predicted_vs_actual(st) -> go.Figure:
    f = st.feedback
    if st.task == "regression":
        fig = _fig("Predicted against what really happened", "Actual", "Predicted", height=360)
        fig.add_scatter(x=f["actual"], y=f["predicted"], mode="markers", name="rows", marker={"opacity": 0.6})
        if len(f):
            lo, hi = float(min(f["actual"].min(), f["predicted"].min())), float(max(f["actual"].max(), f["predicted"].max()))
            fig.add_scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="perfect", line={"dash": "dot", "color": "#64748b"})
        return fig
    # classification: the model's score against the true class, jittered so that the points do not pile up
    fig = _fig("Model score against what really happened", "Score the model gave", "Actual outcome", height=360)
    jitter = np.random.default_rng(0).uniform(-0.15, 0.15, len(f))
    classes = sorted(f["actual"].unique().tolist()) if len(f) else []
    codes = {c: k for k, c in enumerate(classes)}
    hit = (f["predicted"] == f["actual"]).to_numpy() if len(f) else np.array([], bool)
    fig.add_scatter(x=f["score"], y=f["actual"].map(codes).to_numpy(float) + jitter if len(f) else [], mode="markers",
                    name="rows", marker={"color": [CALM if h else ALERT for h in hit], "opacity": 0.6},
                    text=f["predicted"], hovertemplate="score %{x:.2f}<br>predicted %{text}<extra></extra>")
    fig.update_yaxes(tickvals=list(range(len(classes))), ticktext=classes)
    return fig


def segments_bar(st) -> go.Figure:
    """The headline metric per value of the segment column: realized on the outcomes (bars), estimated from the
    model's confidence on all rows (diamonds, classification); each value's rows and outcomes on hover."""
    m, g = st.headline, st.segments
    words = METRIC_WORDS.get(m, m)
    if not st.segment or g.empty:
        return _fig("Quality by segment: no input column to break it down by (choose one: WORKBENCH_MONITOR_SEGMENT)",
                    "Segment", words, height=360)
    fig = _fig(f"{words.split(' (')[0]} by {st.segment}", st.segment, words, height=360)
    x = g["segment"].astype(str)
    counts = np.stack([g["rows"], g["outcomes"]], axis=1)
    fig.add_bar(x=x, y=g[m], name="realized (real outcomes)", marker={"color": REALIZED}, customdata=counts,
                hovertemplate="%{x}: %{y:.3f} on %{customdata[1]:,} outcomes of %{customdata[0]:,} rows<extra></extra>")
    if st.estimated:
        fig.add_scatter(x=x, y=g[f"estimated_{m}"], mode="markers", name="estimated (all rows)", customdata=counts,
                        marker={"color": ESTIMATE, "symbol": "diamond", "size": 11},
                        hovertemplate="%{x}: %{y:.3f} expected on %{customdata[0]:,} rows<extra></extra>")
    if m in SHARES:
        fig.update_yaxes(autorangeoptions={"minallowed": 0, "maxallowed": 1})
    return fig
