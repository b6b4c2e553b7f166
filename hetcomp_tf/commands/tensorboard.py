"""`hetcomp tensorboard --out DIR`: TensorBoard on every run of a `hetcomp run` output directory (the six teachers
and the student), with the run names and paths its report.json recorded, on a loopback port by default."""

from __future__ import annotations

import json
import os
import shlex
import shutil
from pathlib import Path

from hetcomp_tf.errors import HetCompError


def add_arguments(parser) -> None:
    parser.add_argument("--out", required=True, metavar="DIR", help="the --out of a finished `hetcomp run`")
    parser.add_argument("--port", type=int, default=6006, help="TensorBoard's port (default 6006)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")


def logs_of(out: Path) -> dict:
    """{run name: event file directory} from OUT/report.json; a one-line error when there is none to show."""
    report_path = out / "report.json"
    try:
        logs = json.loads(report_path.read_text())["tensorboard_logs"]
    except (OSError, ValueError, KeyError):
        raise HetCompError(f"{report_path}: no readable report of a finished `hetcomp run --out {out}`") from None
    missing = [name for name, path in logs.items() if not Path(path).is_dir()]
    if missing:
        raise HetCompError(f"{report_path}: the logs of {', '.join(missing)} are gone ({logs[missing[0]]})")
    return logs


def run(args) -> int:
    from pipeline.report import tensorboard_command

    command = [*tensorboard_command(logs_of(Path(args.out))), "--host", args.host, "--port", str(args.port)]
    program = shutil.which(command[0])
    if program is None:
        raise HetCompError(f"{command[0]}: not found; install the project with `make install`")
    print(f"TensorBoard on http://{args.host}:{args.port} (Ctrl-C stops it): {shlex.join(command)}", flush=True)
    os.execv(program, command)  # this process becomes TensorBoard: signals and the exit code are its own
