"""One process of tests/test_distribute.py's distributed trainings:

    python -m tests.distributed_worker TEACHERS_DIR OUT DUMP STRATEGY SETTINGS_JSON

STRATEGY is a `DistillConfig.distribute` name (multi_worker: the cluster in TF_CONFIG), or "two_cpus": a
MirroredStrategy over two logical CPU devices of this process (two replicas on one host without GPUs). The strategy
is created first, before TensorFlow runs anything. By default it distils the tiny profile with SETTINGS_JSON's fields
replaced, with logs in OUT/logs and the run state in OUT/state (what only the chief may write), and dumps what this
process ended with, chief or not, to DUMP (.npz): the student's tables, the DKC state, the run's summary (JSON).
With "teachers" in SETTINGS_JSON (a list of names) it trains those teachers instead (`train_teacher`, the tiny
profile's configs with SETTINGS_JSON's other fields replaced) on TEACHERS_DIR/dataset.npz, logs in OUT/logs, and
dumps per teacher T its variables (T.0, T.1, ...), its trajectory's rankings (T.rankings) and its run (T.run).
STRATEGY "teacher_executor" runs the TFX TeacherTrainer's executor instead, as a multi-worker job's task would:
TEACHERS_DIR is its InteractionDataset's URI, OUT the root of its three output artifacts, SETTINGS_JSON
{"teacher": name, "workers": N, and TeacherConfig fields}; the executor creates the strategy itself."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

from hetcomp_tf.config import get_profile
from hetcomp_tf.util.distribute import make_strategy


def two_cpu_strategy() -> tf.distribute.Strategy:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


def distil(teachers_dir: str, out: str, settings: dict, strategy: tf.distribute.Strategy) -> dict:
    from hetcomp_tf.data.dataset import Dataset
    from hetcomp_tf.distill.ensemble import EnsembleKnowledge
    from hetcomp_tf.distill.loop import distill
    from hetcomp_tf.teachers.trajectories import load_trajectories

    cfg = dataclasses.replace(get_profile("tiny").distill, **settings)
    data = Dataset.load(Path(teachers_dir) / "dataset.npz")
    knowledge = EnsembleKnowledge.from_trajectories(load_trajectories(teachers_dir), tau=cfg.tau)
    run = distill(
        data,
        knowledge if cfg.method != "wo_kd" else None,
        cfg,
        log_dir=Path(out) / "logs",
        resume_dir=Path(out) / "state",
        progress=None,
        strategy=strategy,
    )
    dkc = (
        {}
        if run.dkc is None
        else {
            "stages": run.dkc.stages.numpy(),
            "d_prev": run.dkc.d_prev.numpy(),
            "targets": run.dkc.target_table.numpy(),
        }
    )
    return {
        "users": run.student.user_embedding.embeddings.numpy(),
        "items": run.student.item_embedding.embeddings.numpy(),
        "run": json.dumps(run.to_dict()),
        **dkc,
    }


def train_teachers(teachers_dir: str, out: str, settings: dict, strategy: tf.distribute.Strategy) -> dict:
    from hetcomp_tf.data.dataset import Dataset
    from hetcomp_tf.teachers.training import train_teacher

    profile, names = get_profile("tiny"), settings.pop("teachers")
    data = Dataset.load(Path(teachers_dir) / "dataset.npz")
    arrays = {}
    for name in names:
        cfg = dataclasses.replace(profile.teachers[name], **settings)
        run = train_teacher(
            name, data, cfg, profile.trajectory, log_dir=Path(out) / "logs", progress=None, strategy=strategy
        )
        arrays.update({f"{name}.{i}": v.numpy() for i, v in enumerate(run.teacher.variables)})
        arrays[f"{name}.rankings"] = run.trajectory.rankings
        arrays[f"{name}.run"] = json.dumps({**run.to_dict(), "history": run.history})
    return arrays


def run_teacher_executor(dataset_uri: str, out: str, settings: dict) -> dict:
    import tempfile

    from tensorflow_metadata.proto.v0 import anomalies_pb2
    from tfx.types import standard_artifacts

    from components import keys
    from components.artifacts import InteractionDataset, TeacherTrajectory
    from components.teacher_trainer import executor as teacher_trainer
    from tests.helpers import anomalies_artifact

    profile, name, workers = get_profile("tiny"), settings.pop("teacher"), settings.pop("workers")
    dataset = InteractionDataset()
    dataset.uri = dataset_uri
    clean = anomalies_artifact(
        Path(tempfile.mkdtemp()) / "anomalies", {split: anomalies_pb2.Anomalies() for split in ("train", "valid")}
    )
    outputs = {}
    for key, cls in (
        (keys.MODEL_KEY, standard_artifacts.Model),
        (keys.TRAJECTORY_KEY, TeacherTrajectory),
        (keys.MODEL_RUN_KEY, standard_artifacts.ModelRun),
    ):
        outputs[key] = [cls()]
        outputs[key][0].uri = str(Path(out) / key)
    cfg = dataclasses.replace(profile.teachers[name], **settings)
    teacher_trainer.Executor().Do(
        {keys.DATASET_KEY: [dataset], keys.ANOMALIES_KEY: [clean]},
        outputs,
        {
            keys.TEACHER_KEY: name,
            keys.TEACHER_CONFIG_KEY: json.dumps(dataclasses.asdict(cfg)),
            keys.SEED_KEY: 0,
            keys.WORKERS_KEY: workers,
            keys.TRAJECTORY_CONFIG_KEY: json.dumps(dataclasses.asdict(profile.trajectory)),
        },
    )
    return {"replicas": make_strategy(cfg.distribute).num_replicas_in_sync}  # the executor's own (cached)


def main(teachers_dir: str, out: str, dump: str, strategy_name: str, settings: str) -> None:
    if strategy_name == "teacher_executor":
        np.savez(dump, **run_teacher_executor(teachers_dir, out, json.loads(settings)))
        return
    strategy = two_cpu_strategy() if strategy_name == "two_cpus" else make_strategy(strategy_name)
    settings = json.loads(settings)
    train = train_teachers if "teachers" in settings else distil
    np.savez(dump, replicas=strategy.num_replicas_in_sync, **train(teachers_dir, out, settings, strategy))


if __name__ == "__main__":
    main(*sys.argv[1:])
