"""The results dashboard's charts as plotly JSON, built once per run and saved beside its results
(``<run>/artifacts/figures/``): a dashboard only reads them. A figure is shown as display data that the page's own
plotly renderer draws (Voila, JupyterLab, nbconvert): no widget carries plotly.js, the page loads it once."""
from __future__ import annotations

import base64
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from workbench.viz.figures import figures_for

MIME = "application/vnd.plotly.v1+json"
INPUTS = ("leaderboard.csv", "oof.parquet", "importance.parquet", "learning_curve.parquet")  # what the charts are drawn from


def save_figures(results, run_dir: str | Path, best: dict | None = None) -> Path:
    """Every model's charts of a run (``workbench.pipeline.RunResults``) as plotly JSON, one file per model;
    ``best``: more figures of the run's model (its explanation)."""
    out = Path(run_dir) / "artifacts" / "figures"
    tmp = Path(tempfile.mkdtemp(prefix=".figures.", dir=out.parent))
    index = {}
    for k, model in enumerate(results.models):
        index[model] = f"{k}.json"
        figs = {key: plain(fig) for key, fig in figures_for(results, model).items()}
        if model == results.meta["best_model"]:
            figs |= {key: plain(fig) for key, fig in (best or {}).items()}
        (tmp / index[model]).write_text(json.dumps(figs))
    (tmp / "index.json").write_text(json.dumps(index))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)  # swapped in whole: a dashboard never reads half of them
    return out


def saved_figures(run_dir: str | Path, model: str) -> dict[str, dict] | None:
    """The saved charts of ``model``; None when there are none, or the results changed after they were saved."""
    art = Path(run_dir) / "artifacts"
    index = art / "figures" / "index.json"
    if not index.exists() or any((art / f).exists() and (art / f).stat().st_mtime > index.stat().st_mtime for f in INPUTS):
        return None
    name = json.loads(index.read_text()).get(model)
    return json.loads((art / "figures" / name).read_text()) if name else None


def plain(figure) -> dict:
    """A figure as JSON with plain lists: plotly packs arrays as base64 (``{"dtype", "bdata"}``), which the page's
    ``gd.data`` then keeps packed — nothing reading a drawn chart could count its points."""
    return _unpack(json.loads(figure.to_json()))


def _unpack(v):
    if isinstance(v, dict):
        if "bdata" in v and "dtype" in v:
            a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
            if "shape" in v:
                a = a.reshape([int(n) for n in str(v["shape"]).split(",")])
            return _unpack(a.tolist())
        return {k: _unpack(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_unpack(x) for x in v]
    return None if isinstance(v, float) and v != v else v  # NaN is not JSON: a gap


def bundle(figure) -> dict:
    """A figure (a plotly Figure or its JSON) as a display_data output."""
    data = figure if isinstance(figure, dict) else plain(figure)
    title = ((data.get("layout") or {}).get("title") or {}).get("text", "chart")
    return {"output_type": "display_data", "data": {MIME: data, "text/plain": f"<chart: {title}>"}, "metadata": {}}
