"""The teacher contract shared by all six models, so the training loop never special-cases one.

A teacher owns its sampling (`train_batches`), its loss including L2 (`compute_loss`, the tfrs pattern) and
its all-item scorer (`score_all`). `train_epoch` runs one epoch of compiled optimiser steps; `post_step` is
the hook for constraints such as CML's unit-ball clipping, run after every optimiser update. Sampling is NumPy per
epoch, seeded by `seed + epoch`, and every in-graph random op (dropout, VAE noise) takes a stateless seed carried
in the batch, so a run is reproducible from `seed` alone.

Under a tf.distribute strategy (`TeacherConfig.distribute`) every worker builds the same global batches and each
replica computes `compute_loss` on its `Share` of a batch: its rows' terms over the global batch, plus 1/replicas
of any term that is not per row, so the replicas' losses and gradients sum to the global batch's. In-graph
randomness is drawn for the whole global batch and sliced, so a row meets the same noise on any replica.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from hetcomp_tf.config import PairwiseConfig, TeacherConfig
from hetcomp_tf.data.dataset import CSR, Dataset
from hetcomp_tf.data.sampling import interaction_keys, sample_negatives
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.util.distribute import share_bounds


class Share(NamedTuple):
    """Rows [lo, hi) of a global batch of `size` rows: what one of `replicas` replicas computes a loss on, so the
    replicas' losses sum to the global batch's.

    Attributes:
        lo: int32 scalar, the share's first row.
        hi: int32 scalar, one past its last row.
        size: float32 scalar, the global batch's rows: the denominator of every per-row term.
        replicas: how many replicas share the batch.
    """

    lo: tf.Tensor  # int32
    hi: tf.Tensor
    size: tf.Tensor  # float32: the global batch's rows, the denominator of every per-row term
    replicas: int = 1

    def rows(self, tensor: tf.Tensor) -> tf.Tensor:
        """This share's rows of a global batch's tensor.

        Args:
            tensor: [size, ...], any dtype.

        Returns:
            [hi - lo, ...], of `tensor`'s dtype.
        """
        return tensor[self.lo : self.hi]

    def sparse_rows(self, rows: tf.SparseTensor) -> tf.SparseTensor:
        """This share's rows of a global batch's sparse rows, renumbered from 0.

        Args:
            rows: a SparseTensor [size, n_cols].

        Returns:
            A SparseTensor [hi - lo, n_cols], of `rows`' dtype.
        """
        return tf.sparse.slice(
            rows,
            tf.cast(tf.stack([self.lo, 0]), tf.int64),
            tf.stack([tf.cast(self.hi - self.lo, tf.int64), rows.dense_shape[1]]),
        )

    def part_of_mean(self, mean: tf.Tensor) -> tf.Tensor:
        """This share's part of a mean over the global batch's rows, so the replicas' parts sum to that mean.

        Args:
            mean: float32 scalar, the mean over the share's own rows.

        Returns:
            float32 scalar: `mean` times the share's fraction of the rows (exactly `mean` for a whole batch); 0 for
            an empty share, whose mean is NaN.
        """
        fraction = tf.cast(self.hi - self.lo, tf.float32) / self.size
        return tf.where(self.hi > self.lo, mean * fraction, 0.0)

    def common(self, term: tf.Tensor) -> tf.Tensor:
        """This replica's part of a term that is not per row (the autoencoders' L2 on kernels), so the replicas'
        parts sum to the term once.

        Args:
            term: float32 scalar.

        Returns:
            float32 scalar, `term / replicas`.
        """
        return term / self.replicas


class Teacher(tfrs.Model):
    """Base of the six teachers, so the training loop, evaluation and warm starts treat them alike. Subclasses
    implement `_scores`, `train_batches`, `compute_loss` and `id_axes`, and name the batch entry whose rows are the
    batch's (`batch_key`).

    Args:
        data: the Dataset it trains on: its sizes (`n_users`, `n_items`) and its train matrix.
        cfg: the teacher's config (its class in `config.TEACHER_CONFIGS`).
        seed: seeds the initialisation, each epoch's sampling and the in-graph randomness.
    """

    name: ClassVar[str]
    batch_key: ClassVar[str] = "ids"

    def __init__(self, data: Dataset, cfg: TeacherConfig, seed: int = 0):
        super().__init__()
        self.data, self.cfg, self.seed = data, cfg, int(seed)
        self.n_users, self.n_items = data.n_users, data.n_items
        # Compiled functions live outside Keras tracking (checkpoints hold no optimiser state) and per instance
        # (no cross-model retracing).
        object.__setattr__(self, "_compiled_steps", {})
        object.__setattr__(
            self, "_compiled_scores", tf.function(self._scores, input_signature=[tf.TensorSpec([None], tf.int32)])
        )

    # --- scoring -----------------------------------------------------------------------------------------
    def score_all(self, user_ids) -> tf.Tensor:
        """The scores of every item for a batch of users (higher = better); masking is the caller's job.

        Args:
            user_ids: int [b] user ids (a list, array or tensor; cast to int32).

        Returns:
            float32 [b, n_items].
        """
        return self._compiled_scores(tf.cast(tf.convert_to_tensor(user_ids), tf.int32))

    def _scores(self, user_ids: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def serving_tables(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Tables whose row dot products are `score_all` up to float rounding, so a model can be served as
        precomputed embeddings (serving/export.py exports them as it does the student's).

        Returns:
            (user table float32 [n_users, d'], item table float32 [n_items, d']); None (the default) for a model
            whose score is not such a product.
        """
        return None

    # --- training ----------------------------------------------------------------------------------------
    def train_batches(self, epoch: int) -> tf.data.Dataset:
        """One epoch's batches, sampled in NumPy and seeded by `seed + epoch`, so a run is reproducible.

        Args:
            epoch: the 0-based epoch.

        Returns:
            A dataset of dicts, one per global batch, the model's `compute_loss` inputs; entry `batch_key` has the
            batch's rows on axis 0.
        """
        raise NotImplementedError

    def compute_loss(self, inputs, training: bool = False, share: Share | None = None) -> tf.Tensor:
        """The loss of a batch including its L2 term (the tfrs pattern), or a replica's part of it.

        Args:
            inputs: a batch of `train_batches`.
            training: whether in-graph randomness (dropout, VAE noise) applies.
            share: the replica's rows (`share`); None: the whole batch.

        Returns:
            float32 scalar; the replicas' values sum to the whole batch's.
        """
        raise NotImplementedError

    def share(self, inputs, replica=0, replicas: int = 1) -> Share:
        """A replica's contiguous share of a batch's rows (`util.distribute.share_bounds`).

        Args:
            inputs: a batch of `train_batches`; its `batch_key` entry gives the rows.
            replica: the replica's index, an int or an int32 scalar tensor.
            replicas: how many replicas (default 1: the whole batch).

        Returns:
            The `Share`.
        """
        size = tf.shape(inputs[self.batch_key])[0]
        lo, hi = share_bounds(size, replica, replicas)
        return Share(lo, hi, tf.cast(size, tf.float32), replicas)

    def id_axes(self) -> list[tuple[tf.Variable, int, str]]:
        """The weights' axes indexed by user or item ids, whose rows a warm start (warmstart.py) maps by id from a
        model trained on another snapshot.

        Returns:
            [(variable, axis, "user" | "item")].
        """
        raise NotImplementedError

    def post_step(self) -> None:
        """Runs inside the compiled step after every optimiser update, on the synchronised weights (cross-replica
        context); a no-op unless a model constrains its weights."""
        return None

    def train_epoch(
        self, optimizer: tf.keras.optimizers.Optimizer, epoch: int, strategy: tf.distribute.Strategy | None = None
    ) -> float:
        """One pass over `train_batches(epoch)`, one compiled optimiser step per batch (compiled once per optimiser
        and strategy).

        Args:
            optimizer: the optimiser, built on the teacher's trainable variables.
            epoch: the 0-based epoch (it seeds the sampling).
            strategy: the tf.distribute strategy the teacher's and the optimiser's variables were created under
                (default: the one in scope).

        Returns:
            The mean of the batches' losses.
        """
        strategy = strategy if strategy is not None else tf.distribute.get_strategy()
        key = (id(optimizer), id(strategy))
        if key not in self._compiled_steps:
            self._compiled_steps[key] = self._make_step(optimizer, strategy)
        losses = [self._compiled_steps[key](batch) for batch in self.train_batches(epoch)]
        return float(tf.reduce_mean(tf.stack(losses)))

    def _make_step(self, optimizer, strategy: tf.distribute.Strategy):
        """A global batch in, its loss out: each replica's loss and gradients on its share (`Share`), the
        gradients summed over the replicas by the optimiser, then `post_step`."""
        replicas = strategy.num_replicas_in_sync

        def replica_step(batch):
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            with tf.GradientTape() as tape:
                loss = self.compute_loss(batch, training=True, share=self.share(batch, replica, replicas))
            variables = self.trainable_variables
            optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return loss

        @tf.function
        def step(batch):
            loss = strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(replica_step, args=(batch,)), axis=None)
            self.post_step()
            return loss

        return step

    # --- shared helpers ----------------------------------------------------------------------------------
    def initializer(self, stddev: float, offset: int) -> tf.keras.initializers.Initializer:
        """A normal initialiser seeded from the teacher's seed, so a seed means the same start.

        Args:
            stddev: the standard deviation.
            offset: keeps each weight's stream distinct (seed · 1000 + offset).

        Returns:
            A `RandomNormal` initialiser.
        """
        return tf.keras.initializers.RandomNormal(stddev=stddev, seed=self.seed * 1000 + offset)

    def row_batches(self, rows: CSR, epoch: int) -> tf.data.Dataset:
        """The autoencoders' sampling (rows are users for AE, items for I-AE): the non-empty rows once each, in
        an order seeded by `seed + epoch`.

        Args:
            rows: the rows to sample, e.g. the train matrix.
            epoch: the 0-based epoch.

        Returns:
            A dataset of {"ids": int32 [batch_size] (the last batch may be smaller), "seed": int64 [2] (a
            stateless seed for the batch's in-graph randomness)}.
        """
        rng = np.random.default_rng(self.seed + epoch)
        ids = np.flatnonzero(rows.lengths() > 0).astype(np.int32)
        batches = tf.data.Dataset.from_tensor_slices(rng.permutation(ids)).batch(self.cfg.batch_size)
        base = self.seed * 1_000_003 + epoch
        return (
            batches.enumerate()
            .map(lambda i, ids: {"ids": ids, "seed": tf.stack([tf.constant(base, tf.int64), i])})
            .prefetch(tf.data.AUTOTUNE)
        )


