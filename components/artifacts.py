"""HetComp's custom TFX artifact types and the file layout inside each artifact's directory.

Every artifact directory holds the library's own on-disk format (`Dataset.save`, `Trajectory.save`,
`EnsembleKnowledge.save`, JSON metrics), so a component reads exactly what the library wrote and nothing
is re-encoded. The few facts worth querying in ML Metadata without opening files (teacher, number of
checkpoints, N, format version, sizes) are custom properties: the Kubeflow V2 compiler accepts custom types
only without declared PROPERTIES, and only with `<module>.<Name>` type names (one dot), which TFX's KFP v2
container entrypoint imports as the class path: so each TYPE_NAME is `components.<class name>`, the package
re-exporting these classes (components/artifacts_test.py checks every one imports back to its class).
"""

from __future__ import annotations

from tfx.types import artifact


class InteractionDataset(artifact.Artifact):
    """The filtered, re-indexed, split interactions with their id vocabularies (one `Dataset` .npz)."""

    TYPE_NAME = "components.InteractionDataset"


class TeacherTrajectory(artifact.Artifact):
    """One teacher's ranking trajectory (T checkpoints of its top-N lists) and its valid/test metrics."""

    TYPE_NAME = "components.TeacherTrajectory"


class KnowledgeArtifact(artifact.Artifact):
    """Everything the student needs from the teachers (`hetcomp_tf.distill.ensemble.EnsembleKnowledge.save`): stacked
    trajectories and the ensemble's observed order. The type name stays the one ML Metadata stores already:
    renaming it would orphan existing pipelines' artifacts and caches."""

    TYPE_NAME = "components.KnowledgeArtifact"


class RankingMetrics(artifact.Artifact):
    """Ranking metrics as JSON: `{"methods": {name: {"valid": {...}, "test": {...}}}, ...}`."""

    TYPE_NAME = "components.RankingMetrics"


def set_custom_properties(target: artifact.Artifact, **values) -> None:
    """int values become int custom properties, everything else a string one."""
    for key, value in values.items():
        if isinstance(value, int):
            target.set_int_custom_property(key, value)
        else:
            target.set_string_custom_property(key, str(value))


# File names inside artifact directories (see components/storage.py for reading and writing them).
DATASET_FILE = "dataset.npz"
METRICS_FILE = "metrics.json"
TRAJECTORY_DIR = "trajectory"  # TeacherTrajectory: `Trajectory.save` layout (+ METRICS_FILE beside it)
KNOWLEDGE_DIR = "knowledge"  # KnowledgeArtifact: `EnsembleKnowledge.save` layout
STUDENT_DIR = "Format-HetCompStudent"  # student Model, beside TFX's Format-Serving: `student.save_student`
VOCABULARY_FILE = "vocabulary.npz"  # in every Model: the user and item ids its rows stand for (warm starts map them)
TEACHER_FILE = (
    "teacher.json"  # in a teacher's Model: its name, teacher config and seed (to rebuild it for a warm start)
)
