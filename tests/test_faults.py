"""Faults really caused, not mocked: a filesystem that fills up (a tmpfs of a few MB mounted for the test, where
mounting works, else a file-size limit, RLIMIT_FSIZE, which fails a write with EFBIG the same way) under the
library's atomic writes, the Pusher and a whole `hetcomp run`; and a push killed with SIGKILL half-way through
copying a file. Each checks what is left on disk: whole versions and artifacts or nothing, and that the next run
completes once space is back.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from components.pusher import executor as pusher
from hetcomp_tf.config import get_profile
from hetcomp_tf.data.readers import make_synthetic
from hetcomp_tf.data.split import split_dataset
from hetcomp_tf.distill.student import Student
from hetcomp_tf.errors import HetCompError
from hetcomp_tf.util import files
from serving.export import export_model

pytestmark = pytest.mark.slow  # end to end (training, processes, servers): `make test`, not `make check`

REPO = Path(__file__).resolve().parents[1]
MiB = 1 << 20
PROCESS_SECONDS = 600


@contextlib.contextmanager
def small_filesystem(path: Path, size: int):
    """A tmpfs of `size` bytes mounted at `path` for the block (unmounted after); the test is skipped, saying why,
    where mounting is not allowed (not root, no CAP_SYS_ADMIN in a container)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True, timeout=30
    )
    if mounted.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({mounted.stderr.strip() or 'mount failed'}); "
            "the file-size-limit variant covers the same fault"
        )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True, timeout=30)


def resize(path: Path, size: int) -> None:
    """Grows (frees space on) the tmpfs mounted at `path`."""
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True, timeout=30)


def fill(path: Path) -> Path:
    """Writes zeros into path/filler until the filesystem is full; returns the filler (delete it to free space)."""
    filler = path / "filler"
    with open(filler, "wb") as f:
        with contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 65536)
                f.flush()
    return filler


def numeric_versions(base: Path) -> list[str]:
    """What TF Serving would load from `base`: its all-digit directory names."""
    return sorted(name for name in os.listdir(base) if name.isdigit()) if base.exists() else []


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory) -> Path:
    """A real exported student SavedModel (its largest file ~200 KB)."""
    data = split_dataset(make_synthetic(300, 20_000, 0), get_profile("tiny").data, "synthetic")
    path = tmp_path_factory.mktemp("model") / "saved_model"
    export_model(Student(data.n_users, data.n_items, 20, seed=0), data, str(path))
    return path


def push(model: Path, base: Path, *extra: str, stdout=subprocess.PIPE) -> subprocess.Popen:
    """tests/fault_push.py in a process of its own."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.fault_push", str(model), str(base), *extra],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"},
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(process: subprocess.Popen) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `process` (TensorFlow's and TFX's imports take a while on a busy machine)."""
    out, err = process.communicate(timeout=PROCESS_SECONDS)
    return process.returncode, out, err


