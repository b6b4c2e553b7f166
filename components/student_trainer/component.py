"""`StudentTrainer`: the component spec and class; the executor is `executor.py` beside it, the default `run_fn`
`distill_run.py`."""

from __future__ import annotations

import dataclasses

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter
from tfx.utils import json_utils

from components import keys
from components.artifacts import InteractionDataset, KnowledgeArtifact
from components.student_trainer.executor import Executor
from hetcomp_tf.config import DistillConfig
from hetcomp_tf.util.distribute import check_worker_request

# In a module of its own: TFX re-imports (importlib.reload) the run_fn's module on every execution, which
# would replace this module's component classes under a long-lived process (a second pipeline run).
DEFAULT_RUN_FN = "components.student_trainer.distill_run.run_fn"


class StudentTrainerSpec(ComponentSpec):
    """The inputs are what the run_fn reads, and only those: the student learns from the `Dataset` and the
    knowledge, not from the tf.Examples (which exist for StatisticsGen, SchemaGen and ExampleValidator)."""

    PARAMETERS = {
        keys.RUN_FN_KEY: ExecutionParameter(type=str),
        keys.CUSTOM_CONFIG_KEY: ExecutionParameter(type=str),
    }
    INPUTS = {
        keys.DATASET_KEY: ChannelParameter(type=InteractionDataset),
        keys.KNOWLEDGE_KEY: ChannelParameter(type=KnowledgeArtifact),
        keys.BASE_MODEL_KEY: ChannelParameter(type=standard_artifacts.Model, optional=True),
    }
    OUTPUTS = {
        keys.MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        keys.MODEL_RUN_KEY: ChannelParameter(type=standard_artifacts.ModelRun),
    }


class StudentTrainer(base_component.BaseComponent):
    """Distils the student from the ensemble knowledge: TFX's Trainer contract (a `run_fn` given by module path,
    called with `FnArgs`, a `Model` and a `ModelRun` out) over HetComp's own inputs.

    Args:
        dataset: InteractionDataset channel (InteractionExampleGen's `dataset`): the interactions it trains and
            picks its checkpoint on, and the vocabularies the exported model maps ids with.
        knowledge: KnowledgeArtifact channel (KnowledgeBuilder's `knowledge`): the teachers' stacked trajectories
            and the ensemble's order, what the student distils.
        distill_config: the method and its hyper-parameters, which travel as
            `custom_config={"distill_config": {...}, "workers": N}` (JSON).
        run_fn: module path of the function TFX calls with `FnArgs` (default: distill_run.run_fn).
        base_model: optional Model channel to warm-start from (the latest blessed student, on a warm-started run).
        workers: N > 1 needs `distill_config.distribute` = multi_worker; the task then runs as an N-worker job whose
            platform sets TF_CONFIG (the run_fn checks the cluster's size).

    Outputs:
        model: Model; `Format-Serving/` holds the serving SavedModel (what the RankingEvaluator scores and the
            Pusher copies), `Format-HetCompStudent/` the student's weights, beside them its vocabularies.
        model_run: ModelRun; the distillation's TensorBoard logs and its summary (metrics.json).

    Raises:
        HetCompError: `workers` does not fit `distill_config.distribute` (`check_worker_request`).
    """

    SPEC_CLASS = StudentTrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(
        self,
        dataset: types.BaseChannel,
        knowledge: types.BaseChannel,
        distill_config: DistillConfig,
        run_fn: str = DEFAULT_RUN_FN,
        base_model: types.BaseChannel | None = None,
        workers: int = 1,
    ):
        check_worker_request("StudentTrainer", workers, distill_config.distribute)
        super().__init__(
            spec=StudentTrainerSpec(
                run_fn=run_fn,
                custom_config=json_utils.dumps(
                    {keys.DISTILL_CONFIG_FIELD: dataclasses.asdict(distill_config), keys.WORKERS_FIELD: workers}
                ),
                dataset=dataset,
                knowledge=knowledge,
                base_model=base_model,
                model=types.Channel(type=standard_artifacts.Model),
                model_run=types.Channel(type=standard_artifacts.ModelRun),
            )
        )
