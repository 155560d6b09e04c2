"""Several processes (DDP over gloo on this CPU machine), sharded evaluation, kills and resume.

Multi-process cases launch the real CLI under torchrun, as a user would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from lwd.checkpoint import CheckpointError, read_train_state, write_train_state
from lwd.cli import main as lwd_main
from lwd.training.hardware import Hardware, resolve_device

from conftest import make_episodes

TINY = {
    "lwd": ["latent_dim=8", "policy_hidden=[16]", "chunk_size=128", "hyper_hidden=[32]", "encoder_dim=16", "encoder_heads=2",
            "denoiser_width=32", "denoiser_blocks=1", "horizon=4", "vae_steps=200", "prior_steps=200", "prior_batch_size=64"],
    "dp": ["down_dims=[16, 32]", "diffusion_step_embed_dim=16", "task_embed_dim=8", "n_groups=4", "horizon=8",
           "action_steps=4", "steps=200"],
    "bc": ["hidden=[32, 32]", "steps=200"],
}
TRAIN = ["batch_size=64", "warmup_steps=10", "checkpoint_every=50"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


@pytest.fixture(scope="module")
def demos(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "tiny.zarr"
    make_episodes(num_episodes=8, length=30).save(path)
    return path


def _train_args(method: str, data: Path, out: Path, *extra: str) -> list[str]:
    args = ["train", method, "--data", str(data), "--out", str(out)]
    for item in TINY[method]:
        args += ["--set", item]
    for item in TRAIN:
        args += ["--train-set", item]
    return args + list(extra)


def _torchrun(nproc: int, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    port = str(29600 + os.getpid() % 300)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port", port, "-m", "lwd.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=timeout)


def _losses(run: Path) -> dict[str, np.ndarray]:
    log = json.loads((run / "train_log.json").read_text())
    return {stage: np.array([row["loss"] for row in rows]) for stage, rows in log["stages"].items()}


@pytest.fixture(scope="module")
def ddp_runs(demos, tmp_path_factory) -> tuple[Path, Path]:
    """Each method trained by one process and by two (the same global batch of 64, split 32 + 32)."""
    root = tmp_path_factory.mktemp("ddp")
    for method in TINY:
        assert lwd_main(_train_args(method, demos, root / f"{method}-1")) == 0
        done = _torchrun(2, *_train_args(method, demos, root / f"{method}-2"))
        assert done.returncode == 0, done.stderr[-3000:]
    return root, demos


def test_ddp_trains_on_the_same_global_batches(ddp_runs):
    """BC has no noise: two processes see exactly the samples one does, so the losses agree to float rounding."""
    root, _ = ddp_runs
    one, two = _losses(root / "bc-1")["bc"], _losses(root / "bc-2")["bc"]
    np.testing.assert_allclose(two, one, rtol=1e-4)
    assert json.loads((root / "bc-2" / "train_log.json").read_text())["hardware"]["processes"] == 2


@pytest.mark.parametrize("method", ["lwd", "dp"])
def test_ddp_loss_curve_matches_one_process(ddp_runs, method):
    """With diffusion noise and latent samples drawn per rank, the curves differ only by that noise:
    each logged loss within 25% of the single-process one, the stage means within 10%."""
    root, _ = ddp_runs
    one, two = _losses(root / f"{method}-1"), _losses(root / f"{method}-2")
    assert one.keys() == two.keys()
    for stage in one:
        assert len(one[stage]) == len(two[stage]) == 4
        np.testing.assert_allclose(two[stage], one[stage], rtol=0.25, err_msg=f"{method}:{stage}")
        assert abs(two[stage].mean() / one[stage].mean() - 1) < 0.10, (method, stage, one[stage], two[stage])
    assert (root / f"{method}-2" / "model.safetensors").is_file()


def test_gradient_accumulation_keeps_the_samples_of_a_step(demos, tmp_path):
    """--grad-accum splits the same global batch into micro-batches: BC's losses do not change."""
    assert lwd_main(_train_args("bc", demos, tmp_path / "one")) == 0
    assert lwd_main(_train_args("bc", demos, tmp_path / "acc", "--grad-accum", "4")) == 0
    np.testing.assert_allclose(_losses(tmp_path / "acc")["bc"], _losses(tmp_path / "one")["bc"], rtol=1e-4)


def test_batch_that_does_not_split_is_refused(demos, tmp_path, capsys):
    assert lwd_main(_train_args("bc", demos, tmp_path / "run", "--grad-accum", "3")) == 2
    assert "does not split" in capsys.readouterr().err


def test_bf16_mixed_precision_trains_on_cpu(demos, tmp_path):
    assert lwd_main(_train_args("bc", demos, tmp_path / "run", "--precision", "bf16")) == 0
    losses = _losses(tmp_path / "run")["bc"]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]


def test_devices_this_machine_lacks_are_refused():
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            resolve_device("cuda")
    assert resolve_device("auto") in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError, match="threads"):
        Hardware(threads=-1)


def test_sharded_evaluation_equals_one_process(demos, tmp_path):
    """Two processes share the episodes of an evaluation and gather them: every figure but the time is equal."""
    pytest.importorskip("metaworld")
    run = _metaworld_run(tmp_path)
    args = ["eval", str(run), "--episodes", "3"]
    assert lwd_main([*args, "--out", str(tmp_path / "one.json")]) == 0
    done = _torchrun(2, *args, "--out", str(tmp_path / "two.json"))
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = (json.loads((tmp_path / name).read_text()) for name in ("one.json", "two.json"))
    assert two.pop("processes") == 2
    for key in ("seconds", "provenance"):
        one.pop(key), two.pop(key)
    assert one == two
    assert len(one["episodes"]) == 3


