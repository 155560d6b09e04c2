"""LWD as a LeRobot policy, through LeRobot's own commands: lwd's PushT demos -> LeRobot's PushT layout
(lwd's save_lerobot, `python -m lerobot_policy_lwd.pusht`) -> `lerobot-train --policy.type=lwd` (a few
hundred steps, tiny model) -> `lerobot-eval` on gym-pusht; the saved policy acts as lwd's own runtime
does with the same weights, reloads to identical actions, and bad settings get LeRobot's usual error.
Runs in LeRobot's venv (make setup-lerobot; make test-lerobot)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

BIN = Path(sys.executable).parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
VAE_STEPS, PRIOR_STEPS, HORIZON = 200, 100, 8
TINY = {"vae_steps": VAE_STEPS, "prior_steps": PRIOR_STEPS, "horizon": HORIZON, "latent_dim": 8, "policy_hidden": "[32,32]",
        "hyper_hidden": "[32]", "chunk_size": 256, "encoder_dim": 16, "denoiser_width": 32, "denoiser_blocks": 1}


def run(cmd: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)


def train_args(dataset: Path, out: Path, steps: int, extra: dict | None = None) -> list[str]:
    settings = {**TINY, **(extra or {})}
    return [str(BIN / "lerobot-train"), "--policy.type=lwd", "--policy.device=cpu", "--policy.push_to_hub=false",
            *[f"--policy.{k}={v}" for k, v in settings.items()], f"--steps={steps}", "--batch_size=32", "--num_workers=0",
            "--dataset.repo_id=local/pusht", f"--dataset.root={dataset}", f"--output_dir={out}", f"--save_freq={steps}",
            "--log_freq=50", "--eval_freq=0", "--wandb.enable=false", "--seed=0"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """6 PushT expert demos in LeRobot's PushT layout, trained on by lerobot-train: the VAE then the prior."""
    tmp = tmp_path_factory.mktemp("lerobot-lwd")
    for cmd in ([str(BIN / "lwd"), "demos", "pusht/state", "--episodes", "6", "--out", "demos.zarr"],
                [sys.executable, "-m", "lerobot_policy_lwd.pusht", "demos.zarr", "--out", "dataset"]):
        done = run(cmd, tmp)
        assert done.returncode == 0, done.stderr[-3000:]
    done = run(train_args(tmp / "dataset", tmp / "train", VAE_STEPS + PRIOR_STEPS), tmp)
    assert done.returncode == 0, done.stderr[-5000:]
    ckpt = tmp / "train" / "checkpoints" / "last" / "pretrained_model"
    return {"tmp": tmp, "demos": tmp / "demos.zarr", "dataset": tmp / "dataset", "ckpt": ckpt, "log": done.stdout + done.stderr}


def load(ckpt: Path):
    from lerobot.policies.factory import make_pre_post_processors

    from lerobot_policy_lwd.modeling_lwd import LWDPolicy

    policy = LWDPolicy.from_pretrained(ckpt)
    pre, post = make_pre_post_processors(policy.config, pretrained_path=str(ckpt))
    return policy, pre, post


def lerobot_actions(policy, pre, post, observations: np.ndarray) -> np.ndarray:
    """One episode through LeRobot's pipeline: preprocessor -> select_action -> postprocessor."""
    policy.reset()
    actions = []
    for obs in observations:
        batch = pre({"observation.state": torch.from_numpy(obs[:2])[None],  # LeRobot's PushT layout
                     "observation.environment_state": torch.from_numpy(obs[2:])[None]})
        actions.append(post(policy.select_action(batch))[0].numpy())
    return np.stack(actions)


def demo_observations(dataset: Path, steps: int = 3 * HORIZON + 3) -> np.ndarray:
    from lwd.data.formats.lerobot import load_lerobot

    return load_lerobot(dataset).data["obs"][:steps]  # (T, 2 + 16): episode 0's first steps, as lwd imports them


