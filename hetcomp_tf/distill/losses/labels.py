"""Label matrices and item pairs: a batch's items as flat (row, item) pairs (`ItemPairs`), scatters of them into
[b, n_items] matrices whose padding is neutral, and TF-Ranking labels (`ranking_labels`). Every loss module
builds its lists on these.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import tensorflow as tf


class ItemPairs(NamedTuple):
    """Item ids of a batch's rows as flat (row, item) pairs; item −1 is padding.

    A batch's train items this way need no row padded to the longest user's: the pairs' count is the batch's
    interactions, not its users times the longest row.

    Attributes:
        rows: int32 [N], the batch row of each pair.
        items: int32 [N], its item id, or −1 (padding).
    """

    rows: tf.Tensor
    items: tf.Tensor


def item_pairs(ids) -> ItemPairs:
    """The pairs of a −1 padded id matrix; ItemPairs pass through.

    Args:
        ids: int32 [b, L] item ids, −1 padded, or an `ItemPairs`.

    Returns:
        `ItemPairs` of b·L pairs in row-major order (padding kept as item −1), or `ids` itself.
    """
    if isinstance(ids, ItemPairs):
        return ids
    ids = tf.convert_to_tensor(ids, tf.int32)
    rows = tf.broadcast_to(tf.range(tf.shape(ids)[0])[:, None], tf.shape(ids))
    return ItemPairs(tf.reshape(rows, [-1]), tf.reshape(ids, [-1]))


def concat_pairs(*parts) -> ItemPairs:
    """The pairs of several id sets over the same batch rows, one after the other.

    Args:
        *parts: each an int32 [b, L_i] id matrix (−1 padded) or an `ItemPairs`.

    Returns:
        `ItemPairs` holding every part's pairs, in the parts' order.
    """
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
    """`base` with base[r, i] = scatter(base[r, i], value) for every pair (r, i) (default: the max).

    Padding pairs scatter the op's neutral value into column 0 of their row: no shape depends on how many pairs
    are real (XLA compiles once) and no spare column is padded on and cut off (two copies of [b, n_items]).

    Args:
        pairs: the (row, item) pairs, item −1 for padding.
        values: [N] the value of each pair, cast to `base`'s dtype.
        base: [b, n_items] the matrix to scatter into.
        scatter: tf.tensor_scatter_nd_max, tf.tensor_scatter_nd_min or tf.tensor_scatter_nd_add.

    Returns:
        [b, n_items], `base`'s dtype.
    """
    real = pairs.items >= 0
    index = tf.stack([pairs.rows, tf.where(real, pairs.items, 0)], axis=-1)
    return scatter(base, index, tf.where(real, tf.cast(values, base.dtype), _neutral(scatter, base.dtype)))


def scatter_rows(ids, values: tf.Tensor, base: tf.Tensor, scatter=tf.tensor_scatter_nd_max) -> tf.Tensor:
    """`scatter_pairs` for an id matrix.

    Args:
        ids: int32 [b, L] item ids; −1 is skipped.
        values: [b, L] the value of each id.
        base: [b, n_items] the matrix to scatter into.
        scatter: as in `scatter_pairs`.

    Returns:
        [b, n_items], `base`'s dtype.
    """
    return scatter_pairs(item_pairs(ids), tf.reshape(values, [-1]), base, scatter)


def ids_to_mask(ids, n_items) -> tf.Tensor:
    """The membership mask of an id matrix.

    Args:
        ids: int32 [b, L] item ids, −1 padded.
        n_items: the catalogue's size.

    Returns:
        bool [b, n_items], True at the item ids of each row.
    """
    ids = tf.convert_to_tensor(ids, tf.int32)
    zeros = tf.zeros(tf.stack([tf.shape(ids)[0], n_items]), tf.int32)
    return scatter_rows(ids, tf.ones_like(ids), zeros) > 0


def ranking_labels(perm, n_items, rest_mask) -> tf.Tensor:
    """TF-Ranking labels for "perm outranks the rest" over the whole catalogue.

    Args:
        perm: int32 [b, L] the permutation's items, best first, −1 padded at the tail (position k gets L − k, so
            padding just leaves its labels unused).
        n_items: the catalogue's size.
        rest_mask: bool [b, n_items], True on the rest.

    Returns:
        float32 [b, n_items]: L, L−1, …, 1 on the permutation's items, 0 on the rest, −1 (ignored) elsewhere. A
        permutation item wins over the rest mask.
    """
    perm = tf.convert_to_tensor(perm, tf.int32)
    length = tf.shape(perm)[1]
    base = tf.where(rest_mask, 0.0, -1.0)
    position_labels = tf.cast(length - tf.range(length), tf.float32)
    return scatter_rows(perm, tf.broadcast_to(position_labels, tf.shape(perm)), base)
