"""Batched TF metrics against a slow, per-user NumPy reference on random data."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from hetcomp_tf.data.dataset import CSR, Dataset
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.metrics import _batch_metric_sums, evaluate, masked_topk, ranking_metrics


def reference_metrics(scores, exclude, truth, ks):
    """Per user: sort all items by score, skip excluded ones, count hits in the first k."""
    out = {f"{m}@{k}": [] for k in ks for m in ("recall", "ndcg")}
    for s, ex, tr in zip(scores, exclude, truth):
        ranked = [i for i in np.argsort(-s, kind="stable") if not ex[i]]
        relevant = set(np.flatnonzero(tr))
        for k in ks:
            if not relevant:
                out[f"recall@{k}"].append(0.0)
                out[f"ndcg@{k}"].append(0.0)
                continue
            top = ranked[:k]
            hits = [1.0 if i in relevant else 0.0 for i in top]
            dcg = sum(h / np.log2(r + 2) for r, h in enumerate(hits))
            idcg = sum(1 / np.log2(r + 2) for r in range(min(len(relevant), k)))
            out[f"recall@{k}"].append(sum(hits) / len(relevant))
            out[f"ndcg@{k}"].append(dcg / idcg)
    return {name: np.array(v) for name, v in out.items()}


def random_split(rng, n_users, n_items, density=(0.3, 0.1, 0.1)):
    """Disjoint random train/valid/test membership, as a Dataset."""
    part = rng.choice(4, size=(n_users, n_items), p=[1 - sum(density), *density])
    csrs = [CSR.from_pairs(*np.nonzero(part == p), n_users) for p in (1, 2, 3)]
    vocab = lambda n, c: np.char.add(c, np.arange(n).astype(np.str_))  # noqa: E731
    return Dataset("random", vocab(n_users, "u"), vocab(n_items, "i"), *csrs)


@pytest.mark.parametrize("seed,n_items", [(0, 120), (1, 40), (2, 15)])
def test_ranking_metrics_match_reference(seed, n_items):
    rng = np.random.default_rng(seed)
    n_users, ks = 64, (1, 10, 20, 50)
    scores = rng.normal(size=(n_users, n_items)).astype(np.float32)
    state = rng.choice(3, size=(n_users, n_items), p=[0.6, 0.25, 0.15])  # 0 candidate, 1 excluded, 2 truth
    state[:3] = np.where(state[:3] == 2, 0, state[:3])  # some users without truth
    state[3, :] = 1  # a user with everything excluded
    exclude, truth = state == 1, state == 2
    got = ranking_metrics(tf.constant(scores), tf.constant(exclude), tf.constant(truth), ks)
    want = reference_metrics(scores, exclude, truth, ks)
    assert set(got) == set(want)
    for name in want:
        np.testing.assert_allclose(got[name].numpy(), want[name], atol=1e-6, err_msg=name)
    assert want["recall@50"][4:].max() > 0  # the reference is not trivially zero


def test_masked_topk_skips_excluded_and_pads():
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(8, 30)).astype(np.float32)
    exclude = rng.random((8, 30)) < 0.5
    exclude[0, :] = True
    exclude[1] = np.arange(30) >= 5
    ids = masked_topk(tf.constant(scores), tf.constant(exclude), 40).numpy()
    assert ids.shape == (8, 40) and ids.dtype == np.int32
    for s, ex, row in zip(scores, exclude, ids):
        want = [i for i in np.argsort(-s) if not ex[i]]
        np.testing.assert_array_equal(row, want + [-1] * (40 - len(want)))
    assert (ids[0] == -1).all() and sorted(ids[1, :5]) == [0, 1, 2, 3, 4]


def reference_evaluate(scores, data, split, ks, subset=None):
    train, valid, test = (s.to_dense(data.n_items) for s in (data.train, data.valid, data.test))
    truth, exclude = (test, train | valid) if split == "test" else (valid, train | test)
    users = truth.any(axis=1)
    if subset is not None:
        users &= np.isin(np.arange(data.n_users), subset)
    per_user = reference_metrics(scores[users], exclude[users], truth[users], ks)
    return {name: float(v.mean()) for name, v in per_user.items()}


@pytest.mark.parametrize("split", ["test", "valid"])
def test_evaluate_matches_reference_and_skips_empty_users(split):
    rng = np.random.default_rng(7)
    data = random_split(rng, n_users=90, n_items=70)
    empty = data.test if split == "test" else data.valid
    assert (empty.lengths() > 0).all()
    # empty the truth of users 0..4 so evaluate must skip them
    keep = empty.row_ids() >= 5
    emptied = CSR.from_pairs(empty.row_ids()[keep], empty.indices[keep], data.n_users)
    data = Dataset(
        data.name,
        data.user_vocab,
        data.item_vocab,
        data.train,
        emptied if split == "valid" else data.valid,
        emptied if split == "test" else data.test,
    )
    scores = rng.normal(size=(data.n_users, data.n_items)).astype(np.float32)
    calls = []

    def score_fn(user_ids):
        calls.append(user_ids.numpy())
        return tf.gather(tf.constant(scores), user_ids)

    got = evaluate(score_fn, data, split, ks=(10, 20, 50), batch_size=16)
    want = reference_evaluate(scores, data, split, (10, 20, 50))
    assert list(got) == ["recall@10", "ndcg@10", "recall@20", "ndcg@20", "recall@50", "ndcg@50"]
    for name in want:
        assert got[name] == pytest.approx(want[name], abs=1e-6), name
    scored = np.concatenate(calls)
    np.testing.assert_array_equal(scored, np.arange(5, data.n_users))  # only users with truth, in batches
    assert max(len(c) for c in calls) == 16


def test_evaluate_on_a_subset_of_users_matches_reference():
    """`users=`: only those users count (duplicates once, users without truth skipped), as early stopping on a
    sample of valid users needs."""
    rng = np.random.default_rng(8)
    data = random_split(rng, n_users=80, n_items=60)
    scores = rng.normal(size=(data.n_users, data.n_items)).astype(np.float32)
    subset = np.array([70, 3, 3, 41, 12, 55, 9])
    got = evaluate(lambda u: tf.gather(tf.constant(scores), u), data, "valid", users=subset)
    want = reference_evaluate(scores, data, "valid", (10, 20, 50), subset=subset)
    for name in want:
        assert got[name] == pytest.approx(want[name], abs=1e-6), name
    assert got != evaluate(lambda u: tf.gather(tf.constant(scores), u), data, "valid")


def test_evaluate_does_not_retrace_per_batch():
    data = random_split(np.random.default_rng(1), n_users=50, n_items=30)
    fn = _batch_metric_sums((10, 20, 50))
    evaluate(lambda u: tf.random.normal([tf.shape(u)[0], 30]), data, "test", batch_size=7)
    traces = fn.experimental_get_tracing_count()
    evaluate(lambda u: tf.random.normal([tf.shape(u)[0], 30]), data, "valid", batch_size=11)
    assert fn.experimental_get_tracing_count() == traces <= 1


def test_perfect_and_adversarial_scores(tiny_dataset):
    data = tiny_dataset
    truth = data.test.to_dense(data.n_items).astype(np.float32)
    oracle = evaluate(lambda u: tf.gather(tf.constant(truth), u), data, "test")
    assert oracle["ndcg@50"] == pytest.approx(1.0) and oracle["recall@50"] == pytest.approx(1.0)
    worst = evaluate(lambda u: -tf.gather(tf.constant(truth), u), data, "test", ks=(10,))
    assert worst == {"recall@10": 0.0, "ndcg@10": 0.0}


def test_evaluate_rejects_bad_arguments(tiny_dataset):
    with pytest.raises(HetCompError, match="split 'train'"):
        evaluate(lambda u: None, tiny_dataset, "train")
    with pytest.raises(HetCompError, match="positive integers"):
        evaluate(lambda u: None, tiny_dataset, "test", ks=(0, 10))
