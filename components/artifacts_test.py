"""The custom artifact types (artifacts.py)."""

from __future__ import annotations

import pytest
from tfx.utils import import_utils

from components.artifacts import InteractionDataset, KnowledgeArtifact, RankingMetrics, TeacherTrajectory


@pytest.mark.parametrize("cls", [InteractionDataset, TeacherTrajectory, KnowledgeArtifact, RankingMetrics])
def test_every_custom_type_name_is_the_class_path_kfps_entrypoint_imports(cls):
    """TFX's KFP v2 container entrypoint rebuilds an input artifact by importing its schema title as a class."""
    assert import_utils.import_class_by_path(cls.TYPE_NAME) is cls
