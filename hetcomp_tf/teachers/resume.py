"""A teacher's training state on disk, written after every evaluation, so a teacher longer than a machine stays up
(LightGCN or the autoencoders on Gowalla) goes on from its last evaluation instead of from scratch.

Every epoch's sampling is seeded by (seed, epoch) and every in-graph random op takes a stateless seed
(models/base.py), so a resumed teacher trains exactly as an uninterrupted one: same weights, same evaluations, same
trajectory.

Layout of `directory`:
  state/      written atomically after each evaluation: run.* (tf.train.Checkpoint of the teacher and its
              optimiser's slots), best_weights.npz (early stopping's copy), state.json (config, epochs trained,
              history, stale evaluations, seconds, warm start, the recorder's evaluations and record indices);
  records/    <evaluation>.npz per record the trajectory recorder keeps (rankings, or weights when early stopping
              looks at a sample of users): written before the state that names them, removed after the state that
              no longer does, so the two always agree after a crash.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from hetcomp_tf.config import TeacherConfig
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.teachers.trajectories import TrajectoryRecorder, remove_unlisted_records
from hetcomp_tf.util.files import atomic_directory, read_json, write_json


@dataclasses.dataclass
class Resumed:
    """What the loop needs from a saved state (`TeacherState.load`).

    Attributes:
        epochs: epochs trained.
        history: per epoch, {"epoch", "loss"} and "valid" at an evaluation.
        seconds: training seconds of the earlier invocations.
        warm_start: what a warm start carried over at the first invocation; None: a cold start.
    """

    epochs: int  # epochs trained
    history: list[dict]  # per epoch: {"epoch", "loss"[, "valid"]}
    seconds: float  # training seconds of the earlier invocations
    warm_start: dict | None  # what a warm start carried over at the first invocation


class TeacherState:
    """Saves and restores one teacher's training (see the module docstring).

    Args:
        directory: the state's directory (created on the first save).
        name: the teacher's name, checked on load with `cfg` and `seed`.
        cfg: the teacher's config; a state of another config is an error, not a silent restart.
        seed: the run's seed.
        teacher: the teacher whose variables are saved.
        optimizer: its optimiser (built), whose slots are saved.
        recorder: the trajectory recorder, whose evaluations and records are saved.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        name: str,
        cfg: TeacherConfig,
        seed: int,
        teacher: tf.Module,
        optimizer: tf.keras.optimizers.Optimizer,
        recorder: TrajectoryRecorder,
    ):
        self.directory, self.recorder = Path(directory), recorder
        self.identity = json.loads(json.dumps({"teacher": name, "config": dataclasses.asdict(cfg), "seed": seed}))
        self.checkpoint = tf.train.Checkpoint(teacher=teacher, optimizer=optimizer)

    @property
    def records_dir(self) -> Path:
        """`directory`/records: the recorder's record files."""
        return self.directory / "records"

    def exists(self) -> bool:
        """Whether `directory` holds a state to resume."""
        return (self.directory / "state" / "state.json").is_file()

    def save(
        self,
        epochs: int,
        history: list[dict],
        stale: int,
        best_weights: list[np.ndarray],
        seconds: float,
        warm_start: dict | None,
    ) -> None:
        """Writes the state after an evaluation.

        Args:
            epochs: epochs trained.
            history: the loop's history so far.
            stale: early stopping's evaluations without a better one.
            best_weights: early stopping's copy of the best weights.
            seconds: training seconds so far, earlier invocations included.
            warm_start: what a warm start carried over, or None.
        """
        self.records_dir.mkdir(parents=True, exist_ok=True)
        self.recorder.write_records(self.records_dir)
        with atomic_directory(self.directory / "state") as staging:
            self.checkpoint.write(os.fspath(staging / "run"))
            np.savez(staging / "best_weights.npz", *best_weights)
            state = {"epochs": epochs, "history": history, "stale": stale, "seconds": seconds}
            state.update(self.identity, warm_start=warm_start, recorder=self.recorder.state())
            write_json(staging / "state.json", state)
        remove_unlisted_records(self.recorder, self.records_dir)

    def load(self) -> tuple[Resumed, int, list[np.ndarray]]:
        """Restores the teacher, its optimiser and the recorder.

        Returns:
            (what the loop resumes from, early stopping's stale evaluations, its best weights).

        Raises:
            HetCompError: the state was written for another teacher, config or seed.
        """
        state = read_json(self.directory / "state" / "state.json")
        if {key: state.get(key) for key in self.identity} != self.identity:
            raise HetCompError(
                f"{self.directory}: a teacher state of another teacher, config or seed; remove it to start afresh"
            )
        self.checkpoint.read(os.fspath(self.directory / "state" / "run")).assert_existing_objects_matched()
        self.recorder.resume(state["recorder"], self.records_dir)
        with np.load(self.directory / "state" / "best_weights.npz") as arrays:
            best_weights = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
        resumed = Resumed(state["epochs"], state["history"], state["seconds"], state["warm_start"])
        return resumed, int(state["stale"]), best_weights
