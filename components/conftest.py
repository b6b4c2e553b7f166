"""The executors chained on tiny local artifacts, once per session whichever `executor_test.py`s ask for them:
ingestion's dataset feeds two teachers, their trajectories the knowledge, the knowledge the student (see
components/testing.py)."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import pytest
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.dsl.components.base import base_executor
from tfx.types import standard_artifacts
from tfx.utils import json_utils, path_utils

from components import keys, storage
from components.artifacts import METRICS_FILE, InteractionDataset, KnowledgeArtifact, RankingMetrics, TeacherTrajectory
from components.ingestion import executor as ingestion
from components.knowledge_builder import executor as knowledge_builder
from components.student_trainer import component as student_trainer
from components.teacher_trainer import executor as teacher_trainer
from components.testing import DATA_CONFIG, DISTILL, TEACHERS, TRAJECTORY, knowledge_inputs, make
from hetcomp_tf.distill.student import Student
from serving.export import export_model
from tests.helpers import anomalies_artifact


@pytest.fixture(scope="session")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("executors")


@pytest.fixture(scope="session")
def ingested(root):
    examples, dataset = make(standard_artifacts.Examples, root, "examples"), make(InteractionDataset, root, "dataset")
    ingestion.Executor().Do(
        {},
        {keys.EXAMPLES_KEY: [examples], keys.DATASET_KEY: [dataset]},
        {
            keys.DATA_KEY: "synthetic",
            keys.DATA_FORMAT_KEY: "",
            keys.DATA_CONFIG_KEY: json.dumps(dataclasses.asdict(DATA_CONFIG)),
            keys.DATA_FINGERPRINT_KEY: "synthetic",
        },
    )
    return SimpleNamespace(examples=examples, dataset=dataset, data=storage.read_dataset(dataset.uri))


@pytest.fixture(scope="session")
def teachers(root, ingested):
    clean = anomalies_artifact(root / "anomalies", {s: anomalies_pb2.Anomalies() for s in ("train", "valid")})
    runs = {}
    for name, cfg in TEACHERS.items():
        outputs = {
            key: [make(cls, root, f"{name}-{key}")]
            for key, cls in (
                (keys.MODEL_KEY, standard_artifacts.Model),
                (keys.TRAJECTORY_KEY, TeacherTrajectory),
                (keys.MODEL_RUN_KEY, standard_artifacts.ModelRun),
            )
        }
        teacher_trainer.Executor().Do(
            {keys.DATASET_KEY: [ingested.dataset], keys.ANOMALIES_KEY: [clean]},
            outputs,
            {
                keys.TEACHER_KEY: name,
                keys.TEACHER_CONFIG_KEY: json.dumps(dataclasses.asdict(cfg)),
                keys.TRAJECTORY_CONFIG_KEY: json.dumps(dataclasses.asdict(TRAJECTORY)),
                keys.SEED_KEY: 0,
            },
        )
        runs[name] = SimpleNamespace(**{key: value[0] for key, value in outputs.items()})
    return runs


@pytest.fixture(scope="session")
def knowledge(root, ingested, teachers):
    outputs = {
        keys.KNOWLEDGE_KEY: [make(KnowledgeArtifact, root, "knowledge")],
        keys.METRICS_KEY: [make(RankingMetrics, root, "km")],
    }
    knowledge_builder.Executor().Do(knowledge_inputs(ingested, teachers), outputs, {keys.TAU_KEY: DISTILL.tau})
    return SimpleNamespace(knowledge=outputs[keys.KNOWLEDGE_KEY][0], metrics=outputs[keys.METRICS_KEY][0])


@pytest.fixture(scope="session")
def student(root, ingested, knowledge):
    model, model_run = make(standard_artifacts.Model, root, "model", 7), make(standard_artifacts.ModelRun, root, "run")
    context = base_executor.BaseExecutor.Context(tmp_dir=str(root / "tmp"), unique_id="1")
    student_trainer.Executor(context).Do(
        {keys.DATASET_KEY: [ingested.dataset], keys.KNOWLEDGE_KEY: [knowledge.knowledge]},
        {keys.MODEL_KEY: [model], keys.MODEL_RUN_KEY: [model_run]},
        {
            keys.RUN_FN_KEY: student_trainer.DEFAULT_RUN_FN,
            keys.CUSTOM_CONFIG_KEY: json_utils.dumps({keys.DISTILL_CONFIG_FIELD: dataclasses.asdict(DISTILL)}),
        },
    )
    return SimpleNamespace(model=model, run=storage.read_json(model_run.uri, METRICS_FILE), model_run=model_run)


@pytest.fixture(scope="session")
def untrained(root, ingested):
    """A model that learnt nothing (the student's random initialisation), exported like the trainer exports."""
    model = make(standard_artifacts.Model, root, "untrained", 8)
    data = ingested.data
    export_model(
        Student(data.n_users, data.n_items, DISTILL.student_dim, seed=1), data, path_utils.serving_model_path(model.uri)
    )
    return model
