"""`TeacherTrainer`: trains one HetComp teacher; the pipeline instantiates it once per teacher
(`.with_id("TeacherTrainer.<name>")`) so the six teachers are independent nodes, parallel on Kubeflow.

Training, trajectory recording and evaluation are `hetcomp_tf.training.train_teacher`; this executor
only gates on ExampleValidator's anomalies and writes the run into TFX artifacts:
`model` (the teacher's weights), `trajectory` (`Trajectory.save` + the teacher's valid/test metrics)
and `model_run` (its TensorBoard logs, like the TFX Trainer's ModelRun).
"""

from __future__ import annotations

import dataclasses
import json
import os

from tfx import types
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components import storage
from components.artifacts import (METRICS_FILE, TRAJECTORY_DIR, InteractionDataset, TeacherTrajectory,
                                  set_custom_properties)
from components.data_gate import require_valid_examples
from hetcomp_tf.config import TeacherConfig, TrajectoryConfig, from_dict
from hetcomp_tf.trajectories import FORMAT_VERSION
from hetcomp_tf.training import train_teacher

WEIGHTS_DIR = "weights"  # inside the Model artifact: a TF checkpoint of the teacher's variables


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        require_valid_examples(input_dict["anomalies"])
        data = storage.read_dataset(artifact_utils.get_single_uri(input_dict["dataset"]))
        name = exec_properties["teacher"]
        cfg = from_dict(TeacherConfig, json.loads(exec_properties["teacher_config"]))
        traj_cfg = from_dict(TrajectoryConfig, json.loads(exec_properties["trajectory_config"]))
        model, trajectory, model_run = (artifact_utils.get_single_instance(output_dict[key])
                                        for key in ("model", "trajectory", "model_run"))

        with storage.writable_dir(model_run.uri) as log_dir:
            run = train_teacher(name, data, cfg, traj_cfg, seed=exec_properties["seed"], log_dir=log_dir)
        with storage.writable_dir(model.uri) as directory:
            run.teacher.save_weights(os.path.join(directory, WEIGHTS_DIR, name))
        with storage.writable_dir(trajectory.uri) as directory:
            run.trajectory.save(os.path.join(directory, TRAJECTORY_DIR))
        storage.write_json(trajectory.uri, METRICS_FILE, {"teacher": name, **run.to_dict()})
        n_checkpoints, n_users, top_n = run.trajectory.rankings.shape
        set_custom_properties(trajectory, teacher=name, n_checkpoints=int(n_checkpoints), n_users=int(n_users),
                              top_n=int(top_n), format_version=FORMAT_VERSION)


class TeacherTrainerSpec(ComponentSpec):
    PARAMETERS = {
        "teacher": ExecutionParameter(type=str),
        "teacher_config": ExecutionParameter(type=str),
        "trajectory_config": ExecutionParameter(type=str),
        "seed": ExecutionParameter(type=int),
    }
    INPUTS = {
        "dataset": ChannelParameter(type=InteractionDataset),
        "anomalies": ChannelParameter(type=standard_artifacts.ExampleAnomalies),
    }
    OUTPUTS = {
        "model": ChannelParameter(type=standard_artifacts.Model),
        "trajectory": ChannelParameter(type=TeacherTrajectory),
        "model_run": ChannelParameter(type=standard_artifacts.ModelRun),
    }


class TeacherTrainer(base_component.BaseComponent):
    SPEC_CLASS = TeacherTrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, dataset: types.BaseChannel, anomalies: types.BaseChannel, teacher: str,
                 teacher_config: TeacherConfig, trajectory_config: TrajectoryConfig, seed: int = 0):
        super().__init__(spec=TeacherTrainerSpec(
            teacher=teacher,
            teacher_config=json.dumps(dataclasses.asdict(teacher_config)),
            trajectory_config=json.dumps(dataclasses.asdict(trajectory_config)),
            seed=seed,
            dataset=dataset,
            anomalies=anomalies,
            model=types.Channel(type=standard_artifacts.Model),
            trajectory=types.Channel(type=TeacherTrajectory),
            model_run=types.Channel(type=standard_artifacts.ModelRun),
        ))
