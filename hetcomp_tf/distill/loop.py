"""The distillation's epoch loop (`distill`), its result (`DistillRun`) and its resumable state (`RunState`).

Valid Recall@50 is evaluated every `eval_every` epochs; after `patience` evaluations without a better one, counted
from the start or once the targets are final (`patience_from`, `Trainer.targets_final`), training stops, and the
best weights are restored. Epoch indices are 0-based inside, as in the HetComp authors' code
(evaluation after epochs 0, eval_every, 2·eval_every, ... and the last; DKC after dkc_start, dkc_start + p, ...,
see `DynamicKnowledge.due`); history and TensorBoard steps count the epochs trained (1-based).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from hetcomp_tf.config import RECORD_METRIC, DistillConfig
from hetcomp_tf.data.dataset import Dataset
from hetcomp_tf.distill.dkc import DynamicKnowledge
from hetcomp_tf.distill.ensemble import EnsembleKnowledge
from hetcomp_tf.distill.methods import LOSSES
from hetcomp_tf.distill.student import Student
from hetcomp_tf.distill.trainer import Trainer
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.metrics import evaluate
from hetcomp_tf.teachers.training import EarlyStopping, count_params
from hetcomp_tf.util.distribute import worker_dir
from hetcomp_tf.util.files import atomic_directory, write_json
from hetcomp_tf.util.progress import Progress, log
from hetcomp_tf.util.summaries import ScalarLog
from hetcomp_tf.warmstart import WarmStart


@dataclass
class DistillRun:
    """A finished distillation: the student, its metrics and how training went.

    Attributes:
        student: the `Student` with the best-valid weights.
        valid: the metrics of the best evaluation.
        test: the best student's test metrics.
        history: per evaluation, {"epoch" (epochs trained), "valid", "mean_stage": {teacher: float}, "objective"
            (index in LOSSES), "loss": {name: epoch mean}} and "dkc" when a DKC update ran at that epoch.
        train_seconds: the epochs', evaluations' and DKC updates' seconds.
        params: the student's parameters.
        method: the method's name.
        epochs: epochs trained.
        best_epoch: epochs trained when the best evaluation was made.
        switch_epoch: the first epoch (1-based) trained with the fine-grained loss (ADT methods), else None.
        mean_stage: each teacher's mean DKC stage at the end.
        warm_start: what a warm start carried over (`WarmStart.apply`); None: a cold start.
        ensemble: the distilled ensemble's τ and teacher weights (`EnsembleKnowledge.describe`).
        dkc: the DKC state at the end (None without teachers).
    """

    student: Student
    valid: dict
    test: dict
    history: list[dict]
    train_seconds: float
    params: int
    method: str = ""
    epochs: int = 0
    best_epoch: int = 0
    switch_epoch: int | None = None
    mean_stage: dict = field(default_factory=dict)
    warm_start: dict | None = None
    ensemble: dict | None = None
    dkc: DynamicKnowledge | None = None

    def to_dict(self) -> dict:
        """Every field but the student and DKC, JSON-ready: what distill.json, the benchmark and the pipeline
        store."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("student", "dkc")}


def distill(
    data: Dataset,
    knowledge: EnsembleKnowledge | None,
    cfg: DistillConfig,
    log_dir: str | os.PathLike | None = None,
    progress: Callable[[str, int], Progress] | None = Progress,
    resume_dir: str | os.PathLike | None = None,
    warm_start: WarmStart | None = None,
    strategy: tf.distribute.Strategy | None = None,
) -> DistillRun:
    """Trains a student with `cfg.method`.

    Args:
        data: the dataset.
        knowledge: the teachers' knowledge; None only for wo_kd.
        cfg: the distillation config.
        log_dir: where TensorBoard scalars go (per epoch: loss/<name>, objective, dkc/mean_stage/<teacher>; per
            evaluation: valid/<metric>; per DKC update: dkc/update/<statistic>, see `dkc.update_statistics`, also
            kept in the history entry of an evaluation at the same epoch); None: none written.
        progress: progress(what, total) reports each evaluation on stderr (None: silent).
        resume_dir: the whole run state is saved there after every evaluation (`RunState`), and a run
            interrupted with the same config continues from its last evaluation, with the same batches and seeds
            as an uninterrupted run.
        warm_start: the student starts from an earlier snapshot's student (warmstart.py) instead of its random
            initialisation.
        strategy: the tf.distribute strategy to train under (default: `cfg.distribute`'s, see `Trainer`); on a
            multi-worker cluster every worker runs this function and only the chief writes to `log_dir` and
            `resume_dir` (the others write to temporary directories, `distribute.worker_dir`, and resume from the
            chief's state).

    Returns:
        The `DistillRun`, its student with the best-valid weights.

    Raises:
        HetCompError: a bad config or knowledge (`Trainer`), a loss that became non-finite, or a run state of
            another config in `resume_dir`.
    """
    trainer = Trainer(data, knowledge, cfg, strategy)
    carried = warm_start.apply(trainer.student, data) if warm_start is not None else None
    with worker_dir(log_dir, trainer.strategy) as log_dir, worker_dir(resume_dir, trainer.strategy) as save_dir:
        return _train(trainer, log_dir, progress, resume_dir, save_dir, carried)


