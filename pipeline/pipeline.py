"""The HetComp TFX DAG, shared by the local and the Kubeflow runner:

InteractionExampleGen -> StatisticsGen -> SchemaGen -> ExampleValidator (gate)
  -> TeacherTrainer.<name> x 6 (independent) -> KnowledgeBuilder -> StudentTrainer -> RankingEvaluator -> Pusher

with the latest blessed student (a LatestBlessedModelStrategy Resolver over this pipeline's models and
blessings) as the RankingEvaluator's baseline.

With `PipelineConfig.warm_start` (continuous training on a newer snapshot of the data), three more inputs are wired,
each from a Resolver, so ML Metadata records what each run started from: the latest dataset
(LatestArtifactOrNothing) into InteractionExampleGen, whose vocabularies it extends; each teacher's latest Model
(the same over that TeacherTrainer's `model` output) into it as `base_model`; the latest blessed
student into the StudentTrainer as `base_model`. On the first run they resolve nothing and training is cold. The
resolved artifacts are inputs, so TFX's cache never serves a warm-started run's components.
"""

from __future__ import annotations

from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec

from components import (
    InteractionDataset,
    InteractionExampleGen,
    KnowledgeBuilder,
    RankingEvaluator,
    StudentTrainer,
    TeacherTrainer,
    keys,
)
from components.pusher import executor as pusher_executor
from pipeline.configs import PipelineConfig

STUDENT_NODE_ID = "StudentTrainer"  # the component's default id


def teacher_node_id(name: str) -> str:
    """The node id of teacher `name`'s TeacherTrainer, e.g. "TeacherTrainer.GNN"."""
    return f"TeacherTrainer.{name}"


BASELINE_RESOLVER = "latest_blessed_model_resolver"
DATASET_RESOLVER = "latest_dataset_resolver"


def teacher_resolver(teacher: str) -> str:
    """The node id of the Resolver of `teacher`'s latest Model, a warm start's base model."""
    return f"latest_teacher_model_resolver.{teacher}"


def resolver_ids(config: PipelineConfig) -> set[str]:
    """The Resolver nodes of the DAG: they query ML Metadata afresh in every run and are never "cached".

    Args:
        config: the pipeline's config (its teachers and `warm_start`).

    Returns:
        The Resolvers' node ids.
    """
    warm = {DATASET_RESOLVER, *map(teacher_resolver, config.teachers)} if config.warm_start else set()
    return {BASELINE_RESOLVER, *warm}


class LatestArtifactOrNothing(tfx.dsl.experimental.LatestArtifactStrategy):
    """The latest artifact of each channel, or none: TFX's LatestArtifactStrategy fails its Resolver execution when
    a channel is still empty (the first run), this one hands over an empty list, so the optional input stays unset."""

    def resolve_artifacts(self, store, input_dict):
        """The latest artifact of each channel, never failing on an empty one.

        Args:
            store: the ML Metadata store (unused).
            input_dict: {channel key: [Artifact]}.

        Returns:
            {channel key: [the latest Artifact] or []}.
        """
        return self._resolve(input_dict)


def latest(strategy, node_id: str, **channels) -> tfx.dsl.Resolver:
    """A Resolver node.

    Args:
        strategy: its resolver strategy class.
        node_id: its node id.
        **channels: the channels it resolves, by output key.

    Returns:
        The Resolver, its outputs keyed as `channels`.
    """
    return tfx.dsl.Resolver(strategy_class=strategy, **channels).with_id(node_id)


