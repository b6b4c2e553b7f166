"""`hetcomp data fetch citeulike [--dir DIR]`: download CiteULike (sha256-checked) where `--data citeulike` finds it.
`hetcomp data info --data ...`: the sizes a run would train on, after the profile's filtering and split.
`hetcomp data snapshot --in users.dat --out snap.dat --fraction 0.8 [--seed S]`: an earlier snapshot of a users.dat
(each user's first 80 % after a seeded shuffle), to try retraining on new data (`hetcomp run --warm-start`)."""

from __future__ import annotations

from hetcomp_tf.commands.options import add_data_arguments, prepare_data, profile_from_args


def add_arguments(parser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    fetch = actions.add_parser(
        "fetch",
        help="download a public data set, kept only if its sha256 matches",
        description="download a public data set, kept only if its sha256 matches",
    )
    fetch.add_argument("name", choices=("citeulike",))
    fetch.add_argument(
        "--dir",
        default=None,
        metavar="DIR",
        help="data directory: writes DIR/citeulike/users.dat (default: $HETCOMP_DATA_DIR, else the "
        "user cache $XDG_CACHE_HOME/hetcomp or ~/.cache/hetcomp)",
    )
    info = actions.add_parser(
        "info",
        help="users, items and interactions per split, without training",
        description="users, items and interactions per split, without training",
    )
    add_data_arguments(info)
    snapshot = actions.add_parser(
        "snapshot",
        help="an earlier snapshot of a users.dat: each user's first share of items after a seeded shuffle",
        description="an earlier snapshot of a users.dat: each line keeps floor(FRACTION x N) of its N items, chosen "
        "by a shuffle seeded per line; smaller fractions keep subsets of larger ones",
    )
    snapshot.add_argument("--in", dest="source", required=True, metavar="PATH", help="a users.dat-format file")
    snapshot.add_argument("--out", required=True, metavar="PATH", help="the snapshot (written whole or not at all)")
    snapshot.add_argument(
        "--fraction", type=float, required=True, metavar="F", help="share of each user's items, in (0, 1]"
    )
    snapshot.add_argument("--seed", type=int, default=0)


def run(args) -> int:
    return {"fetch": fetch, "info": info, "snapshot": snapshot}[args.action](args)


def fetch(args) -> int:
    from pathlib import Path

    from hetcomp_tf.data.datafiles import CITEULIKE_FILE, CITEULIKE_SHA256, data_dirs, download_dir, fetch_citeulike
    from hetcomp_tf.util.files import sha256_of

    directory = Path(args.dir) if args.dir else download_dir()
    target = directory / CITEULIKE_FILE
    if target.is_file() and sha256_of(target) == CITEULIKE_SHA256:
        print(f"{target} is already there (sha256 matches)")
    else:
        print(fetch_citeulike(directory))
    if directory.absolute() not in [d.absolute() for d in data_dirs()]:
        print(f"--data citeulike finds it with: export HETCOMP_DATA_DIR={directory.absolute()}")
    return 0


def info(args) -> int:
    profile = profile_from_args(args)
    source = prepare_data(args)
    from hetcomp_tf.data.loading import load_dataset

    data = load_dataset(args.data, args.format, profile.data)
    cfg = profile.data
    ratios = "/".join(f"{r * 100:g}" for r in cfg.split_ratios)
    kept = f", ratings >= {cfg.min_rating:g}" if cfg.min_rating is not None else ""
    print(
        f"{data.name} after the {profile.name} profile's filtering (users with >= {cfg.min_user_interactions} "
        f"interactions{kept}) and {ratios} split ({cfg.split_protocol} protocol, seed {cfg.seed}), from "
        f"{source or 'the built-in generator'}:"
    )
    total = data.train.nnz + data.valid.nnz + data.test.nnz
    evaluated = int(((data.valid.lengths() > 0) & (data.test.lengths() > 0)).sum())
    rows = [
        ("users", data.n_users),
        ("evaluated", evaluated),
        ("items", data.n_items),
        ("train", data.train.nnz),
        ("valid", data.valid.nnz),
        ("test", data.test.nnz),
        ("interactions", total),
    ]
    for name, value in rows:
        print(f"  {name:<13}{value:>10,}")
    print(f"  {'density':<13}{total / (data.n_users * data.n_items):>10.4%}")
    return 0


def snapshot(args) -> int:
    from hetcomp_tf.data.readers import write_snapshot

    print(write_snapshot(args.source, args.out, args.fraction, args.seed))
    return 0
