"""The teachers in the cost model: their drivers, their fits against a NumPy reference, partial sections, and
`hetcomp costmodel` writing the teachers section and the fit file."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from hetcomp_tf.bench.cost_model import Size
from hetcomp_tf.bench.teacher_costs import fit_teacher, teacher_cost_model
from hetcomp_tf.bench.work import TEACHER_WORK, Shape
from hetcomp_tf.config import TEACHER_NAMES, get_profile
from hetcomp_tf.errors import HetCompError
from tests.helpers import run_cli

TINY = get_profile("tiny")
SHAPE = Shape(users=1000, items=2000, train=15_000, valid_users=1000)


def _grown(shape: Shape, users: float = 1, items: float = 1, train: float = 1) -> Shape:
    return Shape(int(shape.users * users), int(shape.items * items), int(shape.train * train), shape.valid_users)


def test_each_teacher_has_an_epoch_and_an_evaluation_driver_growing_with_the_data():
    for name in TEACHER_NAMES:
        work, cfg = TEACHER_WORK[name], TINY.teachers[name]
        assert work.epoch(cfg, SHAPE) > 0 and work.evaluate(cfg, SHAPE, SHAPE.users) > 0, name
        assert work.epoch(cfg, _grown(SHAPE, 2, 2, 2)) > work.epoch(cfg, SHAPE), name
        assert work.evaluate(cfg, SHAPE, SHAPE.users) > work.evaluate(cfg, SHAPE, 100), name  # a sample costs less


def test_the_drivers_scale_as_stated():
    mf, lazy = TINY.teachers["MF"], dataclasses.replace(TINY.teachers["MF"], optimizer="lazy_adam")
    # LazyAdam: an MF epoch is its batches' rows only, linear in the interactions whatever the tables' sizes
    assert TEACHER_WORK["MF"].epoch(lazy, _grown(SHAPE, users=10, items=10)) == TEACHER_WORK["MF"].epoch(lazy, SHAPE)
    assert TEACHER_WORK["MF"].epoch(mf, _grown(SHAPE, users=10, items=10)) > TEACHER_WORK["MF"].epoch(mf, SHAPE)
    # LightGCN: every step propagates every edge, so its epoch grows with the interactions squared
    gnn = TINY.teachers["GNN"]
    ratio = TEACHER_WORK["GNN"].epoch(gnn, _grown(SHAPE, train=4)) / TEACHER_WORK["GNN"].epoch(gnn, SHAPE)
    assert 8 < ratio <= 16
    # the autoencoders' epochs grow with users x items; full evaluations with scored users x items
    for name in ("AE", "I-AE"):
        cfg = TINY.teachers[name]
        ratio = TEACHER_WORK[name].epoch(cfg, _grown(SHAPE, users=4, items=4)) / TEACHER_WORK[name].epoch(cfg, SHAPE)
        assert 10 < ratio <= 16, name
    for name in ("MF", "ML", "AE"):
        cfg = TINY.teachers[name]
        assert TEACHER_WORK[name].evaluate(cfg, _grown(SHAPE, users=3, items=5), 3 * SHAPE.users) == pytest.approx(
            15 * TEACHER_WORK[name].evaluate(cfg, SHAPE, SHAPE.users)
        ), name


def _relative_lstsq(x, y) -> tuple[float, float]:
    """NumPy's least squares of Σ ((c0 + c1 x − y) / y)², the fit's criterion."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    (c0, c1), *_ = np.linalg.lstsq(np.stack([1.0 / y, x / y], axis=1), np.ones_like(y), rcond=None)
    return c0, c1


def _exact_measure(name, size, cfg, traj, seed, noise=None):
    """Seconds affine in the teacher's drivers (times a noise factor): what the fit must recover."""
    shape, work = Shape.of_size(size), TEACHER_WORK[name]
    epoch_work, evaluate_work = work.epoch(cfg, shape), work.evaluate(cfg, shape, shape.users)
    factor = 1.0 if noise is None else noise
    return {
        "size": dataclasses.asdict(size),
        "train": size.train,
        "epoch_work": epoch_work,
        "evaluate_work": evaluate_work,
        "epoch_seconds": (0.05 + 2e-9 * epoch_work) * factor,
        "evaluate_seconds": (0.2 + 5e-10 * evaluate_work) / factor,
    }


SIZES = [Size(500, 1000), Size(2000, 4000), Size(8000, 10_000), Size(20_000, 30_000)]
TARGET = Size(10_000_000, 1_000_000)


