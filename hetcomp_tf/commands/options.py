"""The options several commands share, defined once: the data (--data, --format, --min-rating), --profile, --set
overrides, comma-separated lists and the pipeline's settings. Nothing here imports TensorFlow at module level, so a
command line is parsed, and its data located or fetched, before the heavy imports."""

from __future__ import annotations

import dataclasses
import glob
from pathlib import Path

from hetcomp_tf.config import (
    DEFAULT_PROFILE,
    PROFILES,
    RUN_FIELDS,
    SPLIT_PROTOCOLS,
    TEACHER_NAMES,
    Profile,
    data_options,
    get_profile,
    override,
)
from hetcomp_tf.data.datafiles import FORMATS, locate
from hetcomp_tf.errors import HetCompError


def add_profile_argument(parser) -> None:
    parser.add_argument(
        "--profile",
        default=DEFAULT_PROFILE,
        choices=tuple(PROFILES),
        help=f"sizes, epochs and schedules (default {DEFAULT_PROFILE}: a first run in minutes; "
        "paper: the paper's setup; tiny: CI on synthetic data)",
    )


def add_data_arguments(parser) -> None:
    parser.add_argument(
        "--data",
        default="citeulike",
        help="'citeulike' (default; found in $HETCOMP_DATA_DIR, ../shared/datasets or the user cache, "
        "else downloaded there), 'synthetic', or a users.dat / CSV / TSV / .npz path",
    )
    parser.add_argument("--format", choices=FORMATS, help="format of a --data path (default: from its suffix)")
    parser.add_argument(
        "--min-rating",
        type=float,
        default=None,
        metavar="X",
        help="a CSV with ratings: only ratings >= X count as interactions (default: every row)",
    )
    parser.add_argument(
        "--split-protocol",
        choices=SPLIT_PROTOCOLS,
        default=None,
        help="the profile's split protocol replaced: per_user splits each user on its own (`hetcomp "
        "run` then ingests with Beam, and --data may be a glob of CSV/TSV shards)",
    )
    add_profile_argument(parser)


def add_set_argument(parser) -> None:
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a DistillConfig field of the profile (repeatable; typed, e.g. --set epochs=100 "
        "--set tau=5.0 --set jit_compile=true)",
    )


def add_teachers_argument(parser, role: str = "to train") -> None:
    """--teachers: which teachers (`parse_list` it against TEACHER_NAMES); `role` says what for, in its help."""
    parser.add_argument(
        "--teachers",
        default=",".join(TEACHER_NAMES),
        metavar="T,T,...",
        help=f"the teachers {role}: a comma-separated subset of {','.join(TEACHER_NAMES)} (default: all)",
    )


def add_jobs_argument(parser, help: str) -> None:
    """--jobs N: how many runs or components at a time (`checked_jobs` checks it); `help` says of what."""
    parser.add_argument("--jobs", type=int, default=1, metavar="N", help=help)


def checked_jobs(args) -> int:
    """--jobs, or a one-line error if it is below 1."""
    if args.jobs < 1:
        raise HetCompError(f"--jobs {args.jobs}: must be >= 1")
    return args.jobs


def profile_from_args(args) -> Profile:
    """The --profile with --min-rating, --split-protocol and --set applied (when the command has them)."""
    profile = get_profile(args.profile)
    data = data_options(profile.data, getattr(args, "min_rating", None), getattr(args, "split_protocol", None))
    return dataclasses.replace(
        profile, data=data, distill=override(profile.distill, getattr(args, "set", []), RUN_FIELDS)
    )


def prepare_data(args, shards: bool = False) -> Path | None:
    """The file --data names, CiteULike fetched if need be, before a command imports TensorFlow: missing data or
    no network is a one-line error within seconds, not after a minute of start-up. With `shards` (the pipeline's
    Beam ingestion) --data may be a glob, which must match something (None is returned)."""
    if shards and glob.has_magic(args.data):
        if not glob.glob(args.data):
            raise HetCompError(f"data {args.data!r}: no file matches")
        return None
    return locate(args.data)


