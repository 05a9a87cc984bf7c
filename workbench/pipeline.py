"""The pipeline's stages as library calls. Each stage takes what the previous one kept in the run folder, as typed
objects (``load_prepared``: the cleaned data; ``load_result``: the training result, its leaderboard and the run's
model as a package), calls the library steps `auto` and the panels call, keeps its own result (``keep_result``) and
logs into the run's MLflow run, so notebooks hand nothing to each other through kernel state.

Run folder (``reports/<run-id>/``): the executed notebooks and their HTML, ``summary.json``, and
``artifacts/`` with the tidy files below, which the dashboard reads without retraining.
"""
from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd

from workbench.auto import AutoResult
from workbench.child import Service, free_port
from workbench.compress import compress
from workbench.compress.core import package_variant
from workbench.data import CleaningReport, Profile, Schema, load, split
from workbench.data.clean import Cleaned, Cleaner
from workbench.deploy import deploy, read_config, stop_serving
from workbench.ensemble import LIMITED, ensemble
from workbench.errors import WorkbenchError
from workbench.explanation import explain, reasons
from workbench.models.compare import Candidate, Leaderboard, encode_target, fitting_together, make_folds, refit
from workbench.models.decide import Calibrated, trust
from workbench.models.explain import feature_importance, learning_curve
from workbench.models.metrics import is_better
from workbench.models.train import Prepared, TrainResult, evaluate, fit, oof_frame, prepare
from workbench.models.trained import TrainedModel
from workbench.monitor import status
from workbench.monitor.report import write_report
from workbench.registry import repository
from workbench.registry.package import load_package, package_result
from workbench.registry.tracking import log_run, log_training
from workbench.settings import Settings, get_settings
from workbench.tune import tune
from workbench.viz.explain import reasons_bar
from workbench.viz.saved import save_figures

TOP_IMPORTANCE = 3  # models whose feature importance the dashboard can show


def run_folder(run_id: str, settings: Settings | None = None) -> Path:
    return (settings or get_settings()).reports / run_id


def list_runs(settings: Settings | None = None) -> list[str]:
    """Run ids with results, newest first."""
    root = (settings or get_settings()).reports
    runs = [p for p in root.glob("*/artifacts/leaderboard.csv")] if root.exists() else []
    return [p.parent.parent.name for p in sorted(runs, key=lambda p: p.stat().st_mtime, reverse=True)]


def data_stage(run_dir: str | Path, data, target: str, *, test=None, task: str | None = None, test_size: float = 0.2,
               mlflow_run_id: str | None = None, settings: Settings | None = None) -> Prepared:
    """Load, profile and clean; hold out ``test_size`` as test when no test table is given; save to the run folder."""
    s = settings or get_settings()
    df = load(data, seed=s.seed)
    if test is None:
        parts = split(df, target, test_size=test_size, seed=s.seed)
        df, test = parts.train, parts.test
    prepared = prepare(df, target, test=test, task=task, settings=s)
    art = _artifacts(run_dir)
    cleaned = prepared.cleaned
    cleaned.X.assign(**{cleaned.target: cleaned.y}).to_parquet(art / "train_clean.parquet")
    _text_columns(prepared.test).to_parquet(art / "test_raw.parquet")
    _text_columns(prepared.reference).to_parquet(art / "reference_raw.parquet")
    files = {"fingerprint.json": json.dumps(prepared.fingerprint), "cleaner.json": cleaned.cleaner.to_json(),
             "cleaning_report.json": json.dumps(cleaned.report.to_dict(), indent=1),
             "profile.json": json.dumps(prepared.profile.to_dict(), indent=1, default=str),
             "schema.json": prepared.schema.to_json()}
    for name, text in files.items():
        (art / name).write_text(text)
    if mlflow_run_id:
        log_run(params={"data": str(data), "target": target, "task": cleaned.task, "rows": len(cleaned.X),
                        "features": cleaned.X.shape[1]}, metrics={}, artifacts=files, run_id=mlflow_run_id, settings=s)
    return prepared


