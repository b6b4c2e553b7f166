"""The ensemble evaluated over its candidates, the items some teacher lists, instead of the whole catalogue.

An item no teacher lists scores 0 in the ensemble (`ensemble.importance`), so a user's top-k lies among the listed
items whenever at least k of them score above 0 and are not excluded. Ranking those (at most X·N, a few hundred)
instead of every item gives the metrics of `metrics.evaluate` on the dense scores: the same scores, summed in the
same teacher order, and ties go to the lower item id in both (candidates are kept in item order). A user with fewer
than k positive candidates for some τ and weights (long-tail votes underflow to 0, a teacher weighted 0) is ranked
densely for those. Fitting τ and teacher weights on valid (`ensemble.fit_ensemble`) evaluates ~250 ensembles; this
makes each a small pass over [users, candidates], on every valid user, exactly.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from hetcomp_tf.config import METRIC_KS
from hetcomp_tf.data.dataset import CSR, Dataset
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.metrics import evaluate, evaluated_users, metrics_of_hits, split_rows


class CandidateEvaluator:
    """The ensemble's metrics on one split for any τ and teacher weights, ranked over each user's candidates.

    Args:
        final_rankings: int32 [X, n_users, N], every teacher's top-N items per user, best first, −1 padded
            (`EnsembleKnowledge.final_rankings`).
        n_items: the catalogue's size.
        data: the dataset.
        split: "valid" or "test" (the items `metrics.evaluate` excludes are excluded here too).
        users: int [n], evaluate only these users (`metrics.evaluate`'s); None: every user with `split` items.
        ks: the metric cut-offs.

    Example:
        >>> evaluator = CandidateEvaluator(knowledge.final_rankings, knowledge.n_items, data, "valid")
        >>> evaluator(tau=10.0, teacher_weights=[1.0] * len(knowledge.teachers))["recall@50"]
    """

    def __init__(self, final_rankings, n_items: int, data: Dataset, split: str = "valid", users=None, ks=METRIC_KS):
        self.final_rankings, self.n_items, self.data, self.split = final_rankings, int(n_items), data, split
        self.ks = tuple(sorted({int(k) for k in ks}))
        if not self.ks or self.ks[0] < 1:
            raise HetCompError(f"metric cut-offs must be positive integers, got {self.ks}")
        truth, exclude = split_rows(data, split)
        self.users = evaluated_users(truth, split, data.name, users)
        n_teachers, _, top_n = final_rankings.shape
        items = final_rankings[:, self.users].transpose(1, 0, 2).reshape(len(self.users), n_teachers * top_n)
        dropped = (items < 0) | _contains(exclude, self.users, items)
        items = np.where(dropped, self.n_items, items)  # n_items sorts after every item: a dropped entry
        order = np.argsort(items, axis=1, kind="stable")  # stable: equal items keep the teachers' order
        items = np.take_along_axis(items, order, axis=1)
        listed = items < self.n_items
        first = listed & np.concatenate([np.ones((len(items), 1), bool), items[:, 1:] != items[:, :-1]], axis=1)
        slot = np.cumsum(first, axis=1) - 1  # each entry's candidate: its item's place among the row's
        width = max(int(first.sum(axis=1).max(initial=0)), 1)
        rows = np.broadcast_to(np.arange(len(items))[:, None], items.shape)
        self._entry_segment = tf.constant((rows * width + slot)[listed], tf.int32)  # [E] candidate of each vote
        self._entry_teacher = tf.constant((order // top_n)[listed], tf.int32)  # [E]
        self._entry_rank = tf.constant((order % top_n)[listed], tf.int32)  # [E], 0-based
        candidates = np.full((len(items), width), self.n_items, np.int64)
        candidates[rows[first], slot[first]] = items[first]
        self._is_candidate = tf.constant(candidates < self.n_items)  # [n, width]
        self._hits = tf.constant(_contains(truth, self.users, candidates))  # [n, width]
        self._n_truth = tf.constant(truth.lengths()[self.users].astype(np.float32))
        self._top_n = tf.constant(top_n, tf.int32)

    def __call__(self, tau: float, teacher_weights) -> dict[str, float]:
        """The ensemble's metrics at this τ and these teacher weights.

        Args:
            tau: the temperature τ.
            teacher_weights: float [X] w_x, non-negative, not all 0.

        Returns:
            {"recall@k", "ndcg@k" for each k ascending}: the mean over the evaluated users, as `metrics.evaluate`.

        Raises:
            HetCompError: bad teacher weights.
        """
        weights = checked_weights(teacher_weights, self.final_rankings.shape[0])
        sums, dense = self._candidate_sums(tf.constant(tau, tf.float32), tf.constant(weights, tf.float32))
        totals = {name: float(value) for name, value in sums.items()}
        dense_users = self.users[dense.numpy()]
        if dense_users.size:  # too few positive candidates: these users' top-k reaches items no teacher lists
            from hetcomp_tf.distill.ensemble import rankings_scorer

            scorer = rankings_scorer(self.final_rankings, self.n_items, tau, weights)
            means = evaluate(scorer, self.data, self.split, self.ks, users=dense_users)
            totals = {name: totals[name] + means[name] * dense_users.size for name in totals}
        return {name: totals[name] / len(self.users) for name in totals}

    def _candidate_sums(self, tau: tf.Tensor, teacher_weights: tf.Tensor) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        """`_sums_over_candidates` of this evaluator's users."""
        return _sums_over_candidates(
            tau,
            teacher_weights,
            self._entry_segment,
            self._entry_teacher,
            self._entry_rank,
            self._top_n,
            self._is_candidate,
            self._hits,
            self._n_truth,
            self.ks,
        )


# One function for every evaluator (a method would trace once per instance, and TensorFlow warns of retracing after
# five); its shapes generalise after the second trace. `ks` is static: the same METRIC_KS in every call here.
@tf.function(reduce_retracing=True)
def _sums_over_candidates(
    tau, teacher_weights, entry_segment, entry_teacher, entry_rank, top_n, is_candidate, hits, n_truth, ks
):
    """Metric sums over the users ranked by their candidates, and which users need the dense ranking.

    Args:
        tau, teacher_weights: the ensemble's τ and float [X] weights.
        entry_segment, entry_teacher, entry_rank: int [E]: each listed entry's candidate (row * width + slot), its
            teacher and its 0-based rank.
        top_n: int scalar: the teachers' list length N.
        is_candidate, hits: bool [n, width]: a real candidate; one of the user's held-out items.
        n_truth: float [n]: the user's held-out items.
        ks: the metric cut-offs, ascending.

    Returns:
        ({metric: the sum over the users ranked by candidates}, bool [n]: the users that need the dense ranking).
    """
    n_users, width = tf.shape(is_candidate)[0], tf.shape(is_candidate)[1]
    ranks = tf.cast(tf.range(1, top_n + 1), tf.float32)
    votes = teacher_weights[:, None] * tf.exp(-ranks / tau)  # [X, N]
    entry_votes = tf.gather_nd(votes, tf.stack([entry_teacher, entry_rank], axis=1))
    scores = tf.math.unsorted_segment_sum(entry_votes, entry_segment, n_users * width)
    scores = tf.reshape(scores, [n_users, width])
    k = tf.minimum(max(ks), width)
    ranked = tf.where(is_candidate, scores, -np.inf)
    top = tf.math.top_k(ranked, k=k, sorted=True)
    dense = tf.reduce_sum(tf.cast(ranked > 0, tf.int32), axis=1) < max(ks)
    hit = tf.cast(tf.gather(hits, top.indices, batch_dims=1), tf.float32)
    hit = tf.pad(hit, [[0, 0], [0, max(ks) - k]])
    per_user = metrics_of_hits(hit, n_truth, ks)
    kept = tf.cast(~dense, tf.float32)
    return {name: tf.reduce_sum(values * kept) for name, values in per_user.items()}, dense


def checked_weights(teacher_weights, n_teachers: int) -> np.ndarray:
    """float64 [X]: the given teacher weights checked, or all 1 (the paper's equal-weight ensemble) for None.

    Raises:
        HetCompError: not X non-negative numbers, or all 0.
    """
    weights = np.ones(n_teachers) if teacher_weights is None else np.asarray(teacher_weights, np.float64)
    if weights.shape != (n_teachers,) or (weights < 0).any() or not weights.any():
        raise HetCompError(f"teacher_weights {weights.tolist()} must be {n_teachers} non-negative numbers, not all 0")
    return weights


def _contains(rows: CSR, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """bool, items' shape: whether items[r, j] is in row users[r] of `rows` (−1 and ids >= n_items are not)."""
    n = np.int64(max(int(items.max(initial=0)), int(rows.indices.max(initial=0))) + 1)
    keys = rows.row_ids().astype(np.int64) * n + rows.indices
    return np.isin(users[:, None].astype(np.int64) * n + items.astype(np.int64), keys) & (items >= 0)
