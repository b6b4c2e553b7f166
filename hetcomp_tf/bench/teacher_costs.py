"""The teachers in the cost model: each teacher's training epoch and full-ranking evaluation timed
(`teacher_timing.time_teacher`) on random data of a few sizes, each fitted as seconds = c0 + c1 · work against the
work it grows with (work.py's `TEACHER_WORK` states each teacher's), and extrapolated to a target size, as
cost_model.py does for the student.

Their sizes are the cost model's smaller ones: an autoencoder's epoch and every full evaluation grow with
users × items, so the student's largest size (200 k × 100 k) would take hours per teacher on two cores. Random
interactions cost what real ones do: an epoch's and an evaluation's work depend on the shapes, not on which items
a user holds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from hetcomp_tf.bench.cost_model import Size, fit_affine, synthetic_dataset
from hetcomp_tf.bench.teacher_timing import time_teacher
from hetcomp_tf.bench.work import TEACHER_WORK, Shape
from hetcomp_tf.config import TrajectoryConfig
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.util.progress import log

COSTS = ("epoch", "evaluate")  # per teacher: the fitted seconds of one epoch and of one full evaluation


def measure_teacher(name: str, size: Size, cfg, traj: TrajectoryConfig, seed: int = 0) -> dict:
    """Times teacher `name` (its TeacherConfig `cfg`) on random data of `size`.

    Returns:
        {"size", "train", "epoch_seconds" (the steady second epoch), "evaluate_seconds" (every valid user
        evaluated and every user ranked, as at each evaluation of a teacher without `eval_users`), "epoch_work",
        "evaluate_work" (the two drivers at this size)}.
    """
    data = synthetic_dataset(size, seed)
    timed = time_teacher(name, data, cfg, traj, seed)
    shape, work = Shape.of_dataset(data), TEACHER_WORK[name]
    return {
        "size": dataclasses.asdict(size),
        "train": data.train.nnz,
        "epoch_seconds": timed["epoch_seconds"],
        "evaluate_seconds": timed["evaluate_seconds"],
        "epoch_work": work.epoch(cfg, shape),
        "evaluate_work": work.evaluate(cfg, shape, shape.users),
    }


def fit_teacher(name: str, measured: Sequence[dict], cfg, target: Shape) -> dict:
    """Fits teacher `name`'s measured sizes and extrapolates them to `target`.

    Args:
        name: the teacher.
        measured: `measure_teacher` results at two or more sizes.
        cfg: its TeacherConfig (the drivers' config factors).
        target: the shape to extrapolate to.

    Returns:
        {"epoch": fit, "evaluate": fit}, each fit {"driver" (what it grows with), "c0", "c1", "at_target"}.
    """
    work = TEACHER_WORK[name]
    at_target = {"epoch": work.epoch(cfg, target), "evaluate": work.evaluate(cfg, target, target.users)}
    drivers = {"epoch": work.epoch_driver, "evaluate": work.evaluate_driver}
    fits = {}
    for cost in COSTS:
        c0, c1 = fit_affine([m[f"{cost}_work"] for m in measured], [m[f"{cost}_seconds"] for m in measured])
        fits[cost] = {"driver": drivers[cost], "c0": c0, "c1": c1, "at_target": c0 + c1 * at_target[cost]}
    return fits


def teacher_cost_model(
    names: Sequence[str],
    sizes: Sequence[Size],
    target: Size,
    configs: dict,
    traj: TrajectoryConfig,
    on_update: Callable[[dict], None],
    seed: int = 0,
    measure: Callable[..., dict] = measure_teacher,
) -> dict:
    """Measures each teacher of `names` at every size, then fits and extrapolates it to `target`; `on_update(section)`
    after every measurement and fit, so a stopped run keeps what it measured.

    Args:
        names: the teachers, measured one after another.
        sizes: two or more sizes.
        target: the size to extrapolate to.
        configs: {teacher: TeacherConfig}, the profile's.
        traj: the profile's trajectory config (the evaluation ranks its top-N).
        on_update: called with the section as it grows.
        seed: the random data's and the teachers' seed.
        measure: `measure_teacher`'s signature (tests pass exact costs).

    Returns:
        The cost model's "teachers" section: {"sizes", "measured": {teacher: [per size]}, "fits": {teacher: fit}}.
    """
    if len(sizes) < 2:
        raise HetCompError(f"the teachers' cost model needs at least two sizes to fit, got {len(sizes)}")
    section = {"sizes": [dataclasses.asdict(size) for size in sizes], "measured": {}, "fits": {}}
    for name in names:
        measured = section["measured"].setdefault(name, [])
        for size in sizes:
            log(f"cost model: teacher {name} at {size.users} users x {size.items} items (two epochs, one evaluation)")
            measured.append(measure(name, size, configs[name], traj, seed))
            on_update(section)
        section["fits"][name] = fit_teacher(name, measured, configs[name], Shape.of_size(target))
        on_update(section)
    return section