def load_prepared(run_dir: str | Path) -> Prepared:
    """What the data stage saved, ready for the training stage."""
    art = Path(run_dir) / "artifacts"
    if not (art / "train_clean.parquet").exists():
        raise WorkbenchError(f"{run_dir} has no cleaned data: run the data stage (01_data) first")
    cleaner = Cleaner.from_json((art / "cleaner.json").read_text())
    target = cleaner.target_["name"]
    frame = pd.read_parquet(art / "train_clean.parquet")
    report = CleaningReport.from_dict(json.loads((art / "cleaning_report.json").read_text()))
    cleaned = Cleaned(frame.drop(columns=[target]), frame[target], cleaner, report, target)
    return Prepared(Profile.from_dict(json.loads((art / "profile.json").read_text())), cleaned,
                    Schema.from_json((art / "schema.json").read_text()), pd.read_parquet(art / "test_raw.parquet"),
                    pd.read_parquet(art / "reference_raw.parquet"), json.loads((art / "fingerprint.json").read_text()))


def train_stage(run_dir: str | Path, *, models: list[str] | None = None, metric: str | None = None, folds: int = 5,
                time_budget: float | None = 300, mlflow_run_id: str | None = None, progress: bool = True,
                settings: Settings | None = None) -> TrainResult:
    """Compare and refit on the saved cleaned data; keep the result in the run and everything the charts need."""
    s = settings or get_settings()
    prepared = load_prepared(run_dir)
    result = fit(prepared, models=models, metric=metric, folds=folds, time_budget=time_budget, progress=progress, settings=s)
    art = _artifacts(run_dir)
    board, cleaned = result.leaderboard, prepared.cleaned
    finished = [c for c in board.candidates if c.status == "ok"][:TOP_IMPORTANCE]
    importances = []
    for cand in finished:
        if cand.estimator is None:
            refit(cand, cleaned.X, cleaned.y, settings=s)
        importances.append(feature_importance(cand, cleaned.X, cleaned.y, settings=s))
    pd.concat(importances, ignore_index=True).to_parquet(art / "importance.parquet")
    learning_curve(result.best, cleaned.X, cleaned.y, settings=s).to_parquet(art / "learning_curve.parquet")
    keep_result(run_dir, result, prepared, mlflow_run_id=mlflow_run_id)
    if mlflow_run_id:
        result.run_id, result.artifact_uri = log_training(result, settings=s, run_id=mlflow_run_id)
    return result


def tune_stage(run_dir: str | Path, *, model: str = "best", strategy: str = "tpe", max_trials: int = 30,
               time_budget: float | None = 120, early_stop: int | None = None, mlflow_run_id: str | None = None,
               settings: Settings | None = None):
    """Tune one model (``"best"``: the run's model's family) on the saved data and add it to the leaderboard.

    The tuned candidate uses the training stage's folds, so its out-of-fold predictions sit
    beside the others'; if it beats the run's model by cross-validation it becomes the run's model.
    """
    s = settings or get_settings()
    prepared = load_prepared(run_dir)
    result = load_result(run_dir, prepared, settings=s)
    board, cleaned = result.leaderboard, prepared.cleaned
    model = result.best.model if model == "best" else model
    tuning = tune(model, cleaned.X, cleaned.y, task=cleaned.task, strategy=strategy, metric=board.metric,
                  cv=len(board.folds), max_trials=max_trials, time_budget=time_budget, early_stop=early_stop,
                  parent_run_id=mlflow_run_id, settings=s)
    board.add(tuning.candidate)
    tuning.history.to_csv(Path(run_dir) / "artifacts" / "tuning_history.csv", index=False)
    keep_result(run_dir, choose(result, tuning.candidate, prepared), prepared, tuning=tuning.to_dict())
    if mlflow_run_id:
        log_run(params={}, metrics={f"tuned_cv_{board.metric}": tuning.candidate.cv[board.metric]},
                artifacts={"tuning_history.csv": tuning.history.to_csv(index=False)}, run_id=mlflow_run_id, settings=s)
    return tuning


