"""Warm start: a model trained on an earlier snapshot of the data as the starting point of one on a newer snapshot.

Every model lists the axes of its variables that are indexed by user or item ids (`id_axes`: embedding rows, the
autoencoders' input rows and output columns over items or users). Along those axes rows are copied by id: a user or
item both vocabularies hold gets its previous row wherever its index now is, an id new to this snapshot keeps the
fresh model's initial row. Every other variable (NeuMF's MLP and output layer, the autoencoders' hidden layers) is
copied when its shape is unchanged; a variable whose shape changed beyond its id axes (another dim or hidden size)
stays at its fresh initialisation, and `WarmStart.apply` reports it. Optimiser state is not carried over.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from hetcomp_tf.data.dataset import CSR, Dataset
from hetcomp_tf.util.progress import log


def stand_in(user_vocab, item_vocab) -> Dataset:
    """Vocabularies without interactions: what a teacher is built on to load weights trained on another snapshot."""
    users, items = np.asarray(user_vocab, dtype=np.str_), np.asarray(item_vocab, dtype=np.str_)
    empty = CSR(np.zeros(len(users) + 1, np.int64), np.zeros(0, np.int32))
    return Dataset(name="base", user_vocab=users, item_vocab=items, train=empty, valid=empty, test=empty)


def shared_rows(previous, current) -> tuple[np.ndarray, np.ndarray]:
    """(indices in `current`, indices in `previous`) of the ids both vocabularies hold."""
    _, old, new = np.intersect1d(
        np.asarray(previous, np.str_), np.asarray(current, np.str_), assume_unique=True, return_indices=True
    )
    return new, old


@dataclass(frozen=True)
class WarmStart:
    base: tf.Module  # the earlier model, built at its own vocabularies' sizes, its weights loaded
    user_vocab: np.ndarray  # the vocabularies it was trained with
    item_vocab: np.ndarray
    source: str = ""  # where it came from (a model artifact's URI), for logs and results

    def apply(self, model: tf.Module, data: Dataset) -> dict:
        """Puts the base model's weights into `model` (same class, built on `data`); returns what was carried over,
        JSON-ready: the source, shared / new users and items, variables copied whole, mapped by id, left fresh."""
        rows = {
            "user": shared_rows(self.user_vocab, data.user_vocab),
            "item": shared_rows(self.item_vocab, data.item_vocab),
        }
        axes = {variable.ref(): (axis, kind) for variable, axis, kind in model.id_axes()}
        copied, mapped, fresh = 0, 0, []
        for variable, previous in zip(model.variables, self.base.variables, strict=True):
            old = previous.numpy()
            axis, kind = axes.get(variable.ref(), (None, None))
            if axis is None and old.shape == tuple(variable.shape):
                variable.assign(old)
                copied += 1
            elif axis is not None and np.delete(old.shape, axis).tolist() == np.delete(variable.shape, axis).tolist():
                new_rows, old_rows = rows[kind]
                value = variable.numpy()
                index = [slice(None)] * value.ndim
                index[axis] = new_rows
                value[tuple(index)] = np.take(old, old_rows, axis=axis)
                variable.assign(value)
                mapped += 1
            else:
                fresh.append(f"{variable.name} {list(old.shape)} -> {list(variable.shape)}")
        summary = {
            "source": self.source,
            "users": int(rows["user"][0].size),
            "new_users": int(data.n_users - rows["user"][0].size),
            "items": int(rows["item"][0].size),
            "new_items": int(data.n_items - rows["item"][0].size),
            "copied": copied,
            "mapped": mapped,
            "fresh": fresh,
        }
        log(
            f"warm start from {self.source or 'a base model'}: {summary['users']:,} users and {summary['items']:,} "
            f"items keep their rows ({summary['new_users']:,} / {summary['new_items']:,} new), {mapped} id-indexed "
            f"and {copied} other variables carried over" + (f", fresh: {', '.join(fresh)}" if fresh else "")
        )
        return summary
