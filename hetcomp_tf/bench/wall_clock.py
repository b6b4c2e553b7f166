"""The wall time of a long job over all its invocations: a job stopped and resumed (the benchmark, over several
invocations) would otherwise only know the last invocation's time. Each invocation records its seconds in one JSON
file every `interval` seconds and when it ends, so a stopped one counts until its last write."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hetcomp_tf.errors import HetCompError
from hetcomp_tf.util.files import read_json, write_json

HEARTBEAT_SECONDS = 30.0  # how often an invocation's seconds are written: what a stopped one can go uncounted


class InvocationClock:
    """Records this invocation's wall seconds beside the earlier invocations' in one JSON file.

    `with InvocationClock(path, started) as clock:` adds this invocation ({"started", "seconds"}) to the invocations
    already in `path` and keeps its seconds current there (a background thread) until the block ends. A stopped
    invocation counts until its last write; what it did after its last saved state is redone by the next one and so
    counted twice.

    Args:
        path: the JSON record of every invocation.
        started: the invocation's start on time.perf_counter()'s clock (work before the clock is built counts).
        interval: seconds between writes.

    Raises:
        HetCompError: (on construction) a file at `path` that is no invocation record.
    """

    def __init__(self, path: str | os.PathLike, started: float, interval: float = HEARTBEAT_SECONDS):
        self.path, self.started, self.interval = Path(path), started, interval
        self.earlier = _read_invocations(self.path)
        self.started_at = datetime.now(UTC) - timedelta(seconds=self.seconds())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="invocation-clock", daemon=True)

    def seconds(self) -> float:
        """This invocation's wall seconds so far."""
        return time.perf_counter() - self.started

    def invocations(self) -> list[dict]:
        """Every invocation recorded in the file, this one last with its seconds so far."""
        return [*self.earlier, {"started": self.started_at.isoformat(timespec="seconds"), "seconds": self.seconds()}]

    def write(self) -> None:
        """Writes `invocations()` to the file, atomically."""
        write_json(self.path, {"invocations": self.invocations()})

    def __enter__(self) -> InvocationClock:
        self.write()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.write()

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            self.write()


def _read_invocations(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    record = read_json(path)
    invocations = record.get("invocations") if isinstance(record, dict) else None
    if not isinstance(invocations, list) or not all(
        isinstance(e, dict) and isinstance(e.get("seconds"), (int, float)) for e in invocations
    ):
        raise HetCompError(
            f'{path}: not an invocation record (expected {{"invocations": [{{"seconds": …}}]}}); '
            "remove it to start the count afresh"
        )
    return invocations
