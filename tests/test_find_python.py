"""tools/find-python, the interpreter `make` builds .venv with, run with a PATH of our making (a directory of
links): python3.11 there is the fast path; without it, a Python 3.12 and uv give a uv-managed CPython 3.11; with
nothing usable, or no network for uv's download, one line saying what to install, within seconds. Nothing is
downloaded: "uv's managed 3.11" is this interpreter's own installation hard-linked into a uv install directory, as
`uv python install 3.11` would have unpacked one (`UV_OFFLINE=1` stands for a machine without network).
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIND_PYTHON = REPO / "tools" / "find-python"
SECONDS = 10  # "within seconds": every answer below comes in well under this on a loaded machine


def real_interpreter(command: str) -> str | None:
    """The executable behind `command` (through a pyenv shim, say), if it runs."""
    if shutil.which(command) is None:
        return None
    found = subprocess.run([command, "-c", "import sys; print(sys.executable)"], capture_output=True, text=True)
    return found.stdout.strip() if found.returncode == 0 else None


def python_311() -> str:
    return str(Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}")


def other_python() -> str:
    """A Python 3 that is not 3.11 (what Ubuntu 24.04, Debian 13, Fedora or Homebrew have as python3)."""
    pyenv = Path(os.environ.get("PYENV_ROOT", "~/.pyenv")).expanduser() / "versions"  # its shims run one version
    candidates = ["python3.12", "python3.13", "python3.10", *map(str, sorted(pyenv.glob("3.1[02-9]*/bin/python3")))]
    for command in candidates:
        if (found := real_interpreter(command)) is not None:
            return found
    pytest.skip("no Python 3 other than 3.11 on this machine to play the system python3")


def uv_binary() -> str:
    found = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    if not os.access(found, os.X_OK):
        pytest.skip("no uv on this machine (the project's venv installs one)")
    return found


def fake_path(tmp_path: Path, **links: str) -> Path:
    """A directory holding only `links` (name -> target) and `rm` (which the script uses): the whole PATH."""
    directory = tmp_path / "bin"
    directory.mkdir()
    for name, target in {**links, "rm": shutil.which("rm")}.items():
        (directory / name).symlink_to(target)
    return directory


def seeded_managed_python(tmp_path: Path) -> Path:
    """A uv install directory holding this interpreter's CPython 3.11 (stdlib hard-linked, site-packages left out)
    under uv's name for it, as `uv python install 3.11` leaves one."""
    if platform.system() != "Linux" or sys.version_info[:2] != (3, 11):
        pytest.skip("seeding uv's managed Python is written for CPython 3.11 on Linux")
    base = Path(sys.base_prefix)
    version = ".".join(map(str, sys.version_info[:3]))
    target = tmp_path / "managed" / f"cpython-{version}-linux-{platform.machine()}-gnu"
    ignore = shutil.ignore_patterns("site-packages", "dist-packages", "__pycache__", "test")
    try:
        (target / "bin").mkdir(parents=True)
        os.link(python_311(), target / "bin" / "python3.11")
        (target / "bin" / "python3").symlink_to("python3.11")
        shutil.copytree(
            base / "lib" / "python3.11", target / "lib" / "python3.11", copy_function=os.link, ignore=ignore
        )
        for library in base.glob("lib/libpython3.11*"):
            os.link(library, target / "lib" / library.name)
    except OSError as err:
        pytest.skip(f"cannot hard-link {base} into {tmp_path} ({err}); a copy would be hundreds of MB")
    return tmp_path / "managed"


