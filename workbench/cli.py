"""`workbench ...`: the command line. Each command is a thin call into the library.

Start-up cost: the parser is built from plain text, and each command imports the library modules it calls inside its
function, so `workbench --help` answers in a fraction of a second, and a Ctrl-C while a command's modules load ends
it as cleanly as one during its work.
"""
from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import signal
import sys
import threading
import warnings

from workbench.errors import WorkbenchError


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    warnings.filterwarnings("ignore")
    # Ctrl-C stops a command even when it was started with SIGINT ignored or blocked (a shell's background job, a
    # parent's thread): a long job has no other way to be stopped cleanly
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    previous = signal.signal(signal.SIGTERM, _terminated)  # as Ctrl-C: `finally` blocks remove temporary files
    said = threading.Event()
    try:
        from workbench import compute  # start-up cost: after parsing, so `--help` does not load it

        # the embedded cluster's worker processes end with the command, without a word; and on Ctrl-C or SIGTERM
        # the process ends within END_S whatever the close or the interpreter's exit might wait on
        with compute.closing(), _ending(said):
            code = args.func(args) or 0
        if argv is None and getattr(args, "exit_at_once", False):
            _exit_at_once(code)  # the program, not a call: done, every file written and closed, the clusters too
        return code
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(_word(exc), file=sys.stderr)
        said.set()
        return _code(exc)
    finally:
        signal.signal(signal.SIGTERM, previous)


END_S = 3.0


