"""Diffusion Policy baseline: size and cost of the paper config, multimodality, receding horizon,
determinism, checkpoints and configuration errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lwd.checkpoint import load_model
from lwd.config import DataInfo, RunConfig, TrainConfig
from lwd.data import Episodes, MinMaxNormalizer
from lwd.methods.dp import DiffusionPolicy, DPConfig, DPPolicy
from lwd.methods import build_method
from lwd.pipeline import data_info
from lwd.training.train import train

from conftest import make_episodes

# Small everything: 2 U-Net levels (horizon a multiple of 2), short diffusion chains.
TINY = DPConfig(horizon=8, obs_steps=2, action_steps=4, down_dims=(16, 32), kernel_size=3, diffusion_step_embed_dim=16,
                task_embed_dim=8, num_train_timesteps=20, num_inference_steps=20, steps=5)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny convolutions are much faster on one thread, especially when the cores are busy."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _normalizer(obs_dim: int, action_dim: int) -> MinMaxNormalizer:
    return MinMaxNormalizer({"obs": -np.ones(obs_dim), "action": -np.ones(action_dim)},
                            {"obs": np.ones(obs_dim), "action": np.ones(action_dim)})


def _tiny(cfg: DPConfig = TINY, obs_dim: int = 3, action_dim: int = 2, tasks: tuple[str, ...] = ()) -> DiffusionPolicy:
    return DiffusionPolicy(cfg, DataInfo(obs_dim, action_dim, tasks=tasks), _normalizer(obs_dim, action_dim)).eval()


def test_paper_preset_size_and_flops_per_control_step():
    from lwd.pipeline import build_configs

    cfg, train_cfg = build_configs("dp", "paper")
    assert (cfg.horizon, cfg.obs_steps, cfg.action_steps, cfg.down_dims) == (16, 2, 8, (256, 512, 1024))
    assert (cfg.num_train_timesteps, cfg.num_inference_steps, cfg.sampler) == (100, 100, "ddpm")
    assert (train_cfg.lr, train_cfg.betas, train_cfg.batch_size, train_cfg.warmup_steps) == (1e-4, (0.95, 0.999), 256, 500)
    model = _tiny(cfg, obs_dim=20, action_dim=2)
    cost = model.cost().to_dict()
    print(f"\nDP paper (obs 20, action 2): params {cost['params_total']:,}, FLOPs/denoiser call "
          f"{cost['flops_denoiser_call']:.4g}, per generation {cost['flops_generation']:.4g}, "
          f"per control step {cost['flops_per_step']:.4g}")
    assert 6.0e7 < cost["params_total"] < 7.0e7  # the reference PushT low-dim U-Net: ~65M
    assert cost["params_per_step"] == cost["params_total"]
    # The count around a real sampling run equals 100 U-Net calls (the scheduler adds no matmuls).
    assert cost["flops_generation"] == 100 * cost["flops_denoiser_call"]
    assert cost["generation_every"] == 8
    assert cost["flops_per_step"] == cost["flops_generation"] / 8


def test_cost_reports_the_sampler_it_measured():
    model = _tiny()
    cost = model.cost(model.runtime_options(action_horizon=2, sampler="ddim", inference_steps=5)).to_dict()
    assert (cost["sampler"], cost["inference_steps"], cost["generation_every"]) == ("ddim", 5, 2)
    assert cost["flops_generation"] == 5 * cost["flops_denoiser_call"]
    assert cost["flops_per_step"] == cost["flops_generation"] / 2


def _two_mode_episodes(num_episodes: int = 16, length: int = 16) -> Episodes:
    """Observation always 0; each episode ramps its action either up from +0.5 to +0.8 or down to -0.8."""
    ramp = np.linspace(0.5, 0.8, length, dtype=np.float32)[:, None]
    eps = [{"obs": np.zeros((length, 1), np.float32), "action": (1 if i % 2 == 0 else -1) * ramp}
           for i in range(num_episodes)]
    return Episodes.from_list(eps, attrs={"suite": ""})


def test_trained_dp_reproduces_both_modes_of_a_bimodal_task(tmp_path):
    episodes = _two_mode_episodes()
    cfg = DPConfig(horizon=8, obs_steps=2, action_steps=4, down_dims=(32, 64), kernel_size=3, diffusion_step_embed_dim=32,
                   steps=300)  # the reference's 100 DDPM train and inference steps
    train_cfg = TrainConfig(batch_size=64, lr=1e-2, warmup_steps=20, checkpoint_every=10_000)
    model, run = _setup(episodes, cfg, train_cfg)
    train(model, episodes, train_cfg, run, tmp_path, progress=False)

    n = 200  # 200 independent draws (one per row of the batch)
    samples = model.sample_actions(torch.zeros(n, 2, 1), generator=torch.Generator().manual_seed(123))  # (n, T, 1)
    actions = model.normalizer.unnormalize("action", samples.numpy())[..., 0]  # (n, T)
    signs = np.sign(actions.mean(1))
    positive = float((signs > 0).mean())
    print(f"\nfraction of +mode samples: {positive:.2f}")
    assert 0.2 <= positive <= 0.8, "both modes must be sampled"
    # Each sample follows one mode: every step has that mode's sign and a magnitude in its range,
    # never the (non-existent) average of the two modes around 0.
    on_mode = ((np.sign(actions) == signs[:, None]) & (np.abs(actions) > 0.35) & (np.abs(actions) < 0.95)).all(1)
    assert on_mode.mean() >= 0.9, f"only {on_mode.mean():.2f} of the samples lie on a mode"

    # The same through the runtime policy: different episode seeds pick different modes.
    first = [_run(model.make_policy(), np.zeros((1, 1), np.float32), seed=s)[0, 0] for s in range(8)]
    assert min(first) < -0.35 and max(first) > 0.35


def _setup(episodes: Episodes, cfg: DPConfig, train_cfg: TrainConfig) -> tuple[DiffusionPolicy, RunConfig]:
    info = data_info(episodes, "memory")
    model = build_method("dp", cfg, info, MinMaxNormalizer.fit(episodes.data), seed=train_cfg.seed)
    run = RunConfig("dp", cfg, train_cfg, info)
    return model, run


def _run(policy: DPPolicy, obs: np.ndarray, seed: int = 7, task: int | None = None) -> np.ndarray:
    policy.reset(seed, task)
    return np.stack([policy.act(o) for o in obs])


def test_policy_replans_every_action_horizon_steps_and_executes_the_samples_after_the_last_obs():
    model = _tiny()
    policy = model.make_policy(model.runtime_options(action_horizon=3))
    policy.reset(seed=5)
    obs = np.random.default_rng(0).uniform(-1, 1, size=(10, 3)).astype(np.float32)
    planned_at, actions = [], []
    for t, o in enumerate(obs):
        before = policy.generations
        actions.append(policy.act(o))
        if policy.generations > before:
            planned_at.append(t)
    assert policy.generations == math.ceil(10 / 3) == 4
    assert planned_at == [0, 3, 6, 9]
    assert policy.steps == 10

    # The first plan: history [o0, o0] (padded), noise from the episode seed; executed [To-1, To-1+Ta).
    hist = torch.from_numpy(np.stack([obs[0], obs[0]]))[None]  # (1, To, Do)
    sample = model.sample_actions(hist, generator=torch.Generator().manual_seed(5))  # (1, T, Da)
    np.testing.assert_allclose(np.stack(actions[:3]), sample[0, 1:4].numpy(), rtol=0, atol=1e-6)


def test_same_seed_gives_identical_actions_and_observations_change_them():
    model = _tiny()
    obs = np.random.default_rng(1).uniform(-1, 1, size=(6, 3)).astype(np.float32)
    a = _run(model.make_policy(), obs, seed=3)
    b = _run(model.make_policy(), obs, seed=3)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, _run(model.make_policy(), obs, seed=4)), "the seed must matter"
    assert not np.allclose(a, _run(model.make_policy(), obs + 0.5, seed=3)), "the observations must matter"


def test_multitask_policy_uses_the_task_and_requires_it():
    model = _tiny(tasks=("a", "b", "c"))
    obs = np.zeros((4, 3), np.float32)
    policy = model.make_policy()
    assert not np.allclose(_run(policy, obs, seed=1, task=0), _run(policy, obs, seed=1, task=2))
    with pytest.raises(ValueError, match="multitask"):
        policy.reset(0)


def test_checkpoint_round_trip_gives_identical_actions(tmp_path):
    episodes = make_episodes()  # 2 tasks: the task embedding is saved too
    train_cfg = TrainConfig(batch_size=8, warmup_steps=2)
    model, run = _setup(episodes, TINY, train_cfg)
    train(model, episodes, train_cfg, run, tmp_path, progress=False)
    loaded = load_model(tmp_path)
    assert isinstance(loaded, DiffusionPolicy)
    obs = np.random.default_rng(0).normal(size=(9, 5)).astype(np.float32)
    np.testing.assert_array_equal(_run(model.make_policy(), obs, task=1), _run(loaded.make_policy(), obs, task=1))


def test_action_horizon_longer_than_the_predicted_horizon_is_a_clear_error():
    model = _tiny()  # T=8, To=2: at most Ta=7
    model.make_policy(model.runtime_options(action_horizon=7))
    with pytest.raises(ValueError, match=r"horizon must be at least To-1\+Ta=9.*horizon=10"):
        model.make_policy(model.runtime_options(action_horizon=8))
    with pytest.raises(ValueError, match="at least To-1"):
        model.cost(model.runtime_options(action_horizon=8))
    with pytest.raises(ValueError, match=">= 1"):
        model.make_policy(model.runtime_options(action_horizon=0))


def test_config_errors_say_what_to_change():
    with pytest.raises(ValueError, match=r"multiple of 4 .*use horizon=12"):
        DPConfig(horizon=10)
    with pytest.raises(ValueError, match=r"action_steps \+ obs_steps - 1 <= horizon"):
        DPConfig(horizon=8, obs_steps=2, action_steps=8, down_dims=(16, 32))
    with pytest.raises(ValueError, match="sampler"):
        DPConfig(sampler="euler")
    with pytest.raises(ValueError, match="num_inference_steps"):
        DPConfig(num_inference_steps=200)
    with pytest.raises(ValueError, match="n_groups"):
        DPConfig(down_dims=(12, 24))
    from lwd.config import from_dict

    with pytest.raises(ValueError, match="unknown DPConfig keys"):
        from_dict(DPConfig, {"horizn": 16})


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_batched_replanning_matches_each_episode_planned_alone(sampler):
    """plan_together: one network call for several episodes, each with its own noise and task."""
    model = _tiny(tasks=("a", "b"))
    rng = np.random.default_rng(2)
    obs = rng.uniform(-1, 1, size=(3, 9, 3)).astype(np.float32)  # 3 episodes x 9 steps
    seeds, tasks = [11, 12, 13], [0, 1, 1]

    alone = []
    for i in range(3):
        policy = model.make_policy(model.runtime_options(action_horizon=4, sampler=sampler))
        alone.append(_run(policy, obs[i], seed=seeds[i], task=tasks[i]))

    policies = [model.make_policy(model.runtime_options(action_horizon=4, sampler=sampler)) for _ in range(3)]
    for p, s, k in zip(policies, seeds, tasks):
        p.reset(s, k)
    assert DPPolicy.batches_acting
    together = []
    for t in range(9):
        before = sum(p.generations for p in policies)
        together.append(DPPolicy.act_batch(policies, obs[:, t]))  # (3, Da)
        assert sum(p.generations for p in policies) - before == (3 if t % 4 == 0 else 0)
    np.testing.assert_allclose(np.stack(together, axis=1), np.stack(alone), rtol=0, atol=1e-4)
    assert [p.generations for p in policies] == [3, 3, 3]


def test_batched_replanning_refuses_policies_with_different_settings():
    model = _tiny()
    a, b = model.make_policy(model.runtime_options(action_horizon=2)), model.make_policy(model.runtime_options(action_horizon=3))
    with pytest.raises(ValueError, match="same runtime settings"):
        DPPolicy.plan_together([a, b])


@pytest.mark.parametrize("action_horizon", [1, 2, 4, 3])
def test_nominal_flops_per_step_equal_what_an_episode_spends(action_horizon):
    """One plan every Ta steps: over a 12-step episode nominal == measured when Ta divides 12."""
    from lwd.evaluation.evaluate import measured_cost

    model = _tiny()
    runtime = model.runtime_options(action_horizon=action_horizon)
    cost = model.cost(runtime, episode_steps=12)
    policy = model.make_policy(runtime)
    _run(policy, np.zeros((12, 3), np.float32))
    measured = measured_cost(cost, [policy])["flops_per_step_measured"]
    assert policy.generations == -(-12 // action_horizon)
    assert measured == pytest.approx(policy.generations * cost.flops_generation / 12, rel=1e-12)
    assert (measured == pytest.approx(cost.flops_per_step, rel=1e-12)) == (12 % action_horizon == 0)


def test_delayed_plans_run_the_previous_chunk_on_until_the_new_one_arrives():
    """Ta = 4, delay 1: each plan's first action is stale when it arrives; the previous plan's next
    action covers that step. Only those steps differ from undelayed execution of the same plans."""
    model = _tiny()
    obs = np.random.default_rng(1).uniform(-1, 1, size=(12, 3)).astype(np.float32)
    prompt = _run(model.make_policy(model.runtime_options(action_horizon=4)), obs, seed=2)
    policy = model.make_policy(model.runtime_options(action_horizon=4, generation_delay=1))
    late = _run(policy, obs, seed=2)
    assert policy.generations == 3
    same = [0, 1, 2, 3, 5, 6, 7, 9, 10, 11]
    np.testing.assert_array_equal(late[same], prompt[same])
    assert not np.allclose(late[[4, 8]], prompt[[4, 8]])
    with pytest.raises(ValueError, match="below the action horizon"):
        model.make_policy(model.runtime_options(action_horizon=4, generation_delay=4))
    with pytest.raises(ValueError, match="must hold To-1\\+Ta\\+delay=9 actions but the model predicts T=8"):
        model.make_policy(model.runtime_options(action_horizon=6, generation_delay=2))
