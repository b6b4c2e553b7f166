"""The one training loop shared by all six teachers.

Each teacher brings its own sampling and loss (`Teacher.train_epoch`); this loop only adds what must be the
same for all of them so they are comparable: Adam (or `cfg.optimizer`) at `cfg.learning_rate`, valid Recall@50 every
`cfg.eval_every` epochs (and after the last epoch; over a fixed sample of `cfg.eval_users` valid users when set,
every valid user at the checkpoints kept), early stopping after `cfg.patience` evaluations without a
strictly better one, the best weights restored at the end, and the ranking trajectory (trajectories.py).

Under a tf.distribute strategy (`cfg.distribute`, as the student's) the teacher's and Adam's variables are mirrored
and each replica steps on its share of every global batch (models/base.py); evaluations, early stopping and the
trajectory read the synchronised weights, so every worker takes the same decisions, and only the chief's TensorBoard
logs are kept (`distribute.worker_dir`).

With a `resume_dir`, the whole training state is saved after every evaluation and a rerun goes on from the last one
(`teachers/resume.py`): the teachers of a large data set train for hours, through stops and restarts.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from hetcomp_tf.config import RECORD_METRIC, TeacherConfig, TrajectoryConfig
from hetcomp_tf.data.dataset import Dataset
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.metrics import evaluate
from hetcomp_tf.models import Teacher, build_teacher
from hetcomp_tf.teachers.optimizers import make_optimizer
from hetcomp_tf.teachers.resume import Resumed, TeacherState
from hetcomp_tf.teachers.trajectories import (
    SampledTrajectoryRecorder,
    Trajectory,
    TrajectoryRecorder,
    remove_unlisted_records,
)
from hetcomp_tf.util.distribute import make_strategy, worker_dir
from hetcomp_tf.util.progress import Progress, log
from hetcomp_tf.util.summaries import ScalarLog
from hetcomp_tf.warmstart import WarmStart


@dataclass
class TeacherRun:
    """A trained teacher: the model, its trajectory, its metrics and how training went.

    Attributes:
        teacher: the teacher with the best-valid weights.
        trajectory: its ranking trajectory (the `Trajectory` of the chosen checkpoints).
        valid: the metrics of the best-valid evaluation (that of the restored weights).
        test: the restored teacher's test metrics.
        train_seconds: the whole loop's seconds (epochs, evaluations and trajectory recording), earlier invocations
            of a resumed run included.
        epochs: epochs trained.
        params: trainable parameters.
        early_stopped: True when early stopping ended training; False when the epoch cap did (the teacher may not
            have converged).
        history: per epoch, {"epoch", "loss"} and "valid" at an evaluation.
        warm_start: what a warm start carried over (`WarmStart.apply`); None: a cold start.
        finish_seconds: after the loop, the trajectory's finish (with early stopping on a sample of users: ranking
            every user at each kept checkpoint) and the test evaluation.
    """

    teacher: Teacher  # with the best-valid weights
    trajectory: Trajectory
    valid: dict  # metrics of the best-valid evaluation (= the restored weights)
    test: dict
    train_seconds: float  # the whole loop: epochs, evaluations and trajectory recording
    epochs: int  # epochs actually run
    params: int = 0  # trainable parameters
    early_stopped: bool = False  # False: the epoch cap ended training (the teacher may not have converged)
    history: list[dict] = field(default_factory=list)  # per epoch: {"epoch", "loss"[, "valid"]}
    warm_start: dict | None = None  # what a warm start carried over (`WarmStart.apply`); None: a cold start
    finish_seconds: float = 0.0  # the trajectory's finish and the test evaluation, after the loop

    @property
    def ended_by(self) -> str:
        """How training ended, as tables show it: "early stop" or "epoch cap"."""
        return "early stop" if self.early_stopped else "epoch cap"

    def to_dict(self) -> dict:
        """The run as results store it (a teachers.json entry, a TeacherTrajectory's metrics): no model, no
        rankings, no per-epoch losses; `evaluations` keeps the valid metrics of every evaluation, {"epoch", "valid"}
        (epochs trained when it was made)."""
        return {
            "test": self.test,
            "valid": self.valid,
            "train_seconds": self.train_seconds,
            "finish_seconds": self.finish_seconds,
            "epochs": self.epochs,
            "ended_by": self.ended_by,
            "params": self.params,
            "checkpoint_epochs": [c["epoch"] for c in self.trajectory.checkpoints],
            "warm_start": self.warm_start,
            "evaluations": [{"epoch": h["epoch"], "valid": h["valid"]} for h in self.history if "valid" in h],
        }


def count_params(model: tf.Module) -> int:
    """The entries of a model's trainable variables, the size results report.

    Args:
        model: a teacher or a student.

    Returns:
        The number of trainable parameters.
    """
    return int(sum(np.prod(v.shape) for v in model.trainable_variables))


class EarlyStopping:
    """Keeps a copy of the model's weights at its best evaluation and stops training after `patience`
    evaluations without a better one; `restore()` puts the best weights back (teachers and students alike).

    Args:
        model: the model whose `variables` are copied and restored.
        patience: evaluations without a better one before `should_stop` says stop.
        what: the model's name in the log line.
    """

    def __init__(self, model: tf.Module, patience: int, what: str):
        self.model, self.patience, self.what = model, patience, what
        self.stale, self._best_weights = 0, None

    def record(self, improved: bool, armed: bool = True) -> None:
        """Counts one evaluation; the first one, or a better one, copies the weights.

        Args:
            improved: whether the evaluation is better than every earlier one.
            armed: whether one that is not better counts towards `patience` (the distiller arms it once its targets
                are final).
        """
        if improved or self._best_weights is None:
            self._best_weights, self.stale = [v.numpy() for v in self.model.variables], 0
        elif armed:
            self.stale += 1

    def should_stop(self, epoch: int) -> bool:
        """Whether `patience` evaluations in a row were not better; if so, logs the stop.

        Args:
            epoch: the epochs trained, for the log line.

        Returns:
            True to stop training.
        """
        if self.stale < self.patience:
            return False
        log(
            f"{self.what}: early stop after epoch {epoch}, no better valid {RECORD_METRIC} "
            f"in {self.patience} evaluations"
        )
        return True

    def state(self) -> tuple[int, list[np.ndarray]]:
        """What a resumed run needs (`resume`).

        Returns:
            (evaluations without a better one, the best weights: one array per model variable, [] before any
            evaluation).
        """
        return self.stale, list(self._best_weights or [])

    def resume(self, stale: int, best_weights: list[np.ndarray]) -> None:
        """Restores a saved `state`, so a resumed run stops where an uninterrupted one would.

        Args:
            stale: evaluations without a better one.
            best_weights: the best weights, one array per model variable ([]: none recorded yet).
        """
        self.stale, self._best_weights = int(stale), list(best_weights) or None

    def restore(self) -> None:
        """Assigns the best weights to the model, so training ends with its best evaluation's model."""
        for variable, value in zip(self.model.variables, self._best_weights):
            variable.assign(value)


def train_teacher(
    name: str,
    data: Dataset,
    cfg: TeacherConfig,
    traj: TrajectoryConfig,
    seed: int = 0,
    log_dir: str | os.PathLike | None = None,
    progress: Callable[[str, int], Progress] | None = Progress,
    warm_start: WarmStart | None = None,
    strategy: tf.distribute.Strategy | None = None,
    resume_dir: str | os.PathLike | None = None,
) -> TeacherRun:
    """Trains teacher `name` (see the module docstring).

    Args:
        name: the teacher, one of TEACHER_NAMES.
        data: the split to train, evaluate and rank on.
        cfg: the teacher's config.
        traj: which checkpoints the trajectory keeps.
        seed: seeds the initialisation, each epoch's sampling and the in-graph randomness.
        log_dir: TensorBoard scalars go to log_dir/<name>/ (train/loss per epoch, valid/<metric> per evaluation).
        progress: `progress(what, total)` reports each epoch on stderr (None: silent).
        warm_start: start from an earlier snapshot's teacher (warmstart.py) instead of a fresh initialisation.
        strategy: the tf.distribute strategy to train under (default: `cfg.distribute`'s); on a multi-worker
            cluster every worker runs this function and only the chief writes to `log_dir` and `resume_dir`.
        resume_dir: the training state is saved there after every evaluation (`TeacherState`), and a run that
            finds one there goes on from it, training exactly as it would have uninterrupted.

    Returns:
        The run, its teacher holding the best-valid weights.

    Raises:
        HetCompError: a bad config (`build_teacher`, `make_optimizer`, the trajectory config), a training loss that
            became non-finite, or a state in `resume_dir` of another teacher, config or seed (or missing its
            records).
    """
    strategy = strategy if strategy is not None else make_strategy(cfg.distribute)
    with strategy.scope():
        teacher = build_teacher(name, data, cfg, seed)
        optimizer = make_optimizer(cfg.optimizer, cfg.learning_rate)
        optimizer.build(teacher.trainable_variables)  # slots exist before the step is traced in replica context
    carried = warm_start.apply(teacher, data) if warm_start is not None else None
    sampled = 0 < cfg.eval_users < int((data.valid.lengths() > 0).sum())
    with worker_dir(log_dir, strategy) as log_dir, worker_dir(resume_dir, strategy) as save_dir:
        records_dir = Path(save_dir) / "records" if save_dir is not None else None
        recorder = (
            SampledTrajectoryRecorder(name, data, traj, cfg.eval_users, seed, records_dir=records_dir)
            if sampled
            else TrajectoryRecorder(name, data.train, data.n_items, traj)
        )
        stopping = EarlyStopping(teacher, cfg.patience, name)
        saved, resumed = None, Resumed(epochs=0, history=[], seconds=0.0, warm_start=carried)
        if resume_dir is not None:
            saved, found = (
                TeacherState(d, name, cfg, seed, teacher, optimizer, recorder) for d in (save_dir, resume_dir)
            )
            if found.exists():
                resumed, stale, best_weights = found.load()
                stopping.resume(stale, best_weights)
                if saved.records_dir.is_dir():  # this worker's own files written after that state go
                    remove_unlisted_records(recorder, saved.records_dir)
                log(f"{name}: resuming after epoch {resumed.epochs} from {resume_dir}")
        with ScalarLog(Path(log_dir) / name if log_dir is not None else None) as scalars:
            run = _train_loop(
                name,
                data,
                cfg,
                teacher,
                optimizer,
                recorder,
                stopping,
                scalars,
                progress,
                strategy,
                resumed,
                saved,
                sampled,
            )
    return run


def _train_loop(
    name, data, cfg, teacher, optimizer, recorder, stopping, scalars, progress, strategy, resumed, saved, sampled
) -> TeacherRun:
    """`train_teacher`'s epochs from `resumed` on, then the trajectory and the test evaluation."""
    bar = progress(f"{name} epoch", cfg.epochs, done_before=resumed.epochs) if progress is not None else None
    history, early_stopped = resumed.history, stopping.stale >= cfg.patience  # a state saved as it stopped
    last = resumed.epochs if early_stopped else cfg.epochs
    start = time.perf_counter()
    for epoch in range(resumed.epochs + 1, last + 1):
        loss = teacher.train_epoch(optimizer, epoch - 1, strategy)
        if not math.isfinite(loss):
            raise HetCompError(
                f"{name}: training loss became {loss} at epoch {epoch}; lower its learning_rate ({cfg.learning_rate})"
            )
        scalars.write(epoch, {"loss": loss}, prefix="train/")
        entry, detail = {"epoch": epoch, "loss": loss}, f"loss {loss:.4f}"
        if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
            if sampled:  # the sample's metrics decide; a record keeps weights, ranked at the end if chosen
                valid = recorder.evaluate(teacher.score_all)
                stopping.record(recorder.observe_weights(epoch, valid, teacher))
            else:
                ranker = recorder.ranker(teacher.score_all)  # ranks the users while evaluation scores them
                valid = evaluate(ranker, data, "valid")
                stopping.record(recorder.observe(epoch, valid, ranker))
            scalars.write(epoch, valid, prefix="valid/")
            best = recorder.best
            entry["valid"] = valid
            detail += (
                f", valid {RECORD_METRIC} {valid[RECORD_METRIC]:.4f} "
                f"(best {best['valid'][RECORD_METRIC]:.4f} at epoch {best['epoch']})"
            )
        history.append(entry)
        if saved is not None and "valid" in entry:
            stale, best_weights = stopping.state()
            seconds = resumed.seconds + time.perf_counter() - start
            saved.save(epoch, history, stale, best_weights, seconds, resumed.warm_start)
        if bar is not None:
            bar.update(epoch, detail)
        if stopping.should_stop(epoch):
            early_stopped = True
            break
    loop_end = time.perf_counter()
    train_seconds = resumed.seconds + loop_end - start
    if sampled:
        trajectory = recorder.finish(teacher, teacher.score_all)  # leaves the teacher at its best checkpoint
    else:
        stopping.restore()
        trajectory = recorder.finish()
    test = evaluate(teacher.score_all, data, "test")
    return TeacherRun(
        teacher=teacher,
        trajectory=trajectory,
        valid=trajectory.checkpoints[-1]["valid"],
        test=test,
        finish_seconds=time.perf_counter() - loop_end,
        train_seconds=train_seconds,
        epochs=len(history),
        params=count_params(teacher),
        history=history,
        early_stopped=early_stopped,
        warm_start=resumed.warm_start,
    )
