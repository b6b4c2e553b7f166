"""HetComp's losses against slow float64 NumPy references written straight from the formulas."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_ranking as tfr

from hetcomp_tf.distill.losses.hetcomp import (
    FineGrainedLoss,
    OverallLoss,
    RRDLoss,
    Targets,
    compact_list,
    rest_and_list_scores,
)
from hetcomp_tf.distill.losses.labels import ids_to_mask, ranking_labels
from hetcomp_tf.distill.losses.listwise import PlackettLuceLoss, SetwiseLoss, reverse_cumulative_logsumexp
from hetcomp_tf.errors import HetCompError

NONE = tf.keras.losses.Reduction.NONE


# ----------------------------------------------------------------------------------- NumPy references


def pl_with_rest(s: np.ndarray, perm, rest) -> float:
    """−Σ_k [ s_{π_k} − log( Σ_{l≥k} e^{s_{π_l}} + Σ_{j∈R} e^{s_j} ) ], one position at a time."""
    rest_mass = np.exp(s[list(rest)]).sum()
    total = 0.0
    for k in range(len(perm)):
        denominator = sum(np.exp(s[perm[m]]) for m in range(k, len(perm))) + rest_mass
        total -= s[perm[k]] - np.log(denominator)
    return total


def setwise_with_rest(s: np.ndarray, items, rest) -> float:
    rest_mass = np.exp(s[list(rest)]).sum()
    return -sum(s[t] - np.log(np.exp(s[t]) + rest_mass) for t in items)


def valid(ids) -> list[int]:
    return [int(i) for i in ids if i >= 0]


def reference_losses(scores, unobserved, observed, train_mask, clip=40.0) -> dict[str, np.ndarray]:
    """Per-user overall / fine-grained / RRD losses, from the spec, in float64."""
    out = {"overall": [], "fine": [], "rrd": []}
    k = unobserved.shape[1]
    for s, top, pos, train in zip(scores, unobserved, observed, train_mask):
        s = np.clip(s.astype(np.float64), -clip, clip)
        unobs = set(np.flatnonzero(~train).tolist())
        top, pos = valid(top), valid(pos)
        half, tenth = top[: k // 2], top[: k // 10]
        out["overall"].append(setwise_with_rest(s, pos + top, unobs - set(top)))
        fine_pos = pl_with_rest(s, pos, unobs - set(half))
        fine_top = pl_with_rest(s, half, unobs - set(half)) + pl_with_rest(s, tenth, unobs - set(tenth))
        out["fine"].append(fine_pos + fine_top / 2)
        out["rrd"].append(pl_with_rest(s, top, unobs - set(top)))
    return {name: np.array(values) for name, values in out.items()}


def random_targets(rng, batch, n_items, k, train_sizes, score_range=40.0):
    """Scores, train masks, the ensemble's top-K unobserved and top-K/10 observed lists (−1 padded when a user
    has fewer than K/10 train items)."""
    scores = rng.uniform(-score_range, score_range, (batch, n_items)).astype(np.float32)
    train = np.zeros((batch, n_items), bool)
    unobserved = np.zeros((batch, k), np.int32)
    observed = np.full((batch, k // 10), -1, np.int32)
    for u, size in enumerate(train_sizes):
        items = rng.permutation(n_items)
        train[u, items[:size]] = True
        unobserved[u] = items[size : size + k]
        shown = min(size, k // 10)
        observed[u, :shown] = items[:shown]
    return scores, train, unobserved, observed


def as_targets(train, unobserved, observed) -> Targets:
    """Targets of a bool [b, n_items] train matrix: its items as −1 padded id rows."""
    ids = [np.flatnonzero(row) for row in train]
    width = max(1, max(len(row) for row in ids))
    train_items = np.array([np.pad(row, (0, width - len(row)), constant_values=-1) for row in ids], np.int32)
    return Targets(tf.constant(unobserved), tf.constant(observed), tf.constant(train_items))


# ---------------------------------------------------------------------------------------------- tests


def test_ranking_labels_mark_permutation_rest_and_ignored_items():
    perm = np.array([[4, 1, -1], [0, 2, 3]], np.int32)
    rest = np.array([[1, 1, 1, 0, 1, 0], [0, 1, 0, 0, 0, 1]], bool)
    labels = ranking_labels(perm, 6, rest).numpy()
    np.testing.assert_array_equal(labels, [[0, 2, 0, -1, 3, -1], [3, 0, 2, 1, -1, 0]])
    np.testing.assert_array_equal(ids_to_mask(perm, 6).numpy(), [[0, 1, 0, 0, 1, 0], [1, 0, 1, 1, 0, 0]])


def test_losses_equal_numpy_reference_with_short_observed_lists():
    rng = np.random.default_rng(0)
    k, n_items = 30, 400
    train_sizes = [0, 1, 2, 3, 5, 40]  # K/10 = 3: the first users' observed lists are −1 padded
    scores, train, unobserved, observed = random_targets(rng, len(train_sizes), n_items, k, train_sizes, 45.0)
    expected = reference_losses(scores, unobserved, observed, train)
    targets = as_targets(train, unobserved, observed)
    got = {
        "overall": OverallLoss(reduction=NONE)(targets, scores),
        "fine": FineGrainedLoss(k, reduction=NONE)(targets, scores),
        "rrd": RRDLoss(k, reduction=NONE)(targets, scores),
    }
    for name, values in got.items():
        np.testing.assert_allclose(values.numpy(), expected[name], rtol=1e-5, err_msg=name)
    # default reduction: sum over positions per user, mean over the users of the batch
    mean = FineGrainedLoss(k)(targets, scores).numpy()
    np.testing.assert_allclose(mean, expected["fine"].mean(), rtol=1e-5)
    total = FineGrainedLoss(k, reduction=tf.keras.losses.Reduction.SUM)(targets, scores).numpy()
    np.testing.assert_allclose(total, expected["fine"].sum(), rtol=1e-5)


def test_padded_permutation_is_masked_not_filled_with_rest_items():
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(1, 50)).astype(np.float32)
    rest = np.ones((1, 50), bool)
    rest[0, :3] = False
    short = PlackettLuceLoss(3, reduction=NONE)(ranking_labels([[2, 0, 1]], 50, rest), scores)
    padded = PlackettLuceLoss(6, reduction=NONE)(ranking_labels([[2, 0, 1, -1, -1, -1]], 50, rest), scores)
    expected = pl_with_rest(scores[0].astype(np.float64), [2, 0, 1], range(3, 50))
    np.testing.assert_allclose(np.ravel(short), [expected], rtol=1e-6)
    np.testing.assert_allclose(np.ravel(padded), [expected], rtol=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_plackett_luce_equals_tf_ranking_listmle_on_full_lists(seed):
    """TF-Ranking's ListMLE (rank weight r <= L, ties among rest items shuffled by the seed) equals our loss
    for full-length permutations, with ignored (−1) items present."""
    rng = np.random.default_rng(seed)
    batch, n_items, length = 4, 2000, 10
    scores = rng.uniform(-40, 40, (batch, n_items)).astype(np.float32)
    perm = np.stack([rng.permutation(n_items)[:length] for _ in range(batch)]).astype(np.int32)
    rest = rng.random((batch, n_items)) < 0.9
    labels = ranking_labels(perm, n_items, rest)
    tf.random.set_seed(seed)
    listmle = tfr.keras.losses.ListMLELoss(
        reduction=NONE,
        lambda_weight=tfr.keras.losses.ListMLELambdaWeight(rank_discount_fn=lambda r: tf.cast(r <= length, tf.float32)),
    )
    ours = np.ravel(PlackettLuceLoss(length, reduction=NONE)(labels, scores))
    np.testing.assert_allclose(ours, np.ravel(listmle(labels, scores).numpy()), rtol=1e-5)
    expected = [
        pl_with_rest(s.astype(np.float64), p, np.flatnonzero(r & ~np.isin(np.arange(n_items), p)))
        for s, p, r in zip(scores, perm, rest)
    ]
    np.testing.assert_allclose(ours, expected, rtol=1e-5)


@pytest.mark.parametrize("case", ["uniform", "targets_low", "targets_high"])
def test_float32_is_stable_at_citeulike_size(case):
    """n_items = 25,600, K = 100, scores over the whole clip range [−40, 40] vs a float64 reference."""
    rng = np.random.default_rng(7)
    k, n_items = 100, 25_600
    scores, train, unobserved, observed = random_targets(rng, 3, n_items, k, [4, 30, 200])
    listed = ids_to_mask(np.concatenate([unobserved, observed], 1), n_items).numpy()
    jitter = rng.uniform(0.0, 0.5, scores.shape).astype(np.float32)
    if case == "targets_low":  # every target far below the rest: huge losses
        scores = np.where(listed, -40.0 + jitter, 40.0 - jitter).astype(np.float32)
    elif case == "targets_high":  # targets far above the rest: losses near zero
        scores = np.where(listed, 40.0 - jitter, -40.0 + jitter).astype(np.float32)
    expected = reference_losses(scores, unobserved, observed, train)
    targets = as_targets(train, unobserved, observed)
    variable = tf.Variable(scores)
    for name, loss in [
        ("overall", OverallLoss(reduction=NONE)),
        ("fine", FineGrainedLoss(k, reduction=NONE)),
        ("rrd", RRDLoss(k, reduction=NONE)),
    ]:
        with tf.GradientTape() as tape:
            values = loss(targets, variable)
            total = tf.reduce_sum(values)
        grad = tape.gradient(total, variable).numpy()
        np.testing.assert_allclose(values.numpy(), expected[name], rtol=1e-5, atol=1e-5, err_msg=name)
        assert np.isfinite(grad).all(), name


def test_observed_items_outside_p_get_no_gradient_and_unobserved_lists_ignore_train_items():
    rng = np.random.default_rng(3)
    k, n_items = 20, 300
    scores, train, unobserved, observed = random_targets(rng, 4, n_items, k, [10, 25, 1, 60])
    targets = as_targets(train, unobserved, observed)
    in_p = ids_to_mask(observed, n_items).numpy()
    variable = tf.Variable(scores)
    for loss, free in [(OverallLoss(), train & ~in_p), (FineGrainedLoss(k), train & ~in_p), (RRDLoss(k), train)]:
        with tf.GradientTape() as tape:
            value = loss(targets, variable)
        grad = tape.gradient(value, variable).numpy()
        assert np.all(grad[free] == 0.0), type(loss).__name__
        assert np.all(grad[~free & ~train] != 0.0), type(loss).__name__  # every unobserved item takes part


def test_losses_run_inside_tf_function_and_round_trip_config():
    rng = np.random.default_rng(4)
    k, n_items = 20, 200
    scores, train, unobserved, observed = random_targets(rng, 3, n_items, k, [5, 9, 0])
    fine = FineGrainedLoss(k)
    step = tf.function(lambda t, s: fine(t, s))
    np.testing.assert_allclose(
        step(as_targets(train, unobserved, observed), scores).numpy(),
        fine(as_targets(train, unobserved, observed), scores).numpy(),
        rtol=1e-6,
    )
    pl = PlackettLuceLoss(7, name="pl")
    clone = PlackettLuceLoss.from_config(pl.get_config())
    assert clone.get_config() == pl.get_config()


def test_ordered_plackett_luce_equals_the_top_k_permutation():
    """`ordered=True` reads the permutation off the list instead of a top-k: on lists in permutation order (−1
    padding in the middle and at the tail, a row without positives, the rest entry last, ±40 scores) its value and
    gradient equal the default's; a list longer than list_size + 1 is refused."""
    rng = np.random.default_rng(13)
    length = 12
    ids = rng.integers(0, 50, (5, length))
    ids[0, 3:5] = ids[1, 8:] = ids[2, :] = -1
    ids[3, ::3] = -1
    scores = tf.Variable(rng.uniform(-40.0, 40.0, (5, length)).astype(np.float32))
    rest = tf.constant(rng.uniform(-40.0, 50.0, (5, 1)).astype(np.float32))
    results = []
    for ordered in (False, True):
        with tf.GradientTape() as tape:
            lists = compact_list(tf.constant(ids, tf.int32), scores, rest)
            value = PlackettLuceLoss(length, ordered=ordered, reduction=NONE)(*lists)
            total = tf.reduce_sum(value)
        results.append((value.numpy(), tape.gradient(total, scores).numpy()))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-6)
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-5, atol=1e-7)
    assert results[0][0][2] == 0.0 and results[0][0].min() >= 0.0 and results[0][0].max() > 1.0
    with pytest.raises(HetCompError, match="list_size \\+ 1 = 6"):
        PlackettLuceLoss(5, ordered=True)(*lists)


