"""AE: Mult-VAE (Liang et al. 2018): a user's train vector is encoded to a Gaussian latent and decoded to a
multinomial over items; input dropout, KL weight annealed linearly to `kl_cap` over `kl_anneal_epochs`."""

from __future__ import annotations

import tensorflow as tf

from hetcomp_tf.config import VAEConfig
from hetcomp_tf.models.base import (
    Teacher,
    apply_to_sparse,
    dense_tower,
    kernels_of,
    sparse_rows,
    squared_norm,
    stateless_value_dropout,
)


class MultVAE(Teacher):
    """Encoder n_items → cfg.hidden (tanh) → 2·cfg.dim (μ, log σ²); decoder mirrors it back to n_items logits.
    score_all = decoder logits of μ(user's full train vector), no dropout.

    Args:
        data: the Dataset it trains on (its train rows are the inputs).
        cfg: its `VAEConfig` (dim, hidden, dropout, kl_cap, kl_anneal_epochs, l2, ...).
        seed: seeds the initialisation, the batches' order and the in-graph randomness.
    """

    name = "AE"

    def __init__(self, data, cfg: VAEConfig, seed: int = 0):
        super().__init__(data, cfg, seed)
        self.train_rows = data.train.to_ragged()
        self.encoder = dense_tower(self.n_items, (*cfg.hidden, 2 * cfg.dim), "tanh", None, seed * 1000 + 1)
        self.decoder = dense_tower(cfg.dim, (*reversed(cfg.hidden), self.n_items), "tanh", None, seed * 1000 + 100)

    def id_axes(self):
        """The encoder's input rows and the decoder's output columns (and biases) are items.

        Returns:
            [(first encoder kernel, 0, "item"), (output kernel, 1, "item"), (output bias, 0, "item")].
        """
        output = self.decoder.layers[-1]
        return [(self.encoder.layers[0].kernel, 0, "item"), (output.kernel, 1, "item"), (output.bias, 0, "item")]

    def train_batches(self, epoch: int) -> tf.data.Dataset:
        """The users with train items once each, in an order seeded by `seed + epoch`, with the epoch's KL weight.

        Args:
            epoch: the 0-based epoch; β = kl_cap · min(1, epoch / kl_anneal_epochs) (kl_cap from the start at 0).

        Returns:
            A dataset of {"ids": int32 [batch] user ids, "seed": int64 [2], "beta": float32 scalar}.
        """
        anneal = self.cfg.kl_anneal_epochs
        beta = self.cfg.kl_cap * (min(1.0, epoch / anneal) if anneal > 0 else 1.0)
        return self.row_batches(self.data.train, epoch).map(
            lambda batch: {**batch, "beta": tf.constant(beta, tf.float32)}
        )

    def _encode(self, user_ids, training: bool, seed=None, share=None) -> tuple[tf.Tensor, tf.Tensor]:
        """(μ, log σ²) of the users' normalised (when training, dropped-out) train vectors, of only a `share`'s
        rows if given: dropout is drawn for all of `user_ids`, so a row's is the same on any replica."""
        rows = sparse_rows(self.train_rows, user_ids, self.n_items)
        lengths = tf.math.bincount(tf.cast(rows.indices[:, 0], tf.int32), minlength=tf.size(user_ids))
        norms = tf.sqrt(tf.cast(tf.maximum(lengths, 1), tf.float32))
        rows = tf.SparseTensor(rows.indices, rows.values / tf.gather(norms, rows.indices[:, 0]), rows.dense_shape)
        if training:
            rows = stateless_value_dropout(rows, self.cfg.dropout, seed)
        if share is not None:
            rows = share.sparse_rows(rows)
        mu, log_var = tf.split(apply_to_sparse(self.encoder, rows), 2, axis=-1)
        return mu, log_var

    def _scores(self, user_ids):
        mu, _ = self._encode(user_ids, training=False)
        return self.decoder(mu)

    def compute_loss(self, inputs, training: bool = False, share=None):
        """Per user its negative multinomial log-likelihood and β × its KL term, a mean over the batch's users, plus
        L2 on the kernels. A replica's share: its users' part of the mean (β is the epoch's, the same for every
        user; input dropout and the reparameterisation noise are drawn for the global batch, then sliced) and
        1/replicas of the L2 term.

        Args:
            inputs: a batch of `train_batches`: {"ids": int32 [B] user ids, "seed": int64 [2], "beta": float32
                scalar (default: `cfg.kl_cap`)}.
            training: draw input dropout and the reparameterisation noise (else z = μ).
            share: the replica's users (`Share`); None: the whole batch.

        Returns:
            float32 scalar; the replicas' values sum to the whole batch's.
        """
        share = share if share is not None else self.share(inputs)
        ids = inputs["ids"]
        if training:
            dropout_seed, noise_seed = tf.unstack(tf.random.experimental.stateless_split(inputs["seed"], 2))
            mu, log_var = self._encode(ids, True, dropout_seed, share)
            noise = tf.random.stateless_normal(tf.stack([tf.size(ids), self.cfg.dim]), noise_seed)
            z = mu + tf.exp(0.5 * log_var) * share.rows(noise)
        else:
            mu, log_var = self._encode(ids, False, share=share)
            z = mu
        log_probs = tf.nn.log_softmax(self.decoder(z), axis=-1)
        positives = sparse_rows(self.train_rows, share.rows(ids), self.n_items).indices
        neg_log_likelihood = -tf.reduce_sum(tf.gather_nd(log_probs, positives)) / share.size
        kl = share.part_of_mean(
            tf.reduce_mean(tf.reduce_sum(0.5 * (tf.exp(log_var) + tf.square(mu) - 1.0 - log_var), -1))
        )
        beta = inputs.get("beta", tf.constant(self.cfg.kl_cap))
        return (
            neg_log_likelihood
            + beta * kl
            + share.common(self.cfg.l2 * squared_norm(*kernels_of(self.encoder, self.decoder)))
        )
