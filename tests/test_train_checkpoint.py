"""Trainer and checkpoints: round trips, exact resume, clear errors on bad checkpoints."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from lwd.checkpoint import CheckpointError, load_model
from lwd.config import TrainConfig
from lwd.methods import build_method
from lwd.pipeline import data_info
from lwd.config import RunConfig
from lwd.methods.bc import BCConfig
from lwd.methods.lwd import LWDConfig
from lwd.data import MinMaxNormalizer
from lwd.training.train import TrainingInterrupted, train

from conftest import make_episodes

TINY_LWD = LWDConfig(latent_dim=8, policy_hidden=(16,), chunk_size=128, hyper_hidden=(32,), encoder_dim=16,
                     encoder_layers=1, encoder_heads=2, denoiser_width=32, denoiser_blocks=1, horizon=4,
                     vae_steps=30, prior_steps=20, prior_batch_size=16, inference_steps=4)
TRAIN = TrainConfig(batch_size=8, checkpoint_every=10, warmup_steps=5)


def _setup(method: str = "lwd", cfg=TINY_LWD, train_cfg=TRAIN):
    episodes = make_episodes()
    info = data_info(episodes, "memory")
    model = build_method(method, cfg, info, MinMaxNormalizer.fit(episodes.data), seed=train_cfg.seed)
    run = RunConfig(method, cfg, train_cfg, info)
    return model, episodes, run


def _rollout(model, seed: int = 7) -> np.ndarray:
    policy = model.make_policy()
    policy.reset(seed, task=1)
    obs = np.random.default_rng(0).normal(size=(9, 5)).astype(np.float32)
    return np.stack([policy.act(o) for o in obs])


@pytest.mark.parametrize("method,cfg", [("lwd", TINY_LWD), ("bc", BCConfig(hidden=(16,), steps=30))])
def test_checkpoint_round_trip_gives_identical_actions(tmp_path, method, cfg):
    model, episodes, run = _setup(method, cfg)
    train(model, episodes, TRAIN, run, tmp_path, progress=False)
    loaded = load_model(tmp_path)
    np.testing.assert_array_equal(_rollout(model), _rollout(loaded))
    assert (tmp_path / "train_loss.png").stat().st_size > 0
    assert not list(tmp_path.rglob("*.pt")) and not list(tmp_path.rglob("*.pkl"))


def test_resume_equals_uninterrupted_run(tmp_path):
    full, episodes, run = _setup()
    train(full, episodes, TRAIN, run, tmp_path / "full", progress=False)

    # Interrupt in the middle of the VAE stage and again in the middle of the prior stage.
    part, _, _ = _setup()
    with pytest.raises(TrainingInterrupted):
        train(part, episodes, TRAIN, run, tmp_path / "part", progress=False, stop_after_steps=20)
    part, _, _ = _setup()
    with pytest.raises(TrainingInterrupted):
        train(part, episodes, TRAIN, run, tmp_path / "part", resume=True, progress=False, stop_after_steps=20)
    resumed, _, _ = _setup()
    train(resumed, episodes, TRAIN, run, tmp_path / "part", resume=True, progress=False)

    a, b = full.state_dict(), resumed.state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=f"{key} differs after resume")
    np.testing.assert_array_equal(_rollout(full), _rollout(resumed))


def test_resume_refuses_changed_settings(tmp_path):
    model, episodes, run = _setup()
    with pytest.raises(TrainingInterrupted):
        train(model, episodes, TRAIN, run, tmp_path, progress=False, stop_after_steps=10)
    changed = dataclasses.replace(run, method_config=dataclasses.replace(run.method_config, kl_weight=0.5))
    with pytest.raises(CheckpointError, match="settings differ"):
        train(model, episodes, TRAIN, changed, tmp_path, resume=True, progress=False)


def test_resume_without_state_is_an_error(tmp_path):
    model, episodes, run = _setup()
    with pytest.raises(CheckpointError, match="no training state"):
        train(model, episodes, TRAIN, run, tmp_path, resume=True, progress=False)


@pytest.fixture
def trained_run(tmp_path):
    model, episodes, run = _setup("bc", BCConfig(hidden=(16,), steps=10))
    train(model, episodes, TRAIN, run, tmp_path, progress=False)
    return tmp_path


def test_corrupt_weights_file_is_reported(trained_run):
    (trained_run / "model.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_model(trained_run)


def test_truncated_weights_file_is_reported(trained_run):
    data = (trained_run / "model.safetensors").read_bytes()
    (trained_run / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_model(trained_run)


def test_weights_that_do_not_match_the_config_are_reported(trained_run):
    cfg = json.loads((trained_run / "config.json").read_text())
    cfg["method_config"]["hidden"] = [32]
    (trained_run / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="shape"):
        load_model(trained_run)


def test_missing_or_invalid_config_is_reported(trained_run, tmp_path):
    (trained_run / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_model(trained_run)
    with pytest.raises(CheckpointError, match="not a run directory"):
        load_model(tmp_path / "nowhere")


def test_unknown_method_in_config_is_reported(trained_run):
    cfg = json.loads((trained_run / "config.json").read_text())
    cfg["method"] = "gan"
    (trained_run / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="unknown method"):
        load_model(trained_run)


def test_config_rejects_unknown_keys_and_bad_values():
    from lwd.config import from_dict

    with pytest.raises(ValueError, match="unknown LWDConfig keys"):
        from_dict(LWDConfig, {"horizn": 8})
    with pytest.raises(ValueError, match="condition"):
        LWDConfig(condition="goal")
    with pytest.raises(ValueError, match="horizon"):
        LWDConfig(horizon=0)
