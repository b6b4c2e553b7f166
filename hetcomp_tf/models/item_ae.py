"""I-AE: item-based denoising autoencoder (I-AutoRec style, Sedhain et al. 2015, for implicit feedback): an
item's train vector over users is reconstructed with a per-entry sigmoid likelihood, observed entries
weighted by `cfg.positive_weight` (without it the few positives per item leave training stuck near the
bias-only solution); score(u, i) is the reconstruction logit of entry (i, u)."""

from __future__ import annotations

import tensorflow as tf

from hetcomp_tf.config import ItemAEConfig
from hetcomp_tf.data.dataset import CSR
from hetcomp_tf.models.base import (
    Teacher,
    apply_to_sparse,
    dense_tower,
    kernels_of,
    sparse_rows,
    squared_norm,
    stateless_value_dropout,
)


class ItemAE(Teacher):
    """Encoder n_users → cfg.hidden (tanh) → cfg.dim (tanh); decoder mirrors it back to n_users logits.

    Args:
        data: the Dataset it trains on (its train matrix, transposed, gives the inputs).
        cfg: its `ItemAEConfig` (dim, hidden, dropout, positive_weight, l2, ...).
        seed: seeds the initialisation, the batches' order and the in-graph randomness.
    """

    name = "I-AE"

    def __init__(self, data, cfg: ItemAEConfig, seed: int = 0):
        super().__init__(data, cfg, seed)
        self.item_rows = CSR.from_pairs(data.train.indices, data.train.row_ids(), self.n_items)  # item → users
        self.item_rows_ragged = self.item_rows.to_ragged()
        self.encoder = dense_tower(self.n_users, (*cfg.hidden, cfg.dim), "tanh", "tanh", seed * 1000 + 1)
        self.decoder = dense_tower(cfg.dim, (*reversed(cfg.hidden), self.n_users), "tanh", None, seed * 1000 + 100)

    def id_axes(self):
        """The encoder's input rows and the decoder's output columns (and biases) are users.

        Returns:
            [(first encoder kernel, 0, "user"), (output kernel, 1, "user"), (output bias, 0, "user")].
        """
        output = self.decoder.layers[-1]
        return [(self.encoder.layers[0].kernel, 0, "user"), (output.kernel, 1, "user"), (output.bias, 0, "user")]

    def train_batches(self, epoch: int) -> tf.data.Dataset:
        """The items with train users once each, in an order seeded by `seed + epoch` (`Teacher.row_batches`).

        Args:
            epoch: the 0-based epoch.

        Returns:
            A dataset of {"ids": int32 [batch] item ids, "seed": int64 [2]}.
        """
        return self.row_batches(self.item_rows, epoch)

    def _hidden(self, item_ids, training: bool = False, seed=None, share=None) -> tf.Tensor:
        """Last decoder hidden layer [b, h] of items' (optionally corrupted) vectors, of only a `share`'s rows if
        given: dropout is drawn for all of `item_ids`, so a row's is the same on any replica."""
        rows = sparse_rows(self.item_rows_ragged, item_ids, self.n_users)
        if training:
            rows = stateless_value_dropout(rows, self.cfg.dropout, seed)
        if share is not None:
            rows = share.sparse_rows(rows)
        hidden = apply_to_sparse(self.encoder, rows)
        for layer in self.decoder.layers[:-1]:
            hidden = layer(hidden)
        return hidden

    def _scores(self, user_ids):
        """Reconstruction of every item restricted to the requested users' columns: all items are encoded once
        and only the output layer's columns of those users are applied."""
        output = self.decoder.layers[-1]
        hidden = self._hidden(tf.range(self.n_items))
        columns = tf.matmul(hidden, tf.gather(output.kernel, user_ids, axis=1))  # [n_items, b]
        return tf.transpose(columns) + tf.gather(output.bias, user_ids)[:, None]

    def reconstruct(self, item_ids, training: bool = False, seed=None, share=None) -> tf.Tensor:
        """The reconstruction of items' train vectors over users, what the loss compares with those vectors.

        Args:
            item_ids: int32 [b] item ids.
            training: corrupt the inputs by dropout.
            seed: int [2], the dropout's stateless seed (used when training).
            share: only these rows of `item_ids` are reconstructed (dropout is drawn for all of them); None: all.

        Returns:
            float32 [b, n_users] logits ([share rows, n_users] with a share).
        """
        return self.decoder.layers[-1](self._hidden(item_ids, training, seed, share))

    def compute_loss(self, inputs, training: bool = False, share=None):
        """Per item its weighted reconstruction cross-entropy, a mean over the batch's items, plus L2 on the
        kernels. A replica's share: its items' part of the mean (dropout drawn for the global batch, then sliced)
        and 1/replicas of the L2 term.

        Args:
            inputs: a batch of `train_batches`: {"ids": int32 [B] item ids, "seed": int64 [2]}.
            training: corrupt the inputs by dropout.
            share: the replica's items (`Share`); None: the whole batch.

        Returns:
            float32 scalar; the replicas' values sum to the whole batch's.
        """
        share = share if share is not None else self.share(inputs)
        ids = inputs["ids"]
        logits = self.reconstruct(ids, training, inputs.get("seed"), share)
        targets = tf.sparse.to_dense(sparse_rows(self.item_rows_ragged, share.rows(ids), self.n_users))
        loss = tf.reduce_sum(tf.nn.weighted_cross_entropy_with_logits(targets, logits, self.cfg.positive_weight))
        loss /= share.size
        return loss + share.common(self.cfg.l2 * squared_norm(*kernels_of(self.encoder, self.decoder)))