def _exit_at_once(code: int) -> None:
    """End the process as an exit would, without the interpreter's teardown: freeing every object of some 2,400
    modules one by one costs seconds of a busy machine, after the work, inside a budget on the user's clock.
    Non-daemon threads are joined and exit handlers run (logging flushed, temporary folders removed, an MLflow run
    ended), as at any exit; then the streams are flushed and the process ends."""
    threading._shutdown()  # noqa: SLF001 - what the interpreter's exit does first (multiprocessing's children do so)
    atexit._run_exitfuncs()  # noqa: SLF001
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more can be said on it anyway
            stream.flush()
    os._exit(code)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the main thread is, so that a command ends as it does on Ctrl-C."""


def _terminated(signum, frame):
    raise Terminated()


def _word(exc: KeyboardInterrupt) -> str:
    return "terminated" if isinstance(exc, Terminated) else "interrupted"


def _code(exc: KeyboardInterrupt) -> int:
    return 128 + (signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)


@contextlib.contextmanager
def _ending(said: threading.Event):
    """On Ctrl-C or SIGTERM, a daemon timer that ends the process END_S later (saying so, unless ``said``)."""
    try:
        yield
    except KeyboardInterrupt as exc:
        word, code = _word(exc), _code(exc)  # ``exc`` itself is unbound once the except block ends, before the timer

        def end():
            if not said.is_set():
                print(word, file=sys.stderr)
            sys.stderr.flush()
            os._exit(code)
        timer = threading.Timer(END_S, end)
        timer.daemon = True
        timer.start()
        raise


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="workbench", description="AIMS Workbench: a business table to a trusted model.")
    sub = p.add_subparsers(title="commands")

    c = sub.add_parser("profile", help="profile a table: types, missing values, outliers, leakage")
    c.add_argument("--data", required=True, help="CSV/TSV/Parquet/Excel path, sklearn:<name> or demo")
    c.add_argument("--target", help="the column to predict (name or position)")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.set_defaults(func=_profile)

    c = sub.add_parser("train", help="clean, cross-validate the model zoo, print the leaderboard, log to MLflow")
    c.add_argument("--data", required=True, help="CSV/TSV/Parquet/Excel path, sklearn:<name> or demo")
    c.add_argument("--target", required=True, help="the column to predict (name or position)")
    c.add_argument("--test", help="a labelled table to score the best model on")
    c.add_argument("--task", choices=["binary", "multiclass", "regression"], help="override the detected task")
    c.add_argument("--models", help="comma-separated zoo names (default: every model that fits the task)")
    c.add_argument("--metric", help="the metric to rank by (default: roc_auc, log_loss or rmse)")
    c.add_argument("--folds", type=int, default=5)
    c.add_argument("--time-budget", type=float, default=300, help="seconds for the whole comparison")
    c.add_argument("--distributed", action="store_true",
                   help="a table larger than memory (a folder or glob of files): LightGBM across the Dask workers, "
                        "tested on held-out partitions")
    c.add_argument("--holdout", type=float, default=0.2, help="with --distributed: the share of partitions held out")
    c.add_argument("--out", help="a folder for the best model's package (and OUT.tar.gz), for `workbench predict`")
    c.add_argument("--register", metavar="NAME", help="register the best model as a new version of NAME")
    c.add_argument("--json", action="store_true", help="print one JSON object for scripts")
    c.set_defaults(func=_train)

    c = sub.add_parser("tune", help="search one model's hyperparameters with a strategy, trials in parallel")
    c.add_argument("--data", required=True)
    c.add_argument("--target", required=True)
    c.add_argument("--model", default="lightgbm", help="a zoo name (see `workbench models-zoo`)")
    c.add_argument("--strategy", default="tpe", help="grid, random, tpe, anneal or genetic")
    c.add_argument("--trials", type=int, default=50)
    c.add_argument("--time-budget", type=float, help="seconds for the whole search")
    c.add_argument("--cv", type=int, default=5, help="folds per trial")
    c.add_argument("--early-stop", type=int, help="stop after this many trials without progress")
    c.add_argument("--metric")
    c.add_argument("--task", choices=["binary", "multiclass", "regression"])
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=_tune)

    c = sub.add_parser("auto", help="compare, tune, ensemble and pick the best by CV, all within a time budget")
    c.add_argument("--data", required=True)
    c.add_argument("--target", required=True)
    c.add_argument("--time-budget", type=float, default=120, help="seconds for the whole run")
    c.add_argument("--test", help="a labelled table to score the final model on")
    c.add_argument("--task", choices=["binary", "multiclass", "regression"])
    c.add_argument("--out", help="a folder for the final model's package (and OUT.tar.gz), for `workbench predict`")
    c.add_argument("--register", metavar="NAME", help="register the final model as a new version of NAME")
    c.add_argument("--max-latency-ms", type=float, default=None,
                   help="leave out models that score one row slower than this (default: WORKBENCH_MAX_LATENCY_MS, 0.1; "
                        "0: no limit)")
    c.add_argument("--values", metavar="VALUES",
                   help="what each outcome is worth, for the decision that earns the most: tp=100,fp=-10,fn=-100,tn=0 "
                        "(two classes) or a JSON object {actual: {decided: value}}")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=_auto, exit_at_once=True)  # its budget ends with the process: no teardown after the work

    c = sub.add_parser("predict", help="score a raw table with a package or a registered model")
    c.add_argument("--model", required=True, help="a package folder or .tar.gz, or NAME[@alias|/version] in the registry")
    c.add_argument("--data", required=True)
    c.add_argument("--out", required=True, help="the predictions CSV; with a folder or glob of files: a folder of Parquet")
    c.add_argument("--distributed", action="store_true", help="score the partitions on the Dask workers")
    c.add_argument("--on-bad-rows", type=_bad_rows_policy, default="fail", metavar="POLICY",
                   help="a value the service would refuse: fail (default, naming row and column), skip the row, or "
                        "score it as missing; skipped or changed rows are listed in <out>.refused.csv")
    c.set_defaults(func=_predict)

    c = sub.add_parser("cluster", help="where parallel work runs: the scheduler, its workers, threads and memory")
    c.add_argument("action", choices=["info"])
    c.set_defaults(func=_cluster)

    c = sub.add_parser("compress", help="smaller, faster variants of a model, each measured; the best within a tolerance")
    g = c.add_mutually_exclusive_group(required=True)
    g.add_argument("--model", help="NAME[@alias|/version] in the registry")
    g.add_argument("--package", help="a package folder or .tar.gz")
    c.add_argument("--data", required=True, help="labelled validation rows the model did not train on")
    c.add_argument("--train", help="labelled training rows (distillation and feature pruning refit on them)")
    c.add_argument("--test", help="labelled rows, reported only")
    c.add_argument("--methods", help="comma-separated: prune, quantize, distill, compile (default: all)")
    c.add_argument("--max-metric-loss", type=float, default=0.002)
    c.add_argument("--out", help="a folder for the chosen variant's package (and OUT.tar.gz)")
    c.add_argument("--register", action="store_true", help="register the chosen variant as a new version of the model")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=_compress)

    c = sub.add_parser("decompose", help="split a model into parts that run apart and combine to the same answer")
    g = c.add_mutually_exclusive_group(required=True)
    g.add_argument("--model", help="NAME[@alias|/version] in the registry")
    g.add_argument("--package", help="a package folder or .tar.gz")
    c.add_argument("--parts", type=int, required=True, help="how many parts")
    c.add_argument("--by", choices=["trees", "members", "levels"], help="default: what the model is")
    c.add_argument("--optional-members", action="store_true", help="ensemble members may be missing when served")
    c.add_argument("--out", required=True, help="a folder for the decomposed package")
    c.set_defaults(func=_decompose)

    c = sub.add_parser("run", help="run the pipeline notebooks with papermill; reports go to reports/<run-id>/")
    c.add_argument("--data", default="demo", help="the table (default: the built-in demo)")
    c.add_argument("--target", default="churn", help="the column to predict (default: churn)")
    c.add_argument("--params", help="a YAML file of notebook parameters, e.g. time_budget: 120")
    c.add_argument("--run-id", help="the run's name (default: the date and time)")
    c.add_argument("--until", help="the last notebook to run, e.g. 03_tune (default: all)")
    c.set_defaults(func=_run)

    c = sub.add_parser("dashboard", help="serve the results dashboard with Voila on 127.0.0.1")
    c.add_argument("--run-id", help="the run to open first (default: the newest)")
    c.add_argument("--port", type=int, default=8866)
    c.add_argument("--host", default="127.0.0.1", help="beyond 127.0.0.1 only with users or keys in the settings")
    c.add_argument("--hash-password", action="store_true", help="print the hash of a password for WORKBENCH_DASHBOARD_USERS")
    c.set_defaults(func=_dashboard)

    c = sub.add_parser("report", help="a run's trust report: one offline HTML file and its PDF, for the people who sign off")
    c.add_argument("--run-id", required=True)
    c.add_argument("--out", help="the HTML file (default: reports/<run-id>/trust_report.html; the PDF beside it)")
    c.add_argument("--no-pdf", action="store_true", help="the HTML only (the PDF needs Chromium)")
    c.set_defaults(func=_report)

    _models_parser(sub)
    _monitor_parser(sub)

    c = sub.add_parser("serve", help="serve models over HTTP (REST and the Open Inference Protocol V2)")
    c.add_argument("--model", action="append", default=[], help="NAME, NAME@alias or NAME/version (repeatable)")
    c.add_argument("--package", action="append", default=[], help="a package folder or .tar.gz (repeatable)")
    c.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1; another address needs API keys or --open")
    c.add_argument("--port", type=int, default=8000)
    c.add_argument("--workers", type=int, default=1)
    c.add_argument("--max-rows", type=int, default=10_000)
    c.add_argument("--max-body-mb", type=float, default=10)
    c.add_argument("--timeout", type=float, default=30, help="seconds per request")
    c.add_argument("--max-wait", type=float, default=1.0,
                   help="seconds of queued scoring a request may wait behind; beyond it, 503 with Retry-After at once")
    c.add_argument("--reject-unseen", action="store_true", help="refuse categories never seen in training (422)")
    c.add_argument("--media-root", default="", help="the folder image and audio paths in requests are read from "
                                                    "(default: none; images and sounds come as data: URIs)")
    c.add_argument("--watch", type=float, default=0, help="follow moved aliases, polling every this many seconds")
    c.add_argument("--open", action="store_true", help="allow a non-local --host without API keys")
    c.add_argument("--decomposed", help="a decomposed package: one part server per part, and this service as the front")
    c.add_argument("--part-url", action="append", default=[],
                   help="with --decomposed: the address of a part server already running (one per part, in order)")
    c.add_argument("--part-timeout", type=float, default=5, help="seconds a part may take before it counts as failed")
    c.add_argument("--no-log", action="store_true", help="do not record predictions in the monitoring log")
    c.set_defaults(func=_serve)

    c = sub.add_parser("deploy", help="a gated release: package, upload, environment, start, health, validate, promote")
    c.add_argument("action", nargs="?", choices=["rollback", "status", "stop"], help="(none) run or continue a release")
    c.add_argument("name", nargs="?", help="the model (rollback, status, stop)")
    c.add_argument("--config", help="deploy.yaml (needed to release; optional for the actions)")
    c.add_argument("--restart", action="store_true", help="start the release over instead of continuing it")
    c.set_defaults(func=_deploy)

    c = sub.add_parser("backup", help="a consistent snapshot of the store (database, artifacts, checksums)")
    c.add_argument("--out", help="the folder of snapshots (default: backups/ beside the workbench home)")
    c.add_argument("--keep", type=int, help="keep only the newest N snapshots")
    c.set_defaults(func=_backup)

    c = sub.add_parser("restore", help="rebuild the store from a snapshot")
    c.add_argument("snapshot", help="a snapshot folder written by `workbench backup`")
    c.add_argument("--into", help="the store folder to create (default: the workbench home)")
    c.add_argument("--replace", action="store_true", help="replace a non-empty store (swapped only once complete)")
    c.set_defaults(func=_restore)

    c = sub.add_parser("models-zoo", help="list the model zoo")
    c.set_defaults(func=lambda a: print("\n".join(_zoo_lines())))
    return p


SEGMENT_HELP = ("the input column live quality is broken down by (default: WORKBENCH_MONITOR_SEGMENT, else the first "
                "category column with 2-20 levels)")


def _monitor_parser(sub) -> None:
    mon = sub.add_parser("monitor", help="the prediction log: outcomes, live quality and drift, reports, dashboard")
    msub = mon.add_subparsers(title="actions")
    c = msub.add_parser("feedback", help="true outcomes from a table with request_id and actual columns")
    c.add_argument("--model", required=True)
    c.add_argument("--data", required=True, help="CSV, Parquet or Excel with request_id and actual")
    c.set_defaults(func=_monitor_feedback)
    c = msub.add_parser("status", help="windows, alerts and drift, printed")
    c.add_argument("--model", required=True)
    c.add_argument("--since", help="30m, 6h, 7d or a date (default: the last day)")
    c.add_argument("--segment", metavar="COLUMN", help=SEGMENT_HELP)
    c.set_defaults(func=_monitor_status)
    c = msub.add_parser("report", help="an HTML drift-and-quality report under reports/monitor/")
    c.add_argument("--model", required=True)
    c.add_argument("--since", help="30m, 6h, 7d or a date (default: the last day)")
    c.add_argument("--out", help="the HTML file (default: reports/monitor/NAME-TIME.html)")
    c.add_argument("--segment", metavar="COLUMN", help=SEGMENT_HELP)
    c.set_defaults(func=_monitor_report)
    c = msub.add_parser("compact", help="rows older than the retention become hourly aggregates")
    c.add_argument("--older-than", type=float, help="hours (default: WORKBENCH_MONITOR_RETENTION_HOURS)")
    c.set_defaults(func=_monitor_compact)
    c = msub.add_parser("dashboard", help="the live monitoring dashboard (Voila) on 127.0.0.1")
    c.add_argument("--model", required=True)
    c.add_argument("--port", type=int, default=8867)
    c.add_argument("--host", default="127.0.0.1", help="beyond 127.0.0.1 only with users or keys in the settings")
    c.add_argument("--every", type=float, default=5, help="seconds between updates")
    c.add_argument("--segment", metavar="COLUMN", help=SEGMENT_HELP)
    c.set_defaults(func=_monitor_dashboard)


def _monitor_feedback(args) -> int:
    from workbench.monitor import feed_back_file  # start-up cost: only monitor commands load it

    r = feed_back_file(args.model, args.data)
    print(f"{r['stored']} outcomes stored for {args.model}")
    if r["unknown"]:
        print(f"{len(r['unknown'])} request ids are not predictions of {args.model} in the log: "
              + ", ".join(r["unknown"][:10]) + (" ..." if len(r["unknown"]) > 10 else ""))
        return 1
    return 0


def _monitor_status(args) -> int:
    import pandas as pd

    # start-up cost: only monitor commands load these
    from workbench.monitor import status
    from workbench.monitor.report import parse_since

    st = status(args.model, since=parse_since(args.since), segment=args.segment)
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(f"{st.model} version {st.version} ({st.task})\n")
        print(st.windows.to_string(index=False))
        if st.estimated:
            print("\n(estimated_*: quality expected from the model's confidence on every row, before outcomes arrive)")
        print(f"\nby {st.segment}:\n{st.segments.to_string(index=False)}" if st.segment else
              "\nby segment: no input column fits (--segment COLUMN)")
        print("\n" + (st.drift.to_string(index=False) if len(st.drift) else "drift: not enough rows yet"))
    if st.value is not None:
        print(f"\ndecision value per row: {st.value['realized_per_row']:,.4g} on {st.value['outcomes']} live outcomes, "
              f"{st.value['expected_per_row']:,.4g} expected")
    for n in st.notes:
        print(f"note: {n}")
    print("\n" + ("\n".join(f"ALERT {a.kind}: {a.message}" for a in st.alerts) or "no alerts"))
    return 0


def _monitor_report(args) -> int:
    from workbench.monitor.report import write_report  # start-up cost: only monitor commands load it

    print(f"report: {write_report(args.model, since=args.since, out=args.out, segment=args.segment)}")
    return 0


def _monitor_compact(args) -> int:
    from workbench.monitor import PredictionLog  # start-up cost: only monitor commands load it
    from workbench.settings import get_settings

    hours = args.older_than if args.older_than is not None else get_settings().monitor_retention_hours
    log = PredictionLog(create=False)
    n = log.compact(hours * 3600)
    print(f"{n} rows older than {hours:g} h compacted into hourly aggregates in {log.path}")
    return 0


def _monitor_dashboard(args) -> int:
    from workbench.monitor import PredictionLog  # start-up cost: only monitor commands load it

    PredictionLog(create=False).model_info(args.model)  # a clear error now rather than a broken page later
    env = {"WORKBENCH_MONITOR_MODEL": args.model, "WORKBENCH_MONITOR_EVERY": str(args.every)}
    return _voila("monitor_dashboard.ipynb", args.port, env | ({"WORKBENCH_MONITOR_SEGMENT": args.segment}
                                                               if args.segment else {}), args.host)


def _models_parser(sub) -> None:
    models = sub.add_parser("models", help="the model repository: versions, aliases, compare, promote, export, import")
    msub = models.add_subparsers(title="actions")
    c = msub.add_parser("list", help="registered models, or the versions of one")
    c.add_argument("name", nargs="?")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=_models_list)
    c = msub.add_parser("show", help="one version: tags, manifest (NAME, NAME@alias or NAME/version)")
    c.add_argument("ref")
    c.set_defaults(func=_models_show)
    c = msub.add_parser("compare", help="two versions side by side")
    c.add_argument("name")
    c.add_argument("first")
    c.add_argument("second")
    c.set_defaults(func=_models_compare)
    c = msub.add_parser("promote", help="point an alias (staging, champion, ...) at a version")
    c.add_argument("name")
    c.add_argument("version")
    c.add_argument("--alias", required=True)
    c.set_defaults(func=lambda a: print(_repository().promote(a.name, a.version, a.alias)
                                        and f"{a.name}@{a.alias} → version {a.version}"))
    c = msub.add_parser("archive", help="archive a version (its aliases are removed; it can still be exported)")
    c.add_argument("name")
    c.add_argument("version")
    c.set_defaults(func=lambda a: print(_repository().archive(a.name, a.version) and f"{a.name}/{a.version} archived"))
    c = msub.add_parser("export", help="a version as a package archive")
    c.add_argument("ref")
    c.add_argument("--out", required=True, help="the .tar.gz to write")
    c.set_defaults(func=lambda a: print(f"exported {a.ref} to {_repository().export(a.ref, a.out)}"))
    c = msub.add_parser("import", help="register a package archive or folder")
    c.add_argument("file")
    c.add_argument("--name", help="the model name (default: the package's)")
    c.set_defaults(func=_models_import)
    c = msub.add_parser("verify", help="check a package: format, checksums, reference predictions")
    c.add_argument("path")
    c.set_defaults(func=_models_verify)
    models.set_defaults(func=lambda a: models.print_help() or 2)


def _models_list(args) -> int:
    repository = _repository()
    frame = repository.versions(args.name) if args.name else repository.list_models()
    if args.json:
        print(frame.to_json(orient="records", date_format="iso"))
    else:
        print(frame.to_string(index=False) if len(frame) else "no registered models yet (workbench auto --register NAME)")
    return 0


def _models_show(args) -> int:
    repository = _repository()
    mv = repository.resolve(args.ref)
    pkg = repository.fetch(f"{mv.name}/{mv.version}")
    m = pkg.manifest
    print(f"{mv.name} version {mv.version}: {mv.description}")
    for k, v in sorted(mv.tags.items()):
        print(f"  tag {k}: {v}")
    print(json.dumps({k: m[k] for k in ("model", "task", "target", "classes", "version", "created", "python",
                                        "requirements", "data_fingerprint", "metrics", "params")}, indent=1, default=str))
    return 0


def _models_compare(args) -> int:
    print(_repository().compare(args.name, args.first, args.second).to_string())
    return 0


def _models_import(args) -> int:
    mv = _repository().import_package(args.file, args.name)
    print(f"registered {mv.name} version {mv.version}")
    return 0


def _models_verify(args) -> int:
    from workbench.registry.package import load_package

    pkg = load_package(args.path)
    m = pkg.manifest
    print(f"{args.path}: {m['name']} {m['version']} ({m['model']}, {m['task']}): {len(m['files'])} files match their "
          f"sha256; {len(pkg.reference)} reference rows give the stored predictions")
    return 0


def _serve(args) -> int:
    import signal
    from pathlib import Path

    from workbench.registry.package import load_package
    from workbench.serve import ServeConfig, serve  # start-up cost: FastAPI loads for `serve` only
    from workbench.settings import get_settings

    s = get_settings()
    sources = args.model + args.package + ([args.decomposed] if args.decomposed else [])
    if not sources:
        raise WorkbenchError("nothing to serve: give --model NAME[@alias], --package PATH (repeatable) or --decomposed PATH")
    keys = [k.strip() for k in s.serve_keys.split(",") if k.strip()]
    admin = [k.strip() for k in s.serve_admin_keys.split(",") if k.strip()]
    if args.host not in ("127.0.0.1", "localhost", "::1") and not (keys or admin) and not args.open:
        raise WorkbenchError(f"refusing to serve on {args.host} without API keys: set WORKBENCH_SERVE_KEYS and "
                             "WORKBENCH_SERVE_ADMIN_KEYS, or pass --open to serve openly")
    if args.media_root and not Path(args.media_root).is_dir():
        raise WorkbenchError(f"--media-root {args.media_root} is not a folder; give the folder requests' image and "
                             "audio paths are read from")
    config = ServeConfig(sources, keys, admin, max_body_bytes=int(args.max_body_mb * 1024 * 1024), max_rows=args.max_rows,
                         timeout_s=args.timeout, max_wait_s=args.max_wait, allow_unseen=not args.reject_unseen, watch_s=args.watch,
                         media_root=str(Path(args.media_root).resolve()) if args.media_root else "",
                         part_timeout_s=args.part_timeout)
    if s.monitor_log and not args.no_log:
        from workbench.monitor import store_path  # start-up cost: only the commands that use the log load it

        config.log_store = str(store_path(s).resolve())
        config.log_sample, config.log_queue = s.monitor_sample, s.monitor_queue
        config.check_s, config.retention_hours = s.monitor_check_s, s.monitor_retention_hours
        print(f"predictions are recorded in {config.log_store}", flush=True)
    from workbench.serve.models import load_source  # start-up cost: FastAPI loads for `serve` only

    fleet = None
    if args.decomposed:
        urls = args.part_url
        if not urls:  # one part server per part on 127.0.0.1, restarted when one dies
            from workbench.decompose.core import combiner_model
            from workbench.decompose.serving import PartFleet  # start-up cost: Starlette loads for `serve` only

            folder = args.decomposed
            pin = _repository().unpin(folder)
            if pin:  # NAME/VERSION=FOLDER: downloaded by the release that started this service
                folder = pin[2]
            elif not Path(folder).exists():  # NAME@alias or NAME/version: the part servers load from a downloaded copy
                folder = _repository().download(args.decomposed)[1]
            elif Path(folder).is_file():  # an archive: unpacked (and its checksums verified) for the part servers
                folder = load_package(folder, check=False, model_loader=combiner_model).path
            fleet = PartFleet(folder)
            # uvicorn re-raises SIGTERM after its graceful shutdown; as an exception it lets `finally` stop the parts
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
            fleet.start()
            fleet.supervise()
            urls = fleet.urls
            print("part servers: " + ", ".join(urls), flush=True)
        config.parts = {args.decomposed: urls}
    try:
        for src in sources:  # a clear error now, before uvicorn starts workers
            served = load_source(src, allow_unseen=config.allow_unseen, media_root=config.media_root,
                                 parts=config.parts.get(src), part_timeout=args.part_timeout)
            print(f"loaded {src}: {served.name} version {served.version}", flush=True)
        serve(config, host=args.host, port=args.port, workers=args.workers)
    finally:
        if fleet is not None:
            fleet.stop()
    return 0


def _deploy(args) -> int:
    # start-up cost: httpx loads for `deploy` only
    from workbench.deploy import DeployConfig, deploy, read_config, rollback, status, stop_serving

    if args.action is None:
        if not args.config:
            raise WorkbenchError("give --config deploy.yaml (see README: Releases)")

        def show(step, info):
            extra = f" ({info['seconds']} s)" if "seconds" in info else ""
            detail = info.get("details", {})
            detail = detail.get("error") or ", ".join(f"{k}={v}" for k, v in list(detail.items())[:4])
            print(f"  {step:12s} {info['status']}{extra} {detail}", flush=True)

        cfg = read_config(args.config)
        _check_before(store=True)
        rel = deploy(cfg, restart=args.restart, on_step=show)
        print(f"release {rel.id}: {rel.outcome}" + (f" ({rel.steps['promote']['details'].get('why')})"
                                                    if rel.outcome == "rejected" else ""))
        return 0 if rel.outcome == "promoted" else 1
    if not args.name and not args.config:
        raise WorkbenchError(f"workbench deploy {args.action} NAME [--config deploy.yaml]")
    name = args.name or read_config(args.config).model
    if args.action != "stop":  # stopping reads only the serving state under the workbench home
        _check_before(store=True)
    if args.action == "rollback":
        print(json.dumps(rollback(name, config=args.config), indent=1, default=str))
    elif args.action == "status":
        print(json.dumps(status(name, config=args.config), indent=1, default=str))
    else:
        cfg = read_config(args.config) if args.config else DeployConfig(model=name, version="champion")
        print("stopped" if stop_serving(cfg) else "nothing was serving")
    return 0


def _backup(args) -> int:
    from workbench.registry.backup import backup

    print(f"snapshot written to {backup(args.out, keep=args.keep)}")
    return 0


def _restore(args) -> int:
    from workbench.registry.backup import restore

    print(f"store restored into {restore(args.snapshot, into=args.into, replace=args.replace)}")
    return 0


def _profile(args) -> int:
    from workbench.data import load, profile

    prof = profile(df := load(args.data), args.target)
    print(json.dumps(prof.to_dict(), indent=1, default=str) if args.json else prof)
    if not args.json and df.attrs.get("encoding", "utf-8") != "utf-8":
        print(f"read as {df.attrs['encoding']} text (not UTF-8)")
    return 0


def _train(args) -> int:
    from workbench.auto import train
    from workbench.models import ZOO
    from workbench.registry.package import package_result
    from workbench.registry.tracking import log_training

    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    if args.time_budget is not None and args.time_budget <= 0:
        raise WorkbenchError("--time-budget must be a positive number of seconds")
    if args.distributed and (models and models != ["lightgbm"] or args.test):
        raise WorkbenchError("--distributed trains LightGBM and tests it on held-out partitions: "
                             "leave out --models and --test")
    _check_before(out=args.out, register=args.register, names={"--models": (ZOO, models)}, metric=args.metric,
                  store=True)
    if args.distributed:
        from workbench.models.distributed import train_distributed  # start-up cost: only --distributed loads it

        result = train_distributed(args.data, args.target, task=args.task, holdout=args.holdout)
        result.run_id, result.artifact_uri = log_training(result, data=args.data)
    else:
        result = train(args.data, args.target, test=args.test, task=args.task, models=models, metric=args.metric,
                       folds=args.folds, time_budget=args.time_budget, progress=not args.json)
    if args.out:
        package_result(result, args.out, name=args.register, archive=True)
    version = _register(result, args.register, args.out) if args.register else None
    if args.json:
        print(json.dumps(result.to_dict() | {"distributed": result.distributed, "out": args.out,
                                            "registered_version": version}, default=str))
        return 0
    print(result.cleaned.report)
    print()
    if result.distributed:
        d = result.distributed
        print(f"LightGBM trained on {d['train_rows']:,} rows ({d['train_partitions']} partitions) across "
              f"{d['workers']} Dask workers; tested on {d['test_rows']:,} rows of {d['test_partitions']} held-out "
              f"partitions; the cleaner learned from " + (f"a uniform sample of {d['cleaner_sample_rows']:,} rows"
                                                          if d["cleaner_sample_rows"] < d["train_rows"] else "every row"))
    else:
        print(f"leaderboard ({result.leaderboard.task}, {result.leaderboard.folds and len(result.leaderboard.folds)}-fold"
              f" CV, ranked by {result.leaderboard.metric}):")
        print(result.leaderboard)
    if result.test_metrics:
        print("\ntest metrics of the best model (" + result.best.name + "): " +
              ", ".join(f"{k} {v:.4f}" for k, v in result.test_metrics.items()))
    print(f"\nbest model: {result.best.name}; MLflow run {result.run_id}\nstored in {result.artifact_uri}")
    if args.out:
        print(f"package saved to {args.out}: workbench predict --model {args.out} --data NEW.csv --out predictions.csv")
    if version:
        print(f"registered {args.register} version {version}: workbench models promote {args.register} {version} "
              "--alias staging")
    return 0


def _tune(args) -> int:
    from workbench.models import ZOO
    from workbench.models.train import prepare
    from workbench.tune import STRATEGIES, tune

    if args.time_budget is not None and args.time_budget <= 0:
        raise WorkbenchError("--time-budget must be a positive number of seconds")
    _check_before(names={"--model": (ZOO, [args.model]), "--strategy": (STRATEGIES, [args.strategy])},
                  metric=args.metric, store=True)
    prepared = prepare(args.data, args.target, task=args.task)
    c = prepared.cleaned
    result = tune(args.model, c.X, c.y, task=c.task, strategy=args.strategy, metric=args.metric, cv=args.cv,
                  max_trials=args.trials, time_budget=args.time_budget, early_stop=args.early_stop)
    if args.json:
        print(json.dumps(result.to_dict(), default=str))
        return 0
    cols = ["trial", "score", "status", "seconds"]
    print(result.history[cols + [c for c in result.history if c.startswith("param_")]].to_string(index=False))
    d = result.to_dict()
    print(f"\nbest {d['metric']} {d['best_score']:.4f} with {d['best_params']}")
    print(f"{d['trials']} trials ({d['failed']} failed) in {d['seconds']} s; stopped: {d['stopped']}; MLflow run {d['run_id']}")
    return 0


def _auto(args) -> int:
    from workbench.auto import REGISTER_S, auto
    from workbench.deadline import Deadline
    from workbench.models.decide import parse_values

    if args.time_budget <= 0:
        raise WorkbenchError("--time-budget must be a positive number of seconds")
    _check_before(out=args.out, register=args.register, store=True)
    values = parse_values(args.values) if args.values else None
    # the user's clock: the budget counts from the process start, so start-up and imports are inside it, and the
    # registration after auto is planned in (auto ends that much earlier)
    deadline = Deadline.since_process_start(args.time_budget)
    result = auto(args.data, args.target, time_budget=deadline.before(REGISTER_S) if args.register else deadline,
                  test=args.test, task=args.task, out=args.out,
                  max_latency_ms=args.max_latency_ms, progress=not args.json, values=values)
    version = _register(result, args.register, args.out) if args.register else None
    if args.json:
        print(json.dumps(result.to_dict() | {"stages": result.stages, "ensembles": [e.to_dict() for e in result.ensembles],
                                            "out": args.out, "registered_version": version}, default=str))
        return 0
    print(result.leaderboard)
    for e in result.ensembles:
        print(f"ensemble {e.method}: CV {e.cv:.4f} against best member {e.best_member} {e.best_member_cv:.4f}")
    for name, why in result.too_slow.items():
        print(f"left out {name}: {why} (--max-latency-ms)")
    for line in (result.calibration, result.model.decision):
        if line is not None:
            print(line)
    if result.test_metrics:
        print("\ntest: " + ", ".join(f"{k} {v:.4f}" for k, v in result.test_metrics.items()))
    print(f"\nbest: {result.best.name} in {result.seconds:.0f} s {result.stages}; MLflow run {result.run_id}")
    if args.out:
        print(f"package saved to {args.out}: workbench predict --model {args.out} --data NEW.csv --out predictions.csv")
    if version:
        print(f"registered {args.register} version {version}: workbench models promote {args.register} {version} --alias staging")
    return 0


def _check_before(*, out=None, register: str | None = None, names: dict | None = None, metric: str | None = None,
                  store: bool = False) -> None:
    """Refuse now, in milliseconds, what would otherwise fail after the work: a used ``--out`` folder (or its archive),
    a model name the registry refuses, unknown names (``names``: flag → (registry, names given)) or metric, an MLflow
    store that cannot be reached or written. The target column is checked as the table loads, before any cleaning
    or training (``prepare``)."""
    from pathlib import Path

    from workbench.models.metrics import TASK_METRICS
    from workbench.registry.package import check_free

    if out:
        if Path(out).is_file():
            raise WorkbenchError(f"--out {out} is a file; give a folder for the package")
        try:
            check_free(out)
        except WorkbenchError as exc:
            raise WorkbenchError(f"--out {exc}") from None
        archive = Path(out).with_name(Path(out).name + ".tar.gz")
        if archive.exists():
            raise WorkbenchError(f"--out {out}: {archive} already exists and would be replaced; choose another folder "
                                 "or remove it")
        _check_writable(Path(out).parent, f"--out {out}", "choose a folder you can write")
    if register:
        try:
            _repository().check_name(register)
        except WorkbenchError as exc:
            raise WorkbenchError(f"--register: {exc}") from None
    for flag, (registry, given) in (names or {}).items():
        for name in given or ():
            try:
                registry.get(name)
            except WorkbenchError as exc:
                raise WorkbenchError(f"{exc} (from {flag})") from None
    if metric and not any(metric in known for known in TASK_METRICS.values()):
        known = sorted({m for task_metrics in TASK_METRICS.values() for m in task_metrics})
        raise WorkbenchError(f"unknown metric '{metric}'. Valid names: {', '.join(known)} (from --metric)")
    if store:
        _check_store()


def _check_store() -> None:
    """The MLflow store answers (a server) or can be written (the embedded store under the workbench home), checked
    before any work: MLflow itself takes seconds to import and minutes to give up on a server that is down."""
    import socket
    from pathlib import Path
    from urllib.parse import urlparse

    from workbench.settings import get_settings

    s = get_settings()
    uri = urlparse(s.tracking_uri)
    if uri.scheme in ("http", "https"):
        try:
            port = uri.port or (443 if uri.scheme == "https" else 80)
            socket.create_connection((uri.hostname, port), timeout=2).close()
        except OSError as exc:
            raise WorkbenchError(f"the MLflow server at {s.tracking_uri} cannot be reached ({exc.strerror or exc}): start "
                                 f"it, correct MLFLOW_TRACKING_URI, or unset it to use the store in {s.home}") from None
        return
    # the artifacts, the caches and (unless MLFLOW_TRACKING_URI names another) the sqlite database live here
    _check_writable(s.home, f"the workbench store {s.home}", "set WORKBENCH_HOME to a folder you can write")
    if os.environ.get("MLFLOW_TRACKING_URI") and uri.scheme in ("sqlite", "file", ""):
        path = Path(uri.path if uri.scheme != "sqlite" else s.tracking_uri.removeprefix("sqlite:///"))
        _check_writable(path.parent if uri.scheme == "sqlite" else path, f"the MLflow store {s.tracking_uri}",
                        "correct MLFLOW_TRACKING_URI or unset it")


def _check_writable(folder, what: str, todo: str) -> None:
    """``folder`` exists as a folder this process may write, or can be made so (its nearest existing parent is one)."""
    import tempfile
    from pathlib import Path

    p = Path(folder).resolve()
    while not p.exists() and p != p.parent:
        p = p.parent
    if not p.is_dir():
        raise WorkbenchError(f"{what} cannot be written: {p} is a file, not a folder; {todo}")
    try:  # tried, not inferred from permission bits: root ignores them, and read-only or virtual disks do not show them
        os.rmdir(tempfile.mkdtemp(prefix=".workbench-check-", dir=p))
    except OSError as exc:
        raise WorkbenchError(f"{what} cannot be written: {p}: {exc.strerror}; {todo}") from None


def _register(result, name: str, out) -> str:
    """Register a result's package (the one in ``out``, or a temporary one)."""
    import tempfile

    from workbench.registry.package import package_result

    repository = _repository()

    if out:
        return repository.register(out, name).version
    with tempfile.TemporaryDirectory() as tmp:
        return repository.register(package_result(result, f"{tmp}/package"), name).version


