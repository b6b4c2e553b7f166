"""The StudentTrainer executor and its run_fn: the exported model, the saved student and the run's record."""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest
import tensorflow as tf
from tfx.components.trainer import fn_args_utils
from tfx.dsl.components.base import base_executor
from tfx.proto import trainer_pb2
from tfx.types import standard_artifacts
from tfx.utils import json_utils, path_utils, proto_utils

from components import keys
from components.artifacts import STUDENT_DIR
from components.ranking_evaluator import executor as ranking_evaluator
from components.student_trainer import executor as student_trainer
from components.testing import DISTILL, make
from hetcomp_tf.metrics import evaluate
from hetcomp_tf.student import load_student


class TestStudentTrainer:
    def test_the_served_model_scores_as_the_saved_student_and_the_run_is_recorded(self, student, ingested):
        data = ingested.data
        saved = load_student(os.path.join(student.model.uri, STUDENT_DIR))
        served = ranking_evaluator.served_scorer(path_utils.serving_model_path(student.model.uri), data)
        users = tf.range(data.n_users)
        np.testing.assert_allclose(served(users).numpy(), saved.score_all(users).numpy(), rtol=1e-5, atol=1e-5)
        assert student.run["method"] == DISTILL.method and 1 <= student.run["epochs"] <= DISTILL.epochs
        assert student.run["valid"] == pytest.approx(evaluate(saved.score_all, data, "valid"), abs=1e-5)
        assert glob.glob(os.path.join(student.model_run.uri, "**", "events.out.tfevents.*"), recursive=True)

    def test_its_fn_args_carry_the_dataset_and_the_knowledge(self, root, ingested, knowledge):
        context = base_executor.BaseExecutor.Context(tmp_dir=str(root / "tmp-args"), unique_id="2")
        fn_args = student_trainer.Executor(context)._GetFnArgs(
            {keys.EXAMPLES_KEY: [ingested.examples], keys.DATASET_KEY: [ingested.dataset],
             keys.KNOWLEDGE_KEY: [knowledge.knowledge]},
            {keys.MODEL_KEY: [make(standard_artifacts.Model, root, "m2")],
             keys.MODEL_RUN_KEY: [make(standard_artifacts.ModelRun, root, "r2")]},
            {keys.TRAIN_ARGS_KEY: proto_utils.proto_to_json(trainer_pb2.TrainArgs(splits=["train"])),
             keys.EVAL_ARGS_KEY: proto_utils.proto_to_json(trainer_pb2.EvalArgs(splits=["valid"])),
             keys.CUSTOM_CONFIG_KEY: json_utils.dumps({keys.DISTILL_CONFIG_FIELD: {}})})
        assert isinstance(fn_args, fn_args_utils.FnArgs)
        assert fn_args.custom_config == {keys.DISTILL_CONFIG_FIELD: {}, keys.DATASET_URI_FIELD: ingested.dataset.uri,
                                         keys.KNOWLEDGE_URI_FIELD: knowledge.knowledge.uri}
