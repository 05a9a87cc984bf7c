"""Large training: LightGBM across the Dask workers on a table larger than one machine's memory.

The table is a lazy one (a folder or glob of Parquet/CSV files, one partition per file). Every few partitions are
held out for the test (at least one); the cleaner is fitted on a seeded uniform sample of the training partitions
(``workbench.data.lazy``) and replays on every partition where it lies. Every placement is the workbench's own:
worker ``j`` (by address) cleans and holds share ``j`` of the training partitions (partition ``i`` goes to worker
``i mod W``) and runs LightGBM's data-parallel task on it as machine ``j`` (``lightgbm.dask``'s worker task), so the
model depends only on the data and the number of workers. A worker lost in the middle is retried: the training starts
again on the workers there are then (a nanny restarts a killed worker) and gives the same trees. The model is a plain
``TrainedModel``: it packages, registers and serves like any other.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
import uuid

import pandas as pd

from workbench.compute import client, collect
from workbench.data import Schema, clean, load, resolve_target
from workbench.data.lazy import is_lazy, row_counts, sample
from workbench.data.profile import profile_sample
from workbench.data.task import check_task
from workbench.errors import DataError, ModelError
from workbench.extras import extra
from workbench.models.compare import Candidate, Leaderboard, predict_scores
from workbench.models.metrics import DEFAULT_METRIC, score
from workbench.models.train import TrainResult, reference_rows
from workbench.models.trained import TrainedModel
from workbench.settings import Settings, get_settings

log = logging.getLogger(__name__)

HOLDOUT = 0.2  # the share of partitions held out for the test
RETRIES = 3  # trainings started again after a lost worker
EVAL_ROWS = 1_000_000  # the test metric is measured on at most this many held-out rows (a uniform thinning)
LABEL = "__label__"
STALL_S = 60.0  # an attempt whose workers have had nothing to do this long is cancelled and started again
TIME_OUT_MIN = 1  # LightGBM's socket time-out (minutes): a task waiting on a lost peer gives up after it


def train_distributed(data, target: str | int, *, task: str | None = None, params: dict | None = None,
                      holdout: float = HOLDOUT, settings: Settings | None = None) -> TrainResult:
    """Train LightGBM on every worker of the cluster (``workbench.compute``) and test it on held-out partitions.

    ``data`` is a folder or glob of Parquet/CSV files (or a Dask DataFrame); ``params`` are LightGBM's (the zoo's
    defaults otherwise). Returns a ``TrainResult`` whose leaderboard has the one model, tested on the held-out
    partitions.

    Examples
    --------
    ``train_distributed("big/*.parquet", "churn")`` — then ``log_training(result)`` (``workbench.registry.tracking``)
    to log it to MLflow, and ``package_result(result, "model/")``.
    """
    s = settings or get_settings()
    check_task(task)
    t0 = time.time()
    ddf = data if isinstance(data, pd.DataFrame) else load(data)
    if not is_lazy(ddf):  # one file, or a table in memory: a few partitions of it
        ddf = _partitioned(ddf)
    target = resolve_target(ddf, target)
    n = ddf.npartitions
    if n < 2:
        raise DataError(f"{data}: distributed training needs at least 2 partitions (files) — one or more to train on "
                        "and one held out to test; split the table into more files")
    if not 0 < holdout < 1:
        raise DataError(f"holdout must be a share between 0 and 1, not {holdout}")
    test_idx = held_out(n, holdout)
    train_idx = [i for i in range(n) if i not in test_idx]
    counts = row_counts(ddf, s)
    train_dd, test_dd = ddf.partitions[train_idx], ddf.partitions[test_idx]
    raw, rows = sample(train_dd, seed=s.seed, counts=[counts[i] for i in train_idx], settings=s)
    cleaned = clean(raw, target, task=task)
    texts = [c for c, p in cleaned.cleaner.plan_.items() if p["kind"] == "text"]
    if texts:  # its score is out-of-fold only on the cleaner's sample: on the partitions it would have seen the labels
        raise DataError(f"free-text columns ({', '.join(texts)}) are not trained distributed: train on one table "
                        "(`workbench train` without --distributed), or leave them out")
    prof = profile_sample(raw, rows, target, task=cleaned.task)
    params = {"n_estimators": 100, **(params or {})}
    t_fit = time.time()
    estimator, used = fit_lightgbm(train_dd, cleaned.cleaner, target, params, s)
    fit_time = time.time() - t_fit
    model = TrainedModel(cleaned.cleaner, estimator, cleaned.task, cleaned.cleaner.target_.get("classes"), "lightgbm")
    test_rows = sum(counts[i] for i in test_idx)
    metrics = evaluate_lazy(model, test_dd, target, test_rows, s)
    candidate = Candidate("lightgbm", "lightgbm", params, cleaned.task, fit_time=fit_time, estimator=estimator)
    board = Leaderboard([candidate], cleaned.task, DEFAULT_METRIC[cleaned.task], model.classes)
    result = TrainResult(prof, cleaned, Schema.infer(cleaned.cleaner, raw), board, model, metrics,
                         reference=reference_rows(raw, target, s.seed), fingerprint=_fingerprint(ddf, counts))
    result.distributed = {"partitions": n, "train_partitions": len(train_idx), "test_partitions": len(test_idx),
                          "train_rows": used["rows"], "test_rows": test_rows, "workers": used["workers"],
                          "attempts": used["attempts"], "cleaner_sample_rows": len(raw)}
    result.seconds = time.time() - t0
    return result


def held_out(n: int, share: float) -> list[int]:
    """The partitions held out for the test: ``share`` of ``n`` (at least one), spread evenly, the last included."""
    k = min(n - 1, max(1, round(n * share)))
    return sorted({n - 1 - int(j * n / k) for j in range(k)})


def fit_lightgbm(train_dd, cleaner, target: str, params: dict, s: Settings):
    """A LightGBM model trained across the workers on the cleaned training partitions; (local model, facts).

    Every placement is the workbench's own: worker ``j`` (by address) cleans and holds share ``j`` of the partitions,
    and LightGBM's training task on it runs there, as machine ``j`` of LightGBM's network (``lightgbm.dask``'s own
    worker task, ``_train_part``). (``DaskLGBMClassifier.fit`` lets the scheduler place the tasks that regroup the
    parts: under load it moved a share to the other worker, and the model came out different.)"""
    import lightgbm as lgb
    with extra("dask"):
        from distributed import wait

    c = client(s)
    task = cleaner.target_["task"]
    factory = lgb.LGBMRegressor if task == "regression" else lgb.LGBMClassifier
    meta = _xy(train_dd._meta, cleaner, target)
    error = None
    for attempt in range(1, RETRIES + 2):
        workers = sorted(c.nthreads())  # asked of the scheduler now (the client's own view lags a restart)
        if not workers:
            raise ModelError("the cluster has no workers; start some (`dask worker ADDRESS`) or empty "
                             "WORKBENCH_DASK_ADDRESS to use an embedded cluster")
        shares = [list(range(j, train_dd.npartitions, len(workers))) for j in range(len(workers))]
        workers, shares = zip(*[(w, share) for w, share in zip(workers, shares) if share])
        try:
            with _watch(c, list(workers)):
                fresh = uuid.uuid4().hex  # this attempt's tasks are its own: a key of a failed attempt keeps its
                # placement on the lost worker in the scheduler, and a share waiting for that worker waits for good
                parts = [c.compute(train_dd.partitions[list(share)].map_partitions(_xy, cleaner, target, fresh, meta=meta),
                                   workers=[w], allow_other_workers=False) for w, share in zip(workers, shares)]
                wait(parts)
                for p in parts:
                    if p.status != "finished":
                        p.result()  # the error of the cleaning, as it happened
                rows = sum(c.gather([c.submit(len, p, workers=[w], allow_other_workers=False)
                                     for w, p in zip(workers, parts)]))
                if rows == 0:
                    raise DataError(f"no training rows have a value of '{target}'")
                model = _train_shares(c, list(workers), parts, factory,
                                      {"random_state": s.seed, "deterministic": True, "force_row_wise": True,
                                       "verbose": -1, "tree_learner": "data", **params})
            return model, {"rows": rows, "workers": len(parts), "attempts": attempt}
        except (DataError, TypeError, ValueError):
            raise
        except Exception as exc:  # a lost worker: LightGBM's sockets break, Dask loses the share it held
            error = f"{type(exc).__name__}: {exc}"  # only its text: its traceback would hold the attempt's futures
            log.warning("distributed training attempt %d failed (%s); starting again on the workers there are",
                        attempt, error[:250])
            parts = None  # released: the next attempt computes its shares again
            _settle(c, len(workers))
            if _free_threads(c):
                _settle(c, len(workers))
    raise ModelError(f"distributed training failed {RETRIES + 1} times; the last error: {error}")


def _train_shares(c, workers: list[str], parts: list, factory, params: dict):
    """LightGBM's data-parallel training: on worker ``j``, its share ``parts[j]``, as machine ``j`` of the network.
    Returns machine 0's model (every machine ends with the same trees), without the network's settings."""
    from urllib.parse import urlparse

    from lightgbm.basic import _ConfigAliases
    from lightgbm.dask import _assign_open_ports_to_workers, _train_part

    for alias in _ConfigAliases.get("num_machines", "num_threads", "machines", "local_listen_port"):
        params.pop(alias, None)  # set here, per worker
    nthreads = c.nthreads()
    sockets, ports = _assign_open_ports_to_workers(client=c, workers=workers)
    machines = ",".join(f"{urlparse(w).hostname}:{ports[w]}" for w in workers)
    shares = [c.submit(_as_part, p, workers=[w], allow_other_workers=False, pure=False) for w, p in zip(workers, parts)]
    futures = [c.submit(_train_part, params={**params, "num_threads": nthreads[w]}, model_factory=factory,
                        list_of_parts=[share], machines=machines, local_listen_port=ports[w],
                        num_machines=len(workers), time_out=TIME_OUT_MIN, remote_socket=sockets[w],
                        return_model=j == 0, workers=[w], allow_other_workers=False, pure=False)
               for j, (w, share) in enumerate(zip(workers, shares))]
    model = c.gather(futures)[0]
    for alias in _ConfigAliases.get("machines", "local_listen_port", "num_machines", "timeout"):
        model._other_params.pop(alias, None)
    return model


def _as_part(frame: pd.DataFrame) -> dict:
    """A cleaned share as LightGBM's worker task takes it."""
    return {"data": frame.drop(columns=[LABEL]), "label": frame[LABEL]}