def _metaworld_run(tmp_path: Path) -> Path:
    """A tiny BC run trained on real reach-v3 demos, so the sharded evaluation runs the real simulator."""
    from lwd.pipeline import train_run

    data = tmp_path / "reach.zarr"
    assert lwd_main(["demos", "metaworld/reach-v3", "--episodes", "2", "--out", str(data)]) == 0
    train_run("bc", data, tmp_path / "reach-bc", overrides=["hidden=[16]", "steps=30"], progress=False)
    return tmp_path / "reach-bc"


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model.safetensors"))


def _wait_for_checkpoint(run: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        latest = run / "train_state" / "latest.json"
        if latest.exists() and json.loads(latest.read_text())["step"] > 0:
            return
        assert proc.poll() is None, "training finished before it could be killed; raise its steps"
        time.sleep(0.02)
    raise AssertionError("no checkpoint appeared")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_run_resumes_to_the_same_weights(demos, tmp_path, sig):
    """A run killed mid-stage (SIGKILL: from its last checkpoint; SIGTERM: it saves first) and resumed
    ends with exactly the weights of an uninterrupted run."""
    args = _train_args("lwd", demos, tmp_path / "full")
    assert lwd_main(args) == 0
    cut = [a if a != str(tmp_path / "full") else str(tmp_path / "cut") for a in args]
    proc = subprocess.Popen([sys.executable, "-m", "lwd.cli", *cut], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _wait_for_checkpoint(tmp_path / "cut", proc)
    proc.send_signal(sig)
    code = proc.wait(timeout=120)
    assert code == (-9 if sig == signal.SIGKILL else 130), proc.stderr.read()[-2000:] if proc.stderr else ""
    assert not (tmp_path / "cut" / "model.safetensors").exists()
    assert lwd_main([*cut, "--resume"]) == 0
    full, resumed = _weights(tmp_path / "full"), _weights(tmp_path / "cut")
    assert full.keys() == resumed.keys()
    for key in full:
        assert torch.equal(full[key], resumed[key]), key


def _state(value: float) -> dict[str, dict[str, torch.Tensor]]:
    return {"model": {"w": torch.full((3,), value)}, "rng": {"torch": torch.get_rng_state()}}


def test_corrupted_latest_state_falls_back_to_the_previous_one(tmp_path):
    write_train_state(tmp_path, 0, 10, _state(1.0), {"n": 1})
    latest = write_train_state(tmp_path, 0, 20, _state(2.0), {"n": 2})
    model = latest / "model.safetensors"
    model.write_bytes(model.read_bytes()[:-4])  # truncated
    with pytest.warns(UserWarning, match="previous good one, step-0-00000010"):
        info, files = read_train_state(tmp_path)
    assert info["step"] == 10 and files["model"]["w"][0] == 1.0
    data = bytearray((tmp_path / "train_state" / "step-0-00000010" / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in the weights: still parses, caught by the checksum
    (tmp_path / "train_state" / "step-0-00000010" / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="no intact training state"):
        read_train_state(tmp_path)


def test_only_the_last_two_states_are_kept(tmp_path):
    for step in (10, 20, 30):
        write_train_state(tmp_path, 0, step, _state(float(step)), {})
    kept = sorted(p.name for p in (tmp_path / "train_state").iterdir() if p.is_dir())
    assert kept == ["step-0-00000020", "step-0-00000030"]


def test_corrupted_latest_state_still_resumes_exactly(demos, tmp_path):
    """Training continues from the previous good state and still ends with the uninterrupted weights."""
    args = _train_args("bc", demos, tmp_path / "full")
    assert lwd_main(args) == 0
    from lwd.pipeline import train_run
    from lwd.training.train import TrainingInterrupted

    overrides, train_overrides = TINY["bc"], TRAIN
    with pytest.raises(TrainingInterrupted):
        _train_part(train_run, demos, tmp_path / "cut", overrides, train_overrides, 120)
    latest = json.loads((tmp_path / "cut" / "train_state" / "latest.json").read_text())["dir"]
    (tmp_path / "cut" / "train_state" / latest / "optimizer.safetensors").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="damaged"):
        assert lwd_main([*[a if a != str(tmp_path / "full") else str(tmp_path / "cut") for a in args], "--resume"]) == 0
    full, resumed = _weights(tmp_path / "full"), _weights(tmp_path / "cut")
    for key in full:
        assert torch.equal(full[key], resumed[key]), key


def _train_part(train_run, data, out, overrides, train_overrides, steps):
    """train_run stopped after `steps` optimisation steps (as a kill would, but between two checkpoints)."""
    import lwd.training.train as train_module

    original = train_module.train

    def stopping(*args, **kwargs):
        return original(*args, **{**kwargs, "stop_after_steps": steps})

    train_module.train = stopping
    try:
        train_run("bc", data, out, overrides=overrides, train_overrides=train_overrides, progress=False)
    finally:
        train_module.train = original


def test_resume_with_another_world_size_is_refused(demos, tmp_path, capsys):
    from lwd.pipeline import train_run
    from lwd.training.train import TrainingInterrupted

    out = tmp_path / "cut"
    with pytest.raises(TrainingInterrupted):
        _train_part(train_run, demos, out, TINY["bc"], TRAIN, 60)
    state = out / "train_state" / json.loads((out / "train_state" / "latest.json").read_text())["dir"] / "state.json"
    state.write_text(json.dumps({**json.loads(state.read_text()), "world_size": 2}))  # as if two processes had saved it
    assert lwd_main([*_train_args("bc", demos, out), "--resume"]) == 2
    assert "trained by 2 process(es) and this launch has 1" in capsys.readouterr().err
