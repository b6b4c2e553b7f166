"""The command line's one vocabulary: the same data options, profile default and --set on every command that has
them, one comma-list parser, one-line errors for a bad command line, and `hetcomp --version`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hetcomp_tf import __version__
from hetcomp_tf.cli import build_parser, main
from hetcomp_tf.commands.options import parse_list, profile_from_args
from hetcomp_tf.config import DEFAULT_PROFILE
from hetcomp_tf.errors import HetCompError

REPO = Path(__file__).resolve().parents[1]
DATA_COMMANDS = {
    "teachers": ["--out", "o"],
    "benchmark": ["--out", "o"],
    "run": ["--out", "o"],
    "kubeflow": ["--out", "o.json", "--image", "i"],
    "latency": ["--out", "o.json"],
    "data": ["info"],
}
SET_COMMANDS = {
    "distill": ["--teachers-dir", "t", "--out", "o"],
    "benchmark": ["--out", "o"],
    "run": ["--out", "o"],
    "kubeflow": ["--out", "o.json", "--image", "i"],
    "doctor": [],
}


def parse(command: str, extra: list[str]):
    argv = [command, *extra]
    return build_parser(argv).parse_args(argv)


@pytest.mark.parametrize("command", DATA_COMMANDS)
def test_every_data_command_takes_the_same_data_options(command):
    base = DATA_COMMANDS[command]
    defaults = parse(command, base)
    assert (defaults.data, defaults.format, defaults.min_rating, defaults.profile) == (
        "citeulike",
        None,
        None,
        DEFAULT_PROFILE,
    )
    args = parse(
        command,
        [
            *base,
            "--data",
            "r.csv",
            "--format",
            "csv",
            "--min-rating",
            "4",
            "--profile",
            "tiny",
            "--split-protocol",
            "per_user",
        ],
    )
    assert (args.data, args.format, args.min_rating, args.profile) == ("r.csv", "csv", 4.0, "tiny")
    assert (profile_from_args(args).data.min_rating, profile_from_args(args).data.split_protocol) == (4.0, "per_user")
    assert profile_from_args(parse(command, [*base, "--profile", "paper"])).data.split_protocol == "authors"


@pytest.mark.parametrize("command", SET_COMMANDS)
def test_every_command_with_overrides_takes_typed_set(command):
    args = parse(command, [*SET_COMMANDS[command], "--set", "epochs=7", "--set", "tau=2", "--profile", "tiny"])
    distill = profile_from_args(args).distill
    assert (distill.epochs, distill.tau) == (7, 2.0) and isinstance(distill.tau, float)
    optional = parse(command, [*SET_COMMANDS[command], "--set", "dcd_ucd_epsilon=1", "--set", "dcd_ucd_epsilon=0.001"])
    assert profile_from_args(optional).distill.dcd_ucd_epsilon == 0.001  # an optional float, the last --set wins
    unset = parse(command, [*SET_COMMANDS[command], "--set", "dcd_ucd_epsilon=1", "--set", "dcd_ucd_epsilon=none"])
    assert profile_from_args(unset).distill.dcd_ucd_epsilon is None
    with pytest.raises(HetCompError, match="dcd_ucd_epsilon takes a float or none, got 'small'"):
        profile_from_args(parse(command, [*SET_COMMANDS[command], "--set", "dcd_ucd_epsilon=small"]))
    assert parse(command, SET_COMMANDS[command]).profile == DEFAULT_PROFILE
    with pytest.raises(HetCompError, match="--set 'seed=1': expected FIELD=VALUE"):
        profile_from_args(parse(command, [*SET_COMMANDS[command], "--set", "seed=1"]))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["teachers", "--out", "o", "--profile", "huge"], "argument --profile: invalid choice: 'huge'"),
        (["run", "--out", "o", "--format", "parquet"], "argument --format: invalid choice: 'parquet'"),
        (["benchmark", "--out", "o", "--min-rating", "four"], "argument --min-rating: invalid float value: 'four'"),
        (["run", "--out", "o", "--distill-set", "epochs=3"], "unrecognized arguments: --distill-set"),
        (["data", "fetch", "movielens"], "argument name: invalid choice: 'movielens'"),
    ],
)
def test_a_bad_command_line_is_one_line_and_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1 and message in err[0], err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["data", "info", "--data", "logs/*.csv"], "is a glob: sharded data is read only by the pipeline's Beam"),
        (["run", "--out", "o", "--data", "nowhere/*.csv", "--split-protocol", "per_user"], "no file matches"),
    ],
)
def test_a_glob_is_for_the_pipelines_beam_ingestion_only(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "part-0.csv").write_text("u1,i1\n")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_version():
    done = subprocess.run(
        [sys.executable, "-m", "hetcomp_tf.cli", "--version"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.strip() == f"hetcomp {__version__}"


@pytest.mark.parametrize(
    "text, kwargs, expected",
    [
        ("MF, ML,GNN", {"choices": ("MF", "ML", "GNN")}, ["MF", "ML", "GNN"]),
        ("8,16", {"convert": int}, [8, 16]),
    ],
)
def test_parse_list(text, kwargs, expected):
    assert parse_list(text, "--x", **kwargs) == expected


@pytest.mark.parametrize(
    "text, kwargs, message",
    [
        ("MF,XX", {"choices": ("MF", "ML"), "what": "teacher"}, "--x: unknown teacher 'XX'; choose from MF,ML"),
        ("MF,MF", {}, "each at most once"),
        (" , ", {}, "at least one"),
        ("8,x", {"convert": int, "what": "size"}, "--x: '8,x' is not a comma-separated list of sizes"),
        ("8,0", {"convert": int, "what": "size"}, "must list positive sizes"),
    ],
)
def test_parse_list_rejects(text, kwargs, message):
    with pytest.raises(HetCompError, match=message):
        parse_list(text, "--x", **kwargs)


def test_data_snapshot_writes_the_file_or_fails_in_one_line(tmp_path, capsys):
    source = tmp_path / "users.dat"
    source.write_text("5 1 2 3 4 5\n2 1 9\n")
    assert main(["data", "snapshot", "--in", str(source), "--out", str(tmp_path / "s.dat"), "--fraction", "0.8"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "s.dat")
    assert [line.split()[0] for line in (tmp_path / "s.dat").read_text().splitlines()] == ["4", "1"]
    assert (
        main(
            [
                "data",
                "snapshot",
                "--in",
                str(tmp_path / "none.dat"),
                "--out",
                str(tmp_path / "t.dat"),
                "--fraction",
                "0.5",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "none.dat does not exist" in err[0] and not (tmp_path / "t.dat").exists()
