"""The cost model (`hetcomp costmodel`): its random shapes, its fit against NumPy, partial results, the command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hetcomp_tf.bench.cost_model import (
    COSTS,
    Size,
    cost_model,
    distinct_items,
    fit_affine,
    fit_and_extrapolate,
    random_trajectories,
    steps_per_epoch,
    synthetic_dataset,
)
from hetcomp_tf.config import get_profile
from hetcomp_tf.errors import HetCompError
from tests.helpers import run_cli

TINY = get_profile("tiny")


@pytest.mark.parametrize("n_items,width", [(1000, 100), (100, 100), (150, 100), (25_181, 50)])
def test_distinct_items_are_distinct_ids_in_range(n_items, width):
    items = distinct_items(np.random.default_rng(3), 400, width, n_items)
    assert items.shape == (400, width) and items.dtype == np.int32
    assert items.min() >= 0 and items.max() < n_items
    assert all(len(set(row)) == width for row in items.tolist())
    assert not np.all(np.diff(items, axis=1) > 0)  # shuffled, not the increasing construction order


def test_synthetic_dataset_splits_each_users_items_60_20_20():
    data = synthetic_dataset(Size(300, 500, per_user=20), seed=1)
    assert (data.n_users, data.n_items) == (300, 500)
    assert (data.train.nnz, data.valid.nnz, data.test.nnz) == (300 * 12, 300 * 4, 300 * 4)
    for user in range(0, 300, 29):
        parts = [set(data.split(s).row(user).tolist()) for s in ("train", "valid", "test")]
        assert sum(map(len, parts)) == len(set().union(*parts)) == 20  # disjoint


def test_random_trajectories_have_the_profile_shapes():
    data = synthetic_dataset(Size(50, 400), seed=0)
    trajectories = random_trajectories(data, TINY.trajectory)
    assert len(trajectories) == 6
    assert trajectories[0].rankings.shape == (TINY.trajectory.n_checkpoints, 50, TINY.trajectory.top_n)
    assert not np.array_equal(trajectories[0].rankings, trajectories[1].rankings)


def test_affine_fit_matches_a_numpy_reference_of_relative_least_squares():
    rng = np.random.default_rng(0)
    x = np.array([5e3, 2.5e4, 1e5, 3e5])
    y = (0.02 + 3e-6 * x) * np.exp(rng.normal(0, 0.05, x.size))
    c0, c1 = fit_affine(x, y)
    weighted = np.stack([1.0 / y, x / y], axis=1)  # the normal equations of Σ ((c0 + c1 x − y) / y)², solved directly
    reference = np.linalg.solve(weighted.T @ weighted, weighted.T @ np.ones_like(y))
    assert (c0, c1) == pytest.approx(tuple(reference), rel=1e-9)
    assert fit_affine([10, 100], [3.0, 30.0]) == pytest.approx((0.0, 0.3), abs=1e-12)
    with pytest.raises(HetCompError, match="affine fit"):
        fit_affine([10, 10], [1.0, 2.0])


def _fake_measure(size, cfg, traj, steps):
    """Costs that are exactly affine in their drivers, so the fit must recover them."""
    return {
        "size": {"users": size.users, "items": size.items, "per_user": size.per_user},
        "knowledge_build_seconds": 1.0,
        "step_seconds": 0.01 + 2e-6 * size.items,
        "step_memory_bytes": 0,
        "knowledge_bytes": 9600.0 * size.users,
        "dkc_update_seconds": 0.5 + 2e-9 * size.users * size.items,
        "serving_p50_ms": 1.0 + 1e-5 * size.items,
    }


def test_fit_and_extrapolate_recovers_exact_affine_costs():
    sizes = [Size(1000, 2000), Size(10_000, 8000), Size(50_000, 30_000)]
    target = Size(10_000_000, 1_000_000)
    fits = fit_and_extrapolate([_fake_measure(s, None, None, 1) for s in sizes], target, TINY.distill)
    assert set(fits) == {*COSTS, "epoch_seconds"}
    assert fits["step_seconds"]["at_target"] == pytest.approx(0.01 + 2e-6 * 1e6)
    assert fits["epoch_seconds"]["at_target"] == pytest.approx(
        (0.01 + 2e-6 * 1e6) * -(-target.train // TINY.distill.batch_size)
    )
    assert fits["knowledge_bytes"]["at_target"] == pytest.approx(9600.0 * 1e7)
    assert fits["dkc_update_seconds"]["c0"] == pytest.approx(0.5) and fits["dkc_update_seconds"]["c1"] == pytest.approx(
        2e-9
    )
    assert fits["serving_p50_ms"]["at_target"] == pytest.approx(1.0 + 10.0)
    assert fits["step_memory_bytes"]["at_target"] is None  # nothing seen to grow: no fit, not a zero


def test_cost_model_writes_each_size_as_it_is_measured(tmp_path):
    out = tmp_path / "cost.json"

    def fail_on_second(size, cfg, traj, steps):
        if size.users > 1000:
            raise RuntimeError("stopped")
        return _fake_measure(size, cfg, traj, steps)

    with pytest.raises(RuntimeError):
        cost_model(
            [Size(1000, 2000), Size(5000, 4000)],
            Size(10**7, 10**6),
            TINY.distill,
            TINY.trajectory,
            str(out),
            measure=fail_on_second,
        )
    assert [m["size"]["users"] for m in json.loads(out.read_text())["measured"]] == [1000]
    with pytest.raises(HetCompError, match="at least two sizes"):
        cost_model([Size(1000, 2000)], Size(10**7, 10**6), TINY.distill, TINY.trajectory, str(out))


@pytest.mark.slow
def test_costmodel_command_measures_fits_and_prints(tmp_path):
    out = tmp_path / "cost.json"
    done = run_cli(
        [
            "costmodel",
            "--profile",
            "tiny",
            "--sizes",
            "200x300,400x600",
            "--target",
            "10000x20000",
            "--steps",
            "8",
            "--out",
            str(out),
        ]
    )  # 8 steps: more than the smaller size's epoch (6)
    assert done.code == 0, done.stderr
    result = json.loads(out.read_text())
    first, second = result["measured"]
    assert (
        first["steps_per_epoch"]
        == -(-first["train"] // TINY.distill.batch_size)
        == steps_per_epoch(Size(200, 300), TINY.distill)
    )
    assert second["knowledge_bytes"] > first["knowledge_bytes"] > 6 * 4 * 200 * 100 * 4  # six [T, U, N] int32
    assert all(
        m["epoch_seconds"] > 0 and m["dkc_update_seconds"] > 0 and m["serving_p50_ms"] > 0 for m in result["measured"]
    )
    storage = result["fits"]["knowledge_bytes"]  # linear in users: the fit's constant is small
    assert (
        abs(storage["c0"]) < 0.05 * first["knowledge_bytes"] and storage["at_target"] > 20 * second["knowledge_bytes"]
    )
    assert "10000 x 20000 (fitted)" in done.stdout and "400 x 600" in done.stdout


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--sizes", "200x300"], "at least two sizes"),
        (["--sizes", "200x300,big"], "--sizes: '200x300,big' is not a comma-separated list"),
        (["--sizes", "1x300,200x300"], "need >= 2 users"),
        (["--target", "lots"], "--target: 'lots' is not a size"),
        (["--steps", "0"], "--steps 0"),
    ],
)
def test_costmodel_command_refuses_bad_options_in_one_line(tmp_path, argv, message):
    done = run_cli(["costmodel", "--profile", "tiny", "--out", str(tmp_path / "c.json"), *argv])
    assert done.code == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "c.json").exists()
