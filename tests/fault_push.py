"""A push of a SavedModel in a process of its own, for tests/test_faults.py to cause faults in: under a file-size
limit (`--fsize BYTES`: RLIMIT_FSIZE, so a larger write fails with EFBIG), or pausing half-way through one file's
copy (`--pause-at NAME`: half its bytes written and fsynced, then "paused" on stdout and a sleep) for the test to
kill it there. Prints "pushed VERSION" when the push completes.

usage: python -m tests.fault_push MODEL_DIR BASE_DIR [--fsize BYTES] [--pause-at NAME]
"""

from __future__ import annotations

import argparse
import os
import resource
import time

from components.pusher import executor as pusher

PAUSE_SECONDS = 600  # far longer than any test waits: the test kills the process first


def pause_half_way_through(name: str) -> None:
    """Makes the push's copy of the file `name` stop half-way, as a slow disk would hold it there."""

    def copy(source: str, target: str) -> None:
        if os.path.basename(source) != name:
            pusher.copy_file.__wrapped__(source, target)
            return
        with open(source, "rb") as reader, open(target, "xb") as writer:
            data = reader.read()
            writer.write(data[: len(data) // 2])
            writer.flush()
            os.fsync(writer.fileno())
        print("paused", target, flush=True)
        time.sleep(PAUSE_SECONDS)

    copy.__wrapped__ = pusher.copy_file
    pusher.copy_file = copy


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model_dir")
    parser.add_argument("base_dir")
    parser.add_argument("--fsize", type=int)
    parser.add_argument("--pause-at")
    args = parser.parse_args()
    if args.fsize is not None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (args.fsize, args.fsize))
    if args.pause_at:
        pause_half_way_through(args.pause_at)
    print("pushed", pusher.publish_version(args.model_dir, args.base_dir), flush=True)


if __name__ == "__main__":
    main()
