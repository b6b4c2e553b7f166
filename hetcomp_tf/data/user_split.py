"""One user's share of the "per_user" split protocol (`split_user`), a pure function of (seed, the user's original
id, the user's original item ids).

No other user's data, no RNG state carried from user to user and no process-seeded hash (Python's `hash()` differs
between processes), so the users can be split on any number of workers in any order and give the split
`hetcomp_tf.data.split` makes in memory. No NumPy or TensorFlow: a Beam worker runs it per user.
"""

from __future__ import annotations

import hashlib
import math

TRAIN, VALID, TEST = 0, 1, 2


def shuffle_key(seed: int, user: str, item: str) -> bytes:
    """The item's place in the user's shuffle: 8 bytes of BLAKE2b over the length-prefixed ids (so no two
    (user, item) pairs share an input).

    Args:
        seed: the split's seed.
        user: the user's original id.
        item: the item's original id.

    Returns:
        8 bytes; sorting by them shuffles the user's items.
    """
    text = f"{seed}:{len(user)}:{user}:{item}"
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()


def split_user(seed: int, user: str, items, ratios) -> list[tuple[str, int]]:
    """One user's split of the "per_user" protocol.

    The items in `shuffle_key` order (ties, which 64 bits make all but impossible, by item id), the first floor(n
    r_test) test, the next floor(n r_valid) valid, the rest train, as the other protocols count them.

    Args:
        seed: the split's seed.
        user: the user's original id.
        items: the user's distinct original item ids.
        ratios: (r_train, r_valid, r_test).

    Returns:
        [(item, part)] in shuffle order, part TRAIN, VALID or TEST.
    """
    order = sorted(items, key=lambda item: (shuffle_key(seed, user, item), item))
    n = len(order)
    n_test = math.floor(n * ratios[2] + 1e-9)
    n_valid = math.floor(n * ratios[1] + 1e-9)
    return [
        (item, TEST if pos < n_test else VALID if pos < n_test + n_valid else TRAIN) for pos, item in enumerate(order)
    ]
