"""TensorBoard scalars through tf.summary, shared by teacher training and distillation.

A `ScalarLog` without a directory writes nothing, so training loops call it unconditionally.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import tensorflow as tf


class ScalarLog:
    """Writes `{tag: value}` scalars at a step into an event file under `log_dir` (or nowhere if None).

    Args:
        log_dir: the TensorBoard directory, or None to write nothing.
    """

    def __init__(self, log_dir: str | os.PathLike | None):
        self.writer = tf.summary.create_file_writer(os.fspath(log_dir)) if log_dir is not None else None

    def write(self, step: int, scalars: Mapping[str, float], prefix: str = "") -> None:
        """Writes the scalars at `step` and flushes.

        Args:
            step: the TensorBoard step.
            scalars: {key: value}; tags are `prefix + key`, e.g. prefix "valid/" and key "recall@50".
            prefix: the tags' prefix.
        """
        if self.writer is None:
            return
        with self.writer.as_default():
            for key, value in scalars.items():
                tf.summary.scalar(f"{prefix}{key}", float(value), step=int(step))
        self.writer.flush()

    def close(self) -> None:
        """Closes the event file (a no-op without a directory)."""
        if self.writer is not None:
            self.writer.close()

    def __enter__(self) -> ScalarLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
