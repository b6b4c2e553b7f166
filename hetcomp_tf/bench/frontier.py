"""The quality-vs-serving-cost frontier: the students of each size against what a user would serve instead.

A student of dim d serves as two embedding tables, a dot product and a top-K. So does a model trained directly at
dim d that serves as tables: MF, and LightGCN with its propagation folded into the tables at export. Such a
"direct" model is the rival a student must beat at its size; it is trained with its teacher's recipe (the
profile's teacher config, dim d) and early stopping, like the teacher. The frontier puts the students and the
direct models of every size beside the full-size teachers and the ensembles, with their test Recall/NDCG@50,
parameters and, given `hetcomp latency`'s JSON, their p50 latency at batch 1.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

from hetcomp_tf.config import Profile, TeacherConfig
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.util.files import atomic_file
from hetcomp_tf.util.tables import ENSEMBLE, FITTED_ENSEMBLE, markdown_table

DIRECT_PREFIX = "direct:"
# Teachers that serve as a dim-d dot product of two tables, so a direct model of dim d costs a student of dim d.
DIRECT_TEACHERS = ("MF", "GNN")
FRONTIER_METRICS = ("recall@50", "ndcg@50")


def direct_method(teacher: str) -> str:
    """The run name of `teacher` trained directly at a student's size.

    Args:
        teacher: a teacher of DIRECT_TEACHERS.

    Returns:
        E.g. "direct:GNN".
    """
    return DIRECT_PREFIX + teacher


def is_direct(method: str) -> bool:
    """Whether a run name is a direct model's (`direct_method`).

    Args:
        method: a run's method name.

    Returns:
        True for "direct:<teacher>".
    """
    return method.startswith(DIRECT_PREFIX)


def direct_teacher(method: str) -> str:
    """The teacher of a direct model's run name.

    Args:
        method: "direct:<teacher>".

    Returns:
        The teacher, e.g. "GNN" for "direct:GNN".
    """
    return method[len(DIRECT_PREFIX) :]


def check_direct(teachers: Sequence[str]) -> None:
    """Checks --direct: every teacher must serve as tables (DIRECT_TEACHERS).

    Args:
        teachers: the teachers named by --direct.

    Raises:
        HetCompError: naming the others.
    """
    bad = [name for name in teachers if name not in DIRECT_TEACHERS]
    if bad:
        raise HetCompError(
            f"--direct {','.join(bad)}: a model trained at a student's size must serve as tables; "
            f"choose among {','.join(DIRECT_TEACHERS)}"
        )


def direct_config(profile: Profile, teacher: str, dim: int) -> TeacherConfig:
    """`teacher`'s recipe in `profile` at embedding size `dim` (everything else unchanged, its class too).

    Args:
        profile: the profile.
        teacher: a teacher of DIRECT_TEACHERS.
        dim: the embedding size.

    Returns:
        The `TeacherConfig`.
    """
    return dataclasses.replace(profile.teachers[teacher], dim=dim)


def frontier_rows(results: Mapping, latency_ms: Mapping[str, float] | None = None) -> list[dict]:
    """One row per model of the frontier, smallest serving cost first within each kind.

    Args:
        results: a benchmark's results (`aggregate`), with its "direct" records.
        latency_ms: p50 milliseconds at batch 1 by serving form ("tables:d<d>", "teacher:<T>", "ensemble"), as
            `latency_by_form` reads them from `hetcomp latency`'s JSON; None: no latency column.

    Returns:
        [{"model", "kind" (student | direct | teacher | ensemble), "dim", "test" {metric: mean},
          "test_std" {metric: std} (students over seeds, else 0), "seeds", "params", "p50_ms" (or None)}].
    """
    latency_ms = latency_ms or {}
    rows = []
    for dim, per_method in sorted(results["student_dims"].items(), key=lambda item: int(item[0])):
        for method, entry in per_method.items():
            rows.append(
                _row(
                    f"{method} d{dim}",
                    "student",
                    int(dim),
                    entry["test"],
                    entry["test_std"],
                    entry.get("seeds", 1),
                    entry["params"],
                    latency_ms.get(f"tables:d{dim}"),
                )
            )
    for record in sorted(results.get("direct", []), key=lambda r: (r["dim"], r["method"])):
        rows.append(
            _row(
                f"{direct_teacher(record['method'])} d{record['dim']}",
                "direct",
                record["dim"],
                record["test"],
                None,
                1,
                record["params"],
                latency_ms.get(f"tables:d{record['dim']}"),
            )
        )
    for name, entry in results["methods"].items():
        if name.startswith("teacher:"):
            rows.append(_row(name, "teacher", None, entry["test"], None, 1, entry["params"], latency_ms.get(name)))
    for name in (ENSEMBLE, FITTED_ENSEMBLE):
        if name in results["methods"]:
            rows.append(
                _row(
                    name,
                    "ensemble",
                    None,
                    results["methods"][name]["test"],
                    None,
                    1,
                    results["ensemble_params"],
                    latency_ms.get(ENSEMBLE),
                )
            )
    return rows


def _row(model, kind, dim, test, test_std, seeds, params, p50_ms) -> dict:
    return {
        "model": model,
        "kind": kind,
        "dim": dim,
        "test": {m: test[m] for m in FRONTIER_METRICS},
        "test_std": {m: (test_std or {}).get(m, 0.0) for m in FRONTIER_METRICS},
        "seeds": seeds,
        "params": int(params),
        "p50_ms": p50_ms,
    }


def latency_by_form(latency: Mapping) -> dict[str, float]:
    """{serving form: p50 ms at batch 1} from `hetcomp latency`'s JSON: "tables:d<d>" for each exported student
    size (any model served as dim-d tables costs the same), "teacher:<T>" and "ensemble".

    Args:
        latency: `hetcomp latency`'s JSON, measured at batch size 1.

    Returns:
        {serving form: p50 ms}.

    Raises:
        HetCompError: not such a JSON.
    """
    try:
        models = latency["models"]
        forms = {}
        for name, entry in models.items():
            p50 = float(entry["latency"]["batch_1"]["p50_ms"])
            if name.startswith("student:d"):
                forms["tables:" + name[len("student:") :]] = p50
            else:
                forms[name] = p50
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise HetCompError(f"latency file: not `hetcomp latency` output with batch size 1 ({error!r})") from None
    return forms


def best_teacher(rows: Sequence[dict], metric: str = "recall@50") -> dict:
    """The full-size teacher with the best test `metric`: the model a user would otherwise serve.

    Args:
        rows: `frontier_rows`.
        metric: the test metric.

    Returns:
        Its row.

    Raises:
        HetCompError: no teacher rows.
    """
    teachers = [row for row in rows if row["kind"] == "teacher"]
    if not teachers:
        raise HetCompError("frontier: no teacher rows")
    return max(teachers, key=lambda row: row["test"][metric])


def frontier_markdown(rows: Sequence[dict]) -> str:
    """The frontier table (test split; students mean ± std over their seeds), and which students beat the best
    teacher by more than 2 std on both metrics at no more of its serving cost.

    Args:
        rows: `frontier_rows`.

    Returns:
        The Markdown table and the verdict lines.
    """
    has_latency = any(row["p50_ms"] is not None for row in rows)
    body = []
    for row in rows:
        cells = [row["model"], row["kind"], "-" if row["dim"] is None else str(row["dim"])]
        for metric in FRONTIER_METRICS:
            value, std = row["test"][metric], row["test_std"][metric]
            cells.append(f"{value:.4f} ± {std:.4f}" if row["seeds"] > 1 else f"{value:.4f}")
        cells += [str(row["seeds"]), f"{row['params']:,}"]
        if has_latency:
            cells.append("-" if row["p50_ms"] is None else f"{row['p50_ms']:.2f}")
        body.append(cells)
    header = ["model", "kind", "dim", *(f"test {m}" for m in FRONTIER_METRICS), "seeds", "params"]
    table = markdown_table(body, header + (["p50 ms (batch 1)"] if has_latency else []))
    return table + "\n\n" + _verdict(rows)


def _verdict(rows: Sequence[dict]) -> str:
    best = best_teacher(rows)
    lines = [
        f"Best single teacher: {best['model']} (test recall@50 {best['test']['recall@50']:.4f}, "
        f"{best['params']:,} params)."
    ]
    for row in rows:
        if row["kind"] != "student" or row["params"] > best["params"]:
            continue
        margins = [row["test"][m] - best["test"][m] for m in FRONTIER_METRICS]
        clear = row["seeds"] > 1 and all(
            margin > 2 * row["test_std"][m] for margin, m in zip(margins, FRONTIER_METRICS)
        )
        verdict = (
            "beats it by more than 2 std on both"
            if clear
            else "above it on both, not by 2 std over " f"{row['seeds']} seed(s)"
            if all(m > 0 for m in margins)
            else "does not beat it"
        )
        lines.append(f"- {row['model']}: Δ recall@50 {margins[0]:+.4f}, Δ ndcg@50 {margins[1]:+.4f}: {verdict}.")
    return "\n".join(lines)


def plot_frontier(rows: Sequence[dict], path: Path, title: str) -> None:
    """Test Recall@50 against p50 latency at batch 1 (or parameters without latency), log scale: a marker per
    model, a line per student method and per direct model across sizes, the ensembles as horizontal ceilings.

    Args:
        rows: `frontier_rows`.
        path: the PNG file, written atomically.
        title: the figure's title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    use_latency = all(row["p50_ms"] is not None for row in rows if row["kind"] != "ensemble")
    cost = (lambda row: row["p50_ms"]) if use_latency else (lambda row: row["params"])
    figure, axes = plt.subplots(figsize=(7, 4.5))
    lines: dict[str, list[dict]] = {}
    for row in rows:
        if row["kind"] in ("student", "direct"):
            lines.setdefault(row["model"].rsplit(" d", 1)[0], []).append(row)
    for name, members in lines.items():
        members = sorted(members, key=lambda row: row["dim"])
        style = "-o" if members[0]["kind"] == "student" else "--s"
        axes.errorbar(
            [cost(r) for r in members],
            [r["test"]["recall@50"] for r in members],
            yerr=[r["test_std"]["recall@50"] for r in members],
            fmt=style,
            capsize=3,
            label=name,
        )
        for r in members:
            axes.annotate(
                f"d{r['dim']}",
                (cost(r), r["test"]["recall@50"]),
                textcoords="offset points",
                xytext=(4, -10),
                fontsize=7,
            )
    for row in rows:
        if row["kind"] == "teacher":
            axes.plot(cost(row), row["test"]["recall@50"], "k^", markersize=6)
            axes.annotate(
                row["model"].split(":", 1)[1],
                (cost(row), row["test"]["recall@50"]),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=7,
            )
        elif row["kind"] == "ensemble":
            axes.axhline(
                row["test"]["recall@50"],
                color="grey",
                linestyle=":" if row["model"] == ENSEMBLE else "-.",
                linewidth=1,
                label=f"{row['model']} (ceiling)",
            )
    axes.set_xscale("log")
    axes.set_xlabel("p50 latency at batch 1 (ms)" if use_latency else "parameters")
    axes.set_ylabel("test recall@50")
    axes.set_title(f"Quality vs serving cost, {title}")
    axes.grid(alpha=0.3, which="both")
    axes.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    with atomic_file(path) as temporary:
        figure.savefig(temporary, dpi=120)
    plt.close(figure)


def direct_record(method: str, dim: int, seed: int, run_dict: Mapping, code: str) -> dict:
    """A direct model's record in results.partial.json: its teacher run (`TeacherRun.to_dict`) at the key.

    Args:
        method: the run name (`direct_method`).
        dim: its embedding size.
        seed: its seed.
        run_dict: `TeacherRun.to_dict()`.
        code: the code version that trained it (`runs.code_version`).

    Returns:
        {"method", "dim", "seed", **run_dict, "code"}.
    """
    return {"method": method, "dim": dim, "seed": seed, **run_dict, "code": code}
