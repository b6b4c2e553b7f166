"""The readers: CiteULike users.dat, CSV/TSV logs and synthetic data, each into `Interactions`.

Their line parsers (`parse_users_dat_line`, `CsvLayout`) also serve the pipeline's Beam ingestion, which reads
sharded files line by line, so both paths accept and reject the same lines with the same messages.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hetcomp_tf.data.datafiles import verify_citeulike_sha256
from hetcomp_tf.data.dataset import Interactions
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.util.files import atomic_file
from hetcomp_tf.util.progress import log

INT64_MAX = int(np.iinfo(np.int64).max)  # users.dat's counts and item ids are int64
# an integer as users.dat writes one: ASCII digits, a sign (Python's int() also takes "1_000" and other scripts' digits)
_INTEGER = re.compile(r"[+-]?[0-9]+")


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
    return Interactions(
        users=(keys // n_items).astype(np.int32),
        items=(keys % n_items).astype(np.int32),
        user_vocab=np.asarray(user_vocab, dtype=np.str_),
        item_vocab=np.asarray(item_vocab, dtype=np.str_),
    )


def read_citeulike(path, verify_sha256: bool = True) -> Interactions:
    """Reads a CiteULike users.dat: line u (0-based) is `N item_1 ... item_N`; every line is a user, even one
    with N = 0.

    Args:
        path: the users.dat file.
        verify_sha256: check it against CiteULike's sha256.

    Returns:
        `Interactions`, users named by their 0-based line, items by their id (vocabulary in numeric order).

    Raises:
        HetCompError: a missing, empty or non-UTF-8 file, a malformed line, or another sha256.
    """
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
    """The item ids of one users.dat line `N item_1 ... item_N`.

    Args:
        line: the line.
        path: the file, for the error message.
        lineno: the 1-based line number, for the error message.

    Returns:
        int64 [N].

    Raises:
        HetCompError: an empty line, a token that is no integer, a negative or too large one, or a count N that
            does not match the ids.
    """
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
            raise HetCompError(
                f"{path} line {lineno}: {_users_dat_field(position)} {tokens[position]} does not fit "
                f"in int64 (at most {INT64_MAX})"
            )
    numbers = np.array(values, dtype=np.int64)
    if numbers[0] != len(numbers) - 1:
        raise HetCompError(
            f"{path} line {lineno}: count N = {numbers[0]} but the line has " f"{len(numbers) - 1} item ids"
        )
    return numbers[1:]


def _users_dat_field(position: int) -> str:
    return "count N" if position == 0 else "item id"


def write_snapshot(source, target, fraction: float, seed: int = 0) -> Path:
    """Writes an earlier snapshot of the users.dat `source` at `target`.

    Every line (user) keeps the first floor(`fraction` x N) of its N items after a shuffle seeded by (`seed`, line),
    written in ascending id order as CiteULike's lines are. A user keeps its line (and so its id), maybe with no items;
    a smaller fraction keeps a subset of a larger one's items; nothing is written unless the whole snapshot is.

    Args:
        source: the users.dat to take the snapshot of.
        target: the snapshot's file.
        fraction: the share of each user's items kept, in (0, 1].
        seed: the shuffles' seed.

    Returns:
        `target` as a Path.

    Raises:
        HetCompError: a fraction outside (0, 1], `target` the same file as `source`, or an unreadable source.
    """
    if not 0.0 < fraction <= 1.0:
        raise HetCompError(f"snapshot fraction {fraction:g} must be in (0, 1]")
    source, target = Path(source), Path(target)
    if target.exists() and target.resolve() == source.resolve():
        raise HetCompError(f"snapshot: --out {target} is the input file; write the snapshot elsewhere")
    inter = read_citeulike(source, verify_sha256=False)
    starts = np.searchsorted(inter.users, np.arange(inter.n_users + 1))
    lines = []
    for user in range(inter.n_users):
        items = inter.items[starts[user] : starts[user + 1]]
        kept = np.random.default_rng([seed, user]).permutation(items)[: int(fraction * len(items) + 1e-9)]
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
    """How one interaction log file is laid out, told from its first line.

    The delimiter (a tab in it, else `,`), whether that line is a header (its first field a usual column name, or its
    rating field not a number), and how many fields every row has.

    Attributes:
        path: the file, for error messages.
        delimiter: "\\t" or ",".
        has_header: whether line 1 is a header.
        n_fields: the fields of every row, 2 to 4.
    """

    path: str
    delimiter: str
    has_header: bool
    n_fields: int

    @classmethod
    def of(cls, first_line: str, path, min_rating: float | None) -> CsvLayout:
        """The layout its first line tells.

        Args:
            first_line: the file's first line.
            path: the file, for error messages.
            min_rating: the rating threshold to apply (needs a rating column), or None.

        Returns:
            The `CsvLayout`.

        Raises:
            HetCompError: not 2 to 4 fields, or `min_rating` without a rating column.
        """
        delimiter = "\t" if "\t" in first_line else ","
        first = [f.strip() for f in next(csv.reader([first_line], delimiter=delimiter))] or [""]
        has_header = first[0].lower() in _HEADER_NAMES or (len(first) >= 3 and not _is_float(first[2]))
        if not 2 <= len(first) <= 4:
            raise HetCompError(f"{path} line 1: {len(first)} fields, expected user,item[,rating][,timestamp]")
        if min_rating is not None and len(first) < 3:
            raise HetCompError(f"{path}: min_rating={min_rating} given but the file has no rating column")
        return cls(path=str(path), delimiter=delimiter, has_header=has_header, n_fields=len(first))

    def parse(self, record: list[str], lineno: int, min_rating: float | None) -> tuple[str, str, bool] | None:
        """One row of the file.

        Args:
            record: the csv fields of the line.
            lineno: its 1-based line number.
            min_rating: the rating threshold, or None.

        Returns:
            (user, item, kept by `min_rating`), or None for the header or a blank line.

        Raises:
            HetCompError: another field count than line 1's, an empty id, or a rating that is no number.
        """
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
    """Reads an interaction log `user,item[,rating][,timestamp]` with `,` or tab; ids are arbitrary strings.

    The first row is a header when its first field is a usual column name (user, user_id, ...) or its rating
    field is not a number. Timestamps are read past: the paper's split is random per user.

    Args:
        path: the log file.
        min_rating: rows rated below it are dropped (explicit -> implicit feedback); None: every row counts.

    Returns:
        `Interactions`, vocabularies in sorted order.

    Raises:
        HetCompError: a missing, empty or non-UTF-8 file, a malformed row, no interactions, or none rated
            >= min_rating.
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
    """Says once per file and process (a benchmark reads its data twice) that explicit ratings of any value,
    0.5 stars too, count as positives unless the user binarises them.

    Args:
        path: the log file.
        rows: its rated rows.
    """
    if path.resolve() not in _NOTED:
        _NOTED.add(path.resolve())
        log(
            f"{path}: all {rows:,} rated rows kept as positives, whatever their rating; "
            "--min-rating X binarises (only ratings >= X count)"
        )


