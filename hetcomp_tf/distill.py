"""The distillation trainer: HetComp, its ablations and the baselines, all on one code path.

The student is an MF (`student.py`) fitted by Adam. An epoch is one pass over the train interactions in shuffled
batches, each step distilling the batch's unique users (the HetComp authors' protocol), or one pass over the users
(`DistillConfig.batching`, `epoch_batches`). Each distillation step scores every item for the step's users
([b, n_items], clipped to ±score_clip inside the losses), so the losses see the whole ranking (wo_kd's BPR step
scores only the batch's (user, train item, negative) triples); the per-user KD losses are summed
(`loss_reduction`, as the HetComp authors do). Regularisation is L2 in the loss on the batch's user rows and all
item rows (`l2`) and/or Adam's coupled weight decay on every row (`weight_decay`, the authors' PyTorch choice).
Valid Recall@50 is evaluated every `eval_every` epochs; after `patience` evaluations without a better one, counted
from the start or once the targets are final (`patience_from`, `Trainer.targets_final`), training stops, and the
best weights are restored. Epoch indices are 0-based inside, as in the HetComp authors' code
(evaluation after epochs 0, eval_every, 2·eval_every, ... and the last; DKC after dkc_start, dkc_start + p, ...,
see `DynamicKnowledge.due`); history and TensorBoard steps count the epochs trained (1-based).

A method is a pair (target schedule, loss before / after the ADT switch), see `METHODS`:
  * every target schedule runs through the same `DynamicKnowledge`, fed different trajectories, so targets always
    come from its on-device table: "dkc" = the teachers' T checkpoints (HetComp's easy-to-hard knowledge);
    "final" = only the last checkpoint (T = 1: the final ensemble from epoch 0, all stages final from the
    start); "paced" = the last checkpoint twice (T = 2: the targets are the final ensemble throughout, but each
    (user, teacher) pair still moves 0 -> 1 by the DKC ratio rule measured against the teacher's final
    ranking); "data" = no teacher at all (BPR on the train interactions).
  * the ADT switch is `DynamicKnowledge.is_final()`: every teacher's rounded mean stage reached T−1. HetComp
    learns the set-wise overall loss (× overall_weight) before it and the fine-grained losses (× fine_weight)
    after; a method with the same loss on both sides ignores the switch.
dcd is DCD (dcd.py) against the final ensemble: RRD plus its user- and item-side corrections (the latter on the
items of the step's train interactions), the student's ranks refreshed every dcd_period epochs.
hetcomp_no_dkc is ("paced", overall -> fine): the paper's "w/o DKC" distils the final ensemble from the start,
which leaves ADT without stages to watch; with "paced" the student learns the overall loss until, per user
and teacher, its NDCG distance to the final ranking stops shrinking or shrinks by more than the DKC threshold
(HetComp's own stage rule and thresholds), then switches to the fine-grained losses.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from hetcomp_tf.config import RECORD_METRIC, DistillConfig
from hetcomp_tf.data.dataset import CSR, Dataset
from hetcomp_tf.data.sampling import BPRLoss, interaction_keys, pair_scores, sample_unobserved
from hetcomp_tf.dcd import DualCorrection, item_teacher_lists, mf_scores
from hetcomp_tf.dkc import DynamicKnowledge
from hetcomp_tf.ensemble import EnsembleKnowledge
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.fused import FUSED_MAX_DIM, FactoredScores, fused_available
from hetcomp_tf.losses import (CorrectionLoss, DCDLoss, DCDTargets, FineGrainedLoss, ItemPairs, OverallLoss, RRDLoss,
                               Targets)
from hetcomp_tf.metrics import evaluate
from hetcomp_tf.student import Student
from hetcomp_tf.teachers.training import EarlyStopping, count_params
from hetcomp_tf.util.distribute import make_strategy, share_bounds, worker_dir
from hetcomp_tf.util.files import atomic_directory, write_json
from hetcomp_tf.util.progress import Progress, log
from hetcomp_tf.util.summaries import ScalarLog
from hetcomp_tf.warmstart import WarmStart

# Logged as the "objective" scalar: 0 = overall (set-wise), 1 = fine-grained, then the baselines' losses.
LOSSES = ("overall", "fine", "rrd", "bpr", "dcd")


@dataclass(frozen=True)
class Method:
    targets: str  # "dkc" | "final" | "paced" | "data"
    losses: tuple[str, str]  # loss before and after the ADT switch (names from LOSSES)


METHODS = {
    "wo_kd": Method("data", ("bpr", "bpr")),
    "ensemble_kd": Method("final", ("fine", "fine")),
    "rrd": Method("final", ("rrd", "rrd")),
    "dcd": Method("final", ("dcd", "dcd")),
    "hetcomp_no_dkc": Method("paced", ("overall", "fine")),
    "hetcomp_no_adt": Method("dkc", ("overall", "overall")),
    "hetcomp": Method("dkc", ("overall", "fine")),
}


@dataclass
class DistillRun:
    student: Student  # with the best-valid weights
    valid: dict  # metrics of the best evaluation
    test: dict
    history: list[dict]  # per evaluation: {"epoch" (epochs trained), "valid", "mean_stage": {teacher: float},
    #                      "objective" (index in LOSSES), "loss": {name: epoch mean}}
    train_seconds: float  # epochs, evaluations and DKC updates
    params: int  # student parameters
    method: str = ""
    epochs: int = 0  # epochs trained
    best_epoch: int = 0  # epochs trained when the best evaluation was made
    switch_epoch: int | None = None  # the first epoch (1-based) trained with the fine-grained loss (ADT methods)
    mean_stage: dict = field(default_factory=dict)  # per teacher, at the end
    warm_start: dict | None = None  # what a warm start carried over (`WarmStart.apply`); None: a cold start
    ensemble: dict | None = None  # the distilled ensemble's τ and teacher weights (`EnsembleKnowledge.describe`)
    dkc: DynamicKnowledge | None = None  # the DKC state at the end (None without teachers)

    def to_dict(self) -> dict:
        """Every field but the student and DKC, JSON-ready: what distill.json, the benchmark and the pipeline
        store."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("student", "dkc")}


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise HetCompError(f"unknown distillation method {name!r}: choose one of {', '.join(METHODS)}") from None


