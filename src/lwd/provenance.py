"""Where a result came from: command line, git commit, date, machine. Stored in every results file."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any


#: Result files and plots that benchmarks write into the repo: changing them does not change the code.
_OUTPUT_PATHS = (":(exclude)benchmarks/results", ":(exclude)docs")


def git_commit() -> str:
    """HEAD, with "-dirty" when tracked code differs from it (benchmark outputs do not count)."""
    try:
        root = Path(__file__).resolve().parents[2]
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", ".", *_OUTPUT_PATHS],
                               capture_output=True, text=True, timeout=5)
        if out.returncode != 0:
            return "unknown"
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


#: Packages whose version can change a result: the simulators make the demos and score the episodes
#: (a fresh machine with another mujoco or gymnasium gave MT10 0.904 where the README had 0.934).
_RESULT_PACKAGES = ("numpy", "torch", "diffusers", "mujoco", "gymnasium", "metaworld", "gym-pusht", "pymunk",
                    "robosuite", "zarr", "onnxruntime")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages in `_RESULT_PACKAGES` (absent ones are left out)."""
    from importlib import metadata

    versions = {}
    for name in _RESULT_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def machine() -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "packages": package_versions(),
    }


#: The commit of the code this process imported. A long run (hours of evaluation) keeps the code it
#: started with, even when commits land meanwhile, so its results belong to this commit, not to HEAD
#: at write time. The CLI and the benchmark scripts import this module at start-up.
_COMMIT_AT_START = git_commit()


_cli_command: list[str] | None = None


def record_cli_command(args: list[str]) -> None:
    """The `lwd` command this process runs (`lwd.cli.main` calls this with its arguments), so results
    cite it also when `main` is called from Python (tests, notebooks) rather than from a shell."""
    global _cli_command
    _cli_command = ["lwd", *args]


def _default_command() -> list[str]:
    """The command line as typed: `lwd ...` for the CLI, `python SCRIPT ...` for a benchmark script."""
    if _cli_command is not None:
        return list(_cli_command)
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is not None and script.suffix == ".py":
        try:
            shown = script.resolve().relative_to(Path.cwd())
        except ValueError:
            shown = script
        return ["python", str(shown), *sys.argv[1:]]
    return ["lwd", *sys.argv[1:]]


def command_line() -> list[str]:
    """The command this process runs, as results cite it; passed to work done on its behalf in
    processes that have their own command line (a study's tasks on Ray workers)."""
    return _default_command()


COLLECTION_ATTRS = ("seconds",)
"""Attributes that describe how a collection went, not what the data holds (`lwd demos` records its
wall-clock time): two collections of the same seeded demonstrations differ only there."""


def episodes_hash(episodes: Any, legacy: bool = False) -> str:
    """SHA-256 of an episode store's content: every data array (name, dtype, shape, values, in key
    order), the episode ends, the camera frames (if any) and the attributes but COLLECTION_ATTRS. It
    depends on what the data holds, not on how it is stored (directory or zip, chunking,
    compression) or how long it took to make, so a run can tell whether the dataset it was trained
    on has changed since. legacy: the hash runs recorded before COLLECTION_ATTRS were left out
    (every attribute counted)."""
    import hashlib
    import json

    import numpy as np

    digest = hashlib.sha256()
    arrays = {f"data/{k}": v for k, v in episodes.data.items()}
    arrays["meta/episode_ends"] = episodes.episode_ends
    for name in sorted(arrays):
        values = np.ascontiguousarray(np.asarray(arrays[name]))
        digest.update(f"{name}|{values.dtype.str}|{values.shape}\n".encode())
        digest.update(values.tobytes())
    for key, frames in sorted(getattr(episodes, "frames", {}).items()):  # camera frames, block by block
        digest.update(f"frames/{key}|uint8|{frames.shape}\n".encode())
        for block in frames.blocks():
            digest.update(np.ascontiguousarray(block).tobytes())
    attrs = episodes.attrs if legacy else {k: v for k, v in episodes.attrs.items() if k not in COLLECTION_ATTRS}
    digest.update(json.dumps(attrs, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def data_matches(path: str | Path, recorded: str) -> tuple[bool, str]:
    """Whether the episode store at `path` holds the data a run recorded as `recorded` (by either
    hash: runs from before COLLECTION_ATTRS recorded the legacy one); and its hash now."""
    from lwd.data import Episodes

    episodes = Episodes.load(path)
    now = episodes_hash(episodes)
    return now == recorded or episodes_hash(episodes, legacy=True) == recorded, now


def provenance(command: list[str] | None = None) -> dict[str, Any]:
    record = {
        "command": " ".join(command if command is not None else _default_command()),
        "git_commit": _COMMIT_AT_START,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
    }
    now = git_commit()
    if now != _COMMIT_AT_START:  # say so rather than silently picking one of the two
        record["git_commit_at_write"] = now
        record["note"] = "the repository changed while this process ran; it ran the code of git_commit"
    return record
