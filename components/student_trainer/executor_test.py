"""The StudentTrainer executor and its run_fn: the exported model, the saved student and the run's record."""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest
import tensorflow as tf
from tfx.components.trainer import fn_args_utils
from tfx.dsl.components.base import base_executor
from tfx.types import standard_artifacts
from tfx.utils import json_utils, path_utils

from components import keys
from components.artifacts import STUDENT_DIR
from components.ranking_evaluator import executor as ranking_evaluator
from components.student_trainer import executor as student_trainer
from components.student_trainer.component import StudentTrainerSpec
from components.testing import DISTILL, make
from hetcomp_tf.distill.student import load_student
from hetcomp_tf.metrics import evaluate


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

    @pytest.mark.parametrize("warm", [False, True])
    def test_its_fn_args_carry_what_the_run_fn_reads(self, root, ingested, knowledge, student, warm):
        """The dataset and knowledge URIs, the output directories as TFX's Trainer lays them out and, warm, the base
        model's serving directory (as TFX's Trainer hands it over), from the declared inputs alone."""
        context = base_executor.BaseExecutor.Context(tmp_dir=str(root / "tmp-args"), unique_id="2")
        model, model_run = make(standard_artifacts.Model, root, "m2"), make(standard_artifacts.ModelRun, root, "r2")
        inputs = {keys.DATASET_KEY: [ingested.dataset], keys.KNOWLEDGE_KEY: [knowledge.knowledge]}
        if warm:
            inputs[keys.BASE_MODEL_KEY] = [student.model]
        fn_args = student_trainer.Executor(context)._GetFnArgs(
            inputs,
            {keys.MODEL_KEY: [model], keys.MODEL_RUN_KEY: [model_run]},
            {keys.CUSTOM_CONFIG_KEY: json_utils.dumps({keys.DISTILL_CONFIG_FIELD: {}})},
        )
        assert isinstance(fn_args, fn_args_utils.FnArgs)
        assert fn_args.custom_config == {
            keys.DISTILL_CONFIG_FIELD: {},
            keys.DATASET_URI_FIELD: ingested.dataset.uri,
            keys.KNOWLEDGE_URI_FIELD: knowledge.knowledge.uri,
        }
        assert fn_args.serving_model_dir == path_utils.serving_model_dir(model.uri)
        assert fn_args.model_run_dir == model_run.uri
        assert fn_args.base_model == (path_utils.serving_model_path(student.model.uri) if warm else None)


def test_the_component_declares_only_what_the_run_fn_reads():
    assert set(StudentTrainerSpec.INPUTS) == {keys.DATASET_KEY, keys.KNOWLEDGE_KEY, keys.BASE_MODEL_KEY}
    assert set(StudentTrainerSpec.PARAMETERS) == {keys.RUN_FN_KEY, keys.CUSTOM_CONFIG_KEY}
