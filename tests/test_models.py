"""The six teachers: contract (shapes, determinism), that each one learns on the tiny synthetic data, and each
scorer and loss against a slow dense NumPy reference of the model's definition."""

from __future__ import annotations

import dataclasses
import tempfile

import numpy as np
import pytest
import tensorflow as tf

from hetcomp_tf.config import TEACHER_NAMES, LightGCNConfig, NeuMFConfig, TeacherConfig, get_profile
from hetcomp_tf.distill.student import Student
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.metrics import evaluate
from hetcomp_tf.models import build_teacher
from hetcomp_tf.models import neumf as neumf_module

TINY = get_profile("tiny").teachers


def small_cfg(name: str, **changes) -> TeacherConfig:
    return dataclasses.replace(TINY[name], **changes)


def randomize(model, seed: int = 0, scale: float = 0.3) -> None:
    """Non-trivial weights (the initial ones are near zero, which hides mistakes in non-linear paths)."""
    rng = np.random.default_rng(seed)
    for v in model.variables:
        v.assign(rng.normal(0.0, scale, v.shape).astype(np.float32))


def dense_train(data) -> np.ndarray:
    return data.train.to_dense(data.n_items).astype(np.float64)


def tower_np(x: np.ndarray, tower, activation, last_activation=None) -> np.ndarray:
    layers = tower.layers
    for k, layer in enumerate(layers):
        x = x @ layer.kernel.numpy() + layer.bias.numpy()
        act = activation if k < len(layers) - 1 else last_activation
        x = act(x) if act is not None else x
    return x


def relu(x):
    return np.maximum(x, 0.0)


def log_softmax(x):
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def softplus(x):
    return np.logaddexp(0.0, x)


def fixed_batch(model, epoch=0):
    return next(iter(model.train_batches(epoch)))


# --- contract --------------------------------------------------------------------------------------------


def test_an_unknown_teacher_is_rejected(tiny_dataset):  # MODELS == TEACHER_NAMES: asserted by models/__init__.py
    with pytest.raises(HetCompError, match="unknown teacher 'XX'"):
        build_teacher("XX", tiny_dataset, TeacherConfig())


def test_a_teacher_takes_only_its_own_config_class(tiny_dataset):  # each field's checks: tests/test_config.py
    with pytest.raises(HetCompError, match="teacher GNN takes a LightGCNConfig, got a NeuMFConfig"):
        build_teacher("GNN", tiny_dataset, NeuMFConfig())
    with pytest.raises(HetCompError, match="teacher DL takes a NeuMFConfig, got a TeacherConfig"):
        build_teacher("DL", tiny_dataset, TeacherConfig())
    assert build_teacher("GNN", tiny_dataset, LightGCNConfig(dim=4, n_layers=3)).n_layers == 3


@pytest.mark.parametrize("name", TEACHER_NAMES)
def test_score_all_shape_dtype_finite(tiny_dataset, name):
    model = build_teacher(name, tiny_dataset, TINY[name])
    scores = model.score_all(np.array([0, 5, 3], np.int64))
    assert scores.shape == (3, tiny_dataset.n_items) and scores.dtype == tf.float32
    assert np.isfinite(scores.numpy()).all()


@pytest.mark.parametrize("name", TEACHER_NAMES)
def test_train_batches_are_deterministic_per_seed_and_epoch(tiny_dataset, name):
    def flat(model, epoch):
        return [{k: v.numpy() for k, v in batch.items()} for batch in model.train_batches(epoch)]

    a, b = (
        flat(build_teacher(name, tiny_dataset, TINY[name], seed=3), 2),
        flat(build_teacher(name, tiny_dataset, TINY[name], seed=3), 2),
    )
    assert len(a) == len(b) and all(np.array_equal(x[k], y[k]) for x, y in zip(a, b) for k in x)
    other_epoch = flat(build_teacher(name, tiny_dataset, TINY[name], seed=3), 4)
    first = "ids" if "ids" in a[0] else "user"
    assert not np.array_equal(a[0][first], other_epoch[0][first])


