"""Progress lines of long jobs: elapsed time and ETA from a fake clock, by hand."""

from __future__ import annotations

import logging

from crossmod.progress import Progress, duration


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_durations_read_as_a_person_would_write_them():
    assert [duration(s) for s in (0, 42.4, 185, 3600, 3720, 90061)] == [
        "0s",
        "42s",
        "3m05s",
        "1h00m",
        "1h02m",
        "25h01m",
    ]


def test_eta_extrapolates_the_rate_so_far_and_logs_at_most_every_period(caplog):
    clock = Clock()
    log = logging.getLogger("test.progress")
    progress = Progress("step", 100, log, every=10.0, clock=clock)
    with caplog.at_level(logging.INFO, logger="test.progress"):
        clock.now += 5
        progress.update(10)  # 5 s in: too soon for a line
        clock.now += 5
        progress.update(25)  # 10 s for 25 steps: 75 left at 2.5/s = 30 s
        clock.now += 1
        progress.update(30)  # 1 s after the last line: quiet
        clock.now += 49
        progress.update(100)  # the end is always logged
    assert [r.getMessage() for r in caplog.records] == [
        "step 25/100 (25%), 10s elapsed, ETA 30s",
        "step 100/100 (100%), 1m00s elapsed, ETA 0s",
    ]


def test_early_stopping_makes_the_eta_an_upper_bound():
    clock = Clock()
    progress = Progress("base_tg step", 1500, logging.getLogger("x"), upper_bound=True, clock=clock)
    assert progress.line(0).endswith("ETA at most ?")
    clock.now += 30
    assert progress.line(500) == "base_tg step 500/1500 (33%), 30s elapsed, ETA at most 1m00s"
