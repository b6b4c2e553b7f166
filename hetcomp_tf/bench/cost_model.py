"""The cost model: what one HetComp deployment costs as users and items grow, measured at synthetic sizes, fitted
and extrapolated.

At each size (users, items, interactions per user) one process measures, on random data of those shapes:
  * `step_seconds`: one fine-grained KD step at the profile's protocol (the fused kernel where it builds), the mean
    of `steps` after one untimed; an epoch is `steps_per_epoch` of them (⌈train interactions / batch size⌉, or
    ⌈users / batch size⌉ with `batching` "users");
  * `step_memory_bytes`: the largest resident-memory growth seen while those steps ran (sampled every 2 ms);
  * `knowledge_bytes`: the six trajectories as `hetcomp teachers` writes them (T checkpoints × top-N per user)
    plus the DKC target table;
  * `dkc_update_seconds`: one DKC update over every user (the student's top-50 of all items and both distances);
  * `serving_p50_ms`: the student's top-50 of unobserved items for one user, median over requests.
Each cost is fitted as cost = c0 + c1 · driver, minimising the relative residuals (so the small sizes, where fixed
overheads show, weigh as much as the large ones), with the driver the work scales with: a step scores its batch's
users against every item, so step time and memory follow the items; storage follows the users; a DKC update
scores every user against every item; serving scores one user against every item. The epoch at the target size
is its steps times the fitted step. Random targets cost what real ones do: a step's work depends on the shapes,
not on which items the lists name (as in step_timing). The teachers' epochs and evaluations are measured, fitted
and extrapolated the same way in teacher_costs.py; the drivers of both live in work.py.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from hetcomp_tf.bench.latency import unobserved_topk_recommender
from hetcomp_tf.bench.work import drivers, steps_per_epoch
from hetcomp_tf.config import TEACHER_NAMES, DistillConfig, TrajectoryConfig
from hetcomp_tf.data.dataset import CSR, Dataset
from hetcomp_tf.distill.batches import epoch_batches
from hetcomp_tf.distill.ensemble import EnsembleKnowledge
from hetcomp_tf.distill.trainer import Trainer
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.teachers.trajectories import Trajectory, save_trajectories
from hetcomp_tf.util.files import directory_bytes, write_json
from hetcomp_tf.util.progress import log

# cost -> its driver (a key of `drivers`)
COSTS = {
    "step_seconds": "items",
    "step_memory_bytes": "items",
    "knowledge_bytes": "users",
    "dkc_update_seconds": "users_x_items",
    "serving_p50_ms": "items",
}


@dataclass(frozen=True)
class Size:
    """One synthetic size the cost model measures.

    Attributes:
        users: users, >= 2.
        items: items, >= 200.
        per_user: interactions per user before the split, 5 to items / 2 (default CiteULike's mean,
            134,860 / 5,219).

    Raises:
        HetCompError: (on construction) a size outside those bounds.
    """

    users: int
    items: int
    per_user: int = 26

    def __post_init__(self):
        if self.users < 2 or self.items < 200 or not 5 <= self.per_user <= self.items // 2:
            raise HetCompError(
                f"cost model size {self.users} users x {self.items} items x {self.per_user} per user: "
                "need >= 2 users, >= 200 items and 5 <= per user <= items / 2"
            )

    @property
    def train(self) -> int:
        """Train interactions: 60 % of each user's, as the splits keep."""
        return self.users * int(self.per_user * 0.6)


