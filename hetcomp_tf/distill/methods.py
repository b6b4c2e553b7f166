"""The distillation methods: HetComp, its ablations and the baselines, each a `Method` that one code path
trains (trainer.py, loop.py).

A method is a pair (target schedule, loss before / after the ADT switch), see `METHODS`:
  * every target schedule runs through the same `DynamicKnowledge`, fed different trajectories, so targets always
    come from its on-device table: "dkc" = the teachers' T checkpoints (HetComp's easy-to-hard knowledge);
    "final" = only the last checkpoint (T = 1: the final ensemble from epoch 0, all stages final from the
    start); "paced" = the last checkpoint twice (T = 2: the targets are the final ensemble throughout, but each
    (user, teacher) pair still moves 0 -> 1 by the DKC ratio rule measured against the teacher's final
    ranking); "data" = no teacher at all (BPR on the train interactions).
  * the ADT switch is `DynamicKnowledge.is_final()`: every teacher's rounded mean stage reached T−1. HetComp
    learns the set-wise overall loss (× overall_weight) before it and the fine-grained losses (× fine_weight)
    after; a method with the same loss on both sides ignores the switch.
dcd is DCD (dcd.py) against the final ensemble: RRD plus its user- and item-side corrections (the latter on the
items of the step's train interactions), the student's ranks refreshed every dcd_period epochs.
hetcomp_no_dkc is ("paced", overall -> fine): the paper's "w/o DKC" distils the final ensemble from the start,
which leaves ADT without stages to watch; with "paced" the student learns the overall loss until, per user
and teacher, its NDCG distance to the final ranking stops shrinking or shrinks by more than the DKC threshold
(HetComp's own stage rule and thresholds), then switches to the fine-grained losses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hetcomp_tf.distill.ensemble import EnsembleKnowledge
from hetcomp_tf.errors import HetCompError

# Logged as the "objective" scalar: 0 = overall (set-wise), 1 = fine-grained, then the baselines' losses.
LOSSES = ("overall", "fine", "rrd", "bpr", "dcd")


@dataclass(frozen=True)
class Method:
    """A distillation method: its target schedule and its losses.

    Attributes:
        targets: the target schedule, "dkc" | "final" | "paced" | "data" (see the module docstring).
        losses: the loss before and after the ADT switch (names from LOSSES).
    """

    targets: str
    losses: tuple[str, str]


METHODS = {
    "wo_kd": Method("data", ("bpr", "bpr")),
    "ensemble_kd": Method("final", ("fine", "fine")),
    "rrd": Method("final", ("rrd", "rrd")),
    "dcd": Method("final", ("dcd", "dcd")),
    "hetcomp_no_dkc": Method("paced", ("overall", "fine")),
    "hetcomp_no_adt": Method("dkc", ("overall", "overall")),
    "hetcomp": Method("dkc", ("overall", "fine")),
}


def get_method(name: str) -> Method:
    """The `Method` of a name.

    Args:
        name: a name of METHODS.

    Returns:
        Its `Method`.

    Raises:
        HetCompError: an unknown name.
    """
    try:
        return METHODS[name]
    except KeyError:
        raise HetCompError(f"unknown distillation method {name!r}: choose one of {', '.join(METHODS)}") from None


def stage_rankings(knowledge: EnsembleKnowledge, schedule: str) -> np.ndarray:
    """The trajectories a target schedule hands to DKC (see the module docstring).

    Args:
        knowledge: the teachers' knowledge, rankings int32 [X, T, U, N].
        schedule: "dkc", "final" or "paced".

    Returns:
        int32 [X, T', U, N]: all T checkpoints ("dkc"), the last one ("final", T' = 1) or the last one twice
        ("paced", T' = 2).
    """
    final = knowledge.rankings[:, -1:]
    return {"dkc": knowledge.rankings, "final": final, "paced": np.concatenate([final, final], axis=1)}[schedule]
