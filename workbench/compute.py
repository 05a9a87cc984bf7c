"""Where parallel work runs: the one module that knows about the Dask cluster.

Empty ``WORKBENCH_DASK_ADDRESS`` means an embedded LocalCluster (one single-threaded
worker process per core, started on first use); an address connects to a running
scheduler. Small jobs (one task, or one core) run in this process and skip the cluster.
"""
from __future__ import annotations

import contextlib
import logging
import signal
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from workbench import kinds
from workbench.deadline import Deadline
from workbench.errors import WorkbenchError
from workbench.extras import extra
from workbench.settings import Settings, get_settings


@dataclass
class Outcome:
    """What became of one job: ``status`` is ok, failed or cancelled (by the time budget)."""

    key: Any
    status: str
    value: Any = None
    error: str = ""


def client(settings: Settings | None = None):
    """The Dask client for these settings (one per process, started on first use)."""
    s = settings or get_settings()
    key = (s.dask_address, s.n_threads)
    if key not in _CLIENTS:
        _connect(*key)
    return _CLIENTS[key]


class ClusterError(WorkbenchError):
    """The configured cluster cannot be used: names the address and what to check."""


CONNECT_S = 5  # how long to try a scheduler address before saying it is unreachable
CLOSE_S = 2  # how long closing the embedded cluster may take
KILL_S = 0.5  # how long a worker busy in a job may take to stop before it is terminated (Dask's default: 5 s)
_CLIENTS: dict[tuple[str, int], Any] = {}  # (address, threads) → the Client this process opened


def describe(settings: Settings | None = None) -> dict:
    """Where work runs: the scheduler, and each worker's threads and memory (``workbench cluster info``)."""
    s = settings or get_settings()
    info = client(s).scheduler_info()
    workers_ = [{"address": a, "name": str(w.get("name", "")), "threads": w["nthreads"],
                 "memory_gb": round(w["memory_limit"] / 1e9, 1) if w.get("memory_limit") else None}
                for a, w in sorted(info["workers"].items())]
    return {"kind": "cluster" if s.dask_address else "embedded LocalCluster", "scheduler": info["address"],
            "workers": workers_, "threads": sum(w["threads"] for w in workers_)}


@contextlib.contextmanager
def closing():
    """Every cluster started inside the block is closed as it ends, within about a second and without a word from
    Dask, on Ctrl-C or SIGTERM too (the CLI runs each command so: nothing is left for exit-time handlers to wait on)."""
    before = set(_CLIENTS)
    try:
        yield
    finally:
        close(set(_CLIENTS) - before)


def close(keys=None) -> None:
    """Close this process's clients (those of ``keys``, else all) and an embedded cluster with its worker processes."""
    keys = list(_CLIENTS if keys is None else keys)
    if not keys:
        return
    with _signals_deferred(replay=False), _dask_silenced():  # a second Ctrl-C meanwhile changes nothing
        for c in filter(None, (_CLIENTS.pop(k, None) for k in keys)):
            cluster = c.cluster
            with contextlib.suppress(Exception):
                c.close(timeout=CLOSE_S / 2)
            if cluster is not None:  # embedded: its nannies stop their workers, a busy one by SIGTERM after KILL_S
                with contextlib.suppress(Exception):
                    cluster.sync(_stop_workers, cluster)
                    cluster.close(timeout=CLOSE_S)


def _connect(address: str, n_threads: int) -> None:
    with extra("dask"):
        from distributed import Client, LocalCluster

    if address:
        try:
            c = Client(address, timeout=f"{CONNECT_S}s")
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"cannot reach the Dask scheduler at {address} within {CONNECT_S} s ({type(exc).__name__}); "
                               "check that it runs and that WORKBENCH_DASK_ADDRESS is right, or empty it to use an "
                               "embedded cluster") from None
        _CLIENTS[address, n_threads] = c
    else:
        # SIGINT blocked while the cluster starts its threads: they and every worker process they spawn, now or on a
        # restart, inherit the block. Ctrl-C (sent to the whole process group) then reaches only this process, which
        # closes the cluster, instead of printing a KeyboardInterrupt traceback from every worker.
        from multiprocessing import resource_tracker

        resource_tracker.ensure_running()  # now: started later, by a cluster thread, it would unblock SIGINT there
        with _signals_deferred(mask=(signal.SIGINT,)):
            cluster = LocalCluster(n_workers=n_threads, threads_per_worker=1, processes=True, dashboard_address=None,
                                   silence_logs=logging.CRITICAL, memory_limit=0)
            c = _CLIENTS[address, n_threads] = Client(cluster)
    # workers import the model libraries now, not inside the first timed job (about 2 s each)
    c.register_plugin(_warm_up_plugin(), name="workbench-warm-up")


