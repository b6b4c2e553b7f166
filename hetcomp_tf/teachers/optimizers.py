"""The teachers' optimisers by name (`TeacherConfig.optimizer`): Adam as the paper trains them, and LazyAdam for
embedding tables too large to update whole at every step.

Keras' Adam updates every row of an embedding table at every step, even the rows whose gradient is zero (their
moments decay and the row moves): on Gowalla (70 k users + items at dim 200) that dense update is most of an MF
step. LazyAdam (as tfa.optimizers.LazyAdam) updates only the rows in the batch: their moments and weights exactly as
Adam would if the batch's duplicate rows were summed first; other rows keep their moments and weights until they
appear again. A different optimiser (off in the `paper` profile), whose quality cost docs/RESULTS.md prices.
"""

from __future__ import annotations

import tensorflow as tf

from hetcomp_tf.errors import HetCompError


class LazyAdam(tf.keras.optimizers.Adam):
    """Adam whose sparse gradients (tf.IndexedSlices, from embedding lookups) update only the rows they index.

    Example:
        >>> table = tf.Variable(tf.ones([1000, 8]))
        >>> optimizer = LazyAdam(1e-3)
        >>> with tf.GradientTape() as tape:
        ...     loss = tf.reduce_sum(tf.gather(table, [3, 3, 7]))
        >>> optimizer.apply_gradients([(tape.gradient(loss, table), table)])  # rows 3 and 7 move, no other
    """

    def update_step(self, gradient, variable):
        """Adam's step for one variable, touching only the indexed rows when the gradient is sparse.

        Args:
            gradient: a dense tensor (Adam's own step) or tf.IndexedSlices (rows may repeat; their values are summed).
            variable: the variable to update, its slots in the optimiser.
        """
        if not isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        alpha = tf.cast(self.learning_rate, dtype) * tf.sqrt(1 - tf.pow(beta_2, step)) / (1 - tf.pow(beta_1, step))
        index = self._index_dict[self._var_key(variable)]
        m, v = self._momentums[index], self._velocities[index]
        rows, position = tf.unique(gradient.indices)
        values = tf.math.unsorted_segment_sum(gradient.values, position, tf.shape(rows)[0])
        m_rows = beta_1 * tf.gather(m, rows) + (1 - beta_1) * values
        v_rows = beta_2 * tf.gather(v, rows) + (1 - beta_2) * tf.square(values)
        m.scatter_update(tf.IndexedSlices(m_rows, rows))
        v.scatter_update(tf.IndexedSlices(v_rows, rows))
        variable.scatter_sub(tf.IndexedSlices(alpha * m_rows / (tf.sqrt(v_rows) + self.epsilon), rows))


OPTIMIZERS = {"adam": tf.keras.optimizers.Adam, "lazy_adam": LazyAdam}  # TeacherOptimizer's choices


def make_optimizer(name: str, learning_rate: float) -> tf.keras.optimizers.Optimizer:
    """A fresh optimiser, so each teacher gets its own slots.

    Args:
        name: "adam" or "lazy_adam" (`TeacherConfig.optimizer`).
        learning_rate: its learning rate.

    Returns:
        The unbuilt optimiser.

    Raises:
        HetCompError: an unknown `name`.
    """
    if name not in OPTIMIZERS:
        raise HetCompError(f"unknown optimizer {name!r}: choose one of {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name](learning_rate)
