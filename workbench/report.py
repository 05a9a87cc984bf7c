"""The trust report of a pipeline run: one self-contained HTML file (and its PDF) in business words, for the people who
sign a model off — the data and its contract, what cleaning changed, the models compared, the one chosen and why,
calibration, the decision threshold, what drives the predictions, the compression trade-off, the release gate and the
package's checksums.

The file needs no network: plotly.js is inlined once, gzipped (the browser's own DecompressionStream unpacks it), so
the report stays a few MB however many charts it holds. The PDF is Chromium's print of that file.
"""
from __future__ import annotations

import base64
import gzip
import hashlib
import html
import json
import shutil
import subprocess
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from workbench.data import Schema
from workbench.errors import WorkbenchError
from workbench.explanation import reasons
from workbench.extras import extra
from workbench.models.contrib import SCALES
from workbench.pipeline import RunResults, explained, load_results, run_folder
from workbench.settings import Settings, get_settings
from workbench.viz.compression import pareto
from workbench.viz.figures import METRIC_WORDS, calibration_curve, leaderboard_bar

with extra("notebook"):  # the report's charts
    from plotly.offline import get_plotlyjs

WIDTH = 760  # px: an A4 page's printable width, so screen and PDF show the same charts
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)
REASONS = 5  # each example row's largest contributions


def trust_report(run: str | Path, *, out: str | Path | None = None, pdf: bool | None = None,
                 settings: Settings | None = None) -> dict[str, Path]:
    """Write ``<run>/trust_report.html`` (or ``out``) and, with ``pdf``, its PDF beside it (None: when Chromium is
    installed); returns their paths."""
    s = settings or get_settings()
    results = load_results(run, s)
    root = Path(run) if Path(run).is_dir() else run_folder(str(run), s)
    art = root / "artifacts"
    meta = results.meta
    sections = [_data(results, art), _cleaning(results), _models(results, art), _chosen(results, root),
                _calibration(results), _decision(results), _drivers(results, root), _compression(meta, art),
                _release(meta, root)]
    title = f"Predicting {meta['target']}: trust report of run {results.run_id}"
    now = datetime.now(timezone.utc)
    page = _page(title, f"Written {now:%Y-%m-%d %H:%M} UTC from the run's saved results.", sections)
    html_path = Path(out) if out else root / "trust_report.html"
    html_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = html_path.with_name(f".{html_path.name}.tmp")
    tmp.write_text(page)
    tmp.replace(html_path)
    paths = {"html": html_path}
    if pdf or (pdf is None and _chromium()):
        paths["pdf"] = print_pdf(html_path)
    return paths


def print_pdf(page: Path, out: Path | None = None, timeout: float = 180) -> Path:
    """Chromium's print of an HTML file to PDF, once its charts are drawn."""
    chromium = _chromium()
    if chromium is None:
        raise WorkbenchError(f"the PDF needs Chromium (apt-get install chromium); the HTML report is at {page}")
    out = Path(out) if out else page.with_suffix(".pdf")
    with tempfile.TemporaryDirectory(prefix="wb-chromium-") as profile:
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
                        "--disable-background-networking", "--disable-component-update", f"--user-data-dir={profile}",
                        "--no-pdf-header-footer", "--virtual-time-budget=30000", f"--print-to-pdf={out}",
                        page.resolve().as_uri()], check=True, capture_output=True, timeout=timeout)
    if not out.exists():
        raise WorkbenchError(f"Chromium wrote no PDF for {page}")
    return out


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _data(r: RunResults, art: Path) -> str:
    p = r.profile
    schema = Schema.from_json((art / "schema.json").read_text())
    rows = [{"column": c.name, "kind": c.type, "may be missing": "yes" if c.nullable else "no",
             "accepted values": _accepted(c), "example": _plain(c.example)} for c in schema]
    return _section("The data and its contract",
                    f"<p>{p.rows:,} rows and {len(p.columns)} columns were read; the model predicts <b>{html.escape(str(r.meta['target']))}"
                    f"</b> ({r.task}). The service accepts rows with these columns, and refuses others with a message "
                    "that names the field:</p>" + _table(pd.DataFrame(rows))
                    + _list("What the profile warned about", p.warnings))


