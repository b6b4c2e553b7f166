"""Runs the DAG on this machine as TFX's LocalDagRunner does (SQLite ML Metadata and the Beam DirectRunner under
the output directory, caching on), but with independent nodes side by side: with `jobs` > 1, nodes whose upstream
nodes have finished (the teachers) run at the same time, each in a spawned worker process of cores/jobs TensorFlow
threads, and a node that is the only one able to run runs in this process on every core. On a small CPU machine a
teacher's epoch keeps a second thread only partly busy (Mult-VAE on Gowalla, two cores: 55 s an epoch alone on two
threads, 74 s on one thread beside another teacher), so two teachers at a time do ~1.5x the work per second.
Resolvers, instant, run in this process as soon as they can. Given the cost model's estimates, ready nodes start
longest first (`hetcomp_tf.util.schedule`) and the progress lines carry the whole run's ETA (`eta.py`). Each
component's start, finish (or cache hit) and elapsed time go to stderr; what the run did is then read back from ML
Metadata (execution states, output artifacts), not from logs.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import logging
import multiprocessing
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field

from absl import logging as absl_logging
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx
from tfx.dsl.compiler import constants
from tfx.orchestration import metadata
from tfx.orchestration.local import runner_utils
from tfx.orchestration.portable import launcher, runtime_parameter_utils
from tfx.proto.orchestration import local_deployment_config_pb2, pipeline_pb2

from hetcomp_tf.bench.estimate import Estimate, thread_slowdown
from hetcomp_tf.util.progress import log
from hetcomp_tf.util.schedule import next_starts
from hetcomp_tf.util.workers import init_worker, threads_per_worker
from pipeline.configs import PipelineConfig
from pipeline.eta import PipelineEta
from pipeline.pipeline import STUDENT_NODE_ID, create_pipeline, teacher_node_id

# The launcher's absl message when the cache serves a node (tfx/orchestration/portable/launcher.py).
_CACHED = "A cached execution %d is used."
# Logged by TFX 1.15's local input resolution for every input channel; the predicate it ignores only narrows
# the producer's outputs, which this static DAG names exactly, so the warning carries no information here.
# "Execution %d failed." is replaced by this module's own line naming the failed component.
_IGNORED_WARNINGS = {"ArtifactQuery.property_predicate is not supported.", "Execution %d failed."}
TICK_SECONDS = 300.0  # a line with the pipeline's ETA at least this often while components run


class CacheWatch(logging.Filter):
    """Notes whether the launch it watches was served from the cache, and drops TFX's INFO chatter.

    Attributes:
        cached: whether the launcher used a cached execution.
    """

    def __init__(self):
        super().__init__()
        self.cached = False

    def filter(self, record: logging.LogRecord) -> bool:
        """Notes a cache hit.

        Args:
            record: an absl log record.

        Returns:
            Whether the record is still logged: warnings and errors, but for those that carry nothing here.
        """
        self.cached = self.cached or record.msg == _CACHED
        return record.levelno >= logging.WARNING and record.msg not in _IGNORED_WARNINGS


@contextlib.contextmanager
def cache_watch() -> Iterator[CacheWatch]:
    """absl verbosity (not just the logger level) goes to INFO, for the launcher's cache message: TensorFlow's
    SavedModel export silences absl and then restores the previous *verbosity*, so it is set for every launch.

    Yields:
        The `CacheWatch` filter, installed on the absl logger while the block runs.
    """
    logger = absl_logging.get_absl_logger()
    watch, verbosity = CacheWatch(), absl_logging.get_verbosity()
    logger.addFilter(watch)
    absl_logging.set_verbosity(absl_logging.INFO)
    try:
        yield watch
    finally:
        logger.removeFilter(watch)
        absl_logging.set_verbosity(verbosity)


class LockedMetadata(metadata.Metadata):
    """An ML Metadata connection that holds an exclusive lock on `lock_path` while it is open.

    SQLite ML Metadata aborts a writer that meets another one ("Concurrent writes aborted after max number of
    retries"); nodes launched side by side write to the store as they start and finish, so each launch's
    connection takes the lock (the executor itself runs outside any connection and holds no lock).

    Args:
        connection_config: the store's connection config.
        lock_path: the lock file, shared by every process writing to the store.
    """

    def __init__(self, connection_config, lock_path: str):
        super().__init__(connection_config)
        self._lock_path, self._lock_file, self._depth = lock_path, None, 0

    def __enter__(self) -> LockedMetadata:
        if self._depth == 0:
            self._lock_file = open(self._lock_path, "a")  # noqa: SIM115 - held until the outermost __exit__
            fcntl.flock(self._lock_file, fcntl.LOCK_EX)
        self._depth += 1
        try:
            return super().__enter__()
        except BaseException:
            self._release()
            raise

    def __exit__(self, *exc_info) -> None:
        try:
            super().__exit__(*exc_info)
        finally:
            self._release()

    def _release(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._lock_file.close()  # closing the file releases the lock
            self._lock_file = None


def launch_node(node: bytes, pipeline_info: bytes, runtime_spec: bytes, deployment: bytes) -> bool:
    """Launches one node of a compiled pipeline (driver, executor, publisher), in this process.

    Args:
        node: the serialized `PipelineNode`.
        pipeline_info: the pipeline's serialized `PipelineInfo`.
        runtime_spec: its serialized `PipelineRuntimeSpec`.
        deployment: its serialized `LocalDeploymentConfig`.

    Returns:
        Whether the cache served the node.

    Raises:
        Exception: the executor's error (the launcher has recorded the execution as failed).
    """
    pipeline_node = pipeline_pb2.PipelineNode.FromString(node)
    node_id = pipeline_node.node_info.id
    deployment_config = local_deployment_config_pb2.LocalDeploymentConfig.FromString(deployment)
    store = deployment_config.metadata_connection_config
    connection_config = getattr(store, store.WhichOneof("connection_config"))
    node_launcher = launcher.Launcher(
        pipeline_node=pipeline_node,
        mlmd_connection=LockedMetadata(connection_config, connection_config.sqlite.filename_uri + ".lock"),
        pipeline_info=pipeline_pb2.PipelineInfo.FromString(pipeline_info),
        pipeline_runtime_spec=pipeline_pb2.PipelineRuntimeSpec.FromString(runtime_spec),
        executor_spec=runner_utils.extract_executor_spec(deployment_config, node_id),
        custom_driver_spec=runner_utils.extract_custom_driver_spec(deployment_config, node_id),
    )
    with cache_watch() as watch:
        node_launcher.launch()
    return watch.cached


def run_dag(
    upstream: Mapping[str, Collection[str]],
    start: Callable[[str, bool], Future],
    jobs: int,
    finished: Callable[[str, Future], None] = lambda node, future: None,
    inline: Collection[str] = (),
    seconds: Mapping[str, float] = {},
    tick: Callable[[], None] = lambda: None,
    tick_seconds: float = TICK_SECONDS,
) -> None:
    """Starts every node once its upstream nodes have finished, at most `jobs` at a time, the longest first
    (`schedule.next_starts`).

    `inline` nodes (instant, such as resolvers) start as soon as they are ready, alone, without taking a job. After a
    failure nothing more starts, the running nodes finish (a rerun serves them from the cache), and the first failure
    is raised.

    Args:
        upstream: {node: the nodes it waits for}, in a topological order (kept among nodes of equal `seconds`).
        start: start(node, alone) starts a node and returns its future; `alone` is True when no other node is running
            or could start beside it (the node may then use every core).
        jobs: the most nodes running at a time.
        finished: called as finished(node, its done future) in this thread, as each node ends.
        inline: nodes to start alone whatever runs beside them.
        seconds: {node: its estimated seconds}: which ready node starts first.
        tick: called in this thread every `tick_seconds` in which no node ended (progress lines).
        tick_seconds: how often.

    Raises:
        Exception: the first node's error, once no node is running.

    Example:
        >>> from concurrent.futures import ThreadPoolExecutor
        >>> started = []
        >>> with ThreadPoolExecutor(2) as pool:
        ...     dag = {"data": [], "latest": [], "a": ["data"], "b": ["data"], "c": ["data"], "all": ["a", "b", "c"]}
        ...     start = lambda node, alone: started.append((node, alone)) or pool.submit(int)
        ...     run_dag(dag, start, jobs=3, inline={"latest"}, seconds={"c": 9, "b": 5})
        >>> started
        [('data', True), ('latest', True), ('c', False), ('b', False), ('a', False), ('all', True)]
    """
    done: set[str] = set()
    running: dict[Future, str] = {}
    failure: BaseException | None = None
    while True:
        if failure is None:
            ready = [n for n in upstream if n not in done and n not in running.values() and set(upstream[n]) <= done]
            busy = sum(node not in inline for node in running.values())
            for node, alone in next_starts(ready, busy, jobs, inline, seconds):
                running[future := start(node, alone)] = node
                if future.done() and future.exception() is not None:
                    break  # a node run in place failed: start none after it
        if not running:
            break
        ended, _ = wait(running, timeout=tick_seconds, return_when=FIRST_COMPLETED)
        if not ended:
            tick()
        for future in ended:
            node = running.pop(future)
            finished(node, future)
            if future.exception() is None:
                done.add(node)
            elif failure is None:
                failure = future.exception()
                if running:
                    log(
                        f"waiting for {len(running)} running component(s) to finish: a rerun serves them from the cache"
                    )
    if failure is not None:
        raise failure


class ParallelDagRunner(tfx.orchestration.LocalDagRunner):
    """TFX's LocalDagRunner with independent nodes side by side (see the module's docstring).

    Args:
        jobs: the most nodes running at a time; 1 runs them one after another in this process, as LocalDagRunner.
        estimates: {node id: its estimated seconds when run alone}: ready nodes start longest first, and the
            progress lines carry the pipeline's ETA (`eta.PipelineEta`); empty: none.
        slowdown: how many times longer a node takes in a worker process than alone (`estimate.thread_slowdown`).

    Attributes:
        seconds: {node id: wall time of its launch in seconds}, cache hits included.
    """

    def __init__(self, jobs: int = 1, estimates: Mapping[str, float] | None = None, slowdown: float = 1.0):
        super().__init__()
        self.jobs, self.estimates, self.slowdown = jobs, dict(estimates or {}), slowdown
        self.seconds: dict[str, float] = {}

    def run_with_ir(self, pipeline: pipeline_pb2.Pipeline, run_options: pipeline_pb2.RunOptions | None = None) -> None:
        """Runs the compiled pipeline: every node, each once its upstream nodes have finished.

        Args:
            pipeline: the pipeline's IR.
            run_options: partial runs are LocalDagRunner's (one node after another).
        """
        if run_options is not None:
            return super().run_with_ir(pipeline, run_options)
        runtime_parameter_utils.substitute_runtime_parameter(
            pipeline, {constants.PIPELINE_RUN_ID_PARAMETER_NAME: datetime.datetime.now().isoformat()}
        )
        deployment = runner_utils.extract_local_deployment_config(pipeline)
        shared = (  # each worker rebuilds its node's launcher from these
            pipeline.pipeline_info.SerializeToString(),
            pipeline.runtime_spec.SerializeToString(),
            deployment.SerializeToString(),
        )
        nodes = {
            n.pipeline_node.node_info.id: n.pipeline_node
            for n in pipeline.nodes
            if not n.pipeline_node.execution_options.HasField("skip")
        }
        upstream = {name: [u for u in node.upstream_nodes if u in nodes] for name, node in nodes.items()}
        system = {name for name in nodes if runner_utils.extract_executor_spec(deployment, name) is None}
        began: dict[str, float] = {}
        ended: dict[str, float] = {}  # set as a node ends, not as run_dag gets to it
        eta = PipelineEta(upstream, self.estimates, self.jobs, self.slowdown, system) if self.estimates else None
        with contextlib.ExitStack() as stack:
            pools: list[ProcessPoolExecutor] = []

            def start(name: str, alone: bool) -> Future:
                log(f"component {name} started" + ("" if alone else " (in a worker process)"))
                if not alone and not pools:
                    pools.append(stack.enter_context(self._workers()))
                elif alone and name not in system and pools:  # no worker is busy: their memory is this node's
                    pools.pop().shutdown()
                began[name] = time.perf_counter()
                if eta is not None:
                    eta.started(name, alone)
                if alone:
                    future = self._launch_here(nodes[name], shared)
                else:
                    future = pools[0].submit(launch_node, nodes[name].SerializeToString(), *shared)
                future.add_done_callback(lambda _: ended.setdefault(name, time.perf_counter()))
                return future

            def finished(name: str, future: Future) -> None:
                self.seconds[name] = round(ended[name] - began[name], 2)
                if future.exception() is not None:
                    log(f"component {name} failed after {self.seconds[name]:.1f}s")
                else:
                    log(f"component {name} {'cached' if future.result() else 'finished'} in {self.seconds[name]:.1f}s")
                    if eta is not None:
                        eta.ended(name, cached=future.result())
                        log(eta.line())

            run_dag(  # resolvers: instant, in this process
                upstream,
                start,
                self.jobs,
                finished,
                inline=system,
                seconds=self.estimates,
                tick=lambda: eta is not None and log(eta.line()),
            )
        return None

    def _workers(self) -> ProcessPoolExecutor:
        context = multiprocessing.get_context("spawn")  # no forked TensorFlow runtime
        threads = threads_per_worker(self.jobs)
        log(f"running up to {self.jobs} components at a time, in worker processes of {threads} TensorFlow thread(s)")
        return ProcessPoolExecutor(  # a fresh process per node: none keeps an earlier node's memory
            self.jobs, mp_context=context, initializer=init_worker, initargs=(threads,), max_tasks_per_child=1
        )

    @staticmethod
    def _launch_here(node: pipeline_pb2.PipelineNode, shared: tuple[bytes, bytes, bytes]) -> Future:
        future: Future = Future()
        try:
            future.set_result(launch_node(node.SerializeToString(), *shared))
        except Exception as error:  # noqa: BLE001 - handed to run_dag through the future, as a worker's would be
            future.set_exception(error)
        return future


@dataclass
class NodeRun:
    """One node of the latest pipeline run as ML Metadata recorded it.

    Attributes:
        state: its execution's last known state, lower case: "complete", "cached", "failed", ...
        outputs: {output key: [Artifact]}.
        inputs: {input key: [Artifact]}, resolved ones included.
        properties: {key: int, float or str}: the execution's properties as ML Metadata recorded them (a
            component's parameters among them).
    """

    state: str  # "complete" | "cached" | "failed" | ...
    outputs: dict[str, list[metadata_store_pb2.Artifact]] = field(default_factory=dict)
    inputs: dict[str, list[metadata_store_pb2.Artifact]] = field(default_factory=dict)  # resolved ones included
    properties: dict[str, int | float | str] = field(default_factory=dict)

    def uri(self, key: str) -> str:
        """The URI of the first artifact of output `key`."""
        return self.outputs[key][0].uri


def metadata_config(path: str):
    """The ML Metadata connection config of the SQLite store at `path`."""
    return tfx.orchestration.metadata.sqlite_metadata_connection_config(path)


def latest_run(metadata_path: str) -> dict[str, NodeRun]:
    """What the newest pipeline run in the store did, node by node.

    Args:
        metadata_path: the SQLite ML Metadata file.

    Returns:
        {node id: NodeRun}; {} when the store holds no run.
    """
    store = metadata_store.MetadataStore(metadata_config(metadata_path))
    runs = store.get_contexts_by_type(constants.PIPELINE_RUN_CONTEXT_TYPE_NAME)
    if not runs:
        return {}
    run = max(runs, key=lambda c: (c.create_time_since_epoch, c.id))
    node_type = store.get_context_type(constants.NODE_CONTEXT_TYPE_NAME).id
    executions = store.get_executions_by_context(run.id)
    nodes, execution_node = {}, {}
    for execution in executions:
        node = next(c for c in store.get_contexts_by_execution(execution.id) if c.type_id == node_type)
        node_id = node.name.split(".", 1)[1]  # "<pipeline>.<node id>"
        state = metadata_store_pb2.Execution.State.Name(execution.last_known_state).lower()
        properties = {
            key: getattr(value, value.WhichOneof("value")) for key, value in execution.custom_properties.items()
        }
        nodes[node_id], execution_node[execution.id] = NodeRun(state=state, properties=properties), node_id
    events = store.get_events_by_execution_ids([e.id for e in executions])
    kinds = {metadata_store_pb2.Event.OUTPUT: "outputs", metadata_store_pb2.Event.INPUT: "inputs"}
    events = [e for e in events if e.type in kinds]
    artifacts = {a.id: a for a in store.get_artifacts_by_id(sorted({e.artifact_id for e in events}))}
    for event in events:
        node_artifacts = getattr(nodes[execution_node[event.execution_id]], kinds[event.type])
        node_artifacts.setdefault(event.path.steps[0].key, []).append(artifacts[event.artifact_id])
    return nodes


def run_local(
    config: PipelineConfig, jobs: int = 1, estimate: Estimate | None = None
) -> tuple[dict[str, NodeRun], dict[str, float]]:
    """Runs (or, where inputs and settings are unchanged, serves from the cache) every component.

    Args:
        config: the pipeline's config; its metadata lives at `config.metadata_path()`.
        jobs: the most components running at a time (`ParallelDagRunner`).
        estimate: the teachers' and the student's estimate (`estimate.estimate_run`): the order of the ready
            teachers and the ETA of the progress lines; None: neither.

    Returns:
        (the run as ML Metadata recorded it, `latest_run`'s; each node's wall time in seconds).

    Raises:
        HetCompError: a bad config (`create_pipeline`).
    """
    pipeline = create_pipeline(config, metadata_config(config.metadata_path()))
    estimates, slowdown = {}, 1.0
    if estimate is not None:
        estimates = {teacher_node_id(name): seconds for name, seconds in estimate.teachers}
        estimates[STUDENT_NODE_ID] = estimate.student
        slowdown = thread_slowdown(estimate.threads, threads_per_worker(jobs)) if jobs > 1 else 1.0
    runner = ParallelDagRunner(jobs, estimates, slowdown)
    runner.run(pipeline)
    return latest_run(config.metadata_path()), runner.seconds
