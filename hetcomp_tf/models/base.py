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
    """Rows [lo, hi) of a global batch of `size` rows: what one of `replicas` replicas computes a loss on."""

    lo: tf.Tensor  # int32
    hi: tf.Tensor
    size: tf.Tensor  # float32: the global batch's rows, the denominator of every per-row term
    replicas: int = 1

    def rows(self, tensor: tf.Tensor) -> tf.Tensor:
        """This share's rows of a global batch's tensor."""
        return tensor[self.lo : self.hi]

    def sparse_rows(self, rows: tf.SparseTensor) -> tf.SparseTensor:
        """This share's rows of a global batch's sparse rows, renumbered from 0."""
        return tf.sparse.slice(
            rows,
            tf.cast(tf.stack([self.lo, 0]), tf.int64),
            tf.stack([tf.cast(self.hi - self.lo, tf.int64), rows.dense_shape[1]]),
        )

    def part_of_mean(self, mean: tf.Tensor) -> tf.Tensor:
        """This share's part of a mean over the global batch's rows, given the mean over its own rows: times its
        fraction of the rows (exactly 1 for a whole batch); 0 for an empty share, whose mean is NaN."""
        fraction = tf.cast(self.hi - self.lo, tf.float32) / self.size
        return tf.where(self.hi > self.lo, mean * fraction, 0.0)

    def common(self, term: tf.Tensor) -> tf.Tensor:
        """This replica's part of a term that is not per row (the autoencoders' L2 on kernels)."""
        return term / self.replicas


class Teacher(tfrs.Model):
    """Base of the six teachers. Subclasses implement `_scores`, `train_batches` and `compute_loss`, and name the
    batch entry whose rows are the batch's (`batch_key`)."""

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
        """float32 [b, n_items] scores of every item (higher = better); masking is the caller's job."""
        return self._compiled_scores(tf.cast(tf.convert_to_tensor(user_ids), tf.int32))

    def _scores(self, user_ids: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def serving_tables(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(user table float32 [n_users, d'], item table float32 [n_items, d']) whose row dot products are
        `score_all` up to float rounding, for a model that serves as precomputed embedding tables (exported by
        serving/export.py as the student is); None (the default) for a model whose score is not such a product."""
        return None

    # --- training ----------------------------------------------------------------------------------------
    def train_batches(self, epoch: int) -> tf.data.Dataset:
        raise NotImplementedError

    def compute_loss(self, inputs, training: bool = False, share: Share | None = None) -> tf.Tensor:
        """The loss of the batch `inputs`, or of a replica's `share` of it (default: the whole batch)."""
        raise NotImplementedError

    def share(self, inputs, replica=0, replicas: int = 1) -> Share:
        """Replica `replica`'s share of the batch `inputs` (of `replicas`; by default the whole batch)."""
        size = tf.shape(inputs[self.batch_key])[0]
        lo, hi = share_bounds(size, replica, replicas)
        return Share(lo, hi, tf.cast(size, tf.float32), replicas)

    def id_axes(self) -> list[tuple[tf.Variable, int, str]]:
        """(variable, axis, "user" | "item"): the axes indexed by user or item ids, whose rows a warm start
        (warmstart.py) maps by id from a model trained on another snapshot."""
        raise NotImplementedError

    def post_step(self) -> None:
        """Runs inside the compiled step after every optimiser update, on the synchronised weights (cross-replica
        context); a no-op unless a model constrains its weights."""
        return None

    def train_epoch(
        self, optimizer: tf.keras.optimizers.Optimizer, epoch: int, strategy: tf.distribute.Strategy | None = None
    ) -> float:
        """One pass over `train_batches(epoch)` under `strategy`, the one the teacher's and the optimiser's
        variables were created under (default: the one in scope); returns the mean batch loss."""
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
        """Normal initialiser seeded from the teacher's seed; `offset` keeps each weight's stream distinct."""
        return tf.keras.initializers.RandomNormal(stddev=stddev, seed=self.seed * 1000 + offset)

    def row_batches(self, rows: CSR, epoch: int) -> tf.data.Dataset:
        """Shuffled ids of the non-empty rows of `rows`, batched, each batch with a stateless seed [2] for its
        in-graph randomness: the sampling of the autoencoders (rows are users for AE, items for I-AE)."""
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
    batch in NumPy, so every triple is the one a single device trains on."""

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
        return [(self.user_embedding.embeddings, 0, "user"), (self.item_embedding.embeddings, 0, "item")]

    def train_batches(self, epoch: int) -> tf.data.Dataset:
        """Every train pair once per epoch in a seeded order, each with `n_negatives` items the user has not
        interacted with in train (uniform, resampled until unobserved)."""
        rng = np.random.default_rng(self.seed + epoch)
        order = rng.permutation(self._pair_users.size)
        users, items = self._pair_users[order], self._pair_items[order]
        negatives = sample_negatives(rng, self._pair_keys, users, self.cfg.n_negatives, self.n_items)
        data = {"user": users, "pos": items, "neg": negatives}
        return tf.data.Dataset.from_tensor_slices(data).batch(self.cfg.batch_size).prefetch(tf.data.AUTOTUNE)


def triples(inputs, share: Share) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """(users [b], observed items [b], negatives [b, n]) of a share of a pairwise batch."""
    return share.rows(inputs["user"]), share.rows(inputs["pos"]), share.rows(inputs["neg"])


def squared_norm(*tensors: tf.Tensor) -> tf.Tensor:
    """Sum of squares of all entries: the L2 term, scaled by each model's `cfg.l2`."""
    return tf.add_n([tf.reduce_sum(tf.square(t)) for t in tensors])


def sparse_rows(rows: tf.RaggedTensor, ids: tf.Tensor, n_cols: int) -> tf.SparseTensor:
    """Binary rows `ids` of a ragged id matrix as a float32 SparseTensor [b, n_cols], never densified, so an
    autoencoder's first layer is a sparse matmul and the paper-size train matrix stays sparse."""
    picked = tf.gather(rows, ids)
    indices = tf.stack([picked.value_rowids(), tf.cast(picked.values, tf.int64)], axis=1)
    shape = tf.stack([tf.shape(ids, out_type=tf.int64)[0], tf.constant(n_cols, tf.int64)])
    return tf.SparseTensor(indices, tf.ones_like(picked.values, tf.float32), shape)


def dense_tower(in_dim: int, sizes: tuple[int, ...], activation, last_activation, seed: int) -> tf.keras.Sequential:
    """Built stack of Dense layers (Glorot, seeded); the last one gets `last_activation`."""
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
    """tower(inputs) for a sparse input: the first layer as a sparse matmul, the rest as usual."""
    first, *rest = tower.layers
    x = first.activation(tf.sparse.sparse_dense_matmul(inputs, first.kernel) + first.bias)
    for layer in rest:
        x = layer(x)
    return x


def stateless_value_dropout(inputs: tf.SparseTensor, rate: float, seed: tf.Tensor) -> tf.SparseTensor:
    """Dropout on the stored entries of a sparse input (kept ones scaled by 1/(1−rate)), reproducible by seed."""
    if rate <= 0.0:
        return inputs
    values = tf.nn.experimental.stateless_dropout(inputs.values, rate, seed)
    return tf.SparseTensor(inputs.indices, values, inputs.dense_shape)


def kernels_of(*towers: tf.keras.Sequential) -> list[tf.Variable]:
    """The Dense kernels (not biases) of some towers: what the autoencoders' L2 term penalises."""
    return [layer.kernel for tower in towers for layer in tower.layers]