def parse_list(text: str, option: str, choices=None, what: str = "value", convert=str) -> list:
    """ "a, b,c" -> ["a", "b", "c"] (`convert`=int: positive ints); at least one entry, none twice, each one of
    `choices` when given."""
    try:
        values = [convert(part.strip()) for part in text.split(",") if part.strip()]
    except ValueError:
        raise HetCompError(f"{option}: {text!r} is not a comma-separated list of {what}s") from None
    unknown = [value for value in values if choices is not None and value not in choices]
    if unknown:
        raise HetCompError(f"{option}: unknown {what} {unknown[0]!r}; choose from {','.join(choices)}")
    if not values or len(set(values)) != len(values) or (convert is int and min(values) < 1):
        positive = "positive " if convert is int else ""
        raise HetCompError(f"{option}: {text!r} must list {positive}{what}s, each at most once and at least one")
    return values


def optional_float(text, option: str) -> float | None:
    """A bound given as a number, or "none" for no bound."""
    if text is None or str(text).strip().lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise HetCompError(f"{option}: {text!r} is neither a number nor 'none'") from None


def add_pipeline_arguments(parser) -> None:
    """What `hetcomp run` and `hetcomp kubeflow` train, on which data."""
    from pipeline.configs import DEFAULT_CHANGE_RELATIVE, DEFAULT_MIN_SHARE

    add_data_arguments(parser)
    parser.add_argument(
        "--method",
        default="hetcomp",
        help="distillation method: hetcomp (default), an ablation or a baseline "
        "(`hetcomp distill --help` lists them)",
    )
    add_teachers_argument(parser)
    parser.add_argument(
        "--min-share",
        type=float,
        metavar="X",
        help="bless the student when its valid Recall@50 >= X * that of the ensemble it distils (the fitted one for "
        "targets=fitted) "
        f"(default per profile: {DEFAULT_MIN_SHARE})",
    )
    change = (
        "against the served (latest blessed) model, bless only if the valid Recall@50 change {} >= {} "
        "(TFMA's change threshold; 'none': no bound; default {})"
    )
    parser.add_argument(
        "--change-relative",
        default=str(DEFAULT_CHANGE_RELATIVE),
        metavar="R",
        help=change.format("(candidate - served) / served", "R", DEFAULT_CHANGE_RELATIVE),
    )
    parser.add_argument(
        "--change-absolute", default=None, metavar="A", help=change.format("candidate - served", "A", "none")
    )
    add_set_argument(parser)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--beam-knowledge",
        action="store_true",
        help="build the ensemble knowledge as a Beam pipeline (sharded per-user examples, each worker "
        "reading only its users' rows of the trajectories) instead of in memory",
    )
    parser.add_argument(
        "--beam-arg",
        action="append",
        default=[],
        metavar="--OPTION=VALUE",
        help="a Beam pipeline option for the Beam steps, after the DirectRunner defaults, which it "
        "overrides (repeatable, with '=': --beam-arg=--runner=DataflowRunner)",
    )


def pipeline_config(args, out_dir: str, **locations):
    from pipeline.configs import PipelineConfig

    teachers = parse_list(args.teachers, "--teachers", TEACHER_NAMES, "teacher")
    return PipelineConfig(
        out_dir=out_dir,
        data=args.data,
        data_format=args.format,
        min_rating=args.min_rating,
        split_protocol=args.split_protocol,
        beam_pipeline_args=tuple(args.beam_arg),
        beam_knowledge=args.beam_knowledge,
        profile=args.profile,
        method=args.method,
        teachers=tuple(teachers),
        distill_set=tuple(args.set),
        min_share_of_ensemble=args.min_share,
        seed=args.seed,
        change_relative=optional_float(args.change_relative, "--change-relative"),
        change_absolute=optional_float(args.change_absolute, "--change-absolute"),
        **locations,
    )
