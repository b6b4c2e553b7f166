"""DCD against slow NumPy references written from the definitions: ranks, discrepancies, item lists, losses."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest
import tensorflow as tf

from hetcomp_tf.config import DistillConfig
from hetcomp_tf.data.dataset import CSR
from hetcomp_tf.distill import dcd
from hetcomp_tf.distill.ensemble import ensemble_topk
from hetcomp_tf.distill.losses.dcd import CorrectionLoss, DCDLoss, DCDTargets, correction_list
from hetcomp_tf.distill.losses.hetcomp import RRDLoss, rest_and_list_scores
from hetcomp_tf.distill.losses.labels import concat_pairs
from hetcomp_tf.distill.losses.listwise import PlackettLuceLoss
from hetcomp_tf.errors import HetCompError

NONE = tf.keras.losses.Reduction.NONE
N_USERS, N_ITEMS, TOP_K, N_TEACHERS, TOP_N, TAU = 37, 60, 10, 3, 12, 10.0


# ----------------------------------------------------------------------------------- NumPy references


def ref_pl(s: np.ndarray, perm, rest) -> float:
    """−Σ_k [ s_{π_k} − log( Σ_{l≥k} e^{s_{π_l}} + Σ_{j∈R} e^{s_j} ) ], one position at a time."""
    rest_mass = sum(np.exp(s[j]) for j in rest)
    return -sum(
        s[perm[k]] - np.log(sum(np.exp(s[perm[m]]) for m in range(k, len(perm))) + rest_mass) for k in range(len(perm))
    )


def ref_correction(s: np.ndarray, d) -> float:
    """Underestimated entries (d > 0) in list order over the overestimated ones (d < 0)."""
    return ref_pl(s, [k for k in range(len(d)) if d[k] > 0], [k for k in range(len(d)) if d[k] < 0])


def ref_expected_correction(s: np.ndarray, d, epsilon: float) -> float:
    """L_ε: each underestimated entry's term weighted by its draw weight w = tanh(ε·|d|), with its own mass and
    every later underestimated and every overestimated entry's mass (weighted by its w) in its denominator."""
    w = np.tanh(epsilon * np.abs(np.asarray(d, np.float64)))
    under = [k for k in range(len(d)) if d[k] > 0]
    over = [j for j in range(len(d)) if d[j] < 0]
    total = 0.0
    for k in under:
        others = sum(w[m] * np.exp(s[m]) for m in under if m > k) + sum(w[j] * np.exp(s[j]) for j in over)
        total -= w[k] * (s[k] - np.log(np.exp(s[k]) + others))
    return total


