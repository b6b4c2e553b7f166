"""Progress lines on stderr (results go to files): elapsed time and an ETA for loops with a known length."""

from __future__ import annotations

import sys
import time


def log(message: str) -> None:
    """Writes a progress line to stderr.

    Args:
        message: the line, prefixed with "[hetcomp HH:MM:SS] ".
    """
    print(f"[hetcomp {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Progress:
    """Reports step i of n with the elapsed time and a linear ETA.

    Args:
        what: what is counted, e.g. "hetcomp epoch".
        total: n, the steps (at least 1 is assumed).
        done_before: steps done before this process started (a resumed run): the ETA counts only the rate since.
    """

    def __init__(self, what: str, total: int, done_before: int = 0):
        self.what, self.total, self.start = what, max(int(total), 1), time.perf_counter()
        self.done_before = int(done_before)

    def eta(self, done: int) -> float:
        """Linear ETA in seconds after `done` steps, from the rate of this process's steps."""
        return (time.perf_counter() - self.start) / max(done - self.done_before, 1) * (self.total - done)

    def update(self, done: int, detail: str = "") -> None:
        """Logs "what done/total detail [elapsed, ETA]".

        Args:
            done: steps done.
            detail: extra text, e.g. the latest metrics.
        """
        elapsed, eta = time.perf_counter() - self.start, self.eta(done)
        log(f"{self.what} {done}/{self.total} {detail} [{elapsed:.0f}s elapsed, ETA {eta:.0f}s]".replace("  ", " "))
