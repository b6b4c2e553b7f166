"""The `hetcomp` command. Each subcommand lives in `hetcomp_tf/commands/<name>.py` with
`add_arguments(parser)` and `run(args) -> int`; modules are imported only when their command runs."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

from hetcomp_tf import __version__
from hetcomp_tf.errors import HetCompError

COMMANDS = {
    "teachers": "train the six teachers, export their trajectories and the ensemble's metrics",
    "distill": "distil the teachers' ensemble into an MF student (HetComp or a baseline)",
    "ensemble": "the teachers' ensemble, equal-weight and fitted on valid, evaluated again without training",
    "benchmark": "teachers once, then every distillation method over seeds and student sizes",
    "run": "run the TFX pipeline locally (as LocalDagRunner; --jobs N: teachers side by side)",
    "kubeflow": "compile the TFX pipeline to a Kubeflow Pipelines v2 spec",
    "serve": "serve the pushed SavedModel over TF Serving's gRPC (and REST) API, following new versions",
    "query": "query a TF Serving PredictionService for users' top-K items",
    "latency": "serving latency, params and memory of every model as deployed: teachers, ensemble, students",
    "data": "fetch CiteULike, or print a data set's sizes after filtering and split",
    "steptime": "seconds per training epoch of each distillation loss (the step micro-benchmark)",
    "costmodel": "measured costs at synthetic sizes, fitted and extrapolated (e.g. to 10 M users x 1 M items)",
    "doctor": "package versions, devices, where the data is, and a timed distillation step on each device",
    "tensorboard": "TensorBoard on the teachers' and the student's logs of a `hetcomp run` output directory",
}


class Parser(argparse.ArgumentParser):
    """A bad command line is one line on stderr, like every other error, rather than the usage plus the error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _module(name: str):
    return importlib.import_module(f"hetcomp_tf.commands.{name}")


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = Parser(prog="hetcomp", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"hetcomp {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:  # only the chosen command's module (and TensorFlow) is imported
            _module(name).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # TensorFlow's C++ start-up chatter (CUDA factory "E" lines on a CPU machine) and google-api-core's
    # Python-version FutureWarning are noise for a command-line user; real errors still raise.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", category=FutureWarning, module="google.api_core")
    args = build_parser(argv).parse_args(argv)
    try:
        return int(_module(args.command).run(args) or 0)
    except HetCompError as err:
        print(f"hetcomp: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hetcomp: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
