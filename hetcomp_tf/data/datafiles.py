"""Where data files are and how CiteULike arrives. Nothing here imports TensorFlow, so a command locates (or fails
to fetch) its data within a second of starting, before the heavy imports.

`--data citeulike` is the first `<dir>/citeulike/users.dat` of `data_dirs()`: $HETCOMP_DATA_DIR, the shared
datasets folder beside this checkout, the user cache ($XDG_CACHE_HOME/hetcomp or ~/.cache/hetcomp). When none
holds it, it is downloaded from its public origin into `download_dir()` and kept only if its sha256 matches.
"""

from __future__ import annotations

import contextlib
import glob
import http.client
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

from hetcomp_tf.errors import HetCompError
from hetcomp_tf.util.files import atomic_file, sha256_of
from hetcomp_tf.util.progress import log

CITEULIKE_SHA256 = "02d5d429b2c0362e0ed79f6ef204666b4092563d21493abf4dfb521e8a7078bf"
# citeulike-t (github.com/js05212/citeulike-t, users.dat) as the HetComp authors redistribute it.
CITEULIKE_URL = "https://raw.githubusercontent.com/SeongKu-Kang/HetComp_WWW23/main/Data/users.dat"
CITEULIKE_FILE = Path("citeulike") / "users.dat"
FORMATS = ("citeulike", "csv", "npz")
SUFFIX_FORMATS = {".dat": "citeulike", ".csv": "csv", ".tsv": "csv", ".txt": "csv", ".npz": "npz"}
# Seconds for the connection and for each read: offline, a command fails within its first few seconds.
DOWNLOAD_TIMEOUT = 4.0


def file_format(path: Path, fmt: str | None) -> str:
    """The data format of a file: `fmt` when given, else the one `path`'s suffix tells (a glob's too).

    Args:
        path: the data file (or glob).
        fmt: one of FORMATS, or None.

    Returns:
        One of FORMATS.

    Raises:
        HetCompError: an unknown `fmt`, or a suffix that tells no format.
    """
    if fmt is not None and fmt not in FORMATS:
        raise HetCompError(f"unknown data format {fmt!r}: choose one of {', '.join(FORMATS)}")
    fmt = fmt or SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise HetCompError(
            f"cannot tell the format of {path} from its suffix {path.suffix!r}: "
            f"give one of {', '.join(FORMATS)} (CLI: --format)"
        )
    return fmt


def verify_citeulike_sha256(path) -> None:
    """Checks a users.dat against CiteULike's sha256.

    Args:
        path: the file.

    Raises:
        HetCompError: another sha256.
    """
    got = sha256_of(path)
    if got != CITEULIKE_SHA256:
        raise HetCompError(
            f"{path}: sha256 {got} differs from the expected CiteULike sha256 {CITEULIKE_SHA256}; "
            "a different users.dat loads unchecked as --data PATH --format citeulike "
            "(library: verify_sha256=False)"
        )


def shared_data_dir() -> Path:
    """The datasets folder of a `shared/` directory beside the checkout (this project's machines have one)."""
    return Path(__file__).resolve().parents[3] / "shared" / "datasets"


