"""The containers every other module consumes: `CSR` rows per user, `Interactions` (a reader's deduplicated
(user, item) pairs with their vocabularies) and `Dataset` (split and re-indexed; dataset.npz through `save`/`load`).

Ids inside the library are 0-based int32 indices; the original ids live only in the vocabularies so that
outputs (served recommendations, result files) can speak them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from hetcomp_tf.errors import HetCompError
from hetcomp_tf.util.files import atomic_file

DATASET_FORMAT_VERSION = 1


@dataclass(frozen=True)
class CSR:
    """Compressed sparse rows of item ids, one row per user; within a row items are ascending unless a
    producer states otherwise (e.g. a teacher's rank order).

    Attributes:
        indptr: int64 [n_rows + 1], row r is indices[indptr[r]:indptr[r + 1]].
        indices: int32 [nnz], the item ids.
    """

    indptr: np.ndarray
    indices: np.ndarray

    @classmethod
    def from_pairs(cls, rows: np.ndarray, cols: np.ndarray, n_rows: int) -> CSR:
        """From (row, col) pairs, assumed distinct.

        Args:
            rows: int [nnz] row ids.
            cols: int [nnz] item ids.
            n_rows: the rows of the result (rows without pairs are empty).

        Returns:
            A CSR with each row's items ascending.
        """
        rows = np.asarray(rows, dtype=np.int64)
        cols = np.asarray(cols, dtype=np.int64)
        order = np.lexsort((cols, rows))
        counts = np.bincount(rows, minlength=n_rows)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(indptr=indptr, indices=cols[order].astype(np.int32))

    @classmethod
    def from_rows(cls, rows: list) -> CSR:
        """From a list of per-row item sequences, order kept.

        Args:
            rows: one sequence of int item ids per row.

        Returns:
            A CSR.
        """
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        flat = np.concatenate([np.asarray(r, dtype=np.int32) for r in rows]) if rows else np.zeros(0, np.int32)
        return cls(indptr=indptr, indices=flat.astype(np.int32))

    @property
    def n_rows(self) -> int:
        """How many rows."""
        return len(self.indptr) - 1

    @property
    def nnz(self) -> int:
        """How many stored entries."""
        return int(self.indptr[-1])

    def row(self, r: int) -> np.ndarray:
        """Row r's items (a view).

        Args:
            r: the row.

        Returns:
            int32 [length of row r].
        """
        return self.indices[self.indptr[r] : self.indptr[r + 1]]

    def lengths(self) -> np.ndarray:
        """int64 [n_rows]: each row's length."""
        return np.diff(self.indptr).astype(np.int64)

    def row_ids(self) -> np.ndarray:
        """int64 [nnz]: the row of each stored entry (the COO row vector)."""
        return np.repeat(np.arange(self.n_rows, dtype=np.int64), self.lengths())

    def to_ragged(self) -> tf.RaggedTensor:
        """int32 [n_rows, None] with int64 row splits (the spec `rows_to_mask` and metrics expect)."""
        return tf.RaggedTensor.from_row_splits(
            tf.constant(self.indices, tf.int32), tf.constant(self.indptr, tf.int64), validate=False
        )

    def padded(self, width: int | None = None, pad: int = -1) -> np.ndarray:
        """As a dense padded matrix.

        Args:
            width: the columns (default: the longest row); longer rows are cut.
            pad: the value after each row's items.

        Returns:
            int32 [n_rows, width]: each row's first `width` items in stored order, then `pad`.
        """
        lengths = self.lengths()
        width = int(lengths.max(initial=0)) if width is None else int(width)
        out = np.full((self.n_rows, width), pad, dtype=np.int32)
        pos = np.arange(self.nnz, dtype=np.int64) - np.repeat(self.indptr[:-1], lengths)
        keep = pos < width
        out[self.row_ids()[keep], pos[keep]] = self.indices[keep]
        return out

    def union(self, other: CSR) -> CSR:
        """Row-wise union with a CSR over the same rows, e.g. train + valid to exclude.

        Args:
            other: a CSR with as many rows.

        Returns:
            A CSR, each row's distinct items ascending.
        """
        rows = np.concatenate([self.row_ids(), other.row_ids()])
        cols = np.concatenate([self.indices, other.indices]).astype(np.int64)
        n_cols = int(cols.max(initial=0)) + 1
        keys = np.unique(rows * n_cols + cols)
        return CSR.from_pairs(keys // n_cols, keys % n_cols, self.n_rows)

    def to_dense(self, n_cols: int) -> np.ndarray:
        """The membership matrix (for small data and references).

        Args:
            n_cols: the columns, more than the largest item id.

        Returns:
            bool [n_rows, n_cols].
        """
        out = np.zeros((self.n_rows, n_cols), dtype=bool)
        out[self.row_ids(), self.indices] = True
        return out


@dataclass(frozen=True)
class Interactions:
    """Raw interactions before filtering and split: deduplicated (user, item) index pairs plus vocabularies.

    Attributes:
        users: int32 [nnz], each pair's index into user_vocab.
        items: int32 [nnz], each pair's index into item_vocab.
        user_vocab: str [n_users], the original user ids.
        item_vocab: str [n_items], the original item ids.
    """

    users: np.ndarray
    items: np.ndarray
    user_vocab: np.ndarray
    item_vocab: np.ndarray

    @property
    def n_users(self) -> int:
        """The users of the vocabulary."""
        return len(self.user_vocab)

    @property
    def n_items(self) -> int:
        """The items of the vocabulary."""
        return len(self.item_vocab)

    def __len__(self) -> int:
        return len(self.users)


@dataclass(frozen=True)
class Dataset:
    """Filtered, re-indexed and split data; internal user u is `user_vocab[u]` in the source file.

    Attributes:
        name: the name result files show (`loading.dataset_name`).
        user_vocab: str [n_users], the original user ids.
        item_vocab: str [n_items], the original item ids.
        train: the train interactions, one row per user.
        valid: the valid interactions.
        test: the test interactions.
    """

    name: str
    user_vocab: np.ndarray
    item_vocab: np.ndarray
    train: CSR
    valid: CSR
    test: CSR

    @property
    def n_users(self) -> int:
        """The users (rows of every split)."""
        return len(self.user_vocab)

    @property
    def n_items(self) -> int:
        """The catalogue's size."""
        return len(self.item_vocab)

    def same_split(self, other: Dataset) -> bool:
        """Whether two datasets hold the same split.

        Args:
            other: another dataset.

        Returns:
            True if `other` holds the same ids and the same train/valid/test interactions (the name aside).
        """
        return (
            np.array_equal(self.user_vocab, other.user_vocab)
            and np.array_equal(self.item_vocab, other.item_vocab)
            and all(
                np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices)
                for a, b in ((self.train, other.train), (self.valid, other.valid), (self.test, other.test))
            )
        )

    def sizes(self) -> dict:
        """{"n_users", "n_items", "n_train", "n_valid", "n_test"}."""
        return {
            "n_users": self.n_users,
            "n_items": self.n_items,
            "n_train": self.train.nnz,
            "n_valid": self.valid.nnz,
            "n_test": self.test.nnz,
        }

    def split(self, name: str) -> CSR:
        """One split by name.

        Args:
            name: "train", "valid" or "test".

        Returns:
            Its CSR.

        Raises:
            HetCompError: another name.
        """
        if name not in ("train", "valid", "test"):
            raise HetCompError(f"unknown split {name!r}: choose train, valid or test")
        return getattr(self, name)

    def save(self, path) -> None:
        """Writes one .npz without pickles: vocabularies as unicode arrays, each split as indptr/indices; atomic,
        since a later step (or a benchmark rerun) trusts whatever dataset.npz it finds.

        Args:
            path: the .npz file.
        """
        arrays = {
            "format_version": np.int64(DATASET_FORMAT_VERSION),
            "name": np.str_(self.name),
            "user_vocab": np.asarray(self.user_vocab, dtype=np.str_),
            "item_vocab": np.asarray(self.item_vocab, dtype=np.str_),
        }
        for split in ("train", "valid", "test"):
            csr = getattr(self, split)
            arrays[f"{split}_indptr"] = csr.indptr
            arrays[f"{split}_indices"] = csr.indices
        with atomic_file(path) as temporary, open(temporary, "wb") as f:  # a file object: numpy adds no ".npz"
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path) -> Dataset:
        """Reads a dataset written by `save`.

        Args:
            path: the .npz file.

        Returns:
            The `Dataset`.

        Raises:
            HetCompError: a missing or unreadable file, another format version, or a missing array.
        """
        path = Path(path)
        if not path.is_file():
            raise HetCompError(f"dataset file {path} does not exist")
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError) as err:
            raise HetCompError(f"dataset file {path} is not a readable .npz: {err}") from None
        version = int(arrays.get("format_version", -1))
        if version != DATASET_FORMAT_VERSION:
            raise HetCompError(f"dataset file {path}: format_version {version}, expected {DATASET_FORMAT_VERSION}")
        try:
            splits = {
                s: CSR(arrays[f"{s}_indptr"].astype(np.int64), arrays[f"{s}_indices"].astype(np.int32))
                for s in ("train", "valid", "test")
            }
            return cls(
                name=str(arrays["name"]), user_vocab=arrays["user_vocab"], item_vocab=arrays["item_vocab"], **splits
            )
        except KeyError as err:
            raise HetCompError(f"dataset file {path} lacks the array {err.args[0]!r}") from None

    def extend_vocabularies(self, user_vocab, item_vocab) -> Dataset:
        """The same splits re-indexed so that a previous snapshot's ids keep their indices.

        The ids of `user_vocab` / `item_vocab` keep their indices and ids new to this data follow them in this data's
        order: a model trained on the previous snapshot then maps row for row onto this one's first rows. A previous id
        this data lacks keeps its index with no interactions, so indices never move across snapshots.

        Args:
            user_vocab: str [n] the previous snapshot's user ids, distinct.
            item_vocab: str [m] its item ids, distinct.

        Returns:
            The re-indexed `Dataset`, with at least n users and m items.

        Raises:
            HetCompError: a previous vocabulary that holds an id twice.
        """
        users, user_index = _extended(user_vocab, self.user_vocab, "user")
        items, item_index = _extended(item_vocab, self.item_vocab, "item")
        splits = {
            s: CSR.from_pairs(user_index[csr.row_ids()], item_index[csr.indices], len(users))
            for s, csr in (("train", self.train), ("valid", self.valid), ("test", self.test))
        }
        return Dataset(name=self.name, user_vocab=users, item_vocab=items, **splits)

    def restricted(self, user_vocab, item_vocab) -> Dataset:
        """Only the users and items whose ids `user_vocab` / `item_vocab` hold (in this data's order, re-indexed), with
        their interactions: the ground on which a model trained on another snapshot can be compared with one on this.

        Args:
            user_vocab: str, the user ids to keep.
            item_vocab: str, the item ids to keep.

        Returns:
            The restricted `Dataset`.
        """
        user_kept, item_kept = np.isin(self.user_vocab, user_vocab), np.isin(self.item_vocab, item_vocab)
        user_new, item_new = np.cumsum(user_kept) - 1, np.cumsum(item_kept) - 1
        splits = {}
        for split in ("train", "valid", "test"):
            csr = self.split(split)
            rows, cols = csr.row_ids(), csr.indices
            kept = user_kept[rows] & item_kept[cols]
            splits[split] = CSR.from_pairs(user_new[rows[kept]], item_new[cols[kept]], int(user_kept.sum()))
        return Dataset(
            name=self.name, user_vocab=self.user_vocab[user_kept], item_vocab=self.item_vocab[item_kept], **splits
        )


