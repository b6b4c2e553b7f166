"""The `KnowledgeBuilder` executor: the teachers' trajectories -> the ensemble knowledge the student distils from,
plus the comparison table's teacher and ensemble rows (`RankingMetrics`; a teacher's row also says how its training
ended, "early stop" or "epoch cap", after how many epochs). In memory (`EnsembleKnowledge.save`'s
layout), or with `beam_build` as a Beam pipeline on the runner `beam_pipeline_args` name, writing sharded
per-user examples (`knowledge_beam.py`); the StudentTrainer reads either (`knowledge_beam.load_knowledge`).

KFP v2 compiles only single-producer input channels (no `tfx.dsl.experimental` union), so every teacher
has its own optional input key (`keys.trajectory_key`); at least one must be wired.
"""

from __future__ import annotations

import dataclasses
import os

from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils

from components import keys, knowledge_beam, storage
from components.artifacts import KNOWLEDGE_DIR, METRICS_FILE, TRAJECTORY_DIR, set_custom_properties
from hetcomp_tf.config import TEACHER_NAMES
from hetcomp_tf.distill import ensemble
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.teachers.trajectories import Trajectory
from hetcomp_tf.teachers.workflow import ensemble_metrics
from hetcomp_tf.util.tables import ENSEMBLE, FITTED_ENSEMBLE, teacher_row


def load_trajectories(trajectory_dirs: dict[str, str]) -> dict[str, Trajectory]:
    """Reads the teachers' trajectories from artifact directories (local or remote).

    Args:
        trajectory_dirs: {teacher: the trajectory's directory}.

    Returns:
        {teacher: Trajectory}.

    Raises:
        HetCompError: a trajectory that does not load (`Trajectory.load`).
    """
    trajectories = {}
    for teacher, directory in trajectory_dirs.items():
        with storage.readable_dir(directory) as local:
            trajectories[teacher] = Trajectory.load(local)
    return trajectories


class Executor(base_beam_executor.BaseBeamExecutor):
    """`KnowledgeBuilder`'s executor (see the module docstring)."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        """Builds the knowledge and writes the teacher and ensemble rows.

        Args:
            input_dict: {input key: [Artifact]}: dataset, and `keys.trajectory_key(teacher)` per teacher wired in.
            output_dict: {output key: [Artifact]}: knowledge, metrics.
            exec_properties: {parameter key: value}: tau, targets (default equal), fit_users (default 0), beam_build.

        Raises:
            HetCompError: no trajectory is wired in, or one does not load.
        """
        data = storage.read_dataset(artifact_utils.get_single_uri(input_dict[keys.DATASET_KEY]))
        trajectory_dirs, methods = {}, {}
        for teacher in TEACHER_NAMES:
            if not input_dict.get(keys.trajectory_key(teacher)):
                continue
            uri = artifact_utils.get_single_uri(input_dict[keys.trajectory_key(teacher)])
            trajectory_dirs[teacher] = os.path.join(uri, TRAJECTORY_DIR)
            teacher_run = storage.read_json(uri, METRICS_FILE)
            methods[teacher_row(teacher)] = {
                "valid": teacher_run["valid"],
                "test": teacher_run["test"],
                "epochs": teacher_run["epochs"],
                "ended_by": teacher_run["ended_by"],
            }
        if not trajectory_dirs:
            raise HetCompError("KnowledgeBuilder: no teacher trajectory is wired in")

        tau, beam_build = exec_properties[keys.TAU_KEY], bool(exec_properties.get(keys.BEAM_BUILD_KEY))
        targets = exec_properties.get(keys.TARGETS_KEY) or "equal"
        fit_users = exec_properties.get(keys.FIT_USERS_KEY) or 0  # older specs: every valid user
        knowledge_artifact = artifact_utils.get_single_instance(output_dict[keys.KNOWLEDGE_KEY])
        if beam_build:
            weights = None
            if targets != "equal":  # fitted on the final checkpoints in memory; the Beam build stacks them all
                fitted = ensemble.target_knowledge(
                    load_trajectories(trajectory_dirs), targets, tau, data, fit_users=fit_users
                )
                tau, weights = fitted.tau, fitted.teacher_weights
            with storage.staged(knowledge_artifact.uri) as (stage,):
                knowledge_beam.run(
                    self._make_beam_pipeline(),
                    trajectory_dirs,
                    tau,
                    os.path.join(stage, KNOWLEDGE_DIR),
                    teacher_weights=weights,
                )
                knowledge = knowledge_beam.read_knowledge(os.path.join(stage, KNOWLEDGE_DIR))
        else:
            knowledge = ensemble.target_knowledge(
                load_trajectories(trajectory_dirs), targets, tau, data, fit_users=fit_users
            )
            with storage.writable_dir(knowledge_artifact.uri) as directory:
                knowledge.save(os.path.join(directory, KNOWLEDGE_DIR))
        equal = dataclasses.replace(knowledge, tau=exec_properties[keys.TAU_KEY], teacher_weights=None)
        methods[ENSEMBLE] = ensemble_metrics(equal, data)
        if knowledge.teacher_weights is not None:
            methods[FITTED_ENSEMBLE] = ensemble_metrics(knowledge, data)
        set_custom_properties(
            knowledge_artifact,
            teachers=",".join(knowledge.teachers),
            n_checkpoints=knowledge.n_checkpoints,
            top_n=knowledge.top_n,
            layout="sharded" if beam_build else "arrays",
        )
        storage.write_json(
            artifact_utils.get_single_uri(output_dict[keys.METRICS_KEY]),
            METRICS_FILE,
            {"methods": methods, "targets": {"kind": targets, **knowledge.describe()}},
        )
