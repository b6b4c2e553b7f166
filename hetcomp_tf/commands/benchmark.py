"""`hetcomp benchmark`: the teachers once (or reused from --out), then every distillation method over seeds and
student sizes; results.json, curves.png and a printed table (see hetcomp_tf/benchmark.py for the layout)."""

from __future__ import annotations

from hetcomp_tf.distill import METHODS, get_method
from hetcomp_tf.errors import HetCompError


def add_arguments(parser) -> None:
    parser.add_argument("--data", required=True,
                        help="'synthetic', 'citeulike' ($HETCOMP_DATA_DIR/citeulike/users.dat) or a data file path")
    parser.add_argument("--format", default=None, help="format of a --data path: citeulike, csv or npz")
    parser.add_argument("--profile", default="paper", help="tiny (CI, seconds) or paper (default)")
    parser.add_argument("--seeds", type=int, default=3, help="student seeds 0..N-1 per method (default 3)")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"comma-separated subset of {','.join(METHODS)} (default: all)")
    parser.add_argument("--student-dims", default=None, metavar="D,D,...",
                        help="student sizes swept for wo_kd, ensemble_kd and hetcomp (default: the profile's)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a DistillConfig field of the profile for every run (repeatable), e.g. "
                             "--set epochs=100; method and seed come from --methods and --seeds")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="runs trained at a time, each in its own process with cores/N threads (default 1: "
                             "one run at a time with per-epoch progress)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory (teachers are reused from it)")


def _names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    for name in names:
        get_method(name)
    if not names or len(set(names)) != len(names):
        raise HetCompError(f"--methods: {text!r} must name each method at most once and at least one")
    return names


def _dims(text: str | None, default: tuple[int, ...]) -> list[int]:
    if text is None:
        return list(default)
    try:
        dims = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise HetCompError(f"--student-dims: {text!r} is not a comma-separated list of integers") from None
    if not dims or min(dims) < 1:
        raise HetCompError(f"--student-dims: {text!r} must list positive sizes")
    return dims


def run(args) -> int:
    import dataclasses

    from hetcomp_tf.benchmark import results_table, run_benchmark, sweep_table
    from hetcomp_tf.config import get_profile, override

    profile = get_profile(args.profile)
    profile = dataclasses.replace(profile, distill=override(profile.distill, args.set, forbidden=("method", "seed")))
    methods = _names(args.methods)
    dims = _dims(args.student_dims, profile.student_dims)
    results = run_benchmark(args.data, args.format, profile, args.seeds, methods, dims, args.out, jobs=args.jobs)
    print(f"Test metrics on {results['dataset']['name']} ({profile.name} profile, students of dim "
          f"{results['student_dim']}, mean over {results['seeds']} seeds; ensemble params "
          f"{results['ensemble_params']}), results in {args.out}:")
    print(results_table(results))
    print("\nStudent size sweep (test, mean over seeds):")
    print(sweep_table(results))
    print(f"\nwall time {results['wall_seconds']:.0f}s")
    return 0