@contextlib.contextmanager
def _watch(c, workers: list[str], stall_s: float = STALL_S):
    """While an attempt runs: cancel its tasks if one of its workers is lost (its shares and LightGBM's tasks are
    bound to their workers: a lost worker's task would never run, and every wait would hang), or if no worker has had
    anything to do for ``stall_s`` seconds (the attempt waits on something that will never run). Once cancelled, the
    attempt's later tasks are cancelled too, until it gives up. An attempt that fails cancels every task it made:
    the futures in its error's traceback would otherwise keep them wanted, placed on a worker that may be gone."""
    with extra("dask"):
        from distributed import Future

    stop = threading.Event()
    mine = set(c.futures)

    def cancel(reason: str, force: bool = False) -> None:
        c.cancel([Future(k, c) for k in list(c.futures) if k not in mine], reason=reason, force=force)

    def watch():
        reason, idle_since = None, time.monotonic()
        while not stop.wait(0.5):
            try:
                if reason is None:
                    if not set(workers) <= set(c.nthreads()):
                        reason = "a worker was lost"
                    elif any(c.processing().values()):
                        idle_since = time.monotonic()
                    elif time.monotonic() - idle_since > stall_s:
                        reason = f"no worker had anything to do for {stall_s:g} s"
                if reason is not None:
                    cancel(reason)
            except Exception as exc:  # a slow answer under load must not end the watch: look again
                log.debug("the training watch could not ask the scheduler (%s); looking again", exc)

    t = threading.Thread(target=watch, daemon=True, name="workbench-training-watch")
    t.start()
    try:
        yield
    except BaseException:
        stop.set()
        t.join()
        try:
            cancel("the training attempt failed", force=True)
        except Exception as exc:  # the next attempt's settling waits for the scheduler to let go of them
            log.debug("could not cancel the failed attempt's tasks (%s)", exc)
        raise
    finally:
        stop.set()
        t.join()


