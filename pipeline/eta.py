"""The whole pipeline's ETA for `hetcomp run`'s progress lines: the components' estimates (the cost model's, for the
teachers and the student) scheduled as the runner schedules them (`hetcomp_tf.util.schedule`), from what has ended
and how long the running ones have run.

The estimates price every teacher at its epoch cap, and early stopping usually ends a teacher far sooner (Gowalla,
`large`: 11.9 h estimated, 1 h 50 min taken); on other CPUs, or beside other work, they may also be too short. So
once a component with an estimate has ended, the ETA is scaled by the pace of those that ended (their seconds over
their estimates), the estimates' own figure beside it.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping

from hetcomp_tf.bench.estimate import duration
from hetcomp_tf.util.schedule import remaining_seconds


class PipelineEta:
    """The run's progress against its estimate.

    Args:
        upstream: {node: the nodes it waits for}, the runner's DAG.
        estimates: {node: its estimated seconds when run alone}; nodes without one count as instant.
        jobs: the most nodes running at a time.
        slowdown: how much longer a node takes in a worker process (`estimate.thread_slowdown`).
        inline: the nodes the runner starts at once (resolvers).
    """

    def __init__(
        self,
        upstream: Mapping[str, Collection[str]],
        estimates: Mapping[str, float],
        jobs: int,
        slowdown: float,
        inline: Collection[str] = (),
    ):
        self.upstream, self.estimates, self.jobs, self.slowdown, self.inline = (
            upstream,
            estimates,
            jobs,
            slowdown,
            inline,
        )
        self.started_at = time.perf_counter()
        self.running: dict[str, tuple[float, bool]] = {}  # node -> (its start, whether alone)
        self.done: set[str] = set()
        self.spent = self.priced = 0.0  # seconds taken, and estimated, by the ended nodes with an estimate

    def started(self, node: str, alone: bool) -> None:
        """Notes that `node` started, alone or beside others."""
        self.running[node] = (time.perf_counter(), alone)

    def ended(self, node: str, cached: bool) -> None:
        """Notes that `node` ended; a cache hit says nothing of the pace."""
        began, alone = self.running.pop(node)
        self.done.add(node)
        if node in self.estimates and not cached:
            self.spent += time.perf_counter() - began
            self.priced += self.estimates[node] * (1.0 if alone else self.slowdown)

    def _left(self, scale: float) -> float:
        now = time.perf_counter()
        return remaining_seconds(
            self.upstream,
            {node: seconds * scale for node, seconds in self.estimates.items()},
            self.jobs,
            self.slowdown,
            self.inline,
            self.done,
            {node: (now - began, alone) for node, (began, alone) in self.running.items()},
        )

    def line(self) -> str:
        """The progress line: components ended, time elapsed, the ETA (see the module docstring)."""
        head = (
            f"pipeline: {len(self.done)} of {len(self.upstream)} components done, "
            f"{duration(time.perf_counter() - self.started_at)} elapsed; "
        )
        priced = f"~{duration(self._left(1.0))} at the estimates (epoch caps"
        if not self.priced:
            return head + f"ETA {priced}; early stopping usually ends sooner)"
        pace = self.spent / self.priced
        return head + f"ETA ~{duration(self._left(pace))} at the pace so far ({pace:.2f} of the estimates), {priced})"