def ensemble_stage(run_dir: str | Path, *, methods: tuple[str, ...] = ("select", "stack"), top: int = 5,
                   max_latency_ms: float | None = None, values: dict | None = None, mlflow_run_id: str | None = None,
                   settings: Settings | None = None) -> list:
    """Ensemble the saved leaderboard's best candidates by each method; each result joins the leaderboard,
    and the best by cross-validation becomes the run's model. Members, and the ensembles that may become the run's
    model, score a row within ``max_latency_ms`` (None: the ``WORKBENCH_MAX_LATENCY_MS`` setting; 0: no limit).
    The run's model is then made trustworthy as ``auto`` makes its own: two classes' probabilities calibrated when
    that helps out of fold, and with ``values`` (what each outcome is worth) the decision rule that earns the most."""
    s = settings or get_settings()
    prepared = load_prepared(run_dir)
    result = load_result(run_dir, prepared, settings=s)
    board, cleaned = result.leaderboard, prepared.cleaned
    test = (cleaned.cleaner.transform(prepared.test), cleaned.cleaner.transform_target(prepared.test[cleaned.target]))
    results = []
    limit = (s.max_latency_ms if max_latency_ms is None else max_latency_ms) or None
    fast = [c for c in board.within_latency(limit)[0] if c.model != "ensemble"][:top]
    for method in methods:
        # a selection and a stack keep within the limit themselves; any other method scores every member: the best
        # ones whose sum fits
        members = fast if method in LIMITED else fitting_together(fast, limit)
        options = {"max_latency_ms": limit} if method in LIMITED else {}
        r = ensemble(method, board, cleaned.X, cleaned.y, members=[c.name for c in members], test=test, settings=s,
                     **options)
        board.add(r.candidate)
        results.append(r)
        if r.candidate.name not in board.within_latency(limit)[1]:
            result = choose(result, r.candidate, prepared)
    reports = [r.report.to_dict() for r in results]
    result, calibration = trusted(result, values)
    result.test_metrics = evaluate(result.model, prepared.test, prepared.cleaned.target)  # of the model kept
    keep_result(run_dir, result, prepared, ensembles=reports,
                calibration=calibration.to_dict() if calibration is not None else None,
                decision=result.model.decision.to_dict() if result.model.decision is not None else None)
    if mlflow_run_id:
        log_run(params={}, metrics={f"ensemble_{r.report.method}_cv_{board.metric}": r.report.cv for r in results},
                artifacts={"ensembles.json": json.dumps(reports, indent=1, default=str)}, run_id=mlflow_run_id, settings=s)
    # the leaderboard is final: the dashboard reads its charts, never rebuilds them
    save_figures(load_results(run_dir), run_dir, best=explanation_figures(run_dir))
    return results


