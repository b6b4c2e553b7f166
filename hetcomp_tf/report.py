"""Result files and tables shared by the commands: JSON written atomically, metrics as an aligned table."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path


def write_json(path: str | os.PathLike, obj) -> Path:
    """Writes `obj` as indented JSON, atomically (see `write_text`)."""
    return write_text(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Writes `text` via a temporary file in the same directory and a rename, so a reader never sees a
    half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
    return path


def _cell(value, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec) if isinstance(value, float) else str(value)


def format_table(rows: Mapping[str, Mapping[str, float]], columns: Sequence[str],
                 formats: Mapping[str, str] | None = None) -> str:
    """One line per row name, one column per key; a key a row lacks prints as "-". Floats use
    `formats[column]` (a format spec such as ".1f"), by default ".4f"."""
    specs = [(formats or {}).get(c, ".4f") for c in columns]
    header = ["", *columns]
    body = [[name, *(_cell(values.get(c), s) for c, s in zip(columns, specs))] for name, values in rows.items()]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    lines = [header, ["-" * w for w in widths], *body]
    return "\n".join(
        "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths)))
        for line in lines)


def markdown_table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    """A GitHub-flavoured Markdown table of already formatted cells."""
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)
