"""The paper's preprocessing and split of `Interactions` into a `Dataset` (`split_dataset`), in the protocols of
`DataConfig.split_protocol`: "authors", "iterative" and "per_user" (each user alone, `user_split.py`).
"""

from __future__ import annotations

import numpy as np

from hetcomp_tf.config import SPLIT_PROTOCOLS, DataConfig
from hetcomp_tf.data.dataset import CSR, Dataset, Interactions
from hetcomp_tf.data.user_split import split_user
from hetcomp_tf.errors import HetCompError


def check_split_config(cfg: DataConfig) -> np.ndarray:
    """The split ratios, once they and the protocol are known to be valid.

    Args:
        cfg: the data config (`split_ratios`, `split_protocol`).

    Returns:
        float64 [3]: (r_train, r_valid, r_test).

    Raises:
        HetCompError: ratios that are not three positive numbers summing to 1, or an unknown protocol.
    """
    ratios = np.asarray(cfg.split_ratios, dtype=np.float64)
    if ratios.shape != (3,) or (ratios <= 0).any() or abs(ratios.sum() - 1.0) > 1e-6:
        raise HetCompError(f"split_ratios {tuple(cfg.split_ratios)} must be three positive numbers summing to 1")
    if cfg.split_protocol not in SPLIT_PROTOCOLS:
        raise HetCompError(f"split_protocol {cfg.split_protocol!r}: choose one of {', '.join(SPLIT_PROTOCOLS)}")
    return ratios


def split_dataset(inter: Interactions, cfg: DataConfig, name: str) -> Dataset:
    """The paper's preprocessing and split of `Interactions` into a `Dataset`.

    Users below `min_user_interactions` dropped, each user's items shuffled with `seed`, test = the first floor(n *
    r_test), valid = the next floor(n * r_valid), train = the rest, then valid/test items never seen in train dropped;
    `cfg.split_protocol` decides the shuffle and what happens next (`_split_authors`, `_split_iterative`,
    `_split_per_user`).

    Args:
        inter: the interactions.
        cfg: the data config (min_user_interactions, split ratios and protocol, seed).
        name: the dataset's name.

    Returns:
        The split `Dataset`, users and items re-indexed to the kept ones.

    Raises:
        HetCompError: a bad config, or data too small or too sparse to leave a user with valid and test items.
    """
    ratios = check_split_config(cfg)
    users = inter.users.astype(np.int64)
    items = inter.items.astype(np.int64)
    counts = np.bincount(users, minlength=inter.n_users)
    active = counts >= cfg.min_user_interactions
    n_active = int(active.sum())
    if n_active == 0:
        raise HetCompError(
            f"dataset {name!r}: no user has >= {cfg.min_user_interactions} interactions "
            f"({inter.n_users} users, {len(inter)} interactions)"
        )
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
        part[order[n_test : n_test + n_valid]] = 1
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
        raise HetCompError(
            f"dataset {name!r}: no user kept valid and test items that also occur in train; the "
            "data is too small or too sparse"
        )
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
    return _dataset(
        inter.user_vocab[user_order],
        inter.item_vocab[item_order],
        user_rank[users],
        item_rank[items],
        part,
        row_kept,
        kept_users[user_order],
        in_train[item_order],
        name,
    )


def _dataset(user_vocab, item_vocab, users, items, part, row_kept, kept_users, catalogue, name: str) -> Dataset:
    """The Dataset of the rows `row_kept` (with their `part`), users and items re-indexed to the kept ones."""
    user_new = np.cumsum(kept_users) - 1
    item_new = np.cumsum(catalogue) - 1
    splits = {
        s: CSR.from_pairs(
            user_new[users[row_kept & (part == p)]], item_new[items[row_kept & (part == p)]], int(kept_users.sum())
        )
        for p, s in enumerate(("train", "valid", "test"))
    }
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
        raise HetCompError(
            f"dataset {name!r}: no user left after the split ({n_active} users have >= "
            f"{cfg.min_user_interactions} interactions, none kept valid and test items that "
            "also occur in train); the data is too small or too sparse"
        )

    return _dataset(inter.user_vocab, inter.item_vocab, users, items, part, row_alive, alive_users, in_train, name)
