"""DKC against NumPy references written with plain loops: the distance, the stage rule, the targets, ADT."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from hetcomp_tf.config import DistillConfig
from hetcomp_tf.data.dataset import CSR
from hetcomp_tf.distill import dkc
from hetcomp_tf.errors import HetCompError

N_USERS, N_ITEMS, N_TEACHERS, N_STAGES, TOP_N = 37, 120, 3, 4, 30
CFG = DistillConfig(top_k=20, dkc_ndcg_k=15, dkc_period=10, dkc_start=10, tau=10.0)


# ----------------------------------------------------------------------------------- NumPy references


def ref_distance(student: list[int], teacher: list[int]) -> float:
    """1 − NDCG: rel(teacher position j, 0-based) = 2^{exp(−j/10)} − 1, discount 1/log2(student position + 1)."""
    listed = [(j, item) for j, item in enumerate(teacher) if item >= 0]
    rel = {item: 2.0 ** np.exp(-j / 10.0) - 1.0 for j, item in listed}
    dcg = sum(rel.get(item, 0.0) / np.log2(i + 2) for i, item in enumerate(student) if item >= 0)
    idcg = sum(rel[item] / np.log2(j + 2) for j, item in listed)
    return 1.0 - (dcg / idcg if idcg else 0.0)


def ref_student_top(scores: np.ndarray, train: np.ndarray, k: int) -> list[int]:
    order = [int(i) for i in np.argsort(-scores, kind="stable") if not train[i]]
    return order[:k]


def ref_distances(scores, train, rankings, stages, step, k) -> np.ndarray:
    """D(u, x, min(v + step, T − 1)) for every user and teacher."""
    out = np.zeros(stages.shape)
    for u in range(stages.shape[0]):
        student = ref_student_top(scores[u], train[u], k)
        for x in range(stages.shape[1]):
            stage = min(stages[u, x] + step, rankings.shape[1] - 1)
            out[u, x] = ref_distance(student, list(rankings[x, stage, u, :k]))
    return out


def ref_rule(stages, d_prev, d_next, d_after, threshold, n_stages):
    stages, d_prev = stages.copy(), d_prev.copy()
    for u in range(stages.shape[0]):
        for x in range(stages.shape[1]):
            if stages[u, x] == n_stages - 1:
                continue
            if d_next[u, x] == 0 or d_prev[u, x] / d_next[u, x] > threshold or d_prev[u, x] / d_next[u, x] < 1:
                stages[u, x] += 1
                d_prev[u, x] = d_after[u, x]
    return stages, d_prev


def ref_importance(rankings, stages, n_items, tau) -> np.ndarray:
    """float64 [U, n_items]: Σ_x exp(−rank/τ) over each teacher's list at the user's stage (rank 1-based)."""
    out = np.zeros((stages.shape[0], n_items))
    for u in range(stages.shape[0]):
        for x in range(stages.shape[1]):
            for j, item in enumerate(rankings[x, stages[u, x], u]):
                if item >= 0:
                    out[u, item] += np.exp(-(j + 1) / tau)
    return out


def assert_targets_are_ensemble_topk(table, rankings, stages, train, k, tau):
    """Each row is a top-k of the reference importance, best first (checked on the values: robust to ties)."""
    imp = ref_importance(rankings, stages, N_ITEMS, tau)
    for u in range(stages.shape[0]):
        row = table[u]
        assert len(set(row.tolist())) == k and (row >= 0).all() and not train[u, row].any()
        np.testing.assert_allclose(imp[u, row], np.sort(imp[u])[::-1][:k], rtol=1e-5)


# ------------------------------------------------------------------------------------------- fixtures


def make_problem(seed: int = 0):
    rng = np.random.default_rng(seed)
    train_rows = [rng.choice(N_ITEMS, size=rng.integers(3, 11), replace=False) for _ in range(N_USERS)]
    train = CSR.from_rows([np.sort(r) for r in train_rows])
    train_dense = train.to_dense(N_ITEMS)
    rankings = np.zeros((N_TEACHERS, N_STAGES, N_USERS, TOP_N), np.int32)
    for x in range(N_TEACHERS):
        for t in range(N_STAGES):
            for u in range(N_USERS):
                rankings[x, t, u] = rng.permutation(np.flatnonzero(~train_dense[u]))[:TOP_N]
    observed = np.full((N_USERS, 4), -1, np.int32)  # wider than K/10 = 2, cut by DKC
    for u, row in enumerate(train_rows):
        observed[u, : min(4, row.size)] = row[:4]
    scores = rng.normal(size=(N_USERS, N_ITEMS)).astype(np.float32)
    return rankings, observed, train, train_dense, scores


# ---------------------------------------------------------------------------------------------- tests


def test_distance_equals_numpy_reference():
    rng = np.random.default_rng(1)
    batch, k, ks = 6, 12, 15
    student = np.stack([rng.permutation(40)[:ks] for _ in range(batch)]).astype(np.int32)
    teacher = np.stack([[rng.permutation(40)[:k] for _ in range(N_TEACHERS)] for _ in range(batch)]).astype(np.int32)
    student[1, 10:] = -1  # a short student list
    teacher[2, 1, 7:] = -1  # a short teacher list
    teacher[3, 0] = student[3, :k]  # identical rankings: D = 0
    teacher[4, 2] = -1  # an empty teacher list: NDCG 0
    got = dkc.ndcg_distance(student, teacher).numpy()
    expected = [[ref_distance(list(student[b]), list(teacher[b, x])) for x in range(N_TEACHERS)] for b in range(batch)]
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert abs(got[3, 0]) < 1e-6 and got[4, 2] == 1.0


def test_rule_hits_every_branch_like_the_reference():
    threshold = 1.05 * 0.995**2
    # > threshold | < 1 | in between (kept) | last stage (untouched) | D_next = 0 (three times) | D_prev = 0 | last
    stages = np.array([[0, 1, 2, 3, 0, 1, 2, 1, 2, 3]], np.int32)
    d_next = np.array([[0.5, 0.5, 0.5, 0.5, 0.0, 0.0, 0.0, 0.4, 0.5, 0.5]], np.float32)
    d_prev = np.array([[0.6, 0.45, 0.51, 0.9, 0.3, 1.0, 0.0, 0.0, 0.0, 0.0]], np.float32)
    d_after = np.full_like(d_next, 0.7)
    stages_tf, d_prev_tf, advanced = dkc.advance_stages(
        tf.constant(stages), tf.constant(d_prev), tf.constant(d_next), tf.constant(d_after), threshold, N_STAGES
    )
    ref_stages, ref_d_prev = ref_rule(stages, d_prev, d_next, d_after, threshold, N_STAGES)
    np.testing.assert_array_equal(stages_tf.numpy(), ref_stages)
    np.testing.assert_array_equal(d_prev_tf.numpy(), ref_d_prev)
    np.testing.assert_array_equal(advanced.numpy(), [[1, 1, 0, 0, 1, 1, 1, 1, 1, 0]])

    rng = np.random.default_rng(2)  # and on random values
    stages = rng.integers(0, N_STAGES, (50, 6)).astype(np.int32)
    d_prev, d_next, d_after = (rng.uniform(0.0, 1.0, (50, 6)).astype(np.float32) for _ in range(3))
    d_next[rng.random((50, 6)) < 0.1] = 0.0
    got = dkc.advance_stages(
        tf.constant(stages), tf.constant(d_prev), tf.constant(d_next), tf.constant(d_after), threshold, N_STAGES
    )
    for got_part, ref_part in zip(got[:2], ref_rule(stages, d_prev, d_next, d_after, threshold, N_STAGES)):
        np.testing.assert_array_equal(got_part.numpy(), ref_part)


def assert_statistics_equal_loops(stats, stages, d_prev, d_next, threshold):
    """update_statistics against a loop over (user, teacher) pairs, which names each pair's rule in turn."""
    counts, per_stage = {"reproduced": 0, "caught_up": 0, "drifted": 0}, {}
    for (u, x), stage in np.ndenumerate(stages):
        if stage == N_STAGES - 1:
            continue
        if d_next[u, x] <= 0:
            rule = "reproduced"
        elif d_prev[u, x] / d_next[u, x] > threshold:
            rule = "caught_up"
        elif d_prev[u, x] / d_next[u, x] < 1:
            rule = "drifted"
        else:
            rule = None
        if rule:
            counts[rule] += 1
        per_stage.setdefault(stage, []).append((d_next[u, x], rule is not None))
    pairs = stages.size
    for rule, count in counts.items():
        assert stats[f"moved_{rule}"] == pytest.approx(count / pairs)
    assert stats["moved"] == pytest.approx(sum(counts.values()) / pairs) and stats["threshold"] == threshold
    for stage, entries in per_stage.items():
        assert stats[f"stage_{stage}/share"] == pytest.approx(len(entries) / pairs)
        assert stats[f"stage_{stage}/d_next"] == pytest.approx(np.mean([d for d, _ in entries]), rel=1e-5)
        assert stats[f"stage_{stage}/moved"] == pytest.approx(np.mean([m for _, m in entries]))


