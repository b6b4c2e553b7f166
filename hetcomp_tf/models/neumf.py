"""DL: NeuMF (He et al. 2017): a GMF tower and an MLP tower fused by one output layer, trained with
binary cross-entropy on observed vs sampled items."""

from __future__ import annotations

import tensorflow as tf

from hetcomp_tf.config import NeuMFConfig
from hetcomp_tf.models.base import PairwiseTeacher, dense_tower, squared_norm, triples

# Pairs scored per chunk in score_all: bounds the [chunk, n_items, hidden] activations to ~100 MB.
_PAIRS_PER_CHUNK = 200_000


class NeuMF(PairwiseTeacher):
    """logit(u, i) = h · [p_u ⊙ q_i ; MLP([p'_u ; q'_i])]; cfg.mlp_layers are the MLP's hidden sizes.

    Args:
        data: the Dataset it trains on.
        cfg: its `NeuMFConfig` (dim, mlp_layers, n_negatives, batch_size, l2).
        seed: seeds the initialisation and the sampling.
    """

    name = "DL"

    def __init__(self, data, cfg: NeuMFConfig, seed: int = 0):
        super().__init__(data, cfg, seed)
        dim = cfg.dim
        self.user_embedding = tf.keras.layers.Embedding(self.n_users, dim, self.initializer(0.01, 1))  # GMF
        self.item_embedding = tf.keras.layers.Embedding(self.n_items, dim, self.initializer(0.01, 2))
        self.mlp_user_embedding = tf.keras.layers.Embedding(self.n_users, dim, self.initializer(0.01, 3))
        self.mlp_item_embedding = tf.keras.layers.Embedding(self.n_items, dim, self.initializer(0.01, 4))
        for table in (self.user_embedding, self.item_embedding, self.mlp_user_embedding, self.mlp_item_embedding):
            table.build(None)
        self.mlp = dense_tower(2 * dim, cfg.mlp_layers, "relu", "relu", seed * 1000 + 5)
        self.output_layer = dense_tower(dim + cfg.mlp_layers[-1], (1,), None, None, seed * 1000 + 50)

    def id_axes(self):
        """The rows of the GMF and the MLP embedding tables, users' and items'."""
        return [
            *super().id_axes(),
            (self.mlp_user_embedding.embeddings, 0, "user"),
            (self.mlp_item_embedding.embeddings, 0, "item"),
        ]

    def logits(self, users: tf.Tensor, items: tf.Tensor) -> tf.Tensor:
        """The model as defined, the concatenating MLP applied per pair: what training differentiates.

        Args:
            users: int32 [b] user ids.
            items: int32 [b, n] item ids, n per user.

        Returns:
            float32 [b, n] logits.
        """
        n = tf.shape(items)[1]
        p_gmf = tf.repeat(self.user_embedding(users)[:, None], n, axis=1)
        p_mlp = tf.repeat(self.mlp_user_embedding(users)[:, None], n, axis=1)
        gmf = p_gmf * self.item_embedding(items)
        mlp = self.mlp(tf.concat([p_mlp, self.mlp_item_embedding(items)], -1))
        return tf.squeeze(self.output_layer(tf.concat([gmf, mlp], -1)), -1)

    def _scores(self, user_ids):
        """All items per user without the [b·n_items, 2d] concatenation: the first MLP layer splits as
        W·[p; q] = W_u p + W_i q, so W_i q is computed once per item and W_u p once per user."""
        dim = self.cfg.dim
        first, *rest = self.mlp.layers
        out_kernel, out_bias = self.output_layer.layers[0].kernel, self.output_layer.layers[0].bias
        per_user = tf.matmul(self.mlp_user_embedding(user_ids), first.kernel[:dim]) + first.bias  # [b, h0]
        per_item = tf.matmul(self.mlp_item_embedding.embeddings, first.kernel[dim:])  # [n_items, h0]
        gmf = tf.matmul(
            self.user_embedding(user_ids) * out_kernel[:dim, 0], self.item_embedding.embeddings, transpose_b=True
        )  # [b, n_items]

        def mlp_scores(chunk):  # chunk [c, h0] -> [c, n_items]
            hidden = tf.nn.relu(chunk[:, None, :] + per_item[None])
            for layer in rest:
                hidden = layer(hidden)
            return tf.squeeze(tf.matmul(hidden, out_kernel[dim:]), -1)

        chunk = max(1, _PAIRS_PER_CHUNK // self.n_items)
        b = tf.shape(user_ids)[0]
        padded = tf.pad(per_user, [[0, (-b) % chunk], [0, 0]])
        chunks = tf.reshape(padded, [-1, chunk, per_user.shape[-1]])
        mlp = tf.map_fn(mlp_scores, chunks, fn_output_signature=tf.TensorSpec([chunk, self.n_items], tf.float32))
        return gmf + tf.reshape(mlp, [-1, self.n_items])[:b] + out_bias

    def compute_loss(self, inputs, training: bool = False, share=None):
        """Binary cross-entropy, a mean over the triples' 1 + n (user, item) pairs (every triple has as many), plus
        L2 on their rows; a replica's share: its triples' part of both (the towers are shared weights, their
        gradients summed over the replicas).

        Args and Returns as `PairwiseTeacher.compute_loss`.
        """
        share = share if share is not None else self.share(inputs)
        users, positives, negatives = triples(inputs, share)
        items = tf.concat([positives[:, None], negatives], 1)  # [b, 1 + n]
        labels = tf.concat([tf.ones_like(positives[:, None]), tf.zeros_like(negatives)], 1)
        loss = share.part_of_mean(
            tf.reduce_mean(
                tf.nn.sigmoid_cross_entropy_with_logits(tf.cast(labels, tf.float32), self.logits(users, items))
            )
        )
        embeddings = [
            self.user_embedding(users),
            self.mlp_user_embedding(users),
            self.item_embedding(items),
            self.mlp_item_embedding(items),
        ]
        return loss + self.cfg.l2 * squared_norm(*embeddings) / share.size