def find_python(path: Path, **env: str) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    result = subprocess.run(
        ["/bin/sh", str(FIND_PYTHON)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={"HOME": str(path.parent), "PATH": str(path), **env},
    )
    return result, time.monotonic() - started


def assert_one_line_saying_what_to_install(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("find-python: ")
    assert "install Python 3.11" in result.stderr and "PYTHON=/path/to/python3.11" in result.stderr


def test_python311_on_path_is_the_fast_path(tmp_path):
    path = fake_path(tmp_path, **{"python3.11": python_311()})
    result, seconds = find_python(path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{path}/python3.11\n" and seconds < SECONDS


def test_a_given_python_that_is_not_311_is_refused(tmp_path):
    path = fake_path(tmp_path, python3=other_python())
    result, seconds = find_python(path, PYTHON="python3")
    assert_one_line_saying_what_to_install(result)
    assert "PYTHON=python3 is not a working Python 3.11" in result.stderr and seconds < SECONDS


def test_without_python311_a_python312_and_uv_use_uvs_managed_311(tmp_path):
    path = fake_path(tmp_path, python3=other_python(), uv=uv_binary())
    managed = seeded_managed_python(tmp_path)
    result, seconds = find_python(path, UV_PYTHON_INSTALL_DIR=str(managed))
    assert result.returncode == 0, result.stderr
    interpreter = result.stdout.strip()
    assert interpreter.startswith(f"{managed}/cpython-3.11") and seconds < SECONDS
    version = subprocess.run(
        [interpreter, "-c", "import sys, venv; print(sys.version_info[:2])"], capture_output=True, text=True
    )
    assert version.stdout.strip() == "(3, 11)"  # and it has venv, which `make` builds .venv with
    make = subprocess.run(
        [shutil.which("make"), "-s", "python"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={"HOME": str(tmp_path), "PATH": str(path), "UV_PYTHON_INSTALL_DIR": str(managed)},
    )
    assert make.stdout == result.stdout


def test_without_network_uv_cannot_download_311_and_says_so_in_one_line(tmp_path):
    path = fake_path(tmp_path, python3=other_python(), uv=uv_binary())
    result, seconds = find_python(path, UV_PYTHON_INSTALL_DIR=str(tmp_path / "empty"), UV_OFFLINE="1")
    assert_one_line_saying_what_to_install(result)
    assert "uv python install 3.11 failed" in result.stderr and seconds < SECONDS


def test_with_nothing_usable_make_install_stops_at_once_with_one_line_and_no_venv(tmp_path):
    checkout = tmp_path / "checkout"  # a copy, so that the test never builds or touches the real .venv
    shutil.copytree(REPO, checkout, ignore=shutil.ignore_patterns(".git", ".venv", "build", "__pycache__"))
    path = fake_path(tmp_path)
    result, seconds = find_python(path)
    assert_one_line_saying_what_to_install(result)
    assert "no python3.11, no uv and no python3" in result.stderr and seconds < SECONDS
    started = time.monotonic()
    make = subprocess.run(
        [shutil.which("make"), "install"],
        cwd=checkout,
        capture_output=True,
        text=True,
        env={"HOME": str(tmp_path), "PATH": str(path)},
        timeout=60,
    )
    assert make.returncode != 0 and time.monotonic() - started < SECONDS
    assert make.stderr.splitlines()[0] == result.stderr.strip()  # then make's own "*** ... Error 1"
    assert not (checkout / ".venv").exists()


@pytest.mark.slow
def test_without_uv_it_is_installed_from_pypi_with_the_python3_there_is(tmp_path):
    """The bootstrap a machine with only its own python3 (3.12) goes through: uv from PyPI into a venv of that
    python3, then uv's managed 3.11. Needs PyPI; without it, the answer must be the one line."""
    path = fake_path(tmp_path, python3=other_python())
    managed = seeded_managed_python(tmp_path)
    bootstrap = tmp_path / "uv-bootstrap"
    result, _ = find_python(path, UV_PYTHON_INSTALL_DIR=str(managed), HETCOMP_UV_BOOTSTRAP=str(bootstrap))
    if result.returncode != 0:
        assert_one_line_saying_what_to_install(result)
        assert "from PyPI" in result.stderr
        return
    assert result.stdout.startswith(f"{managed}/cpython-3.11") and (bootstrap / "bin" / "uv").exists()
