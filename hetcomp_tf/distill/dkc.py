"""Dynamic knowledge construction (DKC) and the adaptive-transfer switch of HetComp.

Each teacher x contributes, for each user u, its ranking at checkpoint ("stage") v(u, x) of its training
trajectory, starting from the earliest one; the student is distilled towards the ensemble of those rankings.
Every p epochs the student's ranking is compared with teacher x's next stage by D(u, x, v) = 1 − NDCG@50, and
(u, x) moves on once the student has caught up with it (the gap shrank fast, D_prev/D_next > α·0.995^⌊epoch/p⌋)
or once the student drifts away (D_prev/D_next < 1). While any teacher's mean stage is below the last one the
student learns with the easy set-wise loss, afterwards with the fine-grained listwise losses (ADT).

D comes in two variants (`DistillConfig.dkc_distance`), both with the graded relevance rel_j = 2^{exp(−j/10)} − 1
of a 0-based position j and the discount 1/log2(j + 2), over the student's top-50 unobserved items:
  * "paper" (`ndcg_distance`): a student item found in the teacher's top-50 earns the relevance of its *teacher*
    position; the IDCG is the DCG of the teacher's own list; NDCG unrounded.
  * "authors" (`ndcg_distance_authors`, the HetComp authors' `get_NDCG_u`): a student item found in the teacher's
    top-50 earns the relevance of its *student* position, so the teacher's order inside its top-50 does not
    matter; the IDCG is that of 50 hits; NDCG rounded to 4 decimals (ties in D_prev/D_next then happen, and
    decide moves, exactly as in their code).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from hetcomp_tf.config import DistillConfig
from hetcomp_tf.data.dataset import CSR, rows_to_mask
from hetcomp_tf.distill.ensemble import ensemble_topk, select_stages
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.metrics import masked_topk


def position_relevance(k: int) -> tf.Tensor:
    """The graded relevance of teacher positions.

    Args:
        k: how many positions.

    Returns:
        float32 [k]: rel_j = 2^{exp(−j/10)} − 1 for the 0-based teacher position j.
    """
    return tf.pow(2.0, tf.exp(-tf.range(k, dtype=tf.float32) / 10.0)) - 1.0


def ndcg_distance(student_top: tf.Tensor, teacher_top: tf.Tensor) -> tf.Tensor:
    """D = 1 − NDCG of the student's ranking against each teacher's ("paper" variant, see the module docstring).

    Args:
        student_top: int32 [b, ks] the student's top items, best first, −1 padded.
        teacher_top: int32 [b, X, k] each teacher's top items, best first, −1 padded.

    Returns:
        float32 [b, X]; a teacher list with no item has NDCG 0 (D = 1).
    """
    k, ks = tf.shape(teacher_top)[2], tf.shape(student_top)[1]
    relevance = position_relevance(k)  # by teacher position
    discount = 1.0 / (tf.math.log(tf.range(2, tf.maximum(k, ks) + 2, dtype=tf.float32)) / tf.math.log(2.0))
    teacher_listed = teacher_top >= 0
    ideal = tf.reduce_sum(tf.where(teacher_listed, relevance * discount[:k], 0.0), axis=2)  # [b, X]
    hits = (student_top[:, None, :, None] == teacher_top[:, :, None, :]) & teacher_listed[:, :, None, :]
    hit_relevance = tf.reduce_sum(tf.where(hits, relevance, 0.0), axis=3)  # [b, X, ks]: rel of the hit, or 0
    dcg = tf.reduce_sum(hit_relevance * discount[:ks], axis=2)
    return 1.0 - tf.math.divide_no_nan(dcg, ideal)


def ndcg_distance_authors(student_top: tf.Tensor, teacher_top: tf.Tensor) -> tf.Tensor:
    """D = 1 − round(NDCG, 4) the HetComp authors' way ("authors" variant), in float64 as their NumPy code is.

    Args:
        student_top: int32 [b, k] the student's top items, best first, −1 padded.
        teacher_top: int32 [b, X, k'] each teacher's top items, −1 padded.

    Returns:
        float32 [b, X].
    """
    k = tf.shape(student_top)[1]
    positions = tf.range(k, dtype=tf.float64)
    gain = (tf.pow(tf.constant(2.0, tf.float64), tf.exp(-positions / 10.0)) - 1.0) / (
        tf.math.log(positions + 2.0) / tf.math.log(tf.constant(2.0, tf.float64))
    )
    listed = teacher_top >= 0
    hit = (
        tf.reduce_any((student_top[:, None, :, None] == teacher_top[:, :, None, :]) & listed[:, :, None, :], axis=3)
        & (student_top >= 0)[:, None, :]
    )  # [b, X, k]
    ndcg = tf.reduce_sum(tf.where(hit, gain, 0.0), axis=2) / tf.reduce_sum(gain)
    return tf.cast(1.0 - tf.round(ndcg * 1e4) / 1e4, tf.float32)


DISTANCES = {"paper": ndcg_distance, "authors": ndcg_distance_authors}


def dkc_threshold(epoch: int, cfg: DistillConfig) -> float:
    """The DKC threshold α · decay^⌊epoch/p⌋: a (u, x) pair needs a gap shrink ratio above this to move on.

    Args:
        epoch: the 0-based epoch.
        cfg: the distillation config (`alpha`, `alpha_decay`, `dkc_period`).

    Returns:
        The threshold.
    """
    return cfg.alpha * cfg.alpha_decay ** (epoch // cfg.dkc_period)


def advance_stages(stages, d_prev, d_next, d_after, threshold, n_stages: int):
    """One DKC decision for every (user, teacher) at once.

    A pair below the last stage advances when D_next = 0 (the student already reproduces the next stage), when
    D_prev/D_next > threshold or when D_prev/D_next < 1; an advanced pair keeps d_after as its new D_prev.

    Args:
        stages: int32 [U, X] each pair's current stage v.
        d_prev: float32 [U, X] D at the last check.
        d_next: float32 [U, X] D to stage v + 1.
        d_after: float32 [U, X] D to stage min(v + 2, T − 1), the next gap once v has advanced.
        threshold: `dkc_threshold` of the epoch.
        n_stages: T.

    Returns:
        (stages int32 [U, X], d_prev float32 [U, X], advanced bool [U, X]).
    """
    active = stages < n_stages - 1
    ratio = d_prev / tf.where(d_next > 0.0, d_next, 1.0)
    advanced = active & ((d_next <= 0.0) | (ratio > threshold) | (ratio < 1.0))
    return stages + tf.cast(advanced, stages.dtype), tf.where(advanced, d_after, d_prev), advanced


def update_statistics(
    stages, d_prev, d_next, threshold: float, n_stages: int, decided: bool = True
) -> dict[str, float]:
    """What one DKC decision did, for diagnosis (TensorBoard and the run history).

    Args:
        stages: int [U, X] the stages before the decision (NumPy or a tensor), as `advance_stages` takes them.
        d_prev: float [U, X] D at the last check.
        d_next: float [U, X] D to the next stage.
        threshold: `dkc_threshold` of the epoch.
        n_stages: T.
        decided: False for DKC's first call, which only records D: nothing moved.

    Returns:
        {"threshold", "moved", "moved_reproduced" (D_next = 0), "moved_caught_up" (the gap shrank faster than the
        threshold), "moved_drifted" (it grew)}: shares of all (user, teacher) pairs; and per stage v below the
        last, "stage_<v>/share" (the share of pairs there) and, when any is, "stage_<v>/d_next" (their mean D
        to stage v + 1) and "stage_<v>/moved" (the share of them that moved).
    """
    stages, d_prev, d_next = (np.asarray(x) for x in (stages, d_prev, d_next))
    active = (stages < n_stages - 1) & decided
    ratio = d_prev / np.where(d_next > 0.0, d_next, 1.0)
    reproduced = active & (d_next <= 0.0)
    caught_up = active & ~reproduced & (ratio > threshold)
    drifted = active & ~reproduced & ~caught_up & (ratio < 1.0)
    moved = reproduced | caught_up | drifted
    stats = {
        "threshold": float(threshold),
        "moved": float(moved.mean()),
        "moved_reproduced": float(reproduced.mean()),
        "moved_caught_up": float(caught_up.mean()),
        "moved_drifted": float(drifted.mean()),
    }
    for stage in range(n_stages - 1):
        here = stages == stage
        stats[f"stage_{stage}/share"] = float(here.mean())
        if here.any():
            stats[f"stage_{stage}/d_next"] = float(d_next[here].mean())
            stats[f"stage_{stage}/moved"] = float(moved[here].mean())
    return stats


def mean_stages_rounded(stages) -> np.ndarray:
    """Each teacher's mean stage over users rounded to 2 decimals with Python's `round`, as the authors do.

    Args:
        stages: int [U, X] the (user, teacher) stages.

    Returns:
        float64 [X].
    """
    means = np.asarray(stages, dtype=np.float64).mean(axis=0)
    return np.array([round(float(m), 2) for m in means])


def all_final(stages, n_stages: int) -> bool:
    """ADT's switch: True once every teacher's rounded mean stage reached T − 1 (then the fine-grained losses
    replace the overall one). Rounding lets a few users still below the last stage not hold the switch back.

    Args:
        stages: int [U, X] the (user, teacher) stages.
        n_stages: T.

    Returns:
        Whether every teacher's `mean_stages_rounded` is >= T − 1.
    """
    return bool(np.all(mean_stages_rounded(stages) >= n_stages - 1))


class DynamicKnowledge(tf.Module):
    """DKC state on the device and the current targets of every user.

    The [U, K] target table is rebuilt after each update so a training step only gathers rows of it.

    Args:
        rankings: int32 [X, T, U, N] teacher x's top-N unobserved items at checkpoint t (an `EnsembleKnowledge`'s
            `rankings`).
        observed: int32 [U, ≥K/10] train items in the ensemble's order (its `observed`), −1 padded.
        train: the train split, to exclude train items from the student's ranking.
        n_items: the catalogue's size.
        cfg: the distillation config (top_k, DKC's schedule and distance, tau).
        batch_users: users per batch when ranking and rebuilding targets.
        tau: each stage ensemble's temperature (default `cfg.tau`); the knowledge's own (`target_knowledge`).
        teacher_weights: float [X] each stage ensemble's teacher weights (default equal).

    Raises:
        HetCompError: arrays of the wrong rank or shape, rankings shorter than `cfg.dkc_ndcg_k`, `cfg.top_k` < 10
            or `cfg.dkc_period` < 1.
    """

    def __init__(
        self,
        rankings,
        observed,
        train: CSR,
        n_items: int,
        cfg: DistillConfig,
        batch_users: int = 512,
        tau: float | None = None,
        teacher_weights=None,
    ):
        super().__init__(name="dynamic_knowledge")
        rankings = np.asarray(rankings)
        if rankings.ndim != 4:
            raise HetCompError(f"DKC: rankings must be [teachers, checkpoints, users, N], got shape {rankings.shape}")
        n_teachers, self.n_stages, self.n_users, top_n = (int(d) for d in rankings.shape)
        observed = np.asarray(observed)
        if observed.ndim != 2 or observed.shape[0] != self.n_users or train.n_rows != self.n_users:
            raise HetCompError(
                f"DKC: observed {observed.shape} and train ({train.n_rows} rows) must have one row per "
                f"user of the rankings ({self.n_users})"
            )
        if top_n < cfg.dkc_ndcg_k:
            raise HetCompError(
                f"DKC: teacher rankings hold {top_n} items per user, dkc_ndcg_k = {cfg.dkc_ndcg_k} " "needs that many"
            )
        if cfg.top_k < 10 or cfg.dkc_period < 1:
            raise HetCompError(f"DKC: top_k must be >= 10 and dkc_period >= 1 (got {cfg.top_k}, {cfg.dkc_period})")
        self.cfg, self.n_items, self.batch_users = cfg, int(n_items), int(batch_users)
        self.tau = cfg.tau if tau is None else float(tau)
        self.teacher_weights = teacher_weights
        observed_width = cfg.top_k // 10
        observed = np.pad(observed, [(0, 0), (0, max(0, observed_width - observed.shape[1]))], constant_values=-1)
        self.stacked = tf.constant(rankings, tf.int32)
        self.observed = tf.constant(observed[:, :observed_width], tf.int32)
        self.train_rows = train.to_ragged()
        self.stages = tf.Variable(tf.zeros([self.n_users, n_teachers], tf.int32), trainable=False, name="stages")
        self.d_prev = tf.Variable(tf.ones([self.n_users, n_teachers]), trainable=False, name="d_prev")
        self.initialised = tf.Variable(False, trainable=False, name="initialised")
        self.final = tf.Variable(all_final(np.zeros([1, n_teachers]), self.n_stages), trainable=False, name="final")
        self.target_table = tf.Variable(tf.fill([self.n_users, cfg.top_k], -1), trainable=False, name="targets")
        self._rebuild_targets(tf.range(self.n_users))

    # -------------------------------------------------------------------------------------- training side

    def targets(self, user_ids) -> tuple[tf.Tensor, tf.Tensor]:
        """The current targets of a batch of users.

        Args:
            user_ids: int32 [b].

        Returns:
            (unobserved int32 [b, K], observed int32 [b, K/10]), −1 padded.
        """
        return tf.gather(self.target_table, user_ids), tf.gather(self.observed, user_ids)

    def mean_stage(self) -> tf.Tensor:
        """float32 [X]: each teacher's mean stage over users."""
        return tf.reduce_mean(tf.cast(self.stages, tf.float32), axis=0)

    def is_final(self) -> bool:
        """ADT: whether the fine-grained losses have replaced the overall one (see `all_final`); the variable
        `final` is the in-graph twin."""
        return bool(self.final.numpy())

    def due(self, epoch: int) -> bool:
        """Whether `update` runs after this (0-based) epoch: every p epochs from dkc_start on, until final.

        Args:
            epoch: the 0-based epoch just trained.

        Returns:
            True when a DKC update is due.
        """
        cfg = self.cfg
        return epoch >= cfg.dkc_start and epoch % cfg.dkc_period == 0 and not self.is_final()

    # ------------------------------------------------------------------------------------------- updates

    def update(self, score_fn, epoch: int) -> dict[str, float]:
        """Applies the DKC rule with the student's scores; the first call only records D_prev.

        Args:
            score_fn: user_ids int32 [b] -> float [b, n_items], the student's scores.
            epoch: the 0-based epoch just trained (sets the threshold).

        Returns:
            `update_statistics` of the decision plus "advanced", how many (user, teacher) pairs advanced.
        """
        d_next, d_after = self.distances(score_fn)
        threshold = dkc_threshold(epoch, self.cfg)
        if not bool(self.initialised.numpy()):
            self.d_prev.assign(d_next)
            self.initialised.assign(True)
            return {
                **update_statistics(self.stages, d_next, d_next, threshold, self.n_stages, decided=False),
                "advanced": 0,
            }
        stats = update_statistics(self.stages, self.d_prev, d_next, threshold, self.n_stages)
        stages, d_prev, advanced = advance_stages(self.stages, self.d_prev, d_next, d_after, threshold, self.n_stages)
        self.stages.assign(stages)
        self.d_prev.assign(d_prev)
        changed_users = tf.cast(tf.where(tf.reduce_any(advanced, axis=1))[:, 0], tf.int32)
        if changed_users.shape[0]:
            self._rebuild_targets(changed_users)
            self.final.assign(all_final(stages.numpy(), self.n_stages))
        return {**stats, "advanced": int(tf.reduce_sum(tf.cast(advanced, tf.int32)))}

    def distances(self, score_fn) -> tuple[tf.Tensor, tf.Tensor]:
        """The student's distances to each teacher's next two stages, for the current stages v.

        Args:
            score_fn: user_ids int32 [b] -> float [b, n_items], the student's scores.

        Returns:
            (D(u, x, min(v+1, T−1)), D(u, x, min(v+2, T−1))), each float32 [U, X].
        """
        all_users = tf.range(self.n_users)
        parts = [self._batch_distances(ids, tf.cast(score_fn(ids), tf.float32)) for ids in self._batches(all_users)]
        return tf.concat([p[0] for p in parts], 0), tf.concat([p[1] for p in parts], 0)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32), tf.TensorSpec([None, None], tf.float32)])
    def _batch_distances(self, user_ids, scores):
        k, distance = self.cfg.dkc_ndcg_k, DISTANCES[self.cfg.dkc_distance]
        student_top = masked_topk(scores, rows_to_mask(self.train_rows, user_ids, self.n_items), k)
        stages = tf.gather(self.stages, user_ids)
        out = []
        for step in (1, 2):
            stage = tf.minimum(stages + step, self.n_stages - 1)
            teacher_top = tf.transpose(select_stages(self.stacked, stage, user_ids)[:, :, :k], [1, 0, 2])
            out.append(distance(student_top, teacher_top))
        return tuple(out)

    def _rebuild_targets(self, user_ids: tf.Tensor) -> None:
        """Target rows of `user_ids` = the top-K ensemble of each teacher's ranking at that user's stage."""
        for ids in self._batches(user_ids):
            selected = select_stages(self.stacked, tf.gather(self.stages, ids), ids)
            rows = ensemble_topk(selected, self.n_items, self.cfg.top_k, self.tau, self.teacher_weights)
            self.target_table.scatter_nd_update(ids[:, None], rows)

    def _batches(self, user_ids: tf.Tensor):
        for start in range(0, int(user_ids.shape[0]), self.batch_users):
            yield user_ids[start : start + self.batch_users]
