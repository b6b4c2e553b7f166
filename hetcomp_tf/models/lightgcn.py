"""GNN: LightGCN (He et al. 2020): embeddings smoothed over the user-item graph, no transforms or
non-linearities; the final embedding is the mean of all layers' embeddings, trained with BPR."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from hetcomp_tf.config import LightGCNConfig
from hetcomp_tf.data.dataset import CSR
from hetcomp_tf.data.sampling import bpr_loss
from hetcomp_tf.models.base import PairwiseTeacher, squared_norm, triples


def normalized_adjacency(train: CSR, n_users: int, n_items: int) -> tf.SparseTensor:
    """D^-1/2 A D^-1/2 of the bipartite graph A = [[0, R], [Rᵀ, 0]] over n_users + n_items nodes (items offset
    by n_users), what LightGCN propagates over; R is the binary train matrix. Isolated nodes keep an all-zero row.

    Args:
        train: the train interactions, one row per user.
        n_users: the users.
        n_items: the items.

    Returns:
        float32 SparseTensor [n_users + n_items, n_users + n_items], indices in canonical order.
    """
    users = train.row_ids()
    items = train.indices.astype(np.int64) + n_users
    degree = np.bincount(np.concatenate([users, items]), minlength=n_users + n_items).astype(np.float64)
    weight = (1.0 / np.sqrt(degree[users] * degree[items])).astype(np.float32)
    rows, cols = np.concatenate([users, items]), np.concatenate([items, users])
    adjacency = tf.SparseTensor(np.stack([rows, cols], 1), np.concatenate([weight, weight]), [n_users + n_items] * 2)
    return tf.sparse.reorder(adjacency)


class LightGCN(PairwiseTeacher):
    """score(u, i) = e_u · e_i with e = mean_k Â^k E⁰, k = 0..cfg.n_layers, E⁰ the ego embeddings.

    Args:
        data: the Dataset it trains on.
        cfg: its `LightGCNConfig` (dim, n_layers, n_negatives, batch_size, l2).
        seed: seeds the initialisation and the sampling.
    """

    name = "GNN"

    def __init__(self, data, cfg: LightGCNConfig, seed: int = 0):
        super().__init__(data, cfg, seed)
        self.n_layers = cfg.n_layers
        self.adjacency = normalized_adjacency(data.train, self.n_users, self.n_items)
        self.user_embedding = tf.keras.layers.Embedding(self.n_users, cfg.dim, self.initializer(0.1, 1))
        self.item_embedding = tf.keras.layers.Embedding(self.n_items, cfg.dim, self.initializer(0.1, 2))
        self.user_embedding.build(None)
        self.item_embedding.build(None)

    def propagate(self) -> tuple[tf.Tensor, tf.Tensor]:
        """The final embeddings: the mean of the ego embeddings and their propagations over the graph.

        Returns:
            (users float32 [n_users, dim], items float32 [n_items, dim]).
        """
        layer = tf.concat([self.user_embedding.embeddings, self.item_embedding.embeddings], 0)
        total = layer
        for _ in range(self.n_layers):
            layer = tf.sparse.sparse_dense_matmul(self.adjacency, layer)
            total += layer
        final = total / (self.n_layers + 1)
        return final[: self.n_users], final[self.n_users :]

    def _scores(self, user_ids):
        users, items = self.propagate()
        return tf.matmul(tf.gather(users, user_ids), items, transpose_b=True)

    def serving_tables(self):
        """The propagation folded in: the final embeddings, propagated once, serve as plain MF tables.

        Returns:
            (users float32 [n_users, dim], items float32 [n_items, dim]), `propagate`'s.
        """
        users, items = self.propagate()
        return users.numpy(), items.numpy()

    def compute_loss(self, inputs, training: bool = False, share=None):
        """BPR on the propagated embeddings, a mean over the triples, plus L2 on their ego embeddings. A replica's
        share is its triples' part of both; the propagation is not split: every replica propagates the whole
        graph (as one device does for every batch) and its gradient flows back through it from the share's rows
        only, so the replicas' gradients still sum to the batch's, at one propagation per replica per step.

        Args and Returns as `PairwiseTeacher.compute_loss`.
        """
        share = share if share is not None else self.share(inputs)
        user_ids, positive_ids, negative_ids = triples(inputs, share)
        users, items = self.propagate()
        u = tf.gather(users, user_ids)
        positive = tf.reduce_sum(u * tf.gather(items, positive_ids), -1)
        negative = tf.einsum("bd,bnd->bn", u, tf.gather(items, negative_ids))
        layer0 = [
            self.user_embedding(user_ids),
            self.item_embedding(positive_ids),
            self.item_embedding(negative_ids),
        ]  # LightGCN regularises the ego embeddings only
        return share.part_of_mean(bpr_loss(positive, negative)) + self.cfg.l2 * squared_norm(*layer0) / share.size
