"""The "per_user" split protocol in memory against a slow pure-Python reference written from its definition."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest

from hetcomp_tf.config import DataConfig
from hetcomp_tf.data import readers
from hetcomp_tf.data.dataset import Interactions
from hetcomp_tf.data.split import split_dataset
from hetcomp_tf.data.user_split import split_user
from hetcomp_tf.errors import HetCompError


def reference_split(pairs: set[tuple[str, str]], cfg: DataConfig) -> dict:
    """{"users", "items", "train", "valid", "test"}: sorted vocabularies and (user id, item id) sets, by the
    definition: keep users with >= min interactions, order each user's items by BLAKE2b of
    "seed:len(user):user:item", test = first floor(0.2 n), valid = next floor(0.2 n); drop held-out items no train
    row has; a user then without valid or test items keeps only train; items = those in train."""
    by_user: dict[str, list[str]] = {}
    for user, item in pairs:
        by_user.setdefault(user, []).append(item)
    parts = {"train": set(), "valid": set(), "test": set()}
    for user, items in by_user.items():
        if len(items) < cfg.min_user_interactions:
            continue
        key = {
            item: hashlib.blake2b(f"{cfg.seed}:{len(user)}:{user}:{item}".encode(), digest_size=8).digest()
            for item in items
        }
        ordered = sorted(items, key=lambda item: key[item])
        n_test = math.floor(len(items) * cfg.split_ratios[2] + 1e-9)
        n_valid = math.floor(len(items) * cfg.split_ratios[1] + 1e-9)
        for position, item in enumerate(ordered):
            name = "test" if position < n_test else "valid" if position < n_test + n_valid else "train"
            parts[name].add((user, item))
    train_items = {item for _, item in parts["train"]}
    held = {name: {(u, i) for u, i in parts[name] if i in train_items} for name in ("valid", "test")}
    evaluated = {u for u, _ in held["valid"]} & {u for u, _ in held["test"]}
    return {
        "users": sorted({u for u, _ in parts["train"]}),
        "items": sorted(train_items),
        "train": parts["train"],
        **{name: {(u, i) for u, i in held[name] if u in evaluated} for name in ("valid", "test")},
    }


def dataset_as_ids(data) -> dict:
    out = {"users": data.user_vocab.tolist(), "items": data.item_vocab.tolist()}
    for split in ("train", "valid", "test"):
        csr = data.split(split)
        out[split] = set(zip(data.user_vocab[csr.row_ids()].tolist(), data.item_vocab[csr.indices].tolist()))
    return out


def random_pairs(seed: int, n_users: int = 90, n_items: int = 70) -> set[tuple[str, str]]:
    """Ids of mixed lengths (so code-point order differs from numeric order), users of 1 to 25 items, and one user
    whose items nobody else has (its held-out items are dropped: it stays in training only)."""
    rng = np.random.default_rng(seed)
    pairs = {("lonely", f"x{k}") for k in range(6)}
    for user in rng.choice(10 * n_users, size=n_users, replace=False):
        for item in rng.choice(n_items, size=int(rng.integers(1, 26)), replace=False):
            pairs.add((f"u{user}", str(item * 7)))
    return pairs


def interactions(pairs) -> Interactions:
    users, items = zip(*sorted(pairs))
    user_vocab, user_idx = np.unique(users, return_inverse=True)
    item_vocab, item_idx = np.unique(items, return_inverse=True)
    # the vocabularies in another order than sorted: the split must not depend on the input's indices
    user_perm, item_perm = np.random.default_rng(1).permutation(len(user_vocab)), np.arange(len(item_vocab))[::-1]
    return readers._interactions(
        np.argsort(user_perm)[user_idx], np.argsort(item_perm)[item_idx], user_vocab[user_perm], item_vocab[item_perm]
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_per_user_split_matches_the_reference(seed):
    pairs = random_pairs(seed)
    cfg = DataConfig(split_protocol="per_user", seed=seed)
    got = dataset_as_ids(split_dataset(interactions(pairs), cfg, "random"))
    want = reference_split(pairs, cfg)
    assert got == want
    numeric = [item for item in got["items"] if item.isdigit()]
    assert numeric != sorted(numeric, key=int)  # the test tells code-point order from numeric order
    assert "lonely" in got["users"] and "lonely" not in {u for u, _ in want["valid"] | want["test"]}
    assert len(want["valid"]) > 100 and len(want["test"]) > 100


def test_a_users_split_depends_on_its_own_data_only():
    items = [str(i) for i in range(20)]
    alone = split_user(3, "solo", items, (0.6, 0.2, 0.2))
    assert split_user(3, "solo", items[::-1], (0.6, 0.2, 0.2)) == alone  # input order is irrelevant
    assert split_user(4, "solo", items, (0.6, 0.2, 0.2)) != alone  # the seed and the user id matter
    assert split_user(3, "u2", items, (0.6, 0.2, 0.2)) != alone
    assert [part for _, part in alone].count(2) == 4 and [part for _, part in alone].count(1) == 4
    many = split_dataset(
        interactions(random_pairs(0) | {("solo", i) for i in items}), DataConfig(split_protocol="per_user", seed=3), "x"
    )
    row = many.user_vocab.tolist().index("solo")
    test = set(many.item_vocab[many.test.row(row)].tolist())
    assert test <= {item for item, part in alone if part == 2}  # only unseen-in-train items can go


def test_per_user_split_errors():
    with pytest.raises(HetCompError, match="'x': no user kept valid and test items that also occur in train"):
        split_dataset(
            interactions({("a", str(i)) for i in range(5)} | {("b", str(i)) for i in range(5, 10)}),
            DataConfig(split_protocol="per_user"),
            "x",
        )