def _train(
    trainer: Trainer,
    log_dir: str | os.PathLike | None,
    progress: Callable[[str, int], Progress] | None,
    resume_dir: str | os.PathLike | None,
    save_dir: str | os.PathLike | None,
    carried: dict | None,
) -> DistillRun:
    """`distill`'s loop, writing TensorBoard logs to `log_dir` and the run state to `save_dir`; `carried`: what a
    warm start carried over, for the result."""
    cfg, data, student = trainer.cfg, trainer.data, trainer.student
    history, best, switch_epoch, stopping = [], None, None, EarlyStopping(student, cfg.patience, cfg.method)
    saved = RunState(resume_dir, trainer, save_dir) if resume_dir is not None else None
    first, seconds_before = 0, 0.0
    if saved is not None and saved.exists():
        first, history, best, switch_epoch, seconds_before = saved.load(stopping)
        log(f"{cfg.method}: resuming after epoch {first} from {resume_dir}")
    bar = progress(f"{cfg.method} epoch", cfg.epochs, done_before=first) if progress is not None else None
    start = time.perf_counter()
    trained = first
    with ScalarLog(log_dir) as scalars:
        for epoch in range(first, cfg.epochs):  # 0-based, as DKC's schedule; logs and history count epochs trained
            trained = epoch + 1
            loss_name = trainer.loss_name()
            if switch_epoch is None and trainer.phase == 1 and loss_name != trainer.method.losses[0]:
                switch_epoch = trained
            if trainer.dcd is not None and trainer.dcd.due(epoch):
                scalars.write(trained, trainer.dcd.update(trainer.score_pairs, epoch), prefix="dcd/")
            losses = trainer.train_epoch(epoch)
            if not all(math.isfinite(v) for v in losses.values()):
                raise HetCompError(
                    f"{cfg.method}: loss became {losses} in epoch {trained}; "
                    f"lower learning_rate ({cfg.learning_rate})"
                )
            stages = trainer.mean_stage()
            scalars.write(trained, losses, prefix="loss/")
            scalars.write(trained, {"objective": LOSSES.index(loss_name)})
            scalars.write(trained, stages, prefix="dkc/mean_stage/")
            if epoch % cfg.eval_every == 0 or trained == cfg.epochs:
                valid = evaluate(student.score_all, data, "valid")
                scalars.write(trained, valid, prefix="valid/")
                history.append(
                    {
                        "epoch": trained,
                        "valid": valid,
                        "mean_stage": stages,
                        "objective": LOSSES.index(loss_name),
                        "loss": losses,
                    }
                )
                improved = best is None or valid[RECORD_METRIC] > best["valid"][RECORD_METRIC]
                best = history[-1] if improved else best
                stopping.record(improved, armed=cfg.patience_from == "start" or trainer.targets_final())
                if bar is not None:
                    bar.update(
                        trained,
                        f"{loss_name} loss {losses[loss_name]:.4f}, valid {RECORD_METRIC} "
                        f"{valid[RECORD_METRIC]:.4f} (best {best['valid'][RECORD_METRIC]:.4f} "
                        f"at epoch {best['epoch']})" + _stage_text(stages),
                    )
            if trainer.dkc is not None and trainer.dkc.due(epoch):
                decision = trainer.dkc.update(student.score_all, epoch)
                scalars.write(trained, decision, prefix="dkc/update/")
                if history and history[-1]["epoch"] == trained:  # the evaluation of this epoch keeps it
                    history[-1]["dkc"] = decision
            if saved is not None and epoch % cfg.eval_every == 0:
                saved.save(trained, history, best, switch_epoch, stopping, seconds_before + time.perf_counter() - start)
            if stopping.should_stop(trained):
                break
    train_seconds = seconds_before + time.perf_counter() - start
    stopping.restore()
    return DistillRun(
        student=student,
        valid=best["valid"],
        test=evaluate(student.score_all, data, "test"),
        history=history,
        train_seconds=train_seconds,
        params=count_params(student),
        method=cfg.method,
        epochs=trained,
        best_epoch=best["epoch"],
        switch_epoch=switch_epoch,
        mean_stage=trainer.mean_stage(),
        warm_start=carried,
        dkc=trainer.dkc,
        ensemble=trainer.ensemble,
    )


