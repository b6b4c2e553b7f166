"""The `TeacherTrainer` executor: trains one HetComp teacher; the pipeline instantiates it once per teacher
(`.with_id("TeacherTrainer.<name>")`) so the six teachers are independent nodes, parallel on Kubeflow.

Training, trajectory recording and evaluation are `hetcomp_tf.teachers.training.train_teacher` (under the strategy of
the teacher config's `distribute`, created first); this executor only gates on ExampleValidator's anomalies and writes
the run into TFX artifacts: `model` (the teacher's weights), `trajectory` (`Trajectory.save` + the teacher's
valid/test metrics) and `model_run` (its TensorBoard logs, like the TFX Trainer's ModelRun). Compiled for N > 1
`workers` (distribute=multi_worker), the task must run as an N-worker job whose platform sets TF_CONFIG: every
worker trains, and only the chief's files reach the artifacts (`distribute.worker_dir`), as in the StudentTrainer.
The Model also holds the
vocabularies and the teacher's settings, so that with a `base_model` (this teacher's latest Model, on a warm-started
run) training starts from it (`hetcomp_tf.warmstart`); a base model without vocabularies (written before warm
starts) is ignored.

A teacher saves its training state after every evaluation (`hetcomp_tf.teachers.resume`) under its node's folder of
the pipeline root, keyed by what it trains on (`resume_dir`): rerun after a crash, the pipeline's cached steps are
reused and this one goes on from its last evaluation instead of from scratch. The state is removed once the
teacher's artifacts are written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil

from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components import keys, storage
from components.artifacts import METRICS_FILE, TEACHER_FILE, TRAJECTORY_DIR, set_custom_properties
from components.data_gate import require_valid_examples
from hetcomp_tf.config import TrajectoryConfig, from_dict, teacher_config_class
from hetcomp_tf.models import build_teacher
from hetcomp_tf.teachers.training import train_teacher
from hetcomp_tf.teachers.trajectories import FORMAT_VERSION
from hetcomp_tf.util.distribute import make_strategy, require_workers, worker_dir
from hetcomp_tf.util.progress import log
from hetcomp_tf.warmstart import WarmStart, stand_in

WEIGHTS_DIR = "weights"  # inside the Model artifact: a TF checkpoint of the teacher's variables


class Executor(base_executor.BaseExecutor):
    """`TeacherTrainer`'s executor (see the module docstring)."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        """Gates on the anomalies, trains the teacher and writes its Model, trajectory and logs.

        Args:
            input_dict: {input key: [Artifact]}: dataset, anomalies, base_model (optional).
            output_dict: {output key: [Artifact]}: model, trajectory, model_run.
            exec_properties: {parameter key: value}: teacher, teacher_config (JSON), trajectory_config (JSON), seed,
                workers.

        Raises:
            HetCompError: anomalies in the examples, a cluster of another size than `workers`, a bad config, or a
                training failure (`train_teacher`).
        """
        name = exec_properties[keys.TEACHER_KEY]
        cfg = from_dict(teacher_config_class(name), json.loads(exec_properties[keys.TEACHER_CONFIG_KEY]))
        strategy = make_strategy(cfg.distribute)  # before TensorFlow runs anything (multi-worker collectives)
        workers = exec_properties.get(keys.WORKERS_KEY) or 1  # older specs: no property, one worker
        require_workers(strategy, workers, f"TeacherTrainer.{name}")
        require_valid_examples(input_dict[keys.ANOMALIES_KEY])
        data = storage.read_dataset(artifact_utils.get_single_uri(input_dict[keys.DATASET_KEY]))
        traj_cfg = from_dict(TrajectoryConfig, json.loads(exec_properties[keys.TRAJECTORY_CONFIG_KEY]))
        model, trajectory, model_run = (
            artifact_utils.get_single_instance(output_dict[key])
            for key in (keys.MODEL_KEY, keys.TRAJECTORY_KEY, keys.MODEL_RUN_KEY)
        )

        warm_start = base_teacher(input_dict.get(keys.BASE_MODEL_KEY))
        resume = resume_dir(model.uri, input_dict, exec_properties)
        with (
            worker_dir(model_run.uri, strategy) as run_uri,
            worker_dir(model.uri, strategy) as model_uri,
            worker_dir(trajectory.uri, strategy) as trajectory_uri,
        ):
            with storage.writable_dir(run_uri) as log_dir:
                run = train_teacher(
                    name,
                    data,
                    cfg,
                    traj_cfg,
                    seed=exec_properties[keys.SEED_KEY],
                    log_dir=log_dir,
                    warm_start=warm_start,
                    strategy=strategy,
                    resume_dir=resume,
                )
            with storage.writable_dir(model_uri) as directory:
                run.teacher.save_weights(os.path.join(directory, WEIGHTS_DIR, name))
            storage.write_vocabulary(model_uri, data)
            storage.write_json(
                model_uri,
                TEACHER_FILE,
                {"teacher": name, "teacher_config": dataclasses.asdict(cfg), "seed": exec_properties[keys.SEED_KEY]},
            )
            with storage.writable_dir(trajectory_uri) as directory:
                run.trajectory.save(os.path.join(directory, TRAJECTORY_DIR))
            storage.write_json(trajectory_uri, METRICS_FILE, {"teacher": name, **run.to_dict()})
        if resume is not None:
            shutil.rmtree(resume, ignore_errors=True)
        n_checkpoints, n_users, top_n = run.trajectory.rankings.shape
        set_custom_properties(
            trajectory,
            teacher=name,
            n_checkpoints=int(n_checkpoints),
            n_users=int(n_users),
            top_n=int(top_n),
            format_version=FORMAT_VERSION,
        )


def resume_dir(model_uri: str, input_dict, exec_properties) -> str | None:
    """Where this node keeps its teacher's training state across executions: `<node folder>/.resume/<key>`, the node
    folder being the one that holds its outputs' folders (`<pipeline root>/TeacherTrainer.<T>/`), the key a hash of
    the dataset artifact, the base model, the teacher, its config, the trajectory config and the seed, so that only
    an execution training exactly the same teacher resumes it.

    Args:
        model_uri: the `model` output's URI (`<node folder>/model/<execution id>`).
        input_dict: the executor's inputs (dataset, base_model).
        exec_properties: the executor's properties.

    Returns:
        The local directory, or None on a remote pipeline root (the state is kept on local disk only).
    """
    if "://" in model_uri:
        return None
    base = input_dict.get(keys.BASE_MODEL_KEY) or []
    identity = [
        artifact_utils.get_single_uri(input_dict[keys.DATASET_KEY]),
        artifact_utils.get_single_uri(base) if base else None,
        *(exec_properties.get(key) for key in (keys.TEACHER_KEY, keys.TEACHER_CONFIG_KEY, keys.TRAJECTORY_CONFIG_KEY)),
        exec_properties.get(keys.SEED_KEY),
    ]
    key = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:16]
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(model_uri))), ".resume", key)


def base_teacher(models) -> WarmStart | None:
    """The warm start from the resolved `base_model`: the earlier teacher rebuilt at its own vocabularies' sizes,
    its weights loaded.

    Args:
        models: the `base_model` input, a list of at most one Model artifact (None or empty: none resolved).

    Returns:
        The `WarmStart`, or None for a cold start (no base model, or one written without vocabularies).
    """
    if not models:
        return None
    uri = artifact_utils.get_single_uri(models)
    vocabularies = storage.read_vocabulary(uri)
    if vocabularies is None:
        log(f"base model {uri} holds no vocabularies (written before warm starts): training cold")
        return None
    saved = storage.read_json(uri, TEACHER_FILE)
    name = saved["teacher"]
    cfg = from_dict(teacher_config_class(name), saved["teacher_config"])  # older Models: the shared shape too
    base = build_teacher(name, stand_in(*vocabularies), cfg, saved["seed"])
    with storage.readable_dir(uri) as directory:
        base.load_weights(os.path.join(directory, WEIGHTS_DIR, name)).assert_existing_objects_matched()
    return WarmStart(base, *vocabularies, source=uri)