def _cleaning(r: RunResults) -> str:
    c = r.cleaning
    dropped = [f"<b>{html.escape(k)}</b>: {html.escape(v)}" for k, v in c.dropped.items()]
    changes = c.to_frame()
    changes = changes[changes["action"] != "dropped column"]
    return _section("What cleaning changed",
                    f"<p>{c.rows_in:,} rows in, {c.rows_out:,} rows out. Every change, with the rows it touched:</p>"
                    + _table(changes) + _list("Columns left out, and why", dropped, escape=False))


def _models(r: RunResults, art: Path) -> str:
    metric = r.meta["metric"]
    d = json.loads((art / "candidates.json").read_text())
    board = pd.DataFrame([{"model": c["name"], "status": c["status"], metric: c["cv"].get(metric, np.nan),
                           "spread": (c.get("cv_std") or {}).get(metric, np.nan), "one row (ms)": c.get("latency_ms")}
                          for c in d["candidates"]])
    board = board.sort_values(metric, ascending=metric in {"rmse", "mae", "log_loss", "mape"}, na_position="last")
    fig = leaderboard_bar(board, metric, highlight=r.meta["best_model"], spread="spread")
    return _section("The models compared",
                    f"<p>Every candidate was scored by {d['folds']}-fold cross-validation on the training rows "
                    f"({METRIC_WORDS.get(metric, metric)}); the spread is the standard deviation over the folds — a gap "
                    "smaller than the spread is not a real difference.</p>" + _chart(fig)
                    + _table(board.rename(columns={"spread": "spread over folds"})))


def _chosen(r: RunResults, root: Path) -> str:
    m = r.meta
    metric = m["metric"]
    row = r.leaderboard[r.leaderboard["model"] == m["best_model"]]
    latency = float(row["latency_ms"].iloc[0]) if len(row) and "latency_ms" in row else float("nan")
    archive = Path((m.get("package") or {}).get("archive", root / "package.tar.gz"))
    size = f"{archive.stat().st_size / 1e3:,.0f} KB packaged" if archive.exists() else "not packaged yet"
    test = pd.DataFrame([{"metric": METRIC_WORDS.get(k, k), "on held-out test rows": v} for k, v in m["test_metrics"].items()])
    return _section("The chosen model, and why",
                    f"<p><b>{html.escape(m['best_model'])}</b>: the best cross-validated {METRIC_WORDS.get(metric, metric)} "
                    f"({m['cv'][metric]:.4f}) among the models fast enough to serve; it scores one row in "
                    f"{latency:.3g} ms and is {size}. On test rows it never saw:</p>" + _table(test))


def _calibration(r: RunResults) -> str:
    if r.task == "regression":
        return ""
    y, proba = _test_scores(r)
    fig = calibration_curve(y, proba, r.classes, r.meta["best_model"])
    return _section("Can its probabilities be taken at face value?",
                    "<p>Rows grouped by the probability the model gave them, against how often the outcome really "
                    "happened (test rows). Close to the diagonal: a 70% means 7 in 10.</p>" + _chart(fig))


def _decision(r: RunResults) -> str:
    d = r.meta.get("decision")
    if d:  # a run that was told what each outcome is worth: workbench.models.decide.Decision.to_dict()
        rule = (f"decide '{html.escape(str(d['positive']))}' when its probability is at least {d['threshold']:.2f}"
                if d.get("threshold") is not None else "decide the class of highest expected value")
        values = pd.DataFrame(d["values"]).T.rename_axis("actual \\ decided").reset_index()
        return _section("The decision threshold",
                        f"<p>What each outcome is worth (below) sets the rule: {rule}. Expected value "
                        f"<b>{d['value_per_row']:.4g} per row</b>, against {d['argmax_value_per_row']:.4g} for the "
                        "usual rule (the likeliest class), on predictions for rows the model had not seen.</p>"
                        + _table(values))
    if r.task != "binary":
        return ""
    y, proba = _test_scores(r)
    rows = []
    for t in THRESHOLDS:
        flag = proba[:, 1] >= t
        hits = int((flag & (y == 1)).sum())
        rows.append({"threshold": t, "rows flagged": f"{flag.mean():.1%}",
                     "flagged that are real": f"{hits / flag.sum():.1%}" if flag.sum() else "—",
                     "real cases found": f"{hits / max(1, (y == 1).sum()):.1%}"})
    return _section("The decision threshold",
                    f"<p>No costs and gains were set for this run, so no threshold was chosen for value: the service "
                    f"answers '{html.escape(str(r.classes[1]))}' at a probability of 0.5. What other thresholds would "
                    "mean on the test rows:</p>" + _table(pd.DataFrame(rows)))


