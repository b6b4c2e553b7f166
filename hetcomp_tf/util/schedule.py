"""How a DAG of jobs runs on a few cores, one policy for the pipeline's runner (`pipeline/local_runner.run_dag`) and
for the estimate of its time (`remaining_seconds`), so the ETA prices the order the runner really follows.

Among the ready nodes the longest (by estimate) starts first: a long teacher started last would run alone at the
end while the other cores idle (on Gowalla, CML ran alone for its last 32 minutes in pipeline order). Instant nodes
(resolvers) start as soon as they are ready and take no job. A node that is the only one able to start while none
runs starts alone, on every core; the others run beside each other, each on its share of the cores.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence


def next_starts(
    ready: Sequence[str], busy: int, jobs: int, inline: Collection[str] = (), seconds: Mapping[str, float] = {}
) -> list[tuple[str, bool]]:
    """The ready nodes to start now, and whether each starts alone.

    Example:
        >>> next_starts(["ML", "AE", "MF", "latest"], busy=0, jobs=2, inline={"latest"}, seconds={"AE": 60, "ML": 30})
        [('AE', False), ('ML', False), ('latest', True)]

    Args:
        ready: the nodes whose upstream nodes have all finished and that have not started, in the DAG's order.
        busy: the nodes running that took a job.
        jobs: the most nodes running at a time (inline ones aside).
        inline: instant nodes: started at once, alone, without taking a job.
        seconds: {node: its estimated seconds}; the longest ready node starts first (ties, and nodes without an
            estimate, in `ready`'s order).

    Returns:
        [(node, alone)]: the inline ready nodes and, as jobs are free, the longest others, in `ready`'s order but for
        the others' own order, longest first (a node started in place that fails stops those after it).
    """
    queued = sorted((node for node in ready if node not in inline), key=lambda node: -seconds.get(node, 0.0))
    starting = queued[: max(jobs - busy, 0)]
    alone = busy == 0 and len(starting) == 1
    longest_first = iter(starting)  # into the places the chosen nodes hold in `ready`, among the inline ones
    return [
        (node, True) if node in inline else (next(longest_first), alone)
        for node in ready
        if node in inline or node in starting
    ]


def remaining_seconds(
    upstream: Mapping[str, Collection[str]],
    seconds: Mapping[str, float],
    jobs: int,
    slowdown: float = 1.0,
    inline: Collection[str] = (),
    done: Collection[str] = (),
    running: Mapping[str, tuple[float, bool]] = {},
) -> float:
    """The wall time until the DAG's last node ends, run as `next_starts` orders it, every node taking its estimate.

    Example:
        >>> dag = {"data": [], "MF": ["data"], "AE": ["data"], "student": ["MF", "AE"]}
        >>> remaining_seconds(dag, {"data": 1, "MF": 4, "AE": 10, "student": 3}, jobs=2, slowdown=1.5)
        19.0

    Args:
        upstream: {node: the nodes it waits for}, in the DAG's order.
        seconds: {node: its estimated seconds when it runs alone}; a node without one takes none.
        jobs: the most nodes running at a time.
        slowdown: how many times longer a node takes beside others, on its share of the cores (`thread_slowdown`).
        inline: instant nodes (`next_starts`).
        done: the nodes that have ended.
        running: {node: (seconds it has run, whether it started alone)}: it takes what its estimate leaves, or none.

    Returns:
        Seconds from now.
    """
    finished = set(done)

    def length(node: str, alone: bool) -> float:
        return seconds.get(node, 0.0) * (1.0 if alone else slowdown)

    ends = {node: max(length(node, alone) - ran, 0.0) for node, (ran, alone) in running.items()}
    now = 0.0
    while True:
        ready = [
            node for node in upstream if node not in finished and node not in ends and set(upstream[node]) <= finished
        ]
        busy = sum(node not in inline for node in ends)
        for node, alone in next_starts(ready, busy, jobs, inline, seconds):
            ends[node] = now + length(node, alone)
        if not ends:
            return now
        now = min(ends.values())
        for node in [node for node, end in ends.items() if end <= now]:
            finished.add(node)
            del ends[node]