def _predict(args) -> int:
    from pathlib import Path

    from workbench.auto import predict_file

    if Path(args.data).is_dir() or any(ch in args.data for ch in "*?["):  # many partitions: streamed, resumable
        from workbench.stream import score_partitions  # start-up cost: only a folder or glob loads it

        r = score_partitions(args.model, args.data, args.out, distributed=args.distributed, on_bad_rows=args.on_bad_rows)
        print(f"{r['rows']} predictions in {r['partitions']} partitions at {r['out']} ({r['scored']} scored now, "
              f"{r['skipped']} done before){'' if r['complete'] else ' — not complete: run again to finish'}")
        if r["refused_rows"]:
            print(f"{r['refused_rows']} rows had values the model cannot take; each partition's are listed in its "
                  "<output>.refused.csv")
        return 0 if r["complete"] else 1

    pred, refused = predict_file(args.model, args.data, args.out, on_bad_rows=args.on_bad_rows)
    print(f"{len(pred)} predictions written to {args.out}")
    if len(refused):
        what = "left out" if args.on_bad_rows == "skip" else "scored with those values missing"
        print(f"{refused['row'].nunique()} rows had values the model cannot take ({what}); each is listed in "
              f"{Path(args.out).with_name(Path(args.out).stem + '.refused.csv')}")
    return 0


