"""`hetcomp costmodel`: the measured cost model (`cost_model.cost_model`): epoch time, step memory, knowledge
storage, DKC update and serving latency at synthetic sizes, fitted as power laws and extrapolated to a target
size; JSON to --out (written after every size), a table on stdout."""

from __future__ import annotations

from hetcomp_tf.commands.options import add_profile_argument, add_set_argument, parse_list, profile_from_args
from hetcomp_tf.errors import HetCompError

DEFAULT_SIZES = "2000x5000,20000x25000,200000x100000"
DEFAULT_TARGET = "10000000x1000000"


def add_arguments(parser) -> None:
    add_profile_argument(parser)
    add_set_argument(parser)
    parser.add_argument("--sizes", default=DEFAULT_SIZES, metavar="UxI,UxI",
                        help=f"users x items of each measured size, comma-separated (default {DEFAULT_SIZES})")
    parser.add_argument("--target", default=DEFAULT_TARGET, metavar="UxI",
                        help=f"the size to extrapolate to (default {DEFAULT_TARGET})")
    parser.add_argument("--per-user", type=int, default=26, metavar="N",
                        help="interactions per user before the 60/20/20 split (default 26, CiteULike's mean)")
    parser.add_argument("--steps", type=int, default=8, help="timed training steps per size (default 8)")
    parser.add_argument("--out", required=True, metavar="FILE.json", help="output JSON file")


def _users_items(text: str) -> tuple[int, int]:
    users, sep, items = text.lower().partition("x")
    if not sep:
        raise ValueError(text)
    return int(users), int(items)


def run(args) -> int:
    profile = profile_from_args(args)
    pairs = parse_list(args.sizes, "--sizes", what="UxI size", convert=_users_items)
    try:
        target_pair = _users_items(args.target)
    except ValueError:
        raise HetCompError(f"--target: {args.target!r} is not a size like 10000000x1000000") from None
    if args.steps < 1:
        raise HetCompError(f"--steps {args.steps}: must be >= 1")

    from hetcomp_tf.bench.cost_model import COSTS, Size, cost_model
    from hetcomp_tf.util.tables import format_table

    sizes = [Size(users, items, args.per_user) for users, items in pairs]
    target = Size(*target_pair, args.per_user)
    result = cost_model(sizes, target, profile.distill, profile.trajectory, args.out, args.steps)
    columns = ["knowledge_build_seconds", *COSTS, "epoch_seconds"]
    rows = {f"{m['size']['users']} x {m['size']['items']}": m for m in result["measured"]}
    rows[f"{target.users} x {target.items} (fitted)"] = {c: f["at_target"] for c, f in result["fits"].items()}
    print(format_table(rows, columns, {c: ".3g" for c in columns}))
    return 0
