"""The distillation trainer: the student, its optimiser, the knowledge and one compiled step per loss.

The student is an MF (`student.py`) fitted by Adam. Each distillation step scores every item for the step's users
([b, n_items], clipped to ±score_clip inside the losses), so the losses see the whole ranking (wo_kd's BPR step
scores only the batch's (user, train item, negative) triples); the per-user KD losses are summed
(`loss_reduction`, as the HetComp authors do). Regularisation is L2 in the loss on the batch's user rows and all
item rows (`l2`) and/or Adam's coupled weight decay on every row (`weight_decay`, the authors' PyTorch choice).
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from hetcomp_tf.config import DistillConfig
from hetcomp_tf.data.dataset import Dataset
from hetcomp_tf.data.sampling import BPRLoss, interaction_keys, pair_scores, sample_unobserved
from hetcomp_tf.distill.batches import (
    BATCH_SPEC,
    PAD_USERS_TO,
    Batch,
    epoch_batches,
    replica_share,
    step_items_cap,
    train_pairs_cap,
)
from hetcomp_tf.distill.dcd import DualCorrection, item_teacher_lists, mf_scores
from hetcomp_tf.distill.dkc import DynamicKnowledge
from hetcomp_tf.distill.ensemble import EnsembleKnowledge
from hetcomp_tf.distill.fused import FUSED_MAX_DIM, FactoredScores, fused_available
from hetcomp_tf.distill.losses.dcd import CorrectionLoss, DCDLoss, DCDTargets
from hetcomp_tf.distill.losses.hetcomp import FineGrainedLoss, OverallLoss, RRDLoss, Targets
from hetcomp_tf.distill.losses.labels import ItemPairs
from hetcomp_tf.distill.methods import get_method, stage_rankings
from hetcomp_tf.distill.student import Student
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.util.distribute import make_strategy, share_bounds
from hetcomp_tf.util.progress import log


def use_fused_kernel(cfg: DistillConfig) -> bool:
    """Whether KD steps use the fused rest kernel (`DistillConfig.rest_kernel`).

    Args:
        cfg: the distillation config ("auto" takes the kernel where it builds and the student dim is at most
            FUSED_MAX_DIM, "fused" requires it, "dense" never takes it).

    Returns:
        True for the fused kernel, False for the dense path.

    Raises:
        HetCompError: rest_kernel "fused" where the kernel cannot serve (mixed precision, no score clip, no build).
    """
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


class Trainer:
    """The student, its optimiser, the knowledge and one compiled step per loss, under a tf.distribute strategy.

    The strategy is `strategy`, else `cfg.distribute`'s: the student's and Adam's variables are mirrored on every
    replica, a step runs on each replica's share of the batch (`replica_share`) with every loss term scaled to the
    global batch, and Adam applies the gradients summed over the replicas. DKC, DCD and the evaluations read the
    synchronised weights, so every worker takes the same decisions.

    Args:
        data: the dataset.
        knowledge: the teachers' knowledge; None only for a method without teachers (wo_kd).
        cfg: the distillation config.
        strategy: the tf.distribute strategy (default: `cfg.distribute`'s).

    Raises:
        HetCompError: an unknown method, a method that needs knowledge without it, knowledge of other sizes than
            the dataset, or a "fused" rest kernel that cannot serve.
    """

    def __init__(
        self,
        data: Dataset,
        knowledge: EnsembleKnowledge | None,
        cfg: DistillConfig,
        strategy: tf.distribute.Strategy | None = None,
    ):
        self.data, self.cfg, self.method = data, cfg, get_method(cfg.method)
        self.strategy = strategy if strategy is not None else make_strategy(cfg.distribute)
        with self.strategy.scope():
            self.student = Student(data.n_users, data.n_items, cfg.student_dim, seed=cfg.seed, init_std=cfg.init_std)
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
                raise HetCompError(
                    f"knowledge covers {knowledge.n_users} users x {knowledge.n_items} items, "
                    f"the dataset {data.n_users} x {data.n_items}; export both from one run"
                )
            self.teachers = knowledge.teachers
            self.ensemble = knowledge.describe()
            self.dkc = DynamicKnowledge(
                stage_rankings(knowledge, self.method.targets),
                knowledge.observed,
                data.train,
                data.n_items,
                cfg,
                tau=knowledge.tau,
                teacher_weights=knowledge.teacher_weights,
            )
        else:
            self.teachers, self.ensemble = (), None
        per_user = tf.keras.losses.Reduction.NONE  # the step weights out XLA padding, then sums or averages
        clip = cfg.score_clip  # the losses clip the scores (and so know the bound of their exponentials)
        self.loss_fns = {
            "overall": OverallLoss(score_clip=clip, reduction=per_user),
            "fine": FineGrainedLoss(cfg.top_k, score_clip=clip, reduction=per_user),
            "rrd": RRDLoss(cfg.top_k, score_clip=clip, reduction=per_user),
            "bpr": BPRLoss(score_clip=clip),
        }  # every loss is called as loss(targets, scores)
        self.dcd = None
        if "dcd" in self.method.losses:  # corrects the student against the final ensemble's top-K
            item_lists = item_teacher_lists(
                knowledge.rankings[:, -1],
                data.n_items,
                knowledge.tau,
                cfg.top_k,
                teacher_weights=knowledge.teacher_weights,
            )
            self.dcd = DualCorrection(
                self.dkc.target_table.numpy(), item_lists, data.train, data.n_items, period=cfg.dcd_period
            )
            self.loss_fns["dcd"] = DCDLoss(
                cfg.top_k, cfg.dcd_ucd_weight, cfg.dcd_ucd_epsilon, score_clip=clip, reduction=per_user
            )
            self.item_correction = CorrectionLoss(self.dcd.item_list_size, score_clip=clip, reduction=per_user)
        self.weights = {
            "overall": cfg.overall_weight,
            "fine": cfg.fine_weight,
            "rrd": cfg.fine_weight,
            "bpr": 1.0,
            "dcd": cfg.fine_weight,
        }
        self.fused = self.method.targets != "data" and use_fused_kernel(cfg)  # wo_kd scores pairs only: no build
        self._steps: dict[str, Callable] = {}

    def targets_final(self) -> bool:
        """True once the targets stop moving (no DKC, or every stage final). Only then do evaluations without a
        better valid Recall count towards early stopping (`patience_from`): before, a flat or falling curve is the
        curriculum changing the targets, and valid Recall can peak mid-curriculum, so a patience counted from the
        start could end a run before its ADT switch."""
        return self.dkc is None or self.dkc.is_final()

    @property
    def phase(self) -> int:
        """0 before the ADT switch, 1 after (targets whose stages are all final start at 1)."""
        return int(self.dkc is not None and self.dkc.is_final())

    def loss_name(self) -> str:
        """The loss of the current phase, a name of LOSSES."""
        return self.method.losses[self.phase]

    def step_fn(self, loss_name: str) -> Callable:
        """The compiled step of a loss, traced once.

        Args:
            loss_name: a name of LOSSES the method uses.

        Returns:
            step(batch: Batch) -> {loss_name, "l2", "total": float32 scalar}, each summed over the replicas; the
            step applies the optimiser's update.
        """
        if loss_name not in self._steps:
            # One trace per loss: any batch size (the last batch is smaller), no AutoGraph (no tensor-dependent
            # Python control flow; converting the Keras/TF-Ranking losses would only cost tracing time).
            replica_step, strategy = self._make_step(loss_name), self.strategy

            def step(batch: Batch):
                outputs = strategy.run(replica_step, args=(batch,))
                return {
                    name: strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
                    for name, value in outputs.items()
                }

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
                    value = found_share * loss_fn(
                        found,
                        (
                            pair_scores(pair_vectors, items_table, share.pair_items),
                            pair_scores(pair_vectors, items_table, negatives[:, None]),
                        ),
                    )
                else:  # the student's score_all over every item: as its factors, or as a matrix in the compute dtype
                    scores = (
                        FactoredScores(user_vectors, items_table)
                        if self.fused
                        else tf.matmul(
                            tf.cast(user_vectors, self.compute_dtype),
                            tf.cast(items_table, self.compute_dtype),
                            transpose_b=True,
                        )
                    )
                    unobserved, observed = self.dkc.targets(user_ids)
                    targets = Targets(unobserved, observed, ItemPairs(share.train_rows, share.train_items))
                    if loss_name == "dcd":
                        targets = DCDTargets(*targets, self.dcd.targets(user_ids)[1])
                    value = tf.reduce_sum(weights * loss_fn(targets, scores))
                    if loss_name == "dcd":
                        value += cfg.dcd_icd_weight * self._item_corrections(share.step_items)
                    if cfg.loss_reduction == "mean":
                        value /= total_weight
                l2 = cfg.l2 * (
                    tf.reduce_sum(weights[:, None] * tf.square(user_vectors))
                    + tf.reduce_sum(tf.square(items_table)) / replicas
                )
                total = weight * value + l2
                scaled = self.optimizer.get_scaled_loss(total) if cfg.mixed_precision else total
            gradients = tape.gradient(scaled, variables)
            if cfg.mixed_precision:
                gradients = self.optimizer.get_unscaled_gradients(gradients)
            if cfg.weight_decay:  # dense, as PyTorch's: every row decays and moves Adam's moments every step
                gradients = [
                    tf.convert_to_tensor(g) + (cfg.weight_decay / replicas) * v for g, v in zip(gradients, variables)
                ]
            return {loss_name: value, "l2": l2, "total": total}, gradients

        compute = (
            tf.function(losses_and_gradients, jit_compile=True, autograph=False)
            if self._jit(loss_name)
            else losses_and_gradients
        )

        def step(batch: Batch):
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            share = replica_share(batch, replica, replicas)
            total_weight = tf.maximum(tf.reduce_sum(batch.weights), 1.0)
            negatives = found = found_share = tf.zeros([0])
            if loss_name == "bpr":  # drawn for the global batch's pairs, as one device would, then this share's
                all_negatives, all_found = sample_unobserved(self.train_keys, batch.pair_users, n_items, batch.seed)
                lo, _ = share_bounds(tf.size(batch.pair_users), replica, replicas)
                negatives, found = (x[lo : lo + tf.size(share.pair_users)] for x in (all_negatives, all_found))
                found_share = tf.reduce_sum(tf.cast(found, tf.float32)) / tf.maximum(
                    tf.reduce_sum(tf.cast(all_found, tf.float32)), 1.0
                )
            outputs, gradients = compute(share, total_weight, negatives, found, found_share)
            self.optimizer.apply_gradients(zip(gradients, variables))
            return outputs

        return step

    def score_pairs(self, users: tf.Tensor, items: tf.Tensor) -> tf.Tensor:
        """The student's scores of (user, item) pairs, `dcd.mf_scores` on its tables (DCD's list updates).

        Args:
            users: int32 user ids, any shape that broadcasts against `items`.
            items: int32 item ids.

        Returns:
            float32, the broadcast shape.
        """
        return mf_scores(self.student.user_embedding.embeddings, self.student.item_embedding.embeddings, users, items)

    def _item_corrections(self, items: tf.Tensor) -> tf.Tensor:
        """DCD's item side: the sum of the corrections of these items' teacher lists (−1 = padding)."""
        users, discrepancy = self.dcd.item_targets(items)
        return tf.reduce_sum(self.item_correction(discrepancy, self.score_pairs(users, items[:, None])))

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """Trains one epoch (`epoch_batches`) with the current phase's loss.

        Args:
            epoch: the 0-based epoch (seeds its batches).

        Returns:
            {loss name, "l2", "total": the mean over the epoch's steps}.
        """
        loss_name = self.loss_name()
        step = self.step_fn(loss_name)
        jit = self._jit(loss_name)
        batches = epoch_batches(
            self.data.train,
            self.cfg,
            epoch,
            pairs=loss_name == "bpr",
            pad_to=PAD_USERS_TO if jit else 1,
            train_pairs_to=self.train_pairs_cap if jit else None,
            step_items_to=self.step_items_cap if jit else None,
        )
        outputs = [step(batch) for batch in batches]
        return {name: float(tf.reduce_mean(tf.stack([o[name] for o in outputs]))) for name in outputs[0]}

    def mean_stage(self) -> dict[str, float]:
        """{teacher: mean DKC stage over users}; {} without teachers."""
        if self.dkc is None:
            return {}
        return {name: float(v) for name, v in zip(self.teachers, self.dkc.mean_stage().numpy())}
