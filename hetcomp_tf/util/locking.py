"""One run per output directory (`exclusive_dir`): two `hetcomp run` on the same --out (a double click, overlapping
cron jobs) would both push a model and the second would then die reading the first one's half-written artifacts.

The lock is an `fcntl.flock` on OUT/.lock holding the owner's pid: the OS releases it when the process exits, even
when killed, so a stale file never blocks a later run. Nothing here imports TensorFlow: a second run fails within
a second of starting.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from hetcomp_tf.errors import HetCompError

LOCK_FILE = ".lock"
# How long a loser waits for the winner to write its pid (the winner writes it right after taking the lock).
PID_WAIT_SECONDS = 1.0


@contextlib.contextmanager
def exclusive_dir(directory, command: str = "hetcomp run") -> Iterator[Path]:
    """Holds DIRECTORY/.lock (created, with the directory, if need be) while the block runs.

    Args:
        directory: the output directory.
        command: the command holding it, for the message.

    Yields:
        The lock file's path.

    Raises:
        HetCompError: naming the holder's pid, when another process holds the lock.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise HetCompError(
                f"{directory} is in use by another `{command}` (pid {_holder(fd)}); wait for it to "
                "finish or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)


def _holder(fd: int) -> str:
    """The pid the lock's holder wrote (it may be a moment behind taking the lock), "unknown" if it never comes."""
    deadline = time.monotonic() + PID_WAIT_SECONDS
    while not (pid := os.pread(fd, 32, 0).decode().strip()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return pid or "unknown"