def compress_stage(run_dir: str | Path, *, methods: list[str] | None = None, max_metric_loss: float = 0.002,
                   settings: Settings | None = None):
    """Compress the run's model. The run has no validation rows of its own, so its test rows are split in two: the
    first half decides (pruning, which variant qualifies), the second half only reports. The chosen variant is
    packaged in ``<run>/compressed``; the run's model stays what the package stage packs (a choice left to people)."""
    s = settings or get_settings()
    prepared = load_prepared(run_dir)
    result = load_result(run_dir, prepared, settings=s)
    test = prepared.test.reset_index(drop=True)
    valid, held = test.iloc[: len(test) // 2], test.iloc[len(test) // 2:]
    report = compress(result, valid, test=held, methods=methods, max_metric_loss=max_metric_loss, seed=s.seed)
    report.to_frame().reset_index().to_parquet(Path(run_dir) / "artifacts" / "compression.parquet")
    out = Path(run_dir) / "compressed"
    _remove(out)
    info = {"verdict": report.verdict, "metric": report.metric, "chosen": None, "original_bytes": report.original.size_bytes}
    if report.chosen is not None:
        c = report.chosen
        target = prepared.cleaned.target
        package_variant(report, out, schema=prepared.schema, reference=prepared.reference, name=str(target),
                        target=target, fingerprint=prepared.fingerprint, origin=f"pipeline run {Path(run_dir).name}")
        info |= {"chosen": c.name, "bytes": c.size_bytes, "package": str(out), "latency_1_ms": c.latency_1_ms,
                 "original_latency_1_ms": report.original.latency_1_ms}
    _record(run_dir, compression=info)
    return report


def package_stage(run_dir: str | Path, *, name: str = "", register: bool = True, alias: str = "staging",
                  settings: Settings | None = None) -> dict:
    """Package the run's model in ``<run>/package`` (and ``package.tar.gz``), as ``workbench train --out`` and
    ``auto --out`` do; with ``register``, add it to the model repository as the next version of ``name`` (default: the
    target's name) under ``alias``."""
    s = settings or get_settings()
    result = load_result(run_dir, settings=s)
    out = Path(run_dir) / "package"
    _remove(out)
    name = name or str(result.cleaned.target)
    package_result(result, out, name=name, archive=True)
    info = {"package": str(out), "archive": str(out.with_name("package.tar.gz")), "name": name, "model": result.model.name}
    if register:
        mv = repository.register(out, name, alias=alias or None,
                                 description=f"pipeline run {Path(run_dir).name}: {result.model.name}", settings=s)
        info |= {"version": int(mv.version), "alias": alias}
    _record(run_dir, package=info)
    return info


def deploy_stage(run_dir: str | Path, *, port: int = 0, threshold: float | None = None, margin: float = 0.02,
                 keep_serving: bool = False, on_step=None, settings: Settings | None = None) -> dict:
    """Release the version that the package stage registered: its own environment, a candidate service,
    validation on the run's test rows against the champion, promotion, and the serving port answering with the
    champion. The service is stopped at the end unless ``keep_serving``."""
    s = settings or get_settings()
    art, meta, pkg = _registered(run_dir)
    port = port or free_port()
    cfg = read_config({"model": pkg["name"], "version": str(pkg["version"]), "service": {"port": port},
                       "validation": {"holdout": str(art / "test_raw.parquet"), "target": meta["target"],
                                      "threshold": threshold, "margin": margin}})
    rel = deploy(cfg, on_step=on_step, settings=s)
    serving = rel.steps["promote"]["details"].get("serving")
    info = {"release": rel.id, "outcome": rel.outcome, "version": rel.facts["version"], "serving": serving,
            "validation": rel.steps["validate"]["details"], "steps": {k: v["status"] for k, v in rel.steps.items()},
            "stopped": False}
    if not keep_serving:
        info["stopped"] = stop_serving(cfg, s)
    _record(run_dir, deploy=info)
    return info


def monitor_stage(run_dir: str | Path, *, batch: int = 25, settings: Settings | None = None) -> dict:
    """The released model meets traffic: a service of it (the champion if the release promoted it) answers the run's
    test rows as a business system would send them, their true outcomes are fed back by request id, and the
    monitoring status and report are written (``<run_dir>/monitor.html``). Live quality sits beside validation."""
    s = settings or get_settings()
    art, meta, pkg = _registered(run_dir)
    name, target = pkg["name"], meta["target"]
    promoted = (meta.get("deploy") or {}).get("outcome") == "promoted"
    source = f"{name}@champion" if promoted else f"{name}/{pkg['version']}"
    test = pd.read_parquet(art / "test_raw.parquet")
    records = json.loads(test.drop(columns=[target]).to_json(orient="records"))
    actual = test[target].astype(str).tolist()
    t0 = time.time()
    # stopped gracefully at the end: the service writes what its log still holds
    with Service(f"--model={source}", log=Path(run_dir) / "monitor-service.log", home=s.home) as service:
        url, ids = service.url, []
        with httpx.Client(timeout=60) as client:
            for k in range(0, len(records), batch):
                r = client.post(f"{url}/v1/models/{name}/predict", json=records[k:k + batch])
                if r.status_code != 200:
                    raise WorkbenchError(f"the service answered {r.status_code}: {r.text[:300]}")
                ids += [p["request_id"] for p in r.json()["predictions"]]
            fed = client.post(f"{url}/v1/models/{name}/feedback",
                              json=[{"request_id": i, "actual": a} for i, a in zip(ids, actual)]).json()
    st = status(name, since=t0, settings=s)
    report = write_report(name, since=t0, out=Path(run_dir) / "monitor.html", settings=s)
    hour = st.windows.iloc[1]
    info = {"name": name, "source": source, "version": st.version, "rows": len(ids), "outcomes": fed.get("stored", 0),
            "metric": st.headline, "live": float(hour[st.headline]),
            "validation": st.validation_score,
            "drifted": st.drift.loc[st.drift["drifted"].astype(bool), "column"].tolist() if len(st.drift) else [],
            "alerts": [a.message for a in st.alerts], "report": str(report)}
    _record(run_dir, monitor=info)
    return info


def _registered(run_dir: str | Path) -> tuple[Path, dict, dict]:
    """The run's artifacts folder, its result and the registered package's facts (an error if it is not registered)."""
    art = Path(run_dir) / "artifacts"
    meta = json.loads((art / "result.json").read_text())
    pkg = meta.get("package") or {}
    if "version" not in pkg:
        raise WorkbenchError("the run's model is not registered: run the package stage (06_package) with register=True")
    return art, meta, pkg


def trusted(result: AutoResult, values: dict | None):
    """``result`` with its model calibrated and given a decision rule as ``auto`` does (``models.decide.trust``, on
    the model's out-of-fold predictions), and what calibration did. A model calibrated before (the stage run again)
    is calibrated afresh from its inner model."""
    est = result.model.estimator
    inner = est.estimator if isinstance(est, Calibrated) else est
    board = result.leaderboard
    estimator, calibration, decision = trust(inner, result.best.oof, result.cleaned.y, board.task, board.classes, values)
    m = result.model
    result.model = TrainedModel(m.cleaner, estimator, m.task, m.classes, m.name, decision)
    return result, calibration


DRIVER_ROWS = 300  # training rows whose contributions make a run's drivers (the dashboard's and the trust report's)


def explained(run_dir: str | Path):
    """The run's model package and its explanation on ``DRIVER_ROWS`` training rows; None when the run has no model
    yet (or is from before models were packages)."""
    art = Path(run_dir) / "artifacts"
    if not (art / "model" / "manifest.json").is_file():
        return None
    pkg = load_package(art / "model")
    return pkg, explain(pkg, rows=DRIVER_ROWS)


def explanation_figures(run_dir: str | Path) -> dict:
    """The run's model explained: what drives its predictions and why it answers the first held-out row as it does;
    none when the run has no model yet."""
    if (got := explained(run_dir)) is None:
        return {}
    pkg, e = got
    target = pkg.model.cleaner.target_["name"]
    example = pd.read_parquet(Path(run_dir) / "artifacts" / "test_raw.parquet").head(1).drop(columns=[target],
                                                                                             errors="ignore")
    why = reasons(pkg, example, k=8)[0]
    answer = pkg.model.predict(example)[0]
    return {"drivers": e.figure(), "why": reasons_bar(why, e.scale, f"Why the model answers '{answer}' for the first "
                                                                    "held-out row")}


def load_result(run_dir: str | Path, prepared: Prepared | None = None, settings: Settings | None = None) -> AutoResult:
    """The run's training result as the stages hand it on: the prepared data, the leaderboard with its out-of-fold
    predictions and folds, and the run's model, kept as a package in ``artifacts/model`` (with its test metrics)."""
    prepared = prepared or load_prepared(run_dir)
    art = Path(run_dir) / "artifacts"
    if not (art / "model").is_dir():
        raise WorkbenchError(f"{run_dir} has no trained model: run the training stage (02_train) first")
    pkg = load_package(art / "model")
    test = {k.removeprefix("test_"): v for k, v in pkg.manifest["metrics"].items() if k.startswith("test_")}
    return AutoResult(prepared.profile, prepared.cleaned, prepared.schema, load_board(run_dir, prepared.cleaned.y, settings),
                      pkg.model, test_metrics=test, reference=prepared.reference, fingerprint=prepared.fingerprint,
                      chosen=pkg.model.name)


def choose(result: TrainResult, cand, prepared: Prepared) -> TrainResult:
    """``result`` with ``cand`` as its model if ``cand`` beats the current one by cross-validation (refit on all rows,
    scored on the test rows); else ``result`` itself."""
    metric = result.leaderboard.metric
    if not is_better(metric, cand.cv[metric], result.best.cv[metric]):
        return result
    cleaned = prepared.cleaned
    if cand.estimator is None:
        refit(cand, cleaned.X, cleaned.y)
    model = TrainedModel(cleaned.cleaner, cand.estimator, cleaned.task, result.leaderboard.classes, cand.name)
    return AutoResult(result.profile, cleaned, result.schema, result.leaderboard, model,
                      test_metrics=evaluate(model, prepared.test, cleaned.target), reference=result.reference,
                      fingerprint=result.fingerprint, chosen=cand.name)


def keep_result(run_dir: str | Path, result: TrainResult, prepared: Prepared, **record) -> None:
    """Keep ``result`` in the run for the next stage and the dashboard: its leaderboard and out-of-fold predictions,
    its model as a package (swapped in whole), the model's test predictions, and the run's record (``result.json``,
    which the dashboard reads) with ``record``'s entries."""
    art = _artifacts(run_dir)
    save_board(run_dir, result.leaderboard, prepared.cleaned.y)
    tmp = Path(tempfile.mkdtemp(prefix=".model.", dir=art))
    package_result(result, tmp / "model", name=str(prepared.cleaned.target))
    shutil.rmtree(art / "model", ignore_errors=True)
    (tmp / "model").rename(art / "model")
    shutil.rmtree(tmp)
    test, target = prepared.test, prepared.cleaned.target
    result.model.predict_frame(test).assign(actual=result.model.cleaner.transform_target(test[target]).to_numpy()).to_parquet(
        art / "test_predictions.parquet")
    board, best = result.leaderboard, result.best
    _record(run_dir, task=board.task, metric=board.metric, classes=board.classes, target=target, best_model=best.name,
            cv=best.cv, test_metrics=result.test_metrics, folds=len(board.folds), **record)


def _record(run_dir: str | Path, **entries) -> None:
    """Add ``entries`` to the run's record (``result.json``): what the dashboard and the summary show."""
    path = _artifacts(run_dir) / "result.json"
    record = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps(record | entries, indent=1, default=str))


