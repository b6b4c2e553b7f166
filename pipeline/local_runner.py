"""Runs the DAG with TFX's LocalDagRunner: SQLite ML Metadata and the Beam DirectRunner under the output
directory, caching on. Each component's start, finish (or cache hit) and elapsed time go to stderr; what
the run did is then read back from ML Metadata (execution states, output artifacts), not from logs.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from absl import logging as absl_logging
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx
from tfx.dsl.compiler import constants

from hetcomp_tf.util.progress import log
from pipeline.configs import PipelineConfig
from pipeline.pipeline import create_pipeline

# LocalDagRunner's and the launcher's absl messages around each node (tfx/orchestration/local, portable).
_RUNNING = "Component %s is running."
_FINISHED = "Component %s is finished."
_CACHED = "A cached execution %d is used."
# Logged by TFX 1.15's local input resolution for every input channel; the predicate it ignores only narrows
# the producer's outputs, which this static DAG names exactly, so the warning carries no information here.
# "Execution %d failed." is replaced by this module's own line naming the failed component.
_IGNORED_WARNINGS = {"ArtifactQuery.property_predicate is not supported.", "Execution %d failed."}


class ComponentProgress(logging.Filter):
    """Turns the runner's per-node INFO messages into progress lines and drops TFX's other INFO chatter.

    Attributes:
        current: the node running now, None between nodes.
        started: when it started (time.perf_counter()).
        cached: whether its execution came from the cache.
        seconds: {node id: wall time of its launch in seconds}, cache hits included.
    """

    def __init__(self):
        super().__init__()
        self.current: str | None = None
        self.started = 0.0
        self.cached = False
        self.seconds: dict[str, float] = {}  # node id -> wall time of its launch (cache hits included)

    def filter(self, record: logging.LogRecord) -> bool:
        """Logs a node's start and finish from the runner's messages.

        Args:
            record: an absl log record.

        Returns:
            Whether the record is still logged: warnings and errors, but for those that carry nothing here.
        """
        if record.msg == _RUNNING:
            self.current, self.started, self.cached = record.args[0], time.perf_counter(), False
            log(f"component {self.current} started")
        elif record.msg == _CACHED:
            self.cached = True
        elif record.msg == _FINISHED:
            outcome = "cached" if self.cached else "finished"
            self.seconds[record.args[0]] = round(time.perf_counter() - self.started, 2)
            log(f"component {record.args[0]} {outcome} in {self.seconds[record.args[0]]:.1f}s")
            self.current = None
        return record.levelno >= logging.WARNING and record.msg not in _IGNORED_WARNINGS

    def failed(self) -> None:
        """Logs the running node's failure and its seconds (a no-op between nodes)."""
        if self.current is not None:
            log(f"component {self.current} failed after {time.perf_counter() - self.started:.1f}s")


@contextlib.contextmanager
def component_progress() -> Iterator[ComponentProgress]:
    """absl verbosity (not just the logger level) goes to INFO: TensorFlow's SavedModel export silences absl
    and then restores the previous *verbosity*, which would otherwise drop the remaining nodes' messages.

    Yields:
        The `ComponentProgress` filter, installed on the absl logger while the block runs.
    """
    logger = absl_logging.get_absl_logger()
    progress, verbosity = ComponentProgress(), absl_logging.get_verbosity()
    logger.addFilter(progress)
    absl_logging.set_verbosity(absl_logging.INFO)
    try:
        yield progress
    except BaseException:
        progress.failed()
        raise
    finally:
        logger.removeFilter(progress)
        absl_logging.set_verbosity(verbosity)


@dataclass
class NodeRun:
    """One node of the latest pipeline run as ML Metadata recorded it.

    Attributes:
        state: its execution's last known state, lower case: "complete", "cached", "failed", ...
        outputs: {output key: [Artifact]}.
        inputs: {input key: [Artifact]}, resolved ones included.
    """

    state: str  # "complete" | "cached" | "failed" | ...
    outputs: dict[str, list[metadata_store_pb2.Artifact]] = field(default_factory=dict)
    inputs: dict[str, list[metadata_store_pb2.Artifact]] = field(default_factory=dict)  # resolved ones included

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
        nodes[node_id], execution_node[execution.id] = NodeRun(state=state), node_id
    events = store.get_events_by_execution_ids([e.id for e in executions])
    kinds = {metadata_store_pb2.Event.OUTPUT: "outputs", metadata_store_pb2.Event.INPUT: "inputs"}
    events = [e for e in events if e.type in kinds]
    artifacts = {a.id: a for a in store.get_artifacts_by_id(sorted({e.artifact_id for e in events}))}
    for event in events:
        node_artifacts = getattr(nodes[execution_node[event.execution_id]], kinds[event.type])
        node_artifacts.setdefault(event.path.steps[0].key, []).append(artifacts[event.artifact_id])
    return nodes


def run_local(config: PipelineConfig) -> tuple[dict[str, NodeRun], dict[str, float]]:
    """Runs (or, where inputs and settings are unchanged, serves from the cache) every component.

    Args:
        config: the pipeline's config; its metadata lives at `config.metadata_path()`.

    Returns:
        (the run as ML Metadata recorded it, `latest_run`'s; each node's wall time in seconds).

    Raises:
        HetCompError: a bad config (`create_pipeline`).
    """
    pipeline = create_pipeline(config, metadata_config(config.metadata_path()))
    with component_progress() as progress:
        tfx.orchestration.LocalDagRunner().run(pipeline)
    return latest_run(config.metadata_path()), progress.seconds
