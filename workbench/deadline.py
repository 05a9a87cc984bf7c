"""One time budget on the user's clock, made once when a command starts and handed down to every loop.

``compare``, ``tune``, ``ensemble``, the refit and the packaging all ask the same object how much time is left,
so the whole command, start-up included, ends within the budget the user gave. A step gets a ``share`` (a
sub-deadline that never ends after its parent) or keeps time back for later steps with ``before``. Work already
running when the deadline passes may finish within its ``grace``; once that too has passed (``overrun``) it is stopped.

Examples
--------
>>> d = Deadline.after(60)
>>> 59 < d.left() <= 60 and not d.expired()
True
>>> d.share(0.5).at <= d.at
True
>>> d.overrun() or Deadline.after(1, start=0).overrun()
True
>>> Deadline.of(None).left()
inf
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

# how long a job already running may overrun its deadline before it is stopped: a share of the budget, within
# bounds (a short budget cannot afford a long overrun: 1.5 s of 30; a long one need not stop a fold about to finish)
GRACE_SHARE, GRACE_MIN_S, GRACE_MAX_S = 0.05, 1.0, 10.0
POLL_S = 0.2  # the shortest wait between two looks at running work


@dataclass(frozen=True)
class Deadline:
    """A moment on the wall clock (``time.time()``; ``inf`` for no limit) and when the budget began.

    Picklable, so a job on a Dask worker asks the same deadline as the process that sent it.
    """

    at: float
    start: float

    @classmethod
    def after(cls, seconds: float | None, *, start: float | None = None) -> Deadline:
        """``seconds`` from ``start`` (default: now); None means no limit."""
        start = time.time() if start is None else start
        return cls(math.inf if seconds is None else start + seconds, start)

    @classmethod
    def since_process_start(cls, seconds: float | None) -> Deadline:
        """``seconds`` counted from when this process started: a command's start-up is part of its budget."""
        return cls.after(seconds, start=process_start())

    @classmethod
    def of(cls, budget: float | Deadline | None) -> Deadline:
        """A deadline passed through, or one made now from a number of seconds (None: no limit)."""
        return budget if isinstance(budget, Deadline) else cls.after(budget)

    @property
    def limited(self) -> bool:
        return math.isfinite(self.at)

    @property
    def seconds(self) -> float:
        """The whole budget."""
        return self.at - self.start

    @property
    def grace(self) -> float:
        """How long a running job may overrun this deadline before it is stopped."""
        return min(GRACE_MAX_S, max(GRACE_MIN_S, GRACE_SHARE * self.seconds)) if self.limited else math.inf

    def left(self) -> float:
        """Seconds left (0 once expired; ``inf`` without a limit)."""
        return max(0.0, self.at - time.time()) if self.limited else math.inf

    def elapsed(self) -> float:
        return time.time() - self.start

    def expired(self) -> bool:
        return time.time() >= self.at

    def overrun(self) -> bool:
        """Whether the grace after the deadline has passed too: work still running now is stopped."""
        return time.time() > self.at + self.grace

    def poll(self) -> float | None:
        """How long to wait for running work before looking again: until the deadline, then until its grace ends
        (at least POLL_S); None without a limit."""
        if not self.limited:
            return None
        now = time.time()
        return max(POLL_S, (self.at if now < self.at else self.at + self.grace) - now)

    def fits(self, seconds: float) -> bool:
        """Whether work expected to take ``seconds`` ends before the deadline."""
        return seconds <= self.left()

    def share(self, fraction: float) -> Deadline:
        """A sub-deadline after ``fraction`` of the time left now; never later than this one."""
        if not self.limited:
            return self
        return Deadline(min(self.at, time.time() + fraction * self.left()), time.time())

    def before(self, seconds: float) -> Deadline:
        """This deadline brought forward by ``seconds`` kept back for later steps (never before now)."""
        if not self.limited:
            return self
        return Deadline(max(time.time(), self.at - seconds), self.start)

    def within(self, seconds: float | None) -> Deadline:
        """The earlier of this deadline and ``seconds`` from now (None: this one)."""
        if seconds is None:
            return self
        return Deadline(min(self.at, time.time() + seconds), time.time())


def process_start() -> float:
    """When this process started (``time.time()`` scale), from the kernel's record; now where it has none."""
    try:
        with open(f"/proc/{os.getpid()}/stat") as f:
            ticks = float(f.read().rsplit(")", 1)[1].split()[19])  # field 22: start time in clock ticks after boot
        with open("/proc/stat") as f:
            boot = next(float(line.split()[1]) for line in f if line.startswith("btime"))
        return min(time.time(), boot + ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()