def test_update_step_equals_numpy_reference():
    rankings, observed, train, train_dense, scores = make_problem()
    k = CFG.dkc_ndcg_k
    know = dkc.DynamicKnowledge(rankings, observed, train, N_ITEMS, CFG, batch_users=16)  # 3 batches, last short
    zeros = np.zeros((N_USERS, N_TEACHERS), np.int32)
    assert_targets_are_ensemble_topk(know.target_table.numpy(), rankings, zeros, train_dense, CFG.top_k, CFG.tau)
    perm_u, perm_p = know.targets(tf.constant([4, 0]))
    assert perm_u.shape == (2, CFG.top_k)
    np.testing.assert_array_equal(perm_p.numpy(), observed[[4, 0], :2])

    # user 0 reproduces teacher 0's stage-1 top-k exactly: D_next = 0 there
    scores[0, rankings[0, 1, 0, :k]] = 100.0 - np.arange(k)
    score_fn = lambda ids: tf.gather(tf.constant(scores), ids)  # noqa: E731

    # first call (epoch 10): records D_prev = D(v + 1) only
    assert know.due(10) and not know.due(15) and not know.due(0)
    first = know.update(score_fn, epoch=10)
    assert first["advanced"] == 0 and first["moved"] == 0.0 and first["stage_0/share"] == 1.0
    np.testing.assert_array_equal(know.stages.numpy(), zeros)
    d_first = ref_distances(scores, train_dense, rankings, zeros, 1, k)
    np.testing.assert_allclose(know.d_prev.numpy(), d_first, atol=1e-6)
    assert abs(know.d_prev.numpy()[0, 0]) < 1e-6

    # engineer the state: random stages (some already last), D_prev = D_next · factor per branch
    rng = np.random.default_rng(3)
    stages = rng.integers(0, N_STAGES, (N_USERS, N_TEACHERS)).astype(np.int32)
    stages[0, 0] = 0
    d_next = ref_distances(scores, train_dense, rankings, stages, 1, k)
    d_after = ref_distances(scores, train_dense, rankings, stages, 2, k)
    factor = rng.choice([1.5, 0.8, 1.02], size=stages.shape)  # > threshold (≈1.04), < 1, in between
    d_prev = (d_next * factor).astype(np.float32)
    know.stages.assign(stages)
    know.d_prev.assign(d_prev)
    know._rebuild_targets(tf.range(N_USERS))  # keep the table in step with the hand-set stages
    threshold = dkc.dkc_threshold(20, CFG)
    assert 1.02 < threshold < 1.5
    stats = know.update(score_fn, epoch=20)
    n_advanced = stats["advanced"]

    ref_stages, ref_d_prev = ref_rule(stages, d_prev, d_next, d_after, threshold, N_STAGES)
    np.testing.assert_array_equal(know.stages.numpy(), ref_stages)
    np.testing.assert_allclose(know.d_prev.numpy(), ref_d_prev, atol=1e-6)
    assert n_advanced == int((ref_stages != stages).sum()) > 0
    assert_statistics_equal_loops(stats, stages, d_prev, d_next, threshold)
    assert (ref_stages == stages).any() and ref_stages[0, 0] == 1
    assert_targets_are_ensemble_topk(know.target_table.numpy(), rankings, ref_stages, train_dense, CFG.top_k, CFG.tau)
    np.testing.assert_allclose(know.mean_stage().numpy(), ref_stages.mean(0), rtol=1e-6)
    assert know.is_final() == dkc.all_final(ref_stages, N_STAGES)


