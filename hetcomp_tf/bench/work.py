"""What each measured cost grows with (its driver), as plain arithmetic on the data's shape and a config, shared by
the cost model, which fits seconds against it, and the run estimate, which prices a run with those fits.

A teacher's driver counts the multiply-adds (or embedding rows moved) that grow with the data, the teacher's config
factors (dim, hidden sizes, batch, negatives) included, so a fit made at one profile's settings still prices the
same teacher roughly at another's. Terms that stay small at scale are left out; a fit's constant takes the fixed
overheads. No TensorFlow here: the estimate runs before any training.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

EVAL_BATCH = 128  # users scored per batch of a full-ranking evaluation (metrics.evaluate's default batch_size)


@dataclass(frozen=True)
class Shape:
    """The data's sizes the costs grow with."""

    users: int
    items: int
    train: int  # train interactions
    valid_users: int  # users with a valid item: whether a teacher's evaluations sample them

    @classmethod
    def of_dataset(cls, data) -> Shape:
        """The shape of a `Dataset`."""
        return cls(data.n_users, data.n_items, int(data.train.nnz), int((data.valid.lengths() > 0).sum()))

    @classmethod
    def of_size(cls, size) -> Shape:
        """The shape of a cost model `Size`, whose every user has valid items."""
        return cls(size.users, size.items, size.train, size.users)


def drivers(size) -> dict[str, float]:
    """The student's drivers (cost_model.COSTS' values) of `size`, anything with `users` and `items`."""
    return {"users": float(size.users), "items": float(size.items), "users_x_items": float(size.users) * size.items}


