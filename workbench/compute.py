"""Where parallel work runs: the one module that knows about the Dask cluster.

Empty ``WORKBENCH_DASK_ADDRESS`` means an embedded LocalCluster (one single-threaded
worker process per core, started on first use); an address connects to a running
scheduler. Small jobs (one task, or one core) run in this process and skip the cluster.
"""
from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from workbench.settings import Settings, get_settings


@dataclass
class Outcome:
    """What became of one task: ``status`` is ok, failed or cancelled (by the time budget)."""

    index: int
    status: str
    value: Any = None
    error: str = ""


def client(settings: Settings | None = None):
    """The Dask client for these settings (one per process, started on first use)."""
    s = settings or get_settings()
    return _client(s.dask_address, s.n_threads)


@functools.cache
def _client(address: str, n_threads: int):
    from distributed import Client, LocalCluster

    if address:
        return Client(address, timeout="10s")
    cluster = LocalCluster(n_workers=n_threads, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=logging.CRITICAL, memory_limit=0)
    c = Client(cluster)
    # workers import the model libraries now, not inside the first timed job (about 2 s each)
    c.register_plugin(_warm_up_plugin(), name="workbench-warm-up")
    return c


def _warm_up_plugin():
    from distributed.diagnostics.plugin import WorkerPlugin

    class WarmUp(WorkerPlugin):
        """Imports what every job needs as a worker starts (and restarts)."""

        def setup(self, worker):
            import lightgbm  # noqa: F401

            import workbench.models.compare  # noqa: F401  (pulls in pandas and scikit-learn)

    return WarmUp()


def workers(settings: Settings | None = None) -> int:
    """How many tasks can run at once: cluster worker threads, or the configured cores when embedded."""
    s = settings or get_settings()
    if not s.dask_address:
        return s.n_threads
    return sum(w["nthreads"] for w in client(s).scheduler_info()["workers"].values()) or 1


def threads_per_task(n_tasks: int, settings: Settings | None = None) -> int:
    """Inner threads (n_jobs) per task so that tasks × threads never exceeds the cores."""
    s = settings or get_settings()
    running = max(1, min(n_tasks, workers(s)))
    return max(1, s.n_threads // running)


def uses_cluster(n_jobs: int, settings: Settings | None = None) -> bool:
    """Whether ``run`` would send this many jobs to the cluster (and not run them in this process)."""
    s = settings or get_settings()
    return n_jobs > 1 and (bool(s.dask_address) or s.n_threads > 1)


def start(n_jobs: int, settings: Settings | None = None) -> None:
    """Start the cluster now if ``run`` will need it, so that its start-up does not eat a time budget."""
    if uses_cluster(n_jobs, settings):
        client(settings)


def run(fn: Callable, jobs: list[tuple], *, deadline: float | None = None, settings: Settings | None = None,
        grace: float = 10.0) -> Iterator[Outcome]:
    """Run ``fn(*job)`` for every job; yield an Outcome as each finishes (in completion order).

    ``deadline`` (a ``time.time()`` value) cancels jobs that have not started by then;
    jobs still running ``grace`` seconds after it are stopped by restarting the workers.
    Exceptions inside a job become a failed Outcome, never a crash of the whole run.
    """
    s = settings or get_settings()
    if not uses_cluster(len(jobs), s):
        for i, job in enumerate(jobs):
            if deadline is not None and time.time() > deadline:
                yield Outcome(i, "cancelled", error="time budget used up before it started")
                continue
            try:
                yield Outcome(i, "ok", fn(*job))
            except Exception as exc:  # a failing job is recorded, the others go on
                yield Outcome(i, "failed", error=f"{type(exc).__name__}: {exc}")
        return
    yield from _run_dask(fn, jobs, deadline, client(s), grace)


def _run_dask(fn, jobs, deadline, c, grace) -> Iterator[Outcome]:
    from distributed import as_completed

    big = {}
    scattered = []
    for job in jobs:  # send each large argument once, not once per job
        args = []
        for a in job:
            if _is_data(a):
                key = id(a)
                if key not in big:
                    big[key] = c.scatter(a, broadcast=False)
                args.append(big[key])
            else:
                args.append(a)
        scattered.append(args)
    # earlier jobs first: callers order them (fast models before slow ones)
    futures = {c.submit(fn, *args, pure=False, priority=len(jobs) - i): i for i, args in enumerate(scattered)}
    pending = set(futures)
    stream = as_completed(futures)
    cancelled = False
    while pending:
        timeout = None if deadline is None else max(0.5, (deadline + (grace if cancelled else 0)) - time.time())
        try:
            batch = next(stream.batches()) if timeout is None else _next_batch(stream, timeout)
        except TimeoutError:
            batch = []
        for f in batch:
            pending.discard(f)
            i = futures[f]
            if f.status == "finished":
                yield Outcome(i, "ok", f.result())
            elif f.status == "cancelled":
                yield Outcome(i, "cancelled", error="time budget used up before it started")
            else:
                exc = f.exception()
                yield Outcome(i, "failed", error=f"{type(exc).__name__}: {exc}")
        if deadline is not None and time.time() > deadline and pending:
            running = {k for keys in c.processing().values() for k in keys}
            waiting = [f for f in pending if f.key not in running]
            if waiting and not cancelled:
                c.cancel(waiting)
            if cancelled and time.time() > deadline + grace:
                c.restart()  # the only way to stop a task that will not stop itself
                for f in list(pending):
                    pending.discard(f)
                    yield Outcome(futures[f], "cancelled", error="stopped: it ran past the time budget")
            cancelled = True
    for f in big.values():
        c.cancel(f)


def _next_batch(stream, timeout: float) -> list:
    end = time.time() + timeout
    while time.time() < end:
        if stream.has_ready():
            return stream.next_batch(block=False)
        time.sleep(0.05)
    raise TimeoutError


def _is_data(a) -> bool:
    import numpy as np
    import pandas as pd

    return isinstance(a, (pd.DataFrame, pd.Series, np.ndarray))
