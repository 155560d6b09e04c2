"""A lock on a run directory while a process trains into it.

Two `lwd train` into one `--out` would each write checkpoints and the final model over the
other's, and both end with exit 0: one training silently lost. The first to start takes
`RUN/.lock` (an exclusive `flock` on the file, which records its pid, host and start time); the
other refuses with one line naming the holder. The operating system drops a `flock` when its
process dies, however it dies, so a lock file left by a killed process is stale by construction:
the next training takes it over without asking.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import os
import socket
from pathlib import Path
from types import TracebackType

LOCK_NAME = ".lock"


class RunLocked(ValueError):
    """The run directory is being trained into by another live process; the message names it."""


class RunLock:
    """`with RunLock(run_dir):` holds the run directory's lock (creating the folder if needed)."""

    def __init__(self, run_dir: str | Path, what: str = "--out") -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self.what = what
        self._fd: int | None = None
        self._created: list[Path] = []

    def acquire(self) -> None:
        folder = self.path.parent
        self._created = []
        while not folder.exists() and folder != folder.parent:  # removed again if nothing else is written
            self._created.append(folder)
            folder = folder.parent
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(10):  # retried only when the file was replaced between open and flock
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                self._remove_created()
                raise RunLocked(f"{self.what} {self.path.parent} is being trained into by {self._holder()}; "
                                f"wait for it to finish or choose another {self.what}") from None
            try:
                current = os.stat(self.path)
            except FileNotFoundError:
                current = None
            held = os.fstat(fd)
            if current is not None and (current.st_ino, current.st_dev) == (held.st_ino, held.st_dev):
                record = {"pid": os.getpid(), "host": socket.gethostname(),
                          "since": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
                os.ftruncate(fd, 0)
                os.write(fd, (json.dumps(record) + "\n").encode())
                self._fd = fd
                return
            os.close(fd)  # the holder removed the file as we opened it: lock the new one instead
        raise RunLocked(f"{self.what} {self.path.parent}: could not take the lock {self.path}")

    def _holder(self) -> str:
        try:
            record = json.loads(self.path.read_text())
            return f"process {record['pid']} on {record['host']} (since {record['since']})"
        except (OSError, ValueError, KeyError, TypeError):
            return "another process"

    def release(self) -> None:
        """Remove the lock file, then let go (removing first: nobody can lock the old file after we let go)."""
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None
        self._remove_created()

    def _remove_created(self) -> None:
        """Remove the folders `acquire` created if they are still empty: a training refused before it
        wrote anything leaves nothing behind."""
        for folder in self._created:
            try:
                folder.rmdir()
            except OSError:
                break
        self._created = []

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
