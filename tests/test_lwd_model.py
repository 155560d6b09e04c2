"""The LWD model: hypernetwork, decoder capacity, latent prior, runtime policy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lwd.config import DataInfo, TrainConfig
from lwd.methods.lwd import LWDConfig
from lwd.data import MinMaxNormalizer
from lwd.methods.lwd import LWD
from lwd.methods.lwd.hypernet import ChunkedHypernetwork
from lwd.methods.target_mlp import TargetMLPSpec, batched_mlp_forward, numpy_mlp_forward

from conftest import make_episodes

SMALL = dict(latent_dim=8, policy_hidden=(32, 32), chunk_size=256, hyper_hidden=(64,), encoder_dim=32,
             encoder_layers=1, encoder_heads=2, denoiser_width=64, denoiser_blocks=2, horizon=8)


def small_lwd(**over) -> tuple[LWD, object]:
    episodes = make_episodes()
    cfg = LWDConfig(**{**SMALL, **over})
    info = DataInfo(5, 2, ("t0", "t1"))
    return LWD(cfg, info, MinMaxNormalizer.fit(episodes.data)), episodes


def test_batched_decoder_matches_per_sample_loop():
    spec = TargetMLPSpec(7, 3, (16, 12), "mish")
    hyper = ChunkedHypernetwork(spec, latent_dim=5, chunk_size=100, hidden=(32,))
    z = torch.randn(4, 5)
    obs = torch.randn(4, 6, 7)
    batched = hyper.policy_actions(z, obs)  # (4, 6, 3)
    for b in range(4):
        theta = hyper(z[b : b + 1])
        single = batched_mlp_forward(spec, theta, obs[b : b + 1])
        torch.testing.assert_close(batched[b], single[0], rtol=1e-5, atol=1e-6)
        # and the same policy written out by hand with torch.nn.functional
        h = obs[b]
        for i, (w, bias) in enumerate(spec.unflatten(theta)):
            h = h @ w[0] + bias[0, 0]
            if i < 2:
                h = torch.nn.functional.mish(h)
        torch.testing.assert_close(batched[b], h, rtol=1e-5, atol=1e-6)


def test_different_latents_give_different_policies():
    spec = TargetMLPSpec(4, 2, (8,))
    hyper = ChunkedHypernetwork(spec, latent_dim=3, chunk_size=16, hidden=(16,))
    theta = hyper(torch.randn(2, 3))
    assert not torch.allclose(theta[0], theta[1])


def test_fresh_decoder_gives_sanely_scaled_policy():
    spec = TargetMLPSpec(39, 4, (128, 128))
    hyper = ChunkedHypernetwork(spec, latent_dim=64)
    out = hyper.policy_actions(torch.randn(16, 64), torch.randn(16, 10, 39))
    std = out.std().item()
    assert 0.05 < std < 5.0, f"fresh generated policies output std {std}: badly scaled initialisation"


def test_numpy_runtime_matches_torch():
    spec = TargetMLPSpec(6, 2, (10, 10), "relu")
    theta = torch.randn(1, spec.num_params)
    obs = torch.randn(1, 1, 6)
    layers = [(w[0].numpy(), b[0, 0].numpy()) for w, b in spec.unflatten(theta)]
    np.testing.assert_allclose(numpy_mlp_forward(spec, layers, obs[0, 0].numpy()), batched_mlp_forward(spec, theta, obs)[0, 0].numpy(), rtol=1e-5, atol=1e-6)


def test_decoder_overfits_a_handful_of_segments():
    model, episodes = small_lwd(kl_weight=0.0)
    dataset = model.segment_dataset(episodes)
    batch = dataset.sample_batch(np.arange(0, len(dataset), 15)[:8])
    opt = torch.optim.Adam(model.vae.parameters(), lr=3e-3)
    first = None
    for _ in range(400):
        loss, metrics = model.vae.loss(batch, kl_weight=0.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else metrics["bc_mse"]
    assert metrics["bc_mse"] < 1e-3, f"decoder could not fit 8 segments: mse {metrics['bc_mse']:.5f} (start {first:.3f})"


def test_prior_learns_two_mode_latent_distribution():
    model, episodes = small_lwd(diffusion_train_steps=50, inference_steps=10, denoiser_width=128)
    n = 512
    modes = torch.tensor([[2.5] * 8, [-2.5] * 8])
    z = modes[torch.arange(n) % 2] + 0.1 * torch.randn(n, 8)
    model._prior_data = {"mu": z, "logvar": torch.full((n, 8), -12.0), "task": torch.zeros(n, dtype=torch.long), "obs_history": torch.zeros(n, 2, 5)}
    prior_stage = model.stages(TrainConfig(batch_size=32), episodes)[1]
    opt = torch.optim.Adam(model.prior.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    for _ in range(1500):
        loss, _ = prior_stage.loss(prior_stage.sample_batch(rng))
        opt.zero_grad()
        loss.backward()
        opt.step()
    cond = model.condition(torch.zeros(400, dtype=torch.long), None)
    samples = model.sample_latents(cond, torch.Generator().manual_seed(1))
    side = samples.mean(-1)
    frac_pos = (side > 0).float().mean().item()
    assert 0.3 < frac_pos < 0.7, f"only one mode sampled: {frac_pos:.2f} of samples on the + side"
    dist = torch.cdist(samples, modes).min(-1).values
    assert (dist < 1.5).float().mean() > 0.9, "samples do not concentrate on the two modes"


def test_policy_regenerates_every_horizon_steps():
    model, _ = small_lwd(horizon=4)
    policy = model.make_policy(model.runtime_options(action_horizon=3))
    policy.reset(seed=0, task=1)
    for _ in range(10):
        policy.act(np.zeros(5, np.float32))
    assert policy.generations == 4  # steps 0, 3, 6, 9
    policy = model.make_policy(model.runtime_options(action_horizon=0))
    policy.reset(seed=0, task=1)
    for _ in range(10):
        policy.act(np.zeros(5, np.float32))
    assert policy.generations == 1


def test_same_seed_same_actions_other_seed_other_policy():
    model, _ = small_lwd()
    obs = np.random.default_rng(0).normal(size=(6, 5)).astype(np.float32)

    def rollout(seed):
        p = model.make_policy()
        p.reset(seed, task=0)
        return np.stack([p.act(o) for o in obs])

    np.testing.assert_array_equal(rollout(3), rollout(3))
    assert not np.allclose(rollout(3), rollout(4))


def test_task_conditioned_policy_requires_task():
    model, _ = small_lwd()
    with pytest.raises(ValueError, match="task"):
        model.make_policy().reset(0)


def test_state_conditioned_lwd_trains_and_acts():
    model, episodes = small_lwd(condition="state", vae_steps=5, prior_steps=5)
    from lwd.config import RunConfig
    from lwd.training.train import train
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        train(model, episodes, TrainConfig(batch_size=8, checkpoint_every=100), RunConfig("lwd", model.cfg, TrainConfig(batch_size=8, checkpoint_every=100), model.info), tmp, progress=False)
    p = model.make_policy()
    p.reset(0)
    assert p.act(np.zeros(5, np.float32)).shape == (2,)


def test_cost_counts_generation_and_step_flops():
    model, _ = small_lwd()
    c8 = model.cost(model.runtime_options(action_horizon=8)).to_dict()
    c16 = model.cost(model.runtime_options(action_horizon=16)).to_dict()
    assert c8["flops_policy_step"] == 2 * (5 * 32 + 32 * 32 + 32 * 2)
    assert c8["flops_generation"] > 0
    assert c16["flops_per_step"] < c8["flops_per_step"]


def test_whole_episode_segments_start_only_at_episode_starts():
    from lwd.data import concatenate

    model, _ = small_lwd(horizon=20, segment_starts="episode")
    episodes = concatenate([make_episodes(num_episodes=2, length=20), make_episodes(num_episodes=2, length=12)])
    dataset = model.segment_dataset(episodes)  # the 12-step episodes are shorter than H: padded, masked
    starts = model.segment_starts(episodes, dataset)
    np.testing.assert_array_equal(starts, episodes.episode_starts)
    batch = dataset.sample_batch(starts)
    assert batch["mask"].sum(1).tolist() == [20.0, 20.0, 12.0, 12.0]
    np.testing.assert_allclose(batch["states"][:, 0].numpy(), model.normalizer.normalize("obs", episodes.data["obs"][starts]), rtol=1e-6)


def test_segments_longer_than_episodes_are_refused_unless_whole_episode():
    from lwd.data import DatasetError, concatenate

    model, _ = small_lwd(horizon=16)
    mixed = concatenate([make_episodes(num_episodes=2, length=20), make_episodes(num_episodes=2, length=12)])
    with pytest.raises(DatasetError, match="16"):
        model.segment_dataset(mixed)  # short_episodes="error": the 12-step episodes
    model.segment_dataset(mixed, short_episodes="pad")


def test_a_horizon_longer_than_every_episode_is_refused_before_any_allocation():
    from lwd.data import DatasetError

    for segment_starts in ("any", "episode"):
        model, episodes = small_lwd(horizon=100000, segment_starts=segment_starts)  # episodes have 20 steps
        with pytest.raises(DatasetError, match="longest episode \\(20 steps\\).*at most 20"):
            model.segment_dataset(episodes, short_episodes="pad")


def test_policy_inputs_stack_the_previous_observation_reaching_into_the_history():
    from lwd.methods.lwd import policy_inputs

    hist = torch.arange(2 * 3, dtype=torch.float32).reshape(1, 2, 3)  # [s_-1, s_0]
    states = torch.cat([hist[:, 1:], 100 + torch.arange(3 * 3, dtype=torch.float32).reshape(1, 3, 3)], dim=1)  # s_0..s_3
    inputs = policy_inputs(hist, states, 2)  # (1, 4, 6)
    assert inputs.shape == (1, 4, 6)
    torch.testing.assert_close(inputs[0, 0], torch.cat([hist[0, 0], states[0, 0]]))  # [s_-1, s_0]
    torch.testing.assert_close(inputs[0, 3], torch.cat([states[0, 2], states[0, 3]]))  # [s_2, s_3]
    assert policy_inputs(hist, states, 1) is states


def test_history_policy_acts_on_the_same_stacked_inputs_at_run_time_as_in_training():
    """policy_obs_steps=2: the NumPy runtime and the training loss feed the MLP identical inputs."""
    from lwd.methods.lwd import policy_inputs

    model, episodes = small_lwd(policy_obs_steps=2, condition="task")
    assert model.target.obs_dim == 10
    policy = model.make_policy(model.runtime_options(action_horizon=0))  # one policy for the whole episode
    policy.reset(seed=3, task=1)
    obs = episodes.data["obs"][:6]
    actions = np.stack([policy.act(o) for o in obs])  # (6, Da)
    norm = torch.from_numpy(model.normalizer.normalize("obs", obs).astype(np.float32))[None]  # (1, 6, Do)
    hist = torch.cat([norm[:, :1], norm[:, :1]], dim=1)  # the first obs, padded to To=2
    h = policy_inputs(hist, norm, 2)[0]  # (6, 10)
    for i, (w, b) in enumerate(policy.policy_weights()):
        h = h @ torch.from_numpy(w) + torch.from_numpy(b)
        h = torch.relu(h) if i < len(policy.policy_weights()) - 1 else h
    expected = model.normalizer.unnormalize("action", h.numpy())
    np.testing.assert_allclose(actions, expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="policy_obs_steps"):
        LWDConfig(policy_obs_steps=3, obs_steps=2)


def test_folding_the_normalisers_into_the_mlp_gives_the_same_actions_as_normalising_around_it():
    """fold_affine: MLP(raw obs) with folded layers == unnormalize(MLP(normalize(obs))), constant dims included."""
    from lwd.data.normalize import MinMaxNormalizer
    from lwd.methods.target_mlp import fold_affine

    rng = np.random.default_rng(0)
    spec = TargetMLPSpec(obs_dim=6, action_dim=3, hidden=(16, 16))
    layers = [(rng.normal(size=(i, o)).astype(np.float32), rng.normal(size=o).astype(np.float32)) for i, o in spec.layer_shapes]
    norm = MinMaxNormalizer(
        {"obs": rng.uniform(-5, 0, 3), "action": np.array([-1.0, 2.0, 0.5])},
        {"obs": rng.uniform(1, 9, 3), "action": np.array([3.0, 2.0, 4.0])},  # action dim 1 is constant
    )
    obs = rng.uniform(-5, 9, size=(20, 6)).astype(np.float32)  # two stacked 3-d observations
    s, t = norm.affine("obs")
    a_s, a_t = norm.affine("action", inverse=True)
    folded = fold_affine(layers, np.tile(s, 2), np.tile(t, 2), a_s, a_t)
    obs_n = np.concatenate([norm.normalize("obs", obs[:, :3]), norm.normalize("obs", obs[:, 3:])], axis=1)
    expected = norm.unnormalize("action", numpy_mlp_forward(spec, layers, obs_n))
    got = numpy_mlp_forward(spec, folded, obs)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(got[:, 1], 2.0)  # a constant action stays the constant
    assert all(w.dtype == np.float32 and b.dtype == np.float32 for w, b in folded)


def test_lwd_policy_rejects_an_observation_of_the_wrong_size():
    model, _ = small_lwd(condition="task")
    policy = model.make_policy()
    policy.reset(seed=0, task=0)
    with pytest.raises(ValueError, match="shape"):
        policy.act(np.zeros(model.info.obs_dim + 1, np.float32))


@pytest.mark.parametrize("action_horizon", [1, 3, 4, 12, 0, 5])
def test_nominal_flops_per_step_equal_what_a_full_episode_spends_for_every_schedule(action_horizon):
    """Cost describes the schedule that runs: for a 12-step episode, nominal == measured whenever
    H divides the episode (0 = once per episode, costed over the episode length); otherwise the
    last, partial period costs a whole generation and the measured figure says so."""
    from lwd.evaluation.evaluate import measured_cost

    model, _ = small_lwd()
    runtime = model.runtime_options(action_horizon=action_horizon)
    cost = model.cost(runtime, episode_steps=12)
    policy = model.make_policy(runtime)
    policy.reset(0, task=1)
    for obs in np.random.default_rng(0).normal(size=(12, 5)).astype(np.float32):
        policy.act(obs)
    measured = measured_cost(cost, [policy])["flops_per_step_measured"]
    generations = 1 if action_horizon == 0 else -(-12 // action_horizon)
    assert policy.generations == generations
    assert measured == pytest.approx((generations * cost.flops_generation + 12 * cost.flops_policy_step) / 12, rel=1e-12)
    if action_horizon == 0 or 12 % action_horizon == 0:
        assert measured == pytest.approx(cost.flops_per_step, rel=1e-12)
        assert cost.generation_every == (12 if action_horizon == 0 else action_horizon)
    else:
        assert measured > cost.flops_per_step
    if action_horizon == 0:
        assert cost.to_dict()["generation"] == "once per episode"
        with pytest.raises(ValueError, match="episode length"):
            model.cost(runtime)  # no episode length: no honest per-step figure


def test_delayed_generation_uses_the_new_weights_delay_steps_after_the_observation_they_come_from():
    model, _ = small_lwd(condition="state")
    obs = np.random.default_rng(0).normal(size=(10, 5)).astype(np.float32)

    def run(**options):
        policy = model.make_policy(model.runtime_options(**options))
        policy.reset(seed=4)
        return np.stack([policy.act(o) for o in obs]), policy.generations

    prompt, gens = run(action_horizon=4)  # weights from steps 0, 4, 8, in use at once
    late, late_gens = run(action_horizon=4, generation_delay=2)  # the ones from 4 and 8 in use at 6 and 10
    first_only, _ = run(action_horizon=8)  # no regeneration at 4
    assert gens == late_gens == 3  # the same generations, from the same observations and noise
    np.testing.assert_array_equal(late[:4], prompt[:4])
    np.testing.assert_array_equal(late[4:6], first_only[4:6])  # still the first weights
    np.testing.assert_array_equal(late[6:8], prompt[6:8])  # the weights generated at step 4
    assert not np.allclose(late[4:6], prompt[4:6])
    with pytest.raises(ValueError, match="below the action horizon"):
        run(action_horizon=4, generation_delay=4)
    with pytest.raises(ValueError, match="needs regenerations"):
        run(action_horizon=0, generation_delay=1)
