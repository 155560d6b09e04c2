"""Output paths: checked before long work starts, and never lost once the work is done.

A command that trains for an hour or evaluates for ten minutes must find out at once that its
`--out` cannot be written, not at the end. `check_writable` answers that without leaving
anything behind (it probes with a temporary file that is removed at once); `write_text_safely`
writes a finished result and, if the target fails after all, puts it in the temp folder and
says where.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path


class OutputError(ValueError):
    """An output path that cannot be written; the message says which and what to change."""


def _nearest_existing(path: Path) -> Path:
    current = path
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


def check_writable(path: str | Path, what: str = "--out", folder: bool = False) -> Path:
    """Refuse `path` (a file, or a folder with `folder=True`) unless it can be created or replaced.

    Creates nothing: it finds the nearest existing folder on the way to `path` and creates and
    removes one temporary file there."""
    path = Path(path)
    if path.exists() and not folder and path.is_dir() and not path.name.endswith(".zarr"):
        raise OutputError(f"{what} {path} is a folder; give a file name")
    if path.exists() and folder and not path.is_dir():
        raise OutputError(f"{what} {path} is a file; give a folder")
    base = path if (folder and path.is_dir()) else _nearest_existing(path.parent)
    if not base.is_dir():
        raise OutputError(f"{what} {path} cannot be created: {base} is a file, not a folder; choose another {what}")
    try:
        with tempfile.TemporaryFile(dir=base):
            pass
    except OSError as err:
        raise OutputError(f"{what} {path} cannot be written: {base} is not writable ({err.strerror}); choose another {what}") from err
    return path


def write_text_safely(path: str | Path, text: str, what: str = "results") -> Path:
    """Write `text` to `path` atomically (a temp sibling renamed into place, so a failed write
    leaves the previous file, or none, never an empty or partial one); if that fails, write it to
    a file in the temp folder and raise an OutputError that names where the text went (computed
    results are never lost)."""
    path = Path(path)
    try:
        with replacing(path) as tmp:
            tmp.write_text(text)
            os.chmod(tmp, umask_mode())
        return path
    except OSError as err:
        fd, rescue = tempfile.mkstemp(prefix=f"lwd-{path.stem}-", suffix=path.suffix or ".txt")
        try:
            with open(fd, "w") as f:
                f.write(text)
        except OSError as again:
            raise OutputError(f"could not write {what} to {path} ({err.strerror}) nor to {rescue} ({again.strerror})") from err
        raise OutputError(f"could not write {what} to {path} ({err.strerror}); they are saved in {rescue}") from err


OVERWRITE_FLAG = "--overwrite"


def refuse_existing(path: str | Path, overwrite: bool, what: str = "--out") -> Path:
    """Refuse a `path` that exists unless `overwrite`: a user's dataset, run or result is never
    replaced without being asked (the same flag, `--overwrite`, on every command that writes one)."""
    path = Path(path)
    if not overwrite and (path.exists() or path.is_symlink()):
        raise OutputError(f"{what} {path} already exists; pass {OVERWRITE_FLAG} to replace it, or choose another {what}")
    return path


def umask_mode(executable: bool = False) -> int:
    """The mode a new file gets under the user's umask (a temporary file from mkstemp is 0600, and
    an atomic rename keeps that mode: chmod it to this before the rename)."""
    current = os.umask(0)
    os.umask(current)
    return (0o777 if executable else 0o666) & ~current


def temp_sibling(path: str | Path, tag: str = "tmp") -> Path:
    """A fresh, unused name beside `path` (hidden, unique), for writing before a rename into place."""
    path = Path(path)
    return path.with_name(f".{path.name}.{tag}-{uuid.uuid4().hex[:8]}")


def remove_path(path: Path, settle: float = 0.0) -> None:
    """Remove a file, link or folder tree; a missing path is fine (clean-up after a failed write).

    settle: for a writer whose other writes may still be landing after its first error (zarr's
    async I/O does not cancel a failed array write's sibling chunks, which then recreate files
    in a folder being removed), keep removing every 50 ms for `settle` seconds. Only failed
    writes pay this wait."""
    deadline = time.monotonic() + settle
    while True:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists() or path.is_symlink():
            path.unlink(missing_ok=True)
        if time.monotonic() >= deadline:
            return
        time.sleep(0.05)


def replace_path(tmp: Path, target: Path) -> None:
    """Move the finished `tmp` to `target`. An existing target is moved aside first and deleted
    only once the new one is in place, and put back if the move fails: at every moment either
    the old or the new target exists under its name."""
    if not (target.exists() or target.is_symlink()):
        os.replace(tmp, target)
        return
    old = temp_sibling(target, "old")
    os.replace(target, old)
    try:
        os.replace(tmp, target)
    except BaseException:
        os.replace(old, target)
        raise
    remove_path(old)


@contextlib.contextmanager
def replacing(target: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of `target` to write (a file or a folder); on success it replaces
    `target` (see `replace_path`), on any failure (a full disk, Ctrl-C) it is removed and the old
    `target`, if any, is left exactly as it was."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(target)
    try:
        yield tmp
        replace_path(tmp, target)
    finally:
        remove_path(tmp)


def write_new_text(folder: str | Path, stem: str, text: str, suffix: str = ".json") -> Path:
    """Write `text` to `folder/<stem><suffix>`, or `<stem>-2<suffix>`, `-3`, ... when taken: never
    over an earlier file, even when two processes write the same name at once (the finished temp
    file is hard-linked to the name, which fails if the name exists)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{stem}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, umask_mode())
        for n in range(1, 10_000):
            target = folder / f"{stem}{'' if n == 1 else f'-{n}'}{suffix}"
            try:
                os.link(tmp, target)
                return target
            except FileExistsError:
                continue
        raise OutputError(f"{folder} already holds 10000 results named {stem}; choose --out")
    finally:
        tmp.unlink(missing_ok=True)
