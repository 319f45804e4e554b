"""Progress of long jobs in their log files: done/total, elapsed time and an ETA.

A training or extraction job runs for minutes with nothing else to show; its log (one
per job, ``results/logs/...``) is where a user looks to see whether it moves. The ETA
is a straight-line extrapolation of the rate so far; for training with early stopping
it is an upper bound (the job may stop sooner), and the line says so.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


def duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``: short and sortable by eye."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """Logs ``<what> i/N (p%), <elapsed> elapsed, ETA <left>`` every ``every`` seconds.

    Call :meth:`update` with the count done so far, as often as convenient: it logs
    only when ``every`` seconds have passed since the last line, and always at the end
    (``done == total``). ``upper_bound`` marks the ETA as "at most" (early stopping).
    """

    def __init__(
        self,
        what: str,
        total: int,
        log: logging.Logger,
        every: float = 10.0,
        upper_bound: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what, self.total, self.log = what, int(total), log
        self.every, self.upper_bound, self.clock = every, upper_bound, clock
        self.start = self.last = clock()

    def eta(self, done: int) -> float:
        """Seconds left at the rate so far (0 when done; inf before anything is done)."""
        if done >= self.total:
            return 0.0
        if done <= 0:
            return float("inf")
        return (self.clock() - self.start) * (self.total - done) / done

    def line(self, done: int) -> str:
        elapsed = self.clock() - self.start
        left = self.eta(done)
        eta = "?" if left == float("inf") else duration(left)
        bound = "at most " if self.upper_bound and done < self.total else ""
        percent = 100.0 * done / self.total if self.total else 100.0
        return (
            f"{self.what} {done}/{self.total} ({percent:.0f}%), {duration(elapsed)} elapsed, "
            f"ETA {bound}{eta}"
        )

    def update(self, done: int) -> None:
        now = self.clock()
        if now - self.last >= self.every or done >= self.total:
            self.log.info("%s", self.line(done))
            self.last = now
