"""Full-ranking top-K metrics (Recall@K, NDCG@K) in batched TensorFlow, as in the HetComp paper's evaluation:
every item is ranked, minus the items the protocol excludes (for test: train + valid; for valid: train + test).

Recall@K = hits in the top K / |truth|; NDCG@K uses binary relevance with IDCG over min(|truth|, K) positions.
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from hetcomp_tf.config import METRIC_KS
from hetcomp_tf.data.dataset import CSR, Dataset, rows_to_mask
from hetcomp_tf.errors import HetCompError

_RAGGED_ROWS = tf.RaggedTensorSpec([None, None], tf.int32, ragged_rank=1, row_splits_dtype=tf.int64)


def masked_topk(scores: tf.Tensor, exclude_mask: tf.Tensor, k: int) -> tf.Tensor:
    """Each row's k best items that are not excluded, best first.

    Args:
        scores: float [b, n_items].
        exclude_mask: bool [b, n_items], True for items never ranked.
        k: how many items per row.

    Returns:
        int32 [b, k]; −1 fills the slots a row cannot fill (fewer than k items left, or k > n_items).
    """
    scores = tf.cast(scores, tf.float32)
    n_items = tf.shape(scores)[1]
    kept_k = tf.minimum(k, n_items)
    masked = tf.where(exclude_mask, tf.constant(-np.inf, tf.float32), scores)
    ids = tf.math.top_k(masked, k=kept_k, sorted=True).indices
    excluded = tf.gather(exclude_mask, ids, batch_dims=1)
    ids = tf.where(excluded, -1, ids)
    return tf.pad(ids, [[0, 0], [0, k - kept_k]], constant_values=-1)


def ranking_metrics(scores, exclude_mask, truth_mask, ks=METRIC_KS) -> dict[str, tf.Tensor]:
    """Per-user Recall@k and NDCG@k of full rankings; excluded items are never ranked.

    Args:
        scores: float [b, n_items].
        exclude_mask: bool [b, n_items], True for items never ranked.
        truth_mask: bool [b, n_items], True for the relevant items.
        ks: the cut-offs.

    Returns:
        {"recall@k", "ndcg@k" for each k: float32 [b]}; users with an empty truth row get 0 (callers averaging
        over users skip them, see `evaluate`).
    """
    ks = tuple(int(k) for k in ks)
    ids = masked_topk(scores, exclude_mask, max(ks))
    hits = tf.gather(truth_mask, tf.maximum(ids, 0), batch_dims=1) & (ids >= 0)
    return metrics_of_hits(tf.cast(hits, tf.float32), tf.reduce_sum(tf.cast(truth_mask, tf.float32), axis=1), ks)


def metrics_of_hits(hits, n_truth, ks=METRIC_KS) -> dict[str, tf.Tensor]:
    """Per-user Recall@k and NDCG@k of ranked lists whose relevant places are known.

    Args:
        hits: float32 [b, max(ks)], 1 where the item at that rank is relevant.
        n_truth: float32 [b], each user's relevant items.
        ks: the cut-offs.

    Returns:
        {"recall@k", "ndcg@k" for each k: float32 [b]}; users without relevant items get 0.
    """
    ks = tuple(int(k) for k in ks)
    k_max = max(ks)
    discount = 1.0 / tf.math.log(tf.range(2, k_max + 2, dtype=tf.float32)) * tf.math.log(2.0)
    ideal_dcg = tf.concat([[0.0], tf.cumsum(discount)], axis=0)  # ideal_dcg[n] = DCG of n hits on top
    has_truth = n_truth > 0
    safe_truth = tf.maximum(n_truth, 1.0)
    out = {}
    for k in ks:
        top = hits[:, :k]
        dcg = tf.reduce_sum(top * discount[:k], axis=1)
        idcg = tf.gather(ideal_dcg, tf.cast(tf.minimum(n_truth, float(k)), tf.int32))
        out[f"recall@{k}"] = tf.where(has_truth, tf.reduce_sum(top, axis=1) / safe_truth, 0.0)
        out[f"ndcg@{k}"] = tf.where(has_truth, dcg / tf.maximum(idcg, 1e-12), 0.0)
    return out


@functools.cache
def _batch_metric_sums(ks: tuple[int, ...]):
    """One traced function per `ks`: the fixed signature lets batches of any size reuse the trace."""

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None], tf.float32),
            tf.TensorSpec([None], tf.int32),
            _RAGGED_ROWS,
            _RAGGED_ROWS,
        ]
    )
    def sums(scores, user_ids, exclude_rows, truth_rows):
        n_items = tf.shape(scores)[1]
        per_user = ranking_metrics(
            scores, rows_to_mask(exclude_rows, user_ids, n_items), rows_to_mask(truth_rows, user_ids, n_items), ks
        )
        return {name: tf.reduce_sum(values) for name, values in per_user.items()}

    return sums


def split_rows(data: Dataset, split: str) -> tuple[CSR, CSR]:
    """The protocol's rows for evaluating on `split`: (truth, excluded). For "test" the user's train and valid items
    are excluded from the ranking; for "valid", train and test items.

    Raises:
        HetCompError: an unknown split.
    """
    if split == "test":
        return data.test, data.train.union(data.valid)
    if split == "valid":
        return data.valid, data.train.union(data.test)
    raise HetCompError(f"cannot evaluate on split {split!r}: choose 'valid' or 'test'")


def evaluated_users(truth: CSR, split: str, dataset: str, users=None) -> np.ndarray:
    """int32 [n], sorted: the users an evaluation averages over, those of `users` (None: all) with truth items.

    Raises:
        HetCompError: no such user.
    """
    with_truth = truth.lengths() > 0
    if users is not None:
        users = np.asarray(users, np.int64)
        users = np.unique(users[with_truth[users]]).astype(np.int32)
    else:
        users = np.flatnonzero(with_truth).astype(np.int32)
    if len(users) == 0:
        raise HetCompError(f"dataset {dataset!r}: no user has {split} items to evaluate on")
    return users


def valid_user_sample(data: Dataset, count: int, seed: int = 0) -> np.ndarray | None:
    """A fixed seeded sample of the users with valid items, for `evaluate(users=...)` where a full pass costs too much
    (a teacher's early stopping, `TeacherConfig.eval_users`; the ensemble's fit, `DistillConfig.fit_users`).

    Args:
        data: the dataset whose valid users are sampled.
        count: the sample's size; 0 for every valid user.
        seed: the sample's seed.

    Returns:
        int32 [count] user ids, sorted; None (every valid user) when `count` is 0 or not below their number.
    """
    valid_users = np.flatnonzero(data.valid.lengths() > 0)
    if not 0 < count < valid_users.size:
        return None
    return np.sort(np.random.default_rng(seed).choice(valid_users, count, replace=False)).astype(np.int32)


def evaluate(
    score_fn, data: Dataset, split: str = "test", ks=METRIC_KS, batch_size: int = 128, users: np.ndarray | None = None
) -> dict[str, float]:
    """Mean Recall@K / NDCG@K over the users whose `split` row is non-empty. Batches of 128 users keep the
    [batch, n_items] masks and top-k in cache, which larger batches do not.

    Args:
        score_fn: user_ids int32 [b] -> float [b, n_items], the model's scores.
        data: the dataset. For "test" the user's train and valid items are excluded from the ranking; for
            "valid", train and test items.
        split: "valid" or "test".
        ks: the cut-offs, positive.
        batch_size: users scored at a time.
        users: int [n], evaluate only these users (those of them with `split` items), e.g. a fixed sample for
            cheaper early stopping; None: every user.

    Returns:
        {"recall@k", "ndcg@k" for each k ascending: the mean over the evaluated users}.

    Raises:
        HetCompError: an unknown split, a cut-off below 1, or no user with `split` items.
    """
    truth, exclude = split_rows(data, split)
    ks = tuple(sorted({int(k) for k in ks}))
    if not ks or ks[0] < 1:
        raise HetCompError(f"metric cut-offs must be positive integers, got {ks}")
    users = evaluated_users(truth, split, data.name, users)
    fn = _batch_metric_sums(ks)
    exclude_rows, truth_rows = exclude.to_ragged(), truth.to_ragged()
    totals = None
    for start in range(0, len(users), batch_size):
        batch = tf.constant(users[start : start + batch_size])
        scores = tf.cast(score_fn(batch), tf.float32)
        sums = fn(scores, batch, exclude_rows, truth_rows)
        totals = sums if totals is None else {name: totals[name] + sums[name] for name in totals}
    order = [f"{m}@{k}" for k in ks for m in ("recall", "ndcg")]
    return {name: float(totals[name]) / len(users) for name in order}