def _cluster(args) -> int:
    from workbench import compute

    d = compute.describe()
    print(f"{d['kind']} at {d['scheduler']}: {len(d['workers'])} workers, {d['threads']} threads")
    for w in d["workers"]:
        memory = f"{w['memory_gb']:g} GB" if w["memory_gb"] else "no memory limit"
        print(f"  {w['address']}  {w['threads']} threads  {memory}" + (f"  ({w['name']})" if w["name"] else ""))
    return 0


def _compress(args) -> int:
    from pathlib import Path

    import numpy as np

    from workbench.compress import METHODS, compress, save_variant
    from workbench.data import load

    methods = args.methods.split(",") if args.methods else None
    _check_before(out=args.out, names={"--methods": (METHODS, methods)}, store=bool(args.register or args.model))
    read = lambda path: load(path) if path else None  # noqa: E731
    valid, train_rows, test_rows = read(args.data), read(args.train), read(args.test)  # refused before the model loads
    source = _source(args)
    report = compress(source.model, valid, train=train_rows, test=test_rows, methods=methods,
                      max_metric_loss=args.max_metric_loss)
    out = version = None
    if report.chosen is not None and (args.out or args.register):
        import tempfile

        out = Path(args.out) if args.out else Path(tempfile.mkdtemp()) / "package"
        save_variant(report, source, out, archive=bool(args.out))
        version = _repository().register(out, source.name).version if args.register else None
    if args.json:
        frame = report.to_frame().reset_index().replace({np.nan: None})
        print(json.dumps({"metric": report.metric, "chosen": report.chosen.name if report.chosen else None,
                          "verdict": report.verdict, "variants": frame.to_dict(orient="records"), "skipped": report.skipped,
                          "out": str(out) if args.out else None, "registered_version": version}, default=str))
        return 0 if report.chosen is not None else 1
    print(report)
    for k, why in report.skipped.items():
        print(f"  skipped {k}: {why}")
    if args.out and out:
        print(f"package of {report.chosen.name} saved to {out}")
    if version:
        print(f"registered {source.name} version {version}")
    return 0 if report.chosen is not None else 1


