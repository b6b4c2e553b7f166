"""`hetcomp steptime`: the step micro-benchmark (`step_timing.time_methods`): seconds per epoch of each
distillation loss at the profile's student protocol on the data's real shapes; JSON to --out, a table on stdout."""

from __future__ import annotations

from hetcomp_tf.commands.options import (add_data_arguments, add_set_argument, parse_list, prepare_data,
                                         profile_from_args)
from hetcomp_tf.errors import HetCompError

TIMED_METHODS = ("wo_kd", "ensemble_kd", "rrd", "dcd", "hetcomp_no_adt")  # no_adt: HetComp's set-wise loss


def add_arguments(parser) -> None:
    add_data_arguments(parser)
    add_set_argument(parser)
    parser.add_argument("--methods", default=",".join(TIMED_METHODS), help="comma-separated methods to time")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per method (after one untimed)")
    parser.add_argument("--out", required=True, metavar="FILE.json", help="output JSON file")


def run(args) -> int:
    profile = profile_from_args(args)
    if args.epochs < 1:
        raise HetCompError(f"--epochs {args.epochs}: must be >= 1")
    prepare_data(args)

    import os

    import tensorflow as tf

    from hetcomp_tf.data.loading import load_dataset
    from hetcomp_tf.distill.methods import METHODS
    from hetcomp_tf.util.files import write_json
    from hetcomp_tf.util.tables import format_table
    from hetcomp_tf.bench.step_timing import time_methods

    methods = parse_list(args.methods, "--methods", choices=tuple(METHODS), what="method")
    cfg = profile.distill
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
