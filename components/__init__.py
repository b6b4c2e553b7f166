"""HetComp's custom TFX components: thin wrappers that move the library's results in and out of artifacts.

One folder per component, as TFX's own: `<name>/component.py` (the spec and the class), `<name>/executor.py` and
`<name>/executor_test.py`; the modules beside them are what several components share (channel keys, artifact
types, storage, the Beam pipelines, the data gate). The artifact classes are exported here because their TYPE_NAMEs
(`components.<Name>`) are class paths (artifacts.py).
"""

from components.artifacts import InteractionDataset, KnowledgeArtifact, RankingMetrics, TeacherTrajectory
from components.ingestion.component import InteractionExampleGen
from components.knowledge_builder.component import KnowledgeBuilder
from components.ranking_evaluator.component import RankingEvaluator
from components.student_trainer.component import StudentTrainer
from components.teacher_trainer.component import TeacherTrainer

__all__ = [
    "InteractionExampleGen",
    "KnowledgeBuilder",
    "RankingEvaluator",
    "StudentTrainer",
    "TeacherTrainer",
    "InteractionDataset",
    "KnowledgeArtifact",
    "RankingMetrics",
    "TeacherTrajectory",
]