def _settle(c, expected: int, timeout: float = 60.0) -> None:
    """After a failed attempt, wait for ``expected`` workers that stay the same for a second (the scheduler has
    noticed the lost one and its nanny has brought it back) and for the scheduler to hold no task bound to a worker it
    no longer has (a key the next attempt shares, such as a file's read, would wait for that worker for good).
    (Survivors are not restarted wholesale: that raced with the nannies' own restarts and cost another attempt. A
    LightGBM task of the failed attempt that waits on a lost peer's socket gives its thread back after
    ``TIME_OUT_MIN``; one stuck in setting up the network never does, and
    ``_free_threads`` restarts its worker.)"""
    def pinned_to_lost(dask_scheduler) -> int:  # tasks that may run only on workers the scheduler no longer has
        alive = set(dask_scheduler.workers)
        return sum(1 for ts in dask_scheduler.tasks.values()
                   if ts.worker_restrictions and not ts.loose_restrictions and not ts.worker_restrictions & alive)

    time.sleep(1.0)  # the failure is often seen by a peer's socket before the scheduler sees the worker go
    deadline, seen, since = time.time() + timeout, None, time.time()
    while time.time() < deadline:
        try:
            now = set(c.nthreads())
            if now != seen:
                seen, since = now, time.time()
            elif len(now) >= expected and time.time() - since >= 1.0 and not c.run_on_scheduler(pinned_to_lost):
                return
        except Exception as exc:  # a slow answer under load: look again
            log.debug("could not ask the scheduler about its workers (%s)", exc)
        time.sleep(0.25)


