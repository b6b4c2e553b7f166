"""Where `--data citeulike` is found, and its download: the real code against an http.server on 127.0.0.1 (a good
copy is kept, a bad one leaves nothing behind), and offline a one-line error within seconds, before TensorFlow."""

from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import portpicker
import pytest

from hetcomp_tf.cli import main
from hetcomp_tf.config import get_profile
from hetcomp_tf.data import datafiles
from hetcomp_tf.data.loading import load_dataset
from hetcomp_tf.errors import HetCompError

REPO = Path(__file__).resolve().parents[1]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def origin(tmp_path_factory, citeulike_path):
    """http://127.0.0.1:PORT/ serving good/users.dat (a copy of CiteULike) and bad/users.dat (one byte changed)."""
    root = tmp_path_factory.mktemp("origin")
    for name in ("good", "bad"):
        (root / name).mkdir()
    shutil.copy(citeulike_path, root / "good" / "users.dat")
    data = bytearray(citeulike_path.read_bytes())
    data[-2] = ord("0") if data[-2] != ord("0") else ord("1")
    (root / "bad" / "users.dat").write_bytes(bytes(data))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=root))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def nowhere(tmp_path, monkeypatch):
    """No CiteULike anywhere: no $HETCOMP_DATA_DIR, no shared copy, an empty user cache under tmp_path."""
    monkeypatch.delenv("HETCOMP_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(datafiles, "shared_data_dir", lambda: tmp_path / "shared")
    return tmp_path


def refused_url() -> str:
    """A loopback URL nothing listens on."""
    return f"http://127.0.0.1:{portpicker.pick_unused_port()}/users.dat"


def place(directory: Path) -> Path:
    (directory / "citeulike").mkdir(parents=True)
    (directory / "citeulike" / "users.dat").write_text("1 1\n")
    return directory / "citeulike" / "users.dat"


def test_citeulike_is_looked_for_in_the_data_dir_then_shared_then_the_cache(nowhere, monkeypatch):
    assert datafiles.find_citeulike() is None and datafiles.download_dir() == nowhere / "cache" / "hetcomp"
    cached = place(nowhere / "cache" / "hetcomp")
    assert datafiles.find_citeulike() == cached
    shared = place(nowhere / "shared")
    assert datafiles.find_citeulike() == shared
    monkeypatch.setenv("HETCOMP_DATA_DIR", str(nowhere / "mine"))
    assert datafiles.find_citeulike() == shared and datafiles.download_dir() == nowhere / "mine"
    mine = place(nowhere / "mine")
    assert datafiles.find_citeulike() == mine


def test_missing_citeulike_is_downloaded_into_the_cache_and_kept(nowhere, origin, monkeypatch, capsys):
    monkeypatch.setattr(datafiles, "CITEULIKE_URL", f"{origin}/good/users.dat")
    data = load_dataset("citeulike", None, get_profile("tiny").data)
    target = nowhere / "cache" / "hetcomp" / "citeulike" / "users.dat"
    assert datafiles.sha256_of(target) == datafiles.CITEULIKE_SHA256
    assert data.name == "citeulike" and data.n_users > 4000
    assert sorted(p.name for p in target.parent.iterdir()) == ["users.dat"]  # no temporary file left
    err = capsys.readouterr().err
    assert f"downloading CiteULike users.dat (0.8 MB) from {origin}/good/users.dat" in err
    assert "sha256 matches" in err
    load_dataset("citeulike", None, get_profile("tiny").data)  # found now: no second download
    assert "downloading" not in capsys.readouterr().err


def test_a_download_with_the_wrong_sha256_leaves_nothing(nowhere, origin):
    with pytest.raises(HetCompError, match="differs from the expected CiteULike sha256"):
        datafiles.fetch_citeulike(nowhere / "dest", url=f"{origin}/bad/users.dat")
    assert not (nowhere / "dest").exists()
    with pytest.raises(HetCompError, match="could not download CiteULike .*404"):
        datafiles.fetch_citeulike(nowhere / "dest", url=f"{origin}/absent/users.dat")
    assert not (nowhere / "dest").exists()


def test_data_fetch_command_downloads_once_and_says_where(nowhere, origin, monkeypatch, capsys):
    monkeypatch.setattr(datafiles, "CITEULIKE_URL", f"{origin}/good/users.dat")
    assert main(["data", "fetch", "citeulike", "--dir", str(nowhere / "mine")]) == 0
    out = capsys.readouterr().out
    assert str(nowhere / "mine" / "citeulike" / "users.dat") in out
    assert f"export HETCOMP_DATA_DIR={nowhere / 'mine'}" in out
    assert main(["data", "fetch", "citeulike", "--dir", str(nowhere / "mine")]) == 0
    captured = capsys.readouterr()
    assert "already there" in captured.out and "downloading" not in captured.err


def test_data_info_prints_the_sizes_after_filtering_and_split(capsys):
    assert main(["data", "info", "--data", "synthetic", "--profile", "tiny"]) == 0
    out = capsys.readouterr().out
    data = load_dataset("synthetic", None, get_profile("tiny").data)
    numbers = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:]}
    assert numbers["users"] == f"{data.n_users:,}" and numbers["items"] == f"{data.n_items:,}"
    assert [numbers[s] for s in ("train", "valid", "test")] == [
        f"{data.split(s).nnz:,}" for s in ("train", "valid", "test")
    ]
    total = data.train.nnz + data.valid.nnz + data.test.nnz
    assert numbers["density"] == f"{total / (data.n_users * data.n_items):.4%}"
    evaluated = ((data.valid.lengths() > 0) & (data.test.lengths() > 0)).sum()
    assert numbers["evaluated"] == f"{evaluated:,}" and "(iterative protocol, seed 0)" in out.splitlines()[0]


