"""Ctrl-C and SIGTERM, sent to a real `workbench` process as a terminal or a supervisor sends them: the command ends
within about two seconds with one line, no traceback from any process (the Dask workers included), no process left
behind and nothing half-written."""
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from workbench.auto import CLUSTER_S
from workbench.cli import END_S

EXIT_S = 3  # required: 2 s from the signal to the exit; 1 s of slack for a machine busy with other tests
BAR = re.compile(r"\w+: +\d+%\|[^|]*\|[^\]\n]*\]")  # a tqdm progress bar's state, e.g. "models:  44%|███  | 4/9 [...]"


@pytest.mark.parametrize("command,sig,to", [
    # Ctrl-C: the terminal signals the whole process group; a budget long enough for auto to train on Dask workers
    (["auto", "--time-budget", str(CLUSTER_S + 100)], signal.SIGINT, "group"),
    (["train"], signal.SIGTERM, "main"),  # a supervisor (systemd, docker stop, kill) signals the main process
])
def test_a_signal_ends_the_command_at_once_with_one_line_and_nothing_left(tmp_path, command, sig, to):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", command[0], "--data", "demo", "--target", "churn",
                             *command[1:], "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            cwd=tmp_path, env=os.environ | {"WORKBENCH_HOME": str(tmp_path / "home")},
                            start_new_session=True,  # a process group of its own, as a shell gives a command
                            # started with SIGINT ignored, as a non-interactive shell starts a background job (CI's
                            # runner did): Ctrl-C must stop it all the same
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    stderr = _Reader(proc.stderr)
    try:
        deadline = time.time() + 90
        while "models:" not in stderr.text:  # the progress bar: the cluster is up, its workers are training
            assert proc.poll() is None and time.time() < deadline, stderr.text[-3000:]
            time.sleep(0.1)
        time.sleep(0.5)
        assert len(_alive(proc.pid)) >= 3, "the Dask workers should be running"  # this process and two workers
        seen, t0 = len(stderr.text), time.time()
        os.killpg(proc.pid, sig) if to == "group" else os.kill(proc.pid, sig)
        proc.wait(timeout=30)
        took = time.time() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    stderr.join()
    assert took < EXIT_S, f"{took:.1f} s from the signal to the exit"
    assert proc.returncode == 128 + sig
    assert "Traceback" not in stderr.text and "Error" not in stderr.text, stderr.text[-3000:]
    words = BAR.sub("", stderr.text[seen:]).split()  # the bar's last state may be drawn again as it closes
    assert words == ["interrupted" if sig == signal.SIGINT else "terminated"], stderr.text[seen:]
    left, deadline = _alive(proc.pid), time.time() + 5
    while left and time.time() < deadline:
        time.sleep(0.1)
        left = _alive(proc.pid)
    assert not left, f"processes left behind: {left}"
    if out.exists():  # a package appears whole or not at all
        from workbench.registry.package import verify_files

        verify_files(out)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary files left behind"


INTERRUPT_AT_IMPORT = """
import os, signal, sys

class CtrlC:  # a Ctrl-C just as the module named on the command line starts to load
    def find_spec(self, name, path=None, target=None):
        if name == sys.argv[1]:
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)

sys.meta_path.insert(0, CtrlC())
from workbench.cli import main
sys.exit(main(["train", "--data", "demo", "--target", "churn"]))
"""


@pytest.mark.parametrize("module", ["pandas", "sklearn", "lightgbm"])
def test_ctrl_c_while_a_command_loads_its_modules_ends_it_with_one_line(tmp_path, module):
    """Commands load their modules once the command line is parsed: a Ctrl-C then is a Ctrl-C like any other."""
    p = subprocess.run([sys.executable, "-c", INTERRUPT_AT_IMPORT, module], capture_output=True, text=True, cwd=tmp_path,
                       env=os.environ | {"WORKBENCH_HOME": str(tmp_path / "home")}, timeout=120)
    assert p.returncode == 128 + signal.SIGINT, p.stderr[-3000:]
    assert p.stderr.split() == ["interrupted"], p.stderr[-3000:]


STUCK_AFTER_CTRL_C = """
import threading, time
from workbench.cli import _ending

try:
    with _ending(threading.Event()):
        raise KeyboardInterrupt
except KeyboardInterrupt:
    time.sleep(60)  # what the interpreter's exit may wait on: a thread, a worker that does not answer
"""


def test_a_command_stuck_after_ctrl_c_is_ended_by_its_timer():
    t0 = time.time()
    p = subprocess.run([sys.executable, "-c", STUCK_AFTER_CTRL_C], capture_output=True, text=True, timeout=120)
    assert p.returncode == 128 + signal.SIGINT, p.stderr[-3000:]
    assert p.stderr.split() == ["interrupted"], p.stderr[-3000:]
    # the timer ends it END_S after the Ctrl-C (plus the process's start-up), long before the 60 s sleep would
    assert time.time() - t0 < END_S + 20, "the timer should end the process END_S after the Ctrl-C, not the sleep"


class _Reader(threading.Thread):
    """Everything a pipe delivers, as it comes (a progress bar writes no newline)."""

    def __init__(self, pipe):
        super().__init__(daemon=True)
        self.pipe, self.chunks = pipe, []
        self.start()

    def run(self):
        while chunk := os.read(self.pipe.fileno(), 65536):
            self.chunks.append(chunk)

    @property
    def text(self) -> str:
        return b"".join(self.chunks).decode(errors="replace")

    def join(self, timeout: float = 10):
        super().join(timeout)


def _alive(pgid: int) -> list[int]:
    """The processes of a process group that still run (a zombie has ended; it waits only to be reaped)."""
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    state, _, group = f.read().rsplit(")", 1)[1].split()[:3]
            except OSError:
                continue
            if int(group) == pgid and state != "Z":
                pids.append(int(d))
    return pids
