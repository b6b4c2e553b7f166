"""`hetcomp steptime`: the step micro-benchmark (`step_timing.time_methods`): seconds per epoch of each
distillation loss at the profile's student protocol on the data's real shapes; JSON to --out, a table on stdout."""

from __future__ import annotations

from hetcomp_tf.step_timing import TIMED_METHODS


def add_arguments(parser) -> None:
    parser.add_argument("--data", required=True,
                        help="'synthetic', 'citeulike' ($HETCOMP_DATA_DIR/citeulike/users.dat) or a data file path")
    parser.add_argument("--format", default=None, help="format of a --data path: citeulike, csv or npz")
    parser.add_argument("--profile", default="paper", help="tiny (CI, seconds) or paper (default)")
    parser.add_argument("--methods", default=",".join(TIMED_METHODS), help="comma-separated methods to time")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per method (after one untimed)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a DistillConfig field of the profile (repeatable)")
    parser.add_argument("--out", required=True, metavar="FILE.json", help="output JSON file")


def run(args) -> int:
    import os

    import tensorflow as tf

    from hetcomp_tf.config import get_profile, override
    from hetcomp_tf.data import load_dataset
    from hetcomp_tf.distill import get_method
    from hetcomp_tf.errors import HetCompError
    from hetcomp_tf.report import format_table, write_json
    from hetcomp_tf.step_timing import time_methods

    profile = get_profile(args.profile)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for method in methods:
        get_method(method)
    if args.epochs < 1:
        raise HetCompError(f"--epochs {args.epochs}: must be >= 1")
    cfg = override(profile.distill, args.set)
    data = load_dataset(args.data, args.format, profile.data)
    results = time_methods(data, cfg, profile.trajectory, methods, args.epochs)
    results.update(profile=profile.name, data=data.name, sizes=data.sizes(), student_dim=cfg.student_dim,
                   batching=cfg.batching, batch_size=cfg.batch_size, jit_compile=cfg.jit_compile,
                   threads=tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count())
    write_json(args.out, results)
    rows = {m: {"s/epoch": results[m]["epoch_seconds"]} for m in methods}
    print(f"{data.name}, {profile.name} profile: {results['steps_per_epoch']} steps/epoch of "
          f"{results['users_per_step']:.0f} users, dim {cfg.student_dim}")
    print(format_table(rows, ["s/epoch"], {"s/epoch": ".2f"}))
    return 0
