"""A study's training runs as tasks on a Ray cluster: `lwd study SPEC --engine ray --address HOST:PORT`.

Why Ray: a cluster of any machines starts with two commands and no administrator (`ray start
--head` on one, `ray start --address HEAD:PORT` on the others), and the same two commands start a
head and several workers on one machine, so the engine is tested here (tests/test_study_ray.py)
on a real cluster of separate processes, not a stand-in. Slurm through submitit was the other
candidate: it needs a Slurm controller, which neither this machine nor CI has, so its path could
only be mocked.

A task is exactly a local job: `lwd.experiments.study._run_group` trains (or reuses, or resumes) one training
run and evaluates its cells, each cell ending as its JSON file in the study's results folder. So
the cache is the same one: cells land where a local run puts them, a rerun (on Ray or locally)
runs only the cells without a file, and a finished cell is never run again. Data is made on the
driver before any task starts, as a local run does.

What the cluster must offer:
- a shared filesystem: every node sees the study's root at the same path (the folder holding
  data/, runs/ and benchmarks/results/). Checked, not assumed: the driver writes a check file
  with a random token under `runs/studies/`, and each task reads it (and the spec) before it
  starts; a node that cannot fails its task with a one-line error naming its host;
- the same lwd and packages on every node: Ray runs tasks with the Python that started the node,
  so start each node from the project's environment (`.venv/bin/ray start ...`).

Threads: each task takes one CPU (`num_cpus=1`) and runs with OMP_NUM_THREADS=1 (and torch set to
one thread, as every local job is), since several multi-threaded torch processes on the same
cores slow each other down many times over (../shared/ENV-NOTES.md).

Interruption: the tasks belong to the driver; when it stops, Ray ends them. Finished cells are
files, and an interrupted training resumes from its saved state on the next run. A task whose
worker or node dies is retried by Ray (`max_retries`), resuming the same way.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

#: What every task's process gets in its environment before it imports torch.
TASK_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
#: How often Ray retries a task whose worker process or node died (a failure of the code is not retried).
MAX_RETRIES = 3


class SharedFilesystemError(FileNotFoundError):
    """A task's node does not see the study's files as the driver wrote them."""


class ClusterJobError(ChildProcessError):
    """A study's job failed in its Ray task: an OSError, so `lwd` says it in one line (the task's
    traceback is printed when it fails)."""


def check_address(address: str | None, timeout: float = 10.0) -> str:
    """The cluster's address (from --address, else RAY_ADDRESS), refused in one line when missing or
    when nothing answers there: `ray.init` on a wrong address waits for minutes, not seconds."""
    address = address or os.environ.get("RAY_ADDRESS")
    if not address:
        raise ValueError("--engine ray needs --address HOST:PORT of a running Ray cluster's head "
                         "(`ray start --head --port PORT` starts one), or RAY_ADDRESS set")
    if address == "auto":
        return address  # Ray finds the cluster started on this machine
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--address must be HOST:PORT of a Ray cluster's head, e.g. 10.0.0.5:6379, got {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        raise ConnectionError(f"no Ray cluster answers at {address} ({err.strerror or err}); start its head with "
                              f"`ray start --head --port {port}` there, or give the address it printed") from err
    return address


@contextlib.contextmanager
def connected(address: str | None, progress: bool = True) -> Iterator[Any]:
    """Ray, connected to the cluster at `address` for the duration (the cluster itself stays up).

    A process already connected (a notebook's `ray.init`, or an outer `connected`) keeps its
    connection, and with it the job's worker processes, which have torch and lwd imported already:
    several studies in a row skip those seconds per worker."""
    from lwd.optional import require

    ray = require("ray", "cluster", "Ray (lwd study --engine ray)")
    if ray.is_initialized():
        held = ray.get_runtime_context().gcs_address
        if address and address != "auto" and address.rpartition(":")[2] != held.rpartition(":")[2]:
            raise ValueError(f"--address {address}: this process is connected to the Ray cluster at {held} already")
        yield ray
        return
    address = check_address(address)
    # Workers' output (the jobs' progress lines) comes back to this terminal when progress is on.
    ray.init(address=address, logging_level=logging.WARNING, log_to_driver=progress,
             runtime_env={"env_vars": dict(TASK_ENV)})
    try:
        yield ray
    finally:
        ray.shutdown()


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def check_shared(root: str, check_file: str, token: str, spec_path: str, spec_digest: str) -> None:
    """Refuse to run on a node that does not see the driver's files: the check file the driver wrote
    (with this token) under the study root, and the same spec."""
    host = socket.gethostname()
    try:
        seen = Path(check_file).read_text()
    except OSError:
        seen = None
    if seen != token:
        raise SharedFilesystemError(f"Ray node {host} does not see the study root {root} as the driver does (its check file "
                                    f"{check_file} is {'missing' if seen is None else 'different'} there): every node must "
                                    "see the study's folder at the same path, on a shared filesystem")
    if _digest(Path(spec_path)) != spec_digest:
        raise SharedFilesystemError(f"Ray node {host} does not see the study spec {spec_path} as the driver does: "
                                    "keep the spec on the shared filesystem")


def _group_task(job: Callable[..., None], spec_path: str, root: str, cells: list[Any], progress: bool,
                check: tuple[str, str, str], command: list[str]) -> str:
    """One Ray task: the local job once the node is known to share the study's files."""
    check_file, token, spec_digest = check
    check_shared(root, check_file, token, spec_path, spec_digest)
    job(spec_path, root, cells, progress, command=command)
    return socket.gethostname()


def run_groups(ray: Any, study: str, job: Callable[..., None], work: list[tuple[str, str, list[Any], bool]], names: list[str],
               check_folder: Path, progress: bool = True) -> None:
    """Run `job` (`lwd.experiments.study._run_group`, given rather than imported: the study imports this module)
    on each item of `work` (spec path, root, cells, progress; named by `names`) as one Ray task, and
    wait for all. A failed job does not stop the others (their cells are kept); then one error names
    every failed job and the first one's cause."""
    from lwd.provenance import command_line

    check_folder.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    check_file = check_folder / f".cluster-check-{token}"
    check_file.write_text(token)
    task = ray.remote(num_cpus=1, max_retries=MAX_RETRIES)(_group_task)
    failures: list[tuple[str, BaseException]] = []
    try:
        command = command_line()  # cells cite the driver's command, not the worker process's
        pending = {task.remote(job, spec_path, root, cells, show, (str(check_file), token, _digest(Path(spec_path))), command): name
                   for (spec_path, root, cells, show), name in zip(work, names)}
        done = 0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            name = pending.pop(ready[0])
            done += 1
            try:
                host = ray.get(ready[0])
            except ray.exceptions.RayError as err:
                failures.append((name, getattr(err, "cause", None) or err))
                print(f"study {study}: training run '{name}' failed on the Ray cluster:\n{err}", file=sys.stderr, flush=True)
                _say(progress, f"study {study}: {done}/{len(names)} training run(s) finished ({name}: FAILED, {_short(failures[-1][1])})")
                continue
            _say(progress, f"study {study}: {done}/{len(names)} training run(s) finished ({name}, on {host})")
    finally:
        check_file.unlink(missing_ok=True)
    if failures:
        name, cause = failures[0]
        others = f"; also failed: {', '.join(n for n, _ in failures[1:])}" if failures[1:] else ""
        message = f"study {study}: training run '{name}' failed on the Ray cluster: {_short(cause)}{others}"
        if all(isinstance(c, SharedFilesystemError) for _, c in failures):
            raise SharedFilesystemError(message) from cause
        raise ClusterJobError(message) from cause


def _short(err: BaseException) -> str:
    """An error in one line: its type and the first line of its message (a Ray error's is a traceback)."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0] if lines else ''}"


def _say(show: bool, line: str) -> None:
    if show:
        print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)
