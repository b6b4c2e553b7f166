"""Which version of the model is served: TF Serving's file-system source and its `latest` policy (one version).

A version is a numeric sub-directory of the base directory holding a `saved_model.pb` (one still being created
without it is not a version yet). At start the newest version that loads is served and every newer one that does
not is named in one line. Every `poll_seconds` the base directory is listed again; a version newer than the
served one is loaded and warmed beside it, then swapped in under a lock, so a request is answered either by the
old version or by the new one, never refused. The old version is dropped (unloaded) when the last request
running on it ends. A version that fails to load is logged once and skipped while its files stay as they were
(names, sizes, mtimes): a Pusher that was still writing it, or a user who repairs it, makes it change and be
tried again. If the served version's directory disappears, it stays served from memory until a newer one loads.

Only the served version answers Predict and GetModelMetadata (a request naming another version gets NOT_FOUND,
as from TF Serving with `model_version_policy { latest { num_versions: 1 } }`); GetModelStatus reports every
version this server has tried: AVAILABLE, LOADING, UNLOADING, END (unloaded, or failed with its error).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc
from tensorflow_serving.apis import get_model_status_pb2

from hetcomp_tf.errors import HetCompError
from serving.servable import LoadError, RequestError, Servable, load_version

State = get_model_status_pb2.ModelVersionStatus


@dataclass
class VersionRecord:
    """What GetModelStatus says of one version.

    Attributes:
        state: a ModelVersionStatus.State.
        error_code: TensorFlow's error code of a failed load, else 0.
        error_message: its message.
        fingerprint: the failed version's files (`directory_fingerprint`) when it failed, else None.
    """

    state: int
    error_code: int = 0
    error_message: str = ""
    fingerprint: tuple | None = None


def list_versions(base_dir: str) -> list[int]:
    """The versions under a base directory.

    Args:
        base_dir: the model's base directory.

    Returns:
        The numeric sub-directories holding a saved_model.pb, newest first ([] if the directory is gone).
    """
    try:
        names = os.listdir(base_dir)
    except FileNotFoundError:
        return []
    return sorted(
        (
            int(name)
            for name in names
            if name.isdigit() and os.path.isfile(os.path.join(base_dir, name, "saved_model.pb"))
        ),
        reverse=True,
    )


def directory_fingerprint(path: str) -> tuple:
    """What a directory's files look like: changes whenever a writer touches it.

    Args:
        path: the directory.

    Returns:
        (relative path, size, mtime_ns) of every file under it, sorted.
    """
    entries = []
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            try:
                info = os.stat(full)
            except FileNotFoundError:  # removed while we looked: the next poll sees the new state
                continue
            entries.append((os.path.relpath(full, path), info.st_size, info.st_mtime_ns))
    return tuple(sorted(entries))


class VersionManager:
    """Loads, swaps and unloads the versions of one model under `base_dir`; requests borrow the served one.

    Args:
        base_dir: the model's base directory.
        model_name: the name requests must use.
        poll_seconds: seconds between looks at `base_dir`, >= 0 (0: no polling).
        log: receives the one-line messages.

    Raises:
        HetCompError: (on construction) a negative `poll_seconds`.
    """

    def __init__(self, base_dir: str, model_name: str, poll_seconds: float, log: Callable[[str], None]):
        if poll_seconds < 0:
            raise HetCompError(f"serve: --poll-seconds must be >= 0 (0 = no polling), got {poll_seconds:g}")
        self.base_dir, self.model_name, self.poll_seconds, self._log = base_dir, model_name, poll_seconds, log
        self._lock = threading.Lock()
        self._served: Servable | None = None
        self._in_flight: dict[int, int] = {}  # version -> requests running on it
        self._retired: dict[int, Servable] = {}  # swapped out, waiting for its requests to end
        self._records: dict[int, VersionRecord] = {}
        self._said_gone = False
        self._last_poll_error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def served_version(self) -> int | None:
        """The served version's number, None before `start`."""
        served = self._served
        return served.version if served else None

    def start(self) -> Servable:
        """Serves the newest version that loads and starts polling.

        Returns:
            The served `Servable`.

        Raises:
            HetCompError: no base directory, no version in it, or none that loads.
        """
        if not os.path.isdir(self.base_dir):
            raise HetCompError(f"serve: model base directory {self.base_dir} does not exist")
        versions = list_versions(self.base_dir)
        if not versions:
            raise HetCompError(f"serve: no numeric version directory with a saved_model.pb under {self.base_dir}")
        if not self._load_newest(versions):
            raise HetCompError(f"serve: no version under {self.base_dir} loads (tried {', '.join(map(str, versions))})")
        if self.poll_seconds > 0:
            self._thread = threading.Thread(target=self._poll_loop, name="version-poller", daemon=True)
            self._thread.start()
        return self._served

    def stop(self) -> None:
        """Stops polling and waits for the poller."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def poll_once(self) -> None:
        """One look at the base directory: serves the newest new version that loads, if any."""
        served = self._served
        if not os.path.isdir(served.path) and not self._said_gone:
            self._said_gone = True
            self._log(
                f"version {served.version} of {self.model_name}: its directory {served.path} is gone; "
                f"serving it from memory until a newer version loads"
            )
        self._load_newest([version for version in list_versions(self.base_dir) if version > served.version])

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.poll_once()
                self._last_poll_error = ""
            except OSError as error:  # an unreadable base directory: say it once, keep serving, keep trying
                message = f"cannot read {self.base_dir} ({error}); still serving version {self.served_version}"
                if message != self._last_poll_error:
                    self._log(message)
                self._last_poll_error = message

    def _load_newest(self, versions: list[int]) -> bool:
        """Tries `versions` newest first, skipping failed ones whose files did not change; swaps in the first
        that loads. Returns whether one did."""
        for version in versions:
            path = os.path.join(self.base_dir, str(version))
            fingerprint = directory_fingerprint(path)
            record = self._records.get(version)
            if record is not None and record.fingerprint == fingerprint:
                continue
            self._set_record(version, VersionRecord(State.LOADING))
            try:
                servable, seconds = load_version(path, version)
            except LoadError as error:
                self._set_record(version, VersionRecord(State.END, error.error_code, str(error), fingerprint))
                self._log(f"version {version} of {self.model_name} at {path} does not load, skipped: {error}")
                continue
            self._swap_in(servable, seconds)
            return True
        return False

    def _set_record(self, version: int, record: VersionRecord) -> None:
        with self._lock:
            self._records[version] = record

    def _swap_in(self, servable: Servable, seconds: float) -> None:
        with self._lock:
            old, self._served = self._served, servable
            self._in_flight.setdefault(servable.version, 0)
            self._records[servable.version] = VersionRecord(State.AVAILABLE)
            if old is None:  # the start-up version
                return
            self._records[old.version] = VersionRecord(State.UNLOADING)
            self._retired[old.version] = old
            drained = self._pop_if_drained(old.version)
        self._said_gone = False
        self._log(
            f"now serving {self.model_name} version {servable.version} (loaded and warmed in {seconds:.2f} s) "
            f"instead of version {old.version}"
        )
        if drained:
            self._unloaded(drained)

    def _pop_if_drained(self, version: int) -> Servable | None:
        """The retired servable of `version` once no request runs on it (call with the lock held)."""
        if version in self._retired and self._in_flight[version] == 0:
            del self._in_flight[version]
            return self._retired.pop(version)
        return None

    def _unloaded(self, servable: Servable) -> None:
        self._set_record(servable.version, VersionRecord(State.END))
        self._log(f"unloaded {self.model_name} version {servable.version}")

    @staticmethod
    def _check_label(label: str) -> None:
        if label:
            raise RequestError(grpc.StatusCode.NOT_FOUND, f"no version labelled {label!r}")

    @contextlib.contextmanager
    def serving(self, name: str, version: int | None = None, label: str = "") -> Iterator[Servable]:
        """The served version for a request, kept loaded until the request ends.

        Args:
            name: the model the request names.
            version: the version it names, or None for the latest.
            label: the version label it names ("" for none).

        Yields:
            The served `Servable`.

        Raises:
            RequestError: NOT_FOUND for another model, another version or any label.
        """
        with self._lock:
            servable = self._served
            if name != self.model_name or version not in (None, servable.version):
                what = f"Latest({name})" if version is None else f"Specific({name}, {version})"
                raise RequestError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {what}")
            self._check_label(label)
            self._in_flight[servable.version] += 1
        try:
            yield servable
        finally:
            with self._lock:
                self._in_flight[servable.version] -= 1
                drained = self._pop_if_drained(servable.version)
            if drained:
                self._unloaded(drained)

    def status(
        self, name: str, version: int | None = None, label: str = ""
    ) -> get_model_status_pb2.GetModelStatusResponse:
        """TF Serving's GetModelStatus.

        Args:
            name: the model the request names.
            version: the version it names, or None.
            label: the version label it names ("" for none).

        Returns:
            The GetModelStatusResponse: the named version, else every version tried, newest first.

        Raises:
            RequestError: NOT_FOUND for another model, an untried version or any label.
        """
        if name != self.model_name:
            raise RequestError(grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {name}")
        self._check_label(label)
        with self._lock:
            records = dict(self._records)
        if version is not None:
            if version not in records:
                raise RequestError(grpc.StatusCode.NOT_FOUND, f"Could not find version {version} of model {name}")
            records = {version: records[version]}
        response = get_model_status_pb2.GetModelStatusResponse()
        for number in sorted(records, reverse=True):
            record = records[number]
            status = response.model_version_status.add(version=number, state=record.state)
            status.status.error_code, status.status.error_message = record.error_code, record.error_message
        return response