def make_synthetic(n_users: int, n_items: int, seed: int) -> Interactions:
    """Users and items in latent taste clusters plus a low-rank twist and Zipf popularity, so any model that
    learns collaborative structure beats random and popularity by a wide margin; deterministic per seed.

    Each user draws 10 + Poisson(10) items without replacement from a softmax over preference logits
    (Gumbel top-k), so every user survives the paper's >= 5 filter.

    Args:
        n_users: users, >= 2.
        n_items: items, >= 40.
        seed: the generator's seed.

    Returns:
        `Interactions` with ids "u<index>" and "i<index>".

    Raises:
        HetCompError: fewer than 2 users or 40 items.
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
    # weights chosen so that item-kNN clearly beats popularity, and popularity clearly beats random
    logits = (
        3.0 * (user_cluster[:, None] == item_cluster[None, :])
        + user_f @ item_f.T / np.sqrt(rank)
        + 0.8 * log_popularity[None, :]
    )
    logits += rng.gumbel(size=logits.shape)
    n_per_user = np.minimum(10 + rng.poisson(10, size=n_users), n_items // 2)
    ranks = np.argsort(np.argsort(-logits, axis=1), axis=1)
    users, items = np.nonzero(ranks < n_per_user[:, None])
    user_vocab = np.char.add("u", np.arange(n_users).astype(np.str_))
    item_vocab = np.char.add("i", np.arange(n_items).astype(np.str_))
    return _interactions(users, items, user_vocab, item_vocab)
