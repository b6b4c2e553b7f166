"""HetComp's curriculum read back from benchmark run records: when (user, teacher) pairs advance and by which rule,
what the distance D to the next stage looks like per stage, and what the curriculum costs in epochs against a
baseline distilled towards the final targets from the start (ensemble_kd).

A verdict on whether the curriculum pays off needs these numbers, not a guess.

Run records are `runs.run_record` dicts: `curve` [[epoch, valid R@50]], `stage_curve` [[epoch, {teacher:
mean stage}]], `dkc_curve` [[epoch, dkc.update_statistics + "advanced"]], `switch_epoch`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hetcomp_tf.util.tables import markdown_table

CATCH_UP_LEVELS = (0.5, 0.9, 1.0)  # shares of the baseline's best valid Recall@50


def epochs_to_reach(curve: Sequence[Sequence[float]], level: float) -> int | None:
    """The first evaluated epoch whose valid Recall@50 is at least `level`.

    Args:
        curve: [[epoch, valid Recall@50]] in epoch order.
        level: the Recall to reach.

    Returns:
        The epoch, or None if never reached.
    """
    return next((int(epoch) for epoch, value in curve if value >= level), None)


def value_at(curve: Sequence[Sequence[float]], epoch: int) -> float | None:
    """Valid Recall@50 at the last evaluation at or before `epoch`.

    Args:
        curve: [[epoch, valid Recall@50]] in epoch order.
        epoch: the epoch.

    Returns:
        The Recall, or None before the first evaluation.
    """
    before = [value for at, value in curve if at <= epoch]
    return before[-1] if before else None


def curriculum_rows(record: dict) -> list[list[str]]:
    """One row per DKC update of a run: epoch, threshold, share of pairs moved (all, and by rule), mean stage over
    teachers, and per stage below the last "share of pairs there / their mean D to the next stage".

    Args:
        record: a run record (`runs.run_record`) with its `dkc_curve` and `stage_curve`.

    Returns:
        The rows of formatted cells ([] without DKC updates).
    """
    stages = {int(epoch): np.mean(list(means.values())) for epoch, means in record.get("stage_curve", [])}
    rows = []
    for epoch, stats in record.get("dkc_curve", []):
        per_stage = [
            f"{stats[f'stage_{v}/share']:.2f} / {stats[f'stage_{v}/d_next']:.3f}"
            if f"stage_{v}/d_next" in stats
            else "-"
            for v in range(_stage_count(stats))
        ]
        rows.append(
            [
                str(epoch),
                f"{stats['threshold']:.3f}",
                _percent(stats["moved"]),
                _percent(stats["moved_reproduced"]),
                _percent(stats["moved_caught_up"]),
                _percent(stats["moved_drifted"]),
                f"{stages[int(epoch)]:.2f}" if int(epoch) in stages else "-",
                *per_stage,
            ]
        )
    return rows


def catch_up_rows(runs: Sequence[dict], method: str = "hetcomp", baseline: str = "ensemble_kd") -> list[list[str]]:
    """Per (dim, seed) with both runs: the baseline's best valid Recall@50 B, the epochs each run needs to reach
    each share of B, and both runs' valid Recall@50 at `method`'s ADT switch.

    Args:
        runs: run records (`runs.run_record`).
        method: the curriculum method.
        baseline: the method distilled towards the final targets from the start.

    Returns:
        The rows of formatted cells, by dim then seed.
    """
    by_key = {(r["method"], r["dim"], r["seed"]): r for r in runs}
    rows = []
    for (name, dim, seed), record in sorted(by_key.items(), key=lambda item: (item[0][1], item[0][2])):
        other = by_key.get((baseline, dim, seed))
        if name != method or other is None:
            continue
        best = max(value for _, value in other["curve"])
        reach = [
            f"{_epoch_text(epochs_to_reach(record['curve'], share * best))} vs "
            f"{_epoch_text(epochs_to_reach(other['curve'], share * best))}"
            for share in CATCH_UP_LEVELS
        ]
        switch = record.get("switch_epoch")
        at_switch = (
            "-"
            if switch is None
            else (f"{value_at(record['curve'], switch):.4f} vs " f"{value_at(other['curve'], switch):.4f}")
        )
        rows.append([str(dim), str(seed), f"{best:.4f}", *reach, _epoch_text(switch), at_switch])
    return rows


def diagnosis_markdown(runs: Sequence[dict], method: str = "hetcomp", baseline: str = "ensemble_kd") -> str:
    """The curriculum section of results.md.

    Args:
        runs: run records (`runs.run_record`).
        method: the curriculum method.
        baseline: the method distilled towards the final targets from the start.

    Returns:
        The Markdown section, "" when no run carries DKC updates.
    """
    sections = []
    catch_up = catch_up_rows(runs, method, baseline)
    if catch_up:
        headers = [
            "dim",
            "seed",
            f"{baseline} best valid R@50 (B)",
            *(f"epochs to {share:.0%} of B ({method} vs {baseline})" for share in CATCH_UP_LEVELS),
            "ADT switch epoch",
            f"valid R@50 at the switch ({method} vs {baseline})",
        ]
        sections.append(f"### What the curriculum costs in epochs\n\n{markdown_table(catch_up, headers)}")
    for record in runs:
        rows = curriculum_rows(record)
        if not rows:
            continue
        n_stages = max(len(row) for row in rows) - 7
        headers = [
            "epoch",
            "threshold",
            "moved",
            "reproduced",
            "caught up",
            "drifted",
            "mean stage",
            *(f"stage {v}: share / D" for v in range(n_stages)),
        ]
        sections.append(
            f"### DKC updates of {record['method']} (dim {record['dim']}, seed {record['seed']})\n\n"
            f"{markdown_table([r + ['-'] * (len(headers) - len(r)) for r in rows], headers)}"
        )
    if not sections:
        return ""
    return (
        '## The curriculum (DKC) read back\n\nShares are of all (user, teacher) pairs; "D" is the mean distance '
        "1 − NDCG@50 of the pairs at a stage to their next stage, as the update measured it.\n\n"
        + "\n\n".join(sections)
        + "\n"
    )


def plot_stage_curves(runs: Sequence[dict], path: Path, title: str) -> bool:
    """Plots each DKC run's mean stage per teacher against epochs, one panel per run, with its ADT switch marked.

    Args:
        runs: run records (`runs.run_record`).
        path: the PNG file.
        title: the figure's title.

    Returns:
        Whether a file was written (False when no run has stages).
    """
    staged = [r for r in runs if r.get("stage_curve") and len(r["stage_curve"][0][1]) and r.get("dkc_curve")]
    if not staged:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(staged), 1, figsize=(6, 3 * len(staged)), squeeze=False)
    for axis, record in zip(axes[:, 0], staged):
        epochs = [epoch for epoch, _ in record["stage_curve"]]
        for teacher in record["stage_curve"][0][1]:
            axis.plot(epochs, [means[teacher] for _, means in record["stage_curve"]], label=teacher)
        if record.get("switch_epoch"):
            axis.axvline(record["switch_epoch"], color="grey", linestyle="--", label="ADT switch")
        axis.set_title(f"{record['method']} dim {record['dim']} seed {record['seed']}")
        axis.set_ylabel("mean stage")
        axis.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("epoch")
    axes[0, 0].legend(fontsize=7, ncol=4)
    figure.suptitle(f"DKC stages, {title}")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True


def _stage_count(stats: dict) -> int:
    return sum(1 for key in stats if key.endswith("/share"))


def _percent(share: float) -> str:
    return f"{100 * share:.1f} %"


def _epoch_text(epoch: int | None) -> str:
    return "never" if epoch is None else str(epoch)
