"""`StudentTrainer`: the component spec and class; the executor is `executor.py` beside it, the default `run_fn`
`distill_run.py`."""

from __future__ import annotations

import dataclasses

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import trainer_pb2
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter
from tfx.utils import json_utils

from components import keys
from components.artifacts import InteractionDataset, KnowledgeArtifact
from components.student_trainer.executor import Executor
from hetcomp_tf.config import DistillConfig
from hetcomp_tf.distribute import check_worker_request

# In a module of its own: TFX re-imports (importlib.reload) the run_fn's module on every execution, which
# would replace this module's component classes under a long-lived process (a second pipeline run).
DEFAULT_RUN_FN = "components.student_trainer.distill_run.run_fn"


class StudentTrainerSpec(ComponentSpec):
    PARAMETERS = {
        keys.TRAIN_ARGS_KEY: ExecutionParameter(type=trainer_pb2.TrainArgs),
        keys.EVAL_ARGS_KEY: ExecutionParameter(type=trainer_pb2.EvalArgs),
        keys.RUN_FN_KEY: ExecutionParameter(type=str),
        keys.CUSTOM_CONFIG_KEY: ExecutionParameter(type=str),
    }
    INPUTS = {
        keys.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        keys.SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema, optional=True),
        keys.DATASET_KEY: ChannelParameter(type=InteractionDataset),
        keys.KNOWLEDGE_KEY: ChannelParameter(type=KnowledgeArtifact),
        keys.BASE_MODEL_KEY: ChannelParameter(type=standard_artifacts.Model, optional=True),
    }
    OUTPUTS = {
        keys.MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        keys.MODEL_RUN_KEY: ChannelParameter(type=standard_artifacts.ModelRun),
    }


class StudentTrainer(base_component.BaseComponent):
    SPEC_CLASS = StudentTrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, examples: types.BaseChannel, dataset: types.BaseChannel, knowledge: types.BaseChannel,
                 distill_config: DistillConfig, schema: types.BaseChannel | None = None,
                 run_fn: str = DEFAULT_RUN_FN, base_model: types.BaseChannel | None = None, workers: int = 1):
        """The method and its hyper-parameters travel as `custom_config={"distill_config": {...}, "workers": N}`
        (JSON): N > 1 workers need `distill_config.distribute` = multi_worker, and the task then runs as an N-worker
        job whose platform sets TF_CONFIG (the run_fn checks the cluster's size). `base_model`: a model to
        warm-start from (the latest blessed student, on a warm-started run)."""
        check_worker_request("StudentTrainer", workers, distill_config.distribute)
        super().__init__(spec=StudentTrainerSpec(
            train_args=trainer_pb2.TrainArgs(splits=["train"]),
            eval_args=trainer_pb2.EvalArgs(splits=["valid"]),
            run_fn=run_fn,
            custom_config=json_utils.dumps({keys.DISTILL_CONFIG_FIELD: dataclasses.asdict(distill_config),
                                           keys.WORKERS_FIELD: workers}),
            examples=examples,
            schema=schema,
            dataset=dataset,
            knowledge=knowledge,
            base_model=base_model,
            model=types.Channel(type=standard_artifacts.Model),
            model_run=types.Channel(type=standard_artifacts.ModelRun),
        ))