@pytest.mark.parametrize("name", ["MF", "ML", "DL", "GNN"])
def test_pairwise_batches_cover_train_once_with_unobserved_negatives(tiny_dataset, name):
    cfg = small_cfg(name, n_negatives=3)
    batches = list(build_teacher(name, tiny_dataset, cfg).train_batches(0))
    users = np.concatenate([b["user"].numpy() for b in batches])
    pos = np.concatenate([b["pos"].numpy() for b in batches])
    neg = np.concatenate([b["neg"].numpy() for b in batches])
    train = tiny_dataset.train.to_dense(tiny_dataset.n_items)
    pairs = np.sort(users.astype(np.int64) * tiny_dataset.n_items + pos)
    expected = np.sort(tiny_dataset.train.row_ids() * tiny_dataset.n_items + tiny_dataset.train.indices)
    assert np.array_equal(pairs, expected)
    assert neg.shape == (users.size, 3) and not train[users[:, None], neg].any()


# --- learning ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def random_recall(tiny_dataset):
    def random_scores(user_ids):
        return tf.random.stateless_uniform([tf.size(user_ids), tiny_dataset.n_items], seed=[7, 0])

    return evaluate(random_scores, tiny_dataset, "valid", ks=(50,))["recall@50"]


@pytest.mark.parametrize("name", TEACHER_NAMES)
def test_teacher_learns_on_synthetic_data(tiny_dataset, random_recall, name):
    cfg = TINY[name]
    model = build_teacher(name, tiny_dataset, cfg, seed=0)
    optimizer = tf.keras.optimizers.Adam(cfg.learning_rate)
    losses = [model.train_epoch(optimizer, epoch) for epoch in range(cfg.epochs)]
    recall = evaluate(model.score_all, tiny_dataset, "valid", ks=(50,))["recall@50"]
    assert np.mean(losses[-2:]) < 0.9 * losses[0], losses
    assert recall > 1.5 * random_recall and recall > random_recall + 0.15, (recall, random_recall)


# --- model-specific references -------------------------------------------------------------------------------


def test_mf_scores_and_bpr_loss_match_numpy(tiny_dataset):
    model = build_teacher("MF", tiny_dataset, small_cfg("MF", n_negatives=2, l2=0.01))
    randomize(model)
    U, V = model.user_embedding.embeddings.numpy(), model.item_embedding.embeddings.numpy()
    users = np.array([0, 7, 2])
    np.testing.assert_allclose(model.score_all(users).numpy(), U[users] @ V.T, rtol=1e-5, atol=1e-5)
    batch = fixed_batch(model)
    u, p, n = (batch[k].numpy() for k in ("user", "pos", "neg"))
    diff = np.einsum("bd,bnd->bn", U[u], V[n]) - (U[u] * V[p]).sum(1)[:, None]
    reg = ((U[u] ** 2).sum() + (V[p] ** 2).sum() + (V[n] ** 2).sum()) / len(u)
    np.testing.assert_allclose(model.compute_loss(batch).numpy(), softplus(diff).mean() + 0.01 * reg, rtol=1e-5)


def test_mf_student_round_trips_through_config_and_checkpoint():
    student = Student(n_users=11, n_items=13, dim=4, seed=1)
    assert student.user_embedding.embeddings.shape == (11, 4) and student.item_embedding.embeddings.shape == (13, 4)
    assert not hasattr(student, "train_batches")  # no training data of its own: the distiller fits it
    clone = Student.from_config(student.get_config())
    randomize(student, seed=5)
    with tempfile.TemporaryDirectory() as tmp:
        student.save_weights(f"{tmp}/ckpt")
        clone.load_weights(f"{tmp}/ckpt")
    users = np.arange(11)
    np.testing.assert_array_equal(clone.score_all(users).numpy(), student.score_all(users).numpy())


def test_cml_scores_loss_and_unit_ball(tiny_dataset):
    cfg = small_cfg("ML", n_negatives=3, margin=0.5, l2=0.0)
    model = build_teacher("ML", tiny_dataset, cfg)
    randomize(model, scale=0.2)
    U, V = model.user_embedding.embeddings.numpy(), model.item_embedding.embeddings.numpy()
    users = np.array([1, 4])
    expected = -((U[users][:, None, :] - V[None]) ** 2).sum(-1)
    np.testing.assert_allclose(model.score_all(users).numpy(), expected, rtol=1e-4, atol=1e-4)

    batch = fixed_batch(model)
    u, p, n = (batch[k].numpy() for k in ("user", "pos", "neg"))
    d_pos = ((U[u] - V[p]) ** 2).sum(-1)
    d_neg = ((U[u][:, None] - V[n]) ** 2).sum(-1)
    impostors = (0.5 + d_pos[:, None] - d_neg > 0).sum(1)
    weight = np.log1p(np.floor(impostors * tiny_dataset.n_items / 3))
    expected_loss = (weight * relu(0.5 + d_pos - d_neg.min(1))).mean()
    np.testing.assert_allclose(model.compute_loss(batch).numpy(), expected_loss, rtol=1e-4)

    for table in (model.user_embedding.embeddings, model.item_embedding.embeddings):
        table.assign(table * 10.0)  # far outside the ball
    model.train_epoch(tf.keras.optimizers.Adam(0.01), 0)
    for table in (model.user_embedding.embeddings, model.item_embedding.embeddings):
        norms = np.linalg.norm(table.numpy(), axis=1)
        assert norms.max() <= 1.0 + 1e-5 and norms.max() > 0.99


