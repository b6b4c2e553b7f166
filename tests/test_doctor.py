"""`hetcomp doctor` here (CPU only): versions, devices, where CiteULike is or would be downloaded to (nothing is
fetched), and a timed distillation step with the configured XLA / precision."""

from __future__ import annotations

import platform
import re

import tensorflow as tf

from hetcomp_tf.commands.doctor import citeulike_row
from hetcomp_tf.data import datafiles
from tests.helpers import run_cli


def no_citeulike(tmp_path, monkeypatch):
    monkeypatch.delenv("HETCOMP_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(datafiles, "shared_data_dir", lambda: tmp_path / "shared")


def test_doctor_prints_one_table_and_times_a_step_on_the_cpu(tmp_path, monkeypatch):
    no_citeulike(tmp_path, monkeypatch)
    done = run_cli(["doctor", "--profile", "tiny", "--set", "jit_compile=true"])
    assert done.code == 0, done.stderr
    rows = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in done.stdout.strip().splitlines())
    assert rows["python"] == platform.python_version() and rows["tensorflow"] == tf.__version__
    assert {"tfx", "tensorflow-ranking", "tensorflow-recommenders", "apache-beam", "setuptools"} <= set(rows)
    assert "not installed" not in rows.values()
    assert rows["devices"].split(", ")[0] == "CPU:0"
    assert re.fullmatch(
        r"\d+\.\d ms \(tiny profile: hetcomp, dim 8, XLA on, rest kernel auto, float32; \d+ steps timed\)",
        rows["step on CPU:0"],
    )
    would = tmp_path / "cache" / "hetcomp" / "citeulike" / "users.dat"
    assert rows["--data citeulike"].endswith(f"the first run downloads it to {would}")
    assert not (tmp_path / "cache").exists()  # looked up, not fetched


def test_doctor_names_the_citeulike_copy_it_finds(tmp_path, monkeypatch):
    no_citeulike(tmp_path, monkeypatch)
    copy = tmp_path / "shared" / "citeulike" / "users.dat"
    copy.parent.mkdir(parents=True)
    copy.write_text("1 0\n")
    assert citeulike_row() == str(copy)
