"""Interaction data: readers (CiteULike users.dat, CSV/TSV logs, synthetic), the paper's preprocessing and
split, and the containers every other module consumes (`CSR` rows per user, `Dataset`).

Ids inside the library are 0-based int32 indices; the original ids live only in the vocabularies so that
outputs (served recommendations, result files) can speak them.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from hetcomp_tf.config import SPLIT_PROTOCOLS, DataConfig
from hetcomp_tf.datafiles import file_format, locate, verify_citeulike_sha256
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.files import atomic_file
from hetcomp_tf.progress import log
from hetcomp_tf.user_split import split_user

DATASET_FORMAT_VERSION = 1
INT64_MAX = int(np.iinfo(np.int64).max)  # users.dat's counts and item ids are int64
# an integer as users.dat writes one: ASCII digits, a sign (Python's int() also takes "1_000" and other scripts' digits)
_INTEGER = re.compile(r"[+-]?[0-9]+")


@dataclass(frozen=True)
class CSR:
    """Compressed sparse rows of item ids, one row per user; within a row items are ascending unless a
    producer states otherwise (e.g. a teacher's rank order)."""

    indptr: np.ndarray  # int64 [n_rows + 1]
    indices: np.ndarray  # int32 [nnz]

    @classmethod
    def from_pairs(cls, rows: np.ndarray, cols: np.ndarray, n_rows: int) -> CSR:
        """Rows sorted by (row, col); pairs are assumed distinct."""
        rows = np.asarray(rows, dtype=np.int64)
        cols = np.asarray(cols, dtype=np.int64)
        order = np.lexsort((cols, rows))
        counts = np.bincount(rows, minlength=n_rows)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(indptr=indptr, indices=cols[order].astype(np.int32))

    @classmethod
    def from_rows(cls, rows: list) -> CSR:
        """From a list of per-row item sequences, order kept."""
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        flat = np.concatenate([np.asarray(r, dtype=np.int32) for r in rows]) if rows else np.zeros(0, np.int32)
        return cls(indptr=indptr, indices=flat.astype(np.int32))

    @property
    def n_rows(self) -> int:
        return len(self.indptr) - 1

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1])

    def row(self, r: int) -> np.ndarray:
        return self.indices[self.indptr[r] : self.indptr[r + 1]]

    def lengths(self) -> np.ndarray:
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
        """int32 [n_rows, width]: each row's first `width` items in stored order, then `pad`."""
        lengths = self.lengths()
        width = int(lengths.max(initial=0)) if width is None else int(width)
        out = np.full((self.n_rows, width), pad, dtype=np.int32)
        pos = np.arange(self.nnz, dtype=np.int64) - np.repeat(self.indptr[:-1], lengths)
        keep = pos < width
        out[self.row_ids()[keep], pos[keep]] = self.indices[keep]
        return out

    def union(self, other: CSR) -> CSR:
        """Row-wise union with a CSR over the same rows (items ascending), e.g. train + valid to exclude."""
        rows = np.concatenate([self.row_ids(), other.row_ids()])
        cols = np.concatenate([self.indices, other.indices]).astype(np.int64)
        n_cols = int(cols.max(initial=0)) + 1
        keys = np.unique(rows * n_cols + cols)
        return CSR.from_pairs(keys // n_cols, keys % n_cols, self.n_rows)

    def to_dense(self, n_cols: int) -> np.ndarray:
        """bool [n_rows, n_cols] membership matrix (for small data and references)."""
        out = np.zeros((self.n_rows, n_cols), dtype=bool)
        out[self.row_ids(), self.indices] = True
        return out


@dataclass(frozen=True)
class Interactions:
    """Raw interactions before filtering and split: deduplicated (user, item) index pairs plus vocabularies."""

    users: np.ndarray  # int32 [nnz] index into user_vocab
    items: np.ndarray  # int32 [nnz] index into item_vocab
    user_vocab: np.ndarray  # str [n_users] original ids
    item_vocab: np.ndarray  # str [n_items]

    @property
    def n_users(self) -> int:
        return len(self.user_vocab)

    @property
    def n_items(self) -> int:
        return len(self.item_vocab)

    def __len__(self) -> int:
        return len(self.users)


@dataclass(frozen=True)
class Dataset:
    """Filtered, re-indexed and split data; internal user u is `user_vocab[u]` in the source file."""

    name: str
    user_vocab: np.ndarray  # str [n_users]
    item_vocab: np.ndarray  # str [n_items]
    train: CSR
    valid: CSR
    test: CSR

    @property
    def n_users(self) -> int:
        return len(self.user_vocab)

    @property
    def n_items(self) -> int:
        return len(self.item_vocab)

    def same_split(self, other: Dataset) -> bool:
        """True if `other` holds the same ids and the same train/valid/test interactions (the name aside)."""
        return (np.array_equal(self.user_vocab, other.user_vocab) and np.array_equal(self.item_vocab, other.item_vocab)
                and all(np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices)
                        for a, b in ((self.train, other.train), (self.valid, other.valid), (self.test, other.test))))

    def sizes(self) -> dict:
        return {"n_users": self.n_users, "n_items": self.n_items, "n_train": self.train.nnz,
                "n_valid": self.valid.nnz, "n_test": self.test.nnz}

    def split(self, name: str) -> CSR:
        if name not in ("train", "valid", "test"):
            raise HetCompError(f"unknown split {name!r}: choose train, valid or test")
        return getattr(self, name)

    def save(self, path) -> None:
        """One .npz without pickles: vocabularies as unicode arrays, each split as indptr/indices; atomic, since
        a later step (or a benchmark rerun) trusts whatever dataset.npz it finds."""
        arrays = {"format_version": np.int64(DATASET_FORMAT_VERSION), "name": np.str_(self.name),
                  "user_vocab": np.asarray(self.user_vocab, dtype=np.str_),
                  "item_vocab": np.asarray(self.item_vocab, dtype=np.str_)}
        for split in ("train", "valid", "test"):
            csr = getattr(self, split)
            arrays[f"{split}_indptr"] = csr.indptr
            arrays[f"{split}_indices"] = csr.indices
        with atomic_file(path) as temporary, open(temporary, "wb") as f:  # a file object: numpy adds no ".npz"
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path) -> Dataset:
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
            splits = {s: CSR(arrays[f"{s}_indptr"].astype(np.int64), arrays[f"{s}_indices"].astype(np.int32))
                      for s in ("train", "valid", "test")}
            return cls(name=str(arrays["name"]), user_vocab=arrays["user_vocab"],
                       item_vocab=arrays["item_vocab"], **splits)
        except KeyError as err:
            raise HetCompError(f"dataset file {path} lacks the array {err.args[0]!r}") from None

    def extend_vocabularies(self, user_vocab, item_vocab) -> Dataset:
        """The same splits re-indexed so that the ids of `user_vocab` / `item_vocab` (a previous snapshot's) keep
        their indices and ids new to this data follow them in this data's order: a model trained on the previous
        snapshot then maps row for row onto this one's first rows. A previous id this data lacks keeps its index
        with no interactions, so indices never move across snapshots."""
        users, user_index = _extended(user_vocab, self.user_vocab, "user")
        items, item_index = _extended(item_vocab, self.item_vocab, "item")
        splits = {s: CSR.from_pairs(user_index[csr.row_ids()], item_index[csr.indices], len(users))
                  for s, csr in (("train", self.train), ("valid", self.valid), ("test", self.test))}
        return Dataset(name=self.name, user_vocab=users, item_vocab=items, **splits)

    def restricted(self, user_vocab, item_vocab) -> Dataset:
        """Only the users and items whose ids `user_vocab` / `item_vocab` hold (in this data's order, re-indexed), with
        their interactions: the ground on which a model trained on another snapshot can be compared with one on this."""
        user_kept, item_kept = np.isin(self.user_vocab, user_vocab), np.isin(self.item_vocab, item_vocab)
        user_new, item_new = np.cumsum(user_kept) - 1, np.cumsum(item_kept) - 1
        splits = {}
        for split in ("train", "valid", "test"):
            csr = self.split(split)
            rows, cols = csr.row_ids(), csr.indices
            kept = user_kept[rows] & item_kept[cols]
            splits[split] = CSR.from_pairs(user_new[rows[kept]], item_new[cols[kept]], int(user_kept.sum()))
        return Dataset(name=self.name, user_vocab=self.user_vocab[user_kept], item_vocab=self.item_vocab[item_kept],
                       **splits)


