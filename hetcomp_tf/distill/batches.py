"""The steps of an epoch as fixed-shape batches (`Batch`, `epoch_batches`) and each replica's share of one
(`replica_share`).

An epoch is one pass over the train interactions in shuffled batches, each step distilling the batch's unique users
(the HetComp authors' protocol), or one pass over the users (`DistillConfig.batching`). Batches are padded to a few
lengths so an XLA step compiles a few shapes, and cut into replica shares in-graph so every worker can feed the same
global batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from hetcomp_tf.config import DistillConfig
from hetcomp_tf.data.dataset import CSR
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.util.distribute import share_bounds


class Batch(NamedTuple):
    """One training step's input.

    The users whose losses it sums, for BPR its (user, train item) pairs, for the KD losses the users' train items as
    (batch row, item) pairs (`losses.labels.ItemPairs`) and the items of the step's train interactions (DCD's item
    side).

    Attributes:
        users: int32 [B], each user once; XLA padding repeats user 0 with weight 0.
        weights: float32 [B], 1, or 0 for padding.
        pair_users: int32 [P], the user of each (user, train item) pair (empty unless the loss is BPR).
        pair_items: int32 [P], its train item.
        seed: int64 [2], the step's stateless seed (negative sampling).
        train_rows: int32 [C], the batch row of each train pair (empty for BPR).
        train_items: int32 [C], its train item; −1 pads to a fixed C under XLA.
        step_items: int32 [M], the step's train interactions' items, each once (empty for BPR); −1 pads.
    """

    users: tf.Tensor
    weights: tf.Tensor
    pair_users: tf.Tensor
    pair_items: tf.Tensor
    seed: tf.Tensor
    train_rows: tf.Tensor
    train_items: tf.Tensor
    step_items: tf.Tensor


BATCH_SPEC = Batch(
    tf.TensorSpec([None], tf.int32),
    tf.TensorSpec([None], tf.float32),
    tf.TensorSpec([None], tf.int32),
    tf.TensorSpec([None], tf.int32),
    tf.TensorSpec([2], tf.int64),
    tf.TensorSpec([None], tf.int32),
    tf.TensorSpec([None], tf.int32),
    tf.TensorSpec([None], tf.int32),
)
PAD_USERS_TO = 64  # XLA steps see batches padded to a multiple of this: a few compiled shapes, not one per batch
PAD_PAIRS_TO = 1024


def train_pairs_cap(train: CSR, batch_users: int) -> int:
    """A fixed length for a step's train pairs that no batch of at most `batch_users` users exceeds: one
    compiled shape.

    Args:
        train: the train split.
        batch_users: the most users in a batch.

    Returns:
        The train items of the `batch_users` longest rows, rounded up to a multiple of PAD_PAIRS_TO (at least
        PAD_PAIRS_TO).
    """
    longest = np.sort(train.lengths())[::-1][:batch_users].sum()
    return int(max(1, -(-longest // PAD_PAIRS_TO)) * PAD_PAIRS_TO)


def row_positions(rows: CSR, row_ids: np.ndarray) -> np.ndarray:
    """The positions in `rows.indices` of the rows `row_ids`, row after row.

    Args:
        rows: a CSR.
        row_ids: int [n] row ids.

    Returns:
        int64 [Σ lengths of those rows].
    """
    starts, lengths = rows.indptr[row_ids], rows.indptr[row_ids + 1] - rows.indptr[row_ids]
    return np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())


def step_items_cap(train: CSR, cfg: DistillConfig) -> int:
    """A fixed length for a step's distinct train-interaction items (`Batch.step_items`) under XLA.

    Args:
        train: the train split.
        cfg: the distillation config (`batching`, `batch_size`).

    Returns:
        `batch_size` for batches of interactions (they hold at most that many), `train_pairs_cap` for batches
        of users.
    """
    return cfg.batch_size if cfg.batching == "interactions" else train_pairs_cap(train, cfg.batch_size)


def epoch_batches(
    train: CSR,
    cfg: DistillConfig,
    epoch: int,
    pairs: bool,
    pad_to: int = 1,
    train_pairs_to: int | None = None,
    step_items_to: int | None = None,
) -> Iterator[Batch]:
    """The steps of one epoch in a seeded order (`cfg.batching`, see DistillConfig).

    Args:
        train: the train split.
        cfg: the distillation config (`batching`, `batch_size`, `seed`).
        epoch: the 0-based epoch, which with `cfg.seed` seeds the order and the steps' seeds.
        pairs: hand over each step's (user, train item) pairs (BPR; with "users" batching all the batch users'
            pairs); else the batch users' train items as (row, item) pairs and the step's interactions' distinct
            items (with "users" batching, its users' train items).
        pad_to: user lists are padded to a multiple of this (weight 0).
        train_pairs_to: pad the train pairs to this length (−1 items), if given.
        step_items_to: pad the step items to this length (−1), if given.

    Yields:
        One `Batch` per step.

    Raises:
        HetCompError: a batch with more train pairs or step items than the fixed length it is padded to.
    """
    rng = np.random.default_rng([cfg.seed, epoch])
    row_ids = train.row_ids().astype(np.int32)
    if cfg.batching == "users":
        order = rng.permutation(train.n_rows).astype(np.int32)
    else:
        order = rng.permutation(train.nnz)
    empty = np.zeros([0], np.int32)
    for index, start in enumerate(range(0, order.size, cfg.batch_size)):
        chunk = order[start : start + cfg.batch_size]
        if cfg.batching == "users":
            users = chunk
            picked = row_positions(train, users)
        else:
            users, picked = np.unique(row_ids[chunk]), chunk
        padded = -(-users.size // pad_to) * pad_to
        weights = np.zeros(padded, np.float32)
        weights[: users.size] = 1.0
        picked = np.asarray(picked, np.int64)
        pair_users, pair_items = (row_ids[picked], train.indices[picked]) if pairs else (empty, empty)
        train_rows, train_items = (empty, empty) if pairs else _train_pairs(train, users, train_pairs_to)
        step_items = empty if pairs else _padded(np.unique(train.indices[picked]), step_items_to, "distinct items")
        yield Batch(
            tf.constant(np.pad(users, (0, padded - users.size))),
            tf.constant(weights),
            tf.constant(pair_users),
            tf.constant(pair_items),
            tf.constant([cfg.seed, epoch * 1_000_003 + index], tf.int64),
            tf.constant(train_rows),
            tf.constant(train_items),
            tf.constant(step_items),
        )


def _train_pairs(train: CSR, users: np.ndarray, pad_to: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(rows, items) int32: the train items of `users` (row k of the batch = users[k]), padded with (0, −1)."""
    lengths = train.indptr[users + 1] - train.indptr[users]
    rows = np.repeat(np.arange(users.size, dtype=np.int32), lengths)
    items = _padded(train.indices[row_positions(train, users)], pad_to, "train pairs")  # checks the length
    if pad_to is not None:
        rows = np.pad(rows, (0, pad_to - rows.size))
    return rows, items


def _padded(items: np.ndarray, pad_to: int | None, what: str) -> np.ndarray:
    """int32 `items`, −1 padded to `pad_to` (if given, else as they are)."""
    items = items.astype(np.int32)
    if pad_to is None:
        return items
    if items.size > pad_to:
        raise HetCompError(f"a batch has {items.size} {what}, more than the fixed {pad_to}")
    return np.pad(items, (0, pad_to - items.size), constant_values=-1)


def replica_share(batch: Batch, replica, replicas: int) -> Batch:
    """Replica `replica`'s share of a global batch, in-graph, so every worker can feed the same global batch.

    Args:
        batch: the global batch.
        replica: int32 scalar, this replica's id in the sync group.
        replicas: how many replicas share the batch.

    Returns:
        A `Batch`: a contiguous slice of the users with their train pairs re-based to the slice (the others
        become (0, −1) padding: one length, as under XLA), a contiguous slice of the BPR pairs and of the step
        items (the others −1). One replica's share is the batch itself.
    """
    n_users, n_pairs = tf.size(batch.users), tf.size(batch.pair_users)
    lo, hi = share_bounds(n_users, replica, replicas)
    pair_lo, pair_hi = share_bounds(n_pairs, replica, replicas)
    here = (batch.train_rows >= lo) & (batch.train_rows < hi)
    item_lo, item_hi = share_bounds(tf.size(batch.step_items), replica, replicas)
    positions = tf.range(tf.size(batch.step_items))
    mine = (positions >= item_lo) & (positions < item_hi)
    return Batch(
        batch.users[lo:hi],
        batch.weights[lo:hi],
        batch.pair_users[pair_lo:pair_hi],
        batch.pair_items[pair_lo:pair_hi],
        batch.seed,
        tf.where(here, batch.train_rows - lo, 0),
        tf.where(here, batch.train_items, -1),
        tf.where(mine, batch.step_items, -1),
    )