def _free_threads(c) -> list[str]:
    """Restart the workers whose thread a LightGBM task of the failed attempt still holds; returns them. A survivor
    whose peer died while the network was being set up waits in LightGBM's C code for a connection that never comes
    (no time-out applies there): cancelling the task does not end it, and the next attempt's tasks would queue behind
    it for good. Only workers with a nanny can be restarted; others are reported and keep their thread."""
    def training(dask_worker) -> bool:
        return any(str(ts.key).startswith("_train_part") for ts in dask_worker.state.all_running_tasks)

    try:
        busy = [w for w, stuck in c.run(training, on_error="return").items() if stuck is True]
    except Exception as exc:  # the cluster is changing under us: the next attempt's watch looks again
        log.debug("could not ask the workers what they run (%s)", exc)
        return []
    if busy:
        log.warning("restarting %s: a LightGBM task of the failed attempt still holds its thread", ", ".join(busy))
        try:
            c.restart_workers(busy, timeout=60, raise_for_error=False)
        except Exception as exc:  # no nanny: the worker cannot be restarted from here
            log.warning("could not restart %s (%s); the next attempt may wait for its thread", ", ".join(busy), exc)
    return busy


def _xy(part: pd.DataFrame, cleaner, target: str, attempt: str = "") -> pd.DataFrame:
    """A partition's cleaned features with the label codes in ``LABEL`` (rows without a usable label left out).
    ``attempt`` is not used: it makes the task keys of every attempt different."""
    y = cleaner.transform_target(part[target])
    keep = y.notna()
    X = cleaner.transform(part[keep.to_numpy()])
    if cleaner.target_["task"] == "regression":
        X[LABEL] = y[keep].astype("float64").to_numpy()
    else:
        X[LABEL] = pd.Categorical(y[keep], categories=cleaner.target_["classes"]).codes.astype("int32")
    return X


def evaluate_lazy(model: TrainedModel, test_dd, target: str, test_rows: int, s: Settings) -> dict[str, float]:
    """The task's metrics on the held-out partitions, scored where they lie (at most ``EVAL_ROWS`` rows, uniform)."""
    keep = min(1.0, EVAL_ROWS / max(test_rows, 1))
    k = len(model.classes or [])
    meta = pd.DataFrame({"actual": pd.Series(dtype="float64"),
                         **{f"s{j}": pd.Series(dtype="float64") for j in range(max(k, 1))}})
    scored = collect(test_dd.map_partitions(_scored, model, target, keep, s.seed, meta=meta, partition_info=True), s)
    if scored.empty:
        raise DataError(f"the held-out partitions have no rows with a value of '{target}'")
    y = scored["actual"].to_numpy()
    if model.task == "regression":
        return score("regression", y, scored["s0"].to_numpy())
    return score(model.task, y.astype(int), scored[[f"s{j}" for j in range(k)]].to_numpy())


def _scored(part: pd.DataFrame, model: TrainedModel, target: str, keep: float, seed: int,
            partition_info=None) -> pd.DataFrame:
    if keep < 1.0:
        part = part.sample(frac=keep, random_state=seed + partition_info["number"])
    y = model.cleaner.transform_target(part[target])
    ok = y.notna().to_numpy()
    part, y = part[ok], y[ok]
    X = model.cleaner.transform(part)
    k = len(model.classes or [])
    scores = predict_scores(model.estimator, X, model.task, k).reshape(len(part), -1)
    actual = (y.astype("float64").to_numpy() if model.task == "regression"
              else pd.Categorical(y, categories=model.classes).codes.astype("float64"))
    return pd.DataFrame({"actual": actual, **{f"s{j}": scores[:, j] for j in range(scores.shape[1])}})


def _partitioned(df: pd.DataFrame):
    """An in-memory table as a Dask DataFrame of a few partitions (for trying distributed training on small data)."""
    with extra("dask"):
        import dask.dataframe as dd

    return dd.from_pandas(df.reset_index(drop=True), npartitions=max(4, min(20, len(df) // 50_000)), sort=False)


def _fingerprint(ddf, counts: list[int]) -> dict:
    """A lazy table's identity without reading it again: its columns, types and rows per partition."""
    h = hashlib.sha256(repr([(str(c), str(t)) for c, t in ddf.dtypes.items()] + counts).encode())
    return {"rows": int(sum(counts)), "columns": len(ddf.columns), "sha256": h.hexdigest(), "partitions": len(counts)}
