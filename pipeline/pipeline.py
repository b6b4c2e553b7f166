"""The HetComp TFX DAG, shared by the local and the Kubeflow runner:

InteractionExampleGen -> StatisticsGen -> SchemaGen -> ExampleValidator (gate)
  -> TeacherTrainer.<name> x 6 (independent) -> KnowledgeBuilder -> StudentTrainer -> RankingEvaluator -> Pusher

with the latest blessed student (a LatestBlessedModelStrategy Resolver over this pipeline's models and
blessings) as the RankingEvaluator's baseline.
"""

from __future__ import annotations

from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec

from components import pusher as pusher_executor
from components import (InteractionExampleGen, KnowledgeBuilder, RankingEvaluator, StudentTrainer,
                        TeacherTrainer)
from pipeline.configs import PipelineConfig

BASELINE_RESOLVER = "latest_blessed_model_resolver"


def create_components(config: PipelineConfig) -> list:
    profile, distill_config = config.profile_config(), config.distill_config()
    ingestion = InteractionExampleGen(data=config.data, data_format=config.data_format,
                                      data_config=config.data_config())
    statistics = tfx.components.StatisticsGen(examples=ingestion.outputs["examples"])
    schema = tfx.components.SchemaGen(statistics=statistics.outputs["statistics"], infer_feature_shape=True)
    validator = tfx.components.ExampleValidator(statistics=statistics.outputs["statistics"],
                                                schema=schema.outputs["schema"])
    teachers = {
        name: TeacherTrainer(dataset=ingestion.outputs["dataset"], anomalies=validator.outputs["anomalies"],
                             teacher=name, teacher_config=profile.teachers[name],
                             trajectory_config=profile.trajectory, seed=config.seed).with_id(f"TeacherTrainer.{name}")
        for name in config.teachers
    }
    knowledge = KnowledgeBuilder(dataset=ingestion.outputs["dataset"],
                                 trajectories={name: t.outputs["trajectory"] for name, t in teachers.items()},
                                 distill_config=distill_config)
    student = StudentTrainer(examples=ingestion.outputs["examples"], schema=schema.outputs["schema"],
                             dataset=ingestion.outputs["dataset"], knowledge=knowledge.outputs["knowledge"],
                             distill_config=distill_config, workers=config.student_workers)
    baseline = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
        model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
        model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
    ).with_id(BASELINE_RESOLVER)
    evaluator = RankingEvaluator(model=student.outputs["model"], dataset=ingestion.outputs["dataset"],
                                 comparison=knowledge.outputs["metrics"], method=config.method,
                                 thresholds=config.blessing_thresholds(), baseline_model=baseline.outputs["model"])
    pusher = tfx.components.Pusher(
        custom_executor_spec=executor_spec.ExecutorClassSpec(pusher_executor.Executor),
        model=student.outputs["model"], model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=config.serving())))
    return [ingestion, statistics, schema, validator, *teachers.values(), knowledge, student, baseline, evaluator,
            pusher]


def create_pipeline(config: PipelineConfig, metadata_connection_config=None) -> tfx.dsl.Pipeline:
    """`metadata_connection_config`: the local runner's SQLite store; None on Kubeflow (its own MLMD)."""
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.root(),
        components=create_components(config),
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=config.beam_args(),
    )
