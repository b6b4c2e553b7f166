"""Label matrices and item pairs: a batch's items as flat (row, item) pairs (`ItemPairs`), scatters of them into
[b, n_items] matrices whose padding is neutral, and TF-Ranking labels (`ranking_labels`). Every loss module
builds its lists on these.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import tensorflow as tf


class ItemPairs(NamedTuple):
    """Item ids of a batch's rows as flat (row, item) pairs; item −1 is padding. A batch's train items this way
    need no row padded to the longest user's (CiteULike at the authors' protocol: ~33k pairs per step instead of
    750 rows × 1,197)."""

    rows: tf.Tensor  # int32 [N]: the row of each pair
    items: tf.Tensor  # int32 [N]: its item id, or −1


def item_pairs(ids) -> ItemPairs:
    """The pairs of a −1 padded id matrix int32 [b, L]; ItemPairs pass through."""
    if isinstance(ids, ItemPairs):
        return ids
    ids = tf.convert_to_tensor(ids, tf.int32)
    rows = tf.broadcast_to(tf.range(tf.shape(ids)[0])[:, None], tf.shape(ids))
    return ItemPairs(tf.reshape(rows, [-1]), tf.reshape(ids, [-1]))


def concat_pairs(*parts) -> ItemPairs:
    pairs = [item_pairs(part) for part in parts]
    return ItemPairs(tf.concat([p.rows for p in pairs], 0), tf.concat([p.items for p in pairs], 0))


def _neutral(scatter, dtype: tf.DType):
    """The value a padding pair scatters: one that leaves any entry unchanged under `scatter` (add, max or min;
    an update has no such value)."""
    if scatter is tf.tensor_scatter_nd_add:
        return tf.zeros([], dtype)
    high = np.inf if dtype.is_floating else dtype.max
    return tf.constant(-high if scatter is tf.tensor_scatter_nd_max else high, dtype)


def scatter_pairs(pairs: ItemPairs, values: tf.Tensor, base: tf.Tensor, scatter=tf.tensor_scatter_nd_max):
    """base [b, n_items] with base[r, i] = scatter(base[r, i], value) for every pair (r, i) (default: the max).
    Padding pairs scatter the op's neutral value into column 0 of their row: no shape depends on how many pairs
    are real (XLA compiles once) and no spare column is padded on and cut off (two copies of [b, n_items])."""
    real = pairs.items >= 0
    index = tf.stack([pairs.rows, tf.where(real, pairs.items, 0)], axis=-1)
    return scatter(base, index, tf.where(real, tf.cast(values, base.dtype), _neutral(scatter, base.dtype)))


def scatter_rows(ids, values: tf.Tensor, base: tf.Tensor, scatter=tf.tensor_scatter_nd_max) -> tf.Tensor:
    """scatter_pairs for an id matrix ids int32 [b, L] (−1 skipped) and values [b, L]."""
    return scatter_pairs(item_pairs(ids), tf.reshape(values, [-1]), base, scatter)


def ids_to_mask(ids, n_items) -> tf.Tensor:
    """bool [b, n_items]: True at the item ids of each row of `ids` int32 [b, L] (−1 = padding)."""
    ids = tf.convert_to_tensor(ids, tf.int32)
    zeros = tf.zeros(tf.stack([tf.shape(ids)[0], n_items]), tf.int32)
    return scatter_rows(ids, tf.ones_like(ids), zeros) > 0


def ranking_labels(perm, n_items, rest_mask) -> tf.Tensor:
    """float32 [b, n_items] TF-Ranking labels for "perm outranks the rest": L, L−1, …, 1 on the items of
    perm int32 [b, L] (position k gets L − k, so a −1 padded tail just leaves its labels unused), 0 where
    rest_mask bool [b, n_items] holds, −1 (ignored) elsewhere. A permutation item wins over the rest mask."""
    perm = tf.convert_to_tensor(perm, tf.int32)
    length = tf.shape(perm)[1]
    base = tf.where(rest_mask, 0.0, -1.0)
    position_labels = tf.cast(length - tf.range(length), tf.float32)
    return scatter_rows(perm, tf.broadcast_to(position_labels, tf.shape(perm)), base)
