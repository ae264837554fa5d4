"""Download progress as log lines: one per tenth (or per 256 MiB when the size is unknown)."""

from __future__ import annotations

import logging
import time

MIB = 1024 * 1024
UNKNOWN_SIZE_STEP = 256 * MIB


class DownloadProgress:
    """Counts bytes of one download and logs at each step, then a summary with the rate."""

    def __init__(self, log: logging.Logger, what: str, total: int | None) -> None:
        self.log = log
        self.what = what
        self.total = total
        self.done = 0
        self._started = time.monotonic()
        self._next_step = 1
        self._step = max(total // 10, 1) if total else UNKNOWN_SIZE_STEP

    def advance(self, count: int) -> None:
        """Account for `count` more bytes; log when a step boundary is crossed."""
        self.done += count
        if self.done < self._next_step * self._step:
            return
        self._next_step = self.done // self._step + 1
        if self.total:
            percent = min(100, self.done * 100 // self.total)
            # The last tenth is reported by finish(), with the rate.
            if percent < 100:
                self.log.info(
                    "%s: %d%% (%.1f of %.1f MiB)",
                    self.what,
                    percent,
                    self.done / MIB,
                    self.total / MIB,
                )
        else:
            self.log.info("%s: %.1f MiB so far", self.what, self.done / MIB)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def finish(self) -> None:
        """Log the size, the time and the rate of the whole download."""
        elapsed = max(self.elapsed, 1e-6)
        self.log.info(
            "%s: downloaded %.1f MiB in %.2f s (%.1f MiB/s)",
            self.what,
            self.done / MIB,
            elapsed,
            self.done / MIB / elapsed,
        )