def _extended(previous, current: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(`previous` + the ids of `current` it lacks, in `current`'s order; int64 index of each current id in it)."""
    previous, current = np.asarray(previous, dtype=np.str_), np.asarray(current, dtype=np.str_)
    if len(np.unique(previous)) != len(previous):
        raise HetCompError(f"the previous {what} vocabulary holds an id twice; it cannot be extended")
    vocab = np.concatenate([previous, current[~np.isin(current, previous)]])
    order = np.argsort(vocab)
    return vocab, order[np.searchsorted(vocab, current, sorter=order)].astype(np.int64)


def rows_to_mask(rows: tf.RaggedTensor, user_ids: tf.Tensor, n_items) -> tf.Tensor:
    """The membership mask of a batch's rows; one scatter, no loops.

    Args:
        rows: int32 [n_rows, None] ragged rows with int64 row splits (`CSR.to_ragged`).
        user_ids: int32 [b] the rows to take.
        n_items: the catalogue's size.

    Returns:
        bool [b, n_items]: True where item i is in row `user_ids[j]`.
    """
    picked = tf.gather(rows, user_ids)
    coords = tf.stack([tf.cast(picked.value_rowids(), tf.int64), tf.cast(picked.flat_values, tf.int64)], axis=1)
    shape = tf.stack([tf.shape(user_ids, out_type=tf.int64)[0], tf.cast(n_items, tf.int64)])
    hits = tf.scatter_nd(coords, tf.ones_like(picked.flat_values, dtype=tf.int32), shape)
    return hits > 0
