"""The fused rest kernel (hetcomp_tf/distill/fused.py) against float64 NumPy loops, and the losses and the trainer's
step through it against their dense form."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from hetcomp_tf.distill.fused import (
    FactoredScores,
    _cpu_flags,
    fused_available,
    kernel_isa,
    library_path,
    rest_logsumexp,
)
from hetcomp_tf.distill.losses.dcd import DCDLoss, DCDTargets
from hetcomp_tf.distill.losses.hetcomp import FineGrainedLoss, OverallLoss, RRDLoss, Targets, rest_and_list_scores
from hetcomp_tf.distill.losses.labels import item_pairs
from hetcomp_tf.errors import HetCompError

REPO_ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not fused_available()[0], reason=f"fused kernel: {fused_available()[1]}")


def reference(users, items, rows, ids, bound, upstream):
    """(lse [b], d users, d items) by loops: the clipped scores, the rest mask one pair at a time, e^{s − lse} on
    the rest where the clip is inactive."""
    scores = users.astype(np.float64) @ items.astype(np.float64).T
    clipped = np.clip(scores, -bound, bound)
    rest = np.ones_like(scores, bool)
    for row, item in zip(rows, ids):
        if item >= 0:
            rest[row, item] = False
    lse = np.full(len(users), -1e4)
    coefficient = np.zeros_like(scores)
    for r in range(len(users)):
        if rest[r].any():
            lse[r] = np.log(np.sum(np.exp(clipped[r, rest[r]])))
            inside = rest[r] & (np.abs(scores[r]) < bound)
            coefficient[r, inside] = upstream[r] * np.exp(clipped[r, inside] - lse[r])
    return lse, coefficient @ items, coefficient.T @ users


@pytest.mark.parametrize("dim", [6, 5, 8, 16, 32])  # unrolled dims and the generic path
def test_rest_logsumexp_and_its_gradient_equal_numpy_loops(dim):
    assert_kernel_equals_numpy_loops(dim)


needs_avx512 = pytest.mark.skipif("avx512f" not in _cpu_flags(), reason="the native build is the portable one here")
needs_objdump = pytest.mark.skipif(shutil.which("objdump") is None, reason="no objdump (binutils) to disassemble")


def disassembly(library: Path) -> str:
    return subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", str(library)], capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.slow
@needs_avx512
@needs_objdump
def test_the_portable_build_equals_numpy_loops_without_avx512(tmp_path):
    """HETCOMP_KERNEL_ISA=portable: the kernel as CPUs without AVX-512 build it (GCC's vectors at AVX2's width),
    compiled into its own cache and checked in a fresh process; its machine code has no AVX-512 register."""
    script = (
        "from hetcomp_tf.distill.fused import library_path\n"
        "from tests.test_fused import assert_kernel_equals_numpy_loops\n"
        "for dim in (6, 16, 5):\n"
        "    assert_kernel_equals_numpy_loops(dim)\n"
        "print(library_path())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "HETCOMP_KERNEL_DIR": str(tmp_path), "HETCOMP_KERNEL_ISA": "portable"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    library = Path(done.stdout.splitlines()[-1])
    assert library.parent == tmp_path and library.is_file()
    code = disassembly(library)
    assert "%ymm" in code and "%zmm" not in code


@needs_avx512
@needs_objdump
@pytest.mark.skipif(kernel_isa() != "native", reason="this session's kernel is not the native build")
def test_the_native_build_uses_avx512():
    """The contrast of the test above: on this CPU the default build's code is AVX-512."""
    assert "%zmm" in disassembly(library_path())


def test_an_unknown_kernel_isa_is_refused(monkeypatch):
    monkeypatch.setenv("HETCOMP_KERNEL_ISA", "avx3")
    with pytest.raises(HetCompError, match=r"HETCOMP_KERNEL_ISA='avx3': must be one of native, portable"):
        library_path()


