"""`lwd study --engine ray`: a study's jobs as tasks on a Ray cluster, writing the cells a local run writes.

The cluster is real: a head and two one-CPU workers started with `ray start` in their own temporary
folder, as separate processes, and ended by their process ids (never `ray stop`, which ends every
Ray process on the machine)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

# The smallest spec of tests/test_study.py with one seed and one episode a cell: LWD (one run, H 4
# and 8) and BC (one run): 3 cells from 2 training runs, so the two workers each get one.
SPEC = """
name = "tiny"
suite = "metaworld/reach-v3"
episodes = 1
seeds = [0]
horizons = [4, 8]
perturbations = ["none"]

[data.clean]
demos = 2

[methods.lwd]
preset = "default"
set = ["vae_steps=3", "prior_steps=3", "horizon=4", "latent_dim=4", "policy_hidden=[8]", "chunk_size=64",
       "hyper_hidden=[8]", "encoder_dim=8", "encoder_heads=2", "denoiser_width=8", "denoiser_blocks=1"]

[methods.bc]
set = ["steps=3"]
"""

# What differs between two runs of the same cell by construction: wall-clock durations (the cell's
# evaluation "seconds", the training stages' "training.seconds") and the provenance's date and
# commit (the commit is read when each process imports lwd, and others may commit in between).
# Everything else (the cell, successes, every episode's steps and scores, per-task figures,
# FLOPs, samples seen, the provenance's command and machine) must be equal.
NOT_DETERMINISTIC = ("seconds", "training.seconds", "provenance.date", "provenance.git_commit",
                     "provenance.git_commit_at_write", "provenance.note")


def _deterministic(record: dict) -> dict:
    record = json.loads(json.dumps(record))
    for dotted in NOT_DETERMINISTIC:
        *parents, leaf = dotted.split(".")
        node = record
        for key in parents:
            node = node[key]
        node.pop(leaf, None)
    return record


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_cluster():
    """HOST:PORT of a Ray head (no CPUs) with two one-CPU workers on this machine; returned as soon as
    the head answers: tasks wait in Ray's queue until the workers join."""
    pytest.importorskip("ray")
    ray_cli = Path(sys.executable).with_name("ray")
    if not ray_cli.exists():
        pytest.skip(f"no ray command beside {sys.executable}")
    # A short path of its own: Ray's socket paths under it must stay within the 107-byte limit.
    folder = Path(tempfile.mkdtemp(prefix="lwd-ray-", dir="/tmp"))
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_TMPDIR": str(folder), "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
    # --block keeps each `ray start` in the foreground: SIGTERM to it ends the processes it started.
    # No --node-ip-address 127.0.0.1: Ray 2.60 replaces a loopback address by the machine's own.
    common = ["--block", "--object-store-memory", str(80 * 2**20), "--disable-usage-stats"]
    nodes: list[subprocess.Popen] = []

    def start(name: str, *args: str) -> None:
        (folder / name).mkdir()
        log = open(folder / f"{name}.log", "w")
        nodes.append(subprocess.Popen([str(ray_cli), "start", *args, "--temp-dir", str(folder / name), *common], env=env,
                                      stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        log.close()

    try:
        start("head", "--head", "--port", str(port), "--num-cpus", "0", "--include-dashboard", "false")
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert nodes[0].poll() is None and time.monotonic() < deadline, (folder / "head.log").read_text()[-3000:]
                time.sleep(0.2)
        for i in range(2):
            # Two nodes on one machine: each its own temp folder and agent port (the defaults collide);
            # no log monitor (one process less each: the workers' own lines are not forwarded here).
            start(f"worker{i}", "--address", f"127.0.0.1:{port}", "--num-cpus", "1", "--include-log-monitor", "false",
                  "--dashboard-agent-listen-port", str(_free_port()))
        yield f"127.0.0.1:{port}"
    finally:
        for node in reversed(nodes):
            node.send_signal(signal.SIGTERM)
        for node in nodes:
            try:
                node.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)  # its own session: only what this `ray start` started
                node.wait(timeout=30)
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


def _cells(root: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted((root / "benchmarks/results/studies/tiny/cells").glob("*.json"))}


def test_a_study_on_a_ray_cluster_writes_the_local_cells_and_resumes(tmp_path, ray_cluster, counted, capsys):
    pytest.importorskip("metaworld")
    from lwd.experiments.cluster import ClusterJobError, connected
    from lwd.experiments.study import run_study

    local, on_ray = tmp_path / "local", tmp_path / "ray"
    for root in (local, on_ray):
        root.mkdir()
        (root / "tiny.toml").write_text(SPEC)
    # One connection for the three Ray runs: the job's worker processes start while the local run
    # goes, and import torch and lwd once.
    with connected(ray_cluster, progress=False):
        run_study(local / "tiny.toml", root=local, progress=False)  # in this process
        assert (counted["train"], counted["eval"]) == (2, 3)
        run_study(on_ray / "tiny.toml", root=on_ray, engine="ray", address=ray_cluster)
        assert (counted["train"], counted["eval"]) == (2, 3)  # the Ray run trained and evaluated elsewhere
        out = capsys.readouterr().out
        assert "in 2 training run(s), as tasks on the Ray cluster at" in out and "2/2 training run(s) finished" in out, out
        cells, expected = _cells(on_ray), _cells(local)
        assert sorted(cells) == sorted(expected) and len(cells) == 3  # the same keys, so the same file names
        for name in cells:
            assert _deterministic(json.loads(cells[name].read_text())) == _deterministic(json.loads(expected[name].read_text())), name

        # An interrupted run: two cells' files missing, and BC's run folder damaged, so its job fails.
        # The failure names the job; LWD's job still runs its missing cell, from its trained run.
        lwd_lost = next(name for name in cells if name.startswith("lwd-") and "-H8-" in name)
        bc_lost = next(name for name in cells if name.startswith("bc-"))
        before = {p: p.stat().st_mtime_ns for p in [*cells.values(), *(on_ray / "runs/studies").glob("*/model.safetensors")]}
        records = {name: json.loads(cells[name].read_text()) for name in (lwd_lost, bc_lost)}
        bc_log = next((on_ray / "runs/studies").glob("bc-*/train_log.json"))
        log_text = bc_log.read_text()
        bc_log.write_text("{")
        for name in records:
            cells[name].unlink()
        with pytest.raises(ClusterJobError, match=r"study tiny: training run 'bc clean seed 0 \(run bc-\w+\)' failed on the "
                                               r"Ray cluster: JSONDecodeError"):
            run_study(on_ray / "tiny.toml", root=on_ray, progress=False, engine="ray", address=ray_cluster)
        assert cells[lwd_lost].exists() and not cells[bc_lost].exists()
        bc_log.write_text(log_text)
        summary = run_study(on_ray / "tiny.toml", root=on_ray, progress=False, engine="ray", address=ray_cluster)
    assert summary["cells_done"] == 3
    # Only the two lost cells were written again, with the same figures; no run was retrained.
    changed = sorted(p.name for p, mtime in before.items() if p.stat().st_mtime_ns != mtime)
    assert changed == sorted(records)
    for name, record in records.items():
        assert _deterministic(json.loads(cells[name].read_text())) == _deterministic(record), name

    # A local run afterwards finds every cell done: nothing trains or evaluates.
    summary = run_study(on_ray / "tiny.toml", root=on_ray, progress=False)
    assert summary["cells_done"] == 3 and (counted["train"], counted["eval"]) == (2, 3)


def test_a_node_without_the_study_files_is_refused_in_one_line(tmp_path):
    from lwd.experiments.cluster import SharedFilesystemError, _digest, check_shared

    spec = tmp_path / "tiny.toml"
    spec.write_text(SPEC)
    check = tmp_path / ".cluster-check-abc"
    check.write_text("abc")
    check_shared(str(tmp_path), str(check), "abc", str(spec), _digest(spec))  # the driver's own view passes
    with pytest.raises(SharedFilesystemError, match=rf"does not see the study root {tmp_path} .*missing.*shared filesystem"):
        check_shared(str(tmp_path), str(tmp_path / ".cluster-check-other"), "other", str(spec), _digest(spec))
    with pytest.raises(SharedFilesystemError, match="check file .* is different"):
        check_shared(str(tmp_path), str(check), "abd", str(spec), _digest(spec))
    with pytest.raises(SharedFilesystemError, match="does not see the study spec"):
        check_shared(str(tmp_path), str(check), "abc", str(spec), "0" * 64)


def test_engine_options_are_checked_before_any_work(tmp_path, monkeypatch):
    from lwd.experiments.cluster import check_address
    from lwd.experiments.study import run_study

    spec = tmp_path / "tiny.toml"
    spec.write_text(SPEC)
    with pytest.raises(ValueError, match="--engine must be one of local, ray"):
        run_study(spec, root=tmp_path, engine="slurm")
    with pytest.raises(ValueError, match="--address is a Ray cluster's; give it with --engine ray"):
        run_study(spec, root=tmp_path, address="127.0.0.1:6379")
    with pytest.raises(ValueError, match="--jobs is the local engine's"):
        run_study(spec, root=tmp_path, engine="ray", jobs=2, address="127.0.0.1:6379")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if ray were not installed
    with pytest.raises(ImportError, match=r"Ray \(lwd study --engine ray\) is not installed.*pip install -e '\.\[cluster\]'"):
        run_study(spec, root=tmp_path, engine="ray", address="127.0.0.1:6379")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(ValueError, match="needs --address HOST:PORT"):
        check_address(None)
    with pytest.raises(ValueError, match="HOST:PORT"):
        check_address("headnode")
    with pytest.raises(ConnectionError, match="no Ray cluster answers at 127.0.0.1:"):  # nothing listens there
        check_address(f"127.0.0.1:{_free_port()}", timeout=2)
    assert not (tmp_path / "benchmarks").exists()  # nothing was written


def test_the_cli_takes_the_engine_and_its_address(tmp_path, capsys):
    from lwd.cli import main

    spec = tmp_path / "tiny.toml"
    spec.write_text(SPEC)
    assert main(["study", str(spec), "--root", str(tmp_path), "--engine", "ray", "--address", "head:6379", "--dry-run"]) == 0
    assert "3 to run now in 2 training run(s), as tasks on the Ray cluster at head:6379" in capsys.readouterr().out
    assert main(["study", str(spec), "--root", str(tmp_path), "--address", "head:6379"]) == 2
    assert capsys.readouterr().err.strip() == "lwd study: error: --address is a Ray cluster's; give it with --engine ray"
