"""`TeacherTrainer`: the component spec and class; the executor is `executor.py` beside it."""

from __future__ import annotations

import dataclasses
import json

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components import keys
from components.artifacts import InteractionDataset, TeacherTrajectory
from components.teacher_trainer.executor import Executor
from hetcomp_tf.config import TeacherConfig, TrajectoryConfig, check_teacher_config
from hetcomp_tf.util.distribute import check_worker_request


class TeacherTrainerSpec(ComponentSpec):
    """`TeacherTrainer`'s parameters, inputs and outputs (see the component's docstring)."""

    PARAMETERS = {
        keys.TEACHER_KEY: ExecutionParameter(type=str),
        keys.TEACHER_CONFIG_KEY: ExecutionParameter(type=str),
        keys.TRAJECTORY_CONFIG_KEY: ExecutionParameter(type=str),
        keys.SEED_KEY: ExecutionParameter(type=int),
        keys.WORKERS_KEY: ExecutionParameter(type=int, optional=True),
    }
    INPUTS = {
        keys.DATASET_KEY: ChannelParameter(type=InteractionDataset),
        keys.ANOMALIES_KEY: ChannelParameter(type=standard_artifacts.ExampleAnomalies),
        keys.BASE_MODEL_KEY: ChannelParameter(type=standard_artifacts.Model, optional=True),
    }
    OUTPUTS = {
        keys.MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        keys.TRAJECTORY_KEY: ChannelParameter(type=TeacherTrajectory),
        keys.MODEL_RUN_KEY: ChannelParameter(type=standard_artifacts.ModelRun),
    }


class TeacherTrainer(base_component.BaseComponent):
    """Trains one HetComp teacher and records its ranking trajectory; the pipeline instantiates it once per teacher
    (`.with_id("TeacherTrainer.<name>")`), so the teachers are independent nodes, parallel on Kubeflow.

    Args:
        dataset: InteractionDataset channel (InteractionExampleGen's `dataset`): what the teacher trains on.
        anomalies: ExampleAnomalies channel (ExampleValidator's `anomalies`): the data gate; any anomaly fails the
            execution before training.
        teacher: the teacher's name (one of `hetcomp_tf.config.TEACHER_NAMES`).
        teacher_config: its config, of its class in `hetcomp_tf.config.TEACHER_CONFIGS` (another one fails here).
        trajectory_config: the `TrajectoryConfig` (checkpoints, top-N).
        seed: the initialisation's seed.
        base_model: optional Model channel, this teacher's Model of an earlier run to warm-start from.
        workers: N > 1 needs `teacher_config.distribute` = multi_worker (the task then runs as N workers).

    Outputs:
        model: Model; the teacher's weights (a TF checkpoint in `weights/`), its vocabularies and teacher.json (name,
            teacher config, seed), enough to rebuild it for a warm start.
        trajectory: TeacherTrajectory; `Trajectory.save` (T checkpoints of its top-N lists) in `trajectory/` and
            its valid/test metrics (metrics.json). Custom properties: teacher, n_checkpoints, n_users, top_n,
            format_version.
        model_run: ModelRun; its TensorBoard logs (`<model_run>/<teacher>/`).

    Raises:
        HetCompError: `teacher_config` is not of the teacher's config class, or `workers` does not fit its
            `distribute` (`check_worker_request`).
    """

    SPEC_CLASS = TeacherTrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(
        self,
        dataset: types.BaseChannel,
        anomalies: types.BaseChannel,
        teacher: str,
        teacher_config: TeacherConfig,
        trajectory_config: TrajectoryConfig,
        seed: int = 0,
        base_model: types.BaseChannel | None = None,
        workers: int = 1,
    ):
        check_teacher_config(teacher, teacher_config)
        check_worker_request(f"TeacherTrainer.{teacher}", workers, teacher_config.distribute)
        super().__init__(
            spec=TeacherTrainerSpec(
                teacher=teacher,
                teacher_config=json.dumps(dataclasses.asdict(teacher_config)),
                trajectory_config=json.dumps(dataclasses.asdict(trajectory_config)),
                seed=seed,
                workers=workers,
                dataset=dataset,
                anomalies=anomalies,
                base_model=base_model,
                model=types.Channel(type=standard_artifacts.Model),
                trajectory=types.Channel(type=TeacherTrajectory),
                model_run=types.Channel(type=standard_artifacts.ModelRun),
            )
        )