def use_fused_kernel(cfg: DistillConfig) -> bool:
    """Whether KD steps use the fused rest kernel (`DistillConfig.rest_kernel`); "fused" fails when it cannot."""
    if cfg.rest_kernel == "dense":
        return False
    if cfg.rest_kernel == "auto" and cfg.student_dim > FUSED_MAX_DIM:
        log(f"rest kernel: dense (student dim {cfg.student_dim} > {FUSED_MAX_DIM}, where the matmuls are faster)")
        return False
    if cfg.mixed_precision or cfg.score_clip is None:
        if cfg.rest_kernel == "fused":
            raise HetCompError("rest_kernel='fused' needs float32 and a score_clip; use rest_kernel='dense'")
        return False
    available, why_not = fused_available()
    if not available and cfg.rest_kernel == "fused":
        raise HetCompError(f"rest_kernel='fused': {why_not}")
    if not available:
        log(f"rest kernel: dense ({why_not})")
    return available


def stage_rankings(knowledge: EnsembleKnowledge, schedule: str) -> np.ndarray:
    """The [X, T', U, N] trajectories a target schedule hands to DKC (see the module docstring)."""
    final = knowledge.rankings[:, -1:]
    return {"dkc": knowledge.rankings, "final": final, "paced": np.concatenate([final, final], axis=1)}[schedule]


class Batch(NamedTuple):
    """One training step's input: the users whose losses it sums, for BPR its (user, train item) pairs, for the
    KD losses the users' train items as (batch row, item) pairs (`losses.ItemPairs`) and the items of the step's
    train interactions (DCD's item side)."""

    users: tf.Tensor  # int32 [B]: each user once; XLA padding repeats user 0 with weight 0
    weights: tf.Tensor  # float32 [B]: 1, or 0 for padding
    pair_users: tf.Tensor  # int32 [P] (empty unless the loss is BPR)
    pair_items: tf.Tensor  # int32 [P]
    seed: tf.Tensor  # int64 [2]: the step's stateless seed (negative sampling)
    train_rows: tf.Tensor  # int32 [C]: the batch row of each train pair (empty for BPR)
    train_items: tf.Tensor  # int32 [C]: its train item; −1 pads to a fixed C under XLA
    step_items: tf.Tensor  # int32 [M]: the step's train interactions' items, each once (empty for BPR); −1 pads