def _remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def save_board(run_dir: str | Path, board, y: pd.Series) -> None:
    """The leaderboard as a table, every candidate's out-of-fold predictions, and what it takes to rebuild them."""
    art = _artifacts(run_dir)
    board.to_frame().to_csv(art / "leaderboard.csv", index=False)
    oof_frame(board, y).to_parquet(art / "oof.parquet")
    cands = [{"name": c.name, "model": c.model, "params": c.params, "status": c.status, "cv": c.cv, "cv_std": c.cv_std,
              "fit_time": c.fit_time, "predict_time": c.predict_time, "latency_ms": c.latency_ms,
              "latency_100_ms": c.latency_100_ms, "error": c.error} for c in board.candidates]
    (art / "candidates.json").write_text(json.dumps({"task": board.task, "metric": board.metric, "classes": board.classes,
                                                     "folds": len(board.folds), "candidates": cands}, indent=1, default=str))


def load_board(run_dir: str | Path, y: pd.Series, settings: Settings | None = None):
    """The saved leaderboard with out-of-fold predictions and the same folds (members refit on demand)."""
    s = settings or get_settings()
    art = Path(run_dir) / "artifacts"
    d = json.loads((art / "candidates.json").read_text())
    oof = pd.read_parquet(art / "oof.parquet")
    codes, _ = encode_target(y, d["task"])
    folds = make_folds(pd.Series(codes), d["task"], d["folds"], seed=s.seed)
    cands = []
    for c in d["candidates"]:
        cols = [c["name"]] if d["task"] == "regression" else [f"{c['name']}:{k}" for k in d["classes"]]
        pred = oof[cols].to_numpy() if all(col in oof for col in cols) else None
        cands.append(Candidate(c["name"], c["model"], c["params"], d["task"], c["status"], c["cv"], c["cv_std"],
                               c["fit_time"], c["predict_time"], c.get("latency_ms", math.nan),
                               c.get("latency_100_ms", math.nan),
                               None if pred is None else (pred[:, 0] if d["task"] == "regression" else pred), c["error"]))
    return Leaderboard(cands, d["task"], d["metric"], d["classes"], folds)


