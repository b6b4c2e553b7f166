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
    """

    def __init__(self, what: str, total: int):
        self.what, self.total, self.start = what, max(int(total), 1), time.perf_counter()

    def update(self, done: int, detail: str = "") -> None:
        """Logs "what done/total detail [elapsed, ETA]".

        Args:
            done: steps done.
            detail: extra text, e.g. the latest metrics.
        """
        elapsed = time.perf_counter() - self.start
        eta = elapsed / max(done, 1) * (self.total - done)
        log(f"{self.what} {done}/{self.total} {detail} [{elapsed:.0f}s elapsed, ETA {eta:.0f}s]".replace("  ", " "))
