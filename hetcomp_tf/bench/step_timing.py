"""The step micro-benchmark: seconds per training epoch of each distillation loss at a profile's student protocol,
on a dataset's real shapes, plus one valid evaluation, one DKC update, the dense pass every KD step makes and, for
targets="fitted", the ensemble's fit on valid.

Targets are random item lists of the real sizes (six teachers, four checkpoints, top-100), so no teachers need to
be trained first: a loss's cost depends on the shapes, not on which items the targets name. Each method runs one
untimed epoch first (tracing and XLA compilation of every padded batch shape), then `epochs` timed ones.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from hetcomp_tf.config import TEACHER_NAMES, DistillConfig, TrajectoryConfig
from hetcomp_tf.data.dataset import Dataset, rows_to_mask
from hetcomp_tf.distill.batches import epoch_batches, train_pairs_cap
from hetcomp_tf.distill.ensemble import EnsembleKnowledge, fit_ensemble
from hetcomp_tf.distill.fused import FactoredScores, fused_available
from hetcomp_tf.distill.losses.hetcomp import rest_and_list_scores
from hetcomp_tf.distill.losses.labels import ItemPairs, concat_pairs
from hetcomp_tf.distill.trainer import Trainer
from hetcomp_tf.metrics import evaluate, masked_topk, valid_user_sample
from hetcomp_tf.util.progress import log


def random_knowledge(data: Dataset, traj: TrajectoryConfig, seed: int = 0) -> EnsembleKnowledge:
    """Knowledge of the real shapes on random targets: one random top-N of distinct unobserved items per user, as
    every teacher's every checkpoint, and the users' first train items as the observed order.

    Args:
        data: the dataset.
        traj: the trajectory config (n_checkpoints, top_n).
        seed: the generator's seed.

    Returns:
        The `EnsembleKnowledge` of TEACHER_NAMES.
    """
    rng = np.random.default_rng(seed)
    train = data.train.to_ragged()
    lists = []
    for start in range(0, data.n_users, 512):
        ids = tf.range(start, min(start + 512, data.n_users))
        noise = tf.constant(rng.random((int(ids.shape[0]), data.n_items), dtype=np.float32))
        lists.append(masked_topk(noise, rows_to_mask(train, ids, data.n_items), traj.top_n).numpy())
    rankings = np.broadcast_to(
        np.concatenate(lists)[None, None], (len(TEACHER_NAMES), traj.n_checkpoints, data.n_users, traj.top_n)
    )
    return EnsembleKnowledge(
        teachers=TEACHER_NAMES,
        rankings=np.ascontiguousarray(rankings),
        observed=data.train.padded(width=traj.top_n),
        n_items=data.n_items,
    )


def time_dense_pass(data: Dataset, cfg: DistillConfig, users: int, repeats: int = 6) -> dict[str, float]:
    """Milliseconds of the part of a KD step no loss can skip, on the real shapes.

    That part is the scores of `users` users over every item, the rest log-sum-exp over them (the step's train pairs and
    K targets excluded) and the K targets' scores, and the gradient into both tables; timed with XLA ("xla_ms"), without
    ("graph_ms") and by the fused kernel ("fused_ms", where it builds).

    Args:
        data: the dataset (its items and train split).
        cfg: the distillation config (student dim, batch size, top_k, score clip, seed).
        users: the step's users.
        repeats: timed repeats, after one untimed.

    Returns:
        {"xla_ms", "graph_ms"[, "fused_ms"]}: mean milliseconds.
    """
    rng = np.random.default_rng(cfg.seed)
    users_table = tf.Variable(rng.normal(0.0, 0.1, (users, cfg.student_dim)).astype(np.float32))
    items_table = tf.Variable(rng.normal(0.0, 0.1, (data.n_items, cfg.student_dim)).astype(np.float32))
    pairs = train_pairs_cap(data.train, cfg.batch_size)  # the trainer's fixed number of train pairs per step
    targets = tf.constant(rng.integers(0, data.n_items, (users, cfg.top_k)).astype(np.int32))
    excluded = concat_pairs(
        ItemPairs(
            tf.constant(rng.integers(0, users, pairs).astype(np.int32)),
            tf.constant(rng.integers(0, data.n_items, pairs).astype(np.int32)),
        ),
        targets,
    )

    def dense_pass(fused: bool):
        with tf.GradientTape() as tape:
            scores = (
                FactoredScores(users_table, items_table)
                if fused
                else tf.clip_by_value(
                    tf.matmul(users_table, items_table, transpose_b=True), -cfg.score_clip, cfg.score_clip
                )
            )
            rest, list_scores = rest_and_list_scores(scores, excluded, targets, cfg.score_clip)
            total = tf.reduce_sum(rest) - tf.reduce_sum(list_scores)
        return [tf.convert_to_tensor(g) for g in tape.gradient(total, [users_table, items_table])]

    out = {}
    variants = [("xla_ms", True, False), ("graph_ms", False, False)]
    if fused_available()[0]:
        variants.append(("fused_ms", False, True))
    for name, jit, fused in variants:
        fn = tf.function(functools.partial(dense_pass, fused), jit_compile=jit)
        fn()
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        out[name] = 1000 * (time.perf_counter() - start) / repeats
    return out


def time_methods(
    data: Dataset, cfg: DistillConfig, traj: TrajectoryConfig, methods: Sequence[str], epochs: int = 2
) -> dict:
    """Seconds per epoch of each method's loss, on random knowledge of the real shapes.

    Args:
        data: the dataset.
        cfg: the distillation config.
        traj: the trajectory config (the knowledge's shapes).
        methods: the methods to time; hetcomp_no_adt also times a valid evaluation and a DKC update.
        epochs: timed epochs per method, after one untimed.

    Returns:
        {"steps_per_epoch", "users_per_step", "dense_pass" (`time_dense_pass`), method: {"epoch_seconds",
        "loss"}}, plus "evaluate_seconds" and "dkc_update_seconds" with hetcomp_no_adt, "ensemble_fit_seconds"
        (`time_ensemble_fit`) with `cfg.targets` "fitted".
    """
    knowledge = random_knowledge(data, traj, cfg.seed)
    batches = list(epoch_batches(data.train, cfg, 0, pairs=False))
    results = {
        "steps_per_epoch": len(batches),
        "users_per_step": float(np.mean([float(b.weights.numpy().sum()) for b in batches])),
    }
    results["dense_pass"] = time_dense_pass(data, cfg, int(round(results["users_per_step"])))
    log(
        "dense pass of a step (scores, rest log-sum-exp, gradient): "
        + ", ".join(f"{name[:-3]} {ms:.0f} ms" for name, ms in results["dense_pass"].items())
    )
    for method in methods:
        trainer = Trainer(data, knowledge if method != "wo_kd" else None, dataclasses.replace(cfg, method=method))
        trainer.train_epoch(0)  # traces and compiles
        start = time.perf_counter()
        for epoch in range(1, epochs + 1):
            trainer.train_epoch(epoch)
        seconds = (time.perf_counter() - start) / epochs
        results[method] = {"epoch_seconds": seconds, "loss": trainer.loss_name()}
        log(f"{method} ({trainer.loss_name()} loss): {seconds:.2f} s per epoch")
        if method == "hetcomp_no_adt":
            evaluate(trainer.student.score_all, data, "valid")
            start = time.perf_counter()
            evaluate(trainer.student.score_all, data, "valid")
            results["evaluate_seconds"] = time.perf_counter() - start
            trainer.dkc.update(trainer.student.score_all, 10)  # the first update only records D
            start = time.perf_counter()
            trainer.dkc.update(trainer.student.score_all, 20)
            results["dkc_update_seconds"] = time.perf_counter() - start
    if cfg.targets == "fitted":
        results["ensemble_fit_seconds"] = time_ensemble_fit(data, knowledge, cfg)
        log(f"the ensemble's fit on valid: {results['ensemble_fit_seconds']:.1f} s")
    return results


def time_ensemble_fit(data: Dataset, knowledge: EnsembleKnowledge, cfg: DistillConfig) -> float:
    """Seconds of the fit of τ and teacher weights on valid (`ensemble.fit_ensemble`) over `cfg.fit_users` valid
    users (0: every one). The random knowledge lists the same items for every teacher; here each teacher's list is
    shifted by its own offset in item ids, so that a user has up to X·N candidates, as with real teachers.

    Args:
        data: the dataset.
        knowledge: `random_knowledge`'s.
        cfg: the distillation config (its fit_users).

    Returns:
        The fit's seconds.
    """
    final = knowledge.final_rankings
    offsets = (np.arange(final.shape[0]) * (data.n_items // final.shape[0]))[:, None, None]
    shifted = np.where(final >= 0, (final + offsets) % data.n_items, -1).astype(np.int32)
    distinct = dataclasses.replace(knowledge, rankings=shifted[:, None])
    start = time.perf_counter()
    fit_ensemble(distinct, data, users=valid_user_sample(data, cfg.fit_users))
    return time.perf_counter() - start
