"""What the executor tests (`components/<name>/executor_test.py`) share, as TFX's own `executor_test.py`s do:
input artifacts built from their artifact classes over temporary directories, and the tiny settings every chained
executor runs with (150 synthetic users, two small teachers). The chained runs themselves (ingestion's dataset feeds
the teachers, their trajectories the knowledge, ...) are session fixtures in `components/conftest.py`, each run once
however many executor tests read it."""

from __future__ import annotations

import dataclasses

from components import keys
from hetcomp_tf.config import CMLConfig, DataConfig, MFConfig, TrajectoryConfig, get_profile

DATA_CONFIG = DataConfig(synthetic_users=150, synthetic_items=100)
TEACHERS = {
    "MF": MFConfig(dim=8, epochs=4, batch_size=256, learning_rate=1e-2, eval_every=1, patience=4),
    "ML": CMLConfig(dim=8, epochs=4, batch_size=256, learning_rate=2e-2, margin=0.5),
}
TRAJECTORY = TrajectoryConfig(top_n=60)
DISTILL = dataclasses.replace(get_profile("tiny").distill, epochs=10, top_k=30)
THRESHOLDS = {"metric": "recall@50", "min_share_of_ensemble": 0.5, "change_relative": -0.05, "change_absolute": None}


def make(cls, root, name: str, artifact_id: int | None = None):
    """An artifact of `cls` at root/name (with an ML Metadata id where the executor records one)."""
    artifact = cls()
    artifact.uri = str(root / name)
    if artifact_id is not None:
        artifact.id = artifact_id
    return artifact


def knowledge_inputs(ingested, teachers) -> dict:
    """The KnowledgeBuilder's input_dict: the dataset and every teacher's trajectory."""
    return {
        keys.DATASET_KEY: [ingested.dataset],
        **{keys.trajectory_key(n): [t.trajectory] for n, t in teachers.items()},
    }