class PairwiseTeacher(Teacher):
    """Teachers trained on (user, observed item, sampled unobserved items) triples: MF, ML, DL, GNN. A replica's
    share is a contiguous slice of the global batch's triples (`triples`); the negatives were drawn for the whole
    batch in NumPy, so every triple is the one a single device trains on.

    Args:
        data: the Dataset it trains on.
        cfg: the teacher's `PairwiseConfig` (`n_negatives`, `batch_size`, ...).
        seed: seeds the initialisation and the sampling.

    Raises:
        HetCompError: a user has every item in train, so no negative can be sampled for it.
    """

    batch_key = "user"

    def __init__(self, data: Dataset, cfg: PairwiseConfig, seed: int = 0):
        super().__init__(data, cfg, seed)
        full = np.flatnonzero(data.train.lengths() >= self.n_items)
        if full.size:
            raise HetCompError(f"{self.name}: user {full[0]} has every item in train; no negative to sample")
        self._pair_users = data.train.row_ids().astype(np.int32)
        self._pair_items = data.train.indices.astype(np.int32)
        self._pair_keys = interaction_keys(data.train, self.n_items)

    def id_axes(self) -> list[tuple[tf.Variable, int, str]]:
        """The user and item embedding tables' rows: [(user table, 0, "user"), (item table, 0, "item")]."""
        return [(self.user_embedding.embeddings, 0, "user"), (self.item_embedding.embeddings, 0, "item")]

    def train_batches(self, epoch: int) -> tf.data.Dataset:
        """Every train pair once per epoch in an order seeded by `seed + epoch`, each with `n_negatives` items the
        user has not interacted with in train (uniform, resampled until unobserved).

        Args:
            epoch: the 0-based epoch.

        Returns:
            A dataset of {"user": int32 [batch], "pos": int32 [batch], "neg": int32 [batch, n_negatives]}, batch =
            `cfg.batch_size` (the last batch may be smaller).
        """
        rng = np.random.default_rng(self.seed + epoch)
        order = rng.permutation(self._pair_users.size)
        users, items = self._pair_users[order], self._pair_items[order]
        negatives = sample_negatives(rng, self._pair_keys, users, self.cfg.n_negatives, self.n_items)
        data = {"user": users, "pos": items, "neg": negatives}
        return tf.data.Dataset.from_tensor_slices(data).batch(self.cfg.batch_size).prefetch(tf.data.AUTOTUNE)

    def compute_loss(self, inputs, training: bool = False, share: Share | None = None) -> tf.Tensor:
        """The model's pairwise loss, a mean over a share's triples, plus L2 on their rows.

        Args:
            inputs: a batch of `train_batches`: {"user": int32 [B], "pos": int32 [B], "neg": int32 [B, n]}.
            training: unused (no in-graph randomness).
            share: the replica's triples (`Share`); None: the whole batch.

        Returns:
            float32 scalar; the replicas' values sum to the whole batch's.
        """
        raise NotImplementedError