def test_lerobot_plugin_loader_discovers_policy_type_lwd():
    """LeRobot's own loader (what lerobot-train/-eval call) imports the package by its name; nothing else does."""
    script = (
        "import sys\n"
        "from lerobot.configs.policies import PreTrainedConfig\n"
        "from lerobot.utils.import_utils import register_third_party_plugins\n"
        "assert 'lwd' not in PreTrainedConfig.get_known_choices() and 'lerobot_policy_lwd' not in sys.modules\n"
        "register_third_party_plugins()\n"
        "from lerobot.policies.factory import get_policy_class, make_policy_config, make_pre_post_processors\n"
        "from lerobot.configs.types import FeatureType, PolicyFeature\n"
        "cls = get_policy_class('lwd')\n"
        "cfg = make_policy_config('lwd', device='cpu')\n"
        "cfg.input_features = {'observation.state': PolicyFeature(FeatureType.STATE, (5,))}\n"
        "cfg.output_features = {'action': PolicyFeature(FeatureType.ACTION, (2,))}\n"
        "pre, post = make_pre_post_processors(cfg)\n"
        "print(cls.__module__, cls.__name__, type(cfg).__module__, cfg.type, len(pre.steps), len(post.steps))\n"
    )
    done = run([sys.executable, "-c", script], Path.cwd())
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["lerobot_policy_lwd.modeling_lwd", "LWDPolicy", "lerobot_policy_lwd.configuration_lwd",
                                   "lwd", "4", "2"]


def test_config_takes_lwd_settings_defaults_and_presets():
    from lwd.methods.base import resolve_preset
    from lwd.methods.lwd import LWD
    from lwd.methods.lwd import LWDConfig as CoreConfig

    from lerobot_policy_lwd.configuration_lwd import LWD_SETTINGS, LWDConfig

    assert set(LWD_SETTINGS) == set(CoreConfig.__dataclass_fields__)
    pusht, train = resolve_preset(LWD, "pusht")
    assert LWDConfig(device="cpu").core_config() == CoreConfig(**pusht)
    assert LWDConfig(device="cpu").optimizer_lr == train["lr"]
    assert LWDConfig(device="cpu", preset="default", condition="state").core_config() == CoreConfig(condition="state")
    assert LWDConfig(device="cpu", horizon=8).core_config() == CoreConfig(**{**pusht, "horizon": 8})


def test_an_lwd_setting_named_like_lerobots_config_is_refused_by_name(monkeypatch):
    """A core LWD setting once named `image_features` met PreTrainedConfig's read-only property of that
    name, and every lerobot command failed inside draccus; the plugin names such a clash instead."""
    from lerobot_policy_lwd import configuration_lwd

    assert configuration_lwd._shadowed_names() == []
    monkeypatch.setattr(configuration_lwd, "LWD_SETTINGS", (*configuration_lwd.LWD_SETTINGS, "image_features", "device"))
    assert configuration_lwd._shadowed_names() == ["device", "image_features"]


def test_config_json_round_trip_keeps_every_setting(tmp_path):
    from lerobot.configs.policies import PreTrainedConfig

    from lerobot_policy_lwd.configuration_lwd import LWDConfig

    cfg = LWDConfig(device="cpu", horizon=8, policy_hidden=(32, 16), ddim_eta=0.5)
    cfg.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["type"] == "lwd" and saved["horizon"] == 8 and saved["vae_steps"] == 20000  # resolved, not None
    back = PreTrainedConfig.from_pretrained(tmp_path)
    assert type(back) is LWDConfig and back.core_config() == cfg.core_config()


@pytest.mark.parametrize("setting, message", [("--policy.horizon=0", "ValueError: --policy.horizon must be > 0, got 0"),
                                              ("--policy.preset=nosuch", "ValueError: `preset`: unknown preset 'nosuch'"),
                                              ("--policy.condition=task", "ValueError: `condition`='task'")])
def test_bad_setting_gets_lerobots_usual_error(tmp_path, setting, message):
    """A config's ValueError that LeRobot's parser reports as "Couldn't instantiate class ...Config", as it
    does for its own policies; the traceback ends in the plugin's config, not inside lwd."""
    done = run([str(BIN / "lerobot-train"), "--policy.type=lwd", "--policy.device=cpu", setting,
                "--dataset.repo_id=local/none", f"--dataset.root={tmp_path / 'none'}"], tmp_path)
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert "Couldn't instantiate class LWDConfig using the given arguments" in out
    assert message in out
    assert "lwd/methods/lwd/config.py" not in out and "Creating dataset" not in out