def test_adt_switch_uses_means_rounded_to_two_decimals():
    stages = np.full((1000, 2), N_STAGES - 1, np.int32)
    stages[:4, 1] = N_STAGES - 2  # mean 2.996 -> 3.0: final although 4 users lag
    assert dkc.all_final(stages, N_STAGES)
    np.testing.assert_array_equal(dkc.mean_stages_rounded(stages), [3.0, 3.0])
    stages[:6, 1] = N_STAGES - 2  # mean 2.994 -> 2.99: not yet
    assert not dkc.all_final(stages, N_STAGES)
    assert not dkc.all_final(np.zeros((5, 2), np.int32), N_STAGES)


def test_final_state_stops_updates():
    rankings, observed, train, _, _ = make_problem(4)
    know = dkc.DynamicKnowledge(rankings[:, :1], observed, train, N_ITEMS, CFG)  # a single stage: final at once
    assert know.is_final() and not know.due(10)


def test_bad_inputs_raise():
    rankings, observed, train, _, _ = make_problem(5)
    with pytest.raises(HetCompError, match="dkc_ndcg_k"):
        dkc.DynamicKnowledge(rankings, observed, train, N_ITEMS, dataclasses.replace(CFG, dkc_ndcg_k=50))
    with pytest.raises(HetCompError, match="one row per user"):
        dkc.DynamicKnowledge(rankings, observed[:-1], train, N_ITEMS, CFG)
    with pytest.raises(HetCompError, match="rankings must be"):
        dkc.DynamicKnowledge(rankings[0], observed, train, N_ITEMS, CFG)


