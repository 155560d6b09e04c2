"""Output paths: checked before long work starts, and never lost once the work is done.

A command that trains for an hour or evaluates for ten minutes must find out at once that its
`--out` cannot be written, not at the end. `check_writable` answers that without leaving
anything behind (it probes with a temporary file that is removed at once); `write_text_safely`
writes a finished result and, if the target fails after all, puts it in the temp folder and
says where.
"""

from __future__ import annotations

import tempfile
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
    """Write `text` to `path`; if that fails, to a file in the temp folder, then raise an
    OutputError that names where the text went (computed results are never lost)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path
    except OSError as err:
        fd, rescue = tempfile.mkstemp(prefix=f"lwd-{path.stem}-", suffix=path.suffix or ".txt")
        with open(fd, "w") as f:
            f.write(text)
        raise OutputError(f"could not write {what} to {path} ({err.strerror}); they are saved in {rescue}") from err