def test_training_runs_lwds_vae_stage_then_its_prior_stage(trained):
    from safetensors.torch import load_file

    assert f"LWD: VAE stage done at step {VAE_STEPS}" in trained["log"]
    assert f"LWD: prior stage done at step {VAE_STEPS + PRIOR_STEPS}" in trained["log"]
    weights = load_file(trained["ckpt"] / "model.safetensors")
    assert int(weights["train_step"]) == VAE_STEPS + PRIOR_STEPS
    assert not torch.equal(weights["model.latent_std"], torch.ones_like(weights["model.latent_std"]))  # fitted


def test_lerobot_trained_policy_acts_as_lwds_runtime_with_the_same_weights(trained, tmp_path):
    """The LeRobot pipeline and lwd's own run directory (lwd's loader, normaliser fitted by lwd on the imported
    dataset, lwd's LWDPolicy on raw observations) give the same actions over several regenerations."""
    from lwd.checkpoint import load_model
    from lwd.data import MinMaxNormalizer
    from lwd.data.formats.lerobot import load_lerobot

    from lerobot_policy_lwd.convert import to_lwd_run

    policy, pre, post = load(trained["ckpt"])
    observations = demo_observations(trained["dataset"])
    ours = lerobot_actions(policy, pre, post, observations)

    fitted = MinMaxNormalizer.fit(load_lerobot(trained["dataset"]).data)  # what `lwd train` fits on `lwd import lerobot`
    bounds = {k: v.numpy() for k, v in fitted.state_dict().items()}
    stats = {"observation.state": {"min": bounds["obs.min"][:2], "max": bounds["obs.max"][:2]},
             "observation.environment_state": {"min": bounds["obs.min"][2:], "max": bounds["obs.max"][2:]},
             "action": {"min": bounds["action.min"], "max": bounds["action.max"]}}
    lwd_model = load_model(to_lwd_run(policy, stats, tmp_path / "run"))

    def lwd_actions(seed: int) -> np.ndarray:
        runtime = lwd_model.make_policy()
        runtime.reset(seed=seed)
        return np.stack([runtime.act(obs) for obs in observations])

    theirs = lwd_actions(seed=0)
    assert lwd_model.make_policy().horizon == HORIZON
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-3)  # pixels; float32 normalising in two ways
    assert np.abs(lwd_actions(seed=1) - ours).max() > 1e-2  # the comparison sees the sampled policies


def test_save_pretrained_round_trip_gives_identical_actions(trained, tmp_path):
    from lerobot_policy_lwd.modeling_lwd import LWDPolicy

    policy, pre, post = load(trained["ckpt"])
    observations = demo_observations(trained["dataset"])
    before = lerobot_actions(policy, pre, post, observations)
    policy.save_pretrained(tmp_path / "saved")
    assert {"config.json", "model.safetensors"} <= {p.name for p in (tmp_path / "saved").iterdir()}
    again = LWDPolicy.from_pretrained(tmp_path / "saved")
    assert np.array_equal(lerobot_actions(again, pre, post, observations), before)
    assert not np.array_equal(lerobot_actions(policy, pre, post, observations), before)  # next episode: next seed


def test_lerobot_eval_runs_the_trained_policy_on_gym_pusht(trained):
    """lerobot-eval with LeRobot's pusht env (the layout the policy was trained on), 4 episodes, 2 envs at once."""
    out = trained["tmp"] / "eval"
    done = run([str(BIN / "lerobot-eval"), f"--policy.path={trained['ckpt']}", "--policy.device=cpu", "--env.type=pusht",
                "--env.obs_type=environment_state_agent_pos", "--eval.n_episodes=4", "--eval.batch_size=2",
                f"--output_dir={out}", "--seed=100000"], trained["tmp"])
    assert done.returncode == 0, done.stderr[-5000:]
    overall = json.loads((out / "eval_info.json").read_text())["overall"]
    assert overall["n_episodes"] == 4 and 0.0 <= overall["avg_max_reward"] <= 1.0 and overall["avg_max_reward"] > 0.0
