"""Progress of long stages as log lines: counts, rate and ETA at INFO, at most every few seconds.

Airflow tasks show them in the task log at the right level (tqdm bars on stderr land there as
ERROR); the CLI shows the same lines on stderr (``pipeline.cli`` configures logging). Stages
call ``progress(total, unit, name)`` and ``update(n)``; extra counters (``kept_s1=...``) go
into the line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

log = logging.getLogger("pipeline.progress")


@dataclass
class Progress:
    name: str
    total: int
    unit: str
    interval: float = 5.0
    clock: Callable[[], float] = time.monotonic
    done: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    _start: float = field(init=False)
    _last: float = field(init=False)

    def __post_init__(self) -> None:
        self._start = self._last = self.clock()

    def update(self, n: int = 1, **counters: int) -> None:
        self.done += n
        self.counters.update(counters)
        now = self.clock()
        if now - self._last >= self.interval:
            self._last = now
            log.info("%s", self.line(now))

    def line(self, now: float | None = None) -> str:
        elapsed = (self.clock() if now is None else now) - self._start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.name}: {self.done}/{self.total} {self.unit}s"]
        if self.total:
            parts.append(f"({100 * self.done / self.total:.0f} %)")
        parts.append(f"{rate:.1f} {self.unit}/s")
        if self.done < self.total and rate > 0:
            parts.append(f"ETA {format_seconds((self.total - self.done) / rate)}")
        else:
            parts.append(f"in {format_seconds(elapsed)}")
        parts.extend(f"{k}={v}" for k, v in sorted(self.counters.items()))
        return " ".join(parts)


def format_seconds(seconds: float) -> str:
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@contextmanager
def progress(total: int, unit: str, name: str, interval: float = 5.0) -> Iterator[Progress]:
    """Log a line every ``interval`` seconds while the block runs, and a final one."""
    bar = Progress(name, total, unit, interval)
    log.info("%s: %d %ss to do", name, total, unit)
    yield bar
    log.info("%s", bar.line())