def _drivers(r: RunResults, root: Path) -> str:
    """What drives the predictions, by one measure: each raw column's mean size of contribution to the output (the
    dashboard's chart and the service's reasons come from the same contributions), and three test rows explained."""
    if (got := explained(root)) is None:
        return ""
    pkg, e = got
    top = e.importance.head(10)[["column", "importance", "share"]].assign(share=lambda f: f["share"].map("{:.0%}".format))
    return _section("What drives the predictions",
                    f"<p>How far each column pushes a row's output on average, over {len(e.contributions):,} training "
                    f"rows: the mean size of its contribution ({'exact' if e.exact else 'estimated'}: "
                    f"{html.escape(e.method)}), on the {html.escape(e.scale)} scale "
                    f"({html.escape(SCALES.get(e.scale, ''))}). The columns the model relies on most:</p>"
                    + _chart(e.figure()) + _table(top) + _examples(r, root / "artifacts", pkg))


def _examples(r: RunResults, art: Path, pkg) -> str:
    """Three test rows with their answer, what really happened and the columns that pushed the answer most: the
    surest of the positive class, a borderline row and the surest of the other (the most and least sure with more
    classes; the highest, middle and lowest value for a regression)."""
    t = r.test_predictions
    if r.task == "regression":
        score, names = t["prediction"].to_numpy(float), ["highest", "middle", "lowest"]
    elif r.task == "binary":
        score = _test_scores(r)[1][:, 1]
        names = [f"surest '{r.classes[1]}'", "borderline", f"surest '{r.classes[0]}'"]
    else:
        score, names = _test_scores(r)[1].max(axis=1), ["surest", "middle", "least sure"]
    order = np.argsort(score, kind="stable")
    at = [order[-1], order[len(order) // 2], order[0]]
    picks = t.iloc[at]
    raw = pd.read_parquet(art / "test_raw.parquet").drop(columns=[r.meta["target"]]).loc[picks.index]
    why = reasons(pkg, raw, k=REASONS)
    rows = {"the model answered": [_plain(v) for v in picks["prediction"]],
            "what really happened": [_plain(v) for v in picks["actual"]]}
    if r.task != "regression":
        rows[f"probability of '{r.classes[1]}'" if r.task == "binary" else "probability of its answer"] = \
            [f"{v:.1%}" for v in score[at]]
    for k in range(REASONS):
        rows[f"reason {k + 1}"] = [f"{w[k]['column']} = {str(w[k]['value']).strip()} ({w[k]['contribution']:+.3g})" if k < len(w) else ""
                                   for w in why]
    table = pd.DataFrame(rows, index=names).T.rename_axis("").reset_index()
    towards = {"binary": f"towards '{r.classes[1]}'", "multiclass": "towards the answer"}.get(r.task, "up")
    return ("<p>Three test rows, with the columns that pushed each answer most (each one's contribution on the same "
            f"scale: + pushes {html.escape(towards)}, − the other way):</p>" + _table(table))


def _compression(meta: dict, art: Path) -> str:
    info, path = meta.get("compression"), art / "compression.parquet"
    if not info or not path.exists():
        return ""
    frame = pd.read_parquet(path)
    report = SimpleNamespace(to_frame=lambda: frame.set_index("variant"), metric=info["metric"],
                             chosen=SimpleNamespace(name=info["chosen"]) if info.get("chosen") else None)
    return _section("Smaller and faster: the compression trade-off",
                    f"<p>{html.escape(info['verdict'])}</p>" + _chart(pareto(report))
                    + _table(frame[["variant", "size_bytes", "latency_1_ms", "valid_metric", "test_metric", "qualifies"]]))


def _release(meta: dict, root: Path) -> str:
    parts = []
    dep = meta.get("deploy")
    if dep:
        v = dep.get("validation") or {}
        parts.append(f"<p>Release {html.escape(str(dep['release']))}: <b>{html.escape(dep['outcome'])}</b> version "
                     f"{dep['version']}. Validation on the run's test rows: {html.escape(str(v.get('metric', '')))} "
                     f"{v.get('candidate', float('nan')):.4f} against the champion's "
                     f"{'—' if v.get('champion') is None else format(v['champion'], '.4f')}; "
                     f"{'passed' if v.get('passed') else 'not passed'}.</p>"
                     + _table(pd.DataFrame([{"step": k, "status": s} for k, s in dep["steps"].items()])))
    mon = meta.get("monitor")
    if mon:
        parts.append(f"<p>Served live: {mon['rows']:,} rows answered, {mon['outcomes']:,} outcomes fed back; "
                     f"{mon['metric']} live {mon['live']:.3f} against {mon['validation']:.3f} at validation; "
                     f"{len(mon['alerts'])} alert(s).</p>")
    manifest = root / "package" / "manifest.json"
    if manifest.exists():
        files = json.loads(manifest.read_text())["files"]
        sums = pd.DataFrame([{"file": f, "bytes": v["bytes"], "sha256": v["sha256"]} for f, v in files.items()])
        archive = root / "package.tar.gz"
        if archive.exists():
            sums.loc[len(sums)] = [archive.name, archive.stat().st_size, hashlib.sha256(archive.read_bytes()).hexdigest()]
        parts.append("<p>The package's files and their SHA-256 checksums (each is checked before the model loads):</p>"
                     + _table(sums))
    return _section("The release gate and the package", "".join(parts)) if parts else ""


def _test_scores(r: RunResults) -> tuple[np.ndarray, np.ndarray]:
    """The chosen model's test rows: (actual class codes, probabilities n × k)."""
    t = r.test_predictions
    codes = {str(c): k for k, c in enumerate(r.classes)}
    return t["actual"].astype(str).map(codes).to_numpy(), t[[str(c) for c in r.classes]].to_numpy(dtype=float)


def _accepted(c) -> str:
    if c.categories:
        return ", ".join(map(str, c.categories[:12])) + (" …" if len(c.categories) > 12 else "")
    if c.min is not None:
        return f"{_plain(c.min)} to {_plain(c.max)}"
    return c.type


def _plain(v) -> str:
    return f"{v:.6g}" if isinstance(v, float) else "" if v is None else str(v)


def _section(title: str, body: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{body}</section>"


def _list(title: str, items: list[str], escape: bool = True) -> str:
    if not items:
        return ""
    return f"<h3>{html.escape(title)}</h3><ul>" + "".join(f"<li>{html.escape(i) if escape else i}</li>" for i in items) + "</ul>"


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, na_rep="—", float_format=lambda v: f"{v:.4g}", border=0)


def _chart(fig) -> str:
    fig.update_layout(width=WIDTH, template=None, font={"family": "system-ui, sans-serif"})
    spec = fig.to_json(engine="orjson").replace("</", "<\\/")
    return f"<div class='chart'></div><script type='application/json' class='chart-data'>{spec}</script>"


_STYLE = """body{font-family:system-ui,sans-serif;max-width:800px;margin:2em auto;color:#0f172a;line-height:1.45}
h1{font-size:1.6em}h2{border-bottom:2px solid #2563eb;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}td,th{padding:3px 8px;border-bottom:1px solid #e2e8f0;
text-align:left;word-break:break-all}.chart{break-inside:avoid;margin:1em 0}section{break-inside:auto}
@media print{body{margin:0}h2{break-after:avoid}}"""

# plotly.js arrives gzipped: the page unpacks it, runs it and then draws every chart from the JSON beside it
_DRAW = """<script>
window.reportReady = (async () => {
  const packed = Uint8Array.from(atob(document.getElementById('plotly-gz').textContent), c => c.charCodeAt(0));
  const code = await new Response(new Blob([packed]).stream().pipeThrough(new DecompressionStream('gzip'))).text();
  const s = document.createElement('script'); s.textContent = code; document.head.appendChild(s);
  for (const div of document.querySelectorAll('.chart')) {
    const f = JSON.parse(div.nextElementSibling.textContent);
    await Plotly.newPlot(div, f.data, f.layout, {displaylogo: false, staticPlot: false});
  }
  document.body.dataset.ready = 'yes';
})();
</script>"""


def _page(title: str, subtitle: str, sections: list[str]) -> str:
    plotly_gz = base64.b64encode(gzip.compress(get_plotlyjs().encode(), compresslevel=9, mtime=0)).decode()
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{_STYLE}</style>"
            f"</head><body><h1>{html.escape(title)}</h1><p>{html.escape(subtitle)}</p>{''.join(sections)}"
            f"<script id='plotly-gz' type='application/octet-stream'>{plotly_gz}</script>{_DRAW}</body></html>")
