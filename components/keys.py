"""The names of every custom component's channels (inputs, outputs) and execution properties, in one place, as
TFX keeps its own in `tfx.types.standard_component_specs`: component specs, executors, the pipeline and the tests
all name a channel through these constants. Where a TFX component has a key of the same meaning, it is TFX's own
constant (so a StudentTrainer's `model` is what a Pusher or a Resolver expects a Trainer's `model` to be).
"""

from __future__ import annotations

from tfx.types import standard_component_specs as tfx_keys

# TFX's own keys, used by the custom components and by the TFX components the pipeline wires them to.
EXAMPLES_KEY = tfx_keys.EXAMPLES_KEY  # Examples
STATISTICS_KEY = tfx_keys.STATISTICS_KEY  # ExampleStatistics (StatisticsGen)
SCHEMA_KEY = tfx_keys.SCHEMA_KEY  # Schema (SchemaGen)
ANOMALIES_KEY = tfx_keys.ANOMALIES_KEY  # ExampleAnomalies (ExampleValidator)
MODEL_KEY = tfx_keys.MODEL_KEY  # Model
MODEL_RUN_KEY = tfx_keys.MODEL_RUN_KEY  # ModelRun (TensorBoard logs)
BASE_MODEL_KEY = tfx_keys.BASE_MODEL_KEY  # Model to warm-start from
BASELINE_MODEL_KEY = tfx_keys.BASELINE_MODEL_KEY  # Model to beat
BLESSING_KEY = tfx_keys.BLESSING_KEY  # ModelBlessing, an evaluator's output
EVALUATION_KEY = tfx_keys.EVALUATION_KEY  # an evaluator's metrics
MODEL_BLESSING_KEY = tfx_keys.MODEL_BLESSING_KEY  # ModelBlessing, the Pusher's input and the Resolver's
PUSHED_MODEL_KEY = tfx_keys.PUSHED_MODEL_KEY  # PushedModel
PUSH_DESTINATION_KEY = tfx_keys.PUSH_DESTINATION_KEY
RUN_FN_KEY = tfx_keys.RUN_FN_KEY
CUSTOM_CONFIG_KEY = tfx_keys.CUSTOM_CONFIG_KEY

# Channels of HetComp's own artifact types (components/artifacts.py).
DATASET_KEY = "dataset"  # InteractionDataset
PREVIOUS_DATASET_KEY = "previous_dataset"  # InteractionDataset whose vocabularies a warm-started run extends
TRAJECTORY_KEY = "trajectory"  # TeacherTrajectory, a TeacherTrainer's output
KNOWLEDGE_KEY = "knowledge"  # KnowledgeArtifact
METRICS_KEY = "metrics"  # RankingMetrics: the KnowledgeBuilder's teacher and ensemble rows
COMPARISON_KEY = "comparison"  # RankingMetrics: the same rows, as the RankingEvaluator's input


def trajectory_key(teacher: str) -> str:
    """The KnowledgeBuilder's input key of a teacher's trajectory: "I-AE" -> "trajectory_i_ae" (KFP v2 compiles
    only single-producer input channels, so every teacher has an input of its own)."""
    return f"{TRAJECTORY_KEY}_" + teacher.lower().replace("-", "_")


# Execution properties.
DATA_KEY = "data"  # InteractionExampleGen: what to ingest
DATA_FORMAT_KEY = "data_format"
DATA_CONFIG_KEY = "data_config"  # a DataConfig as JSON
DATA_FINGERPRINT_KEY = "data_fingerprint"
TEACHER_KEY = "teacher"  # TeacherTrainer: the teacher's name
TEACHER_CONFIG_KEY = "teacher_config"  # a TeacherConfig as JSON
TRAJECTORY_CONFIG_KEY = "trajectory_config"  # a TrajectoryConfig as JSON
SEED_KEY = "seed"
WORKERS_KEY = "workers"  # workers the task is compiled for
TAU_KEY = "tau"  # KnowledgeBuilder
BEAM_BUILD_KEY = "beam_build"
TARGETS_KEY = "targets"
FIT_USERS_KEY = "fit_users"  # KnowledgeBuilder: DistillConfig.fit_users
METHOD_KEY = "method"  # RankingEvaluator: the student's row name
THRESHOLDS_KEY = "thresholds"  # the blessing's thresholds as JSON

# Fields of the StudentTrainer's `custom_config` (what its run_fn reads from `fn_args.custom_config`).
DISTILL_CONFIG_FIELD = "distill_config"  # a DistillConfig as a dict
WORKERS_FIELD = "workers"
DATASET_URI_FIELD = "dataset_uri"  # added by the executor: the InteractionDataset's URI
KNOWLEDGE_URI_FIELD = "knowledge_uri"  # added by the executor: the KnowledgeArtifact's URI