def assert_kernel_equals_numpy_loops(dim: int) -> None:
    rng = np.random.default_rng(dim)
    batch, n_items, bound = 9, 1500, 8.0  # > one 512-item tile, a partial last tile; the clip is active
    users = rng.normal(0.0, 2.0, (batch, dim)).astype(np.float32)
    items = rng.normal(0.0, 2.0, (n_items, dim)).astype(np.float32)
    rows = rng.integers(0, batch, 900).astype(np.int32)
    ids = rng.integers(0, n_items, 900).astype(np.int32)  # duplicates included
    ids[::7] = -1  # padding
    rows = np.concatenate([rows, np.full(n_items, batch - 1, np.int32)])  # the last row excludes every item
    ids = np.concatenate([ids, np.arange(n_items, dtype=np.int32)])
    upstream = rng.uniform(-1.0, 2.0, batch)
    expected_lse, expected_users, expected_items = reference(users, items, rows, ids, bound, upstream)
    assert (np.abs(users @ items.T) > bound).mean() > 0.1

    user_var, item_var = tf.Variable(users), tf.Variable(items)
    with tf.GradientTape() as tape:
        lse = rest_logsumexp(user_var, item_var, rows, ids, bound)
        total = tf.reduce_sum(lse[:, 0] * upstream.astype(np.float32))
    d_users, d_items = tape.gradient(total, [user_var, item_var])
    assert lse.shape == (batch, 1)
    np.testing.assert_allclose(lse.numpy()[:-1, 0], expected_lse[:-1], rtol=2e-6)
    assert lse.numpy()[-1, 0] == -1e4  # no rest
    np.testing.assert_allclose(d_users.numpy(), expected_users, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(d_items.numpy(), expected_items, rtol=1e-4, atol=1e-5)
    assert not d_users.numpy()[-1].any()


def test_rest_logsumexp_of_an_empty_batch_and_a_bad_pair():
    items = tf.ones([10, 6])
    empty = tf.zeros([0], tf.int32)
    assert rest_logsumexp(tf.zeros([0, 6]), items, empty, empty, 40.0).shape == (0, 1)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"excluded pair 0 = \(0, 10\) is outside the 2 x 10"):
        rest_logsumexp(tf.zeros([2, 6]), items, tf.constant([0]), tf.constant([10]), 40.0)


def random_targets(rng, batch, n_items, k):
    order = np.stack([rng.permutation(n_items) for _ in range(batch)]).astype(np.int32)
    unobserved, observed, train = order[:, :k].copy(), order[:, k : k + k // 10].copy(), order[:, k : k + 4 * k // 10]
    unobserved[0, k - 5 :] = -1
    observed[1, 3:] = -1
    train = train.copy()
    train[1, 3:] = -1
    return Targets(tf.constant(unobserved), tf.constant(observed), item_pairs(train))


@pytest.mark.parametrize(
    "make_loss",
    [
        lambda: OverallLoss(score_clip=5.0),
        lambda: FineGrainedLoss(100, score_clip=5.0),
        lambda: RRDLoss(100, score_clip=5.0),
        lambda: DCDLoss(100, score_clip=5.0),
        lambda: DCDLoss(100, score_clip=5.0, ucd_epsilon=0.05),
    ],
)
def test_losses_of_factored_scores_equal_those_of_the_score_matrix(make_loss):
    """Values and gradients in both factors, with the clip active (scores up to ~±20 against 5)."""
    rng = np.random.default_rng(3)
    users = tf.Variable(rng.normal(0.0, 2.0, (7, 6)).astype(np.float32))
    items = tf.Variable(rng.normal(0.0, 2.0, (800, 6)).astype(np.float32))
    targets = random_targets(rng, 7, 800, 100)
    loss = make_loss()
    if isinstance(loss, DCDLoss):
        targets = DCDTargets(*targets, tf.constant(rng.integers(-3, 4, (7, 100)).astype(np.int32)))
    with tf.GradientTape(persistent=True) as tape:
        dense = loss(targets, tf.matmul(users, items, transpose_b=True))
        factored = loss(targets, FactoredScores(users, items))
    np.testing.assert_allclose(factored.numpy(), dense.numpy(), rtol=1e-5)
    for a, b in zip(tape.gradient(factored, [users, items]), tape.gradient(dense, [users, items])):
        b = tf.convert_to_tensor(b).numpy()  # both are float32 sums: an entry near 0 is exact to ~1e-6 of the largest
        np.testing.assert_allclose(tf.convert_to_tensor(a).numpy(), b, rtol=1e-4, atol=1e-6 * np.abs(b).max())


def test_factored_scores_need_a_clip():
    with pytest.raises(HetCompError, match="need a score clip"):
        rest_and_list_scores(
            FactoredScores(tf.ones([2, 6]), tf.ones([5, 6])), tf.constant([[0], [1]]), tf.constant([[2], [3]]), None
        )


@pytest.mark.parametrize(
    "rest_kernel, dim, fused",
    [("auto", 6, True), ("auto", 16, True), ("auto", 32, False), ("fused", 32, True), ("dense", 6, False)],
)
def test_auto_takes_the_kernel_up_to_its_largest_dim(rest_kernel, dim, fused):
    from hetcomp_tf.config import DistillConfig
    from hetcomp_tf.distill.trainer import use_fused_kernel

    assert use_fused_kernel(DistillConfig(rest_kernel=rest_kernel, student_dim=dim)) is fused