def _decompose(args) -> int:
    from workbench.decompose.core import decompose_package
    from workbench.registry.package import load_package

    source = _source(args)
    out, diff = decompose_package(source, args.out, args.parts, args.by, optional_members=args.optional_members)
    pkg = load_package(out)
    for p in pkg.model.estimator.parts:
        print(f"  part {p.name}: {'required' if p.required else 'optional'}, weight {p.weight:g}")
    print(f"{len(pkg.model.estimator.parts)} parts ({pkg.model.estimator.combiner}); largest difference from the whole "
          f"model on the reference rows {diff:.1e}; package: {out}")
    print(f"score on Dask: workbench predict --model {out} --data FILE --out predictions.csv")
    return 0


def _source(args):
    """The package named by --package (folder or archive) or --model (the registry)."""
    from workbench.registry.package import load_package

    if args.package:
        return load_package(args.package)
    return _repository().fetch(args.model)


def _run(args) -> int:
    from workbench.runner import run_pipeline  # start-up cost: the pipeline's stack (httpx, deploy) for `run` only

    params = {}
    if args.params:
        import yaml

        try:
            params = yaml.safe_load(open(args.params)) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise WorkbenchError(f"{args.params}: cannot read the parameters ({exc})") from None
        if not isinstance(params, dict):
            raise WorkbenchError(f"{args.params}: expected a mapping of parameter: value")
    summary = run_pipeline(args.data, args.target, params=params, run_id=args.run_id, until=args.until)
    print(f"\nrun {summary['run_id']}: {summary['status']} in {summary['seconds']} s")
    for k, v in summary.get("metrics", {}).items():
        if k.startswith("test_") or k == "best_model":
            print(f"  {k}: {v:.4f}" if isinstance(v, float) else f"  {k}: {v}")
    print(f"reports: {summary['report_dir']} (executed notebooks, HTML, summary.json)")
    print(f"MLflow run: {summary['mlflow_run_id']}")
    comp = summary.get("compression")
    if comp:
        print(f"compression: {comp['verdict']}" + (f" (package: {comp['package']})" if comp.get("package") else ""))
    pkg = summary.get("package")
    if pkg:
        registered = f"; registered as {pkg['name']} version {pkg['version']} (@{pkg['alias']})" if "version" in pkg else ""
        print(f"package: {pkg['archive']}{registered}")
    dep = summary.get("deploy")
    if dep:
        where = (dep.get("serving") or {}).get("url", "")
        print(f"release: {dep['outcome']} version {dep['version']} (validated on {where}; "
              f"{'stopped again' if dep['stopped'] else 'still serving'})")
    mon = summary.get("monitor")
    if mon:
        print(f"monitoring: {mon['rows']} rows served and {mon['outcomes']} outcomes fed back; {mon['metric']} live "
              f"{mon['live']:.3f} vs {mon['validation']:.3f} at validation; "
              f"{len(mon['alerts'])} alert(s); report {mon['report']}")
    if summary["status"] != "ok":
        failed = next(e for e in summary["notebooks"] if e["status"] != "ok")
        print(f"error: {failed['notebook']} failed at {failed['error']}; partial output in {failed['output']}", file=sys.stderr)
        return 1
    print(f"\ndashboard:  .venv/bin/workbench dashboard --run-id {summary['run_id']}   (then open http://127.0.0.1:8866)")
    print("JupyterLab: make lab")
    if pkg and "version" in pkg:
        alias = "champion" if (summary.get("deploy") or {}).get("outcome") == "promoted" else pkg["alias"]
        print(f"serve it:   .venv/bin/workbench serve --model {pkg['name']}@{alias}   (http://127.0.0.1:8000/docs)")
        print(f"watch it:   .venv/bin/workbench monitor dashboard --model {pkg['name']}   (http://127.0.0.1:8867)")
    return 0


