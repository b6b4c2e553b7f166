"""MF: matrix factorisation trained with BPR (Rendle et al. 2009). The distillation student is the same network,
fitted by the distiller instead (`hetcomp_tf/distill/student.py`)."""

from __future__ import annotations

import tensorflow as tf

from hetcomp_tf.config import MFConfig
from hetcomp_tf.data.sampling import bpr_loss
from hetcomp_tf.models.base import PairwiseTeacher, squared_norm, triples

INIT_STD = 0.1


class MF(PairwiseTeacher):
    """score(u, i) = U[u] · V[i], U float32 [n_users, dim] and V float32 [n_items, dim].

    Args:
        data: the Dataset it trains on.
        cfg: its `MFConfig` (dim, n_negatives, batch_size, l2).
        seed: seeds the initialisation and the sampling.
    """

    name = "MF"

    def __init__(self, data, cfg: MFConfig, seed: int = 0):
        super().__init__(data, cfg, seed)
        self.user_embedding = tf.keras.layers.Embedding(self.n_users, cfg.dim, self.initializer(INIT_STD, 1))
        self.item_embedding = tf.keras.layers.Embedding(self.n_items, cfg.dim, self.initializer(INIT_STD, 2))
        self.user_embedding.build(None)  # weights exist before any call, so they can be loaded or assigned
        self.item_embedding.build(None)

    def _scores(self, user_ids):
        return tf.matmul(self.user_embedding(user_ids), self.item_embedding.embeddings, transpose_b=True)

    def serving_tables(self):
        """U and V as they are: the scores are their rows' dot products.

        Returns:
            (U float32 [n_users, dim], V float32 [n_items, dim]).
        """
        return self.user_embedding.embeddings.numpy(), self.item_embedding.embeddings.numpy()

    def compute_loss(self, inputs, training: bool = False, share=None):
        """BPR, a mean over the triples, plus L2 on their rows; a replica's share: its triples' part of both.

        Args and Returns as `PairwiseTeacher.compute_loss`.
        """
        share = share if share is not None else self.share(inputs)
        user_ids, positive_ids, negative_ids = triples(inputs, share)
        users = self.user_embedding(user_ids)  # [b, d]
        positives = self.item_embedding(positive_ids)  # [b, d]
        negatives = self.item_embedding(negative_ids)  # [b, n, d]
        loss = share.part_of_mean(
            bpr_loss(tf.reduce_sum(users * positives, -1), tf.einsum("bd,bnd->bn", users, negatives))
        )
        return loss + self.cfg.l2 * squared_norm(users, positives, negatives) / share.size
