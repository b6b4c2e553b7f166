"""`hetcomp doctor`: what to check before a long run, in one table: the package versions, the devices TensorFlow
sees, where `--data citeulike` is (or would be downloaded to; nothing is fetched), and the profile's distillation
step timed on each device with its XLA and mixed-precision settings, on small synthetic data (seconds), so a user
with a GPU sees it used."""

from __future__ import annotations

import importlib.metadata
import platform
import time

from hetcomp_tf.commands.options import add_profile_argument, add_set_argument, profile_from_args
from hetcomp_tf.data import datafiles

PACKAGES = ("tensorflow", "tfx", "tensorflow-ranking", "tensorflow-recommenders", "apache-beam", "setuptools")
# The synthetic data a step is timed on: small, so the whole check takes seconds on a CPU.
STEP_USERS, STEP_ITEMS = 400, 300
TIMED_EPOCHS = 5


def add_arguments(parser) -> None:
    add_profile_argument(parser)
    add_set_argument(parser)  # e.g. --set jit_compile=true --set mixed_precision=true: time those settings


def package_rows() -> dict[str, str]:
    return {"python": platform.python_version(), **{name: _version(name) for name in PACKAGES}}


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def citeulike_row() -> str:
    """Where `--data citeulike` resolves, without downloading: a missing file says where it would go."""
    found = datafiles.find_citeulike()
    if found is not None:
        return str(found)
    return (
        f"not found in {', '.join(map(str, datafiles.data_dirs()))}; the first run downloads it to "
        f"{datafiles.download_dir() / datafiles.CITEULIKE_FILE}"
    )


def time_step(device: str, profile) -> tuple[float, int]:
    """Milliseconds per distillation step of the profile's student (its method, XLA and precision) on `device`,
    after one untimed epoch (tracing and compilation), and how many steps were timed."""
    import tensorflow as tf

    from hetcomp_tf.bench.step_timing import random_knowledge
    from hetcomp_tf.data.readers import make_synthetic
    from hetcomp_tf.data.split import split_dataset
    from hetcomp_tf.distill.batches import epoch_batches
    from hetcomp_tf.distill.trainer import Trainer

    cfg = profile.distill
    data = split_dataset(make_synthetic(STEP_USERS, STEP_ITEMS, cfg.seed), profile.data, "synthetic")
    knowledge = random_knowledge(data, profile.trajectory)
    with tf.device(device):
        trainer = Trainer(data, knowledge, cfg)
        trainer.train_epoch(0)
        start = time.perf_counter()
        for epoch in range(1, TIMED_EPOCHS + 1):
            trainer.train_epoch(epoch)
        seconds = time.perf_counter() - start
    pairs = trainer.loss_name() == "bpr"
    steps = sum(1 for epoch in range(1, TIMED_EPOCHS + 1) for _ in epoch_batches(data.train, cfg, epoch, pairs))
    return 1000 * seconds / steps, steps


def settings(profile) -> str:
    """What the timed step ran with, so a user sees whether XLA and mixed precision were on."""
    cfg = profile.distill
    return (
        f"{profile.name} profile: {cfg.method}, dim {cfg.student_dim}, XLA {'on' if cfg.jit_compile else 'off'}, "
        f"rest kernel {cfg.rest_kernel}, "
        f"{'mixed float16' if cfg.mixed_precision else 'float32'}"
    )


def run(args) -> int:
    profile = profile_from_args(args)
    rows = {**package_rows(), "--data citeulike": citeulike_row()}

    import tensorflow as tf

    devices = [d for d in tf.config.list_logical_devices() if d.device_type in ("CPU", "GPU")]
    rows["devices"] = ", ".join(d.name.removeprefix("/device:") for d in devices)
    rows["TensorFlow built with CUDA"] = "yes" if tf.test.is_built_with_cuda() else "no"
    for device in devices:
        ms, steps = time_step(device.name, profile)
        name = device.name.removeprefix("/device:")
        rows[f"step on {name}"] = f"{ms:.1f} ms ({settings(profile)}; {steps} steps timed)"
    width = max(map(len, rows))
    print("\n".join(f"{name:<{width}}  {value}" for name, value in rows.items()))
    return 0