def ref_discrepancy(scores: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """r_S − r_T per entry, ranks among the valid entries: r_T by position, r_S by (−score, position)."""
    out = np.zeros(valid.shape, np.int64)
    for r in range(valid.shape[0]):
        entries = [k for k in range(valid.shape[1]) if valid[r, k]]
        student = sorted(entries, key=lambda k: (-float(scores[r, k]), k))
        for r_teacher, k in enumerate(entries):
            out[r, k] = student.index(k) - r_teacher
    return out


def ref_importance(rankings: np.ndarray) -> np.ndarray:
    """float64 [U, n_items]: Σ over the teachers' lists of exp(−rank/τ), rank 1-based, one entry at a time."""
    out = np.zeros((rankings.shape[1], N_ITEMS))
    for x, u, k in np.ndindex(*rankings.shape):
        if rankings[x, u, k] >= 0:
            out[u, rankings[x, u, k]] += np.exp(-(k + 1) / TAU)
    return out


def ref_item_users(rankings: np.ndarray, width: int) -> dict[int, list[int]]:
    """item -> its users by (−importance, user id), the first `width`, for every item some teacher lists."""
    values = ref_importance(rankings)
    return {
        item: sorted(np.flatnonzero(values[:, item]), key=lambda u: (-values[u, item], u))[:width]
        for item in range(N_ITEMS)
        if values[:, item].any()
    }


# ------------------------------------------------------------------------------------------- fixtures


def make_problem(seed: int = 0):
    """Train rows; N_TEACHERS teachers' top-N lists of unobserved items (some −1 padded at the tail); the final
    ensemble's top-K (one −1 inside a row, one row short); one item no teacher lists; the item lists of those
    rankings (width 6, so some are cut); student scores with many ties (rounded) and one row where all are tied."""
    rng = np.random.default_rng(seed)
    train_rows = [np.sort(rng.choice(N_ITEMS, size=rng.integers(2, 8), replace=False)) for _ in range(N_USERS)]
    popular = rng.permutation(N_ITEMS)[:25]  # teacher lists share items, so item lists are long
    rankings = np.full((N_TEACHERS, N_USERS, TOP_N), -1, np.int32)
    for x, (u, row) in itertools.product(range(N_TEACHERS), enumerate(train_rows)):
        pool = np.concatenate([rng.permutation(popular)[: rng.integers(4, 10)], rng.permutation(N_ITEMS)])
        pool = pool[~np.isin(pool, row) & (pool != N_ITEMS - 1)]  # the last item: listed by no teacher
        _, first = np.unique(pool, return_index=True)
        rankings[x, u] = pool[np.sort(first)][:TOP_N]
    rankings[1, 3, 6:] = -1
    teacher = ensemble_topk(rankings, N_ITEMS, TOP_K, TAU).numpy()
    teacher[4, 2] = -1
    teacher[5, 1:] = -1
    scores = np.round(rng.normal(size=(N_USERS, N_ITEMS)), 1).astype(np.float32)
    scores[6] = 0.5
    return CSR.from_rows(train_rows), rankings, teacher, scores


def state_of(train, rankings, teacher, width: int = 6, **kwargs) -> dcd.DualCorrection:
    return dcd.DualCorrection(teacher, dcd.item_teacher_lists(rankings, N_ITEMS, TAU, width), train, N_ITEMS, **kwargs)


def gather_lists(teacher, scores):
    return np.take_along_axis(scores, np.maximum(teacher, 0), axis=1)


def pair_scores_of(scores):
    return lambda users, items: tf.gather_nd(tf.constant(scores), tf.stack([users, items], axis=-1))


def mf_pair_scores(users_table, items_table):
    return lambda users, items: dcd.mf_scores(users_table, items_table, users, items)


# ---------------------------------------------------------------------------------------------- tests


def test_list_discrepancy_equals_reference_with_ties_and_padding():
    rng = np.random.default_rng(1)
    scores = np.round(rng.normal(size=(6, 9)), 0).astype(np.float32)  # many ties
    valid = rng.random((6, 9)) < 0.8
    scores[0] = 1.0  # all tied: the student agrees with the teacher
    valid[1, 5:] = False
    got = dcd.list_discrepancy(tf.constant(scores), tf.constant(valid)).numpy()
    np.testing.assert_array_equal(got, ref_discrepancy(scores, valid))
    assert not got[0].any() and got.sum() == 0  # ranks within a list are a permutation of each other
    reversed_row = dcd.list_discrepancy(tf.constant([[1.0, 2.0, 3.0]]), tf.constant([[True] * 3])).numpy()
    np.testing.assert_array_equal(reversed_row, [[2, 0, -2]])


def test_item_teacher_lists_equal_reference():
    _, rankings, _, _ = make_problem()
    for width in (4, 100):
        lists = dcd.item_teacher_lists(rankings, N_ITEMS, TAU, width, batch_users=16)  # 3 batches, last short
        reference, values = ref_item_users(rankings, width), ref_importance(rankings)
        assert lists.n_rows == N_ITEMS and {i for i in range(N_ITEMS) if lists.row(i).size} == set(reference)
        for item, users in reference.items():
            got = lists.row(item)
            # the best `width` by importance: float32 sums may order near-equal importances either way ...
            np.testing.assert_allclose(values[got, item], values[users, item], rtol=1e-6)
            assert np.all(np.diff(values[got, item]) <= 1e-6)
        assert width == 100 or max(len(u) for u in reference.values()) == width  # some lists were cut
    single = rankings[:1]  # ... one teacher: equal importance = equal rank, exact ties, broken by user id
    lists, reference = dcd.item_teacher_lists(single, N_ITEMS, TAU, 5), ref_item_users(single, 5)
    assert all(lists.row(item).tolist() == users for item, users in reference.items())


def test_update_equals_numpy_reference():
    train, rankings, teacher, scores = make_problem()
    state = state_of(train, rankings, teacher, batch_rows=16)  # several batches of rows, the last short
    fractions = state.update(pair_scores_of(scores), epoch=3)
    expected = ref_discrepancy(gather_lists(teacher, scores), teacher >= 0)
    np.testing.assert_array_equal(state.discrepancy.numpy(), expected)
    assert int(state.refreshed_at.numpy()) == 3
    assert fractions["underestimated_user"] == pytest.approx((expected > 0).sum() / (teacher >= 0).sum())

    lists = {item: users for item, users in ref_item_users(rankings, 6).items() if len(users) >= 2}
    assert state.item_list_size == 6
    np.testing.assert_array_equal(state.listed_items.numpy(), sorted(lists))
    table_users, table_d = state.item_users.numpy(), state.item_discrepancy.numpy()
    for row, item in enumerate(state.listed_items.numpy()):
        width = len(lists[item])
        users = table_users[row, :width]
        assert sorted(users) == sorted(lists[item]), f"item {item}"
        np.testing.assert_array_equal(
            table_d[row, :width], ref_discrepancy(scores[users, item][None], np.ones((1, width), bool))[0]
        )
        assert (table_users[row, width:] == -1).all() and not table_d[row, width:].any()
    assert (table_users[-1] == -1).all() and not table_d[-1].any()  # the row of unlisted items and padding
    assert (table_d > 0).any() and (table_d < 0).any()
    under = (table_d > 0).sum() / (table_users >= 0).sum()
    assert fractions["underestimated_item"] == pytest.approx(under)

    ids = tf.constant([5, 0, 36], tf.int32)  # the step views
    unobserved, discrepancy = state.targets(ids)
    np.testing.assert_array_equal(unobserved.numpy(), teacher[[5, 0, 36]])
    np.testing.assert_array_equal(discrepancy.numpy(), expected[[5, 0, 36]])
    listed = state.listed_items.numpy()
    unlisted = int(np.setdiff1d(np.arange(N_ITEMS), listed)[0])
    users, item_discrepancy = (t.numpy() for t in state.item_targets(tf.constant([listed[3], unlisted, -1, listed[0]])))
    np.testing.assert_array_equal(users, table_users[[3, -1, -1, 0]])
    np.testing.assert_array_equal(item_discrepancy, table_d[[3, -1, -1, 0]])


def test_a_new_state_has_no_corrections_and_is_due_every_period():
    train, rankings, teacher, _ = make_problem(2)
    state = state_of(train, rankings, teacher, period=3)
    assert not state.discrepancy.numpy().any() and not state.item_discrepancy.numpy().any()
    assert (state.item_users.numpy() >= 0).sum() > N_USERS  # the lists exist before any update
    assert [e for e in range(8) if state.due(e)] == [0, 3, 6]


@pytest.mark.parametrize("epsilon", [None, 0.05])
def test_dcd_loss_equals_numpy_reference(epsilon):
    train, _, teacher, scores = make_problem(3)
    rng = np.random.default_rng(3)
    scores = np.round(rng.uniform(-45, 45, scores.shape), 0).astype(np.float32)  # ties and clipped scores
    discrepancy = np.where(teacher >= 0, rng.integers(-3, 4, teacher.shape), 0).astype(np.int32)
    train_mask = train.to_dense(N_ITEMS)
    targets = DCDTargets(
        tf.constant(teacher), tf.zeros([N_USERS, 0], tf.int32), tf.constant(train.padded()), tf.constant(discrepancy)
    )
    got = DCDLoss(TOP_K, correction_weight=0.7, ucd_epsilon=epsilon, reduction=NONE)(targets, scores).numpy()
    clipped = np.clip(scores.astype(np.float64), -40, 40)
    correction = ref_correction if epsilon is None else functools.partial(ref_expected_correction, epsilon=epsilon)
    expected = []
    for s, top, d, train_row in zip(clipped, teacher, discrepancy, train_mask):
        listed = [int(i) for i in top if i >= 0]
        rest = set(np.flatnonzero(~train_row).tolist()) - set(listed)
        expected.append(ref_pl(s, listed, rest) + 0.7 * correction(s[np.maximum(top, 0)], d))
    np.testing.assert_allclose(got, expected, rtol=1e-5)

    list_scores = gather_lists(teacher, clipped)
    corrections = CorrectionLoss(TOP_K, reduction=NONE)(tf.constant(discrepancy), list_scores).numpy()
    np.testing.assert_allclose(
        corrections, [ref_correction(s, d) for s, d in zip(list_scores, discrepancy)], rtol=1e-5, atol=1e-5
    )
    total = CorrectionLoss(TOP_K, reduction=tf.keras.losses.Reduction.SUM)(
        tf.constant(discrepancy), list_scores
    ).numpy()
    np.testing.assert_allclose(total, corrections.sum(), rtol=1e-5)
    no_corrections = CorrectionLoss(3, reduction=NONE)(tf.zeros([2, 3], tf.int32), tf.ones([2, 3]))
    np.testing.assert_array_equal(no_corrections.numpy(), [0.0, 0.0])


def random_corrections(seed: int, rows: int = 9, width: int = 12):
    """Student list scores [rows, width] float32 and discrepancies int32 of every kind: large and small, exact
    matches, a −1 padded tail (d = 0), a row of matches only and a row with one underestimated entry and nothing
    overestimated."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(scale=3.0, size=(rows, width)).astype(np.float32)
    discrepancy = rng.integers(-60, 61, (rows, width)) * (rng.random((rows, width)) < 0.8)
    discrepancy[1, 7:] = 0
    discrepancy[2] = 0
    discrepancy[3] = 0
    discrepancy[3, 4] = 5
    return scores, discrepancy.astype(np.int32)


@pytest.mark.parametrize("epsilon", [1e-3, 0.05, 1.0])
def test_expected_correction_equals_numpy_reference(epsilon):
    scores, discrepancy = random_corrections(9)
    loss = CorrectionLoss(12, epsilon=epsilon, reduction=NONE)
    got = loss(tf.constant(discrepancy), scores).numpy()
    expected = [ref_expected_correction(s.astype(np.float64), d, epsilon) for s, d in zip(scores, discrepancy)]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-12)
    any_width = tf.function(
        lambda d, s: loss(d, s),
        input_signature=[tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, None], tf.float32)],
    )
    np.testing.assert_allclose(any_width(discrepancy, scores).numpy(), got, rtol=1e-6)  # width known at run time
    assert not got[2:4].any() and (got > 0).sum() >= 5  # no corrections: 0; the rest weigh something


def test_expected_correction_approaches_the_whole_sets_as_epsilon_grows():
    """tanh(ε·|d|) → 1 for every d ≠ 0: at ε = 1e3 every weight is 1.0 in float32, the whole-set loss."""
    scores, discrepancy = random_corrections(10)
    whole = CorrectionLoss(12, reduction=NONE)(tf.constant(discrepancy), scores).numpy()
    gaps = [
        np.abs(
            CorrectionLoss(12, epsilon=epsilon, reduction=NONE)(tf.constant(discrepancy), scores).numpy() - whole
        ).max()
        for epsilon in (0.01, 0.1, 1e3)
    ]
    assert gaps[0] > gaps[1] > gaps[2]
    np.testing.assert_allclose(
        whole, [ref_correction(s.astype(np.float64), d) for s, d in zip(scores, discrepancy)], rtol=1e-5, atol=1e-6
    )
    assert gaps[2] <= 1e-5 * np.abs(whole).max()


def test_expected_correction_gradient_equals_finite_differences_of_the_reference():
    scores, discrepancy = random_corrections(11, rows=4)
    epsilon, step = 0.05, 1e-6
    variable = tf.Variable(scores)
    with tf.GradientTape() as tape:
        value = CorrectionLoss(12, epsilon=epsilon, reduction=tf.keras.losses.Reduction.SUM)(
            tf.constant(discrepancy), variable
        )
    got = tape.gradient(value, variable).numpy()
    expected = np.zeros(scores.shape)
    for row, col in np.ndindex(*scores.shape):
        bumped = [scores[row].astype(np.float64) for _ in range(2)]
        bumped[0][col] += step
        bumped[1][col] -= step
        expected[row, col] = (
            ref_expected_correction(bumped[0], discrepancy[row], epsilon)
            - ref_expected_correction(bumped[1], discrepancy[row], epsilon)
        ) / (2 * step)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-6)
    assert (got[discrepancy == 0] == 0).all()  # exact matches and padding take no part
    assert (got[discrepancy < 0] > 0).all()  # overestimated entries only sit in denominators: pushed down


def test_default_epsilon_keeps_the_whole_set_correction_bit_for_bit():
    """dcd_ucd_epsilon None (the default) is the code path before it: RRD + weight · the whole-set PL."""
    train, _, teacher, scores = make_problem(12)
    discrepancy = np.where(teacher >= 0, np.random.default_rng(12).integers(-9, 10, teacher.shape), 0)
    targets = DCDTargets(
        tf.constant(teacher),
        tf.zeros([N_USERS, 0], tf.int32),
        tf.constant(train.padded()),
        tf.constant(discrepancy.astype(np.int32)),
    )
    rest, list_scores = rest_and_list_scores(
        tf.constant(scores), concat_pairs(targets.train_items, targets.unobserved), targets.unobserved, 40.0
    )
    whole_sets = PlackettLuceLoss(TOP_K, ordered=True).call(*correction_list(list_scores, targets.discrepancy))[:, 0]
    before = RRDLoss(TOP_K).from_lists(targets.unobserved, rest, list_scores) + 0.7 * whole_sets
    for loss in (DCDLoss(TOP_K, 0.7, reduction=NONE), DCDLoss(TOP_K, 0.7, None, reduction=NONE)):
        np.testing.assert_array_equal(loss(targets, scores).numpy(), before.numpy())
    assert DistillConfig().dcd_ucd_epsilon is None


def test_item_side_loss_on_mf_scores_equals_reference():
    train, rankings, teacher, _ = make_problem(4)
    state = state_of(train, rankings, teacher, width=TOP_K, batch_rows=8)
    rng = np.random.default_rng(4)
    users_table = rng.normal(size=(N_USERS, 5)).astype(np.float32)
    items_table = rng.normal(size=(N_ITEMS, 5)).astype(np.float32)
    state.update(mf_pair_scores(users_table, items_table), epoch=0)
    items = tf.constant(np.append(state.listed_items.numpy()[[2, 9, 30]], -1).astype(np.int32))
    users, discrepancy = state.item_targets(items)
    got = dcd.mf_scores(users_table, items_table, users, items[:, None]).numpy()
    for row, col in np.ndindex(*got.shape):
        if users[row, col] >= 0:
            assert got[row, col] == pytest.approx(users_table[users[row, col]] @ items_table[items[row]], rel=1e-5)
    loss = CorrectionLoss(state.item_list_size, reduction=NONE)(discrepancy, got).numpy()
    np.testing.assert_allclose(
        loss, [ref_correction(s.astype(np.float64), d) for s, d in zip(got, discrepancy.numpy())], rtol=1e-5, atol=1e-5
    )
    assert (loss[:3] > 0).any() and loss[3] == 0.0  # padding corrects nothing


def test_correction_gradient_pushes_underestimated_entries_up():
    rng = np.random.default_rng(5)
    list_scores = tf.Variable(rng.normal(size=(4, 8)).astype(np.float32))
    discrepancy = np.array(
        [[3, -1, 0, 1, -2, -1, 0, 0], [0, 2, -2, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0], [1, 1, 1, -3, 0, 0, 0, 0]],
        np.int32,
    )
    with tf.GradientTape() as tape:
        value = CorrectionLoss(8)(tf.constant(discrepancy), list_scores)
    grad = tape.gradient(value, list_scores).numpy()
    under, over = discrepancy > 0, discrepancy < 0
    assert (grad[over] > 0).all()  # overestimated entries only sit in denominators: pushed down
    assert (grad[~under & ~over] == 0).all()  # exact matches and padding take no part
    for row in range(4):
        if under[row].any():
            assert grad[row, under[row]].sum() < 0  # the corrected entries go up as a whole ...
            assert grad[row, np.flatnonzero(under[row])[0]] < 0  # ... led by the teacher's best of them


def test_training_on_corrections_removes_misrankings_on_both_sides():
    """An MF student descending UCD + ICD, refreshed every 10 steps, ends with far fewer misranked entries
    (Σ|r_S − r_T| per side)."""
    train, rankings, teacher, _ = make_problem(6)
    state = state_of(train, rankings, teacher, width=TOP_K, period=1)
    rng = np.random.default_rng(6)
    users_table = tf.Variable(rng.normal(scale=0.5, size=(N_USERS, 16)).astype(np.float32))
    items_table = tf.Variable(rng.normal(scale=0.5, size=(N_ITEMS, 16)).astype(np.float32))
    score_pairs = mf_pair_scores(users_table, items_table)
    user_loss, item_loss = CorrectionLoss(TOP_K), CorrectionLoss(state.item_list_size)
    optimizer = tf.keras.optimizers.Adam(0.02)
    all_users, all_items = tf.range(N_USERS), tf.range(N_ITEMS)

    def misranked():
        return int(np.abs(state.discrepancy.numpy()).sum()), int(np.abs(state.item_discrepancy.numpy()).sum())

    state.update(score_pairs, epoch=0)
    before = misranked()
    for step in range(120):
        if step % 10 == 0:
            state.update(score_pairs, epoch=step)
        with tf.GradientTape() as tape:
            unobserved, discrepancy = state.targets(all_users)
            value = user_loss(discrepancy, score_pairs(all_users[:, None], unobserved))
            users, item_discrepancy = state.item_targets(all_items)
            value += item_loss(item_discrepancy, score_pairs(users, all_items[:, None]))
        variables = [users_table, items_table]
        optimizer.apply_gradients(zip(tape.gradient(value, variables), variables))
    state.update(score_pairs, epoch=120)
    after = misranked()
    assert after[0] < 0.4 * before[0] and after[1] < 0.4 * before[1], (before, after)


@pytest.mark.parametrize("epsilon", [None, 0.05])
def test_loss_and_batch_views_compile_with_xla(epsilon):
    train, rankings, teacher, scores = make_problem(7)
    state = state_of(train, rankings, teacher)
    state.update(pair_scores_of(scores), epoch=0)
    train_items = tf.constant(train.padded())
    rng = np.random.default_rng(7)
    users_table = tf.constant(rng.normal(size=(N_USERS, 4)).astype(np.float32))
    items_table = tf.constant(rng.normal(size=(N_ITEMS, 4)).astype(np.float32))
    user_loss, item_loss = DCDLoss(TOP_K, ucd_epsilon=epsilon), CorrectionLoss(state.item_list_size)

    def step(user_ids, step_items):
        unobserved, discrepancy = state.targets(user_ids)
        targets = DCDTargets(
            unobserved, tf.zeros([tf.shape(user_ids)[0], 0], tf.int32), tf.gather(train_items, user_ids), discrepancy
        )
        value = user_loss(targets, tf.matmul(tf.gather(users_table, user_ids), items_table, transpose_b=True))
        users, item_discrepancy = state.item_targets(step_items)
        return value + item_loss(item_discrepancy, dcd.mf_scores(users_table, items_table, users, step_items[:, None]))

    spec = tf.TensorSpec([None], tf.int32)
    compiled = tf.function(step, jit_compile=True, input_signature=[spec, spec])
    for ids, items in (([0, 4, 5, 11], [3, 7, -1, -1]), (list(range(N_USERS)), list(range(N_ITEMS)))):
        np.testing.assert_allclose(
            compiled(tf.constant(ids), tf.constant(items)).numpy(),
            step(tf.constant(ids), tf.constant(items)).numpy(),
            rtol=1e-5,
        )


def test_bad_inputs_raise():
    train, rankings, teacher, _ = make_problem(8)
    item_lists = dcd.item_teacher_lists(rankings, N_ITEMS, TAU, 6)
    with pytest.raises(HetCompError, match="must be \\[users"):
        dcd.DualCorrection(teacher[0], item_lists, train, N_ITEMS)
    with pytest.raises(HetCompError, match="must be \\[users"):
        dcd.DualCorrection(teacher[:-1], item_lists, train, N_ITEMS)
    outside = teacher.copy()
    outside[0, 0] = N_ITEMS
    with pytest.raises(HetCompError, match="user lists hold ids outside"):
        dcd.DualCorrection(outside, item_lists, train, N_ITEMS)
    with pytest.raises(HetCompError, match="one row per item"):
        dcd.DualCorrection(teacher, item_lists, train, N_ITEMS + 1)
    with_train = teacher.copy()
    with_train[0, 0] = train.row(0)[0]
    with pytest.raises(HetCompError, match="user lists must hold distinct unobserved"):
        dcd.DualCorrection(with_train, item_lists, train, N_ITEMS)
    duplicated = teacher.copy()
    duplicated[0, 1] = duplicated[0, 0]
    with pytest.raises(HetCompError, match="distinct"):
        dcd.DualCorrection(duplicated, item_lists, train, N_ITEMS)
    observed_item = int(train.row(0)[0])
    rows = [list(item_lists.row(i)) + ([0] if i == observed_item else []) for i in range(N_ITEMS)]  # user 0 has it
    with pytest.raises(HetCompError, match="item lists must hold distinct unobserved"):
        dcd.DualCorrection(teacher, CSR.from_rows(rows), train, N_ITEMS)
    with pytest.raises(HetCompError, match="period"):
        dcd.DualCorrection(teacher, item_lists, train, N_ITEMS, period=0)
    with pytest.raises(HetCompError, match="width >= 1"):
        dcd.item_teacher_lists(rankings, N_ITEMS, TAU, 0)
    with pytest.raises(HetCompError, match="epsilon must be > 0"):
        DCDLoss(TOP_K, ucd_epsilon=0.0)
    with pytest.raises(HetCompError, match="dcd_ucd_epsilon=-0.1 must be > 0"):
        DistillConfig(dcd_ucd_epsilon=-0.1)
    targets = DCDTargets(
        tf.constant(teacher),
        tf.zeros([N_USERS, 0], tf.int32),
        tf.constant(train.padded()),
        tf.zeros(teacher.shape, tf.int32),
    )
    with pytest.raises(HetCompError, match="built for 12"):
        DCDLoss(12)(targets, tf.zeros([N_USERS, N_ITEMS]))
    with pytest.raises(HetCompError, match="built for 10"):
        DCDLoss(TOP_K)(targets._replace(discrepancy=tf.zeros([N_USERS, 4], tf.int32)), tf.zeros([N_USERS, N_ITEMS]))