def test_bad_sizes_raise():
    with pytest.raises(HetCompError, match="top_k"):
        FineGrainedLoss(5)
    with pytest.raises(HetCompError, match="list_size"):
        PlackettLuceLoss(0)
    rng = np.random.default_rng(5)
    scores, train, unobserved, observed = random_targets(rng, 2, 100, 20, [3, 3])
    with pytest.raises(HetCompError, match="built for 30"):
        RRDLoss(30)(as_targets(train, unobserved, observed), scores)


def test_compact_lists_give_the_gradients_of_the_full_item_lists():
    """The HetComp losses pass TF-Ranking lists of L + 1 entries (targets + one rest entry); their gradients
    must equal those of the same TF-Ranking losses over full [b, n_items] label matrices."""
    rng = np.random.default_rng(11)
    k, n_items = 30, 400
    scores, train, unobserved, observed = random_targets(rng, 4, n_items, k, [2, 12, 40, 0], score_range=5.0)
    targets = as_targets(train, unobserved, observed)
    unobserved_mask = tf.constant(~train)

    def rest(ids):
        return unobserved_mask & ~ids_to_mask(ids, n_items)

    def full_pl(size, perm, rest_mask, s):
        return PlackettLuceLoss(size, reduction=NONE)(ranking_labels(perm, n_items, rest_mask), s)

    def full_fine(s):
        half, tenth = unobserved[:, : k // 2], unobserved[:, : k // 10]
        return (
            full_pl(k // 10, observed, rest(half), s)
            + (full_pl(k // 2, half, rest(half), s) + full_pl(k // 10, tenth, rest(tenth), s)) / 2
        )

    def full_overall(s):
        positives = np.concatenate([observed, unobserved], 1)
        labels = tf.minimum(ranking_labels(positives, n_items, rest(unobserved)), 1.0)
        return SetwiseLoss(reduction=NONE)(labels, s)

    def full_rrd(s):
        return full_pl(k, unobserved, rest(unobserved), s)

    variable = tf.Variable(scores)
    for loss, full in [
        (FineGrainedLoss(k, reduction=NONE), full_fine),
        (OverallLoss(reduction=NONE), full_overall),
        (RRDLoss(k, reduction=NONE), full_rrd),
    ]:
        gradients = []
        for fn in (lambda s: loss(targets, s), full):  # noqa: B023 (called in this iteration)
            with tf.GradientTape() as tape:
                total = tf.reduce_sum(fn(variable))
            gradients.append(tape.gradient(total, variable).numpy())
        np.testing.assert_allclose(gradients[0], gradients[1], rtol=1e-4, atol=1e-6, err_msg=type(loss).__name__)


@pytest.mark.parametrize("compiled", [False, True])  # as the fused steps call it; inside XLA, as the dense steps do
@pytest.mark.parametrize("spread", [40.0, 400.0])  # clipped scores (max-shift path); beyond float32's exp range
@pytest.mark.parametrize("width", [1, 2, 7, 101])
def test_reverse_cumulative_logsumexp_equals_numpy_with_ties_and_absent_entries(width, spread, compiled):
    """Value log Σ_{l≥k} e^{x_l} and gradient (d/dx_l of Σ_k w_k out_k = e^{x_l} Σ_{k≤l} w_k / Σ_{m≥k} e^{x_m})
    against float64 loops, on rows with tied scores, clipped ±40 scores and absent (−1e4) entries; a suffix of
    absent entries only is absent (−1e4) with no gradient. Scores spread over ±400 take the pairwise path."""
    rng = np.random.default_rng(width)
    x = rng.uniform(-spread, spread, size=(6, width))
    x[1, :] = 3.0  # all tied
    x[2, :-1:2] = -1e4  # absent entries (each suffix still holds a real one, as the rest entry does in the losses)
    x[3, :] = np.where(rng.random(width) < 0.5, 40.0, -40.0)
    tail = slice(max(1, width // 2), None)
    if spread == 40.0:
        x[5, tail] = -1e4  # absent suffixes after a real entry
    w = rng.uniform(0.0, 2.0, size=(6, width))
    with np.errstate(divide="ignore", invalid="ignore"):  # row 5's absent suffixes, replaced below
        expected = np.array([[np.log(np.sum(np.exp(row[k:]))) for k in range(width)] for row in x])
        expected_grad = np.array(
            [
                [sum(wr[k] * np.exp(row[m] - expected[r][k]) for k in range(m + 1)) for m in range(width)]
                for r, (row, wr) in enumerate(zip(x, w))
            ]
        )
    if spread == 40.0:  # (the pairwise path would say ≈ −1e4 + log(length), with a gradient)
        expected[5, tail], expected_grad[5, tail] = -1e4, 0.0
    variable = tf.Variable(x.astype(np.float32))

    def value_and_gradient(rows):  # rows of a batch of unknown size, as a step's users
        with tf.GradientTape() as tape:
            out = reverse_cumulative_logsumexp(tf.gather(variable, rows))
            total = tf.reduce_sum(out * w.astype(np.float32))
        return out, tape.gradient(total, variable)

    if compiled:
        value_and_gradient = tf.function(
            value_and_gradient, jit_compile=True, input_signature=[tf.TensorSpec([None], tf.int32)]
        )
    out, gradient = value_and_gradient(tf.range(6))
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(tf.convert_to_tensor(gradient).numpy(), expected_grad, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("bound", [None, 40.0])
def test_rest_and_list_scores_equal_numpy_loops(bound):
    """The one dense op of every loss: value log Σ_{j ∉ excluded} e^{s_j} and the lists' scores, and the gradient
    of Σ_r w_r rest_r + Σ_{r,k} v_rk list_rk (w_r · e^{s_j}/Σ on the rest, plus v_rk at ids_rk, −1 ids skipped)
    against float64 loops; one row excludes every item (no rest)."""
    rng = np.random.default_rng(21 if bound is None else 22)
    batch, n_items = 5, 60
    scores = rng.uniform(-40.0, 40.0, (batch, n_items)).astype(np.float32)
    excluded = np.full((batch, n_items), -1, np.int32)
    ids = np.full((batch, 8), -1, np.int32)
    for r in range(batch - 1):
        excluded[r, : 5 + 3 * r] = rng.choice(n_items, 5 + 3 * r, replace=False)
        ids[r, : 2 + r] = rng.choice(n_items, 2 + r, replace=False)
    excluded[-1] = np.arange(n_items)
    w, v = rng.uniform(0.5, 2.0, (batch, 1)), rng.uniform(-1.0, 1.0, (batch, 8))
    variable = tf.Variable(scores)
    with tf.GradientTape() as tape:
        rest, list_scores = rest_and_list_scores(variable, tf.constant(excluded), tf.constant(ids), bound)
        total = tf.reduce_sum(w * rest) + tf.reduce_sum(tf.where(ids >= 0, v * list_scores, 0.0))
    gradient = tape.gradient(total, variable).numpy()
    s = scores.astype(np.float64)
    for r in range(batch):
        kept = [j for j in range(n_items) if j not in set(excluded[r][excluded[r] >= 0])]
        expected_grad = np.zeros(n_items)
        if kept:
            lse = np.log(np.sum(np.exp(s[r, kept])))
            np.testing.assert_allclose(rest.numpy()[r, 0], lse, rtol=1e-5)
            expected_grad[kept] = w[r, 0] * np.exp(s[r, kept] - lse)
        else:
            assert rest.numpy()[r, 0] <= -1e3
        for k, item in enumerate(ids[r]):
            if item >= 0:
                assert list_scores.numpy()[r, k] == scores[r, item]
                expected_grad[item] += v[r, k]
        np.testing.assert_allclose(gradient[r], expected_grad, rtol=1e-4, atol=1e-6)
