"""One run per output directory: the lock helper itself, its release when the holder is killed, and two real
`hetcomp run` started on the same --out (the second exits in one line naming the first's pid, pushing nothing)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hetcomp_tf.errors import HetCompError
from hetcomp_tf.util.locking import LOCK_FILE, exclusive_dir

REPO = Path(__file__).resolve().parents[1]
HOLD = (
    "import sys, time; from hetcomp_tf.util.locking import exclusive_dir\n"
    "with exclusive_dir(sys.argv[1]):\n    print('held', flush=True); time.sleep(120)"
)


def test_a_held_directory_refuses_a_second_holder_until_released(tmp_path):
    out = tmp_path / "new" / "out"
    with exclusive_dir(out) as lock:
        assert lock == out / LOCK_FILE and lock.read_text() == f"{os.getpid()}\n"
        with pytest.raises(HetCompError, match=rf"out is in use by another `hetcomp run` \(pid {os.getpid()}\)"):
            with exclusive_dir(out):
                pass
    with exclusive_dir(out):  # released on leaving the block
        pass


def test_a_killed_holder_releases_the_lock(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(HetCompError, match=f"pid {holder.pid}"):
            with exclusive_dir(tmp_path):
                pass
    finally:
        holder.kill()
        holder.wait()
    with exclusive_dir(tmp_path):  # the stale file (the dead pid still in it) does not block
        pass


def test_two_runs_on_one_out_the_second_fails_in_one_line(tmp_path):
    """Both are real `hetcomp run` processes; the first is stopped once the second has exited."""
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "hetcomp_tf.cli",
        "run",
        "--data",
        "synthetic",
        "--profile",
        "tiny",
        "--out",
        str(out),
    ]
    first = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 30
        while not ((out / LOCK_FILE).is_file() and (out / LOCK_FILE).read_text().strip()):
            assert first.poll() is None and time.monotonic() < deadline, "the first run never took the lock"
            time.sleep(0.05)
        start = time.perf_counter()
        second = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
        seconds = time.perf_counter() - start
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    lines = second.stderr.strip().splitlines()
    assert second.returncode == 2 and len(lines) == 1, second.stderr
    assert lines[0] == (
        f"hetcomp: error: {out} is in use by another `hetcomp run` (pid {first.pid}); wait for it "
        "to finish or choose another --out"
    )
    assert seconds < 10, f"{seconds:.1f}s to the error"
    assert not (out / "serving").exists()
