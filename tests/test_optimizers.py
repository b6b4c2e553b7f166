"""LazyAdam against a NumPy reference: only the batch's rows move, each exactly as Adam moves it."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from hetcomp_tf.errors import HetCompError
from hetcomp_tf.teachers.optimizers import LazyAdam, make_optimizer


def reference_lazy_adam(table, batches, lr, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """Row by row in float64: a row's moments and weights change only at the steps whose batch holds it (duplicate
    ids' gradients summed), with the bias correction of the global step count."""
    table, m, v = table.astype(np.float64), np.zeros(table.shape), np.zeros(table.shape)
    for step, (ids, grads) in enumerate(batches, start=1):
        summed = {}
        for row, grad in zip(ids, grads):
            summed[row] = summed.get(row, 0.0) + grad.astype(np.float64)
        alpha = lr * np.sqrt(1 - beta_2**step) / (1 - beta_1**step)
        for row, grad in summed.items():
            m[row] = beta_1 * m[row] + (1 - beta_1) * grad
            v[row] = beta_2 * v[row] + (1 - beta_2) * grad**2
            table[row] -= alpha * m[row] / (np.sqrt(v[row]) + epsilon)
    return table


def test_lazy_adam_matches_the_reference_and_leaves_other_rows_alone():
    rng = np.random.default_rng(0)
    start = rng.normal(size=(50, 4)).astype(np.float32)
    table = tf.Variable(start)
    optimizer = LazyAdam(0.01)
    batches = []
    for _ in range(6):
        ids = rng.integers(0, 20, size=12)  # duplicates on purpose; rows 20..49 never appear
        grads = rng.normal(size=(12, 4)).astype(np.float32)
        batches.append((ids, grads))
        optimizer.apply_gradients(
            [(tf.IndexedSlices(tf.constant(grads), tf.constant(ids), tf.constant([50, 4])), table)]
        )
    want = reference_lazy_adam(start, batches, 0.01)
    # float32 arithmetic over 6 steps against float64: relative error of a few ulps of the weights' size
    np.testing.assert_allclose(table.numpy(), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(table.numpy()[20:], start[20:])


def test_lazy_adam_on_dense_gradients_is_adam():
    rng = np.random.default_rng(1)
    start = rng.normal(size=(6, 3)).astype(np.float32)
    lazy, adam = tf.Variable(start), tf.Variable(start)
    optimizers = LazyAdam(0.05), tf.keras.optimizers.Adam(0.05)
    for _ in range(3):
        grad = tf.constant(rng.normal(size=(6, 3)).astype(np.float32))
        for optimizer, variable in zip(optimizers, (lazy, adam)):
            optimizer.apply_gradients([(grad, variable)])
    np.testing.assert_array_equal(lazy.numpy(), adam.numpy())


def test_lazy_adam_trains_an_embedding_lookup_in_a_compiled_step():
    table = tf.Variable(tf.ones([30, 2]))
    optimizer = LazyAdam(0.1)

    @tf.function
    def step(ids):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(tf.gather(table, ids)))
        optimizer.apply_gradients([(tape.gradient(loss, table), table)])

    for _ in range(3):
        step(tf.constant([1, 5, 5]))
    moved = np.flatnonzero(np.any(table.numpy() != 1.0, axis=1))
    assert moved.tolist() == [1, 5]


def test_make_optimizer_names():
    assert type(make_optimizer("adam", 0.1)) is tf.keras.optimizers.Adam
    assert isinstance(make_optimizer("lazy_adam", 0.1), LazyAdam)
    with pytest.raises(HetCompError, match="unknown optimizer 'sgd'"):
        make_optimizer("sgd", 0.1)