def cache_dir() -> Path:
    """The user cache's hetcomp directory: $XDG_CACHE_HOME/hetcomp, else ~/.cache/hetcomp."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hetcomp"


def data_dirs() -> list[Path]:
    """Where `--data citeulike` is looked for, first match wins."""
    env = os.environ.get("HETCOMP_DATA_DIR")
    return [*([Path(env)] if env else []), shared_data_dir(), cache_dir()]


def download_dir() -> Path:
    """Where a missing CiteULike is downloaded to: the directory the user named, else the user cache."""
    env = os.environ.get("HETCOMP_DATA_DIR")
    return Path(env) if env else cache_dir()


def find_citeulike() -> Path | None:
    """The first `<dir>/citeulike/users.dat` of `data_dirs()`, or None."""
    return next((d / CITEULIKE_FILE for d in data_dirs() if (d / CITEULIKE_FILE).is_file()), None)


def citeulike_path() -> Path:
    """The local users.dat, downloaded first when no data directory holds it.

    Raises:
        HetCompError: the download failed or its sha256 differs (`fetch_citeulike`).
    """
    return find_citeulike() or fetch_citeulike(download_dir())


def locate(data: str) -> Path | None:
    """The file `--data` names (CiteULike fetched if need be).

    Args:
        data: "synthetic", "citeulike" or a file's path.

    Returns:
        The file, or None for the built-in synthetic data.

    Raises:
        HetCompError: a glob, a path that is no file, or a failed CiteULike download.
    """
    if data == "synthetic":
        return None
    if data == "citeulike":
        return citeulike_path()
    path = Path(data)
    if not path.is_file() and glob.has_magic(data):
        raise HetCompError(
            f"data {data!r} is a glob: sharded data is read only by the pipeline's Beam ingestion "
            "(`hetcomp run --split-protocol per_user`)"
        )
    if not path.is_file():
        raise HetCompError(f"data {data!r} is neither 'synthetic', 'citeulike' nor an existing file")
    return path


def fetch_citeulike(dest_dir, url: str | None = None) -> Path:
    """Downloads users.dat into `dest_dir`/citeulike/, so HETCOMP_DATA_DIR=dest_dir finds it.

    It goes through a temporary file that is renamed into place only when its sha256 matches: a failed, corrupt or
    interrupted download leaves nothing behind, not even the directories it created.

    Args:
        dest_dir: the data directory to download into.
        url: where from (default CITEULIKE_URL).

    Returns:
        The downloaded users.dat.

    Raises:
        HetCompError: a network or write error, or a download whose sha256 differs.
    """
    url = url or CITEULIKE_URL
    target = Path(dest_dir) / CITEULIKE_FILE
    created = [d for d in (target.parent, *target.parent.parents) if not d.exists()]
    try:
        start = time.perf_counter()
        with atomic_file(target, suffix=".part") as partial:  # kept only if complete and matching
            with open(partial, "wb") as f:
                size = _download(url, f, target)
            got = sha256_of(partial)
            if got != CITEULIKE_SHA256:
                raise HetCompError(
                    f"the download from {url} has sha256 {got}, which differs from the expected "
                    f"CiteULike sha256 {CITEULIKE_SHA256}; nothing was kept"
                )
    except BaseException as err:
        for directory in created:  # innermost first; only the empty ones this call made
            with contextlib.suppress(OSError):
                directory.rmdir()
        if isinstance(err, (OSError, ValueError, http.client.HTTPException)):
            raise HetCompError(_download_error(url, target, err)) from None
        raise
    log(f"fetched {size:,} bytes in {time.perf_counter() - start:.1f}s, sha256 matches: {target}")
    return target


def _download_error(url: str, target: Path, err: Exception) -> str:
    network = isinstance(err, (urllib.error.URLError, http.client.HTTPException, TimeoutError, ValueError))
    if not network and getattr(err, "filename", None) is not None:  # the destination directory, not the network
        return f"cannot write CiteULike to {target.parent}: {err.strerror}"
    # "HTTP Error 404: Not Found"; a URLError wraps the socket's error ("Connection refused")
    reason = err if isinstance(err, urllib.error.HTTPError) else getattr(err, "reason", err)
    return (
        f"could not download CiteULike from {url} ({reason}); where there is network run "
        "`hetcomp data fetch citeulike --dir DIR` (or save that URL as DIR/citeulike/users.dat), "
        "then set HETCOMP_DATA_DIR=DIR"
    )


def _download(url: str, f, target: Path) -> int:
    """Copies `url` into `f`; the progress line comes once the server answered, so offline there is only the error."""
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
        expected = int(response.headers.get("Content-Length") or 0)
        log(f"downloading CiteULike users.dat ({expected / 1e6:.1f} MB) from {url} to {target}")
        size = 0
        while block := response.read(1 << 16):
            f.write(block)
            size += len(block)
    return size