def _extended(previous, current: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(`previous` + the ids of `current` it lacks, in `current`'s order; int64 index of each current id in it)."""
    previous, current = np.asarray(previous, dtype=np.str_), np.asarray(current, dtype=np.str_)
    if len(np.unique(previous)) != len(previous):
        raise HetCompError(f"the previous {what} vocabulary holds an id twice; it cannot be extended")
    vocab = np.concatenate([previous, current[~np.isin(current, previous)]])
    order = np.argsort(vocab)
    return vocab, order[np.searchsorted(vocab, current, sorter=order)].astype(np.int64)


def rows_to_mask(rows: tf.RaggedTensor, user_ids: tf.Tensor, n_items) -> tf.Tensor:
    """bool [b, n_items]: True where item i is in row `user_ids[j]` of `rows`; one scatter, no loops."""
    picked = tf.gather(rows, user_ids)
    coords = tf.stack([tf.cast(picked.value_rowids(), tf.int64), tf.cast(picked.flat_values, tf.int64)], axis=1)
    shape = tf.stack([tf.shape(user_ids, out_type=tf.int64)[0], tf.cast(n_items, tf.int64)])
    hits = tf.scatter_nd(coords, tf.ones_like(picked.flat_values, dtype=tf.int32), shape)
    return hits > 0


# ----------------------------------------------------------------------------------------------- readers

_HEADER_NAMES = {"user", "users", "user_id", "userid", "uid", "u", "user id", "item", "item_id", "itemid"}


def _read_text(path, what: str) -> str:
    path = Path(path)
    if not path.is_file():
        raise HetCompError(f"{what} file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise HetCompError(f"{what} file {path} is not UTF-8 text (byte {err.start})") from None
    if not text.strip():
        raise HetCompError(f"{what} file {path} is empty")
    return text


def _interactions(user_idx: np.ndarray, item_idx: np.ndarray, user_vocab, item_vocab) -> Interactions:
    """Deduplicates (user, item) pairs; pairs come out sorted by user then item."""
    n_items = max(len(item_vocab), 1)
    keys = np.unique(np.asarray(user_idx, np.int64) * n_items + np.asarray(item_idx, np.int64))
    return Interactions(users=(keys // n_items).astype(np.int32), items=(keys % n_items).astype(np.int32),
                        user_vocab=np.asarray(user_vocab, dtype=np.str_),
                        item_vocab=np.asarray(item_vocab, dtype=np.str_))


def read_citeulike(path, verify_sha256: bool = True) -> Interactions:
    """users.dat: line u (0-based) is `N item_1 ... item_N`; every line is a user, even one with N = 0."""
    path = Path(path)
    text = _read_text(path, "users.dat")
    if verify_sha256:
        verify_citeulike_sha256(path)
    rows, users = [], []
    for lineno, line in enumerate(text.splitlines(), start=1):
        rows.append(parse_users_dat_line(line, path, lineno))
        users.append(np.full(len(rows[-1]), lineno - 1, dtype=np.int64))
    raw_items = np.concatenate(rows)
    item_ids, item_idx = np.unique(raw_items, return_inverse=True)  # numeric order of the original ids
    user_vocab = np.arange(len(rows)).astype(np.str_)
    return _interactions(np.concatenate(users), item_idx, user_vocab, item_ids.astype(np.str_))


def parse_users_dat_line(line: str, path, lineno: int) -> np.ndarray:
    """int64 item ids of one users.dat line `N item_1 ... item_N` (1-based `lineno`, for the error message)."""
    tokens = line.split()
    if not tokens:
        raise HetCompError(f"{path} line {lineno}: empty line, expected 'N item_1 ... item_N'")
    bad = next((i for i, t in enumerate(tokens) if not _INTEGER.fullmatch(t)), None)
    if bad is not None:
        raise HetCompError(f"{path} line {lineno}: {_users_dat_field(bad)} {tokens[bad]!r} is not an integer")
    values = [int(t) for t in tokens]
    for position, value in enumerate(values):
        if value < 0:
            raise HetCompError(f"{path} line {lineno}: negative {_users_dat_field(position)} {tokens[position]}")
        if value > INT64_MAX:
            raise HetCompError(f"{path} line {lineno}: {_users_dat_field(position)} {tokens[position]} does not fit "
                               f"in int64 (at most {INT64_MAX})")
    numbers = np.array(values, dtype=np.int64)
    if numbers[0] != len(numbers) - 1:
        raise HetCompError(f"{path} line {lineno}: count N = {numbers[0]} but the line has "
                           f"{len(numbers) - 1} item ids")
    return numbers[1:]


def _users_dat_field(position: int) -> str:
    return "count N" if position == 0 else "item id"


def write_snapshot(source, target, fraction: float, seed: int = 0) -> Path:
    """An earlier snapshot of the users.dat `source` at `target`: every line (user) keeps the first
    floor(`fraction` x N) of its N items after a shuffle seeded by (`seed`, line), written in ascending id order as
    CiteULike's lines are. A user keeps its line (and so its id), maybe with no items; a smaller fraction keeps a
    subset of a larger one's items; nothing is written unless the whole snapshot is."""
    if not 0.0 < fraction <= 1.0:
        raise HetCompError(f"snapshot fraction {fraction:g} must be in (0, 1]")
    source, target = Path(source), Path(target)
    if target.exists() and target.resolve() == source.resolve():
        raise HetCompError(f"snapshot: --out {target} is the input file; write the snapshot elsewhere")
    inter = read_citeulike(source, verify_sha256=False)
    starts = np.searchsorted(inter.users, np.arange(inter.n_users + 1))
    lines = []
    for user in range(inter.n_users):
        items = inter.items[starts[user]:starts[user + 1]]
        kept = np.random.default_rng([seed, user]).permutation(items)[:int(fraction * len(items) + 1e-9)]
        lines.append(" ".join([str(len(kept)), *inter.item_vocab[np.sort(kept)].tolist()]))
    with atomic_file(target) as temporary:
        temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return target


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class CsvLayout:
    """How one interaction log file is laid out, told from its first line: delimiter (a tab in it, else `,`),
    whether that line is a header (its first field a usual column name, or its rating field not a number), and how
    many fields every row has."""

    path: str
    delimiter: str
    has_header: bool
    n_fields: int

    @classmethod
    def of(cls, first_line: str, path, min_rating: float | None) -> CsvLayout:
        delimiter = "\t" if "\t" in first_line else ","
        first = [f.strip() for f in next(csv.reader([first_line], delimiter=delimiter))] or [""]
        has_header = first[0].lower() in _HEADER_NAMES or (len(first) >= 3 and not _is_float(first[2]))
        if not 2 <= len(first) <= 4:
            raise HetCompError(f"{path} line 1: {len(first)} fields, expected user,item[,rating][,timestamp]")
        if min_rating is not None and len(first) < 3:
            raise HetCompError(f"{path}: min_rating={min_rating} given but the file has no rating column")
        return cls(path=str(path), delimiter=delimiter, has_header=has_header, n_fields=len(first))

    def parse(self, record: list[str], lineno: int, min_rating: float | None) -> tuple[str, str, bool] | None:
        """(user, item, kept by `min_rating`) of the csv `record` on line `lineno`; None for the header or a blank
        line."""
        if (lineno == 1 and self.has_header) or not record or not any(f.strip() for f in record):
            return None
        if len(record) != self.n_fields:
            raise HetCompError(f"{self.path} line {lineno}: {len(record)} fields, expected {self.n_fields} like line 1")
        user, item = record[0].strip(), record[1].strip()
        if not user or not item:
            raise HetCompError(f"{self.path} line {lineno}: empty {'user' if not user else 'item'} id")
        if self.n_fields < 3:
            return user, item, True
        try:
            rating = float(record[2])
        except ValueError:
            raise HetCompError(f"{self.path} line {lineno}: rating {record[2]!r} is not a number") from None
        return user, item, min_rating is None or rating >= min_rating


def read_csv(path, min_rating: float | None = None) -> Interactions:
    """`user,item[,rating][,timestamp]` with `,` or tab; ids are arbitrary strings.

    The first row is a header when its first field is a usual column name (user, user_id, ...) or its rating
    field is not a number. With `min_rating`, rows rated below it are dropped (explicit -> implicit feedback);
    otherwise every row counts. Timestamps are read past: the paper's split is random per user.
    """
    path = Path(path)
    text = _read_text(path, "interaction log")
    lines = text.splitlines()
    layout = CsvLayout.of(lines[0], path, min_rating)
    records = csv.reader(lines, delimiter=layout.delimiter)
    users, items, keep = [], [], []
    for lineno, record in enumerate(records, start=1):
        row = layout.parse(record, lineno, min_rating)
        if row is not None:
            users.append(row[0])
            items.append(row[1])
            keep.append(row[2])
    if not users:
        raise HetCompError(f"{path} holds a header but no interactions")
    if min_rating is None and layout.n_fields >= 3:
        note_ratings_kept(path, len(users))
    keep = np.array(keep, dtype=bool)
    if not keep.any():
        raise HetCompError(f"{path}: no interaction has rating >= min_rating={min_rating}")
    user_vocab, user_idx = np.unique(np.array(users, dtype=np.str_)[keep], return_inverse=True)
    item_vocab, item_idx = np.unique(np.array(items, dtype=np.str_)[keep], return_inverse=True)
    return _interactions(user_idx, item_idx, user_vocab, item_vocab)


_NOTED: set[Path] = set()


def note_ratings_kept(path: Path, rows: int) -> None:
    """Once per file and process (a benchmark reads its data twice): explicit ratings of any value, 0.5 stars
    too, count as positives unless the user binarises them."""
    if path.resolve() not in _NOTED:
        _NOTED.add(path.resolve())
        log(f"{path}: all {rows:,} rated rows kept as positives, whatever their rating; "
            "--min-rating X binarises (only ratings >= X count)")


def make_synthetic(n_users: int, n_items: int, seed: int) -> Interactions:
    """Users and items in latent taste clusters plus a low-rank twist and Zipf popularity, so any model that
    learns collaborative structure beats random and popularity by a wide margin; deterministic per seed.

    Each user draws 10 + Poisson(10) items without replacement from a softmax over preference logits
    (Gumbel top-k), so every user survives the paper's >= 5 filter.
    """
    if n_users < 2 or n_items < 40:
        raise HetCompError(f"synthetic data needs at least 2 users and 40 items, got {n_users} and {n_items}")
    rng = np.random.default_rng(seed)
    n_clusters, rank = 8, 4
    user_cluster = rng.integers(n_clusters, size=n_users)
    item_cluster = rng.integers(n_clusters, size=n_items)
    log_popularity = -np.log(rng.permutation(n_items) + 1.0)  # Zipf(1) on a random item order
    user_f = rng.normal(size=(n_users, rank))
    item_f = rng.normal(size=(n_items, rank))
    # weights chosen so that on 400 x 300 item-kNN reaches Recall@10 ~0.35, popularity ~0.19, random ~0.04
    logits = (3.0 * (user_cluster[:, None] == item_cluster[None, :]) + user_f @ item_f.T / np.sqrt(rank)
              + 0.8 * log_popularity[None, :])
    logits += rng.gumbel(size=logits.shape)
    n_per_user = np.minimum(10 + rng.poisson(10, size=n_users), n_items // 2)
    ranks = np.argsort(np.argsort(-logits, axis=1), axis=1)
    users, items = np.nonzero(ranks < n_per_user[:, None])
    user_vocab = np.char.add("u", np.arange(n_users).astype(np.str_))
    item_vocab = np.char.add("i", np.arange(n_items).astype(np.str_))
    return _interactions(users, items, user_vocab, item_vocab)


# ----------------------------------------------------------------------------------------------- split

def check_split_config(cfg: DataConfig) -> np.ndarray:
    """float64 [3] split ratios, once they and the protocol are known to be valid."""
    ratios = np.asarray(cfg.split_ratios, dtype=np.float64)
    if ratios.shape != (3,) or (ratios <= 0).any() or abs(ratios.sum() - 1.0) > 1e-6:
        raise HetCompError(f"split_ratios {tuple(cfg.split_ratios)} must be three positive numbers summing to 1")
    if cfg.split_protocol not in SPLIT_PROTOCOLS:
        raise HetCompError(f"split_protocol {cfg.split_protocol!r}: choose one of {', '.join(SPLIT_PROTOCOLS)}")
    return ratios


def split_dataset(inter: Interactions, cfg: DataConfig, name: str) -> Dataset:
    """The paper's preprocessing: users below `min_user_interactions` dropped, each user's items shuffled with
    `seed`, test = the first floor(n * r_test), valid = the next floor(n * r_valid), train = the rest, then
    valid/test items never seen in train dropped; `cfg.split_protocol` decides the shuffle and what happens next
    (`_split_authors`, `_split_iterative`, `_split_per_user`)."""
    ratios = check_split_config(cfg)
    users = inter.users.astype(np.int64)
    items = inter.items.astype(np.int64)
    counts = np.bincount(users, minlength=inter.n_users)
    active = counts >= cfg.min_user_interactions
    n_active = int(active.sum())
    if n_active == 0:
        raise HetCompError(f"dataset {name!r}: no user has >= {cfg.min_user_interactions} interactions "
                           f"({inter.n_users} users, {len(inter)} interactions)")
    keep = active[users]
    users, items = users[keep], items[keep]
    split = {"authors": _split_authors, "iterative": _split_iterative, "per_user": _split_per_user}
    return split[cfg.split_protocol](inter, users, items, counts, ratios, cfg, name)


def _split_authors(inter: Interactions, users, items, counts, ratios, cfg: DataConfig, name: str) -> Dataset:
    """The HetComp authors' split (HetComp_WWW23 Utils/data_utils.py `load_data`), reproduced exactly: one legacy
    `np.random.RandomState(seed)` shuffles each kept user's items in turn (users in ascending index order = line
    order of a users.dat, items in ascending index order = their order on a CiteULike line, whose lines are
    sorted); held-out items never seen in train are dropped; a user left without valid or without test items
    loses both but stays in training; every item of a kept user stays in the catalogue (their code counts one
    unused index more). Users are kept once: nothing is re-filtered after the split."""
    rng = np.random.RandomState(cfg.seed)
    starts = np.searchsorted(users, np.arange(inter.n_users + 1))  # pairs are sorted by (user, item)
    part = np.zeros(len(users), dtype=np.int64)  # 0 train, 1 valid, 2 test, by position in the shuffle
    for user in np.flatnonzero(np.diff(starts)):
        order = list(range(starts[user], starts[user + 1]))
        rng.shuffle(order)
        n = len(order)
        n_test, n_valid = int(n * ratios[2]), int(n * ratios[1])
        part[order[:n_test]] = 2
        part[order[n_test:n_test + n_valid]] = 1
    row_kept, _ = _evaluation_rows(inter, users, items, part, name)
    kept_users = np.zeros(inter.n_users, dtype=bool)
    kept_users[users] = True
    catalogue = np.zeros(inter.n_items, dtype=bool)
    catalogue[items] = True
    return _dataset(inter.user_vocab, inter.item_vocab, users, items, part, row_kept, kept_users, catalogue, name)


def _evaluation_rows(inter: Interactions, users, items, part, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(rows kept, items in train): every train row, and the held-out rows whose item occurs in some train row of
    users left with both valid and test items; other users stay in training only (empty valid and test rows, so
    the metrics skip them)."""
    in_train = np.zeros(inter.n_items, dtype=bool)
    in_train[items[part == 0]] = True
    held_out_kept = in_train[items]
    has = {p: np.bincount(users[(part == p) & held_out_kept], minlength=inter.n_users) > 0 for p in (1, 2)}
    evaluated = (has[1] & has[2])[users]
    if not evaluated.any():
        raise HetCompError(f"dataset {name!r}: no user kept valid and test items that also occur in train; the "
                           "data is too small or too sparse")
    return (part == 0) | (held_out_kept & evaluated), in_train


def _split_per_user(inter: Interactions, users, items, counts, ratios, cfg: DataConfig, name: str) -> Dataset:
    """Each user's split depends on (seed, its original id, its original item ids) only (`user_split.split_user`),
    so sharded ingestion (components/interaction_beam.py) makes the same one. Then as the authors' protocol:
    held-out items never seen in train dropped, a user left without valid or test items stays in training only;
    the catalogue is the items seen in train. Both vocabularies are the kept original ids in sorted (code point)
    order, whatever the order of the input."""
    starts = np.searchsorted(users, np.arange(inter.n_users + 1))  # pairs are sorted by (user, item)
    part = np.zeros(len(users), dtype=np.int64)
    for user in np.flatnonzero(np.diff(starts)):
        span = slice(starts[user], starts[user + 1])
        ids = inter.item_vocab[items[span]].tolist()
        parts = dict(split_user(cfg.seed, str(inter.user_vocab[user]), ids, ratios))
        part[span] = [parts[item] for item in ids]
    row_kept, in_train = _evaluation_rows(inter, users, items, part, name)
    kept_users = np.zeros(inter.n_users, dtype=bool)
    kept_users[users] = True
    user_order, item_order = np.argsort(inter.user_vocab), np.argsort(inter.item_vocab)  # index -> sorted place
    user_rank, item_rank = np.argsort(user_order), np.argsort(item_order)
    return _dataset(inter.user_vocab[user_order], inter.item_vocab[item_order], user_rank[users], item_rank[items],
                    part, row_kept, kept_users[user_order], in_train[item_order], name)


def _dataset(user_vocab, item_vocab, users, items, part, row_kept, kept_users, catalogue, name: str) -> Dataset:
    """The Dataset of the rows `row_kept` (with their `part`), users and items re-indexed to the kept ones."""
    user_new = np.cumsum(kept_users) - 1
    item_new = np.cumsum(catalogue) - 1
    splits = {s: CSR.from_pairs(user_new[users[row_kept & (part == p)]], item_new[items[row_kept & (part == p)]],
                                int(kept_users.sum()))
              for p, s in enumerate(("train", "valid", "test"))}
    return Dataset(name=name, user_vocab=user_vocab[kept_users], item_vocab=item_vocab[catalogue], **splits)


def _split_iterative(inter: Interactions, users, items, counts, ratios, cfg: DataConfig, name: str) -> Dataset:
    """Iterative drops: users left without valid or test items are dropped (with their train items), then
    held-out items no longer seen in train, until nothing changes; items re-indexed to those in train."""
    n_active = len(np.unique(users))

    # One global key per interaction; sorting by (user, key) is a seeded shuffle within every user.
    key = np.random.default_rng(cfg.seed).random(len(users))
    order = np.lexsort((key, users))
    users, items = users[order], items[order]
    starts = np.searchsorted(users, users, side="left")
    pos = np.arange(len(users)) - starts
    n = counts[users]
    n_test = np.floor(n * ratios[2] + 1e-9).astype(np.int64)
    n_valid = np.floor(n * ratios[1] + 1e-9).astype(np.int64)
    part = np.where(pos < n_test, 2, np.where(pos < n_test + n_valid, 1, 0))  # 0 train, 1 valid, 2 test

    alive_users = np.zeros(inter.n_users, dtype=bool)
    alive_users[users] = True
    while True:  # drop held-out items unseen in train, then users without valid/test, until stable
        row_alive = alive_users[users]
        in_train = np.zeros(inter.n_items, dtype=bool)
        in_train[items[row_alive & (part == 0)]] = True
        row_alive &= in_train[items]
        has_valid = np.bincount(users[row_alive & (part == 1)], minlength=inter.n_users) > 0
        has_test = np.bincount(users[row_alive & (part == 2)], minlength=inter.n_users) > 0
        still = alive_users & has_valid & has_test
        if (still == alive_users).all():
            break
        alive_users = still
    if not alive_users.any():
        raise HetCompError(f"dataset {name!r}: no user left after the split ({n_active} users have >= "
                           f"{cfg.min_user_interactions} interactions, none kept valid and test items that "
                           "also occur in train); the data is too small or too sparse")

    return _dataset(inter.user_vocab, inter.item_vocab, users, items, part, row_alive, alive_users, in_train, name)


# ----------------------------------------------------------------------------------------------- loading

def load_dataset(data: str, fmt: str | None, cfg: DataConfig, verify_sha256: bool = True) -> Dataset:
    """`data` = "synthetic" | "citeulike" (`datafiles.citeulike_path()`: found or fetched, sha256-checked) | a path.

    A path's format comes from `fmt` or its suffix: users.dat-style ("citeulike"), "csv" (also .tsv/.txt) or
    "npz" (a saved Dataset, used as is). Only the canonical "citeulike" name is checked against the sha256.
    "synthetic" is `make_synthetic(cfg.synthetic_users, cfg.synthetic_items, cfg.seed)`.
    """
    path = locate(data)
    if path is None:
        return split_dataset(make_synthetic(cfg.synthetic_users, cfg.synthetic_items, cfg.seed), cfg, "synthetic")
    if data == "citeulike":
        return split_dataset(read_citeulike(path, verify_sha256=verify_sha256), cfg, "citeulike")
    fmt = file_format(path, fmt)
    if fmt == "npz":
        return Dataset.load(path)
    inter = read_citeulike(path, verify_sha256=False) if fmt == "citeulike" else read_csv(path, cfg.min_rating)
    return split_dataset(inter, cfg, dataset_name(path, fmt))


def dataset_name(path: Path, fmt: str) -> str:
    """The name result files, plots and tables show, as the user knows the data: every users.dat has that file
    name, so one is named by its folder (citeulike/users.dat -> "citeulike"); any other file by its stem."""
    folder = path.resolve().parent.name
    return folder if fmt == "citeulike" and path.name == "users.dat" and folder else path.stem
