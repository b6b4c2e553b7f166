"""`KnowledgeBuilder`: the component spec and class; the executor is `executor.py` beside it."""

from __future__ import annotations

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types.component_spec import ChannelParameter, ComponentSpec, ExecutionParameter

from components import keys
from components.artifacts import InteractionDataset, KnowledgeArtifact, RankingMetrics, TeacherTrajectory
from components.knowledge_builder.executor import Executor
from hetcomp_tf.config import TEACHER_NAMES, DistillConfig


class KnowledgeBuilderSpec(ComponentSpec):
    """`KnowledgeBuilder`'s parameters, inputs (one optional trajectory input per teacher) and outputs."""

    PARAMETERS = {
        keys.TAU_KEY: ExecutionParameter(type=float),
        keys.BEAM_BUILD_KEY: ExecutionParameter(type=int, optional=True),
        keys.TARGETS_KEY: ExecutionParameter(type=str, optional=True),
        keys.FIT_USERS_KEY: ExecutionParameter(type=int, optional=True),
    }
    INPUTS = {
        keys.DATASET_KEY: ChannelParameter(type=InteractionDataset),
        **{keys.trajectory_key(t): ChannelParameter(type=TeacherTrajectory, optional=True) for t in TEACHER_NAMES},
    }
    OUTPUTS = {
        keys.KNOWLEDGE_KEY: ChannelParameter(type=KnowledgeArtifact),
        keys.METRICS_KEY: ChannelParameter(type=RankingMetrics),
    }


class KnowledgeBuilder(base_component.BaseComponent):
    """Builds the ensemble knowledge the student distils from out of the teachers' trajectories, and the comparison
    table's teacher and ensemble rows.

    Args:
        dataset: InteractionDataset channel: the splits the ensemble is evaluated on (and fitted on, "fitted").
        trajectories: TeacherTrainer `trajectory` channels by teacher name; each becomes an optional input of its own
            (`keys.trajectory_key`, since KFP v2 compiles only single-producer channels); at least one is wired.
        distill_config: only its ensemble settings matter (`tau`; `targets`: "fitted" fits τ and teacher weights on
            the valid split here, over `fit_users` of its users), so changing the student's other settings reuses
            cached knowledge.
        beam_build: build with a Beam pipeline into a sharded per-user layout (else in memory).

    Outputs:
        knowledge: KnowledgeArtifact; `EnsembleKnowledge.save`'s layout (or the sharded one) in `knowledge/`: the
            stacked trajectories and the ensemble's observed order. Custom properties: teachers, n_checkpoints,
            top_n, layout.
        metrics: RankingMetrics; metrics.json with each teacher's and the ensemble's valid/test metrics ("methods")
            and the targets used ("targets").
    """

    SPEC_CLASS = KnowledgeBuilderSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(
        self,
        dataset: types.BaseChannel,
        trajectories: dict[str, types.BaseChannel],
        distill_config: DistillConfig,
        beam_build: bool = False,
    ):
        super().__init__(
            spec=KnowledgeBuilderSpec(
                tau=float(distill_config.tau),
                targets=distill_config.targets,
                fit_users=int(distill_config.fit_users),
                beam_build=int(beam_build),
                dataset=dataset,
                **{keys.trajectory_key(name): channel for name, channel in trajectories.items()},
                knowledge=types.Channel(type=KnowledgeArtifact),
                metrics=types.Channel(type=RankingMetrics),
            )
        )
