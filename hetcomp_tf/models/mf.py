"""MF: matrix factorisation trained with BPR (Rendle et al. 2009). Also the distillation student."""

from __future__ import annotations

import tensorflow as tf

from hetcomp_tf.config import TeacherConfig
from hetcomp_tf.models.base import PairwiseTeacher, squared_norm
from hetcomp_tf.sampling import bpr_loss


class MF(PairwiseTeacher):
    """score(u, i) = U[u] · V[i]. `MF.student(n_users, n_items, dim)` builds the same network without data."""

    name = "MF"

    def __init__(self, data, cfg: TeacherConfig, seed: int = 0, sizes: tuple[int, int] | None = None,
                 init_std: float = 0.1):
        super().__init__(data, cfg, seed, sizes)
        self.user_embedding = tf.keras.layers.Embedding(self.n_users, cfg.dim, self.initializer(init_std, 1))
        self.item_embedding = tf.keras.layers.Embedding(self.n_items, cfg.dim, self.initializer(init_std, 2))
        self.user_embedding.build(None)  # weights exist before any call, so they can be loaded or assigned
        self.item_embedding.build(None)

    @classmethod
    def student(cls, n_users: int, n_items: int, dim: int, seed: int = 0, init_std: float = 0.1) -> MF:
        """The distillation student: sized without a Dataset, since it is fitted by the distiller, not BPR."""
        return cls(None, TeacherConfig(dim=dim), seed, sizes=(n_users, n_items), init_std=init_std)

    def get_config(self) -> dict:
        return {"n_users": self.n_users, "n_items": self.n_items, "dim": self.cfg.dim, "seed": self.seed}

    @classmethod
    def from_config(cls, config: dict) -> MF:
        return cls.student(**config)

    def _scores(self, user_ids):
        return tf.matmul(self.user_embedding(user_ids), self.item_embedding.embeddings, transpose_b=True)

    def compute_loss(self, inputs, training: bool = False):
        users = self.user_embedding(inputs["user"])  # [b, d]
        positives = self.item_embedding(inputs["pos"])  # [b, d]
        negatives = self.item_embedding(inputs["neg"])  # [b, n, d]
        loss = bpr_loss(tf.reduce_sum(users * positives, -1), tf.einsum("bd,bnd->bn", users, negatives))
        batch = tf.cast(tf.shape(users)[0], tf.float32)
        return loss + self.cfg.l2 * squared_norm(users, positives, negatives) / batch
