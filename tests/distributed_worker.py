"""One worker of tests/test_distribute.py's distillation: `python -m tests.distributed_worker TEACHERS_DIR OUT DUMP
DISTRIBUTE EPOCHS` with TF_CONFIG in the environment. Creates the strategy first (before TensorFlow runs
anything), distils the tiny profile's hetcomp with logs in OUT/logs and the run state in OUT/state (what only the
chief may write) and dumps what this worker ended with, chief or not, to DUMP (.npz): the student's tables, the
DKC state, and the run's summary as JSON."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from hetcomp_tf.config import get_profile
from hetcomp_tf.distribute import make_strategy


def main(teachers_dir: str, out: str, dump: str, distribute: str, epochs: str) -> None:
    strategy = make_strategy(distribute)  # before the data: collective ops are configured at start-up

    from hetcomp_tf.data import Dataset
    from hetcomp_tf.distill import distill
    from hetcomp_tf.ensemble import EnsembleKnowledge
    from hetcomp_tf.trajectories import load_trajectories

    tiny = get_profile("tiny")
    cfg = dataclasses.replace(tiny.distill, distribute=distribute, epochs=int(epochs), eval_every=3)
    data = Dataset.load(Path(teachers_dir) / "dataset.npz")
    knowledge = EnsembleKnowledge.from_trajectories(load_trajectories(teachers_dir), tau=cfg.tau)
    run = distill(data, knowledge, cfg, log_dir=Path(out) / "logs", resume_dir=Path(out) / "state", progress=None)
    np.savez(dump, users=run.student.user_embedding.embeddings.numpy(),
             items=run.student.item_embedding.embeddings.numpy(), stages=run.dkc.stages.numpy(),
             d_prev=run.dkc.d_prev.numpy(), targets=run.dkc.target_table.numpy(),
             replicas=strategy.num_replicas_in_sync, run=json.dumps(run.to_dict()))


if __name__ == "__main__":
    main(*sys.argv[1:])