def test_offline_the_run_command_fails_in_one_line_before_tensorflow(nowhere):
    """`hetcomp run` (CiteULike by default) in a fresh interpreter whose only CiteULike origin refuses connections."""
    url = refused_url()
    script = (
        f"import sys, pathlib; from hetcomp_tf.data import datafiles; datafiles.CITEULIKE_URL = {url!r}; "
        f"datafiles.shared_data_dir = lambda: pathlib.Path({str(nowhere / 'shared')!r}); "
        "from hetcomp_tf.cli import main; code = main(sys.argv[1:]); "
        "heavy = sorted({'tensorflow', 'tfx'} & set(sys.modules)); "
        "print('imported:', heavy, file=sys.stderr) if heavy else None; sys.exit(code)"
    )
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", script, "run", "--out", str(nowhere / "out")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "XDG_CACHE_HOME": str(nowhere / "cache")},
    )
    seconds = time.perf_counter() - start
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("hetcomp: error: could not download CiteULike from " + url)
    assert "hetcomp data fetch citeulike" in lines[0]
    assert seconds < 5, f"{seconds:.1f}s to the error"
    assert not (nowhere / "out").exists() and not (nowhere / "cache").exists()


def test_connection_refused_is_the_one_line_error(nowhere):
    with pytest.raises(HetCompError) as err:
        datafiles.fetch_citeulike(nowhere / "dest", url=refused_url())
    assert "Connection refused" in str(err.value) and "hetcomp data fetch citeulike" in str(err.value)
    assert not (nowhere / "dest").exists()


def test_an_unwritable_data_dir_is_one_line(nowhere, origin):
    (nowhere / "file").write_text("not a directory")
    with pytest.raises(HetCompError, match=r"cannot write CiteULike to .*file/data/citeulike: Not a directory"):
        datafiles.fetch_citeulike(nowhere / "file" / "data", url=f"{origin}/good/users.dat")
    assert (nowhere / "file").read_text() == "not a directory"
