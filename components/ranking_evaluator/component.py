"""`RankingEvaluator`: the component spec and class; the executor is `executor.py` beside it."""

from __future__ import annotations

import json

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components import keys
from components.artifacts import InteractionDataset, RankingMetrics
from components.ranking_evaluator.executor import Executor


class RankingEvaluatorSpec(ComponentSpec):
    """`RankingEvaluator`'s parameters, inputs and outputs (see the component's docstring)."""

    PARAMETERS = {
        keys.METHOD_KEY: ExecutionParameter(type=str),
        keys.THRESHOLDS_KEY: ExecutionParameter(type=str),
    }
    INPUTS = {
        keys.MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        keys.DATASET_KEY: ChannelParameter(type=InteractionDataset),
        keys.COMPARISON_KEY: ChannelParameter(type=RankingMetrics),
        keys.BASELINE_MODEL_KEY: ChannelParameter(type=standard_artifacts.Model, optional=True),
    }
    OUTPUTS = {
        keys.BLESSING_KEY: ChannelParameter(type=standard_artifacts.ModelBlessing),
        keys.EVALUATION_KEY: ChannelParameter(type=RankingMetrics),
    }


class RankingEvaluator(base_component.BaseComponent):
    """Evaluates the exported student (the SavedModel that would be pushed) next to every teacher and the ensemble,
    and blesses it or not, as TFX's Evaluator does (executor.py describes both thresholds).

    Args:
        model: Model channel (the StudentTrainer's `model`): the candidate, scored through its `score_items`.
        dataset: InteractionDataset channel: the valid and test splits it is evaluated on.
        comparison: RankingMetrics channel (the KnowledgeBuilder's `metrics`): the teacher and ensemble rows.
        method: the student's row name (`student:<method>`).
        thresholds: {"metric": "recall@50", "min_share_of_ensemble": float, "change_absolute": float | None,
            "change_relative": float | None}.
        baseline_model: optional Model channel, the model to beat (a LatestBlessedModelStrategy Resolver's `model`).

    Outputs:
        blessing: ModelBlessing; a BLESSED or NOT_BLESSED file holding the verdict, and TFX Evaluator's custom
            properties (`blessed`, `current_model[_id]`, `baseline_model[_id]`) that the Pusher and
            LatestBlessedModelStrategy read.
        evaluation: RankingMetrics; metrics.json with the comparison table ("methods", the student's row added) and
            the verdict ("blessing").
    """

    SPEC_CLASS = RankingEvaluatorSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)  # a Beam executor's subclass

    def __init__(
        self,
        model: types.BaseChannel,
        dataset: types.BaseChannel,
        comparison: types.BaseChannel,
        method: str,
        thresholds: dict,
        baseline_model: types.BaseChannel | None = None,
    ):
        super().__init__(
            spec=RankingEvaluatorSpec(
                method=method,
                thresholds=json.dumps(thresholds, sort_keys=True),
                model=model,
                dataset=dataset,
                comparison=comparison,
                baseline_model=baseline_model,
                blessing=types.Channel(type=standard_artifacts.ModelBlessing),
                evaluation=types.Channel(type=RankingMetrics),
            )
        )