async def _stop_workers(cluster) -> None:
    import asyncio

    await asyncio.gather(*(w.close(timeout=KILL_S) for w in list(cluster.workers.values())), return_exceptions=True)


@contextlib.contextmanager
def _signals_deferred(mask: tuple = (), replay: bool = True):
    """Hold SIGINT and SIGTERM until the block ends, then act on them (``replay``) or drop them: a cluster is never
    left half started or half closed. ``mask`` also blocks those signals in the threads started meanwhile."""
    held = []
    previous = {}
    if threading.current_thread() is threading.main_thread():  # only the main thread may set handlers
        previous = {sig: signal.signal(sig, lambda n, _: held.append(n)) for sig in (signal.SIGINT, signal.SIGTERM)}
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, mask)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)  # a signal that waited is handled now: held
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(held) if replay else ():
            signal.raise_signal(sig)


@contextlib.contextmanager
def _dask_silenced():
    """No log records from Dask and its event loop while the cluster closes (connections closing, workers killed)."""
    loggers = [logging.getLogger(name) for name in ("distributed", "tornado", "asyncio")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _warm_up_plugin():
    with extra("dask"):
        from distributed.diagnostics.plugin import WorkerPlugin

    class WarmUp(WorkerPlugin):
        """Imports what every job needs as a worker starts (and restarts)."""

        def setup(self, worker):
            # the whole library, as the first job would load it: pandas, scikit-learn, LightGBM, every model kind
            kinds.KINDS.load_all()

    return WarmUp()


def collect(collection, settings: Settings | None = None):
    """The computed value of a Dask collection (a lazy table, a column), computed on the cluster."""
    return client(settings).compute(collection, sync=True)


def workers(settings: Settings | None = None) -> int:
    """How many jobs can run at once: cluster worker threads, or the configured cores when embedded."""
    s = settings or get_settings()
    if not s.dask_address:
        return s.n_threads
    return sum(w["nthreads"] for w in client(s).scheduler_info()["workers"].values()) or 1


def threads_per_task(n_tasks: int, settings: Settings | None = None) -> int:
    """Inner threads (n_jobs) per job so that jobs × threads never exceeds the cores."""
    s = settings or get_settings()
    running = max(1, min(n_tasks, workers(s)))
    return max(1, s.n_threads // running)


def uses_cluster(n_jobs: int, settings: Settings | None = None) -> bool:
    """Whether this many jobs go to the cluster (rather than run one by one in this process)."""
    s = settings or get_settings()
    return n_jobs > 1 and (bool(s.dask_address) or s.n_threads > 1)


class Jobs:
    """Jobs submitted one at a time and collected as they finish, on the cluster or in this process.

    ``shared`` arguments (the data) are sent to the cluster once and passed first to every
    job. An exception inside a job becomes a failed Outcome, never a crash of the caller.

    Examples
    --------
    >>> jobs = Jobs(pow, shared=(2,), parallel=False)
    >>> jobs.submit("a", 10); [o.value for o in jobs.wait()]
    [1024]
    """

    def __init__(self, fn: Callable, *, shared: tuple = (), parallel: bool = True, settings: Settings | None = None):
        self.fn = fn
        self.settings = settings or get_settings()
        self.parallel = parallel
        self._local: list[tuple] = []
        self._futures: dict = {}
        self._count = 0
        if parallel:
            self.client = client(self.settings)
            # hash=False: a key of its own, so closing one pool never cancels data another pool scattered
            self.shared = tuple(self.client.scatter(a, broadcast=False, hash=False) if _is_data(a) else a for a in shared)
        else:
            self.shared = shared

    def submit(self, key, *args, **options) -> None:
        if self.parallel:
            # earlier jobs first: callers order them (fast models before slow ones, trial 0 before trial 1)
            f = self.client.submit(self.fn, *self.shared, *args, **options, pure=False, priority=-self._count)
            self._futures[f] = key
        else:
            self._local.append((key, args, options))
        self._count += 1

    @property
    def pending(self) -> int:
        return len(self._futures) + len(self._local)

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        """Outcomes of the jobs that finish within ``timeout`` seconds (at least one if any runs and none is given)."""
        if not self.parallel:
            if not self._local:
                return []
            key, args, options = self._local.pop(0)
            try:
                return [Outcome(key, "ok", self.fn(*self.shared, *args, **options))]
            except Exception as exc:  # a failing job is recorded, the others go on
                return [Outcome(key, "failed", error=f"{type(exc).__name__}: {exc}")]
        with extra("dask"):
            from distributed import wait as dask_wait

        if not self._futures:
            return []
        try:
            done = dask_wait(list(self._futures), timeout=timeout, return_when="FIRST_COMPLETED").done
        except TimeoutError:
            done = [f for f in self._futures if f.done()]
        return [self._outcome(f) for f in list(done)]

    def _outcome(self, f) -> Outcome:
        key = self._futures.pop(f)
        if f.status == "finished":
            return Outcome(key, "ok", f.result())
        if f.status == "cancelled":
            return Outcome(key, "cancelled", error="time budget used up before it started")
        exc = f.exception()
        return Outcome(key, "failed", error=f"{type(exc).__name__}: {exc}")

    def cancel_waiting(self) -> list[Outcome]:
        """Cancel the jobs that have not started; they come back as cancelled outcomes."""
        out = [Outcome(k, "cancelled", error="time budget used up before it started") for k, *_ in self._local]
        self._local.clear()
        if self.parallel and self._futures:
            running = {k for keys in self.client.processing().values() for k in keys}
            waiting = [f for f in self._futures if f.key not in running and not f.done()]
            self.client.cancel(waiting)
            out += [Outcome(self._futures.pop(f), "cancelled", error="time budget used up before it started") for f in waiting]
        return out

    def stop_running(self) -> list[Outcome]:
        """Stop jobs that will not stop themselves by restarting the workers (the only way in Dask)."""
        if not self.parallel or not self._futures:
            return []
        # not waiting for the workers to come back: under load that wait alone can outlast the budget (120 s)
        self.client.restart(wait_for_workers=False)
        out = [Outcome(k, "cancelled", error="stopped: it ran past the time budget") for k in self._futures.values()]
        self._futures.clear()
        return out

    def collect(self, deadline: Deadline) -> list[Outcome]:
        """The outcomes of the next look at the jobs: once ``deadline`` has passed, those not started are cancelled;
        once its grace has passed too (``Deadline.overrun``), those still running are stopped."""
        out = self.cancel_waiting() if deadline.expired() else []
        if deadline.overrun():
            out += self.stop_running()
        return out + self.wait(deadline.poll())

    def close(self) -> None:
        if self.parallel:
            self.client.cancel([*self._futures, *[a for a in self.shared if hasattr(a, "key")]])


def run(fn: Callable, jobs: list[tuple], *, shared: tuple = (), deadline: Deadline | None = None,
        settings: Settings | None = None, parallel: bool | None = None) -> Iterator[Outcome]:
    """Run ``fn(*shared, *job)`` for every job; yield an Outcome (keyed by the job's index) as each finishes.

    At the ``deadline`` jobs that have not started are cancelled; jobs still running once its grace has passed too
    (``Deadline.overrun``) are stopped by restarting the workers.
    ``parallel=False`` runs the jobs one by one in this process (None: on the cluster when ``uses_cluster``).
    """
    deadline = Deadline.of(deadline)
    parallel = uses_cluster(len(jobs), settings) if parallel is None else parallel
    pool = Jobs(fn, shared=shared, parallel=parallel, settings=settings)
    try:
        for i, job in enumerate(jobs):
            pool.submit(i, *job)
        while pool.pending:
            yield from pool.collect(deadline)
    finally:
        pool.close()


def start(n_jobs: int, settings: Settings | None = None) -> None:
    """Start the cluster now if ``n_jobs`` jobs will need it, so that its start-up does not eat a time budget."""
    if uses_cluster(n_jobs, settings):
        client(settings)


def _is_data(a) -> bool:
    import numpy as np
    import pandas as pd

    return isinstance(a, (pd.DataFrame, pd.Series, np.ndarray))
