"""Child servers: processes this one starts on a free port of 127.0.0.1, waits for until they answer, and stops — a
release's candidate and serving services, a decomposed model's part servers, the service a pipeline run sends its
test rows to, and the servers tests and benchmarks start. A server a release left running for a later command is
known only by its process id: ``alive``, ``wait_ready`` and ``terminate`` take one.

Examples
--------
>>> import sys, httpx
>>> port = free_port()
>>> with ChildServer([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
...                  f"http://127.0.0.1:{port}", ready="/") as server:
...     httpx.get(server.url).status_code
200
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from workbench.errors import WorkbenchError


class ChildServer:
    """``command`` started as a child process in a session of its own, serving HTTP at ``url``.

    Parameters
    ----------
    command : the argument list, e.g. ``[sys.executable, "-m", "workbench.cli", "serve", ...]``.
    url : where it answers, e.g. ``http://127.0.0.1:8000``.
    ready : the path that answers 200 once it serves (``/readyz``: its models are loaded).
    env : variables added to this process's environment.
    log : a file its output is appended to (default: a temporary file, removed by ``stop``).
    cwd : the folder it starts in (default: this process's).

    ``start`` only starts it; ``wait_ready`` returns once ``url + ready`` answers 200 and raises WorkbenchError when the
    process exits first or the time runs out; ``stop`` ends it gracefully (SIGTERM: in-flight requests finish). As a
    context manager it starts, waits, and stops.
    """

    def __init__(self, command: list[str], url: str, *, ready: str = "/readyz", env: dict | None = None,
                 log: str | Path | None = None, cwd: str | Path | None = None):
        self.command, self.url, self.ready, self.env, self.cwd = [str(c) for c in command], url, ready, env or {}, cwd
        self.log = Path(log) if log else None
        self._own_log = log is None
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1].split("/")[0])

    def start(self) -> ChildServer:
        if self._own_log:
            fd, name = tempfile.mkstemp(prefix="workbench-child-", suffix=".log")
            os.close(fd)
            self.log = Path(name)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=os.environ | self.env, cwd=self.cwd, start_new_session=True)
        return self

    def wait_ready(self, timeout: float = 120) -> int:
        return wait_ready(self.url, timeout, pid=self.pid, log=self.log, path=self.ready)

    def running(self) -> bool:
        return alive(self.pid)

    def output(self) -> str:
        """What it has written so far (stdout and stderr)."""
        return self.log.read_text(errors="replace") if self.log and self.log.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, grace: float = 30) -> str:
        """End it (``sig``, then SIGKILL after ``grace`` s); returns its output."""
        terminate(self.pid, grace, sig=sig)
        if self.proc is not None:
            self.proc.poll()  # settled: `alive` may have reaped it already
        text = self.output()
        if self._own_log and self.log:
            self.log.unlink(missing_ok=True)
        return text

    def __enter__(self) -> ChildServer:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class Service(ChildServer):
    """`workbench serve ARGS` as a child server on ``host:port`` (default: a free port of 127.0.0.1).

    ``python``: the interpreter whose workbench serves (a release's own environment); ``home``: the workbench home it
    serves from (default: this process's).
    """

    def __init__(self, *args: str, python: str = sys.executable, host: str = "127.0.0.1", port: int | None = None,
                 env: dict | None = None, log: str | Path | None = None, home: str | Path | None = None):
        port = port or free_port()
        super().__init__([python, "-m", "workbench.cli", "serve", *args, f"--host={host}", f"--port={port}"],
                         f"http://{host}:{port}", env=(env or {}) | ({"WORKBENCH_HOME": str(Path(home).resolve())}
                                                                      if home else {}), log=log)


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, timeout: float, *, pid: int | None = None, log: str | Path | None = None,
               path: str = "/readyz") -> int:
    """Poll ``url + path`` until it answers 200; the number of tries. Refused at once if process ``pid`` exits."""
    import httpx  # start-up cost: the prediction service imports this module (its part servers) and needs no httpx

    deadline, tries = time.time() + timeout, 0
    where = f" (its output: {log})" if log else ""
    while time.time() < deadline:
        tries += 1
        if pid and not alive(pid):
            raise WorkbenchError(f"the server for {url} exited before it became ready{where}")
        try:
            if httpx.get(url + path, timeout=2).status_code == 200:
                return tries
        except httpx.HTTPError:
            pass
        time.sleep(0.05)  # a refused connection costs a millisecond; a start is seen within 50 ms
    raise WorkbenchError(f"{url} was not ready within {timeout:g} s{where}")


def wait_listening(port: int, timeout: float, *, pid: int | None = None) -> None:
    """Until something accepts connections on 127.0.0.1:``port``: for a server with no readiness route (Voila).
    Refused at once if process ``pid`` exits."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pid and not alive(pid):
            raise WorkbenchError(f"the server for port {port} exited before it listened")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise WorkbenchError(f"nothing listened on port {port} within {timeout:g} s")


def alive(pid) -> bool:
    """Process ``pid`` runs (a zombie child of this process counts as ended, and is reaped)."""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        done, _ = os.waitpid(int(pid), os.WNOHANG)
        return done == 0
    except ChildProcessError:  # not our child: it runs
        return True


def terminate(pid, grace: float = 30, *, sig: int = signal.SIGTERM) -> None:
    """End process ``pid`` with ``sig`` (SIGTERM: a service finishes its in-flight requests), SIGKILL after ``grace``
    s. A process that leads a group of its own (a child server's session) is signalled with its group: what it
    started itself (uvicorn's workers, the server `mlflow models serve` runs) ends with it."""
    if not pid:
        return
    try:
        _signal(int(pid), sig)
    except ProcessLookupError:
        return
    end = time.time() + grace
    while time.time() < end and alive(pid):
        time.sleep(0.05)
    if alive(pid):
        _signal(int(pid), signal.SIGKILL)
        end = time.time() + 5
        while time.time() < end and alive(pid):
            time.sleep(0.05)


def _signal(pid: int, sig: int) -> None:
    if os.getpgid(pid) == pid:
        os.killpg(pid, sig)
    else:
        os.kill(pid, sig)
