"""HetComp's custom TFX components: thin wrappers that move the library's results in and out of artifacts.

The artifact classes are exported here because their TYPE_NAMEs (`components.<Name>`) are class paths (artifacts.py).
"""

from components.artifacts import InteractionDataset, KnowledgeArtifact, RankingMetrics, TeacherTrajectory
from components.ingestion import InteractionExampleGen
from components.knowledge_builder import KnowledgeBuilder
from components.ranking_evaluator import RankingEvaluator
from components.student_trainer import StudentTrainer
from components.teacher_trainer import TeacherTrainer

__all__ = ["InteractionExampleGen", "KnowledgeBuilder", "RankingEvaluator", "StudentTrainer", "TeacherTrainer",
           "InteractionDataset", "KnowledgeArtifact", "RankingMetrics", "TeacherTrajectory"]
