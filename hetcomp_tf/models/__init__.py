"""The six heterogeneous teachers, one file each, registered by their paper name."""

from __future__ import annotations

from hetcomp_tf.config import TEACHER_NAMES, TeacherConfig
from hetcomp_tf.errors import HetCompError
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
    try:
        model = MODELS[name]
    except KeyError:
        raise HetCompError(f"unknown teacher {name!r}: choose one of {', '.join(MODELS)}") from None
    return model(data, cfg, seed)


__all__ = ["MODELS", "Teacher", "build_teacher", "MF", "CML", "NeuMF", "LightGCN", "MultVAE", "ItemAE"]
