"""Real `workbench serve` processes on free ports of 127.0.0.1, stopped by process id."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, *args: str, env: dict | None = None, ready_timeout: float = 90):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(os.devnull, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "serve", *map(str, args), "--port", str(self.port)],
                                     env=os.environ | (env or {}), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + ready_timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the service exited: {self.proc.stdout.read()[-3000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("the service did not become ready")

    def stop(self, sig=signal.SIGTERM, timeout: float = 30) -> str:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.stdout.read() if self.proc.stdout else ""


class DaskCluster:
    """A real `dask scheduler` and ``n`` `dask worker` processes on 127.0.0.1. Without a nanny a killed worker stays
    dead; with one (``nanny=True``) it is started again. ``worker_pids()`` are the worker processes themselves."""

    def __init__(self, n: int = 2, *, nanny: bool = False):
        port = free_port()
        self.address = f"tcp://127.0.0.1:{port}"
        env = os.environ | {"PYTHONPATH": os.getcwd()}
        self.procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                        "--port", str(port), "--no-dashboard"], env=env,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        for k in range(n):
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", self.address, "--nthreads", "1", "--no-dashboard",
                 "--name", f"w{k}", *([] if nanny else ["--no-nanny"])],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client

        with Client(self.address, timeout="30s") as c:
            c.wait_for_workers(n, timeout=60)

    @property
    def workers(self) -> list:
        return self.procs[1:]

    @property
    def client(self):
        """The workbench's own client of this cluster (a second Client closed in this process would stop its loop)."""
        from workbench.compute import client
        from workbench.settings import get_settings

        return client(get_settings(dask_address=self.address))

    def worker_pids(self) -> dict[str, int]:
        return self.client.run(os.getpid)

    def stop(self) -> None:
        self.client.close()  # before the scheduler goes: no reconnection noise
        for p in reversed(self.procs):
            p.kill()
            p.wait()