def triples(inputs, share: Share) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """A share's rows of a pairwise batch (`PairwiseTeacher.train_batches`).

    Args:
        inputs: the batch: {"user", "pos", "neg"}.
        share: the replica's rows.

    Returns:
        (users int32 [b], observed items int32 [b], negatives int32 [b, n]), b the share's rows.
    """
    return share.rows(inputs["user"]), share.rows(inputs["pos"]), share.rows(inputs["neg"])


def squared_norm(*tensors: tf.Tensor) -> tf.Tensor:
    """The L2 term before each model scales it by its `cfg.l2`.

    Args:
        *tensors: float tensors of any shape.

    Returns:
        float scalar: the sum of squares of all their entries.
    """
    return tf.add_n([tf.reduce_sum(tf.square(t)) for t in tensors])


def sparse_rows(rows: tf.RaggedTensor, ids: tf.Tensor, n_cols: int) -> tf.SparseTensor:
    """Binary rows of a ragged id matrix as a SparseTensor, never densified, so an autoencoder's first layer is a
    sparse matmul and the paper-size train matrix stays sparse.

    Args:
        rows: int32 [n_rows, None] ragged column ids per row (e.g. `CSR.to_ragged`).
        ids: int32 [b] the rows to pick.
        n_cols: the columns of the result.

    Returns:
        float32 SparseTensor [b, n_cols]: 1 at each picked row's columns.
    """
    picked = tf.gather(rows, ids)
    indices = tf.stack([picked.value_rowids(), tf.cast(picked.values, tf.int64)], axis=1)
    shape = tf.stack([tf.shape(ids, out_type=tf.int64)[0], tf.constant(n_cols, tf.int64)])
    return tf.SparseTensor(indices, tf.ones_like(picked.values, tf.float32), shape)


