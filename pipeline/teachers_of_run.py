"""The teachers a `hetcomp run` trained, read back from its ML Metadata and artifacts (`hetcomp teachers --from-run`):
a benchmark or a distillation on the same data then takes them instead of training them again, hours on data of
Gowalla's size. It reads TFX artifacts, so it lives with the pipeline, not in the library.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from hetcomp_tf.errors import HetCompError
from hetcomp_tf.teachers.workflow import FinishedTeacher

DONE = ("complete", "cached")  # a cached execution's outputs are the earlier execution's artifacts


def teachers_of_run(run_dir: str | os.PathLike) -> dict[str, FinishedTeacher]:
    """The teachers of the newest pipeline run in `run_dir` that finished (trained or served from the cache).

    Example:
        teachers = teachers_of_run("runs/gowalla")   # the --out of `hetcomp run`
        adopt_teachers("runs/bench", data, profile, 0, teachers)

    Args:
        run_dir: the --out of a `hetcomp run` (metadata.sqlite, a local pipeline root).

    Returns:
        {teacher: `FinishedTeacher`}.

    Raises:
        HetCompError: `run_dir` holds no pipeline run, or its artifacts are not on local disk.
    """
    from components import keys, storage
    from components.artifacts import METRICS_FILE, TRAJECTORY_DIR
    from pipeline.configs import METADATA_FILE
    from pipeline.local_runner import latest_run
    from pipeline.pipeline import teacher_node_id

    metadata = Path(run_dir) / METADATA_FILE
    if not metadata.is_file():
        raise HetCompError(f"--from-run {run_dir}: no {METADATA_FILE} there; give the --out of a `hetcomp run`")
    nodes = latest_run(os.fspath(metadata))
    splits = {}  # dataset URI -> Dataset: every teacher of a run trained on the same one
    teachers = {}
    for node_id, node in sorted(nodes.items()):
        if not node_id.startswith(teacher_node_id("")) or node.state not in DONE:
            continue
        trajectory_uri, logs_uri = node.uri(keys.TRAJECTORY_KEY), node.uri(keys.MODEL_RUN_KEY)
        dataset_uri = node.inputs[keys.DATASET_KEY][0].uri
        if any("://" in uri for uri in (trajectory_uri, logs_uri, dataset_uri)):
            raise HetCompError(f"--from-run {run_dir}: {node_id}'s artifacts are remote ({trajectory_uri}); copy them")
        if dataset_uri not in splits:
            splits[dataset_uri] = storage.read_dataset(dataset_uri)
        name = node.properties[keys.TEACHER_KEY]
        run = storage.read_json(trajectory_uri, METRICS_FILE)
        run.pop("teacher", None)
        logs = Path(logs_uri) / name  # train_teacher logs under <log dir>/<teacher>
        teachers[name] = FinishedTeacher(
            run=run,
            trajectory=Path(trajectory_uri) / TRAJECTORY_DIR,
            logs=logs if logs.is_dir() else None,
            config=json.loads(node.properties[keys.TEACHER_CONFIG_KEY]),
            trajectory_config=json.loads(node.properties[keys.TRAJECTORY_CONFIG_KEY]),
            seed=int(node.properties[keys.SEED_KEY]),
            split=splits[dataset_uri],
            source=f"--from-run {run_dir} ({node_id})",
        )
    if not teachers:
        raise HetCompError(f"--from-run {run_dir}: its latest run finished no teacher")
    return teachers
