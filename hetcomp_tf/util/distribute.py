"""TensorFlow's own distribution strategies for the student's and the teachers' training (`DistillConfig.distribute`,
`TeacherConfig.distribute`).

"none" is TensorFlow's default strategy (one device, no replicas); "mirrored" is `tf.distribute.MirroredStrategy`
(every GPU of this host, else its CPU); "multi_worker" is `tf.distribute.MultiWorkerMirroredStrategy` over the
cluster TF_CONFIG describes, read by TensorFlow's `TFConfigClusterResolver` (no TF_CONFIG: one worker, TF's own
behaviour). Every worker generates the same global batches (they are seeded: `batches.epoch_batches`, a teacher's
`train_batches`) and each replica trains on its share of a batch (`share_bounds`; `trainer.Trainer`,
`Teacher.train_epoch`), so one step sums the same per-example gradients as one device does, in another order.

A multi-worker strategy configures TensorFlow's collective ops, which is only possible before TensorFlow has run
anything: a command creates the strategy (`make_strategy`) first, and later calls get the same object.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import tempfile

import tensorflow as tf

from hetcomp_tf.config import STRATEGIES
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.util.progress import log


def check_tf_config() -> dict:
    """TF_CONFIG as TensorFlow's resolver reads it.

    Returns:
        The parsed TF_CONFIG, {} when unset.

    Raises:
        HetCompError: naming what is wrong: not JSON, not a cluster config, or a task outside its cluster.
    """
    text = os.environ.get("TF_CONFIG", "")
    if not text.strip():
        return {}
    try:
        config = json.loads(text)
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        jobs = resolver.cluster_spec().as_dict()
        task_type, task_id = resolver.task_type, resolver.task_id
    except (ValueError, TypeError, AttributeError, KeyError) as err:
        raise HetCompError(
            f"TF_CONFIG is not a TensorFlow cluster config ({type(err).__name__}: {err}); expected "
            '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}}'
        ) from None
    workers = [*jobs.get("chief", []), *jobs.get("worker", [])]
    if not workers or task_type not in jobs or not 0 <= int(task_id) < len(jobs[task_type]):
        raise HetCompError(
            f"TF_CONFIG: task {task_type}:{task_id} is not in its cluster {jobs} "
            "(a worker or chief task with an index below the job's size)"
        )
    return config


@functools.cache
def make_strategy(name: str) -> tf.distribute.Strategy:
    """The strategy `name`, created once per process.

    Args:
        name: one of STRATEGIES: "none", "mirrored" or "multi_worker".

    Returns:
        The tf.distribute strategy.

    Raises:
        HetCompError: an unknown name, or multi_worker once TensorFlow has run something.
    """
    if name not in STRATEGIES:
        raise HetCompError(f"distribute={name!r}: choose one of {', '.join(STRATEGIES)}")
    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
    else:
        if not check_tf_config():
            log("distribute=multi_worker without TF_CONFIG: one worker")
        try:
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
        except RuntimeError as err:  # collective ops configured after TensorFlow started
            raise HetCompError(
                f"distribute=multi_worker: {err}; create the strategy (distribute.make_strategy) "
                "before TensorFlow runs anything"
            ) from err
    log(
        f"distribute={name}: {strategy.num_replicas_in_sync} replica(s) in sync, this task {worker_task(strategy)}"
        f"{' (chief)' if is_chief(strategy) else ''}"
    )
    return strategy


def share_bounds(size, replica, replicas: int):
    """Replica `replica`'s contiguous share of `size` rows; the shares of `replicas` replicas partition the rows
    in order with sizes differing by at most one.

    Args:
        size: the rows, an int or an int tensor.
        replica: the replica's index, an int or an int tensor.
        replicas: how many replicas.

    Returns:
        (lo, hi): the share is rows [lo, hi), ints or tensors as the inputs.
    """
    return size * replica // replicas, size * (replica + 1) // replicas


def worker_task(strategy: tf.distribute.Strategy) -> str:
    """This worker's task in the cluster.

    Args:
        strategy: the strategy in use.

    Returns:
        E.g. "worker:1"; "local" without a cluster.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    return f"{resolver.task_type}:{resolver.task_id}" if resolver and resolver.task_type else "local"


def worker_count(strategy: tf.distribute.Strategy) -> int:
    """How many workers (chief included) train together.

    Args:
        strategy: the strategy in use.

    Returns:
        The workers of TF_CONFIG's cluster, else 1.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    jobs = resolver.cluster_spec().as_dict() if resolver is not None else {}
    return max(1, len(jobs.get("chief", [])) + len(jobs.get("worker", [])))


def check_worker_request(task: str, workers: int, distribute: str) -> None:
    """Checks a pipeline task compiled for `workers` workers: at least one, and more than one only with
    multi_worker.

    Args:
        task: the task's name, for the message.
        workers: the workers it was compiled for.
        distribute: its strategy's name.

    Raises:
        HetCompError: fewer than one worker, or several without multi_worker.
    """
    if workers < 1 or (workers > 1 and distribute != "multi_worker"):
        raise HetCompError(
            f"{task}: workers={workers} with distribute={distribute!r}; more than one worker needs "
            "distribute='multi_worker'"
        )


def require_workers(strategy: tf.distribute.Strategy, workers: int, task: str) -> None:
    """A task compiled for `workers` workers (a pipeline's StudentTrainer, TeacherTrainer) must run on a cluster of
    exactly that many: KFP v2 runs a task as one pod unless its platform launches it as a multi-worker job.

    Args:
        strategy: the strategy in use.
        workers: the workers the task was compiled for.
        task: the task's name, for the message.

    Raises:
        HetCompError: a cluster of another size.
    """
    if worker_count(strategy) != workers:
        raise HetCompError(
            f"{task}: compiled for {workers} worker(s), its cluster (TF_CONFIG) has "
            f"{worker_count(strategy)}; run the task as a {workers}-worker job"
        )


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this worker writes the run's files (checkpoints, logs, the student): the chief, or the only one.

    Args:
        strategy: the strategy in use.

    Returns:
        True on the chief.
    """
    return bool(strategy.extended.should_checkpoint)


@contextlib.contextmanager
def worker_dir(directory: str | os.PathLike | None, strategy: tf.distribute.Strategy):
    """Where this worker writes a run's files: `directory` on the chief, a temporary elsewhere.

    On the chief, `directory` (a path or URI, unchanged); on any other worker a path of the same name in a temporary
    directory, removed afterwards (TensorFlow's multi-worker convention: every worker runs the same saving code,
    collectives included, and only the chief's files are kept). None stays None.

    Args:
        directory: the run's directory (a path or URI), or None.
        strategy: the strategy in use.

    Yields:
        The directory this worker writes to, or None.
    """
    if directory is None or is_chief(strategy):
        yield directory
        return
    scratch = tempfile.mkdtemp(prefix=f"hetcomp-{worker_task(strategy).replace(':', '')}-")
    try:
        yield os.path.join(scratch, os.path.basename(os.fspath(directory).rstrip("/")))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
