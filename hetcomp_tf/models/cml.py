"""ML: collaborative metric learning (Hsieh et al. 2017): users and items in one Euclidean space."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from hetcomp_tf.config import CMLConfig
from hetcomp_tf.models.base import PairwiseTeacher, squared_norm, triples


class CML(PairwiseTeacher):
    """score(u, i) = −‖u − v_i‖². Loss: hinge on squared distances against the closest of the sampled negatives,
    weighted by log(1 + estimated rank) as in CML's WARP approximation; all points kept in the unit ball.

    Args:
        data: the Dataset it trains on.
        cfg: its `CMLConfig` (dim, margin, n_negatives, batch_size, l2).
        seed: seeds the initialisation and the sampling.
    """

    name = "ML"

    def __init__(self, data, cfg: CMLConfig, seed: int = 0):
        super().__init__(data, cfg, seed)
        stddev = 1.0 / math.sqrt(cfg.dim)  # initial norms ≈ 1: points start spread over the ball
        self.user_embedding = tf.keras.layers.Embedding(self.n_users, cfg.dim, self.initializer(stddev, 1))
        self.item_embedding = tf.keras.layers.Embedding(self.n_items, cfg.dim, self.initializer(stddev, 2))
        self.user_embedding.build(None)
        self.item_embedding.build(None)
        self.post_step()

    def _scores(self, user_ids):
        users = self.user_embedding(user_ids)
        items = self.item_embedding.embeddings
        cross = tf.matmul(users, items, transpose_b=True)
        return 2.0 * cross - tf.reduce_sum(tf.square(users), 1)[:, None] - tf.reduce_sum(tf.square(items), 1)[None]

    def serving_tables(self):
        """−‖u − v‖² = [2u, −1, −‖u‖²] · [v, ‖v‖², 1]: the exact scores (not only their order per user) as a dot
        product of tables two columns wider than the embeddings.

        Returns:
            (users float32 [n_users, dim + 2], items float32 [n_items, dim + 2]).
        """
        users, items = self.user_embedding.embeddings.numpy(), self.item_embedding.embeddings.numpy()
        user_norms = np.sum(np.square(users), axis=1, keepdims=True)
        item_norms = np.sum(np.square(items), axis=1, keepdims=True)
        return (
            np.hstack([2.0 * users, -np.ones_like(user_norms), -user_norms]),
            np.hstack([items, item_norms, np.ones_like(item_norms)]),
        )

    def compute_loss(self, inputs, training: bool = False, share=None):
        """The weighted hinge, a mean over the triples (each triple's rank estimate is its own), plus L2 on their
        rows; a replica's share: its triples' part of both.

        Args and Returns as `PairwiseTeacher.compute_loss`.
        """
        share = share if share is not None else self.share(inputs)
        user_ids, positive_ids, negative_ids = triples(inputs, share)
        users = self.user_embedding(user_ids)  # [b, d]
        positives = self.item_embedding(positive_ids)  # [b, d]
        negatives = self.item_embedding(negative_ids)  # [b, n, d]
        d_pos = tf.reduce_sum(tf.square(users - positives), -1)  # [b]
        d_neg = tf.reduce_sum(tf.square(users[:, None] - negatives), -1)  # [b, n]
        violations = self.cfg.margin + d_pos[:, None] - d_neg
        impostors = tf.reduce_sum(tf.cast(violations > 0, tf.float32), 1)
        rank = tf.floor(impostors * self.n_items / tf.cast(tf.shape(d_neg)[1], tf.float32))
        hinge = tf.nn.relu(self.cfg.margin + d_pos - tf.reduce_min(d_neg, 1))
        loss = share.part_of_mean(tf.reduce_mean(tf.math.log1p(rank) * hinge))
        return loss + self.cfg.l2 * squared_norm(users, positives, negatives) / share.size

    def post_step(self) -> None:
        """Projects every user/item vector back into the unit ball (CML's norm constraint), once per step on the
        synchronised weights."""
        for table in (self.user_embedding.embeddings, self.item_embedding.embeddings):
            table.assign(tf.clip_by_norm(table, 1.0, axes=[1]))
