"""Negative sampling and the BPR loss, shared by the pairwise teachers (MF, ML, DL, GNN) and wo_kd's student.

Both look a (user, item) pair up in one membership table, the sorted keys user · n_items + item of the train
interactions (`interaction_keys`, `is_observed`), so the cost follows the pairs asked about, not the catalogue.
They draw in different places, so there are two draws over that table: the teachers draw in NumPy once per epoch,
resampling until every negative is unobserved (`sample_negatives`); the student draws inside its compiled step,
with a fixed number of rejection rounds so the step stays on the device (`sample_unobserved`).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from hetcomp_tf.data.dataset import CSR

NEGATIVE_DRAWS = 8  # the student's rejection rounds: a pair is dropped only if all hit train items (p = density^8)


def interaction_keys(train: CSR, n_items: int) -> np.ndarray:
    """The membership table of the train interactions, for `is_observed`.

    Args:
        train: the train split.
        n_items: the catalogue's size.

    Returns:
        int64 [nnz], ascending: user · n_items + item of every train interaction.
    """
    return np.sort(train.row_ids().astype(np.int64) * int(n_items) + train.indices.astype(np.int64))


def is_observed(train_keys, users, items, n_items) -> tf.Tensor:
    """Whether each (user, item) is a train interaction, by a binary search of its key in `train_keys`.

    TF ops: eager on arrays or inside a graph.

    Args:
        train_keys: int64 [nnz] `interaction_keys`.
        users: int user ids, any shape that broadcasts against `items`.
        items: int item ids.
        n_items: the catalogue's size.

    Returns:
        bool, shaped as `users` broadcast against `items`.
    """
    keys = tf.cast(users, tf.int64) * tf.cast(n_items, tf.int64) + tf.cast(items, tf.int64)
    flat = tf.reshape(keys, [-1])
    at = tf.searchsorted(train_keys, flat, side="left")
    nearest = tf.gather(train_keys, tf.minimum(at, tf.size(train_keys, out_type=at.dtype) - 1))
    return tf.reshape(tf.equal(nearest, flat), tf.shape(keys))


def sample_negatives(
    rng: np.random.Generator, train_keys: np.ndarray, users: np.ndarray, n_negatives: int, n_items: int
) -> np.ndarray:
    """Negatives for the pairwise teachers: uniform over each user's unobserved items, exactly (redrawn until
    no draw hits a train item).

    Args:
        rng: the draws' generator.
        train_keys: int64 [nnz] `interaction_keys`.
        users: int [P] the user of each pair.
        n_negatives: draws per pair.
        n_items: the catalogue's size.

    Returns:
        int32 [P, n_negatives].
    """
    negatives = rng.integers(0, n_items, size=(users.size, n_negatives), dtype=np.int32)
    observed = is_observed(train_keys, users[:, None], negatives, n_items).numpy()
    while observed.any():
        negatives[observed] = rng.integers(0, n_items, size=int(observed.sum()), dtype=np.int32)
        observed[observed] = is_observed(
            train_keys, np.broadcast_to(users[:, None], negatives.shape)[observed], negatives[observed], n_items
        ).numpy()
    return negatives


def sample_unobserved(train_keys, users: tf.Tensor, n_items, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """One item per entry of `users`, uniform over that user's unobserved items, by rejection inside a graph.

    An accepted draw is exactly uniform over the user's unobserved items.

    Args:
        train_keys: int64 [nnz] `interaction_keys`.
        users: int32 [P] the user of each pair.
        n_items: the catalogue's size.
        seed: int64 [2] the stateless draw's seed.

    Returns:
        (items int32 [P], found bool [P]): found is False where all NEGATIVE_DRAWS draws were train items; drop
        those pairs.
    """
    draws = tf.random.stateless_uniform(
        tf.stack([NEGATIVE_DRAWS, tf.size(users)]), seed, 0, tf.cast(n_items, tf.int64), tf.int64
    )
    observed = is_observed(train_keys, users[None, :], draws, n_items)  # [draws, P]
    first = tf.argmin(tf.cast(observed, tf.int32), axis=0, output_type=tf.int32)  # first unobserved draw
    items = tf.gather(tf.transpose(draws), first, batch_dims=1)
    return tf.cast(items, tf.int32), tf.logical_not(tf.reduce_all(observed, axis=0))


def bpr_loss(positive: tf.Tensor, negative: tf.Tensor, weights: tf.Tensor | None = None) -> tf.Tensor:
    """Mean BPR −log σ(s_ui − s_uj) over every (positive, negative) pair.

    Args:
        positive: float [b] scores of observed items.
        negative: float [b, n] scores of sampled items.
        weights: bool [b], or None; given, the mean is over the rows that are True only (the pairs whose negative
            was found).

    Returns:
        float scalar.
    """
    losses = tf.nn.softplus(negative - positive[:, None])
    if weights is None:
        return tf.reduce_mean(losses)
    kept = tf.broadcast_to(weights[:, None], tf.shape(losses))
    return tf.reduce_sum(tf.where(kept, losses, 0.0)) / tf.maximum(tf.reduce_sum(tf.cast(kept, tf.float32)), 1.0)


def pair_scores(user_vectors: tf.Tensor, items_table: tf.Tensor, items: tf.Tensor) -> tf.Tensor:
    """The MF scores of only the pairs' items, not the catalogue's: user_vectors[p] · V[items[p, ...]].

    Args:
        user_vectors: float [P, d] the user vector of each pair.
        items_table: float [n_items, d] V.
        items: int32 [P] or [P, m] item ids.

    Returns:
        float, shaped as `items`.
    """
    if items.shape.rank == 2:
        user_vectors = user_vectors[:, None, :]
    return tf.reduce_sum(user_vectors * tf.gather(items_table, items), axis=-1)


class BPRLoss(tf.keras.losses.Loss):
    """wo_kd's loss in the trainer's call shape, loss(targets, scores), like the distillation losses.

    Its rows are pairs, not users, so it reduces itself: the mean BPR over the found pairs.

    Args:
        score_clip: scores are clipped to ±score_clip, as the distilled students' are.
        name: the loss's name.

    Call arguments:
        y_true: bool [P], the pairs whose negative was found.
        y_pred: (float [P] each pair's train item's score, float [P, n] its sampled negatives' scores).

    Returns a float32 scalar when called.

    Example:
        Three pairs with two negatives each; the third pair's negatives were not found:

        >>> found = tf.constant([True, True, False])
        >>> positive = tf.constant([2.0, 0.5, 1.0])
        >>> negative = tf.constant([[1.0, 0.0], [1.5, -1.0], [0.0, 0.0]])
        >>> round(float(BPRLoss(score_clip=40.0)(found, (positive, negative))), 4)
        0.4887
    """

    def __init__(self, score_clip: float, name: str = "bpr"):
        super().__init__(reduction=tf.keras.losses.Reduction.NONE, name=name)
        self.score_clip = float(score_clip)

    def call(self, y_true, y_pred):
        """`bpr_loss` of the clipped scores over the found pairs.

        Args:
            y_true: bool [P], the pairs whose negative was found.
            y_pred: (float [P] positive scores, float [P, n] negative scores).

        Returns:
            float32 scalar.
        """
        positive, negative = (tf.clip_by_value(s, -self.score_clip, self.score_clip) for s in y_pred)
        return bpr_loss(positive, negative, weights=y_true)
