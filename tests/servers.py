"""Real `workbench serve` processes on free ports of 127.0.0.1 (the library's child servers), and real Dask clusters."""
from __future__ import annotations

import os
import subprocess
import sys

from workbench.child import Service, free_port  # noqa: F401  (free_port: for the tests)


class Server(Service):
    """`workbench serve ARGS` on a free port, ready when made; ``stop()`` returns what it printed."""

    def __init__(self, *args: str, env: dict | None = None, ready_timeout: float = 90):
        super().__init__(*map(str, args), env=env)
        self.start()
        try:
            self.wait_ready(ready_timeout)
        except BaseException:
            print(self.stop())
            raise


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