def ref_distance_authors(student: list[int], teacher: list[int], k: int = 50) -> float:
    """The HetComp authors' get_NDCG_u, as a loop: the student's j-th item (0-based, train items already out)
    earns 2^{exp(-j/10)} - 1 when it is in the teacher's top-k; IDCG of k hits; rounded to 4 decimals."""
    gains = [(2 ** np.exp(-j / 10) - 1) / np.log2(j + 2) for j in range(k)]
    teacher_set = {t for t in teacher[:k] if t >= 0}
    dcg = sum(g for j, (s, g) in enumerate(zip(student[:k], gains)) if s >= 0 and s in teacher_set)
    return 1.0 - round(dcg / sum(gains), 4)


def test_authors_distance_equals_numpy_reference():
    rng = np.random.default_rng(4)
    batch, k = 7, 50
    student = np.stack([rng.permutation(90)[:k] for _ in range(batch)]).astype(np.int32)
    teacher = np.stack([[rng.permutation(90)[:k] for _ in range(N_TEACHERS)] for _ in range(batch)]).astype(np.int32)
    teacher[0, 1] = student[0, ::-1]  # the same set in reverse order: D = 0 here, not in the "paper" variant
    teacher[1, 0, 20:] = -1  # a short teacher list
    student[2, 45:] = -1  # a short student list
    got = dkc.ndcg_distance_authors(student, teacher).numpy()
    expected = [
        [ref_distance_authors(list(student[b]), list(teacher[b, x])) for x in range(N_TEACHERS)] for b in range(batch)
    ]
    np.testing.assert_allclose(got, expected, atol=1e-7)
    assert got[0, 1] == 0.0 and dkc.ndcg_distance(student, teacher).numpy()[0, 1] > 0.1
    assert np.allclose(got * 1e4, np.round(got * 1e4), atol=1e-3)  # 4-decimal values


def test_targets_are_the_weighted_ensembles_topk_with_teacher_weights():
    """Stage 0 of every teacher, weighted: teacher 1 (weight 0) adds nothing, so fewer items may be listed."""
    rankings, observed, train, _, _ = make_problem(3)
    weights = [2.0, 0.0, 0.5]
    know = dkc.DynamicKnowledge(rankings, observed, train, N_ITEMS, CFG, tau=4.0, teacher_weights=weights)
    imp = np.zeros((N_USERS, N_ITEMS))
    for u in range(N_USERS):
        for x in range(N_TEACHERS):
            for j, item in enumerate(rankings[x, 0, u]):
                imp[u, item] += weights[x] * np.exp(-(j + 1) / 4.0)
    table = know.target_table.numpy()
    for u in range(N_USERS):
        listed = np.count_nonzero(imp[u])
        row = table[u][table[u] >= 0]
        assert len(row) == min(CFG.top_k, listed)
        np.testing.assert_allclose(imp[u, row], np.sort(imp[u])[::-1][: len(row)], rtol=1e-5)