def steps_per_epoch(size, cfg) -> int:
    """A student epoch's steps (DistillConfig `cfg`) on `size`, anything with `users` and `train` (a `Shape`, a
    cost model `Size`): batches of train interactions or of users, as `cfg.batching` says."""
    rows = size.train if cfg.batching == "interactions" else size.users
    return -(-rows // cfg.batch_size)


# --- the teachers: each function takes a TeacherConfig and a Shape --------------------------------------------------


def _pair_steps(cfg, shape: Shape) -> int:
    """A pairwise teacher's steps per epoch: every train pair once, in batches."""
    return math.ceil(shape.train / cfg.batch_size)


def _batch_rows(cfg) -> int:
    """Embedding rows a pairwise step gathers: per triple its user, its observed item and its negatives."""
    return cfg.batch_size * (2 + cfg.n_negatives)


def _dense_rows(cfg, shape: Shape) -> int:
    """Rows Keras' Adam moves at every step whatever the batch (both whole tables); LazyAdam only the batch's."""
    return shape.users + shape.items if cfg.optimizer == "adam" else 0


def _mf_epoch(cfg, shape: Shape) -> float:
    return _pair_steps(cfg, shape) * (_batch_rows(cfg) + _dense_rows(cfg, shape)) * cfg.dim


def _cml_epoch(cfg, shape: Shape) -> float:
    """MF's, plus the unit-ball clipping of both whole tables after every step."""
    return _mf_epoch(cfg, shape) + _pair_steps(cfg, shape) * (shape.users + shape.items) * cfg.dim


def _chain(sizes) -> int:
    """Multiply-adds per row of a stack of dense layers from sizes[0] wide to sizes[-1] wide."""
    return sum(a * b for a, b in zip(sizes, sizes[1:]))


def _neumf_tower(cfg) -> int:
    """Multiply-adds of one (user, item) logit after the MLP's first layer: the rest of the tower, the GMF product
    and the output layer."""
    return _chain(cfg.mlp_layers) + cfg.dim + cfg.mlp_layers[-1]


def _neumf_epoch(cfg, shape: Shape) -> float:
    pairs = cfg.batch_size * (1 + cfg.n_negatives)
    rows = (_batch_rows(cfg) + _dense_rows(cfg, shape)) * 2 * cfg.dim  # GMF and MLP tables
    first = 2 * cfg.dim * cfg.mlp_layers[0]  # the first MLP layer on [p; q]
    return _pair_steps(cfg, shape) * (pairs * (first + _neumf_tower(cfg)) + rows)


def _propagation(cfg, shape: Shape) -> float:
    """One LightGCN propagation: per layer, both directions of every train edge at dim, and the layer sum."""
    return cfg.n_layers * (2 * shape.train + shape.users + shape.items) * cfg.dim


def _lightgcn_epoch(cfg, shape: Shape) -> float:
    """Every step propagates the whole graph, whatever its batch."""
    rows = (_batch_rows(cfg) + _dense_rows(cfg, shape)) * cfg.dim
    return _pair_steps(cfg, shape) * (_propagation(cfg, shape) + rows)


def _outer_hidden(cfg) -> int:
    """The autoencoders' hidden size next to their users- or items-wide layers (the decoder's last hidden layer,
    the encoder's first): `hidden[0]`, or the latent size without hidden layers."""
    return cfg.hidden[0] if cfg.hidden else cfg.dim


def _autoencoder_epoch(cfg, rows: int, width: int, train: int) -> float:
    """An autoencoder over `rows` vectors `width` wide: each row's output layer (rows x width x hidden), its sparse
    input layer (train x hidden) and, at each of rows / batch steps, Adam's dense update of both width-wide kernels."""
    hidden = _outer_hidden(cfg)
    steps = math.ceil(rows / cfg.batch_size)
    return rows * width * hidden + train * hidden + steps * width * 2 * hidden


def _vae_epoch(cfg, shape: Shape) -> float:
    return _autoencoder_epoch(cfg, shape.users, shape.items, shape.train)


def _item_ae_epoch(cfg, shape: Shape) -> float:
    return _autoencoder_epoch(cfg, shape.items, shape.users, shape.train)


def _eval_batches(scored: int) -> int:
    return math.ceil(scored / EVAL_BATCH)


def _dot_evaluate(cfg, shape: Shape, scored: int) -> float:
    """Scored users x items at dim (a dot product or a distance per pair)."""
    return scored * shape.items * cfg.dim


def _neumf_evaluate(cfg, shape: Shape, scored: int) -> float:
    """Per pair the tower after its split first layer (an add); per batch the items' half of that layer."""
    pair = cfg.mlp_layers[0] + _neumf_tower(cfg)
    return scored * shape.items * pair + _eval_batches(scored) * shape.items * cfg.dim * cfg.mlp_layers[0]


def _lightgcn_evaluate(cfg, shape: Shape, scored: int) -> float:
    """Dot products at dim, and one propagation per batch of users."""
    return _dot_evaluate(cfg, shape, scored) + _eval_batches(scored) * _propagation(cfg, shape)


def _vae_evaluate(cfg, shape: Shape, scored: int) -> float:
    """The decoder's output layer for every scored user."""
    return scored * shape.items * _outer_hidden(cfg)


def _item_ae_evaluate(cfg, shape: Shape, scored: int) -> float:
    """Every batch of users encodes every item (its sparse input layer and the hidden layers), then the output
    layer's columns of the batch's users."""
    sizes = (*cfg.hidden, cfg.dim, *reversed(cfg.hidden))
    per_batch = shape.train * sizes[0] + shape.items * _chain(sizes)
    return _eval_batches(scored) * per_batch + scored * shape.items * _outer_hidden(cfg)


@dataclass(frozen=True)
class TeacherWork:
    """A teacher's two drivers: `epoch(cfg, shape)` for one training epoch and `evaluate(cfg, shape, scored)` for
    one full-ranking evaluation scoring `scored` users (all of them, or an `eval_users` sample)."""

    epoch: Callable[..., float]
    evaluate: Callable[..., float]
    epoch_driver: str
    evaluate_driver: str


_PAIRWISE_EVALUATE = "scored users x items x dim"
TEACHER_WORK = {
    "MF": TeacherWork(_mf_epoch, _dot_evaluate, "steps x (batch rows + Adam's dense rows) x dim", _PAIRWISE_EVALUATE),
    "ML": TeacherWork(
        _cml_epoch, _dot_evaluate, "MF's + steps x (users + items) x dim (unit-ball clipping)", _PAIRWISE_EVALUATE
    ),
    "DL": TeacherWork(
        _neumf_epoch,
        _neumf_evaluate,
        "steps x (batch pairs x MLP + rows x 2 dim)",
        "scored users x items x MLP after its first layer + batches x items x dim x hidden",
    ),
    "GNN": TeacherWork(
        _lightgcn_epoch,
        _lightgcn_evaluate,
        "steps x (layers x (2 train + users + items) + batch rows + Adam's dense rows) x dim",
        _PAIRWISE_EVALUATE + " + batches x one propagation",
    ),
    "AE": TeacherWork(
        _vae_epoch,
        _vae_evaluate,
        "users x items x hidden (+ steps x items x 2 hidden, Adam)",
        "scored users x items x hidden",
    ),
    "I-AE": TeacherWork(
        _item_ae_epoch,
        _item_ae_evaluate,
        "items x users x hidden (+ steps x users x 2 hidden, Adam)",
        "batches x (train x hidden + items x hidden layers) + scored users x items x hidden",
    ),
}
