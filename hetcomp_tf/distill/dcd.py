"""DCD, dual correction distillation (Lee & Kim, CIKM 2021), without top-rank sampling: the correction state.

DCD distils a teacher ranking by correcting what the student currently gets wrong. On a teacher list (a user's
top items, or an item's top users) each entry has a teacher rank r_T and a student rank r_S, both counted within
the list, and a discrepancy d = r_S − r_T. Entries with d > 0 are underestimated, entries with d < 0
overestimated; the correction loss is a Plackett-Luce likelihood of the underestimated entries, in teacher order,
over the overestimated ones (`losses.dcd.CorrectionLoss`). User-side correction (UCD) does this on each user's teacher
top-K items, item-side correction (ICD) on each item's teacher top users; the student's ranks are refreshed every
`period` epochs from the student's scores of every listed pair (DCD's released code: before epochs 0, 3, 6, ...).

"Without top-rank sampling": DCD draws a few entries of the teacher's top list per step, with probability
tanh(max(ε·d, 0)) (underestimated) or tanh(max(−ε·d, 0)) (overestimated). As the HetComp authors did for every
ranking-matching baseline, the draw is replaced by the whole set it draws from: every underestimated entry of
the teacher's top list, in teacher order, over every overestimated one. By default (`DistillConfig.dcd_ucd_epsilon`
None) every entry weighs 1, so ε disappears; with a float ε, UCD weighs each entry by its draw weight
tanh(ε·|d|), the whole sets as DCD's expected draw (`losses.dcd.CorrectionLoss`). ICD always uses the whole sets.
Ties: the student's ties are broken by teacher order, so they are never corrections.

The item side as DCD's code builds it (github.com/dudwns511/DCD_CIKM21, run_dcd.py): an item's teacher list is
the teacher's score matrix read by column, the item's top users (its item_topk). The ensemble's score matrix is
its importance Σ_x exp(−rank_x(u, i)/τ) over the teachers' final top-N lists (`ensemble.importance`): one scale
for every user, 0 for pairs no teacher lists. So an item's teacher users are those with importance > 0, by
descending importance (ties by user id), the best `width` (`item_teacher_lists`); items with fewer than two can
never be misranked and get no list. A step corrects, once each, the items of its train interactions
(`batches.Batch.step_items`, DCD's batch_pos_item.unique()), so an item is corrected by its popularity.
Not from DCD: its base loss (the student's own BPR) is replaced by the project's RRD on the same top-K
(`losses.dcd.DCDLoss`): the corrections only reorder a teacher list, something must still put the list above the rest
of the catalogue.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from hetcomp_tf.data.dataset import CSR
from hetcomp_tf.distill.ensemble import importance
from hetcomp_tf.errors import HetCompError

PairScores = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]  # (users, items) int32, one shape -> float, that shape


# --------------------------------------------------------------------------------------------- rank discrepancy


def list_discrepancy(list_scores: tf.Tensor, valid: tf.Tensor) -> tf.Tensor:
    """The discrepancy d = r_S − r_T of each entry of teacher lists, ranks counted among a row's valid entries.

    Args:
        list_scores: float [b, L] the student's scores of the lists' entries (teacher order).
        valid: bool [b, L], False on padding.

    Returns:
        int32 [b, L]: r_T by list position, r_S by descending score with ties in list order; 0 where not valid.
    """
    keyed = tf.where(valid, tf.cast(list_scores, tf.float32), -np.inf)
    order = tf.argsort(keyed, axis=1, direction="DESCENDING", stable=True)
    student = tf.argsort(order, axis=1, stable=True)  # inverse permutation: each entry's place in that order
    teacher = tf.cumsum(tf.cast(valid, tf.int32), axis=1) - 1
    return tf.where(valid, student - teacher, 0)


def mf_scores(users_table: tf.Tensor, items_table: tf.Tensor, users: tf.Tensor, items: tf.Tensor) -> tf.Tensor:
    """The MF student's score of each (user, item) pair from its embedding tables, without scoring the catalogue.

    Args:
        users_table: float [n_users, d] U.
        items_table: float [n_items, d] V.
        users: int32 user ids, any shape that broadcasts against `items`; −1 scores as row 0.
        items: int32 item ids; −1 scores as row 0 (such entries carry d = 0).

    Returns:
        float, the broadcast shape of `users` and `items`.
    """
    user_vectors = tf.gather(users_table, tf.maximum(users, 0))
    return tf.reduce_sum(user_vectors * tf.gather(items_table, tf.maximum(items, 0)), axis=-1)


def item_teacher_lists(
    final_rankings, n_items: int, tau: float, width: int, batch_users: int = 512, teacher_weights=None
) -> CSR:
    """ICD's teacher lists: each item's users by descending ensemble importance.

    Args:
        final_rankings: int32 [X, U, N] the teachers' final top-N items per user, −1 padded.
        n_items: the catalogue's size.
        tau: the ensemble's temperature.
        width: the most users per item, >= 1.
        batch_users: users per importance batch (bounds the [batch, n_items] buffer).
        teacher_weights: float [X] the ensemble's teacher weights (default: equal).

    Returns:
        A CSR with one row per item: its users, most important first (ties: smaller user id first), at most
        `width`; an item no teacher lists for anyone has an empty row.

    Raises:
        HetCompError: rankings not 3-D, or `width` < 1.
    """
    rankings = np.asarray(final_rankings)
    if rankings.ndim != 3 or width < 1:
        raise HetCompError(
            f"DCD: final rankings must be [teachers, users, N] and width >= 1, got shape "
            f"{rankings.shape} and width {width}"
        )
    users, items, values = [], [], []
    for start in range(0, rankings.shape[1], batch_users):
        dense = importance(rankings[:, start : start + batch_users], n_items, tau, teacher_weights).numpy()
        rows, cols = np.nonzero(dense)
        users.append(rows + start), items.append(cols), values.append(dense[rows, cols])
    users, items, values = (np.concatenate(a) if a else np.zeros(0) for a in (users, items, values))
    order = np.lexsort((users, -values, items))  # by item, then importance descending, then user id
    by_item = items[order]
    position = np.arange(order.size) - np.searchsorted(by_item, by_item, side="left")  # rank in the item's list
    kept = order[position < width]
    counts = np.bincount(items[kept].astype(np.int64), minlength=n_items)
    return CSR(indptr=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), indices=users[kept].astype(np.int32))


# ------------------------------------------------------------------------------------------------------ state


class DualCorrection(tf.Module):
    """DCD's correction state on the device, refreshed every `period` epochs, and each step's targets.

    Both teacher tables are fixed; only the discrepancies move.

    Args:
        teacher_top: int32 [U, K] the teacher's (the final ensemble's) top-K unobserved items per user, best
            first, −1 padded.
        item_lists: a CSR with one row per item, its teacher users best first (`item_teacher_lists`).
        train: the train split (no list may hold one of its pairs).
        n_items: the catalogue's size.
        period: epochs between refreshes of the discrepancies, >= 1.
        batch_rows: list rows scored at a time by `update`.

    Raises:
        HetCompError: tables of the wrong shape, ids out of range, repeated or observed in train, or
            `period` < 1.
    """

    def __init__(self, teacher_top, item_lists: CSR, train: CSR, n_items: int, period: int = 3, batch_rows: int = 1024):
        super().__init__(name="dual_correction")
        teacher_top = np.asarray(teacher_top)
        if teacher_top.ndim != 2 or teacher_top.shape[0] != train.n_rows:
            raise HetCompError(f"DCD: teacher lists must be [users ({train.n_rows}), K], got shape {teacher_top.shape}")
        if item_lists.n_rows != n_items:
            raise HetCompError(f"DCD: item lists must have one row per item ({n_items}), got {item_lists.n_rows}")
        if period < 1:
            raise HetCompError(f"DCD: period ({period}) must be >= 1")
        users, slots = np.nonzero(teacher_top >= 0)
        _check_pairs("user", users, teacher_top[users, slots], train, n_items)
        _check_pairs("item", item_lists.indices, item_lists.row_ids(), train, n_items)
        self.n_users, self.top_k = (int(d) for d in teacher_top.shape)
        self.period, self.batch_rows = int(period), int(batch_rows)
        self.teacher = tf.constant(teacher_top, tf.int32)
        self.discrepancy = tf.Variable(tf.zeros_like(self.teacher), trainable=False, name="discrepancy")
        self.refreshed_at = tf.Variable(-1, trainable=False, name="refreshed_at")  # epoch of the last update
        # The item side: a row per listed item plus an empty last row, the row of every unlisted item or padding.
        listed = np.flatnonzero(item_lists.lengths() >= 2)
        self.item_list_size = int(item_lists.lengths()[listed].max(initial=1))
        self.listed_items = tf.constant(listed, tf.int32)
        rows = np.full(n_items, listed.size, np.int32)
        rows[listed] = np.arange(listed.size)
        self.item_row = tf.constant(rows)
        table = np.concatenate(
            [item_lists.padded(self.item_list_size)[listed], np.full((1, self.item_list_size), -1, np.int32)]
        )
        self.item_users = tf.constant(table)
        self.item_discrepancy = tf.Variable(tf.zeros_like(self.item_users), trainable=False, name="item_discrepancy")

    # -------------------------------------------------------------------------------------- training side

    def due(self, epoch: int) -> bool:
        """Whether `update` runs before training this (0-based) epoch: 0, period, 2·period, ...

        Args:
            epoch: the 0-based epoch about to be trained.

        Returns:
            True when the discrepancies are due for a refresh.
        """
        return epoch % self.period == 0

    def targets(self, user_ids) -> tuple[tf.Tensor, tf.Tensor]:
        """UCD's targets of a batch of users (see `losses.dcd.DCDTargets`).

        Args:
            user_ids: int32 [b].

        Returns:
            (teacher list int32 [b, K], discrepancy int32 [b, K]).
        """
        return tf.gather(self.teacher, user_ids), tf.gather(self.discrepancy, user_ids)

    def item_targets(self, items) -> tuple[tf.Tensor, tf.Tensor]:
        """ICD's targets of a step's items.

        Args:
            items: int32 [m] item ids, −1 for padding.

        Returns:
            (users int32 [m, W] in teacher order, discrepancy int32 [m, W]); unlisted items and padding get users
            −1 and discrepancy 0 (no correction).
        """
        items = tf.convert_to_tensor(items, tf.int32)
        rows = tf.where(items >= 0, tf.gather(self.item_row, tf.maximum(items, 0)), tf.shape(self.item_users)[0] - 1)
        return tf.gather(self.item_users, rows), tf.gather(self.item_discrepancy, rows)

    # ------------------------------------------------------------------------------------------- updates

    def update(self, score_pairs: PairScores, epoch: int) -> dict[str, float]:
        """Re-ranks every teacher list by the student's scores, in batches of rows.

        Args:
            score_pairs: (users, items) int32 of one shape -> float of that shape, the student's scores
                (`mf_scores` on its tables); called with valid ids only.
            epoch: the 0-based epoch about to be trained (recorded in `refreshed_at`).

        Returns:
            {"underestimated_user", "underestimated_item"}: the fraction of each side's listed entries with d > 0.
        """
        self.discrepancy.assign(
            self._discrepancies(
                self.teacher,
                lambda start, lists: score_pairs(
                    tf.broadcast_to(tf.range(start, start + tf.shape(lists)[0])[:, None], tf.shape(lists)), lists
                ),
            )
        )
        items = tf.concat([self.listed_items, [0]], axis=0)  # the empty last row: any item
        self.item_discrepancy.assign(
            self._discrepancies(
                self.item_users,
                lambda start, lists: score_pairs(
                    lists, tf.broadcast_to(items[start : start + tf.shape(lists)[0], None], tf.shape(lists))
                ),
            )
        )
        self.refreshed_at.assign(epoch)
        return {
            "underestimated_user": _fraction(self.discrepancy > 0, self.teacher >= 0),
            "underestimated_item": _fraction(self.item_discrepancy > 0, self.item_users >= 0),
        }

    def _discrepancies(self, lists: tf.Tensor, scores_of: Callable[[int, tf.Tensor], tf.Tensor]) -> tf.Tensor:
        """`list_discrepancy` of every row of `lists` int32 [R, L], a batch of rows at a time: scores_of(its first
        row, its rows) are the student's scores of the batch's entries."""
        parts = []
        for start in range(0, int(lists.shape[0]), self.batch_rows):
            rows = lists[start : start + self.batch_rows]
            parts.append(list_discrepancy(scores_of(start, tf.maximum(rows, 0)), rows >= 0))  # −1: any score
        return tf.concat(parts, axis=0)


def _fraction(hits: tf.Tensor, valid: tf.Tensor) -> float:
    count = tf.reduce_sum(tf.cast(valid, tf.float32))
    return float(tf.math.divide_no_nan(tf.reduce_sum(tf.cast(hits & valid, tf.float32)), count))


def _check_pairs(side: str, users: np.ndarray, items: np.ndarray, train: CSR, n_items: int) -> None:
    """One-line HetCompErrors for teacher pairs (a side's lists flattened) that are out of range, repeated within
    a list or observed in train."""
    users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
    if items.size and (items.min() < 0 or items.max() >= n_items or users.min() < 0 or users.max() >= train.n_rows):
        raise HetCompError(f"DCD: {side} lists hold ids outside [0, {n_items}) items or [0, {train.n_rows}) users")
    keys = users * n_items + items
    train_keys = train.row_ids() * n_items + train.indices
    if np.unique(keys).size != keys.size or np.isin(keys, train_keys).any():
        raise HetCompError(f"DCD: {side} lists must hold distinct unobserved (non-train) pairs")
