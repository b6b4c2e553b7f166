"""Every file the library writes goes through here: atomic files and directories, JSON, checksums, manifests.

Results, datasets, trajectories and the ensemble knowledge are handed between processes (CLI steps, TFX
components, benchmark workers), so a reader must never see a half-written file and must be able to tell a
complete, matching export from a corrupted or outdated one: a file or directory is first written under a
temporary name next to its target and then renamed into place; a manifest directory lists every array file
with its sha256 and carries a `format_version`. A write that runs out of room (a full disk or quota, a file-size
limit) is one line naming the file (`out_of_space`), the temporary it was writing removed. No TensorFlow here: the
commands use it before the heavy imports.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from hetcomp_tf.errors import HetCompError

# A write that ran out of room: the filesystem (or the user's quota) is full, or the file outgrew the process's
# file-size limit (RLIMIT_FSIZE). Each is told the same way and handled the same way: free space, rerun.
OUT_OF_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
# Writers that report the OS's message, not an OSError: TensorFlow's file system ("PATH; No space left on device")
# and SQLite (ML Metadata's store: "database or disk is full", its SQLITE_FULL, which is ENOSPC underneath).
_NAMED_IN_TEXT = re.compile(r"(\S+); (" + "|".join(map(os.strerror, OUT_OF_SPACE_ERRNOS)) + ")")
_SQLITE_FULL = "database or disk is full"


def out_of_space(
    err: BaseException, path: str | os.PathLike, *, name_path: bool = False, store: str | os.PathLike | None = None
) -> HetCompError | None:
    """A one-line HetCompError when `err`, or an exception it was raised from or during, is a write that ran out of
    room (OUT_OF_SPACE_ERRNOS); None for any other error.

    Args:
        err: what a write raised: an OSError, or an error of TensorFlow or SQLite carrying the OS's message.
        path: the file named when the error names none (an OSError without a file name), or always with
            `name_path` (an atomic write names its target, not the temporary it was writing).
        store: the SQLite database named when SQLite ran out of room (its message names no file); default `path`.

    Returns:
        HetCompError "FILE: No space left on device (ENOSPC); ..." or None.
    """
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in OUT_OF_SPACE_ERRNOS:
            return _no_room(path if name_path or not err.filename else err.filename, err.errno)
        if match := _NAMED_IN_TEXT.search(str(err)):
            code = next(c for c in OUT_OF_SPACE_ERRNOS if os.strerror(c) == match.group(2))
            return _no_room(path if name_path else match.group(1), code)
        if _SQLITE_FULL in str(err):
            return _no_room(path if name_path or store is None else store, errno.ENOSPC)
        err = err.__cause__ or err.__context__
    return None


def _no_room(path, code: int) -> HetCompError:
    return HetCompError(
        f"{path}: {os.strerror(code)} ({errno.errorcode[code]}); nothing half-written was kept, "
        "free space and run again"
    )


@contextlib.contextmanager
def out_of_space_reported(path: str | os.PathLike, store: str | os.PathLike | None = None) -> Iterator[None]:
    """Re-raises a write that ran out of room inside the block as `out_of_space`'s one-line error; any other
    exception passes unchanged.

    Args:
        path: the file named when the error names none.
        store: the SQLite database named when SQLite ran out of room.

    Raises:
        HetCompError: the block's write ran out of room.
    """
    try:
        yield
    except HetCompError:
        raise
    except Exception as err:
        error = out_of_space(err, path, store=store)
        if error is None:
            raise
        raise error from None


def sha256_of(path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks.

    Args:
        path: the file.

    Returns:
        The hex digest.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yields a temporary path next to `path` (ending in `suffix`, by default `path`'s, so writers that go by
    the suffix still work); renamed onto `path` when the block succeeds, removed when it raises.

    Args:
        path: the file to write; its directory is created if missing.
        suffix: the temporary's suffix (default: `path`'s).

    Yields:
        The temporary path to write.

    Raises:
        HetCompError: the write ran out of room (`out_of_space`), naming `path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{path.name}.tmp-", suffix=path.suffix if suffix is None else suffix, dir=path.parent
    )
    os.close(handle)
    try:
        yield Path(temporary)
        os.replace(temporary, path)
    except BaseException as err:
        Path(temporary).unlink(missing_ok=True)
        _raise_out_of_space(err, path)
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Writes `text` atomically (`atomic_file`): a reader never sees a half-written file.

    Args:
        path: the file.
        text: its content, written as UTF-8.

    Returns:
        `path` as a Path.
    """
    with atomic_file(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)


def json_text(obj) -> str:
    """The one JSON encoding of results: indented, no NaN, a final newline.

    Args:
        obj: a JSON-ready object.

    Returns:
        The JSON text.

    Raises:
        ValueError: a NaN or infinity in `obj`.
    """
    return json.dumps(obj, indent=2, allow_nan=False) + "\n"


def write_json(path: str | os.PathLike, obj) -> Path:
    """Writes `obj` as indented JSON, atomically (see `write_text`).

    Args:
        path: the file.
        obj: a JSON-ready object without NaN.

    Returns:
        `path` as a Path.
    """
    return write_text(path, json_text(obj))


