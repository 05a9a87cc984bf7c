"""The size–latency–metric picture of a compression run."""
from __future__ import annotations

from workbench.extras import extra

with extra("notebook"):
    import plotly.graph_objects as go

from workbench.viz.figures import METRIC_WORDS, _fig


def pareto(report) -> go.Figure:
    """One point per variant: size on disk (log axis) against the validation metric, point size growing with the
    single-row latency; the chosen variant is marked and the Pareto front (nothing both smaller and better) joined."""
    f = report.to_frame().reset_index()
    words = METRIC_WORDS.get(report.metric, report.metric)
    fig = _fig("What each variant costs: size, speed and accuracy", "Size of the model files (bytes, log scale)",
               f"Validation {words}")
    fig.update_xaxes(type="log")
    lat = f["latency_1_ms"].fillna(f["latency_1_ms"].max())
    marker = {"size": 8 + 24 * (lat / lat.max()), "color": ["#f59e0b" if report.chosen is not None and v == report.chosen.name
                                                         else "#16a34a" if q else "#94a3b8"
                                                         for v, q in zip(f["variant"], f["qualifies"])]}
    fig.add_scatter(x=f["size_bytes"], y=f["valid_metric"], mode="markers+text", text=f["variant"], textposition="top center",
                    marker=marker, name="variants", customdata=f[["latency_1_ms", "max_change"]],
                    hovertemplate="%{text}<br>%{x:,} bytes<br>metric %{y:.4f}<br>one row %{customdata[0]:.3f} ms"
                                  "<br>largest change %{customdata[1]:.2g}<extra></extra>")
    greater = report.metric not in ("rmse", "mae", "log_loss", "mape")
    front, best = [], None
    for _, r in f.sort_values("size_bytes").iterrows():
        if best is None or (r["valid_metric"] > best if greater else r["valid_metric"] < best):
            front.append(r)
            best = r["valid_metric"]
    fig.add_scatter(x=[r["size_bytes"] for r in front], y=[r["valid_metric"] for r in front], mode="lines",
                    line={"dash": "dot", "color": "#64748b"}, name="Pareto front")
    return fig