class RunState:
    """A distillation run's whole state in a directory, written atomically after each evaluation.

    The student, Adam's slots, the DKC and DCD state (tf.train.Checkpoint), the best weights so far and the loop's
    Python state (epochs trained, history, best evaluation, ADT switch, stale evaluations, seconds). A state written for
    another config is a HetCompError, not a silent restart.

    Args:
        directory: where the state is read from.
        trainer: the run's `Trainer` (its student, optimiser, DKC and DCD state, config).
        save_dir: where the state is written (default: `directory`; a multi-worker run's other workers read the
            chief's and write elsewhere).
    """

    def __init__(self, directory: str | os.PathLike, trainer: Trainer, save_dir: str | os.PathLike | None = None):
        self.directory, self.trainer = Path(directory), trainer
        self.save_dir = Path(save_dir) if save_dir is not None else self.directory
        parts = {"student": trainer.student, "optimizer": trainer.optimizer}
        parts.update({name: module for name, module in (("dkc", trainer.dkc), ("dcd", trainer.dcd)) if module})
        self.checkpoint = tf.train.Checkpoint(**parts)

    def exists(self) -> bool:
        """Whether `directory` holds a state to resume."""
        return (self.directory / "state.json").is_file()

    def save(
        self, trained: int, history: list, best: dict, switch_epoch, stopping: EarlyStopping, seconds: float
    ) -> None:
        """Writes the whole state to `save_dir`, replacing the previous one atomically.

        Args:
            trained: epochs trained.
            history: the evaluations so far (`DistillRun.history`).
            best: the best evaluation's history entry.
            switch_epoch: the ADT switch's epoch, or None.
            stopping: the early stopping, whose stale count and best weights are saved.
            seconds: training seconds so far, earlier invocations included.
        """
        stale, best_weights = stopping.state()
        with atomic_directory(self.save_dir) as staging:
            self.checkpoint.write(os.fspath(staging / "run"))
            np.savez(staging / "best_weights.npz", *best_weights)
            write_json(
                staging / "state.json",
                {
                    "config": dataclasses.asdict(self.trainer.cfg),
                    "trained": trained,
                    "history": history,
                    "best": best,
                    "switch_epoch": switch_epoch,
                    "stale": stale,
                    "seconds": seconds,
                },
            )

    def load(self, stopping: EarlyStopping):
        """Restores the state into the trainer and `stopping`.

        Args:
            stopping: the early stopping to resume.

        Returns:
            (epochs trained, history, best, switch_epoch, seconds so far).

        Raises:
            HetCompError: the state was written for another config.
        """
        state = json.loads((self.directory / "state.json").read_text())
        if state["config"] != json.loads(json.dumps(dataclasses.asdict(self.trainer.cfg))):
            raise HetCompError(f"{self.directory}: a run state of another config; remove it to start afresh")
        self.checkpoint.read(os.fspath(self.directory / "run")).assert_existing_objects_matched()
        with np.load(self.directory / "best_weights.npz") as arrays:
            stopping.resume(state["stale"], [arrays[f"arr_{i}"] for i in range(len(arrays.files))])
        return state["trained"], state["history"], state["best"], state["switch_epoch"], state["seconds"]


def _stage_text(stages: dict[str, float]) -> str:
    return ", stages " + " ".join(f"{name} {v:.2f}" for name, v in stages.items()) if stages else ""