def read_json(path: str | os.PathLike):
    """The JSON at `path`.

    Args:
        path: the file.

    Returns:
        The parsed JSON.

    Raises:
        HetCompError: naming the file, when it cannot be read or parsed.
    """
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise HetCompError(f"{path}: not readable JSON ({err})") from None


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike, entries: Sequence[str] | None = None) -> Iterator[Path]:
    """Yields an empty temporary directory next to `target`, renamed onto it on success.

    On any exception it is removed, so `target` is either the old complete version or the new one. With `entries`
    (relative paths such as "logs/teachers"), only those are moved into `target`, each replacing its old version, and
    the rest of an existing `target` is kept.

    Args:
        target: the directory to write.
        entries: the relative paths to move into `target`, or None for the whole directory.

    Yields:
        The staging directory (a Path) to write into.

    Raises:
        HetCompError: the write ran out of room (`out_of_space`), naming `target`.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield staging
        if entries is None:
            replace_path(staging, target)
        else:
            for entry in entries:
                if (staging / entry).exists():
                    replace_path(staging / entry, target / entry)
    except BaseException as err:
        _raise_out_of_space(err, target)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _raise_out_of_space(err: BaseException, target: Path) -> None:
    """Raises `out_of_space`'s one-line error naming `target` when `err` is a write that ran out of room."""
    full = out_of_space(err, target, name_path=True)
    if full is not None:
        raise full from None


def replace_path(source: Path, target: Path) -> None:
    """Renames `source` onto `target` (file or directory), moving an existing `target` aside first.

    Args:
        source: the new file or directory.
        target: where it goes; an existing one is restored if the rename fails.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        os.replace(source, target)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.replace(target, aside / target.name)
    try:
        os.replace(source, target)
    except OSError:
        os.replace(aside / target.name, target)
        raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)


def link_tree(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """`target` as a copy of the file or directory `source` made of hard links (no data copied).

    For files that are only ever replaced whole, never rewritten in place (everything written through this module).
    Falls back to a copy across file systems.

    Args:
        source: a file or directory.
        target: the copy's path (must not exist for a directory).
    """
    source, target = Path(source), Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)

    def link(src, dst):
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    if source.is_dir():
        shutil.copytree(source, target, copy_function=link)
    else:
        link(source, target)


class WriteOnly:
    """A file numpy writes to in buffered chunks: given a real file, `np.save` uses `ndarray.tofile`, whose short
    write on a full disk raises an OSError without its errno ("N requested and M written"); through `write` the
    OS's ENOSPC comes back as it is."""

    def __init__(self, handle):
        self.write = handle.write


def write_manifest_dir(
    directory: str | os.PathLike, manifest_name: str, arrays: dict[str, np.ndarray], manifest: dict
) -> Path:
    """Atomically writes `<name>.npy` for each array and `manifest_name` = manifest + {"files": {file: sha256}}.

    Args:
        directory: the directory, replaced whole.
        manifest_name: the manifest's file name.
        arrays: name -> array, written without pickles.
        manifest: the manifest's other fields (e.g. "format_version").

    Returns:
        `directory` as a Path.
    """
    with atomic_directory(directory) as staging:
        files = {}
        for name, array in arrays.items():
            path = staging / f"{name}.npy"
            with open(path, "wb") as handle:
                np.save(WriteOnly(handle), np.ascontiguousarray(array), allow_pickle=False)
            files[path.name] = sha256_of(path)
        with open(staging / manifest_name, "w", encoding="utf-8") as handle:
            json.dump({**manifest, "files": files}, handle, indent=2, sort_keys=True)
            handle.write("\n")
    return Path(directory)


def read_manifest_dir(
    directory: str | os.PathLike, manifest_name: str, format_version: int
) -> tuple[dict, dict[str, np.ndarray]]:
    """Reads a directory written by `write_manifest_dir`, checking every listed file's sha256.

    Args:
        directory: the directory.
        manifest_name: the manifest's file name.
        format_version: the only supported `format_version`.

    Returns:
        (manifest, arrays by name without `.npy`).

    Raises:
        HetCompError: naming the file that is missing, corrupted, unreadable or of another format version.
    """
    directory = Path(directory)
    manifest_path = directory / manifest_name
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HetCompError(f"{manifest_path}: missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise HetCompError(f"{manifest_path}: not a readable JSON manifest ({err})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise HetCompError(f"{manifest_path}: field 'files' is missing or not an object")
    if manifest.get("format_version") != format_version:
        raise HetCompError(
            f"{manifest_path}: format_version {manifest.get('format_version')!r} "
            f"is not the supported {format_version}"
        )
    arrays = {}
    for file_name, expected in manifest["files"].items():
        path = directory / file_name
        if not path.is_file():
            raise HetCompError(f"{path}: missing (listed in {manifest_path})")
        if sha256_of(path) != expected:
            raise HetCompError(f"{path}: sha256 does not match {manifest_path} (corrupted or modified)")
        try:
            arrays[file_name.removesuffix(".npy")] = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise HetCompError(f"{path}: not a readable .npy array ({err})") from None
    return manifest, arrays


def require_field(manifest: dict, field: str, where: str):
    """A required field of a manifest.

    Args:
        manifest: the parsed manifest.
        field: the field's name.
        where: the manifest's path, for the message.

    Returns:
        manifest[field].

    Raises:
        HetCompError: naming the manifest (`where`) and the field, when it is missing.
    """
    if field not in manifest:
        raise HetCompError(f"{where}: field {field!r} is missing")
    return manifest[field]


def directory_bytes(path: str | os.PathLike) -> int:
    """The bytes of every file below a directory.

    Args:
        path: the directory.

    Returns:
        The sum of their sizes.
    """
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names)
