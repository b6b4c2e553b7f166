"""The six heterogeneous teachers, one file each, registered by their paper name."""

from __future__ import annotations

from hetcomp_tf.config import TEACHER_NAMES, TeacherConfig, check_teacher_config
from hetcomp_tf.models.base import Teacher
from hetcomp_tf.models.cml import CML
from hetcomp_tf.models.item_ae import ItemAE
from hetcomp_tf.models.lightgcn import LightGCN
from hetcomp_tf.models.mf import MF
from hetcomp_tf.models.neumf import NeuMF
from hetcomp_tf.models.vae import MultVAE

MODELS: dict[str, type[Teacher]] = {model.name: model for model in (MF, CML, NeuMF, LightGCN, MultVAE, ItemAE)}
assert tuple(MODELS) == TEACHER_NAMES


def build_teacher(name: str, data, cfg: TeacherConfig, seed: int = 0) -> Teacher:
    """Teacher `name`'s model, untrained: the one way the training loop, the pipeline and warm starts build one.

    Args:
        name: one of TEACHER_NAMES.
        data: the Dataset it trains on (its sizes and train matrix).
        cfg: the teacher's own config, of its class in config.TEACHER_CONFIGS.
        seed: seeds its initialisation, sampling and in-graph randomness.

    Returns:
        The model, its weights built.

    Raises:
        HetCompError: `cfg` is not of `name`'s config class (`check_teacher_config`), or the model cannot train
            on `data` (a pairwise teacher's user with every item in train).
    """
    check_teacher_config(name, cfg)
    return MODELS[name](data, cfg, seed)


__all__ = ["MODELS", "Teacher", "build_teacher", "MF", "CML", "NeuMF", "LightGCN", "MultVAE", "ItemAE"]