def dense_tower(in_dim: int, sizes: tuple[int, ...], activation, last_activation, seed: int) -> tf.keras.Sequential:
    """A built stack of Dense layers, Glorot-initialised and seeded so a seed means the same start.

    Args:
        in_dim: the input width.
        sizes: each layer's width, in order.
        activation: the activation of every layer but the last.
        last_activation: the last layer's activation (None: linear).
        seed: layer k's initialiser seed is seed + k.

    Returns:
        The `Sequential`, built for inputs float32 [None, in_dim], output [None, sizes[-1]].
    """
    layers = [
        tf.keras.layers.Dense(
            size,
            activation if k < len(sizes) - 1 else last_activation,
            kernel_initializer=tf.keras.initializers.GlorotUniform(seed=seed + k),
        )
        for k, size in enumerate(sizes)
    ]
    tower = tf.keras.Sequential(layers)
    tower.build((None, in_dim))
    return tower


def apply_to_sparse(tower: tf.keras.Sequential, inputs: tf.SparseTensor) -> tf.Tensor:
    """tower(inputs) for a sparse input without densifying it: the first layer as a sparse matmul, the rest as
    usual.

    Args:
        tower: a `dense_tower`.
        inputs: float32 SparseTensor [b, in_dim].

    Returns:
        float32 [b, the last layer's width].
    """
    first, *rest = tower.layers
    x = first.activation(tf.sparse.sparse_dense_matmul(inputs, first.kernel) + first.bias)
    for layer in rest:
        x = layer(x)
    return x


def stateless_value_dropout(inputs: tf.SparseTensor, rate: float, seed: tf.Tensor) -> tf.SparseTensor:
    """Dropout on the stored entries of a sparse input (kept ones scaled by 1/(1−rate)), stateless so it is
    reproducible from the batch's seed.

    Args:
        inputs: float32 SparseTensor.
        rate: the probability of dropping an entry; <= 0 returns `inputs` unchanged.
        seed: int [2], the stateless seed.

    Returns:
        A SparseTensor of `inputs`' indices and shape, dropped entries 0.
    """
    if rate <= 0.0:
        return inputs
    values = tf.nn.experimental.stateless_dropout(inputs.values, rate, seed)
    return tf.SparseTensor(inputs.indices, values, inputs.dense_shape)


def kernels_of(*towers: tf.keras.Sequential) -> list[tf.Variable]:
    """The Dense kernels (not biases) of some towers: what the autoencoders' L2 term penalises.

    Args:
        *towers: `dense_tower`s.

    Returns:
        The kernels, tower by tower, layer by layer.
    """
    return [layer.kernel for tower in towers for layer in tower.layers]