@dataclass
class RunResults:
    """What a pipeline run saved, as tidy frames: what the dashboard and the results panel show."""

    run_id: str
    meta: dict
    leaderboard: pd.DataFrame
    oof: pd.DataFrame
    test_predictions: pd.DataFrame
    importance: pd.DataFrame
    learning_curve: pd.DataFrame
    cleaning: CleaningReport
    profile: Profile
    summary: dict

    @property
    def task(self) -> str:
        return self.meta["task"]

    @property
    def classes(self) -> list | None:
        return self.meta["classes"]

    @property
    def models(self) -> list[str]:
        """Models with out-of-fold predictions, best first."""
        ok = self.leaderboard[self.leaderboard["status"] == "ok"]["model"].tolist()
        return [m for m in ok if m in self.oof.columns or f"{m}:{self.classes[0] if self.classes else ''}" in self.oof.columns]

    def scores(self, model: str):
        """(actual class codes or values, the model's out-of-fold probabilities n×k or predictions n)."""
        y = self.oof["actual"].to_numpy()
        if self.task == "regression":
            return y, self.oof[model].to_numpy()
        return y, self.oof[[f"{model}:{c}" for c in self.classes]].to_numpy()


def load_results(run: str | Path, settings: Settings | None = None) -> RunResults:
    """Read a run's saved results (by run id under the reports folder, or by path)."""
    root = Path(run) if Path(run).is_dir() else run_folder(str(run), settings)
    art = root / "artifacts"
    if not (art / "result.json").exists():
        known = ", ".join(list_runs(settings)[:10]) or "none yet (run `workbench run`)"
        raise WorkbenchError(f"run '{run}' has no results at {root}. Runs: {known}")
    read = lambda name: pd.read_parquet(art / name)
    summary_path = root / "summary.json"
    return RunResults(root.name, json.loads((art / "result.json").read_text()), pd.read_csv(art / "leaderboard.csv"),
                      read("oof.parquet"), read("test_predictions.parquet"), read("importance.parquet"),
                      read("learning_curve.parquet"),
                      CleaningReport.from_dict(json.loads((art / "cleaning_report.json").read_text())),
                      Profile.from_dict(json.loads((art / "profile.json").read_text())),
                      json.loads(summary_path.read_text()) if summary_path.exists() else {})


def _artifacts(run_dir: str | Path) -> Path:
    art = Path(run_dir) / "artifacts"
    art.mkdir(parents=True, exist_ok=True)
    return art


def _text_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Raw tables mix numbers and text in one column; Parquet needs one type, and the cleaner reads text."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object:
            out[c] = out[c].astype("string")
    return out
