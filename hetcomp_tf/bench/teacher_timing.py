"""What each teacher costs on a data set's real shapes: one training epoch and one full-ranking valid evaluation
(the one early stopping and the trajectory need at every `eval_every` epochs), and the memory they take.

A teacher's run costs about epochs × `epoch_seconds` + evaluations × `evaluate_seconds`; which term dominates
decides what a profile for larger data must cut (fewer evaluations, evaluations over a sample of users, or a
cheaper epoch). The first epoch also traces the step and is reported apart; the second is the steady one. The
evaluation is timed after an untimed one over two batches of users, which traces its functions: the steady cost of
every evaluation of a run but the first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

from hetcomp_tf.bench.cost_model import PeakRSS
from hetcomp_tf.bench.work import EVAL_BATCH
from hetcomp_tf.config import TeacherConfig, TrajectoryConfig
from hetcomp_tf.data.dataset import Dataset
from hetcomp_tf.metrics import evaluate
from hetcomp_tf.models import build_teacher
from hetcomp_tf.teachers.optimizers import make_optimizer
from hetcomp_tf.teachers.training import count_params
from hetcomp_tf.teachers.trajectories import BatchRanker, SampledTrajectoryRecorder
from hetcomp_tf.util.progress import log


def time_teacher(name: str, data: Dataset, cfg: TeacherConfig, traj: TrajectoryConfig, seed: int = 0) -> dict:
    """Times teacher `name` under `cfg` on `data`.

    Args:
        name: the teacher's name.
        data: the dataset.
        cfg: the teacher's config.
        traj: the trajectory config (the top-N ranked at each evaluation).
        seed: the teacher's seed.

    Returns:
        {"first_epoch_seconds" (tracing included), "epoch_seconds" (the second epoch), "evaluate_seconds" (valid
        Recall/NDCG of every valid user with every user's top-N ranked for the trajectory, as `train_teacher` does
        at each evaluation), "sampled_evaluate_seconds" (with `cfg.eval_users`: the sample's evaluation), "params",
        "epoch_memory_bytes" and "evaluate_memory_bytes" (peak resident-memory growth during the timed epoch and
        evaluation)}.
    """
    teacher = build_teacher(name, data, cfg, seed)
    optimizer = make_optimizer(cfg.optimizer, cfg.learning_rate)
    optimizer.build(teacher.trainable_variables)
    start = time.perf_counter()
    teacher.train_epoch(optimizer, 0)
    first = time.perf_counter() - start
    with PeakRSS() as epoch_memory:
        start = time.perf_counter()
        teacher.train_epoch(optimizer, 1)
        epoch = time.perf_counter() - start
    warm_up = np.flatnonzero(data.valid.lengths() > 0)[: EVAL_BATCH + 1]  # two batch sizes: every trace made
    evaluate(BatchRanker(teacher.score_all, data.train, data.n_items, traj.top_n), data, "valid", users=warm_up)
    with PeakRSS() as evaluate_memory:
        start = time.perf_counter()
        ranker = BatchRanker(teacher.score_all, data.train, data.n_items, traj.top_n)
        evaluate(ranker, data, "valid")
        ranker.result()
        evaluation = time.perf_counter() - start
    result = {
        "first_epoch_seconds": first,
        "epoch_seconds": epoch,
        "evaluate_seconds": evaluation,
        "params": count_params(teacher),
        "epoch_memory_bytes": epoch_memory.growth,
        "evaluate_memory_bytes": evaluate_memory.growth,
    }
    if cfg.eval_users:  # the evaluation early stopping makes instead: the sample only, no ranking kept
        recorder = SampledTrajectoryRecorder(name, data, traj, cfg.eval_users, seed)
        start = time.perf_counter()
        recorder.evaluate(teacher.score_all)
        result["sampled_evaluate_seconds"] = time.perf_counter() - start
    return result


def time_teachers(
    data: Dataset,
    configs: dict[str, TeacherConfig],
    traj: TrajectoryConfig,
    names: Sequence[str],
    seed: int = 0,
    on_result: Callable[[str, dict], None] | None = None,
) -> dict[str, dict]:
    """`time_teacher` for each of `names`, in order.

    Args:
        data: the dataset.
        configs: {teacher: its config}.
        traj: the trajectory config.
        names: the teachers to time.
        seed: their seed.
        on_result: called as on_result(name, result) after each (partial results), or None.

    Returns:
        {name: `time_teacher`'s result}.
    """
    results = {}
    for name in names:
        log(f"timing teacher {name}: two epochs and one full-ranking evaluation")
        results[name] = time_teacher(name, data, configs[name], traj, seed)
        r = results[name]
        log(
            f"{name}: {r['epoch_seconds']:.1f} s per epoch (first {r['first_epoch_seconds']:.1f} s), "
            f"{r['evaluate_seconds']:.1f} s per evaluation"
        )
        if on_result is not None:
            on_result(name, results[name])
    return results
