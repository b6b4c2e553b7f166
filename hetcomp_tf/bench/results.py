"""The benchmark's results from its finished runs: teachers, ensemble and students as mean/std over seeds, the
student-size sweep (`aggregate`), paired differences against HetComp over seeds, the printed and Markdown
tables and the training-curve plot.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hetcomp_tf.bench.diagnosis import diagnosis_markdown
from hetcomp_tf.bench.frontier import frontier_markdown, is_direct
from hetcomp_tf.bench.wall_clock import HEARTBEAT_SECONDS
from hetcomp_tf.config import METRIC_KS, RECORD_METRIC, Profile
from hetcomp_tf.util.files import atomic_file
from hetcomp_tf.util.tables import ENSEMBLE, FITTED_ENSEMBLE, format_table, markdown_table, student_row, teacher_row

CURVE_METHODS = ("wo_kd", "ensemble_kd", "rrd", "dcd", "hetcomp")
PAIRED_METRICS = (RECORD_METRIC, "ndcg@50")
METRIC_COLUMNS = [f"{m}@{k}" for k in METRIC_KS for m in ("recall", "ndcg")]
STD_COLUMN = f"±{RECORD_METRIC}"


def _mean_std(values: Sequence[dict]) -> tuple[dict, dict]:
    names = list(values[0])
    stacked = np.array([[v[n] for n in names] for v in values], dtype=np.float64)
    return dict(zip(names, stacked.mean(0).tolist())), dict(zip(names, stacked.std(0).tolist()))


def aggregate(
    runs: list[dict], summary: dict, profile: Profile, methods: Sequence[str], student_dims: Sequence[int]
) -> dict:
    """results.json's content: teachers and ensemble from teachers.json, students as mean/std over seeds, the
    models trained directly at students' sizes (`direct`) as they are.

    Args:
        runs: the finished run records (`runs.run_record`, direct models' too).
        summary: teachers.json.
        profile: the benchmark's profile (its student dim is the headline one).
        methods: the distillation methods, in table order.
        student_dims: the swept student sizes.

    Returns:
        {"dataset", "profile", "seeds", "student_dim", "methods": {row: entry}, "ensemble_params",
        "student_dims": {dim: {method: entry}}, "paired" (`paired_differences`), "runs", "direct"}.
    """
    direct = [r for r in runs if is_direct(r["method"])]
    runs = [r for r in runs if not is_direct(r["method"])]
    entries = {
        teacher_row(name): {
            "test": t["test"],
            "valid": t["valid"],
            "params": t["params"],
            "train_seconds": t["train_seconds"],
        }
        for name, t in summary["teachers"].items()
    }
    entries[ENSEMBLE] = {"test": summary["ensemble"]["test"], "valid": summary["ensemble"]["valid"]}
    if "ensemble_weighted" in summary:  # the valid-fitted ensemble, the students' targets with targets="fitted"
        fitted = summary["ensemble_weighted"]
        entries[FITTED_ENSEMBLE] = {
            "test": fitted["test"],
            "valid": fitted["valid"],
            "tau": fitted["tau"],
            "teacher_weights": fitted["weights"],
        }
    default_dim = profile.distill.student_dim
    for method in methods:
        mine = [r for r in runs if r["method"] == method and r["dim"] == default_dim]
        if not mine:
            continue
        test, test_std = _mean_std([r["test"] for r in mine])
        valid, valid_std = _mean_std([r["valid"] for r in mine])
        entries[student_row(method)] = {
            "test": test,
            "test_std": test_std,
            "valid": valid,
            "valid_std": valid_std,
            "params": mine[0]["params"],
            "train_seconds": float(np.mean([r["train_seconds"] for r in mine])),
            "epochs": float(np.mean([r["epochs"] for r in mine])),
            "seeds": len(mine),
        }
    sweep = {}
    for dim in sorted({*student_dims}):
        per_method = {}
        for method in methods:
            mine = [r for r in runs if r["method"] == method and r["dim"] == dim]
            if mine:
                test, test_std = _mean_std([r["test"] for r in mine])
                per_method[method] = {
                    "test": test,
                    "test_std": test_std,
                    "params": mine[0]["params"],
                    "seeds": len(mine),
                }
        sweep[str(dim)] = per_method
    return {
        "dataset": summary["dataset"],
        "profile": profile.name,
        "seeds": len({r["seed"] for r in runs}),
        "student_dim": default_dim,
        "methods": entries,
        "ensemble_params": int(sum(t["params"] for t in summary["teachers"].values())),
        "student_dims": sweep,
        "paired": paired_differences(runs, default_dim),
        "runs": runs,
        "direct": direct,
    }


def paired_differences(runs: list[dict], dim: int, method: str = "hetcomp") -> dict:
    """HetComp − each baseline on the test metrics, paired by seed.

    Over the seeds both ran at `dim` (each seed's pair shares its initialisation seed): per seed, mean, std and the
    paired t-test's two-sided p-value (None below 2 seeds).

    Args:
        runs: the finished run records.
        dim: the student size compared.
        method: the method compared against every other.

    Returns:
        {baseline: {"seeds", metric: {"per_seed", "mean", "std", "p"}}} for the PAIRED_METRICS.
    """
    from scipy import stats

    by_key = {(r["method"], r["seed"]): r for r in runs if r["dim"] == dim}
    out = {}
    for baseline in sorted({m for m, _ in by_key} - {method}):
        seeds = sorted(s for m, s in by_key if m == baseline and (method, s) in by_key)
        if not seeds:
            continue
        entry = {"seeds": seeds}
        for metric in PAIRED_METRICS:
            ours = np.array([by_key[(method, s)]["test"][metric] for s in seeds])
            theirs = np.array([by_key[(baseline, s)]["test"][metric] for s in seeds])
            p_value = float(stats.ttest_rel(ours, theirs).pvalue) if len(seeds) > 1 else None
            entry[metric] = {
                "per_seed": (ours - theirs).tolist(),
                "mean": float(np.mean(ours - theirs)),
                "std": float(np.std(ours - theirs)),
                "p": None if p_value is None or not np.isfinite(p_value) else p_value,
            }
        out[baseline] = entry
    return out


def results_table(results: dict) -> str:
    """The printed table of every method's test metrics, std, params and seconds.

    Args:
        results: `aggregate`'s results.

    Returns:
        The table's text (`tables.format_table`).
    """
    rows = {}
    for name, entry in results["methods"].items():
        row = dict(entry["test"])
        if "test_std" in entry:
            row[STD_COLUMN] = entry["test_std"][RECORD_METRIC]
        row["params"] = entry.get("params")
        row["seconds"] = entry.get("train_seconds")
        rows[name] = row
    return format_table(rows, [*METRIC_COLUMNS, STD_COLUMN, "params", "seconds"], {"params": "d", "seconds": ".1f"})


def sweep_table(results: dict) -> str:
    """The printed table of the student-size sweep.

    Args:
        results: `aggregate`'s results (their "student_dims").

    Returns:
        The table's text (`tables.format_table`).
    """
    rows = {
        f"{method} dim {dim}": {
            **values["test"],
            STD_COLUMN: values["test_std"][RECORD_METRIC],
            "params": values["params"],
        }
        for dim, per_method in results["student_dims"].items()
        for method, values in per_method.items()
    }
    return format_table(rows, [*METRIC_COLUMNS, STD_COLUMN, "params"], {"params": "d"})


def _mean_pm_std(entry: dict, metric: str) -> str:
    if "test_std" not in entry:
        return f"{entry['test'][metric]:.4f}"
    return f"{entry['test'][metric]:.4f} ± {entry['test_std'][metric]:.4f}"


def _paired_cell(difference: dict) -> str:
    """mean ± std (each seed's difference), e.g. +0.0028 ± 0.0019 (+0.0002, +0.0046, +0.0035)."""
    per_seed = ", ".join(f"{d:+.4f}" for d in difference["per_seed"])
    return f"{difference['mean']:+.4f} ± {difference['std']:.4f} ({per_seed})"


def _p_value(p: float | None) -> str:
    return "-" if p is None else "< 0.001" if p < 0.001 else f"{p:.3f}"


def results_markdown(results: dict) -> str:
    """results.md, the benchmark's report in Markdown.

    The test metrics of every method (students: mean ± std over seeds) with each one's share of the ensemble's
    Recall@50, parameters, epochs and seconds, then the paired differences, the student-size sweep, every run, the
    frontier, the wall time and the curriculum (`diagnosis`).

    Args:
        results: `benchmark.write_results`' results.

    Returns:
        The Markdown text.
    """
    ensemble_recall = results["methods"][ENSEMBLE]["test"][RECORD_METRIC]

    def share(entry: dict) -> str:
        return f"{100 * entry['test'][RECORD_METRIC] / ensemble_recall:.1f} %"

    rows = []
    for name, entry in results["methods"].items():
        params = entry.get("params", results["ensemble_params"] if name in (ENSEMBLE, FITTED_ENSEMBLE) else None)
        rows.append(
            [
                name,
                *(_mean_pm_std(entry, m) for m in METRIC_COLUMNS),
                share(entry),
                f"{params:,}" if params else "-",
                f"{entry['epochs']:.0f}" if "epochs" in entry else "-",
                f"{entry['train_seconds']:.0f}" if entry.get("train_seconds") else "-",
            ]
        )
    main = markdown_table(rows, ["method", *METRIC_COLUMNS, "% of ensemble R@50", "params", "epochs", "train s"])
    sweep_rows = [
        [dim, method, *(_mean_pm_std(values, m) for m in METRIC_COLUMNS), share(values), f"{values['params']:,}"]
        for dim, per_method in results["student_dims"].items()
        for method, values in per_method.items()
    ]
    sweep = markdown_table(sweep_rows, ["dim", "method", *METRIC_COLUMNS, "% of ensemble R@50", "params"])
    paired_rows = [
        [
            f"hetcomp − {baseline}",
            ", ".join(map(str, entry["seeds"])),
            *(_paired_cell(entry[m]) for m in PAIRED_METRICS),
            *(_p_value(entry[m]["p"]) for m in PAIRED_METRICS),
        ]
        for baseline, entry in results["paired"].items()
    ]
    paired = markdown_table(
        paired_rows,
        ["pair", "seeds", *(f"Δ {m} (per seed)" for m in PAIRED_METRICS), *(f"p ({m})" for m in PAIRED_METRICS)],
    )
    run_rows = [
        [
            r["method"],
            str(r["dim"]),
            str(r["seed"]),
            f"{r['test'][RECORD_METRIC]:.4f}",
            f"{r['test']['ndcg@50']:.4f}",
            str(r["epochs"]),
            str(r["best_epoch"]),
            "-" if r["switch_epoch"] is None else str(r["switch_epoch"]),
            f"{r['train_seconds']:.0f}",
        ]
        for r in results["runs"]
    ]
    per_run = markdown_table(
        run_rows,
        [
            "method",
            "dim",
            "seed",
            "test recall@50",
            "test ndcg@50",
            "epochs",
            "best epoch",
            "ADT switch epoch",
            "train s",
        ],
    )
    return (
        f"# Benchmark: {results['dataset']['name']}, {results['profile']} profile, {results['seeds']} seed(s)\n\n"
        f"Test split; students of dim {results['student_dim']}, mean ± std over seeds; epochs and train s are "
        f"per run (mean).\n\n{main}\n\n## HetComp against each method, paired by seed "
        f"(dim {results['student_dim']})\n\n{paired}\n\n## Student sizes\n\n{sweep}\n\n## Runs\n\n{per_run}\n\n"
        f"## Quality against serving cost\n\n{frontier_markdown(results['frontier'])}\n\n"
        f"{len(results['runs']) + len(results['direct'])} of {results['runs_planned']} planned runs finished. "
        f"{_wall_time(results)}\n\n" + diagnosis_markdown(results["runs"])
    )


def _wall_time(results: dict) -> str:
    """This invocation's wall time, and the total over the invocations that trained the runs on this --out."""
    text = (
        f"Wall time {results['wall_seconds']:.0f} s with {results['jobs']} job(s); "
        f"{results['runs_resumed']} of {len(results['runs'])} runs were finished before it"
    )
    invocations = [f"{entry['seconds']:.0f}" for entry in results["invocations"]]
    if len(invocations) > 1:
        text += (
            f". Over the {len(invocations)} invocations on this --out: {results['wall_seconds_total']:.0f} s "
            f"({' + '.join(invocations)} s; a stopped one counts until its last record, at most "
            f"{HEARTBEAT_SECONDS:.0f} s before it stopped, and the work it lost was redone)"
        )
    if results["runs_imported"]:
        text += f"; {results['runs_imported']} imported by --import-runs (their time is in no total here)"
    return text + "."


def plot_curves(runs: list[dict], dim: int, path: Path, title: str) -> None:
    """Plots valid Recall@50 against epochs for the CURVE_METHODS at `dim`: the mean over seeds, each seed's curve
    held at its last value after it stopped (as the paper plots converged runs).

    Args:
        runs: the finished run records.
        dim: the student size plotted.
        path: the PNG file, written atomically.
        title: the figure's title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for method in CURVE_METHODS:
        curves = [r["curve"] for r in runs if r["method"] == method and r["dim"] == dim]
        if not curves:
            continue
        epochs = sorted({epoch for curve in curves for epoch, _ in curve})
        held = [np.interp(epochs, *zip(*curve), right=curve[-1][1]) for curve in curves]
        axes.plot(epochs, np.mean(held, axis=0), marker="o", markersize=3, label=method)
    axes.set_xlabel("epoch")
    axes.set_ylabel(f"valid {RECORD_METRIC}")
    axes.set_title(f"Training curves, {title}")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    with atomic_file(path) as temporary:
        figure.savefig(temporary, dpi=120)
