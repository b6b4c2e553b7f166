"""The TeacherTrainer executor: what it writes, and the data gate that stops it before training."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

import pytest
import tensorflow as tf
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.types import standard_artifacts

from components import keys, storage
from components.artifacts import METRICS_FILE, TEACHER_FILE, TRAJECTORY_DIR, TeacherTrajectory
from components.teacher_trainer import executor as teacher_trainer
from components.testing import TEACHERS, TRAJECTORY, make
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.teachers.trajectories import Trajectory
from tests.helpers import anomalies_artifact


class TestTeacherTrainer:
    def test_the_trajectory_metrics_and_weights_are_written(self, teachers, ingested):
        data = ingested.data
        for name, run in teachers.items():
            trajectory = Trajectory.load(os.path.join(run.trajectory.uri, TRAJECTORY_DIR))
            n_checkpoints, n_users, top_n = trajectory.rankings.shape
            assert (trajectory.teacher, n_users, top_n) == (name, data.n_users, TRAJECTORY.top_n)
            for user in range(0, data.n_users, 37):  # the lists never hold the user's train items
                assert not set(trajectory.rankings[-1, user].tolist()) & set(data.train.row(user).tolist())
            metrics = storage.read_json(run.trajectory.uri, METRICS_FILE)
            assert metrics["valid"]["recall@50"] == trajectory.checkpoints[-1]["valid"]["recall@50"] > 0.0
            assert 1 <= metrics["epochs"] <= TEACHERS[name].epochs
            assert run.trajectory.mlmd_artifact.custom_properties["n_checkpoints"].int_value == n_checkpoints
            assert tf.train.latest_checkpoint(os.path.join(run.model.uri, teacher_trainer.WEIGHTS_DIR)) is not None
            assert tf.io.gfile.glob(os.path.join(run.model_run.uri, name, "events.out.tfevents.*")), name

    def test_anomalies_stop_it_before_training(self, tmp_path, ingested):
        bad = anomalies_pb2.Anomalies()
        bad.anomaly_info["item"].short_description = "Out-of-range values"
        anomalies = anomalies_artifact(tmp_path / "anomalies", {"train": bad})
        outputs = {
            key: [make(cls, tmp_path, key)]
            for key, cls in (
                (keys.MODEL_KEY, standard_artifacts.Model),
                (keys.TRAJECTORY_KEY, TeacherTrajectory),
                (keys.MODEL_RUN_KEY, standard_artifacts.ModelRun),
            )
        }
        with pytest.raises(HetCompError, match="train/item: Out-of-range values"):
            inputs = {keys.DATASET_KEY: [ingested.dataset], keys.ANOMALIES_KEY: [anomalies]}
            teacher_trainer.Executor().Do(
                inputs,
                outputs,
                {
                    keys.TEACHER_KEY: "MF",
                    keys.TEACHER_CONFIG_KEY: json.dumps(dataclasses.asdict(TEACHERS["MF"])),
                    keys.TRAJECTORY_CONFIG_KEY: json.dumps(dataclasses.asdict(TRAJECTORY)),
                    keys.SEED_KEY: 0,
                },
            )
        assert not any(os.path.exists(value[0].uri) for value in outputs.values())

    def test_a_base_model_of_the_shared_teacher_config_shape_is_warm_started_from(self, tmp_path, teachers):
        """teacher.json of Models written before the per-teacher configs holds the one TeacherConfig every teacher
        had (`layers` and the other teachers' fields too): the base teacher is rebuilt from it all the same."""
        model = make(standard_artifacts.Model, tmp_path, "model")
        shutil.copytree(teachers["ML"].model.uri, model.uri)
        saved = storage.read_json(model.uri, TEACHER_FILE)
        shared = {
            **saved["teacher_config"],
            "layers": [],
            "dropout": 0.0,
            "kl_cap": 0.2,
            "kl_anneal_epochs": 20,
            "positive_weight": 1.0,
        }
        storage.write_json(model.uri, TEACHER_FILE, {**saved, "teacher_config": shared})
        base = teacher_trainer.base_teacher([model]).base
        assert base.cfg == TEACHERS["ML"]
        trained = teacher_trainer.base_teacher([teachers["ML"].model]).base
        for variable, expected in zip(base.variables, trained.variables, strict=True):
            assert (variable.numpy() == expected.numpy()).all()


def test_a_rerun_after_a_crash_goes_on_from_the_teachers_last_evaluation(tmp_path, ingested, monkeypatch, capsys):
    """The node's state (under <node folder>/.resume/) outlives a crashed execution: the next execution of the same
    teacher on the same dataset resumes it, writes what an uninterrupted one writes, and removes the state."""
    clean = anomalies_artifact(tmp_path / "anomalies", {s: anomalies_pb2.Anomalies() for s in ("train", "valid")})
    inputs = {keys.DATASET_KEY: [ingested.dataset], keys.ANOMALIES_KEY: [clean]}
    properties = {
        keys.TEACHER_KEY: "MF",
        keys.TEACHER_CONFIG_KEY: json.dumps(dataclasses.asdict(dataclasses.replace(TEACHERS["MF"], eval_every=1))),
        keys.TRAJECTORY_CONFIG_KEY: json.dumps(dataclasses.asdict(TRAJECTORY)),
        keys.SEED_KEY: 0,
    }

    def outputs(execution):  # as a pipeline root lays them out: <node folder>/<output key>/<execution id>
        node = tmp_path / "root" / "TeacherTrainer.MF"
        for key in (keys.MODEL_KEY, keys.TRAJECTORY_KEY, keys.MODEL_RUN_KEY):
            (node / key).mkdir(parents=True, exist_ok=True)
        return {
            key: [make(cls, node / key, str(execution))]
            for key, cls in (
                (keys.MODEL_KEY, standard_artifacts.Model),
                (keys.TRAJECTORY_KEY, TeacherTrajectory),
                (keys.MODEL_RUN_KEY, standard_artifacts.ModelRun),
            )
        }

    class Crash(Exception):
        pass

    class CrashingProgress:
        def __init__(self, what, total, done_before=0):
            pass

        def update(self, done, detail=""):
            if done == 2:
                raise Crash

    real = teacher_trainer.train_teacher
    monkeypatch.setattr(
        teacher_trainer, "train_teacher", lambda *a, **k: real(*a, **{**k, "progress": CrashingProgress})
    )
    with pytest.raises(Crash):
        teacher_trainer.Executor().Do(inputs, outputs(1), properties)
    assert len(list((tmp_path / "root" / "TeacherTrainer.MF" / ".resume").iterdir())) == 1
    monkeypatch.setattr(teacher_trainer, "train_teacher", real)
    resumed = outputs(2)
    teacher_trainer.Executor().Do(inputs, resumed, properties)
    assert "MF: resuming after epoch 2" in capsys.readouterr().err
    assert list((tmp_path / "root" / "TeacherTrainer.MF" / ".resume").iterdir()) == []
    whole = outputs(3)
    teacher_trainer.Executor().Do(inputs, whole, properties)
    got, expected = (storage.read_json(o[keys.TRAJECTORY_KEY][0].uri, METRICS_FILE) for o in (resumed, whole))
    assert (got["epochs"], got["valid"], got["checkpoint_epochs"]) == (
        expected["epochs"],
        expected["valid"],
        expected["checkpoint_epochs"],
    )