BATCH_SPEC = Batch(tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.float32), tf.TensorSpec([None], tf.int32),
                   tf.TensorSpec([None], tf.int32), tf.TensorSpec([2], tf.int64), tf.TensorSpec([None], tf.int32),
                   tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.int32))
PAD_USERS_TO = 64  # XLA steps see batches padded to a multiple of this: a few compiled shapes, not one per batch
PAD_PAIRS_TO = 1024


def train_pairs_cap(train: CSR, batch_users: int) -> int:
    """A fixed length for a step's train pairs that no batch of at most `batch_users` users exceeds (their
    `batch_users` longest rows), rounded up to PAD_PAIRS_TO: one compiled shape."""
    longest = np.sort(train.lengths())[::-1][:batch_users].sum()
    return int(max(1, -(-longest // PAD_PAIRS_TO)) * PAD_PAIRS_TO)


def row_positions(rows: CSR, row_ids: np.ndarray) -> np.ndarray:
    """int64: the positions in `rows.indices` of the rows `row_ids`, row after row."""
    starts, lengths = rows.indptr[row_ids], rows.indptr[row_ids + 1] - rows.indptr[row_ids]
    return np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())


def step_items_cap(train: CSR, cfg: DistillConfig) -> int:
    """A fixed length for a step's distinct train-interaction items (`Batch.step_items`) under XLA: a batch of
    interactions holds at most `batch_size`, a batch of users at most its train pairs (`train_pairs_cap`)."""
    return cfg.batch_size if cfg.batching == "interactions" else train_pairs_cap(train, cfg.batch_size)


def epoch_batches(train: CSR, cfg: DistillConfig, epoch: int, pairs: bool, pad_to: int = 1,
                  train_pairs_to: int | None = None, step_items_to: int | None = None) -> Iterator[Batch]:
    """The steps of one epoch in a seeded order (`cfg.batching`, see DistillConfig). `pairs`: hand over each
    step's (user, train item) pairs (BPR; with "users" batching all the batch users' pairs), else the batch
    users' train items as (row, item) pairs and the step's interactions' distinct items (with "users" batching,
    its users' train items), padded to `train_pairs_to` / `step_items_to` if given. User lists are padded to a
    multiple of `pad_to`."""
    rng = np.random.default_rng([cfg.seed, epoch])
    row_ids = train.row_ids().astype(np.int32)
    if cfg.batching == "users":
        order = rng.permutation(train.n_rows).astype(np.int32)
    else:
        order = rng.permutation(train.nnz)
    empty = np.zeros([0], np.int32)
    for index, start in enumerate(range(0, order.size, cfg.batch_size)):
        chunk = order[start:start + cfg.batch_size]
        if cfg.batching == "users":
            users = chunk
            picked = row_positions(train, users)
        else:
            users, picked = np.unique(row_ids[chunk]), chunk
        padded = -(-users.size // pad_to) * pad_to
        weights = np.zeros(padded, np.float32)
        weights[:users.size] = 1.0
        picked = np.asarray(picked, np.int64)
        pair_users, pair_items = (row_ids[picked], train.indices[picked]) if pairs else (empty, empty)
        train_rows, train_items = (empty, empty) if pairs else _train_pairs(train, users, train_pairs_to)
        step_items = empty if pairs else _padded(np.unique(train.indices[picked]), step_items_to, "distinct items")
        yield Batch(tf.constant(np.pad(users, (0, padded - users.size))), tf.constant(weights),
                    tf.constant(pair_users), tf.constant(pair_items),
                    tf.constant([cfg.seed, epoch * 1_000_003 + index], tf.int64), tf.constant(train_rows),
                    tf.constant(train_items), tf.constant(step_items))


def _train_pairs(train: CSR, users: np.ndarray, pad_to: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(rows, items) int32: the train items of `users` (row k of the batch = users[k]), padded with (0, −1)."""
    lengths = train.indptr[users + 1] - train.indptr[users]
    rows = np.repeat(np.arange(users.size, dtype=np.int32), lengths)
    items = _padded(train.indices[row_positions(train, users)], pad_to, "train pairs")  # checks the length
    if pad_to is not None:
        rows = np.pad(rows, (0, pad_to - rows.size))
    return rows, items


def _padded(items: np.ndarray, pad_to: int | None, what: str) -> np.ndarray:
    """int32 `items`, −1 padded to `pad_to` (if given, else as they are)."""
    items = items.astype(np.int32)
    if pad_to is None:
        return items
    if items.size > pad_to:
        raise HetCompError(f"a batch has {items.size} {what}, more than the fixed {pad_to}")
    return np.pad(items, (0, pad_to - items.size), constant_values=-1)


def replica_share(batch: Batch, replica, replicas: int) -> Batch:
    """Replica `replica`'s share of a global batch (in-graph, so every worker can feed the same global batch): a
    contiguous slice of its users with their train pairs re-based to the slice (the others become (0, −1) padding:
    one length, as under XLA), a contiguous slice of its BPR pairs and of its step items (the others −1). One
    replica's share is the batch itself."""
    n_users, n_pairs = tf.size(batch.users), tf.size(batch.pair_users)
    lo, hi = share_bounds(n_users, replica, replicas)
    pair_lo, pair_hi = share_bounds(n_pairs, replica, replicas)
    here = (batch.train_rows >= lo) & (batch.train_rows < hi)
    item_lo, item_hi = share_bounds(tf.size(batch.step_items), replica, replicas)
    positions = tf.range(tf.size(batch.step_items))
    mine = (positions >= item_lo) & (positions < item_hi)
    return Batch(batch.users[lo:hi], batch.weights[lo:hi], batch.pair_users[pair_lo:pair_hi],
                 batch.pair_items[pair_lo:pair_hi], batch.seed, tf.where(here, batch.train_rows - lo, 0),
                 tf.where(here, batch.train_items, -1), tf.where(mine, batch.step_items, -1))


class Trainer:
    """The student, its optimiser, the knowledge and one compiled step per loss, under a tf.distribute strategy
    (`strategy`, else `cfg.distribute`'s): the student's and Adam's variables are mirrored on every replica, a step
    runs on each replica's share of the batch (`replica_share`) with every loss term scaled to the global batch, and
    Adam applies the gradients summed over the replicas. DKC, DCD and the evaluations read the synchronised
    weights, so every worker takes the same decisions."""

    def __init__(self, data: Dataset, knowledge: EnsembleKnowledge | None, cfg: DistillConfig,
                 strategy: tf.distribute.Strategy | None = None):
        self.data, self.cfg, self.method = data, cfg, get_method(cfg.method)
        self.strategy = strategy if strategy is not None else make_strategy(cfg.distribute)
        with self.strategy.scope():
            self.student = Student(data.n_users, data.n_items, cfg.student_dim, seed=cfg.seed,
                                   init_std=cfg.init_std)
            optimizer = tf.keras.optimizers.Adam(cfg.learning_rate, epsilon=cfg.adam_epsilon)
            self.compute_dtype = tf.float32
            if cfg.mixed_precision:  # float16 matmul, float32 variables and losses, dynamic loss scaling
                self.compute_dtype = tf.keras.mixed_precision.Policy("mixed_float16").compute_dtype
                optimizer = tf.keras.mixed_precision.LossScaleOptimizer(optimizer)
            optimizer.build(self.student.trainable_variables)  # slots exist before tracing: one trace per step
        self.optimizer = optimizer
        self.train_pairs_cap = train_pairs_cap(data.train, cfg.batch_size)  # XLA steps: one train-pair length
        self.step_items_cap = step_items_cap(data.train, cfg)  # ... and one step-item length
        self.train_keys = tf.constant(interaction_keys(data.train, data.n_items))  # wo_kd's in-graph sampling
        self.dkc = None
        if self.method.targets != "data":
            if knowledge is None:
                raise HetCompError(f"method {cfg.method} distils teachers' knowledge, but none was given")
            if (knowledge.n_users, knowledge.n_items) != (data.n_users, data.n_items):
                raise HetCompError(f"knowledge covers {knowledge.n_users} users x {knowledge.n_items} items, "
                                   f"the dataset {data.n_users} x {data.n_items}; export both from one run")
            self.teachers = knowledge.teachers
            self.ensemble = knowledge.describe()
            self.dkc = DynamicKnowledge(stage_rankings(knowledge, self.method.targets), knowledge.observed,
                                        data.train, data.n_items, cfg, tau=knowledge.tau,
                                        teacher_weights=knowledge.teacher_weights)
        else:
            self.teachers, self.ensemble = (), None
        per_user = tf.keras.losses.Reduction.NONE  # the step weights out XLA padding, then sums or averages
        clip = cfg.score_clip  # the losses clip the scores (and so know the bound of their exponentials)
        self.loss_fns = {"overall": OverallLoss(score_clip=clip, reduction=per_user),
                         "fine": FineGrainedLoss(cfg.top_k, score_clip=clip, reduction=per_user),
                         "rrd": RRDLoss(cfg.top_k, score_clip=clip, reduction=per_user),
                         "bpr": BPRLoss(score_clip=clip)}  # every loss is called as loss(targets, scores)
        self.dcd = None
        if "dcd" in self.method.losses:  # corrects the student against the final ensemble's top-K
            item_lists = item_teacher_lists(knowledge.rankings[:, -1], data.n_items, knowledge.tau, cfg.top_k,
                                            teacher_weights=knowledge.teacher_weights)
            self.dcd = DualCorrection(self.dkc.target_table.numpy(), item_lists, data.train, data.n_items,
                                      period=cfg.dcd_period)
            self.loss_fns["dcd"] = DCDLoss(cfg.top_k, cfg.dcd_ucd_weight, cfg.dcd_ucd_epsilon, score_clip=clip,
                                           reduction=per_user)
            self.item_correction = CorrectionLoss(self.dcd.item_list_size, score_clip=clip, reduction=per_user)
        self.weights = {"overall": cfg.overall_weight, "fine": cfg.fine_weight, "rrd": cfg.fine_weight, "bpr": 1.0,
                        "dcd": cfg.fine_weight}
        self.fused = self.method.targets != "data" and use_fused_kernel(cfg)  # wo_kd scores pairs only: no build
        self._steps: dict[str, Callable] = {}

    def targets_final(self) -> bool:
        """True once the targets stop moving (no DKC, or every stage final). Only then do evaluations without a
        better valid Recall count towards early stopping: before, a flat or falling curve is the curriculum
        changing the targets (measured: at dim 64 HetComp's valid Recall peaks mid-curriculum and an armed
        patience stopped it before the ADT switch)."""
        return self.dkc is None or self.dkc.is_final()

    @property
    def phase(self) -> int:
        """0 before the ADT switch, 1 after (targets whose stages are all final start at 1)."""
        return int(self.dkc is not None and self.dkc.is_final())

    def loss_name(self) -> str:
        return self.method.losses[self.phase]

    def step_fn(self, loss_name: str) -> Callable:
        """The compiled step of a loss: a global Batch in, each output summed over the replicas out."""
        if loss_name not in self._steps:
            # One trace per loss: any batch size (the last batch is smaller), no AutoGraph (no tensor-dependent
            # Python control flow; converting the Keras/TF-Ranking losses would only cost tracing time).
            replica_step, strategy = self._make_step(loss_name), self.strategy

            def step(batch: Batch):
                outputs = strategy.run(replica_step, args=(batch,))
                return {name: strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
                        for name, value in outputs.items()}

            self._steps[loss_name] = tf.function(step, autograph=False, input_signature=[BATCH_SPEC])
        return self._steps[loss_name]

    def _jit(self, loss_name: str) -> bool:
        """XLA for the dense KD steps only: the fused kernel is not an XLA op."""
        return self.cfg.jit_compile and loss_name != "bpr" and not self.fused

    def _make_step(self, loss_name: str):
        """One replica's step on a global batch: its share's losses and gradients (XLA-compiled for the dense KD
        losses, `_jit`; BPR is not: its shapes follow the batch's interaction pairs, so XLA would recompile per
        batch), then Adam's update, outside XLA because it synchronises the replicas."""
        loss_fn, weight, cfg = self.loss_fns[loss_name], self.weights[loss_name], self.cfg
        users_table, items_table = self.student.user_embedding.embeddings, self.student.item_embedding.embeddings
        variables = [users_table, items_table]
        n_items, replicas = self.data.n_items, self.strategy.num_replicas_in_sync

        def losses_and_gradients(share: Batch, total_weight, negatives, found, found_share):
            """Every term is this share's part of the global batch's: the sums over its users, the item L2 and
            the decay divided by the replicas, a mean's denominator (`total_weight`, BPR's found pairs) global."""
            user_ids, weights = share.users, share.weights
            with tf.GradientTape() as tape:
                user_vectors = tf.gather(users_table, user_ids)
                if loss_name == "bpr":  # only the scores of the share's (user, train item, negative) triples
                    pair_vectors = tf.gather(users_table, share.pair_users)
                    value = found_share * loss_fn(found, (pair_scores(pair_vectors, items_table, share.pair_items),
                                                          pair_scores(pair_vectors, items_table, negatives[:, None])))
                else:  # the student's score_all over every item: as its factors, or as a matrix in the compute dtype
                    scores = FactoredScores(user_vectors, items_table) if self.fused else tf.matmul(
                        tf.cast(user_vectors, self.compute_dtype), tf.cast(items_table, self.compute_dtype),
                        transpose_b=True)
                    unobserved, observed = self.dkc.targets(user_ids)
                    targets = Targets(unobserved, observed, ItemPairs(share.train_rows, share.train_items))
                    if loss_name == "dcd":
                        targets = DCDTargets(*targets, self.dcd.targets(user_ids)[1])
                    value = tf.reduce_sum(weights * loss_fn(targets, scores))
                    if loss_name == "dcd":
                        value += cfg.dcd_icd_weight * self._item_corrections(share.step_items)
                    if cfg.loss_reduction == "mean":
                        value /= total_weight
                l2 = cfg.l2 * (tf.reduce_sum(weights[:, None] * tf.square(user_vectors))
                               + tf.reduce_sum(tf.square(items_table)) / replicas)
                total = weight * value + l2
                scaled = self.optimizer.get_scaled_loss(total) if cfg.mixed_precision else total
            gradients = tape.gradient(scaled, variables)
            if cfg.mixed_precision:
                gradients = self.optimizer.get_unscaled_gradients(gradients)
            if cfg.weight_decay:  # dense, as PyTorch's: every row decays and moves Adam's moments every step
                gradients = [tf.convert_to_tensor(g) + (cfg.weight_decay / replicas) * v
                             for g, v in zip(gradients, variables)]
            return {loss_name: value, "l2": l2, "total": total}, gradients

        compute = (tf.function(losses_and_gradients, jit_compile=True, autograph=False) if self._jit(loss_name)
                   else losses_and_gradients)

        def step(batch: Batch):
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            share = replica_share(batch, replica, replicas)
            total_weight = tf.maximum(tf.reduce_sum(batch.weights), 1.0)
            negatives = found = found_share = tf.zeros([0])
            if loss_name == "bpr":  # drawn for the global batch's pairs, as one device would, then this share's
                all_negatives, all_found = sample_unobserved(self.train_keys, batch.pair_users, n_items, batch.seed)
                lo, _ = share_bounds(tf.size(batch.pair_users), replica, replicas)
                negatives, found = (x[lo:lo + tf.size(share.pair_users)] for x in (all_negatives, all_found))
                found_share = (tf.reduce_sum(tf.cast(found, tf.float32))
                               / tf.maximum(tf.reduce_sum(tf.cast(all_found, tf.float32)), 1.0))
            outputs, gradients = compute(share, total_weight, negatives, found, found_share)
            self.optimizer.apply_gradients(zip(gradients, variables))
            return outputs

        return step

    def score_pairs(self, users: tf.Tensor, items: tf.Tensor) -> tf.Tensor:
        """The student's scores of (user, item) pairs, `dcd.mf_scores` on its tables (DCD's list updates)."""
        return mf_scores(self.student.user_embedding.embeddings, self.student.item_embedding.embeddings, users, items)

    def _item_corrections(self, items: tf.Tensor) -> tf.Tensor:
        """DCD's item side: the sum of the corrections of these items' teacher lists (−1 = padding)."""
        users, discrepancy = self.dcd.item_targets(items)
        return tf.reduce_sum(self.item_correction(discrepancy, self.score_pairs(users, items[:, None])))

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One epoch (`epoch_batches`); mean of each loss over the steps."""
        loss_name = self.loss_name()
        step = self.step_fn(loss_name)
        jit = self._jit(loss_name)
        batches = epoch_batches(self.data.train, self.cfg, epoch, pairs=loss_name == "bpr",
                                pad_to=PAD_USERS_TO if jit else 1, train_pairs_to=self.train_pairs_cap if jit else None,
                                step_items_to=self.step_items_cap if jit else None)
        outputs = [step(batch) for batch in batches]
        return {name: float(tf.reduce_mean(tf.stack([o[name] for o in outputs]))) for name in outputs[0]}

    def mean_stage(self) -> dict[str, float]:
        if self.dkc is None:
            return {}
        return {name: float(v) for name, v in zip(self.teachers, self.dkc.mean_stage().numpy())}


def distill(data: Dataset, knowledge: EnsembleKnowledge | None, cfg: DistillConfig,
            log_dir: str | os.PathLike | None = None,
            progress: Callable[[str, int], Progress] | None = Progress,
            resume_dir: str | os.PathLike | None = None, warm_start: WarmStart | None = None,
            strategy: tf.distribute.Strategy | None = None) -> DistillRun:
    """Trains a student with `cfg.method`; TensorBoard scalars go to `log_dir` (per epoch: loss/<name>,
    objective, dkc/mean_stage/<teacher>; per evaluation: valid/<metric>; per DKC update: dkc/update/<statistic>,
    see `dkc.update_statistics`, also kept in the history entry of an evaluation at the same epoch).
    `progress(what, total)` reports each evaluation on stderr (None: silent). `knowledge` may be None only for wo_kd. With `resume_dir`, the whole
    run state is saved there after every evaluation (`RunState`) and a run interrupted with the same config
    continues from its last evaluation, with the same batches and seeds as an uninterrupted run. With `warm_start`,
    the student starts from an earlier snapshot's student (warmstart.py) instead of its random initialisation.
    `strategy`: the tf.distribute strategy to train under (default: `cfg.distribute`'s, see `Trainer`); on a
    multi-worker cluster every worker runs this function and only the chief writes to `log_dir` and `resume_dir`
    (the others write to temporary directories, `distribute.worker_dir`, and resume from the chief's state)."""
    trainer = Trainer(data, knowledge, cfg, strategy)
    carried = warm_start.apply(trainer.student, data) if warm_start is not None else None
    with worker_dir(log_dir, trainer.strategy) as log_dir, worker_dir(resume_dir, trainer.strategy) as save_dir:
        return _train(trainer, log_dir, progress, resume_dir, save_dir, carried)


def _train(trainer: Trainer, log_dir: str | os.PathLike | None, progress: Callable[[str, int], Progress] | None,
           resume_dir: str | os.PathLike | None, save_dir: str | os.PathLike | None,
           carried: dict | None) -> DistillRun:
    """`distill`'s loop, writing TensorBoard logs to `log_dir` and the run state to `save_dir`; `carried`: what a
    warm start carried over, for the result."""
    cfg, data, student = trainer.cfg, trainer.data, trainer.student
    bar = progress(f"{cfg.method} epoch", cfg.epochs) if progress is not None else None
    history, best, switch_epoch, stopping = [], None, None, EarlyStopping(student, cfg.patience, cfg.method)
    saved = RunState(resume_dir, trainer, save_dir) if resume_dir is not None else None
    first, seconds_before = 0, 0.0
    if saved is not None and saved.exists():
        first, history, best, switch_epoch, seconds_before = saved.load(stopping)
        log(f"{cfg.method}: resuming after epoch {first} from {resume_dir}")
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
                raise HetCompError(f"{cfg.method}: loss became {losses} in epoch {trained}; "
                                   f"lower learning_rate ({cfg.learning_rate})")
            stages = trainer.mean_stage()
            scalars.write(trained, losses, prefix="loss/")
            scalars.write(trained, {"objective": LOSSES.index(loss_name)})
            scalars.write(trained, stages, prefix="dkc/mean_stage/")
            if epoch % cfg.eval_every == 0 or trained == cfg.epochs:
                valid = evaluate(student.score_all, data, "valid")
                scalars.write(trained, valid, prefix="valid/")
                history.append({"epoch": trained, "valid": valid, "mean_stage": stages,
                                "objective": LOSSES.index(loss_name), "loss": losses})
                improved = best is None or valid[RECORD_METRIC] > best["valid"][RECORD_METRIC]
                best = history[-1] if improved else best
                stopping.record(improved, armed=cfg.patience_from == "start" or trainer.targets_final())
                if bar is not None:
                    bar.update(trained, f"{loss_name} loss {losses[loss_name]:.4f}, valid {RECORD_METRIC} "
                                        f"{valid[RECORD_METRIC]:.4f} (best {best['valid'][RECORD_METRIC]:.4f} "
                                        f"at epoch {best['epoch']})" + _stage_text(stages))
            if trainer.dkc is not None and trainer.dkc.due(epoch):
                decision = trainer.dkc.update(student.score_all, epoch)
                scalars.write(trained, decision, prefix="dkc/update/")
                if history and history[-1]["epoch"] == trained:  # the evaluation of this epoch keeps it
                    history[-1]["dkc"] = decision
            if saved is not None and epoch % cfg.eval_every == 0:
                saved.save(trained, history, best, switch_epoch, stopping,
                           seconds_before + time.perf_counter() - start)
            if stopping.should_stop(trained):
                break
    train_seconds = seconds_before + time.perf_counter() - start
    stopping.restore()
    return DistillRun(student=student, valid=best["valid"], test=evaluate(student.score_all, data, "test"),
                      history=history, train_seconds=train_seconds, params=count_params(student),
                      method=cfg.method, epochs=trained, best_epoch=best["epoch"], switch_epoch=switch_epoch,
                      mean_stage=trainer.mean_stage(), warm_start=carried, dkc=trainer.dkc,
                      ensemble=trainer.ensemble)


class RunState:
    """A distillation run's whole state in a directory, written atomically after each evaluation: the student,
    Adam's slots, the DKC and DCD state (tf.train.Checkpoint), the best weights so far and the loop's Python state
    (epochs trained, history, best evaluation, ADT switch, stale evaluations, seconds). A state written for
    another config is a HetCompError, not a silent restart. It is read from `directory` and written to `save_dir`
    (default: `directory`; a multi-worker run's other workers read the chief's and write elsewhere)."""

    def __init__(self, directory: str | os.PathLike, trainer: Trainer, save_dir: str | os.PathLike | None = None):
        self.directory, self.trainer = Path(directory), trainer
        self.save_dir = Path(save_dir) if save_dir is not None else self.directory
        parts = {"student": trainer.student, "optimizer": trainer.optimizer}
        parts.update({name: module for name, module in (("dkc", trainer.dkc), ("dcd", trainer.dcd)) if module})
        self.checkpoint = tf.train.Checkpoint(**parts)

    def exists(self) -> bool:
        return (self.directory / "state.json").is_file()

    def save(self, trained: int, history: list, best: dict, switch_epoch, stopping: EarlyStopping,
             seconds: float) -> None:
        stale, best_weights = stopping.state()
        with atomic_directory(self.save_dir) as staging:
            self.checkpoint.write(os.fspath(staging / "run"))
            np.savez(staging / "best_weights.npz", *best_weights)
            write_json(staging / "state.json", {
                "config": dataclasses.asdict(self.trainer.cfg), "trained": trained, "history": history, "best": best,
                "switch_epoch": switch_epoch, "stale": stale, "seconds": seconds})

    def load(self, stopping: EarlyStopping):
        """Restores the state; returns (epochs trained, history, best, switch_epoch, seconds so far)."""
        state = json.loads((self.directory / "state.json").read_text())
        if state["config"] != json.loads(json.dumps(dataclasses.asdict(self.trainer.cfg))):
            raise HetCompError(f"{self.directory}: a run state of another config; remove it to start afresh")
        self.checkpoint.read(os.fspath(self.directory / "run")).assert_existing_objects_matched()
        with np.load(self.directory / "best_weights.npz") as arrays:
            stopping.resume(state["stale"], [arrays[f"arr_{i}"] for i in range(len(arrays.files))])
        return state["trained"], state["history"], state["best"], state["switch_epoch"], state["seconds"]


def _stage_text(stages: dict[str, float]) -> str:
    return ", stages " + " ".join(f"{name} {v:.2f}" for name, v in stages.items()) if stages else ""
