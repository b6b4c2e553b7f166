"""DCD, dual correction distillation (Lee & Kim, CIKM 2021), without top-rank sampling: the correction state.

DCD distils a teacher ranking by correcting what the student currently gets wrong. On a teacher list (a user's
top items, or an item's top users) each entry has a teacher rank r_T and a student rank r_S, both counted within
the list, and a discrepancy d = r_S − r_T. Entries with d > 0 are underestimated, entries with d < 0
overestimated; the correction loss is a Plackett-Luce likelihood of the underestimated entries, in teacher order,
over the overestimated ones (`losses.CorrectionLoss`). User-side correction (UCD) does this on each user's teacher
top-K items, item-side correction (ICD) on each item's teacher users; the student's ranks are refreshed every
`period` epochs from a full scoring pass (the authors' released code: before epochs 0, 3, 6, ...).

"Without top-rank sampling": DCD draws a few entries of the teacher's top list per step, with probability
tanh(max(ε·d, 0)) (underestimated) or tanh(max(−ε·d, 0)) (overestimated). As the HetComp authors did for every
ranking-matching baseline, the draw is replaced by the whole set it draws from: every underestimated entry of
the teacher's top-K, in teacher order, over every overestimated one. By default (`DistillConfig.dcd_ucd_epsilon`
None) every entry weighs 1, so ε disappears; with a float ε, UCD weighs each entry by its draw weight
tanh(ε·|d|), the whole sets as DCD's expected draw (`losses.CorrectionLoss`). ICD always uses the whole sets.
Ties: the student's ties are broken by teacher order, so they are never corrections.

From the paper and its code (github.com/dudwns511/DCD_CIKM21, run_dcd.py): the discrepancy, the two sides, the
loss, the refresh period. Not from it: (1) the item side's teacher ranking. The ensemble gives no scores, so an
item's users are those whose top-K holds it, ordered by its rank there (ties, which carry no preference, in the
student's order, then by user id), the best `item_list_size` of them; (2) which steps correct an item. Here an
item rides with one user (a fixed round-robin assignment, so a step's item work is static) and is corrected in
every step that distils that user: once per epoch with `batching="users"`; with `batching="interactions"`, in
every step whose batch holds one of the carrier's n_u train interactions, about S·(1 − (1 − 1/S)^{n_u}) ≈
min(n_u, S) of an epoch's S steps. An item's correction then weighs as much as its arbitrary carrier's activity.
The authors correct the items of each batch's train interactions: an item in about min(n_i, S) steps, its own
popularity. (3) DCD's base loss (the student's own BPR) is replaced by the project's RRD on the same top-K
(`losses.DCDLoss`): the corrections only reorder a teacher list, something must still put the list above the rest
of the catalogue.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from hetcomp_tf.data import CSR
from hetcomp_tf.errors import HetCompError


# --------------------------------------------------------------------------------------------- rank discrepancy


def list_discrepancy(list_scores: tf.Tensor, valid: tf.Tensor) -> tf.Tensor:
    """int32 [b, L]: d = r_S − r_T of each valid entry (0 elsewhere), ranks counted among a row's valid entries:
    r_T by list position, r_S by descending score with ties in list order."""
    keyed = tf.where(valid, tf.cast(list_scores, tf.float32), -np.inf)
    order = tf.argsort(keyed, axis=1, direction="DESCENDING", stable=True)
    student = tf.argsort(order, axis=1, stable=True)  # inverse permutation: each entry's place in that order
    teacher = tf.cumsum(tf.cast(valid, tf.int32), axis=1) - 1
    return tf.where(valid, student - teacher, 0)


def lexsort(keys: list[tf.Tensor]) -> tf.Tensor:
    """int32 [n]: the order sorting 1-D `keys` lexicographically, most significant first, ascending."""
    order = tf.range(tf.size(keys[0]))
    for key in reversed(keys):
        order = tf.gather(order, tf.argsort(tf.gather(key, order), stable=True))
    return order


def run_positions(keys: list[tf.Tensor]) -> tf.Tensor:
    """int32 [n]: each element's 0-based position within its run of equal keys[0], in the lexicographic order of
    `keys` (the rank of a pair in its item's list)."""
    order = lexsort(keys)
    runs = tf.gather(keys[0], order)
    positions = tf.range(tf.size(runs)) - tf.searchsorted(runs, runs, side="left")
    return tf.scatter_nd(order[:, None], positions, tf.shape(order))


def item_side(items, teacher_ranks, users, scores, width: int):
    """ICD's lists from (user, item) teacher pairs (1-D, one entry per pair): an item's users are ordered by the
    item's rank in their list, ties by descending student score, then user id; the first `width` are kept.
    Returns (kept bool [n], r_T int32 [n], d int32 [n]) with r_S among the kept users (ties: teacher order)."""
    descending = -tf.cast(scores, tf.float32)
    r_teacher = run_positions([items, teacher_ranks, descending, users])
    kept = r_teacher < width
    picked = tf.cast(tf.where(kept)[:, 0], tf.int32)
    keys = [tf.gather(k, picked) for k in (items, descending, r_teacher)]
    r_student = tf.scatter_nd(picked[:, None], run_positions(keys), tf.shape(items))
    return kept, r_teacher, tf.where(kept, r_student - r_teacher, 0)


# ------------------------------------------------------------------------------------------------------ state


class DualCorrection(tf.Module):
    """DCD's correction state on the device, refreshed every `period` epochs, and each batch's targets.

    teacher_top int32 [U, K]: the teacher's (the final ensemble's) top-K unobserved items per user, best first, −1
    padded; train: the train split (the lists must hold none of its items); item lists hold at most
    `item_list_size` users (default K). Items listed by fewer than two users can never be misranked and get none.
    """

    def __init__(self, teacher_top, train: CSR, n_items: int, item_list_size: int | None = None, period: int = 3,
                 batch_users: int = 512):
        super().__init__(name="dual_correction")
        teacher_top = np.asarray(teacher_top)
        _check_teacher(teacher_top, train, n_items)
        if period < 1 or (item_list_size is not None and item_list_size < 1):
            raise HetCompError(f"DCD: period ({period}) and item_list_size ({item_list_size}) must be >= 1")
        self.n_users, self.top_k = (int(d) for d in teacher_top.shape)
        self.period, self.batch_users = int(period), int(batch_users)
        self.teacher = tf.constant(teacher_top, tf.int32)
        self.discrepancy = tf.Variable(tf.zeros_like(self.teacher), trainable=False, name="discrepancy")
        self.refreshed_at = tf.Variable(-1, trainable=False, name="refreshed_at")  # epoch of the last update
        self._init_item_side(teacher_top, int(item_list_size or self.top_k))
        self._refresh(tf.zeros(teacher_top.shape))  # an indifferent student: lists in teacher order, no corrections

    def _init_item_side(self, teacher_top: np.ndarray, item_list_size: int) -> None:
        """The static part of ICD: the (user, item) pairs of listed items, their rows and each row's carrier."""
        valid = teacher_top >= 0
        counts = np.bincount(teacher_top[valid])
        listed = np.flatnonzero(counts >= 2)
        row_of_item = np.full(counts.size, -1, np.int64)
        row_of_item[listed] = np.arange(listed.size)
        users, slots = np.nonzero(valid)
        keep = row_of_item[teacher_top[users, slots]] >= 0
        users, slots = users[keep], slots[keep]
        self._pair_coords = tf.constant(np.stack([users, slots], axis=1), tf.int32)
        self._pair_users = tf.constant(users, tf.int32)
        self._pair_items = tf.constant(teacher_top[users, slots], tf.int32)
        self._pair_rows = tf.constant(row_of_item[teacher_top[users, slots]], tf.int32)
        self._pair_ranks = tf.constant((np.cumsum(valid, axis=1) - 1)[users, slots], tf.int32)  # r_T in the user's list
        self.item_list_size = min(item_list_size, int(counts.max(initial=1)))
        self.listed_items = tf.constant(listed, tf.int32)
        shape = [listed.size, self.item_list_size]
        self.item_users = tf.Variable(tf.fill(shape, -1), trainable=False, name="item_users")
        self.item_discrepancy = tf.Variable(tf.zeros(shape, tf.int32), trainable=False, name="item_discrepancy")
        per_user = -(-listed.size // self.n_users)  # listed row j rides with user j mod U, in slot j // U
        carriers = np.full(self.n_users * per_user, -1, np.int64)
        carriers[: listed.size] = np.arange(listed.size)
        self.carried_rows = tf.constant(carriers.reshape(per_user, self.n_users).T, tf.int32)  # [U, per_user]

    # -------------------------------------------------------------------------------------- training side

    def due(self, epoch: int) -> bool:
        """Whether `update` runs before training this (0-based) epoch: 0, period, 2·period, ..."""
        return epoch % self.period == 0

    def targets(self, user_ids) -> tuple[tf.Tensor, tf.Tensor]:
        """UCD: (teacher list int32 [b, K], discrepancy int32 [b, K]); see `losses.DCDTargets`."""
        return tf.gather(self.teacher, user_ids), tf.gather(self.discrepancy, user_ids)

    def item_targets(self, user_ids) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """ICD for the items these users carry: (items int32 [m], users int32 [m, W] in teacher order,
        discrepancy int32 [m, W]), m = b · rows per user; empty slots have item −1, users −1, discrepancy 0."""
        rows = tf.reshape(tf.gather(self.carried_rows, user_ids), [-1])
        present, safe = rows >= 0, tf.maximum(rows, 0)
        items = tf.where(present, tf.gather(self.listed_items, safe), -1)
        users = tf.where(present[:, None], tf.gather(self.item_users, safe), -1)
        return items, users, tf.where(present[:, None], tf.gather(self.item_discrepancy, safe), 0)

    # ------------------------------------------------------------------------------------------- updates

    def update(self, score_fn, epoch: int) -> dict[str, float]:
        """Re-ranks every teacher list with the student's scores, score_fn(user_ids int32 [b]) -> float [b, n_items],
        from a pass over all users in batches. Returns the fraction of underestimated entries per side."""
        parts = []
        for start in range(0, self.n_users, self.batch_users):
            ids = tf.range(start, min(start + self.batch_users, self.n_users))
            rows = tf.maximum(tf.gather(self.teacher, ids), 0)
            parts.append(tf.gather(tf.cast(score_fn(ids), tf.float32), rows, batch_dims=1))
        self._refresh(tf.concat(parts, axis=0))
        self.refreshed_at.assign(epoch)
        valid = self.teacher >= 0
        return {"underestimated_user": _fraction(self.discrepancy > 0, valid),
                "underestimated_item": _fraction(self.item_discrepancy > 0, self.item_users >= 0)}

    def _refresh(self, list_scores: tf.Tensor) -> None:
        """Both sides' discrepancies (and the item lists' order) from the student's scores of every teacher pair."""
        self.discrepancy.assign(list_discrepancy(list_scores, self.teacher >= 0))
        pair_scores = tf.gather_nd(list_scores, self._pair_coords)
        kept, ranks, discrepancy = item_side(self._pair_items, self._pair_ranks, self._pair_users, pair_scores,
                                             self.item_list_size)
        coords = tf.boolean_mask(tf.stack([self._pair_rows, ranks], axis=1), kept)
        shape = tf.shape(self.item_users)
        users = tf.boolean_mask(self._pair_users, kept)
        self.item_users.assign(tf.tensor_scatter_nd_update(tf.fill(shape, -1), coords, users))
        self.item_discrepancy.assign(tf.scatter_nd(coords, tf.boolean_mask(discrepancy, kept), shape))


def list_scores(users_table: tf.Tensor, items_table: tf.Tensor, items: tf.Tensor, users: tf.Tensor) -> tf.Tensor:
    """float [m, W]: the MF student's score of each listed user for the row's item (ICD's y_pred), from the
    embedding tables; −1 entries get the score of row 0, which the loss ignores (their discrepancy is 0)."""
    user_vectors = tf.gather(users_table, tf.maximum(users, 0))
    return tf.einsum("mwd,md->mw", user_vectors, tf.gather(items_table, tf.maximum(items, 0)))


def _fraction(hits: tf.Tensor, valid: tf.Tensor) -> float:
    count = tf.reduce_sum(tf.cast(valid, tf.float32))
    return float(tf.math.divide_no_nan(tf.reduce_sum(tf.cast(hits & valid, tf.float32)), count))


def _check_teacher(teacher_top: np.ndarray, train: CSR, n_items: int) -> None:
    """One-line HetCompErrors for a teacher list table that is not [U, K] distinct unobserved items, −1 padded."""
    if teacher_top.ndim != 2 or teacher_top.shape[0] != train.n_rows:
        raise HetCompError(f"DCD: teacher lists must be [users ({train.n_rows}), K], got shape {teacher_top.shape}")
    if teacher_top.size and (teacher_top.min() < -1 or teacher_top.max() >= n_items):
        raise HetCompError(f"DCD: teacher lists hold ids outside [-1, {n_items})")
    users, slots = np.nonzero(teacher_top >= 0)
    keys = users.astype(np.int64) * n_items + teacher_top[users, slots]
    train_keys = train.row_ids() * n_items + train.indices
    if np.unique(keys).size != keys.size or np.isin(keys, train_keys).any():
        raise HetCompError("DCD: teacher lists must hold distinct unobserved (non-train) items per user")