def create_components(config: PipelineConfig) -> list:
    """The DAG's nodes (see the module docstring), wired.

    Args:
        config: the pipeline's config.

    Returns:
        The components and Resolvers, producers before consumers.

    Raises:
        HetCompError: a bad profile, method, setting or worker count (from the configs and components).
    """
    profile, distill_config = config.profile_config(), config.distill_config()
    resolvers = {}
    if config.warm_start:
        resolvers[DATASET_RESOLVER] = latest(
            LatestArtifactOrNothing, DATASET_RESOLVER, **{keys.DATASET_KEY: tfx.dsl.Channel(type=InteractionDataset)}
        )
        for name in config.teachers:
            teacher_model = tfx.dsl.Channel(
                type=tfx.types.standard_artifacts.Model,
                producer_component_id=teacher_node_id(name),
                output_key=keys.MODEL_KEY,
            )
            resolvers[name] = latest(LatestArtifactOrNothing, teacher_resolver(name), **{keys.MODEL_KEY: teacher_model})
    previous_dataset = resolvers[DATASET_RESOLVER].outputs[keys.DATASET_KEY] if config.warm_start else None
    ingestion = InteractionExampleGen(
        data=config.data,
        data_format=config.data_format,
        data_config=config.data_config(),
        previous_dataset=previous_dataset,
    )
    dataset = ingestion.outputs[keys.DATASET_KEY]
    statistics = tfx.components.StatisticsGen(examples=ingestion.outputs[keys.EXAMPLES_KEY])
    schema = tfx.components.SchemaGen(statistics=statistics.outputs[keys.STATISTICS_KEY], infer_feature_shape=True)
    validator = tfx.components.ExampleValidator(
        statistics=statistics.outputs[keys.STATISTICS_KEY], schema=schema.outputs[keys.SCHEMA_KEY]
    )
    teachers = {
        name: TeacherTrainer(
            dataset=dataset,
            anomalies=validator.outputs[keys.ANOMALIES_KEY],
            teacher=name,
            teacher_config=config.teacher_config(name),
            workers=config.teacher_workers,
            trajectory_config=profile.trajectory,
            seed=config.seed,
            base_model=resolvers[name].outputs[keys.MODEL_KEY] if config.warm_start else None,
        ).with_id(teacher_node_id(name))
        for name in config.teachers
    }
    knowledge = KnowledgeBuilder(
        dataset=dataset,
        trajectories={name: t.outputs[keys.TRAJECTORY_KEY] for name, t in teachers.items()},
        distill_config=distill_config,
        beam_build=config.beam_knowledge,
    )
    baseline = latest(
        tfx.dsl.experimental.LatestBlessedModelStrategy,
        BASELINE_RESOLVER,
        **{
            keys.MODEL_KEY: tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
            keys.MODEL_BLESSING_KEY: tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
        },
    )
    student = StudentTrainer(
        dataset=dataset,
        knowledge=knowledge.outputs[keys.KNOWLEDGE_KEY],
        distill_config=distill_config,
        workers=config.student_workers,
        base_model=baseline.outputs[keys.MODEL_KEY] if config.warm_start else None,
    )
    evaluator = RankingEvaluator(
        model=student.outputs[keys.MODEL_KEY],
        dataset=dataset,
        comparison=knowledge.outputs[keys.METRICS_KEY],
        method=config.method,
        thresholds=config.blessing_thresholds(),
        baseline_model=baseline.outputs[keys.MODEL_KEY],
    )
    pusher = tfx.components.Pusher(
        custom_executor_spec=executor_spec.ExecutorClassSpec(pusher_executor.Executor),
        model=student.outputs[keys.MODEL_KEY],
        model_blessing=evaluator.outputs[keys.BLESSING_KEY],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=config.serving())
        ),
    )
    return [
        *resolvers.values(),
        ingestion,
        statistics,
        schema,
        validator,
        *teachers.values(),
        knowledge,
        baseline,
        student,
        evaluator,
        pusher,
    ]


def create_pipeline(config: PipelineConfig, metadata_connection_config=None) -> tfx.dsl.Pipeline:
    """The HetComp pipeline, for either runner.

    Args:
        config: the pipeline's config: data, profile, method, thresholds, where things live, caching and Beam.
        metadata_connection_config: the local runner's SQLite store; None on Kubeflow (its own MLMD).

    Returns:
        The `tfx.dsl.Pipeline`.

    Raises:
        HetCompError: a bad profile, method, setting or worker count.
    """
    return tfx.dsl.Pipeline(
        pipeline_name=config.pipeline_name,
        pipeline_root=config.root(),
        components=create_components(config),
        enable_cache=config.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=config.beam_args(),
    )