@pytest.mark.parametrize("name", TEACHER_NAMES)
def test_a_teachers_fit_matches_numpy_least_squares_and_extrapolates_with_its_driver(name):
    cfg, rng = TINY.teachers[name], np.random.default_rng(1)
    measured = [_exact_measure(name, s, cfg, None, 0, noise=float(np.exp(rng.normal(0, 0.1)))) for s in SIZES]
    fits = fit_teacher(name, measured, cfg, Shape.of_size(TARGET))
    target_work = TEACHER_WORK[name].epoch(cfg, Shape.of_size(TARGET))
    for cost in ("epoch", "evaluate"):
        reference = _relative_lstsq([m[f"{cost}_work"] for m in measured], [m[f"{cost}_seconds"] for m in measured])
        assert (fits[cost]["c0"], fits[cost]["c1"]) == pytest.approx(reference, rel=1e-9)
        assert fits[cost]["driver"]
    assert fits["epoch"]["at_target"] == pytest.approx(fits["epoch"]["c0"] + fits["epoch"]["c1"] * target_work)
    exact = fit_teacher(name, [_exact_measure(name, s, cfg, None, 0) for s in SIZES], cfg, Shape.of_size(TARGET))
    assert exact["epoch"]["c1"] == pytest.approx(2e-9) and exact["evaluate"]["c0"] == pytest.approx(0.2)
    assert exact["epoch"]["at_target"] == pytest.approx(0.05 + 2e-9 * target_work)


def test_the_section_grows_as_measured_and_needs_two_sizes():
    sections = []

    def measure(name, size, cfg, traj, seed):
        if name == "GNN" and size.users > 500:
            raise RuntimeError("stopped")
        return _exact_measure(name, size, cfg, traj, seed)

    with pytest.raises(RuntimeError):
        teacher_cost_model(
            ["MF", "GNN"],
            SIZES[:2],
            TARGET,
            TINY.teachers,
            TINY.trajectory,
            lambda section: sections.append(json.loads(json.dumps(section))),
            measure=measure,
        )
    last = sections[-1]
    assert list(last["fits"]) == ["MF"] and [len(m) for m in last["measured"].values()] == [2, 1]
    with pytest.raises(HetCompError, match="at least two sizes"):
        teacher_cost_model(["MF"], SIZES[:1], TARGET, TINY.teachers, TINY.trajectory, print)


@pytest.mark.slow
def test_costmodel_command_writes_the_teachers_section_and_the_fit_file(tmp_path):
    out, fits_file = tmp_path / "cost.json", tmp_path / "fits.json"
    fits_file.write_text(json.dumps({"profiles": {"paper": {"kept": True}}}))
    done = run_cli(
        [
            "costmodel",
            "--profile",
            "tiny",
            "--sizes",
            "200x300,400x600",
            "--teacher-sizes",
            "200x300,400x600",
            "--target",
            "10000x20000",
            "--steps",
            "2",
            "--out",
            str(out),
            "--write-fits",
            str(fits_file),
        ]
    )
    assert done.code == 0, done.stderr
    result = json.loads(out.read_text())
    section = result["teachers"]
    assert [s["users"] for s in section["sizes"]] == [200, 400]
    assert list(section["measured"]) == list(section["fits"]) == list(TEACHER_NAMES)
    for name, measured in section["measured"].items():
        assert [m["size"]["users"] for m in measured] == [200, 400]
        assert all(m["epoch_seconds"] > 0 and m["evaluate_seconds"] > 0 for m in measured), name
        assert measured[1]["epoch_work"] > measured[0]["epoch_work"] > 0, name
        assert section["fits"][name]["epoch"]["driver"] == TEACHER_WORK[name].epoch_driver
    assert "I-AE 10000 x 20000 (fitted)" in done.stdout and "run_seconds_at_caps" in done.stdout
    fits = json.loads(fits_file.read_text())["profiles"]
    assert fits["paper"] == {"kept": True}  # other profiles' entries stay
    entry = fits["tiny"]
    assert entry["cpu"] == result["cpu"] and entry["threads"] >= 1
    assert set(entry["student"]) == {"step_seconds", "dkc_update_seconds"}
    assert entry["teachers"]["GNN"]["evaluate"] == {
        k: section["fits"]["GNN"]["evaluate"][k] for k in ("driver", "c0", "c1")
    }


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--teachers", "MF,XX"], "unknown teacher 'XX'"),
        (["--teacher-sizes", "200x300"], "--teacher-sizes 200x300: the teachers' fits need at least two sizes"),
        (["--teacher-sizes", "200x300,tiny"], "--teacher-sizes: '200x300,tiny' is not a comma-separated list"),
        (["--teachers", "MF", "--write-fits"], "--write-fits with --teachers MF"),
    ],
)
def test_costmodel_command_refuses_bad_teacher_options_in_one_line(tmp_path, argv, message):
    done = run_cli(
        ["costmodel", "--profile", "tiny", "--sizes", "200x300,400x600", "--out", str(tmp_path / "c.json"), *argv]
    )
    assert done.code == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "c.json").exists()
