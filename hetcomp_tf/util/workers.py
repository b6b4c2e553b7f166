"""Independent trainings (teachers, benchmark runs) in spawned worker processes.

On a small CPU machine a student step or a teacher epoch is a chain of modest kernels that keeps two threads only
partly busy (a second thread gains an epoch far less than twice its speed), so `jobs` one-thread workers finish a
set of independent trainings sooner than one multi-thread process. Workers are spawned (no forked TensorFlow
runtime) and exit when their parent dies.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from hetcomp_tf.errors import HetCompError
from hetcomp_tf.util.progress import log


def threads_per_worker(jobs: int) -> int:
    """TensorFlow threads per worker: the process's CPUs shared among the workers.

    Args:
        jobs: worker processes.

    Returns:
        The threads, at least 1.
    """
    return max(1, len(os.sched_getaffinity(0)) // jobs)


def exit_with_parent(parent_pid: int, interval: float = 2.0) -> threading.Thread:
    """Ends this process once `parent_pid` is no longer its parent: a command stopped with SIGTERM or SIGKILL
    must not leave its workers training models nobody will record.

    Args:
        parent_pid: the parent's pid.
        interval: seconds between checks.

    Returns:
        The started daemon thread that watches.
    """

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval)
        os._exit(1)

    watcher = threading.Thread(target=watch, name="exit-with-parent", daemon=True)
    watcher.start()
    return watcher


def init_worker(threads: int, setup: Callable | None = None, setup_args: tuple = ()) -> None:
    """A worker process's start: `threads` TensorFlow threads, exit with its parent, then `setup(*setup_args)`.

    Args:
        threads: TensorFlow's intra- and inter-op threads.
        setup: run once, e.g. to load shared inputs; None for nothing.
        setup_args: its arguments.
    """
    import tensorflow as tf

    exit_with_parent(os.getppid())
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    if setup is not None:
        setup(*setup_args)


def run_in_workers(
    tasks: Sequence[tuple[Any, Callable, tuple]],
    jobs: int,
    what: str,
    setup: Callable | None = None,
    setup_args: tuple = (),
) -> Iterator[tuple[Any, Any]]:
    """Runs each task (key, fn, args) as fn(*args) in `jobs` spawned processes.

    Yields (key, result) as they finish; `setup(*setup_args)` runs once per worker (e.g. to load shared inputs).
    Functions and arguments must pickle (module-level functions). A failed task is logged at once and the others go on
    (a benchmark keeps the runs that finish); once all ended, a HetCompError names the failed ones, chained to the first
    failure.

    Args:
        tasks: (key, fn, args) each; fn and args must pickle.
        jobs: worker processes.
        what: what the tasks are, for the log, e.g. "runs".
        setup: run once per worker as setup(*setup_args), or None.
        setup_args: its arguments.

    Yields:
        (key, fn's result), in the order the tasks finish.

    Raises:
        HetCompError: naming the failed tasks, after all ended.
    """
    threads = threads_per_worker(jobs)
    log(f"running {len(tasks)} {what} in {jobs} worker processes with {threads} TensorFlow thread(s) each")
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        jobs, mp_context=context, initializer=init_worker, initargs=(threads, setup, setup_args)
    ) as pool:
        pending: dict[Future, Any] = {pool.submit(fn, *args): key for key, fn, args in tasks}
        failures: list[tuple[Any, BaseException]] = []
        try:
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    key = pending.pop(future)
                    try:
                        result = future.result()
                    except Exception as error:  # noqa: BLE001 - reported now, raised once the others ended
                        log(f"{what}: {_name(key)} failed: {type(error).__name__}: {error}")
                        failures.append((key, error))
                        continue
                    yield key, result
        finally:  # the caller stopped early (an error of its own, Ctrl-C): start nothing more
            for future in pending:
                future.cancel()
    if failures:
        names = ", ".join(_name(key) for key, _ in failures)
        raise HetCompError(f"{len(failures)} of {len(tasks)} {what} failed: {names} (first error below)") from failures[
            0
        ][1]


def _name(key: Any) -> str:
    return str(getattr(key, "name", key))
