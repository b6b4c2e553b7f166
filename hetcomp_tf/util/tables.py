"""Result tables shared by the commands: metrics as an aligned text table or a Markdown one, and the one naming of
their rows (results.json's and the pipeline's "methods", the `teachers` table)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

ENSEMBLE = "ensemble"  # the teachers' equal-weight ensemble, beside "teacher:<T>" and "student:<method>"
ENSEMBLE_LABEL = "Ensemble"  # the `teachers` table, whose teacher rows are bare names
FITTED_ENSEMBLE_LABEL = "Ensemble-fitted"  # tau and teacher weights fitted on valid (beyond the paper)
FITTED_ENSEMBLE = "ensemble:fitted"  # its result row


def teacher_row(name: str) -> str:
    """The result row of a teacher.

    Args:
        name: the teacher's name.

    Returns:
        "teacher:<name>".
    """
    return f"teacher:{name}"


def student_row(method: str) -> str:
    """The result row of a student.

    Args:
        method: the distillation method.

    Returns:
        "student:<method>".
    """
    return f"student:{method}"


def teacher_label(name: str, run: Mapping) -> str:
    """A teacher's row name in a printed table, naming the epoch cap when that ended its training, not early
    stopping (`run`: its teachers.json entry or a row holding "ended_by" and "epochs"): "MF (capped at 6 epochs)".
    Such a teacher may not have converged."""
    return f"{name} (capped at {run['epochs']} epochs)" if run.get("ended_by") == "epoch cap" else name


def _cell(value, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec) if isinstance(value, float) else str(value)


def format_table(
    rows: Mapping[str, Mapping[str, float]], columns: Sequence[str], formats: Mapping[str, str] | None = None
) -> str:
    """An aligned text table: one line per row name, one column per key; a key a row lacks prints as "-".

    Args:
        rows: {row name: {column: value}}.
        columns: the columns, in order.
        formats: {column: format spec such as ".1f"} for floats, by default ".4f".

    Returns:
        The table's lines, joined by newlines.
    """
    specs = [(formats or {}).get(c, ".4f") for c in columns]
    header = ["", *columns]
    body = [[name, *(_cell(values.get(c), s) for c, s in zip(columns, specs))] for name, values in rows.items()]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = [header, ["-" * w for w in widths], *body]
    return "\n".join(
        "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths)))
        for line in lines
    )


def markdown_table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    """A GitHub-flavoured Markdown table of already formatted cells.

    Args:
        rows: the body's rows of cells.
        header: the header's cells.

    Returns:
        The table's lines, joined by newlines.
    """
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)
