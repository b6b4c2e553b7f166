"""The distillation student and its files. An MF, score(u, i) = U[u] · V[i], that the distiller fits: it samples
nothing and has no loss of its own, so it is not a `Teacher`; it is sized by numbers, not by a Dataset, so a saved
student loads without its data. serving/export.py exports its two embedding tables.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from hetcomp_tf.errors import HetCompError
from hetcomp_tf.util.files import atomic_directory, read_json, write_json

STUDENT_CONFIG = "config.json"
STUDENT_WEIGHTS = "weights"


class Student(tf.keras.Model):
    """U = `user_embedding`, V = `item_embedding` (Keras Embeddings, built at construction so their weights can be
    assigned or loaded before any call), normal(0, init_std) initialised from `seed`.

    Args:
        n_users: U's rows.
        n_items: V's rows.
        dim: the embedding size d.
        seed: the initialisation's seed (as the MF teacher's: a seed means the same start).
        init_std: the initial weights' standard deviation.
    """

    def __init__(self, n_users: int, n_items: int, dim: int, seed: int = 0, init_std: float = 0.1):
        super().__init__()
        self.n_users, self.n_items, self.dim, self.seed = int(n_users), int(n_items), int(dim), int(seed)
        self.user_embedding = tf.keras.layers.Embedding(self.n_users, self.dim, self._initializer(init_std, 1))
        self.item_embedding = tf.keras.layers.Embedding(self.n_items, self.dim, self._initializer(init_std, 2))
        self.user_embedding.build(None)
        self.item_embedding.build(None)
        # One compiled scorer per instance, outside Keras tracking (as the teachers': no cross-model retracing).
        object.__setattr__(
            self, "_compiled_scores", tf.function(self._scores, input_signature=[tf.TensorSpec([None], tf.int32)])
        )

    def _initializer(self, stddev: float, offset: int) -> tf.keras.initializers.Initializer:
        """Seeded as the MF teacher's weights are (seed · 1000 + offset), so a seed means the same start."""
        return tf.keras.initializers.RandomNormal(stddev=stddev, seed=self.seed * 1000 + offset)

    def score_all(self, user_ids) -> tf.Tensor:
        """The scores of every item for a batch of users (higher = better); masking is the caller's job.

        Args:
            user_ids: int [b] user ids.

        Returns:
            float32 [b, n_items].
        """
        return self._compiled_scores(tf.cast(tf.convert_to_tensor(user_ids), tf.int32))

    def _scores(self, user_ids: tf.Tensor) -> tf.Tensor:
        return tf.matmul(self.user_embedding(user_ids), self.item_embedding.embeddings, transpose_b=True)

    def serving_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """U float32 [n_users, d] and V float32 [n_items, d] as they are: what serving/export.py exports (the
        teachers' `Teacher.serving_tables` contract)."""
        return self.user_embedding.embeddings.numpy(), self.item_embedding.embeddings.numpy()

    def id_axes(self) -> list[tuple[tf.Variable, int, str]]:
        """The id axes of the weights, as the teachers' (`Teacher.id_axes`): [(U, 0, "user"), (V, 0, "item")]."""
        return [(self.user_embedding.embeddings, 0, "user"), (self.item_embedding.embeddings, 0, "item")]

    def get_config(self) -> dict:
        """{"n_users", "n_items", "dim", "seed"}: what `from_config` rebuilds the student from."""
        return {"n_users": self.n_users, "n_items": self.n_items, "dim": self.dim, "seed": self.seed}

    @classmethod
    def from_config(cls, config: dict) -> Student:
        """A student of `get_config`'s sizes and seed.

        Args:
            config: `get_config()`'s dict.

        Returns:
            A `Student`, its weights freshly initialised.
        """
        return cls(**config)


def save_student(student: Student, directory: str | os.PathLike) -> Path:
    """Writes directory/config.json (`Student.get_config`) and a TF checkpoint `weights`, replaced atomically.

    Args:
        student: the student.
        directory: the student's directory.

    Returns:
        `directory` as a Path.
    """
    with atomic_directory(directory) as staging:
        write_json(staging / STUDENT_CONFIG, student.get_config())
        student.save_weights(os.fspath(staging / STUDENT_WEIGHTS))
    return Path(directory)


def load_student(directory: str | os.PathLike) -> Student:
    """Reads a student written by `save_student`.

    Args:
        directory: the student's directory.

    Returns:
        The `Student` with its saved weights.

    Raises:
        HetCompError: no config.json there.
    """
    directory = Path(directory)
    config_path = directory / STUDENT_CONFIG
    if not config_path.is_file():
        raise HetCompError(f"{config_path}: missing; not a student written by `hetcomp distill`")
    student = Student.from_config(read_json(config_path))
    student.load_weights(os.fspath(directory / STUDENT_WEIGHTS)).expect_partial()
    return student