def distinct_items(rng: np.random.Generator, rows: int, width: int, n_items: int) -> np.ndarray:
    """Per row, `width` distinct item ids in random order (a random start plus increasing random gaps modulo
    n_items, then shuffled): distinct by construction, no [rows, n_items] work.

    Args:
        rng: the generator.
        rows: how many rows.
        width: items per row, at most n_items.
        n_items: the catalogue's size.

    Returns:
        int32 [rows, width].
    """
    gaps = rng.integers(1, max(2, n_items // width), size=(rows, width))
    items = (rng.integers(0, n_items, size=(rows, 1)) + np.cumsum(gaps, axis=1)) % n_items
    return rng.permuted(items, axis=1).astype(np.int32)


def synthetic_dataset(size: Size, seed: int = 0) -> Dataset:
    """A random Dataset of `size`: each user's `per_user` distinct items split 60/20/20 (train/valid/test).

    Args:
        size: the size.
        seed: the generator's seed.

    Returns:
        The `Dataset`.
    """
    items = distinct_items(np.random.default_rng(seed), size.users, size.per_user, size.items)
    n_train, n_valid = int(size.per_user * 0.6), int(size.per_user * 0.2)

    def csr(part: np.ndarray) -> CSR:
        return CSR(np.arange(0, part.size + 1, part.shape[1], dtype=np.int64), np.sort(part, axis=1).ravel())

    return Dataset(
        name=f"synthetic-{size.users}x{size.items}",
        user_vocab=np.arange(size.users).astype(np.str_),
        item_vocab=np.arange(size.items).astype(np.str_),
        train=csr(items[:, :n_train]),
        valid=csr(items[:, n_train : n_train + n_valid]),
        test=csr(items[:, n_train + n_valid :]),
    )


def random_trajectories(data: Dataset, traj: TrajectoryConfig, seed: int = 0) -> list[Trajectory]:
    """Six teachers' trajectories of the real shapes (T checkpoints × top-N per user), random items; a train
    item may appear in them, which changes no cost.

    Args:
        data: the dataset (users, items, train split).
        traj: the trajectory config (n_checkpoints, top_n).
        seed: the generator's seed.

    Returns:
        One `Trajectory` per teacher of TEACHER_NAMES.
    """
    rng = np.random.default_rng(seed)
    return [
        Trajectory(
            teacher=name,
            rankings=np.stack(
                [distinct_items(rng, data.n_users, traj.top_n, data.n_items) for _ in range(traj.n_checkpoints)]
            ),
            observed=data.train,
            checkpoints=[{"epoch": t} for t in range(traj.n_checkpoints)],
            n_items=data.n_items,
        )
        for name in TEACHER_NAMES
    ]


class PeakRSS:
    """Largest resident set size (bytes) seen while the block runs, minus the size at its start.

    `with PeakRSS() as memory: ...`, then `memory.growth`; a background thread samples /proc/self/statm.
    """

    def __enter__(self):
        self.start = self.peak = _rss()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._done.wait(0.002):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())

    @property
    def growth(self) -> int:
        """The peak's growth over the start, in bytes."""
        return self.peak - self.start


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure_size(size: Size, cfg: DistillConfig, traj: TrajectoryConfig, steps: int = 8, requests: int = 200) -> dict:
    """The costs of one size (see the module docstring).

    Args:
        size: the size.
        cfg: the distillation config (an ensemble_kd step is timed).
        traj: the trajectory config (the knowledge's shapes).
        steps: timed training steps, after one untimed.
        requests: timed serving requests.

    Returns:
        {"size", "train", "knowledge_bytes", "knowledge_build_seconds", "step_seconds", "steps_per_epoch",
        "epoch_seconds", "step_memory_bytes", "dkc_update_seconds", "serving_p50_ms"}.
    """
    cfg = dataclasses.replace(cfg, method="ensemble_kd")
    data = synthetic_dataset(size, cfg.seed)
    trajectories = random_trajectories(data, traj, cfg.seed)
    out = {"size": dataclasses.asdict(size), "train": data.train.nnz}
    with tempfile.TemporaryDirectory() as tmp:
        save_trajectories(trajectories, tmp)
        out["knowledge_bytes"] = directory_bytes(tmp) + data.n_users * cfg.top_k * 4  # + the [U, K] target table
    knowledge = EnsembleKnowledge.from_trajectories(trajectories)
    del trajectories  # each copy of the rankings grows with the users: one copy at a time in memory
    started = time.perf_counter()
    trainer = Trainer(data, knowledge, cfg)
    del knowledge
    out["knowledge_build_seconds"] = time.perf_counter() - started
    step = trainer.step_fn(trainer.loss_name())
    batches = (batch for epoch in itertools.count() for batch in epoch_batches(data.train, cfg, epoch, pairs=False))
    step(next(batches))  # traces
    with PeakRSS() as memory:
        started = time.perf_counter()
        for _ in range(steps):
            step(next(batches))["total"].numpy()
        step_seconds = (time.perf_counter() - started) / steps
    out.update(
        step_seconds=step_seconds,
        steps_per_epoch=steps_per_epoch(size, cfg),
        epoch_seconds=step_seconds * steps_per_epoch(size, cfg),
        step_memory_bytes=memory.growth,
    )
    log(
        f"cost model {size.users} x {size.items}: {step_seconds * 1000:.0f} ms per step, "
        f"{out['epoch_seconds']:.0f} s per epoch; timing a DKC update over {size.users} users"
    )
    trainer.dkc.update(trainer.student.score_all, 10)  # the first update only records D
    started = time.perf_counter()
    trainer.dkc.update(trainer.student.score_all, 20)
    out["dkc_update_seconds"] = time.perf_counter() - started
    out["serving_p50_ms"] = _serving_p50_ms(trainer.student, data, requests, cfg.seed)
    return out


def _serving_p50_ms(student, data: Dataset, requests: int, seed: int, k: int = 50) -> float:
    """Median milliseconds of one user's top-k unobserved items: the scores, the train-item mask, the top-k."""
    recommend = unobserved_topk_recommender(student, data, k)
    users = np.random.default_rng(seed).integers(0, data.n_users, size=requests + 5).astype(np.int32)
    times = []
    for index, user in enumerate(users):
        started = time.perf_counter()
        recommend(tf.constant([user])).numpy()
        if index >= 5:  # the first requests trace and warm caches
            times.append(time.perf_counter() - started)
    return float(np.median(times) * 1000.0)


def fit_affine(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """The affine fit y ≈ c0 + c1 · x minimising the relative residuals Σ ((c0 + c1 x_i − y_i) / y_i)².

    Args:
        x: the drivers, at least two distinct.
        y: the costs, positive.

    Returns:
        (c0, c1).

    Raises:
        HetCompError: fewer than two distinct x, or a y that is not positive.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.size < 2 or np.unique(x).size < 2 or np.any(y <= 0):
        raise HetCompError(f"an affine fit needs >= 2 distinct x and positive y, got x={x}, y={y}")
    design = np.stack([np.ones_like(x), x], axis=1) / y[:, None]
    (c0, c1), *_ = np.linalg.lstsq(design, np.ones_like(y), rcond=None)
    return float(c0), float(c1)


def fit_and_extrapolate(measured: Sequence[dict], target: Size, cfg: DistillConfig) -> dict:
    """Fits every cost over the measured sizes and extrapolates it to `target`. A cost not positive at every size
    (a memory growth too small to see) gets no fit: "at_target" None.

    Args:
        measured: `measure_size` results, at least two distinct sizes.
        target: the size to extrapolate to.
        cfg: the distillation config (batch size).

    Returns:
        {cost: {"driver", "c0", "c1", "at_target"}}, plus "epoch_seconds" at the target (its steps per epoch
        times the fitted step).
    """
    sizes = [Size(**m["size"]) for m in measured]
    fits = {}
    for cost, driver in COSTS.items():
        y = [m[cost] for m in measured]
        entry = {"driver": driver, "c0": None, "c1": None, "at_target": None}
        if all(v > 0 for v in y):
            c0, c1 = fit_affine([drivers(s)[driver] for s in sizes], y)
            entry.update(c0=c0, c1=c1, at_target=c0 + c1 * drivers(target)[driver])
        fits[cost] = entry
    step = fits["step_seconds"]["at_target"]
    fits["epoch_seconds"] = {
        "driver": "steps per epoch x step",
        "steps_per_epoch": steps_per_epoch(target, cfg),
        "at_target": None if step is None else step * steps_per_epoch(target, cfg),
    }
    return fits


def cost_model(
    sizes: Sequence[Size],
    target: Size,
    cfg: DistillConfig,
    traj: TrajectoryConfig,
    out: str,
    steps: int = 8,
    measure=measure_size,
) -> dict:
    """Measures every size (each result written to `out` as it arrives, so a stopped run keeps what it
    measured), then fits and extrapolates to `target`.

    Args:
        sizes: the sizes to measure, at least two.
        target: the size to extrapolate to.
        cfg: the distillation config.
        traj: the trajectory config.
        out: the JSON file written after each size and at the end.
        steps: timed training steps per size.
        measure: measure(size, cfg, traj, steps) -> the size's costs (default `measure_size`).

    Returns:
        {"target", "measured": [per size], "fits": `fit_and_extrapolate`'s}.

    Raises:
        HetCompError: fewer than two sizes.
    """
    if len(sizes) < 2:
        raise HetCompError(f"the cost model needs at least two sizes to fit, got {len(sizes)}")
    result = {"target": dataclasses.asdict(target), "measured": [], "fits": {}}
    for index, size in enumerate(sizes):
        log(f"cost model: size {index + 1}/{len(sizes)}, {size.users} users x {size.items} items")
        result["measured"].append(measure(size, cfg, traj, steps))
        write_json(out, result)
    result["fits"] = fit_and_extrapolate(result["measured"], target, cfg)
    write_json(out, result)
    return result