def neumf_logits_np(model, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Naive NeuMF: for every (user, item) pair, GMF product and the MLP on the concatenation."""
    P, Q = model.user_embedding.embeddings.numpy(), model.item_embedding.embeddings.numpy()
    Pm, Qm = model.mlp_user_embedding.embeddings.numpy(), model.mlp_item_embedding.embeddings.numpy()
    out = model.output_layer.layers[0]
    concat = np.concatenate([np.broadcast_to(Pm[users][:, None], Qm[items].shape), Qm[items]], -1)
    mlp = tower_np(concat, model.mlp, relu, relu)
    fused = np.concatenate([P[users][:, None] * Q[items], mlp], -1)
    return (fused @ out.kernel.numpy())[..., 0] + out.bias.numpy()[0]


def test_neumf_decomposed_score_all_matches_naive_mlp(tiny_dataset, monkeypatch):
    n_items = tiny_dataset.n_items
    monkeypatch.setattr(neumf_module, "_PAIRS_PER_CHUNK", 2 * n_items)  # chunks of 2 users: padding exercised
    model = build_teacher("DL", tiny_dataset, small_cfg("DL", mlp_layers=(12, 6), l2=0.01, n_negatives=2))
    randomize(model)
    users = np.array([3, 0, 9, 4, 1])
    expected = neumf_logits_np(model, users, np.broadcast_to(np.arange(n_items), (len(users), n_items)))
    np.testing.assert_allclose(model.score_all(users).numpy(), expected, rtol=1e-5, atol=1e-5)

    batch = fixed_batch(model)
    u, p, n = (batch[k].numpy() for k in ("user", "pos", "neg"))
    items = np.concatenate([p[:, None], n], 1)
    logits = neumf_logits_np(model, u, items)
    labels = np.zeros_like(logits)
    labels[:, 0] = 1.0
    bce = (softplus(logits) - labels * logits).mean()
    tables = [model.user_embedding, model.mlp_user_embedding, model.item_embedding, model.mlp_item_embedding]
    rows = [u, u, items, items]
    reg = sum((t.embeddings.numpy()[r] ** 2).sum() for t, r in zip(tables, rows)) / len(u)
    np.testing.assert_allclose(model.compute_loss(batch).numpy(), bce + 0.01 * reg, rtol=1e-5)


def lightgcn_np(model, data):
    """Dense D^-1/2 A D^-1/2 and the layer-mean embeddings."""
    R = dense_train(data)
    n_u, n_i = R.shape
    A = np.block([[np.zeros((n_u, n_u)), R], [R.T, np.zeros((n_i, n_i))]])
    degree = A.sum(1)
    inv_sqrt = np.where(degree > 0, 1.0 / np.sqrt(np.maximum(degree, 1e-12)), 0.0)
    norm = inv_sqrt[:, None] * A * inv_sqrt[None]
    layer = np.concatenate([model.user_embedding.embeddings.numpy(), model.item_embedding.embeddings.numpy()])
    total = layer.copy()
    for _ in range(model.n_layers):
        layer = norm @ layer
        total += layer
    final = total / (model.n_layers + 1)
    return norm, final[:n_u], final[n_u:]


def test_lightgcn_adjacency_scores_and_loss_match_dense_numpy(tiny_dataset):
    model = build_teacher("GNN", tiny_dataset, small_cfg("GNN", n_layers=3, l2=0.01, n_negatives=2))
    randomize(model)
    norm, users_emb, items_emb = lightgcn_np(model, tiny_dataset)
    np.testing.assert_allclose(tf.sparse.to_dense(model.adjacency).numpy(), norm, rtol=1e-6, atol=1e-7)
    users = np.array([2, 8, 0])
    np.testing.assert_allclose(model.score_all(users).numpy(), users_emb[users] @ items_emb.T, rtol=1e-4, atol=1e-5)

    batch = fixed_batch(model)
    u, p, n = (batch[k].numpy() for k in ("user", "pos", "neg"))
    diff = np.einsum("bd,bnd->bn", users_emb[u], items_emb[n]) - (users_emb[u] * items_emb[p]).sum(1)[:, None]
    U0, V0 = model.user_embedding.embeddings.numpy(), model.item_embedding.embeddings.numpy()
    reg = ((U0[u] ** 2).sum() + (V0[p] ** 2).sum() + (V0[n] ** 2).sum()) / len(u)
    np.testing.assert_allclose(model.compute_loss(batch).numpy(), softplus(diff).mean() + 0.01 * reg, rtol=1e-4)


def test_vae_scores_and_loss_match_numpy(tiny_dataset):
    model = build_teacher("AE", tiny_dataset, small_cfg("AE", hidden=(10,), dim=4, l2=0.01))
    randomize(model, scale=0.2)
    X = dense_train(tiny_dataset)
    users = np.array([5, 1, 0, 11])

    def forward(rows):
        x = X[rows] / np.sqrt(np.maximum(X[rows].sum(1, keepdims=True), 1))
        mu, log_var = np.split(tower_np(x, model.encoder, np.tanh), 2, axis=1)
        return mu, log_var, tower_np(mu, model.decoder, np.tanh)

    np.testing.assert_allclose(model.score_all(users).numpy(), forward(users)[2], rtol=1e-4, atol=1e-5)
    ids = np.array([3, 2, 7])
    mu, log_var, logits = forward(ids)
    nll = -(log_softmax(logits) * X[ids]).sum() / len(ids)
    kl = (0.5 * (np.exp(log_var) + mu**2 - 1 - log_var)).sum(1).mean()
    reg = sum((layer.kernel.numpy() ** 2).sum() for t in (model.encoder, model.decoder) for layer in t.layers)
    loss = model.compute_loss({"ids": tf.constant(ids, tf.int32), "beta": tf.constant(0.3)})
    np.testing.assert_allclose(loss.numpy(), nll + 0.3 * kl + 0.01 * reg, rtol=1e-4)


def test_vae_kl_weight_is_annealed_per_epoch(tiny_dataset):
    cfg = small_cfg("AE", kl_cap=0.4, kl_anneal_epochs=4)
    model = build_teacher("AE", tiny_dataset, cfg)
    betas = [float(fixed_batch(model, epoch)["beta"]) for epoch in (0, 2, 4, 9)]
    np.testing.assert_allclose(betas, [0.0, 0.2, 0.4, 0.4], rtol=1e-6)
    unannealed = build_teacher("AE", tiny_dataset, small_cfg("AE", kl_cap=0.4, kl_anneal_epochs=0))
    assert float(fixed_batch(unannealed, 0)["beta"]) == pytest.approx(0.4)  # 0: the full weight from the start


def test_item_ae_scores_and_loss_match_full_reconstruction(tiny_dataset):
    cfg = small_cfg("I-AE", hidden=(10,), dim=4, l2=0.01, positive_weight=3.0)
    model = build_teacher("I-AE", tiny_dataset, cfg)
    randomize(model, scale=0.2)
    X_items = dense_train(tiny_dataset).T  # [n_items, n_users]
    reconstruction = tower_np(tower_np(X_items, model.encoder, np.tanh, np.tanh), model.decoder, np.tanh)
    users = np.array([4, 0, 13])
    np.testing.assert_allclose(model.score_all(users).numpy(), reconstruction[:, users].T, rtol=1e-4, atol=1e-5)

    ids = np.array([6, 1, 20])
    x, logits = X_items[ids], reconstruction[ids]
    bce = (3.0 * x * softplus(-logits) + (1 - x) * softplus(logits)).sum() / len(ids)
    reg = sum((layer.kernel.numpy() ** 2).sum() for t in (model.encoder, model.decoder) for layer in t.layers)
    loss = model.compute_loss({"ids": tf.constant(ids, tf.int32), "seed": tf.constant([0, 0], tf.int64)})
    np.testing.assert_allclose(loss.numpy(), bce + 0.01 * reg, rtol=1e-4)