def the_biggest_file(model: Path) -> Path:
    return max((p for p in model.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def assert_only_whole_versions(base: Path, model: Path, expected: int) -> None:
    versions = numeric_versions(base)
    assert len(versions) == expected, os.listdir(base)
    for version in versions:
        assert pusher.same_tree(str(model), str(base / version))
        assert "score_items" in tf.saved_model.load(str(base / version)).signatures


# ------------------------------------------------------------------------------------------------ full disk


@pytest.mark.parametrize("mechanism", ["tmpfs", "fsize"])
def test_a_push_that_runs_out_of_space_publishes_nothing_and_the_next_one_a_whole_version(
    tmp_path, saved_model, mechanism
):
    model_bytes = files.directory_bytes(saved_model)
    biggest = the_biggest_file(saved_model).stat().st_size
    assert biggest > 100_000  # the limits below land in the middle of this file's copy
    if mechanism == "tmpfs":
        disk = tmp_path / "disk"
        stack = contextlib.ExitStack()
        stack.enter_context(small_filesystem(disk, model_bytes // 2))
        base, limit = disk / "serving", ()
    else:
        stack, base, limit = contextlib.nullcontext(), tmp_path / "serving", ("--fsize", str(biggest // 2))
    with stack:
        code, _, stderr = finished(push(saved_model, base, *limit))
        assert code != 0
        expected = "No space left on device" if mechanism == "tmpfs" else "File too large"
        assert expected in stderr.splitlines()[-1], stderr[-2000:]
        assert os.listdir(base) == []  # no version, no stage: the copy's directory was removed

        if mechanism == "tmpfs":
            resize(disk, 4 * model_bytes)
        code, out, stderr = finished(push(saved_model, base))
        assert code == 0, stderr[-2000:]
        assert_only_whole_versions(base, saved_model, expected=1)
        assert os.listdir(base) == [out.split()[-1]]


def test_an_atomic_write_that_runs_out_of_space_names_its_target_and_leaves_nothing(tmp_path):
    with small_filesystem(tmp_path / "disk", 256 * 1024) as disk:
        files.write_json(disk / "kept.json", {"old": True})
        with pytest.raises(HetCompError) as raised:
            files.write_text(disk / "kept.json", "x" * 1024 * 1024)
        assert str(raised.value).startswith(f"{disk / 'kept.json'}: No space left on device (ENOSPC)")
        assert "\n" not in str(raised.value)
        assert os.listdir(disk) == ["kept.json"] and files.read_json(disk / "kept.json") == {"old": True}
        with pytest.raises(HetCompError, match=r"arrays: No space left on device \(ENOSPC\)"):
            files.write_manifest_dir(disk / "arrays", "manifest.json", {"a": np.zeros(MiB // 4, np.float32)}, {})
        assert os.listdir(disk) == ["kept.json"]


def test_the_writers_of_tensorflow_and_sqlite_running_out_of_space_are_told_the_same_way(tmp_path):
    """The errors TensorFlow's file system and SQLite (ML Metadata's store) raise on a full disk carry no errno:
    they are recognised by the OS's message, and the file is the one TensorFlow names or, for SQLite, the store."""
    with small_filesystem(tmp_path / "disk", 256 * 1024) as disk:
        with pytest.raises(tf.errors.ResourceExhaustedError) as raised:
            with tf.io.gfile.GFile(str(disk / "big.bin"), "wb") as f:
                f.write(b"x" * MiB)
        error = files.out_of_space(raised.value, disk)
        assert str(error).startswith(f"{disk / 'big.bin'}: No space left on device (ENOSPC)")
        (disk / "big.bin").unlink(missing_ok=True)

        store = sqlite3.connect(disk / "metadata.sqlite")
        with pytest.raises(sqlite3.OperationalError) as raised:
            store.execute("CREATE TABLE t (x BLOB)")
            for _ in range(64):
                store.execute("INSERT INTO t VALUES (?)", (b"y" * 16384,))
            store.commit()
        store.close()
        error = files.out_of_space(raised.value, disk, store=disk / "metadata.sqlite")
        assert str(error).startswith(f"{disk / 'metadata.sqlite'}: No space left on device (ENOSPC)")
    assert files.out_of_space(OSError(errno.EACCES, "Permission denied", "x"), "y") is None
    assert files.out_of_space(ValueError("bad value"), "y") is None


# ------------------------------------------------------------------------------------------------ kill


def test_a_push_killed_mid_copy_leaves_only_whole_versions_and_the_next_push_cleans_up(tmp_path, saved_model):
    base = tmp_path / "serving"
    code, _, stderr = finished(push(saved_model, base))
    assert code == 0, stderr[-2000:]
    biggest = the_biggest_file(saved_model)

    killed = push(saved_model, base, "--pause-at", biggest.name)
    paused = killed.stdout.readline().split()  # "paused <target>" once half the file is on disk
    assert paused[:1] == ["paused"], killed.stderr.read()[-2000:]
    half = Path(paused[1])
    assert 0 < half.stat().st_size < biggest.stat().st_size  # really mid-copy
    killed.send_signal(signal.SIGKILL)
    assert finished(killed)[0] == -signal.SIGKILL

    stages = [name for name in os.listdir(base) if not name.isdigit()]
    assert len(stages) == 1 and stages[0].startswith(pusher.STAGING_PREFIX)  # the leftover: never a version
    assert_only_whole_versions(base, saved_model, expected=1)

    code, _, stderr = finished(push(saved_model, base))
    assert code == 0, stderr[-2000:]
    assert_only_whole_versions(base, saved_model, expected=2)
    assert all(name.isdigit() for name in os.listdir(base))  # the killed push's stage is gone


# ------------------------------------------------------------------------------------------------ hetcomp run


@pytest.mark.slow
def test_a_run_whose_disk_fills_ends_in_one_line_and_the_rerun_completes_from_the_cache(tmp_path):
    """`hetcomp run` on a tmpfs that is filled up while the second teacher trains: one line naming the file and
    ENOSPC, exit 2, no output of the failed component and no version; with the filler deleted, the same command
    completes, the steps before the failure served from TFX's cache."""
    with small_filesystem(tmp_path / "disk", 64 * MiB) as disk:
        out = disk / "out"
        argv = [
            sys.executable,
            "-m",
            "hetcomp_tf.cli",
            "run",
            "--data",
            "synthetic",
            "--profile",
            "tiny",
            "--teachers",
            "MF,ML",
            "--out",
            str(out),
        ]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        run = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        stderr, teachers_started, filler = [], 0, None
        for line in run.stderr:
            stderr.append(line)
            if " component TeacherTrainer." in line and line.rstrip().endswith("started"):
                teachers_started += 1
                if teachers_started == 2:
                    filler = fill(disk)
        run.wait(timeout=60)
        assert filler is not None, "".join(stderr)[-3000:]
        assert run.returncode == 2, "".join(stderr)[-3000:]
        last = stderr[-1].strip()
        # the file named: one the failing writer names, or ML Metadata's store when SQLite ran out
        assert last.startswith(f"hetcomp: error: {out}/") and "No space left on device (ENOSPC)" in last, last
        assert "Traceback" not in "".join(stderr)
        failed = [line for line in stderr if line.rstrip().endswith("s") and " failed after " in line]
        assert failed, "".join(stderr)[-3000:]
        component = failed[0].split(" component ")[1].split(" failed")[0]
        outputs = out / "pipeline_root" / component
        # no half-written artifact; a teacher may keep its last whole training state for the rerun (.resume/)
        left = [p for p in outputs.rglob("*") if p.is_file() and ".resume" not in p.relative_to(outputs).parts]
        assert not left, f"{component} left files: {left}"
        for state in (outputs / ".resume").glob("*/state"):  # written atomically: whole or absent
            assert (state / "state.json").is_file(), list(state.iterdir())
        assert numeric_versions(out / "serving") == []

        filler.unlink()
        rerun = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        report = json.loads((out / "report.json").read_text())
        states = {node: c["state"] for node, c in report["components"].items()}
        assert states["InteractionExampleGen"] == states["TeacherTrainer.MF"] == "cached", states
        assert states[component] == "complete" and states["Pusher"] == "complete"
        versions = numeric_versions(out / "serving")
        assert report["blessed"] and len(versions) == 1 and os.listdir(out / "serving") == versions
        assert "score_items" in tf.saved_model.load(str(out / "serving" / versions[0])).signatures