def _dashboard(args) -> int:
    from workbench.pipeline import list_runs, load_results  # start-up cost: the pipeline's stack for `dashboard` only

    if args.hash_password:
        import getpass

        from workbench.login import hash_password  # start-up cost: jupyter_server for this command only

        print(hash_password(getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")))
        return 0
    if args.run_id:
        load_results(args.run_id)  # a clear error now rather than a broken page later
    elif not list_runs():
        raise WorkbenchError("no runs to show yet: run `workbench run` first")
    return _voila("dashboard.ipynb", args.port, {"WORKBENCH_DASHBOARD_RUN": args.run_id or ""}, args.host)


def _report(args) -> int:
    from workbench.report import trust_report  # start-up cost: the pipeline's stack and plotly for `report` only

    for kind, path in trust_report(args.run_id, out=args.out, pdf=not args.no_pdf).items():
        print(f"{kind}: {path}")
    return 0


# the panels (ipywidgets and the manager Voila brings for them) and their charts
PAGE_EXTENSIONS = ("@jupyter-widgets/jupyterlab-manager", "@voila-dashboards/widgets-manager8", "jupyterlab-plotly")


def _voila(name: str, port: int, env: dict, host: str = "127.0.0.1") -> int:
    """Become Voila serving the packaged notebook ``name`` on ``host``:``port``, code hidden, behind a login when the
    settings name users or keys (and only then beyond 127.0.0.1). A kernel has run the notebook before a visitor comes
    (a pool of one, refilled after each visit): the page shows its charts without waiting for Python."""
    from workbench.login import IDENTITY_PROVIDER, check_bind  # start-up cost: jupyter_server for the dashboards only
    from workbench.monitor import store_path  # start-up cost: only the commands that use the log load it
    from workbench.runner import NOTEBOOKS
    from workbench.settings import get_settings

    notebook = NOTEBOOKS / name
    s = get_settings()
    # Voila starts the kernel in the notebooks' folder: hand it absolute paths to this store, log and these reports
    env = os.environ | env | {"WORKBENCH_HOME": str(s.home.resolve()), "WORKBENCH_REPORTS": str(s.reports.resolve()),
                              "WORKBENCH_MONITOR_STORE": str(store_path(s).resolve())}
    login = check_bind(host, s)
    print(f"dashboard on http://{host}:{port}{'  (login required)' if login else ''}  (Ctrl-C stops it)", flush=True)
    cmd = [sys.executable, "-m", "voila", str(notebook), "--no-browser", f"--port={port}", f"--Voila.ip={host}",
           "--strip_sources=True", "--show_tracebacks=False", f"--Voila.root_dir={notebook.parent.parent}",
           # the next kernel is heated once the visitor's page has loaded, not while its 60 files are being served
           "--preheat_kernel=True", "--pool_size=1", "--VoilaKernelManager.fill_delay=10",
           # only the page's own front-end: other installed extensions (catboost's 3.5 MB widget) cost every visit
           *(f"--VoilaConfiguration.extension_allowlist={ext}" for ext in PAGE_EXTENSIONS)]
    if login:
        cmd.append(f"--Voila.identity_provider_class={IDENTITY_PROVIDER}")
    # become Voila (no child left behind): a SIGTERM to this process stops Voila and its kernels
    os.chdir(notebook.parent.parent)
    os.execve(sys.executable, cmd, env)


def _repository():
    from workbench.registry import repository  # start-up cost: MLflow's client loads for the commands that use it

    return repository


def _bad_rows_policy(value: str) -> str:
    """``--on-bad-rows``, checked as argparse checks choices (the names load with the command, not with ``--help``)."""
    from workbench.data.encode import ON_BAD_ROWS

    if value not in ON_BAD_ROWS:
        raise argparse.ArgumentTypeError(f"'{value}': choose one of {', '.join(ON_BAD_ROWS)}")
    return value


def _zoo_lines() -> list[str]:
    from workbench.models import ZOO

    return [f"{n:14s} {ZOO.get(n).label} ({', '.join(ZOO.get(n).tasks)})" for n in ZOO]


if __name__ == "__main__":
    sys.exit(main())
